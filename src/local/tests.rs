//! Unit tests of the internal bookkeeping; scenarios live in `tests/local_*.rs`.

use std::time::Duration;

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId};

use super::state::Entry;
use super::{LocalConfig, LocalPeeks};
use crate::{RoomAccess, Timestamp};

fn user(n: u32) -> OwnedUserId {
    UserId::parse(format!("@u{n}:example.org")).unwrap()
}
fn room(n: u32) -> OwnedRoomId {
    RoomId::parse(format!("!r{n}:example.org")).unwrap()
}
fn open() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V11, true, false)
}

/// Every room's `peekers[slot]` points back at an entry with that slot, and refs/live counts
/// match the entries.
fn check_invariants(m: &LocalPeeks) {
    let mut refs = std::collections::HashMap::new();
    let mut live_total = 0;
    for (d, dev) in m.devices.iter() {
        assert_eq!(m.users[&dev.user][&dev.device], d);
        for (r, e) in &dev.entries {
            *refs.entry(*r).or_insert(0u32) += 1;
            if let Entry::Peeking { slot, .. } = e {
                live_total += 1;
                assert_eq!(m.room(*r).peekers[*slot as usize], d);
            }
        }
    }
    for (r, room) in m.rooms.iter() {
        assert_eq!(room.refs, refs.get(&r).copied().unwrap_or(0), "refs of {}", room.id);
        assert_eq!(m.room_ids[&room.id], r);
    }
    assert_eq!(m.live_total, live_total);
}

#[test]
fn slots_stay_consistent_and_are_freed_once_everything_is_collected() {
    let cfg = LocalConfig {
        lease: Duration::from_millis(100),
        ended_retention: Duration::from_millis(50),
        ..LocalConfig::default()
    };
    let mut m = LocalPeeks::new(cfg);
    let d: OwnedDeviceId = "D".into();
    for i in 0..30 {
        m.handle_peek(
            Timestamp::from_millis(i),
            &user(i as u32 % 4),
            &d,
            &room(i as u32 % 5),
            false,
            &open(),
        )
        .unwrap();
        if i % 3 == 0 {
            m.handle_unpeek(
                Timestamp::from_millis(i),
                &user(i as u32 % 4),
                &d,
                &room(i as u32 % 5),
            )
            .ok();
        }
        check_invariants(&m);
    }
    m.handle_joined(Timestamp::from_millis(40), &user(1), &room(1));
    check_invariants(&m);
    m.handle_timeout(Timestamp::from_millis(1_000)); // every lease ends
    check_invariants(&m);
    assert_eq!(m.len(), 0);
    m.handle_timeout(Timestamp::from_millis(1_050)); // every ended entry is collected
    check_invariants(&m);
    assert!(m.users.is_empty() && m.room_ids.is_empty(), "every slot is released");
    assert_eq!(m.devices.iter().count(), 0);
    assert_eq!(m.poll_timeout(), None);
}
