//! Outbound failover: a dead resident is noticed from the room's silence or the host's report,
//! the room moves to another candidate at once, the old peek is deleted in the background, and
//! the host is told since when it may have missed events. Backoff is per candidate.

use std::time::Duration;

use crate::support::*;
use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundLostReason, OutboundOutcome, OutboundOutput,
    OutboundPeeks, OutboundRequest, OutboundRequestKind, OutboundState, Timestamp,
};

fn lost(out: &[OutboundOutput]) -> Vec<OutboundLostReason> {
    out.iter()
        .filter_map(|o| match o {
            OutboundOutput::Lost { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn established_since(out: &[OutboundOutput]) -> Option<Option<Timestamp>> {
    out.iter().find_map(|o| match o {
        OutboundOutput::Established { missed_since, .. } => Some(*missed_since),
        _ => None,
    })
}

/// Feeds `n` events, one every `gap`, advancing the clock (no deadline is due in between).
fn events(h: &mut H, r: &ruma_common::RoomId, n: u32, gap: Duration) {
    for _ in 0..n {
        h.now += gap.as_millis() as u64;
        h.m.handle_room_event(h.t(), r);
        assert!(sends(&h.drain()).is_empty());
    }
}

/// Fires deadlines until one sends something (a deadline may only re-arm itself: a room that
/// kept receiving events moves its silence deadline lazily).
fn fire_until_send(h: &mut H) -> Vec<OutboundOutput> {
    loop {
        let out = h.fire();
        if !sends(&out).is_empty() {
            return out;
        }
    }
}

/// Answers `req` after `delay`, returning the outputs.
fn answer_after(
    h: &mut H,
    req: &OutboundRequest,
    delay: Duration,
    outcome: OutboundOutcome,
) -> Vec<OutboundOutput> {
    h.now += delay.as_millis() as u64;
    h.m.handle_timeout(h.t());
    let mut out = h.drain();
    out.extend(h.respond(req, outcome));
    out
}

#[test]
fn a_silent_active_room_probes_its_resident_and_fails_over_when_it_is_dead() {
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    h.respond(&put, established(HOUR));
    events(&mut h, &r, 10, Duration::from_secs(5));
    let last_event = h.t();
    // Silence: four gaps of 5 s is 20 s, raised to min_silence (30 s).
    let probe = only_send(fire_until_send(&mut h));
    assert_eq!(h.t(), last_event.saturating_add(Duration::from_secs(30)));
    assert_eq!((&probe.kind, probe.server.as_str()), (&OutboundRequestKind::Renew, "a.org"));
    // The resident is dead: every renewal times out after 10 s, retried with backoff.
    let timeout = Duration::from_secs(10);
    let first_failure = h.now + timeout.as_millis() as u64;
    let mut req = probe;
    let mut out;
    loop {
        out = answer_after(&mut h, &req, timeout, failed(OutboundFailure::Unreachable));
        while sends(&out).is_empty() {
            out = h.fire();
        }
        let s = sends(&out);
        if s.iter().any(|x| matches!(x.kind, OutboundRequestKind::Peek { .. })) {
            break;
        }
        assert_eq!(s.len(), 1);
        req = s[0].clone();
        assert_eq!(req.kind, OutboundRequestKind::Renew, "renewals retried until failover");
    }
    let failover_at = h.now;
    assert!(failover_at >= first_failure + 60_000, "not before failover_after");
    assert!(failover_at <= first_failure + 60_000 + 10_000, "at once after failover_after");
    assert_eq!(lost(&out), [OutboundLostReason::Unreachable], "Lost reported once");
    // The new PUT goes to b at once; the old peek's DELETE goes out in the background.
    let s = sends(&out);
    let new_put = s.iter().find(|x| matches!(x.kind, OutboundRequestKind::Peek { .. })).unwrap();
    assert_eq!(new_put.server.as_str(), "b.org");
    let out = h.respond(new_put, established(HOUR));
    assert_eq!(established_since(&out), Some(Some(last_event)), "events since the last one");
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    assert_eq!(h.m.established(&r).map(|(s, _)| s.as_str()), Some("b.org"));
    let gap = Duration::from_millis(h.now - last_event.as_millis());
    assert!(gap < Duration::from_secs(180), "served again {gap:?} after the last event");
}

#[test]
fn the_old_residents_delete_goes_out_beside_the_new_put_and_is_bounded() {
    let cfg =
        OutboundConfig { failover_after: Duration::from_secs(5), ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    h.respond(&put, established(HOUR));
    let renew = only_send(h.fire());
    let mut req = renew;
    let out = loop {
        let out = answer_after(
            &mut h,
            &req,
            Duration::from_secs(10),
            failed(OutboundFailure::Unreachable),
        );
        let mut out = out;
        while sends(&out).is_empty() {
            out = h.fire();
        }
        if sends(&out).len() > 1 || sends(&out)[0].server.as_str() == "b.org" {
            break out;
        }
        req = sends(&out)[0].clone();
    };
    let s = sends(&out);
    assert!(matches!(s[0].kind, OutboundRequestKind::Peek { .. }), "the PUT first: {s:?}");
    assert_eq!(s[0].server.as_str(), "b.org");
    // The retired peek's DELETE: beside the PUT, or right after the renewal in flight answers.
    let mut delete = s.iter().find(|x| x.kind == OutboundRequestKind::Unpeek).cloned();
    let new_put = s[0].clone();
    h.respond(&new_put, established(HOUR));
    let mut attempts = 0;
    for _ in 0..50 {
        match delete.take() {
            Some(del) => {
                assert_eq!((del.server.as_str(), &del.peek_id), ("a.org", &put.peek_id));
                attempts += 1;
                let out = h.respond(&del, failed(OutboundFailure::Unreachable));
                delete = sends(&out).into_iter().find(|x| x.kind == OutboundRequestKind::Unpeek);
            }
            None => {
                let Some(at) = h.m.poll_timeout() else { break };
                if at.as_millis() > h.now + 3_600_000 / 4 {
                    break; // only the new peek's renewal is left
                }
                let out = h.fire();
                delete = sends(&out).into_iter().find(|x| x.kind == OutboundRequestKind::Unpeek);
            }
        }
    }
    assert_eq!(attempts, h.config.max_delete_attempts, "bounded DELETE attempts, then dropped");
    assert_eq!(h.m.state(&r), Some(OutboundState::Established), "the new peek is untouched");
    assert!(
        !h.store.keys().any(|k| matches!(k, matrix_peek::OutboundKey::Retired { .. })),
        "the retired record is gone once given up"
    );
}

#[test]
fn a_quiet_room_sends_nothing_but_its_renewals() {
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    h.respond(&put, established(HOUR));
    let start = h.now;
    // Three events are not activity; nothing is probed however long the silence.
    events(&mut h, &r, 3, Duration::from_secs(5));
    let mut renewals = 0;
    while h.now < start + 24 * 3_600_000 {
        let req = only_send(h.fire());
        assert_eq!(req.kind, OutboundRequestKind::Renew);
        assert_eq!((h.now - start) % 1_800_000, 0, "only at the half-interval renewals");
        renewals += 1;
        h.respond(&req, OutboundOutcome::Renewed { renewal_interval: None });
    }
    assert_eq!(renewals, 48, "two per hour, as before");
}

#[test]
fn a_probe_that_succeeds_leaves_the_room_quiet_until_its_next_event() {
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org"]));
    h.respond(&put, established(HOUR));
    events(&mut h, &r, 5, Duration::from_secs(2));
    let probe = only_send(fire_until_send(&mut h));
    assert_eq!(probe.kind, OutboundRequestKind::Renew);
    h.respond(&probe, OutboundOutcome::Renewed { renewal_interval: None });
    // Quiet, not dead: the next request is the ordinary renewal 30 min later.
    let probed = h.now;
    let next = only_send(h.fire());
    assert_eq!(h.now - probed, 1_800_000);
    h.respond(&next, OutboundOutcome::Renewed { renewal_interval: None });
    // An event wakes the rhythm up again: the long gap keeps it inactive until four short ones.
    events(&mut h, &r, 1, Duration::from_secs(2));
    events(&mut h, &r, 4, Duration::from_secs(2));
    let last = h.now;
    let probe = only_send(fire_until_send(&mut h));
    assert_eq!(h.now - last, 30_000, "probed again after 30 s of silence");
    assert_eq!(probe.kind, OutboundRequestKind::Renew);
}

#[test]
fn an_unreachable_server_reported_by_the_host_fails_over_at_once() {
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    h.respond(&put, established(HOUR));
    h.now += 60_000;
    h.m.handle_server_unreachable(h.t(), &server("a.org"));
    let out = h.drain();
    assert_eq!(lost(&out), [OutboundLostReason::Unreachable]);
    let s = sends(&out);
    assert!(matches!(s[0].kind, OutboundRequestKind::Peek { .. }));
    assert_eq!(s[0].server.as_str(), "b.org", "{s:?}");
    assert!(
        s.iter().any(|x| x.kind == OutboundRequestKind::Unpeek && x.server.as_str() == "a.org")
    );
    let out = h.respond(&s[0], established(HOUR));
    assert_eq!(established_since(&out), Some(Some(Timestamp::from_millis(h.now - 60_000))));
    // A server no room uses changes nothing.
    h.m.handle_server_unreachable(h.t(), &server("z.org"));
    assert!(h.drain().is_empty());
}

#[test]
fn a_renewal_that_succeeds_clears_its_residents_backoff() {
    // Backoffs outlast the renewal, so only clearing one can make a resident ready again. With
    // one candidate, or with the other one backed off too, a backed-off a would make the room
    // wait for a fresh PUT.
    for via in [&["a.org"][..], &["a.org", "b.org"]] {
        let config = OutboundConfig {
            backoff_base: 4 * HOUR,
            backoff_max: 8 * HOUR,
            ..OutboundConfig::default()
        };
        let mut h = H::with(config);
        let r = room("!r:a.org");
        let put = only_send(h.demand(&r, via));
        h.respond(&put, established(HOUR));
        h.now += 60_000;
        for s in via.iter().rev() {
            h.m.handle_server_unreachable(h.t(), &server(s));
        }
        assert!(sends(&h.drain()).is_empty(), "{via:?}: nowhere to fail over to");
        // a answers the renewal: it served us, so its backoff is gone.
        let renew = only_send(fire_until_send(&mut h));
        assert_eq!(renew.server.as_str(), "a.org");
        h.respond(&renew, OutboundOutcome::Renewed { renewal_interval: None });
        // a drops the peek: the fresh PUT goes to a at once.
        let renew = only_send(fire_until_send(&mut h));
        let out = h.respond(&renew, failed(OutboundFailure::NotFound));
        let put = sends(&out)
            .into_iter()
            .find(|s| matches!(s.kind, OutboundRequestKind::Peek { .. }))
            .unwrap_or_else(|| panic!("{via:?}: a fresh PUT at once"));
        assert_eq!(put.server.as_str(), "a.org");
    }
}

#[test]
fn backoff_is_per_candidate_and_a_fresh_candidate_goes_first() {
    let mut h = H::new();
    let r = room("!r:a.org");
    // a fails: b goes at once, without waiting for a's backoff.
    let put = only_send(h.demand(&r, &["a.org", "b.org", "c.org"]));
    assert_eq!(put.server.as_str(), "a.org");
    let out = h.respond(&put, failed(OutboundFailure::Unreachable));
    let put = only_send(out);
    assert_eq!(put.server.as_str(), "b.org");
    h.respond(&put, established(HOUR));
    // b fails later: the room moves to c (never failed), not back to a (failed before).
    let renew = only_send(h.fire());
    let mut req = renew;
    let out = loop {
        let mut out =
            answer_after(&mut h, &req, Duration::from_secs(1), failed(OutboundFailure::Other(503)));
        while sends(&out).is_empty() {
            out = h.fire();
        }
        let s = sends(&out);
        if let Some(p) = s.iter().find(|x| matches!(x.kind, OutboundRequestKind::Peek { .. })) {
            break p.clone();
        }
        req = s[0].clone();
    };
    assert_eq!(out.server.as_str(), "c.org");
}

#[test]
fn a_zero_retry_after_is_raised_to_one_second() {
    for style in
        [matrix_peek::OutboundRenewStyle::RenewEndpoint, matrix_peek::OutboundRenewStyle::RePut]
    {
        let mut h = H::with(OutboundConfig { renew_style: style, ..OutboundConfig::default() });
        let r = room("!r:a.org");
        let put = only_send(h.demand(&r, &["a.org"]));
        h.respond(&put, established(HOUR));
        let mut req = only_send(h.fire());
        let start = h.now;
        let mut requests = 1;
        // A resident answering 429 with retry_after 0 for a simulated second.
        while h.now < start + 1_000 {
            let out = h.respond(
                &req,
                failed(OutboundFailure::RateLimited { retry_after: Some(Duration::ZERO) }),
            );
            assert!(sends(&out).is_empty(), "no retry without a wait");
            req = only_send(h.fire());
            requests += 1;
        }
        assert!(requests <= 2, "{requests} requests in one second ({style:?})");
        assert!(h.now - start >= 1_000);
    }
}

#[test]
fn a_lapse_and_an_expired_peeks_entry_both_report_since_when_events_were_missed() {
    // Lapse: one candidate, renewals fail until the peek lapses on our side.
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org"]));
    let granted_at = h.t();
    h.respond(&put, established(Duration::from_secs(600)));
    let mut req = only_send(h.fire());
    let mut reasons = Vec::new();
    let reopened = loop {
        let mut out = h.respond(&req, failed(OutboundFailure::Unreachable));
        reasons.extend(lost(&out));
        while sends(&out).is_empty() {
            out = h.fire();
            reasons.extend(lost(&out));
        }
        let s = sends(&out);
        if let Some(p) = s.iter().find(|x| matches!(x.kind, OutboundRequestKind::Peek { .. })) {
            break p.clone();
        }
        // Renewals, and the lapsed peek's DELETE (in the background), all fail.
        req = s[0].clone();
    };
    assert_eq!(reasons, [OutboundLostReason::Unreachable], "Lost once");
    assert!(h.now >= granted_at.as_millis() + 600_000, "only once lapsed");
    let out = h.respond(&reopened, established(HOUR));
    assert_eq!(established_since(&out), Some(Some(granted_at)));
    // expired_peeks: the resident dropped it; a fresh PUT (and a background DELETE of the
    // old id, in case the entry predates a same-id PUT), and the gap since the last event.
    h.now += 5_000;
    h.m.handle_room_event(h.t(), &r);
    let last_event = h.t();
    h.drain();
    h.now += 1_000;
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &reopened.peek_id);
    let out = h.drain();
    assert_eq!(lost(&out), [OutboundLostReason::RemoteExpired]);
    let sent = sends(&out);
    let put = sent
        .iter()
        .find(|x| matches!(x.kind, OutboundRequestKind::Peek { .. }))
        .expect("a fresh PUT")
        .clone();
    assert_ne!(put.peek_id, reopened.peek_id, "a fresh id (R54)");
    assert!(
        sent.iter().any(|x| x.kind == OutboundRequestKind::Unpeek && x.peek_id == reopened.peek_id),
        "the expired id is DELETEd: {sent:?}"
    );
    let out = h.respond(&put, established(HOUR));
    assert_eq!(established_since(&out), Some(Some(last_event)));
    // A first establishment reports no gap.
    let mut h = H::new();
    let put = only_send(h.demand(&r, &["a.org"]));
    assert_eq!(established_since(&h.respond(&put, established(HOUR))), Some(None));
}

#[test]
fn the_request_bound_is_burst_plus_one_per_second() {
    assert_eq!(OutboundPeeks::MAX_REQUESTS_PER_MINUTE, OutboundPeeks::REQUEST_BURST + 60);
    assert_eq!(OutboundPeeks::REQUEST_SPACING, Duration::from_secs(1));
}

#[test]
fn zero_length_intervals_cannot_make_a_room_renew_faster_than_its_pacer() {
    let cfg = OutboundConfig { min_renew_after: Duration::ZERO, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org"]));
    let out = h.respond(&put, established(Duration::ZERO));
    let mut n = 0;
    let start = h.now;
    let mut pending: Vec<OutboundRequest> = sends(&out);
    for _ in 0..1000 {
        for s in std::mem::take(&mut pending) {
            let out =
                h.respond(&s, OutboundOutcome::Renewed { renewal_interval: Some(Duration::ZERO) });
            pending.extend(sends(&out));
            n += sends(&out).len();
        }
        if pending.is_empty() {
            if h.m.poll_timeout().is_none() {
                break;
            }
            let out = h.fire();
            n += sends(&out).len();
            pending.extend(sends(&out));
        }
    }
    let elapsed_s = (h.now - start) / 1000;
    assert!(n >= 900, "the room keeps renewing: {n}");
    assert!(
        n as u64 <= elapsed_s + u64::from(OutboundPeeks::REQUEST_BURST) + 1,
        "{n} requests in {elapsed_s} s"
    );
}
