//! Unit tests of the indexes behind `InboundPeeks`.

use std::mem::size_of;

use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

use super::index::{Interner, NIL, Peeks, RoomServer, Slot};
use super::*;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

#[test]
fn per_peek_structures_stay_small() {
    // docs/architecture.md §12: ≤ 200 bytes per peek above the id strings. Slot + a 4-byte index entry +
    // two timer entries; rooms and servers are interned, not stored per peek.
    assert_eq!(size_of::<Option<Slot>>(), 56);
}

#[test]
fn interner_reuses_freed_indices_and_forgets_names() {
    let mut i: Interner<OwnedServerName, ()> = Interner::default();
    let a: OwnedServerName = "a.org".try_into().unwrap();
    let b: OwnedServerName = "b.org".try_into().unwrap();
    let ia = i.intern(&*a);
    assert_eq!(i.intern(&*a), ia);
    i.get_mut(ia).live = 1;
    i.release_if_unused(ia);
    assert_eq!(i.find(&*a), Some(ia));
    i.get_mut(ia).live = 0;
    i.release_if_unused(ia);
    assert_eq!(i.find(&*a), None);
    assert_eq!(i.intern(&*b), ia);
    assert_eq!(i.len(), 1);
}

#[test]
fn pair_lists_and_room_server_lists_stay_consistent() {
    let mut p = Peeks::default();
    let mut servers_of_room = Vec::new();
    let h = |p: &Peeks, s: &str, id: &str| p.hash(s, "!r", id);
    let s1 = p.insert(h(&p, "1", "x"), 1, 0, "x", t(0), &mut servers_of_room);
    let s2 = p.insert(h(&p, "2", "x"), 2, 0, "x", t(0), &mut servers_of_room);
    let s3 = p.insert(h(&p, "1", "y"), 1, 0, "y", t(0), &mut servers_of_room);
    let rs = |server, head| RoomServer { server, head };
    assert_eq!(servers_of_room, [rs(1, s3), rs(2, s2)]);
    assert_eq!(p.pair_slots(s3), [s3, s1]);
    let key = |server: u32, id: &'static str| move |s: &Slot| s.server == server && &*s.id == id;
    assert_eq!(p.find(h(&p, "1", "y"), key(1, "y")), Some(s3));
    assert_eq!(p.find(h(&p, "2", "y"), key(2, "y")), None);
    p.remove(s3, &mut servers_of_room);
    assert_eq!(servers_of_room, [rs(1, s1), rs(2, s2)]);
    assert_eq!(p.pair_slots(s1), [s1]);
    assert_eq!(p.slot(s1).next, NIL);
    p.remove(s1, &mut servers_of_room);
    assert_eq!(servers_of_room, [rs(2, s2)]);
    // Server 2 moved to position 0; removing it must find it there.
    p.remove(s2, &mut servers_of_room);
    assert!(servers_of_room.is_empty());
    assert_eq!(p.len(), 0);
}

#[test]
fn rooms_and_servers_are_released_with_their_last_peek() {
    let mut m = InboundPeeks::new(InboundConfig::default());
    let s: OwnedServerName = "a.org".try_into().unwrap();
    let r: OwnedRoomId = "!r:x.org".try_into().unwrap();
    let open = RoomAccess::new(RoomVersionId::V10, true, false);
    m.handle_peek(t(1), &s, &r, "p", &[RoomVersionId::V10], Some(&open)).unwrap();
    assert_eq!((m.servers.len(), m.rooms.len()), (1, 1));
    m.handle_unpeek(t(2), &s, &r, "p").unwrap();
    assert_eq!((m.servers.len(), m.rooms.len()), (0, 0));
    assert!(m.timers.is_empty());
}
