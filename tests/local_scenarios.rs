//! Scenario tests of `LocalPeeks` (MSC2753), each naming the requirement it checks.

mod local_support;

use std::time::Duration;

use local_support::*;
use matrix_peek::{
    LocalConfig, LocalEndReason, LocalOutput, LocalPeekError, LocalPeeks, RoomAccess,
    StreamPosition,
};
use ruma_common::{OwnedRoomId, OwnedUserId, RoomVersionId};

fn drain(m: &mut LocalPeeks) -> Vec<LocalOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}
fn wakes(out: &[LocalOutput]) -> usize {
    out.iter().filter(|o| matches!(o, LocalOutput::Wake { .. })).count()
}
fn demands(out: &[LocalOutput]) -> Vec<(OwnedRoomId, bool)> {
    out.iter()
        .filter_map(|o| match o {
            LocalOutput::RoomDemand { room_id, demanded } => Some((room_id.clone(), *demanded)),
            _ => None,
        })
        .collect()
}
fn ended(out: &[LocalOutput]) -> Vec<LocalEndReason> {
    out.iter()
        .filter_map(|o| match o {
            LocalOutput::PeekEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

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
    // R5 before R6/R7/R8 (DESIGN §4.1 order)
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
fn lease_expires_exactly_at_expires_at_and_reports_ended() {
    // R11, R21
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    let grant = m.handle_peek(t(100), &u, &d, &r, false, &open()).unwrap();
    let s1 = m.sync_delta(&u, &d, None);
    drain(&mut m);
    m.handle_timeout(t(grant.expires_at.as_millis() - 1));
    assert!(m.is_peeking(&u, &d, &r), "not 1 ms early");
    assert!(drain(&mut m).is_empty());
    m.handle_timeout(grant.expires_at);
    assert!(!m.is_peeking(&u, &d, &r));
    let out = drain(&mut m);
    assert!(matches!(out[0], LocalOutput::Persist(_)));
    assert_eq!(
        out[1],
        LocalOutput::PeekEnded {
            user_id: u.clone(),
            device_id: d.clone(),
            room_id: r.clone(),
            reason: LocalEndReason::Expired
        }
    );
    assert_eq!(wakes(&out), 1);
    assert_eq!(demands(&out), vec![(r.clone(), false)]);
    let s2 = m.sync_delta(&u, &d, Some(s1.next));
    assert_eq!(s2.ended, vec![r.clone()]);
    assert!(s2.peeking.is_empty() && s2.started.is_empty());
    // Reported once: the next sync has nothing.
    let s3 = m.sync_delta(&u, &d, Some(s2.next));
    assert!(s3.ended.is_empty());
    // Another device never sees it.
    assert!(m.sync_delta(&u, &dev("B"), Some(s1.next)).ended.is_empty());
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

#[test]
fn peek_unpeek_peek_across_syncs_starts_again_and_a_window_start_end_is_omitted() {
    // R15, R21
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    let s0 = m.sync_delta(&u, &d, None);
    m.handle_peek(t(0), &u, &d, &r, false, &open()).unwrap();
    let s1 = m.sync_delta(&u, &d, Some(s0.next));
    assert_eq!(s1.started, vec![r.clone()]);
    m.handle_unpeek(t(10), &u, &d, &r).unwrap();
    let s2 = m.sync_delta(&u, &d, Some(s1.next));
    assert_eq!(s2.ended, vec![r.clone()]);
    m.handle_peek(t(20), &u, &d, &r, false, &open()).unwrap();
    let s3 = m.sync_delta(&u, &d, Some(s2.next));
    assert_eq!(s3.started, vec![r.clone()], "a re-peek after an unpeek gets full state again");
    assert!(s3.ended.is_empty());
    // Start and end between two syncs: not reported at all.
    let r2 = room(2);
    m.handle_peek(t(30), &u, &d, &r2, false, &open()).unwrap();
    m.handle_unpeek(t(40), &u, &d, &r2).unwrap();
    let s4 = m.sync_delta(&u, &d, Some(s3.next));
    assert!(!s4.started.contains(&r2) && !s4.ended.contains(&r2) && !s4.peeking.contains(&r2));
    assert_eq!(s4.peeking, vec![r.clone()]);
    // Unpeek then re-peek between two syncs: still peeking, with full state.
    m.handle_unpeek(t(50), &u, &d, &r).unwrap();
    m.handle_peek(t(60), &u, &d, &r, false, &open()).unwrap();
    let s5 = m.sync_delta(&u, &d, Some(s4.next));
    assert_eq!(s5.started, vec![r.clone()]);
    assert!(s5.ended.is_empty());
}

#[test]
fn later_syncs_list_known_peeks_as_peeking_only() {
    // R16
    let mut m = LocalPeeks::new(config());
    let (u, d) = (user(1), dev("A"));
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    let s1 = m.sync_delta(&u, &d, None);
    m.handle_peek(t(1), &u, &d, &room(2), false, &open()).unwrap();
    let s2 = m.sync_delta(&u, &d, Some(s1.next));
    assert_eq!(s2.started, vec![room(2)]);
    assert_eq!(s2.peeking, vec![room(1)]);
    let s3 = m.sync_delta(&u, &d, Some(s2.next));
    assert!(s3.started.is_empty());
    assert_eq!(s3.peeking, vec![room(1), room(2)]);
}

#[test]
fn initial_sync_lists_all_live_peeks_and_cancels_nothing() {
    // R22
    let mut m = LocalPeeks::new(config());
    let (u, d) = (user(1), dev("A"));
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &d, &room(2), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &d, &room(3), false, &open()).unwrap();
    m.handle_unpeek(t(1), &u, &d, &room(3)).unwrap();
    drain(&mut m);
    let s = m.sync_delta(&u, &d, None);
    assert_eq!(s.started, vec![room(1), room(2)]);
    assert!(s.ended.is_empty() && s.joined.is_empty() && s.peeking.is_empty());
    let again = m.sync_delta(&u, &d, None);
    assert_eq!(again, s);
    assert!(m.is_peeking(&u, &d, &room(1)) && m.is_peeking(&u, &d, &room(2)));
    assert!(drain(&mut m).is_empty());
}

#[test]
fn join_moves_every_peeking_device_to_join_without_full_state() {
    // R19, R20, R23
    let mut m = LocalPeeks::new(config());
    let (u, a, b, r) = (user(1), dev("A"), dev("B"), room(1));
    let other = user(2);
    m.handle_peek(t(0), &u, &a, &r, false, &open()).unwrap();
    m.handle_peek(t(0), &u, &b, &r, false, &open()).unwrap();
    m.handle_peek(t(0), &other, &a, &r, false, &open()).unwrap();
    let sa = m.sync_delta(&u, &a, None);
    let sb = m.sync_delta(&u, &b, None);
    drain(&mut m);
    m.handle_joined(t(5), &u, &r);
    let out = drain(&mut m);
    assert_eq!(ended(&out), vec![LocalEndReason::Joined, LocalEndReason::Joined]);
    assert_eq!(wakes(&out), 2);
    assert!(demands(&out).is_empty(), "the other user still peeks");
    assert!(!m.is_peeking(&u, &a, &r) && !m.is_peeking(&u, &b, &r));
    assert!(m.is_peeking(&other, &a, &r));
    for (d, since) in [(&a, sa.next), (&b, sb.next)] {
        let s = m.sync_delta(&u, d, Some(since));
        assert_eq!(s.joined, vec![r.clone()]);
        assert!(s.started.is_empty() && s.peeking.is_empty() && s.ended.is_empty(), "R23: {s:?}");
    }
    // A later leave never brings `peek` back: nothing re-creates the peek.
    let s = m.sync_delta(&u, &a, Some(m.stream_position()));
    assert!(s.started.is_empty() && s.peeking.is_empty() && s.joined.is_empty());
    assert!(m.peekers(&r).all(|(pu, _)| pu == &*other));
}

#[test]
fn joining_the_last_peekers_room_drops_demand() {
    // R19, DESIGN §4.4
    let mut m = LocalPeeks::new(config());
    let (u, a, r) = (user(1), dev("A"), room(1));
    m.handle_peek(t(0), &u, &a, &r, false, &open()).unwrap();
    drain(&mut m);
    m.handle_joined(t(1), &u, &r);
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    assert!(!m.is_demanded(&r));
    // Joining again, or a join of an unknown room, is a no-op.
    m.handle_joined(t(2), &u, &r);
    m.handle_joined(t(2), &u, &room(9));
    assert!(drain(&mut m).is_empty());
}

#[test]
fn losing_access_ends_every_peek_on_the_room() {
    // R24
    let mut m = LocalPeeks::new(config());
    let r = room(1);
    m.handle_peek(t(0), &user(1), &dev("A"), &r, false, &open()).unwrap();
    m.handle_peek(t(0), &user(2), &dev("B"), &r, false, &open()).unwrap();
    m.handle_peek(t(0), &user(2), &dev("B"), &room(2), false, &open()).unwrap();
    let s = m.sync_delta(&user(1), &dev("A"), None);
    drain(&mut m);
    m.handle_access_changed(t(1), &r, &open());
    assert!(drain(&mut m).is_empty(), "still peekable: nothing");
    m.handle_access_changed(t(2), &r, &RoomAccess::new(RoomVersionId::V11, true, true));
    let out = drain(&mut m);
    assert_eq!(ended(&out), vec![LocalEndReason::AccessLost; 2]);
    assert_eq!(wakes(&out), 2);
    assert_eq!(demands(&out), vec![(r.clone(), false)]);
    assert_eq!(m.peekers(&r).count(), 0);
    assert_eq!(m.sync_delta(&user(1), &dev("A"), Some(s.next)).ended, vec![r.clone()]);
    assert!(m.is_peeking(&user(2), &dev("B"), &room(2)));
}

#[test]
fn remote_unavailable_ends_every_peek_on_the_room() {
    // R27
    let mut m = LocalPeeks::new(config());
    let r = room(1);
    m.handle_peek(t(0), &user(1), &dev("A"), &r, false, &open()).unwrap();
    let s = m.sync_delta(&user(1), &dev("A"), None);
    drain(&mut m);
    m.handle_room_unavailable(t(1), &r);
    let out = drain(&mut m);
    assert_eq!(ended(&out), vec![LocalEndReason::RemoteUnavailable]);
    assert_eq!(wakes(&out), 1);
    assert_eq!(demands(&out), vec![(r.clone(), false)]);
    assert_eq!(m.sync_delta(&user(1), &dev("A"), Some(s.next)).ended, vec![r]);
}

#[test]
fn removed_devices_and_deactivated_users_drop_peeks_silently() {
    // R25
    let mut m = LocalPeeks::new(config());
    let (u, a, b) = (user(1), dev("A"), dev("B"));
    m.handle_peek(t(0), &u, &a, &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &a, &room(2), false, &open()).unwrap();
    m.handle_unpeek(t(1), &u, &a, &room(2)).unwrap();
    m.handle_peek(t(0), &u, &b, &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &user(2), &a, &room(3), false, &open()).unwrap();
    drain(&mut m);
    m.handle_device_removed(t(2), &u, &a);
    let out = drain(&mut m);
    assert_eq!(wakes(&out), 0, "{out:?}");
    assert_eq!(ended(&out), vec![LocalEndReason::DeviceRemoved]);
    assert!(demands(&out).is_empty(), "device B still peeks room 1");
    let s = m.sync_delta(&u, &a, Some(StreamPosition(0)));
    assert!(s.ended.is_empty() && s.started.is_empty() && s.peeking.is_empty());
    m.handle_user_deactivated(t(3), &u);
    let out = drain(&mut m);
    assert_eq!(wakes(&out), 0);
    assert_eq!(ended(&out), vec![LocalEndReason::UserDeactivated]);
    assert_eq!(demands(&out), vec![(room(1), false)]);
    assert_eq!(m.len(), 1);
    assert!(m.is_peeking(&user(2), &a, &room(3)));
    assert_eq!(
        m.poll_timeout(),
        Some(t(1_001)),
        "only user 2's lease is left (peeked at the clamped t=1)"
    );
}

#[test]
fn wake_on_every_start_end_and_join_not_on_renew() {
    let mut m = LocalPeeks::new(config());
    let (u, d) = (user(1), dev("A"));
    let wake = LocalOutput::Wake { user_id: u.clone(), device_id: d.clone() };
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    assert_eq!(drain(&mut m).iter().filter(|o| **o == wake).count(), 1);
    m.handle_peek(t(1), &u, &d, &room(1), false, &open()).unwrap();
    assert_eq!(wakes(&drain(&mut m)), 0);
    m.handle_unpeek(t(2), &u, &d, &room(1)).unwrap();
    assert_eq!(drain(&mut m).iter().filter(|o| **o == wake).count(), 1);
    m.handle_peek(t(3), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_peek(t(3), &u, &d, &room(2), false, &open()).unwrap();
    m.handle_peek(t(3), &u, &d, &room(3), false, &open()).unwrap();
    drain(&mut m);
    m.handle_joined(t(4), &u, &room(1));
    assert_eq!(wakes(&drain(&mut m)), 1);
    m.handle_access_changed(t(5), &room(2), &RoomAccess::new(RoomVersionId::V11, false, false));
    assert_eq!(wakes(&drain(&mut m)), 1);
    m.handle_timeout(t(1_003));
    assert_eq!(wakes(&drain(&mut m)), 1);
}

#[test]
fn room_demand_follows_the_first_and_last_live_peeker() {
    // DESIGN §4.4
    let mut m = LocalPeeks::new(config());
    let r = room(1);
    m.handle_peek(t(0), &user(1), &dev("A"), &r, false, &open()).unwrap();
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), true)]);
    m.handle_peek(t(0), &user(2), &dev("A"), &r, false, &open()).unwrap();
    assert!(demands(&drain(&mut m)).is_empty());
    assert!(m.is_demanded(&r));
    assert_eq!(m.demanded_rooms().collect::<Vec<_>>(), vec![&*r]);
    m.handle_unpeek(t(1), &user(1), &dev("A"), &r).unwrap();
    assert!(demands(&drain(&mut m)).is_empty());
    m.handle_unpeek(t(2), &user(2), &dev("A"), &r).unwrap(); // unpeek
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    assert!(!m.is_demanded(&r));
    assert_eq!(m.demanded_rooms().count(), 0);
    m.handle_peek(t(3), &user(1), &dev("A"), &r, false, &open()).unwrap();
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), true)]);
    m.handle_timeout(t(1_003)); // expiry
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    m.handle_peek(t(1_004), &user(1), &dev("A"), &r, false, &open()).unwrap();
    drain(&mut m);
    m.handle_device_removed(t(1_005), &user(1), &dev("A")); // removal
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
}

#[test]
fn idle_devices_lose_demand_and_regain_it_when_they_sync() {
    // DESIGN §4.4: idleness ends demand, not the peek
    let cfg = LocalConfig {
        lease: Duration::from_secs(3_600),
        device_idle_after: Some(Duration::from_secs(60)),
        ..LocalConfig::default()
    };
    let mut m = LocalPeeks::new(cfg);
    let (u, d, r) = (user(1), dev("A"), room(1));
    m.handle_peek(t(0), &u, &d, &r, false, &open()).unwrap();
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(t(60_000)), "the idle deadline comes first");
    m.handle_device_synced(t(30_000), &u, &d);
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), Some(t(90_000)));
    m.handle_timeout(t(89_999));
    assert!(m.is_demanded(&r));
    m.handle_timeout(t(90_000));
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    assert!(m.is_peeking(&u, &d, &r), "idleness does not end the peek");
    assert!(!m.is_demanded(&r));
    assert_eq!(m.poll_timeout(), Some(t(3_600_000)));
    m.handle_device_synced(t(100_000), &u, &d);
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), true)]);
    assert_eq!(m.poll_timeout(), Some(t(160_000)));
    // A renewal is activity too.
    m.handle_timeout(t(160_000));
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    m.handle_peek(t(170_000), &u, &d, &r, false, &open()).unwrap();
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), true)]);
    // A second idle device does not re-announce demand while another is live.
    m.handle_peek(t(170_000), &user(2), &d, &r, false, &open()).unwrap();
    m.handle_device_synced(t(200_000), &user(2), &d);
    drain(&mut m);
    m.handle_timeout(t(230_000)); // user 1 idle, user 2 still live
    assert!(demands(&drain(&mut m)).is_empty());
    m.handle_timeout(t(260_000));
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    // Unknown devices syncing are ignored.
    m.handle_device_synced(t(260_001), &user(9), &d);
    assert!(drain(&mut m).is_empty());
}

#[test]
fn ended_entries_are_collected_after_retention_and_old_since_acts_like_initial_sync() {
    // DESIGN §4.3 retention horizon
    let cfg = LocalConfig { ended_retention: Duration::from_millis(500), ..config() };
    let mut m = LocalPeeks::new(cfg);
    let (u, d) = (user(1), dev("A"));
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &d, &room(2), false, &open()).unwrap();
    let s1 = m.sync_delta(&u, &d, None);
    m.handle_unpeek(t(100), &u, &d, &room(1)).unwrap();
    assert_eq!(m.poll_timeout(), Some(t(600)));
    m.handle_timeout(t(599));
    assert_eq!(m.sync_delta(&u, &d, Some(s1.next)).ended, vec![room(1)]);
    m.handle_timeout(t(600));
    let late = m.sync_delta(&u, &d, Some(s1.next));
    assert_eq!(late, m.sync_delta(&u, &d, None), "older than the horizon: like an initial sync");
    assert_eq!(late.started, vec![room(2)]);
    let s2 = m.sync_delta(&u, &d, Some(late.next));
    assert_eq!(s2.peeking, vec![room(2)]);
}

#[test]
fn retained_entries_are_bounded_by_the_caps() {
    // caps bound everything (DESIGN §4.5)
    let cfg = LocalConfig { max_peeks_per_device: 2, max_peeks_total: 3, ..config() };
    let mut m = LocalPeeks::new(cfg);
    let (u, d) = (user(1), dev("A"));
    for i in 0..10 {
        m.handle_peek(t(i), &u, &d, &room(i as u32), false, &open()).unwrap();
        m.handle_unpeek(t(i), &u, &d, &room(i as u32)).unwrap();
    }
    let s = m.sync_delta(&u, &d, Some(StreamPosition(0)));
    assert!(s.ended.len() <= 2, "{s:?}");
    for i in 0..10 {
        m.handle_peek(t(20), &user(2), &dev(&format!("D{i}")), &room(i), false, &open()).ok();
        m.handle_unpeek(t(20), &user(2), &dev(&format!("D{i}")), &room(i)).ok();
    }
    assert!(m.poll_timeout().is_some());
    let retained: usize = (0..10)
        .map(|i| {
            m.sync_delta(&user(2), &dev(&format!("D{i}")), Some(StreamPosition(0))).ended.len()
        })
        .sum::<usize>()
        + m.sync_delta(&u, &d, Some(StreamPosition(0))).ended.len();
    assert!(retained <= 3);
}

#[test]
fn fan_out_lists_exactly_the_live_peekers() {
    // R14, R16 fan-out
    let mut m = LocalPeeks::new(config());
    let r = room(1);
    for i in 0..50 {
        m.handle_peek(t(0), &user(i), &dev("A"), &r, false, &open()).unwrap();
    }
    for i in (0..50).step_by(3) {
        m.handle_unpeek(t(1), &user(i), &dev("A"), &r).unwrap();
    }
    let mut got: Vec<OwnedUserId> = m.peekers(&r).map(|(u, _)| u.to_owned()).collect();
    got.sort();
    let mut want: Vec<OwnedUserId> = (0..50).filter(|i| i % 3 != 0).map(user).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(m.peekers(&room(2)).count(), 0);
}
