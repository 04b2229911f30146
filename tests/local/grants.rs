//! How a client peek is granted or refused (MSC2753): the grant's outputs, renewal (R5), the
//! order of the checks (R6, R7, R8, R3), the caps (R3), per-device scoping (R10) and unpeek
//! errors (R13).

use std::time::Duration;

use matrix_peek::{LocalConfig, LocalOutput, LocalPeekError, LocalPeeks, RoomAccess};
use ruma_common::RoomVersionId;

use crate::support::*;

#[test]
fn first_peek_persists_then_wakes_then_demands() {
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    let grant = m.handle_peek(t(100), &u, &d, &r, false, &open()).unwrap();
    assert_eq!(grant.room_id, r);
    assert_eq!(grant.expires_at, t(1_100)); // R9: in the future
    let out = drain(&mut m);
    assert!(matches!(out[0], LocalOutput::Persist(_)), "{out:?}");
    assert_eq!(out[1], LocalOutput::Wake { user_id: u.clone(), device_id: d.clone() });
    assert_eq!(out[2], LocalOutput::RoomDemand { room_id: r.clone(), demanded: true });
    assert_eq!(out.len(), 3);
    assert!(m.is_peeking(&u, &d, &r));
    assert_eq!(m.len(), 1);
    assert_eq!(m.poll_timeout(), Some(t(1_100)));
}

#[test]
fn re_peek_renews_without_new_stream_entry_or_wake() {
    // R5
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    let first = m.handle_peek(t(100), &u, &d, &r, false, &open()).unwrap();
    drain(&mut m);
    let s1 = m.sync_delta(&u, &d, None);
    assert_eq!(s1.started, vec![r.clone()]);
    let second = m.handle_peek(t(600), &u, &d, &r, false, &open()).unwrap();
    assert!(second.expires_at > first.expires_at);
    assert_eq!(second.expires_at, t(1_600));
    assert_eq!(m.lease(&u, &d, &r), Some(t(1_600)));
    let out = drain(&mut m);
    assert_eq!(wakes(&out), 0, "{out:?}");
    assert!(demands(&out).is_empty());
    assert_eq!(out.len(), 1, "only the Persist of the new expiry: {out:?}");
    let s2 = m.sync_delta(&u, &d, Some(s1.next));
    assert!(s2.started.is_empty(), "no full state again");
    assert_eq!(s2.peeking, vec![r.clone()]);
    assert_eq!(s2.next, s1.next, "no new stream entry");
    assert_eq!(m.len(), 1);
    // The old deadline does not fire.
    m.handle_timeout(t(1_100));
    assert!(m.is_peeking(&u, &d, &r));
}

#[test]
fn renew_comes_before_the_joined_and_access_checks() {
    // R5 before R6/R7/R8 (docs/architecture.md §4.1 order)
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    m.handle_peek(t(0), &u, &d, &r, false, &open()).unwrap();
    let closed = RoomAccess::new(RoomVersionId::V11, false, true);
    assert_eq!(m.handle_peek(t(10), &u, &d, &r, true, &closed).unwrap().expires_at, t(1_010));
}

#[test]
fn check_order_joined_then_world_readable_then_encrypted_then_caps() {
    // R6, R7, R8, R3
    let cfg = LocalConfig { max_peeks_per_device: 0, ..config() };
    let mut m = LocalPeeks::new(cfg);
    let (u, d, r) = (user(1), dev("A"), room(1));
    let shared_enc = RoomAccess::new(RoomVersionId::V11, false, true);
    let readable_enc = RoomAccess::new(RoomVersionId::V11, true, true);
    assert_eq!(
        m.handle_peek(t(0), &u, &d, &r, true, &shared_enc),
        Err(LocalPeekError::AlreadyJoined)
    );
    assert_eq!(
        m.handle_peek(t(0), &u, &d, &r, false, &shared_enc),
        Err(LocalPeekError::NotPeekable)
    );
    assert_eq!(
        m.handle_peek(t(0), &u, &d, &r, false, &readable_enc),
        Err(LocalPeekError::Encrypted)
    );
    assert!(matches!(
        m.handle_peek(t(0), &u, &d, &r, false, &open()),
        Err(LocalPeekError::LimitExceeded { .. })
    ));
    assert!(drain(&mut m).is_empty(), "a refusal has no consequence");
    assert_eq!(m.len(), 0);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn per_device_cap_reports_the_earliest_lease_of_that_device() {
    // R3
    let cfg = LocalConfig { max_peeks_per_device: 2, ..config() };
    let mut m = LocalPeeks::new(cfg);
    let (u, d) = (user(1), dev("A"));
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_peek(t(300), &u, &d, &room(2), false, &open()).unwrap();
    let err = m.handle_peek(t(400), &u, &d, &room(3), false, &open()).unwrap_err();
    assert_eq!(err, LocalPeekError::LimitExceeded { retry_after: Duration::from_millis(600) });
    // Another device is not affected (R10).
    m.handle_peek(t(400), &u, &dev("B"), &room(3), false, &open()).unwrap();
    // A renewal at the cap still works (R5 before caps).
    m.handle_peek(t(500), &u, &d, &room(1), false, &open()).unwrap();
}

#[test]
fn total_cap_reports_the_earliest_lease_overall_never_zero() {
    // R3
    let cfg = LocalConfig { max_peeks_total: 2, ..config() };
    let mut m = LocalPeeks::new(cfg);
    m.handle_peek(t(0), &user(1), &dev("A"), &room(1), false, &open()).unwrap();
    m.handle_peek(t(10), &user(2), &dev("A"), &room(1), false, &open()).unwrap();
    let err = m.handle_peek(t(20), &user(3), &dev("A"), &room(1), false, &open()).unwrap_err();
    assert_eq!(err, LocalPeekError::LimitExceeded { retry_after: Duration::from_millis(980) });
    // At the exact expiry instant without a timeout call, retry_after is clamped to 1 ms.
    let err = m.handle_peek(t(1_000), &user(3), &dev("A"), &room(1), false, &open()).unwrap_err();
    assert_eq!(err, LocalPeekError::LimitExceeded { retry_after: Duration::from_millis(1) });
    m.handle_timeout(t(1_000));
    m.handle_peek(t(1_000), &user(3), &dev("A"), &room(1), false, &open()).unwrap();
}

#[test]
fn peeks_are_per_device() {
    // R10, R14
    let mut m = LocalPeeks::new(config());
    let (u, a, b, r) = (user(1), dev("A"), dev("B"), room(1));
    m.handle_peek(t(0), &u, &a, &r, false, &open()).unwrap();
    assert!(m.is_peeking(&u, &a, &r));
    assert!(!m.is_peeking(&u, &b, &r));
    assert_eq!(m.sync_delta(&u, &a, None).started, vec![r.clone()]);
    let sb = m.sync_delta(&u, &b, None);
    assert!(sb.started.is_empty() && sb.peeking.is_empty() && sb.ended.is_empty());
    assert_eq!(m.handle_unpeek(t(1), &u, &b, &r), Err(LocalPeekError::NotPeeking));
    let mut peekers: Vec<_> = m.peekers(&r).map(|(u, d)| (u.to_owned(), d.to_owned())).collect();
    peekers.sort();
    assert_eq!(peekers, vec![(u.clone(), a.clone())]);
}

#[test]
fn unpeek_of_unknown_or_ended_peek_is_not_peeking() {
    // R13
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    assert_eq!(m.handle_unpeek(t(0), &u, &d, &r), Err(LocalPeekError::NotPeeking));
    m.handle_peek(t(0), &u, &d, &r, false, &open()).unwrap();
    assert_eq!(m.handle_unpeek(t(1), &u, &d, &room(2)), Err(LocalPeekError::NotPeeking));
    m.handle_unpeek(t(2), &u, &d, &r).unwrap();
    drain(&mut m);
    assert_eq!(m.handle_unpeek(t(3), &u, &d, &r), Err(LocalPeekError::NotPeeking));
    assert!(drain(&mut m).is_empty());
}
