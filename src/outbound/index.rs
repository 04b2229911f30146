//! The room index of [`OutboundPeeks`](super::OutboundPeeks): room id → room slot.
//!
//! A `hashbrown` [`HashTable`] of bare slot numbers. The room id is stored once, in its
//! [`Room`], which also keeps the id's hash: a probe compares hashes before strings, and a
//! growing table re-hashes nothing. Room ids come from clients and from remote servers, so the
//! hash is std's keyed SipHash with per-machine random keys (resists flooding).

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use ruma_common::RoomId;

use super::room::Room;
use crate::slab::Slab;

/// Room id → room slot, over the machine's room slab.
#[derive(Debug, Clone)]
pub(super) struct RoomIndex {
    /// Keyed SipHash.
    state: RandomState,
    table: HashTable<u32>,
}

impl Default for RoomIndex {
    fn default() -> Self {
        RoomIndex { state: RandomState::new(), table: HashTable::new() }
    }
}

fn hash_of(rooms: &Slab<Room>, slot: u32) -> u64 {
    rooms.get(slot).map_or(0, |r| r.hash)
}

impl RoomIndex {
    /// The index hash of `room`; a [`Room`] keeps it in `hash` before it is inserted.
    pub(super) fn hash(&self, room: &RoomId) -> u64 {
        self.state.hash_one(room.as_str())
    }

    /// The slot of `room`, if it has one.
    pub(super) fn get(&self, rooms: &Slab<Room>, room: &RoomId) -> Option<u32> {
        let hash = self.hash(room);
        self.table
            .find(hash, |&s| rooms.get(s).is_some_and(|r| r.hash == hash && *r.id == *room))
            .copied()
    }

    /// Indexes `slot`, whose room (already in `rooms`, its `hash` set) is not indexed yet.
    pub(super) fn insert(&mut self, rooms: &Slab<Room>, slot: u32) {
        let hash = hash_of(rooms, slot);
        self.table.insert_unique(hash, slot, |&s| hash_of(rooms, s));
    }

    /// Forgets `slot`, whose room's hash is `hash` (the room may be gone from the slab).
    pub(super) fn remove(&mut self, slot: u32, hash: u64) {
        if let Ok(entry) = self.table.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
    }

    /// Rooms indexed.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// No room is indexed.
    pub(super) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}
