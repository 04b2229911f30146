//! Scenario tests of `OutboundPeeks` (MSC2444 peeking side). Each names its requirement.

mod outbound_support;

use std::time::Duration;

use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundKey, OutboundLostReason, OutboundOutcome,
    OutboundOutput, OutboundPeekError, OutboundRenewStyle, OutboundRequestKind, OutboundState,
    RoomAccess, Timestamp,
};
use outbound_support::*;
use ruma_common::{RoomId, RoomVersionId};

#[test]
fn five_devices_share_one_federated_peek() {
    // R58
    let mut h = H::new();
    let r = room("!r:remote.org");
    let mut sends = Vec::new();
    for _ in 0..5 {
        sends.extend(h.demand(&r, &["remote.org"]));
    }
    let put = only_send(sends);
    assert!(matches!(put.kind, OutboundRequestKind::Peek { .. }));
    assert_eq!(put.server, server("remote.org"));
    assert_eq!(h.m.len(), 1);
    assert_eq!(h.m.in_flight(), 1);
    let out = h.respond(&put, established(HOUR));
    assert!(out.iter().any(|o| matches!(o, OutboundOutput::Established { .. })));
    no_sends(&h.demand(&r, &["remote.org"]));
}

#[test]
fn joined_room_is_unpeeked_and_never_peeked_again_until_left() {
    // R56, R57
    let mut h = H::new();
    let r = room("!r:remote.org");
    h.open(&r, "remote.org", HOUR);
    h.m.handle_server_joined(h.t(), &r);
    let del = only_send(h.drain());
    assert_eq!(del.kind, OutboundRequestKind::Unpeek);
    h.respond(&del, OutboundOutcome::Deleted);
    assert_eq!(h.m.state(&r), None);
    no_sends(&h.demand(&r, &["remote.org"]));
    no_sends(&h.advance(Duration::from_secs(3600 * 10)));
    assert_eq!(h.m.len(), 0);
    assert!(h.m.is_joined(&r));
    // The marker survives a restart.
    h.restore();
    no_sends(&h.demand(&r, &["remote.org"]));
    h.m.handle_server_left(h.t(), &r);
    h.drain();
    let put = only_send(h.demand(&r, &["remote.org"]));
    assert!(matches!(put.kind, OutboundRequestKind::Peek { .. }));
}

#[test]
fn joining_while_the_put_is_in_flight_deletes_once_granted() {
    // R56
    let mut h = H::new();
    let r = room("!r:remote.org");
    let put = only_send(h.demand(&r, &["remote.org"]));
    h.m.handle_server_joined(h.t(), &r);
    no_sends(&h.drain());
    let out = h.respond(&put, established(HOUR));
    assert!(!out.iter().any(|o| matches!(o, OutboundOutput::Established { .. })));
    let del = only_send(out);
    assert_eq!((del.kind, del.peek_id), (OutboundRequestKind::Unpeek, put.peek_id));
}

#[test]
fn v12_room_id_uses_via_and_never_a_domain() {
    // R46, B-13
    let mut h = H::new();
    let v12 = room(&format!("!{}", "a".repeat(43)));
    assert!(v12.server_name().is_none());
    let out = h.demand(&v12, &[]);
    assert_eq!(
        out,
        vec![OutboundOutput::Unavailable {
            room_id: v12.clone(),
            error: OutboundPeekError::NoCandidates
        }]
    );
    assert_eq!(h.m.len(), 0);
    let put = only_send(h.demand(&v12, &["b.org", "b.org", "c.org"]));
    assert_eq!(put.server, server("b.org"));
    let next = only_send(h.respond(&put, failed(OutboundFailure::NotFound)));
    assert_eq!(next.server, server("c.org"));
}

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
fn refusal_fails_over_and_all_refusing_is_unavailable_with_the_most_specific_error() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org", "c.org"]));
    assert_eq!(put.server, server("a.org"));
    let next = only_send(h.respond(&put, failed(OutboundFailure::NotFound)));
    assert_eq!(next.server, server("b.org"));
    assert_ne!(next.peek_id, put.peek_id);
    let next2 = only_send(h.respond(&next, failed(OutboundFailure::Forbidden)));
    assert_eq!(next2.server, server("c.org"));
    let out = h.respond(&next2, failed(OutboundFailure::IncompatibleRoomVersion));
    assert_eq!(
        out.last(),
        Some(&OutboundOutput::Unavailable {
            room_id: r.clone(),
            error: OutboundPeekError::Remote(OutboundFailure::Forbidden)
        })
    );
    no_sends(&out);
    assert_eq!(h.m.len(), 0);
    assert!(h.store.keys().all(|k| !matches!(k, OutboundKey::Room(_))), "no leftover record");
}

#[test]
fn forbidden_from_the_first_candidate_peeks_the_second() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    let next = only_send(h.respond(&put, failed(OutboundFailure::Forbidden)));
    assert_eq!(next.server, server("b.org"));
    let out = h.respond(&next, established(HOUR));
    assert!(out.contains(&OutboundOutput::Established {
        room_id: r.clone(),
        server: server("b.org"),
        access: access(),
        missed_since: None,
    }));
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("b.org")));
}

#[test]
fn invalid_response_deletes_the_granted_peek_before_failing_over() {
    // R49, R55, R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    let del = only_send(h.respond(&put, failed(OutboundFailure::InvalidResponse)));
    assert_eq!(
        (del.kind.clone(), &del.server, &del.peek_id),
        (OutboundRequestKind::Unpeek, &put.server, &put.peek_id)
    );
    assert_eq!(h.m.state(&r), Some(OutboundState::Deleting));
    let next = only_send(h.respond(&del, failed(OutboundFailure::NotFound)));
    assert_eq!(next.server, server("b.org"));
    // An Established of an unsupported version counts as incompatible and is deleted too.
    let cfg = OutboundConfig {
        supported_versions: vec![RoomVersionId::V10],
        ..OutboundConfig::default()
    };
    let mut h = H::with(cfg);
    let put = only_send(h.demand(&r, &["a.org"]));
    let out = h.respond(&put, established(HOUR));
    assert!(out.contains(&OutboundOutput::Unavailable {
        room_id: r.clone(),
        error: OutboundPeekError::Remote(OutboundFailure::IncompatibleRoomVersion)
    }));
    assert_eq!(only_send(out).kind, OutboundRequestKind::Unpeek);
}

fn backoff_gaps(room_id: &RoomId, n: usize) -> Vec<u64> {
    let cfg = OutboundConfig {
        max_attempts: 100,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        ..OutboundConfig::default()
    };
    let mut h = H::with(cfg);
    let mut req = only_send(h.demand(room_id, &["a.org"]));
    let mut gaps = Vec::new();
    for _ in 0..n {
        let failed_at = h.now;
        no_sends(&h.respond(&req, failed(OutboundFailure::Unreachable)));
        assert_eq!(h.m.state(room_id), Some(OutboundState::Backoff));
        req = only_send(h.fire());
        gaps.push(h.now - failed_at);
    }
    gaps
}

#[test]
fn backoff_doubles_caps_and_its_jitter_is_reproducible() {
    // R60
    let r = room("!backoff:a.org");
    let gaps = backoff_gaps(&r, 9);
    for (i, gap) in gaps.iter().enumerate() {
        let full = (1000u64 << i).min(60_000);
        assert!(*gap <= full && *gap >= full - full / 10, "attempt {i}: {gap} vs {full}");
    }
    assert_eq!(gaps, backoff_gaps(&r, 9), "same room, same delays");
    assert_ne!(gaps, backoff_gaps(&room("!other:a.org"), 9), "jitter depends on the room");
}

#[test]
fn rate_limited_retry_after_is_honoured() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org"]));
    let t0 = h.now;
    let hint = Some(Duration::from_secs(30));
    no_sends(&h.respond(&put, failed(OutboundFailure::RateLimited { retry_after: hint })));
    assert_eq!(h.m.poll_timeout(), Some(Timestamp::from_millis(t0 + 30_000)));
    no_sends(&h.advance(Duration::from_millis(29_999)));
    assert!(matches!(
        only_send(h.advance(Duration::from_millis(1))).kind,
        OutboundRequestKind::Peek { .. }
    ));
}

#[test]
fn never_established_gives_up_after_max_attempts() {
    // R60, R27
    let cfg = OutboundConfig { max_attempts: 3, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    let mut req = only_send(h.demand(&r, &["a.org", "b.org"]));
    let mut out = Vec::new();
    for i in 0..3 {
        out = h.respond(
            &req,
            failed(if i == 1 { OutboundFailure::Other(500) } else { OutboundFailure::Unreachable }),
        );
        if i < 2 {
            req = only_send(h.fire());
        }
    }
    assert_eq!(
        out.last(),
        Some(&OutboundOutput::Unavailable {
            room_id: r.clone(),
            error: OutboundPeekError::Remote(OutboundFailure::Unreachable)
        })
    );
    assert_eq!(h.m.len(), 0);
}

#[test]
fn established_peek_lost_to_network_trouble_is_retried_reporting_lost_once() {
    // DESIGN §6 giving up; R53
    let cfg = OutboundConfig { max_attempts: 2, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    h.open(&r, "a.org", Duration::from_secs(600)); // renew after 300 s, lapses at 600 s
    let mut lost = 0;
    let mut est = 0;
    let mut req = only_send(h.fire());
    for _ in 0..30 {
        // A lapsed peek is deleted first (R55, R58); the answer to its last failed DELETE may
        // send the next PUT at once.
        let mut out = h.respond(&req, failed(OutboundFailure::Unreachable));
        if !out.iter().any(|o| matches!(o, OutboundOutput::Send(_))) {
            lost += out.iter().filter(|o| matches!(o, OutboundOutput::Lost { .. })).count();
            out = h.fire();
        }
        while !out.iter().any(|o| matches!(o, OutboundOutput::Send(_))) {
            lost += out.iter().filter(|o| matches!(o, OutboundOutput::Lost { .. })).count();
            out = h.fire();
        }
        lost += out.iter().filter(|o| matches!(o, OutboundOutput::Lost { .. })).count();
        req = only_send(out);
    }
    assert_eq!(lost, 1, "Lost reported once");
    assert!(h.m.state(&r).is_some(), "still trying, far past max_attempts");
    assert!(matches!(req.kind, OutboundRequestKind::Peek { .. }));
    let out = h.respond(&req, established(HOUR));
    est += out.iter().filter(|o| matches!(o, OutboundOutput::Established { .. })).count();
    assert_eq!(est, 1);
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}

#[test]
fn linger_then_exactly_one_unpeek_and_returning_demand_cancels_it() {
    // R55
    let mut h = H::new();
    let r = room("!r:a.org");
    let linger = h.config.linger;
    let put = h.open(&r, "a.org", HOUR);
    h.m.handle_no_demand(h.t(), &r);
    no_sends(&h.drain());
    assert_eq!(h.m.state(&r), Some(OutboundState::Lingering));
    no_sends(&h.advance(linger / 2));
    no_sends(&h.demand(&r, &["a.org"]));
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    no_sends(&h.advance(linger));
    // Now really go away.
    h.m.handle_no_demand(h.t(), &r);
    h.drain();
    no_sends(&h.advance(linger - Duration::from_millis(1)));
    let del = only_send(h.advance(Duration::from_millis(1)));
    assert_eq!((del.kind.clone(), del.peek_id.clone()), (OutboundRequestKind::Unpeek, put.peek_id));
    no_sends(&h.advance(HOUR * 5));
    h.respond(&del, failed(OutboundFailure::NotFound)); // 404 counts as done
    assert_eq!(h.m.len(), 0);
    assert!(h.store.keys().all(|k| !matches!(k, OutboundKey::Room(_))));
    no_sends(&h.advance(HOUR * 5));
}

#[test]
fn unreachable_unpeek_is_retried_a_bounded_number_of_times() {
    // R55
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    h.m.handle_server_joined(h.t(), &r);
    let mut del = only_send(h.drain());
    let mut tries = 1;
    loop {
        let out = h.respond(&del, failed(OutboundFailure::Unreachable));
        no_sends(&out);
        if h.m.state(&r).is_none() {
            break;
        }
        del = only_send(h.fire());
        assert_eq!(del.kind, OutboundRequestKind::Unpeek);
        tries += 1;
    }
    assert_eq!(tries, h.config.max_delete_attempts);
    assert_eq!(h.m.poll_timeout(), None);
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
        room_id: r.clone(),
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
    // The current id re-opens with yet another fresh id.
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put2.peek_id);
    let put3 = only_send(h.drain());
    assert!(![&put.peek_id, &put2.peek_id].contains(&&put3.peek_id));
    // The wrong server naming the current id is ignored too (B-9).
    h.respond(&put3, established(HOUR));
    h.m.handle_remote_expired(h.t(), &server("b.org"), &r, &put3.peek_id);
    assert!(h.drain().is_empty());
}

#[test]
fn a_peek_through_a_never_makes_a_demand_via_b_look_established() {
    // B-9
    let mut h = H::new();
    let r = room("!r:a.org");
    let other = room("!other:b.org");
    h.open(&r, "a.org", HOUR);
    let put_b = only_send(h.demand(&other, &["b.org"]));
    assert_eq!(h.m.established(&other), None);
    no_sends(&h.demand(&r, &["b.org"])); // merges b.org as a candidate, no second peek
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("a.org")));
    // A loses the peek; until B grants one, nothing is established.
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, "nope");
    assert!(h.drain().is_empty());
    let renew = only_send(h.fire());
    let reopen = only_send(h.respond(&renew, failed(OutboundFailure::Forbidden)));
    assert_eq!(reopen.server, server("b.org"));
    assert_eq!(h.m.established(&r), None);
    h.respond(&reopen, established(HOUR));
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("b.org")));
    h.respond(&put_b, failed(OutboundFailure::Forbidden));
    assert_eq!(h.m.established(&other), None);
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
fn access_lost_deletes_at_once_without_linger() {
    // R40, R24
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let closed = RoomAccess::new(RoomVersionId::V11, false, false);
    h.m.handle_access_changed(h.t(), &r, &closed);
    let out = h.drain();
    let lost = OutboundOutput::Lost { room_id: r.clone(), reason: OutboundLostReason::AccessLost };
    let lost_at = out.iter().position(|o| *o == lost).expect("Lost reported");
    let persisted_at = out
        .iter()
        .position(|o| matches!(o, OutboundOutput::Persist(_)))
        .expect("the room's change is persisted");
    assert!(persisted_at < lost_at, "Persist precedes the notification it justifies: {out:?}");
    let del = only_send(out);
    assert_eq!((del.kind, del.peek_id), (OutboundRequestKind::Unpeek, put.peek_id));
    // Waiting clients (no peek yet) get Unavailable instead.
    let r2 = room("!r2:a.org");
    let put = only_send(h.demand(&r2, &["a.org"]));
    h.m.handle_access_changed(h.t(), &r2, &closed);
    assert_eq!(
        h.drain(),
        vec![OutboundOutput::Unavailable {
            room_id: r2.clone(),
            error: OutboundPeekError::Remote(OutboundFailure::Forbidden)
        }]
    );
    let del = only_send(h.respond(&put, established(HOUR)));
    assert_eq!(del.kind, OutboundRequestKind::Unpeek);
}

#[test]
fn unknown_stale_and_duplicate_responses_are_ignored() {
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    for outcome in [
        established(HOUR),
        OutboundOutcome::Deleted,
        failed(OutboundFailure::Forbidden),
        OutboundOutcome::Renewed { renewal_interval: Some(Duration::ZERO) },
    ] {
        h.m.handle_response(h.t(), put.id, outcome.clone());
        h.m.handle_response(h.t(), matrix_peek::RequestId(u64::MAX), outcome);
    }
    assert!(h.drain().is_empty());
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}

#[test]
fn max_rooms_is_enforced() {
    let cfg = OutboundConfig { max_rooms: 2, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    h.demand(&room("!a:x.org"), &["x.org"]);
    h.demand(&room("!b:x.org"), &["x.org"]);
    let r = room("!c:x.org");
    assert_eq!(
        h.demand(&r, &["x.org"]),
        vec![OutboundOutput::Unavailable { room_id: r, error: OutboundPeekError::LimitExceeded }]
    );
}

#[test]
fn backwards_clock_never_renews_early() {
    // DESIGN §3
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    let due = h.m.poll_timeout().unwrap();
    h.m.handle_timeout(Timestamp::from_millis(1));
    h.m.handle_no_demand(Timestamp::from_millis(2), &r);
    h.m.handle_demand(Timestamp::from_millis(3), &r, &[]);
    no_sends(&h.drain());
    assert_eq!(h.m.poll_timeout(), Some(due));
}
