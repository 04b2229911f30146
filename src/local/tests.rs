//! Unit tests of the internal bookkeeping; scenarios live in `tests/local/`.

use std::collections::HashMap;
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

/// Every device's entries are the entry slots naming it, every room's `peekers[slot]` points
/// back at a live entry with that slot, every entry's deadline is where its handle says (and
/// the lists hold nothing else), refs/live/ended counts match the entries, each slot's
/// `queued` counts the queued outputs naming it, and a slot is kept only while an entry or a
/// queued output holds it.
fn check_invariants(m: &LocalPeeks) {
    let mut refs = std::collections::HashMap::new();
    let (mut live_total, mut ended_total) = (0, 0);
    let (mut dev_pins, mut room_pins) = (HashMap::new(), HashMap::new());
    for q in &m.out {
        let (d, r) = q.slots();
        d.into_iter().for_each(|d| *dev_pins.entry(d).or_insert(0u32) += 1);
        r.into_iter().for_each(|r| *room_pins.entry(r).or_insert(0u32) += 1);
    }
    for (d, dev) in m.devices.iter() {
        assert_eq!(dev.queued, dev_pins.get(&d).copied().unwrap_or(0), "pins of {}", dev.device);
        assert!(dev.queued > 0 || !dev.entries.is_empty(), "device slot {d} held by nothing");
        assert_eq!(m.find_device(&dev.user, &dev.device), Some(d));
        assert!(m.names.devices_of(&m.devices, &dev.user).contains(&d));
        let (mut live, mut ended) = (0, 0);
        for (&r, &e) in &dev.entries {
            *refs.entry(r).or_insert(0u32) += 1;
            let slot = m.entry(e);
            assert_eq!((slot.d, slot.r), (d, r), "entry {e} names its device and room");
            match slot.state {
                Entry::Peeking { slot, expires_at, lease, .. } => {
                    live += 1;
                    assert_eq!(m.room(r).peekers[slot as usize], (d, e));
                    assert!(m.leases.holds(lease, e, expires_at), "lease of entry {e}");
                }
                Entry::Ended { position, at, collect, .. } => {
                    ended += 1;
                    let due = at.saturating_add(m.config.ended_retention);
                    assert!(m.collect.holds(collect, (position.0, e), due), "collection of {e}");
                }
            }
        }
        assert_eq!((dev.live_peeks, dev.ended), (live, ended), "counts of {}", dev.device);
        live_total += live as usize;
        ended_total += ended as usize;
    }
    let entries: usize = m.devices.iter().map(|(_, dev)| dev.entries.len()).sum();
    assert_eq!(m.entries.iter().count(), entries, "every entry slot belongs to its device");
    let holding = m.devices.iter().filter(|(_, dev)| !dev.entries.is_empty()).count();
    assert_eq!(m.holding, holding, "devices holding an entry");
    assert_eq!(m.leases.len(), live_total, "one lease per live peek, no other");
    assert_eq!(m.collect.len(), ended_total, "one collection per retained entry, no other");
    let peekers: usize = m.rooms.iter().map(|(_, room)| room.peekers.len()).sum();
    assert_eq!(peekers, live_total, "every room peeker is a live peek");
    for (r, room) in m.rooms.iter() {
        assert_eq!(room.refs, refs.get(&r).copied().unwrap_or(0), "refs of {}", room.id);
        assert_eq!(room.queued, room_pins.get(&r).copied().unwrap_or(0), "pins of {}", room.id);
        assert!(room.queued > 0 || room.refs > 0, "room slot {r} held by nothing");
        assert_eq!(m.find_room(&room.id), Some(r));
    }
    assert_eq!((m.live_total, m.ended_total), (live_total, ended_total));
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
    // The queued outputs still name the devices and rooms: their slots wait for them.
    assert!(!m.names.is_empty(), "slots named by queued outputs are kept");
    while m.poll_output().is_some() {
        check_invariants(&m);
    }
    assert!(m.names.is_empty(), "every slot is released");
    assert_eq!(m.devices.iter().count(), 0);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn restore_with_duplicates_matches_restore_of_the_last_records() {
    // Persistence contract: duplicate keys, last wins — including a live peek replaced by an
    // ended entry and back, which must unlink it from its room's peekers.
    use super::{LocalEndReason, LocalOutput, LocalRecord};
    use crate::StreamPosition;
    let cfg = LocalConfig {
        ended_retention: Duration::from_millis(50),
        device_idle_after: Some(Duration::from_millis(30)),
        ..LocalConfig::default()
    };
    let d: OwnedDeviceId = "D".into();
    let peek = |u, r, started, exp| LocalRecord::Peek {
        user_id: user(u),
        device_id: d.clone(),
        room_id: room(r),
        started: StreamPosition(started),
        expires_at: Timestamp::from_millis(exp),
    };
    let ended = |u, r, started, position, at| LocalRecord::Ended {
        user_id: user(u),
        device_id: d.clone(),
        room_id: room(r),
        started: StreamPosition(started),
        position: StreamPosition(position),
        at: Timestamp::from_millis(at),
        reason: LocalEndReason::Unpeeked,
    };
    let stream =
        |p, h| LocalRecord::Stream { position: StreamPosition(p), horizon: StreamPosition(h) };
    let records = vec![
        peek(1, 1, 1, 100),
        peek(2, 1, 2, 110),
        peek(3, 1, 3, 120),
        stream(90, 0),
        ended(1, 1, 1, 4, 10), // replaces the first peer of room 1: slot fix-up of the last
        peek(4, 2, 99, 130),
        peek(4, 2, 5, 140), // a higher superseded `started` does not move the counter
        peek(2, 1, 6, 150),
        ended(5, 3, 7, 8, 20),
        ended(5, 3, 7, 9, 25),
        peek(5, 3, 10, 160), // ended then live again
        stream(12, 3),
    ];
    let mut last = std::collections::BTreeMap::new();
    for rec in &records {
        last.insert(rec.key(), rec.clone());
    }
    // After every stored time (a restore heals times later than its `now`).
    let now = Timestamp::from_millis(200);
    let mut a = LocalPeeks::restore(now, cfg.clone(), records);
    let mut b = LocalPeeks::restore(now, cfg, last.into_values());
    check_invariants(&a);
    assert_eq!(a.stream_position(), StreamPosition(12));
    assert_eq!(a.stream_position(), b.stream_position());
    assert_eq!((a.horizon, a.persisted_stream), (b.horizon, b.persisted_stream));
    assert_eq!(a.len(), 4);
    assert_eq!((a.ended_total, b.ended_total), (1, 1));
    let out = |m: &mut LocalPeeks| std::iter::from_fn(|| m.poll_output()).collect::<Vec<_>>();
    let demand = out(&mut a);
    assert_eq!(demand, out(&mut b));
    assert_eq!(
        demand,
        [1, 2, 3].map(|r| LocalOutput::RoomDemand { room_id: room(r), demanded: true })
    );
    for r in 1..=3 {
        let mut pa: Vec<_> = a.peekers(&room(r)).collect();
        let mut pb: Vec<_> = b.peekers(&room(r)).collect();
        pa.sort();
        pb.sort();
        assert_eq!(pa, pb);
    }
    for u in 1..=5 {
        for since in [None, Some(StreamPosition(3)), Some(StreamPosition(6))] {
            assert_eq!(a.sync_delta(&user(u), &d, since), b.sync_delta(&user(u), &d, since));
        }
        for r in 1..=3 {
            assert_eq!(a.lease(&user(u), &d, &room(r)), b.lease(&user(u), &d, &room(r)));
        }
    }
    assert_eq!(a.leases.len(), 4);
    assert_eq!(a.idle.len(), b.idle.len());
    assert_eq!(a.collect.len(), 1);
    // Both then run the same course: idle at 35, the ended entry collected at 60, leases end.
    for t in [35, 60, 1_000] {
        let t = Timestamp::from_millis(t);
        assert_eq!(a.poll_timeout(), b.poll_timeout());
        a.handle_timeout(t);
        b.handle_timeout(t);
        check_invariants(&a);
        let (mut oa, mut ob) = (out(&mut a), out(&mut b));
        let key = |o: &LocalOutput| format!("{o:?}");
        oa.sort_by_key(key);
        ob.sort_by_key(key);
        assert_eq!(oa, ob);
    }
    assert_eq!(a.len(), 0);
}

/// A machine where device "D" of user 1 peeked room 1 and was removed at `t`, none of the
/// outputs taken: the device's last entry is gone, its outputs are queued.
fn removed_with_outputs_queued() -> (LocalPeeks, OwnedUserId, OwnedDeviceId, Timestamp) {
    let mut m = LocalPeeks::new(LocalConfig::default());
    let (u, d) = (user(1), OwnedDeviceId::from("D"));
    let t = Timestamp::from_millis(10);
    m.handle_peek(t, &u, &d, &room(1), false, &open()).unwrap();
    m.handle_device_removed(t, &u, &d);
    check_invariants(&m);
    (m, u, d, t)
}

/// The outputs of a device whose last entry is gone before they are taken still name it, and
/// its slot goes with the last of them.
#[test]
fn queued_outputs_name_their_device_after_its_last_entry_is_gone() {
    use super::{LocalChange, LocalKey, LocalOutput};
    let (mut m, u, d, t) = removed_with_outputs_queued();
    // Another device and room arrive before the host takes anything: they get slots of their
    // own, so nothing queued for the removed device can come out with their names.
    let other = OwnedDeviceId::from("E");
    m.handle_peek(t, &user(2), &other, &room(2), false, &open()).unwrap();
    check_invariants(&m);
    let outputs: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    let removed = LocalOutput::Persist(LocalChange::Remove(LocalKey::Entry {
        user_id: u.clone(),
        device_id: d.clone(),
        room_id: room(1),
    }));
    assert!(outputs.contains(&removed), "{outputs:?}");
    let ended = outputs.iter().find(|o| matches!(o, LocalOutput::PeekEnded { .. })).unwrap();
    assert!(
        matches!(ended, LocalOutput::PeekEnded { user_id, device_id, room_id, .. }
            if *user_id == u && *device_id == d && *room_id == room(1)),
        "{ended:?}"
    );
    check_invariants(&m);
    assert_eq!(m.find_device(&u, &d), None, "the removed device's slot is freed once drained");
    assert_eq!(m.find_room(&room(1)), None, "so is its room's");
    assert_eq!(m.devices.iter().count(), 1);
    assert_eq!(m.stats().devices, 1);
}

/// A device whose slot is kept only for queued outputs is found again by a new peek, which
/// uses that slot; the outputs of both peeks come out in order with the same names (the
/// removal between the two writes of the peek, so a store keeping the last write per key
/// holds the new peek).
#[test]
fn a_slot_kept_for_queued_outputs_is_used_again_by_the_same_device() {
    use super::{LocalChange, LocalKey, LocalOutput, LocalRecord};
    let (mut m, u, d, t) = removed_with_outputs_queued();
    let kept = m.find_device(&u, &d).expect("kept for its queued outputs");
    assert_eq!(m.stats().devices, 0, "a slot kept only for outputs holds no device");
    m.handle_peek(t, &u, &d, &room(1), false, &open()).unwrap();
    assert_eq!(m.find_device(&u, &d), Some(kept));
    check_invariants(&m);
    let outputs: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    let peeks: Vec<usize> = outputs
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            matches!(o, LocalOutput::Persist(LocalChange::Upsert(LocalRecord::Peek { user_id, device_id, room_id, .. }))
                if *user_id == u && *device_id == d && *room_id == room(1))
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(peeks.len(), 2, "{outputs:?}");
    let removed = LocalOutput::Persist(LocalChange::Remove(LocalKey::Entry {
        user_id: u.clone(),
        device_id: d.clone(),
        room_id: room(1),
    }));
    let removal = outputs.iter().position(|o| *o == removed).expect("the removal is written");
    assert!(peeks[0] < removal && removal < peeks[1], "{outputs:?}");
    check_invariants(&m);
    assert_eq!(m.len(), 1);
    assert_eq!(m.stats().devices, 1);
}

/// Every input that can name a device or room whose slot is kept only for queued outputs
/// answers as for an unknown one and leaves the machine consistent; another device peeking
/// the kept room uses its slot; the outputs come out with the names they were queued under.
#[test]
fn inputs_naming_slots_kept_only_for_queued_outputs_leave_the_machine_consistent() {
    use super::{LocalOutput, LocalPeekError};
    let (mut m, u, d, t) = removed_with_outputs_queued();
    assert_eq!(m.handle_unpeek(t, &u, &d, &room(1)), Err(LocalPeekError::NotPeeking));
    check_invariants(&m);
    m.handle_device_synced(t, &u, &d);
    check_invariants(&m);
    m.handle_device_removed(t, &u, &d);
    check_invariants(&m);
    m.handle_user_deactivated(t, &u);
    check_invariants(&m);
    assert_eq!(m.peekers(&room(1)).count(), 0);
    let delta = m.sync_delta(&u, &d, None);
    assert!(delta.started.is_empty() && delta.peeking.is_empty(), "{delta:?}");
    assert!(delta.ended.is_empty() && delta.joined.is_empty(), "{delta:?}");
    assert_eq!(m.stats().devices, 0);
    let kept_room = m.find_room(&room(1)).expect("kept for its queued outputs");
    let other = (user(2), OwnedDeviceId::from("E"));
    m.handle_peek(t, &other.0, &other.1, &room(1), false, &open()).unwrap();
    assert_eq!(m.find_room(&room(1)), Some(kept_room), "the kept room slot is used again");
    check_invariants(&m);
    let mut outputs = Vec::new();
    while let Some(o) = m.poll_output() {
        check_invariants(&m);
        outputs.push(o);
    }
    let demand: Vec<bool> = outputs
        .iter()
        .filter_map(|o| match o {
            LocalOutput::RoomDemand { room_id, demanded } if *room_id == room(1) => Some(*demanded),
            _ => None,
        })
        .collect();
    assert_eq!(demand, [true, false, true], "{outputs:?}");
    let woken: Vec<_> = outputs
        .iter()
        .filter_map(|o| match o {
            LocalOutput::Wake { user_id, device_id } => Some((user_id.clone(), device_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(woken, [(u.clone(), d.clone()), other.clone()], "{outputs:?}");
    for o in &outputs {
        if let LocalOutput::PeekEnded { user_id, device_id, room_id, .. } = o {
            assert_eq!((user_id, device_id, room_id), (&u, &d, &room(1)), "{outputs:?}");
        }
    }
    assert_eq!(m.find_device(&u, &d), None, "the removed device's slot goes with its outputs");
    assert_eq!(m.peekers(&room(1)).count(), 1);
}

/// A lease filed out of order (the host's clock stepped back) sits in the late set, not in a
/// list node; `handle_timeout` ends it from there, and the lists stay consistent.
#[test]
fn a_lease_filed_late_by_a_clock_step_back_expires_cleanly() {
    use super::LocalOutput;
    use crate::deadlines::Handle;
    let cfg = LocalConfig { lease: Duration::from_millis(100), ..LocalConfig::default() };
    let mut m = LocalPeeks::new(cfg);
    let d: OwnedDeviceId = "D".into();
    let at = Timestamp::from_millis;
    m.handle_peek(at(1_000), &user(1), &d, &room(1), false, &open()).unwrap();
    // The host's clock steps back: the second lease ends before the first, listed earlier.
    m.handle_peek(at(500), &user(2), &d, &room(2), false, &open()).unwrap();
    let lease_of = |m: &LocalPeeks, n: u32| {
        let (dv, r) = (m.find_device(&user(n), &d).unwrap(), m.find_room(&room(n)).unwrap());
        match m.state_of(dv, r) {
            Some(Entry::Peeking { lease, .. }) => lease,
            other => panic!("not peeking: {other:?}"),
        }
    };
    assert_eq!(lease_of(&m, 2), Handle::LATE);
    assert_ne!(lease_of(&m, 1), Handle::LATE);
    check_invariants(&m);
    m.handle_timeout(at(1_200));
    check_invariants(&m);
    assert_eq!(m.len(), 0);
    let ended = std::iter::from_fn(|| m.poll_output())
        .filter(|o| matches!(o, LocalOutput::PeekEnded { .. }))
        .count();
    assert_eq!(ended, 2);
    check_invariants(&m);
}

/// A restore numbers the lease and collection nodes in deadline order, so `handle_timeout`
/// walks each list front to back through memory.
#[test]
fn restored_deadline_nodes_are_numbered_in_deadline_order() {
    use super::{LocalEndReason, LocalRecord};
    use crate::StreamPosition;
    use crate::deadlines::Handle;
    let d: OwnedDeviceId = "D".into();
    let mut records = Vec::new();
    for i in 0..60u32 {
        // Deadlines out of visit order, with ties.
        let t = Timestamp::from_millis(1_000 + u64::from((i * 37) % 23));
        records.push(if i % 3 == 0 {
            LocalRecord::Ended {
                user_id: user(i % 7),
                device_id: d.clone(),
                room_id: room(i),
                started: StreamPosition(u64::from(i) + 1),
                position: StreamPosition(u64::from(i) + 100),
                at: t,
                reason: LocalEndReason::Unpeeked,
            }
        } else {
            LocalRecord::Peek {
                user_id: user(i % 7),
                device_id: d.clone(),
                room_id: room(i),
                started: StreamPosition(u64::from(i) + 1),
                expires_at: t,
            }
        });
    }
    // After every stored time (a restore heals times later than its `now`).
    let m = LocalPeeks::restore(Timestamp::from_millis(2_000), LocalConfig::default(), records);
    check_invariants(&m);
    let (mut leases, mut collect) = (Vec::new(), Vec::new());
    for (e, slot) in m.entries.iter() {
        match slot.state {
            Entry::Peeking { expires_at, lease, .. } => leases.push(((expires_at, e), lease)),
            Entry::Ended { position, at, collect: h, .. } => {
                collect.push(((at, (position.0, e)), h));
            }
        }
    }
    leases.sort();
    collect.sort();
    assert_eq!((leases.len(), collect.len()), (40, 20));
    for (rank, (_, h)) in leases.iter().enumerate() {
        assert_eq!(*h, Handle::nth(rank), "lease {rank}");
    }
    for (rank, (_, h)) in collect.iter().enumerate() {
        assert_eq!(*h, Handle::nth(rank), "collection {rank}");
    }
}

/// A restore sizes the entry slab from the records, at most the configured total, instead of
/// growing it by doubling.
#[test]
fn a_restore_sizes_the_entry_slab_from_the_records() {
    use super::LocalRecord;
    use crate::StreamPosition;
    let d: OwnedDeviceId = "D".into();
    let records = |n: u32| -> Vec<LocalRecord> {
        (0..n)
            .map(|i| LocalRecord::Peek {
                user_id: user(i),
                device_id: d.clone(),
                room_id: room(i),
                started: StreamPosition(u64::from(i) + 1),
                expires_at: Timestamp::from_millis(1_000),
            })
            .collect()
    };
    let now = Timestamp::from_millis(500);
    let m = LocalPeeks::restore(now, LocalConfig::default(), records(1_100));
    check_invariants(&m);
    assert_eq!(m.len(), 1_100);
    let capacity = m.entries.capacity();
    assert!((1_100..2_048).contains(&capacity), "sized once, not doubled: {capacity}");
    // A total below the records caps only the reservation: every record is restored.
    let cfg = LocalConfig { max_peeks_total: 100, ..LocalConfig::default() };
    let m = LocalPeeks::restore(now, cfg.clone(), records(1_000));
    assert_eq!(m.len(), 1_000, "a restore keeps what the store holds");
    check_invariants(&m);
    // The reservation is capped at the total, whatever the records' size hint claims.
    struct Hinted<I>(I);
    impl<I: Iterator> Iterator for Hinted<I> {
        type Item = I::Item;
        fn next(&mut self) -> Option<I::Item> {
            self.0.next()
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            (1_000_000, None)
        }
    }
    let m = LocalPeeks::restore(now, cfg, Hinted(records(3).into_iter()));
    assert_eq!(m.len(), 3);
    check_invariants(&m);
    let capacity = m.entries.capacity();
    assert!((100..1_000).contains(&capacity), "reserved up to the total: {capacity}");
}
