//! The name indexes of [`LocalPeeks`](super::LocalPeeks): (user, device) → device slot,
//! user → that user's device slots, and room id → room slot.
//!
//! The device and room indexes are [`SlotIndex`]es (tables of bare slot numbers): the names
//! are stored once, in the slots (which also keep their hash, so a probe compares hashes before
//! strings and a growing table never re-hashes a name). Finding a device is one keyed hash of the
//! (user, device) pair and one probe, instead of a probe per level of a map of maps whose keys
//! are separate copies of the names; the strings a probe compares are the slot's own, which
//! the peek's outputs are copied from when they are taken. The names come from clients, so the hash is std's
//! keyed SipHash with per-machine random keys (resists flooding).

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;
use ruma_common::{DeviceId, RoomId, UserId};

use super::state::{DevIdx, DeviceSlot, RoomIdx, RoomSlot};
use crate::slab::Slab;
use crate::slot_index::{Hashed, SlotIndex, keyed_hash};

/// The three name indexes and their hash keys.
#[derive(Debug, Clone)]
pub(super) struct Names {
    /// Keyed SipHash: names come from clients.
    state: RandomState,
    /// Device slots by [`Names::device_hash`] of (user, device).
    devices: SlotIndex,
    /// Each user's device slots, by [`Names::user_hash`].
    users: HashTable<UserDevices>,
    /// Room slots by [`Names::room_hash`].
    rooms: SlotIndex,
}

/// One user's devices: never empty (the entry goes with the user's last device).
#[derive(Debug, Clone)]
struct UserDevices {
    hash: u64,
    devices: Vec<DevIdx>,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            state: RandomState::new(),
            devices: SlotIndex::default(),
            users: HashTable::new(),
            rooms: SlotIndex::default(),
        }
    }
}

impl Hashed for DeviceSlot {
    fn stored_hash(&self) -> u64 {
        self.hash
    }
}

impl Hashed for RoomSlot {
    fn stored_hash(&self) -> u64 {
        self.hash
    }
}

impl Names {
    /// The index hash of a (user, device) pair.
    pub(super) fn device_hash(&self, user: &UserId, device: &DeviceId) -> u64 {
        self.state.hash_one((user.as_str(), device.as_str()))
    }

    /// The index hash of a user.
    fn user_hash(&self, user: &UserId) -> u64 {
        keyed_hash(&self.state, user.as_str())
    }

    /// The index hash of a room.
    pub(super) fn room_hash(&self, room: &RoomId) -> u64 {
        keyed_hash(&self.state, room.as_str())
    }

    /// The device slot of (user, device) whose pair hash is `hash`.
    pub(super) fn find_device(
        &self,
        slots: &Slab<DeviceSlot>,
        hash: u64,
        user: &UserId,
        device: &DeviceId,
    ) -> Option<DevIdx> {
        self.devices.find(slots, hash, |slot| {
            slot.device.as_str() == device.as_str() && slot.user.as_str() == user.as_str()
        })
    }

    /// Indexes the device in slot `d` (its name must not be indexed yet).
    pub(super) fn add_device(&mut self, slots: &Slab<DeviceSlot>, d: DevIdx) {
        let slot = slots.get(d).expect("device slot was just filled");
        self.devices.insert(slots, d);
        let hash = self.user_hash(&slot.user);
        let same_user = |e: &UserDevices| {
            e.hash == hash && slots.get(e.devices[0]).is_some_and(|s| s.user == slot.user)
        };
        match self.users.find_mut(hash, same_user) {
            Some(entry) => entry.devices.push(d),
            None => {
                self.users.insert_unique(hash, UserDevices { hash, devices: vec![d] }, |e| e.hash);
            }
        }
    }

    /// Forgets the device in slot `d`; call it while the slot still holds the device.
    pub(super) fn remove_device(&mut self, slots: &Slab<DeviceSlot>, d: DevIdx) {
        let slot = slots.get(d).expect("device slot is live");
        self.devices.remove(slot.hash, d);
        let hash = self.user_hash(&slot.user);
        if let Ok(mut entry) =
            self.users.find_entry(hash, |e| e.hash == hash && e.devices.contains(&d))
        {
            let devices = &mut entry.get_mut().devices;
            devices.retain(|&x| x != d);
            if devices.is_empty() {
                entry.remove();
            }
        }
    }

    /// The user's device slots, unordered.
    pub(super) fn devices_of<'a>(
        &'a self,
        slots: &Slab<DeviceSlot>,
        user: &UserId,
    ) -> &'a [DevIdx] {
        let hash = self.user_hash(user);
        let same_user = |e: &UserDevices| {
            e.hash == hash
                && slots.get(e.devices[0]).is_some_and(|s| s.user.as_str() == user.as_str())
        };
        self.users.find(hash, same_user).map_or(&[], |e| &e.devices)
    }

    /// The room slot of `room`, whose hash is `hash`.
    pub(super) fn find_room(
        &self,
        slots: &Slab<RoomSlot>,
        hash: u64,
        room: &RoomId,
    ) -> Option<RoomIdx> {
        self.rooms.find(slots, hash, |slot| slot.id.as_str() == room.as_str())
    }

    /// The room slot of `room`.
    pub(super) fn room(&self, slots: &Slab<RoomSlot>, room: &RoomId) -> Option<RoomIdx> {
        self.find_room(slots, self.room_hash(room), room)
    }

    /// Indexes the room in slot `r` (its name must not be indexed yet).
    pub(super) fn add_room(&mut self, slots: &Slab<RoomSlot>, r: RoomIdx) {
        self.rooms.insert(slots, r);
    }

    /// Forgets the room in slot `r`, whose hash is `hash`.
    pub(super) fn remove_room(&mut self, hash: u64, r: RoomIdx) {
        self.rooms.remove(hash, r);
    }

    /// Whether no name is indexed.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.devices.is_empty() && self.users.is_empty() && self.rooms.is_empty()
    }
}
