//! The room index of [`OutboundPeeks`](super::OutboundPeeks): room id → room slot, a
//! [`SlotIndex`] over the room slab. The room id is stored once, in its [`Room`], which also
//! keeps the id's hash. Room ids come from clients and from remote servers, so the hash is
//! std's keyed SipHash with per-machine random keys (resists flooding).

use std::hash::RandomState;

use ruma_common::RoomId;

use super::room::Room;
use crate::slab::Slab;
use crate::slot_index::{Hashed, SlotIndex, Vacant, keyed_hash};

/// Room id → room slot, over the machine's room slab.
#[derive(Debug, Clone)]
pub(super) struct RoomIndex {
    /// Keyed SipHash.
    state: RandomState,
    slots: SlotIndex,
}

impl Default for RoomIndex {
    fn default() -> Self {
        RoomIndex { state: RandomState::new(), slots: SlotIndex::default() }
    }
}

impl Hashed for Room {
    fn stored_hash(&self) -> u64 {
        self.hash
    }
}

impl RoomIndex {
    /// The index hash of `room`; a [`Room`] keeps it in `hash` (set by `insert_room`).
    pub(super) fn hash(&self, room: &RoomId) -> u64 {
        keyed_hash(&self.state, room.as_str())
    }

    /// The slot of `room`, if it has one.
    pub(super) fn get(&self, rooms: &Slab<Room>, room: &RoomId) -> Option<u32> {
        self.find(rooms, self.hash(room), room)
    }

    /// The slot of `room`, whose [`hash`](Self::hash) is `hash`, if it has one.
    pub(super) fn find(&self, rooms: &Slab<Room>, hash: u64, room: &RoomId) -> Option<u32> {
        self.slots.find(rooms, hash, |r| *r.id == *room)
    }

    /// The slot of `room`, whose [`hash`](Self::hash) is `hash`, or where its slot goes once
    /// the room is in the slab: one probe where [`find`](Self::find) and then
    /// [`insert`](Self::insert) take two.
    pub(super) fn entry(
        &mut self,
        rooms: &Slab<Room>,
        hash: u64,
        room: &RoomId,
    ) -> Result<u32, Vacant<'_>> {
        self.slots.entry(rooms, hash, |r| *r.id == *room)
    }

    /// Indexes `slot`, whose room (already in `rooms`, its `hash` set) is not indexed yet.
    pub(super) fn insert(&mut self, rooms: &Slab<Room>, slot: u32) {
        self.slots.insert(rooms, slot);
    }

    /// Forgets `slot`, whose room's hash is `hash` (the room may be gone from the slab).
    pub(super) fn remove(&mut self, hash: u64, slot: u32) {
        self.slots.remove(hash, slot);
    }

    /// Rooms indexed.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// No room is indexed.
    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}
