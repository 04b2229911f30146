//! Renewal of an established peek (R53, R54): at half the interval, clamped both ways; a 404
//! re-opens with a fresh id and old expiries are ignored; `RePut` renewals; and a backwards
//! clock never renews early (docs/architecture.md §3).

use std::time::Duration;

use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundLostReason, OutboundOutcome, OutboundOutput,
    OutboundRenewStyle, OutboundRequestKind, OutboundState, Timestamp,
};

use crate::support::*;

#[test]
fn renewal_at_half_the_interval_clamped_both_ways() {
    // R53
    for (interval, after) in [
        (HOUR, Duration::from_secs(1800)),
        (Duration::from_millis(3_600_000_000), OutboundConfig::default().max_renew_after),
        (Duration::from_millis(10), OutboundConfig::default().min_renew_after),
    ] {
        let mut h = H::new();
        let r = room("!r:remote.org");
        let start = h.now;
        let put = h.open(&r, "remote.org", interval);
        assert_eq!(
            h.m.poll_timeout(),
            Some(Timestamp::from_millis(start + after.as_millis() as u64))
        );
        let renew = only_send(h.fire());
        assert_eq!((&renew.kind, &renew.peek_id), (&OutboundRequestKind::Renew, &put.peek_id));
        assert_eq!(h.m.state(&r), Some(OutboundState::Renewing));
        assert!(h.m.established(&r).is_some());
        let renewed_at = h.now;
        h.respond(&renew, OutboundOutcome::Renewed { renewal_interval: Some(interval) });
        assert_eq!(
            h.m.poll_timeout(),
            Some(Timestamp::from_millis(renewed_at + after.as_millis() as u64))
        );
    }
}

#[test]
fn a_renewal_writes_the_store_once_when_its_lease_is_granted() {
    // R59: the renewal in flight is stored as the lease it renews; only the new lease is
    // written. A restart while it is in flight restores the peek and renews it again.
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let before = h.store.clone();
    let out = h.fire();
    let persists = |out: &[OutboundOutput]| {
        out.iter().filter(|o| matches!(o, OutboundOutput::Persist(_))).count()
    };
    assert_eq!(persists(&out), 0, "sending a renewal writes nothing: {out:?}");
    let renew = only_send(out);
    assert_eq!(h.store, before);
    let out = h.respond(&renew, OutboundOutcome::Renewed { renewal_interval: Some(HOUR) });
    assert_eq!(persists(&out), 1, "the renewed lease is written once: {out:?}");
    assert_ne!(h.store, before, "the new lease is stored");

    // Crash with the next renewal in flight: the stored lease brings the peek back, and the
    // renewal, due already, is sent again at once.
    let renew = only_send(h.fire());
    h.restore();
    let again = only_send(h.drain());
    assert_eq!((&again.kind, &again.peek_id), (&renew.kind, &put.peek_id));
    assert_eq!(h.m.state(&r), Some(OutboundState::Renewing));
}

#[test]
fn renew_404_reopens_with_a_fresh_id_and_an_old_expiry_is_ignored() {
    // R54
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let renew = only_send(h.fire());
    let out = h.respond(&renew, failed(OutboundFailure::NotFound));
    assert!(out.contains(&OutboundOutput::Lost {
        room_id: r.clone().into(),
        reason: OutboundLostReason::RemoteExpired
    }));
    let put2 = only_send(out);
    assert!(matches!(put2.kind, OutboundRequestKind::Peek { .. }));
    assert_ne!(put2.peek_id, put.peek_id);
    h.respond(&put2, established(HOUR));
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put.peek_id);
    let out = h.drain();
    assert!(out.is_empty(), "old id ignored: {out:?}");
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    // The current id re-opens with yet another fresh id, and the expired one is DELETEd in
    // the background (the entry may predate a same-id PUT that re-created it).
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put2.peek_id);
    let sent = sends(&h.drain());
    let [put3, delete] = &sent[..] else { panic!("a PUT and a DELETE: {sent:?}") };
    assert!(matches!(put3.kind, OutboundRequestKind::Peek { .. }));
    assert!(![&put.peek_id, &put2.peek_id].contains(&&put3.peek_id));
    assert_eq!((&delete.kind, &delete.peek_id), (&OutboundRequestKind::Unpeek, &put2.peek_id));
    let put3 = put3.clone();
    // The wrong server naming the current id is ignored too (B-9).
    h.respond(&put3, established(HOUR));
    h.m.handle_remote_expired(h.t(), &server("b.org"), &r, &put3.peek_id);
    assert!(h.drain().is_empty());
}

#[test]
fn renew_style_reput_resends_the_put_with_the_same_id() {
    // R53, OutboundRenewStyle::RePut
    let cfg =
        OutboundConfig { renew_style: OutboundRenewStyle::RePut, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let renew = only_send(h.fire());
    assert!(matches!(renew.kind, OutboundRequestKind::Peek { .. }));
    assert_eq!(renew.peek_id, put.peek_id);
    let t = h.now;
    no_sends(&h.respond(&renew, established(HOUR)));
    assert_eq!(h.m.poll_timeout(), Some(Timestamp::from_millis(t + 1_800_000)));
    let renew = only_send(h.fire());
    h.respond(&renew, OutboundOutcome::Renewed { renewal_interval: Some(HOUR) });
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}

#[test]
fn a_small_step_back_never_renews_early_and_a_correction_keeps_the_normal_delay() {
    // docs/architecture.md §3: CLOCK_STEP_LIMIT (10 s)
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    let due = h.m.poll_timeout().unwrap();
    // Five seconds back: absorbed, nothing moves.
    let back = h.now - 5_000;
    h.m.handle_timeout(Timestamp::from_millis(back));
    h.m.handle_no_demand(Timestamp::from_millis(back), &r);
    h.m.handle_demand(Timestamp::from_millis(back), &r, &[]);
    no_sends(&h.drain());
    assert_eq!(h.m.poll_timeout(), Some(due));
    // Back to the epoch: a correction. The renewal is due at most its normal delay (half the
    // interval, 30 min) from the corrected time, and nothing is sent before then.
    h.m.handle_timeout(Timestamp::from_millis(1));
    no_sends(&h.drain());
    assert_eq!(h.m.poll_timeout(), Some(Timestamp::from_millis(1 + 1_800_000)));
}
