//! How local peeks end: the lease lapsing (R11, R21), a join (R19, R20, R23), access lost
//! (R24), the remote room unavailable (R27), devices removed and users deactivated (R25).

use matrix_peek::{LocalEndReason, LocalOutput, LocalPeeks, RoomAccess, StreamPosition};
use ruma_common::RoomVersionId;

use crate::support::*;

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
    // R19, docs/architecture.md §4.4
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
        Some(t(1_000)),
        "only user 2's lease is left (one lease after the host's t=0)"
    );
}
