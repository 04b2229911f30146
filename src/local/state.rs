//! Interned per-device and per-room state, the entry slab (one slot per remembered (device,
//! room)), and the internal transitions every input shares.

use std::collections::HashMap;

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId};

use super::queue::Queued;
use super::{LocalEndReason, LocalPeeks};
use crate::deadlines::Handle;
use crate::ids::StreamPosition;
use crate::time::{Tick, Timestamp};
use crate::timer::FxBuild;

/// Index of an interned device slot.
pub(super) type DevIdx = u32;
/// Index of an interned room slot.
pub(super) type RoomIdx = u32;
/// Index of an entry slot (one per (device, room) the machine remembers).
pub(super) type EntryIdx = u32;

/// One (device, room) the machine remembers, in the machine's entry slab. Its device maps the
/// room to it, and a live peek is listed in its room's `peekers` and, by this index, in the
/// lease list: an expiry reaches it in one step and ends it in place, without a lookup in its
/// device's map, and an end moves the room's last peeker into the freed place through its
/// index alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EntrySlot {
    /// The device's slot.
    pub(super) d: DevIdx,
    /// The room's slot.
    pub(super) r: RoomIdx,
    /// Live or retained, with its positions and deadline handle.
    pub(super) state: Entry,
}

/// What this machine remembers about one (device, room).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// A live peek; `slot` is its index in the room's `peekers`, `lease` where its
    /// `expires_at` is kept in the lease list.
    Peeking { started: StreamPosition, expires_at: Timestamp, slot: u32, lease: Handle },
    /// An ended (or joined, when `reason == Joined`) peek kept for `/sync`.
    Ended {
        started: StreamPosition,
        position: StreamPosition,
        at: Timestamp,
        reason: LocalEndReason,
        /// Where its collection deadline (`at + ended_retention`) is kept.
        collect: Handle,
    },
}

/// Where the deadline of an entry is when the entry ends (its lease) or is collected (its
/// collection deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Deadline {
    /// Still in its list: the end or the collection takes it out.
    Listed,
    /// Already popped from its list by `handle_timeout` (it was due). Its node was freed then
    /// and may hold another key since: it is not read again (by then a cache miss per entry,
    /// for nothing).
    Taken,
}

#[derive(Debug, Clone)]
pub(super) struct DeviceSlot {
    /// The index hash of (user, device) (`Names::device_hash`).
    pub(super) hash: u64,
    pub(super) user: OwnedUserId,
    pub(super) device: OwnedDeviceId,
    /// This device's entries: room → entry slot.
    pub(super) entries: HashMap<RoomIdx, EntryIdx, FxBuild>,
    pub(super) live_peeks: u32,
    pub(super) ended: u32,
    /// Idle devices do not count towards room demand (docs/architecture.md §4.4).
    pub(super) idle: bool,
    /// Queued outputs naming this device: the slot is kept (with its names) until they are
    /// taken (see `queue.rs`).
    pub(super) queued: u32,
}

#[derive(Debug, Clone)]
pub(super) struct RoomSlot {
    /// The index hash of the room id (`Names::room_hash`).
    pub(super) hash: u64,
    pub(super) id: OwnedRoomId,
    /// Devices with a live peek and their entries, for O(peekers) fan-out; a live entry's
    /// `slot` is its place here.
    pub(super) peekers: Vec<(DevIdx, EntryIdx)>,
    /// Peekers whose device is not idle.
    pub(super) live: u32,
    /// Entries (live or ended) pointing at this slot.
    pub(super) refs: u32,
    /// Queued outputs naming this room: the slot is kept (with its id) until they are taken
    /// (see `queue.rs`).
    pub(super) queued: u32,
}

impl LocalPeeks {
    pub(super) fn dev(&self, d: DevIdx) -> &DeviceSlot {
        self.devices.get(d).expect("device index taken from a live entry")
    }
    pub(super) fn dev_mut(&mut self, d: DevIdx) -> &mut DeviceSlot {
        self.devices.get_mut(d).expect("device index taken from a live entry")
    }
    pub(super) fn room(&self, r: RoomIdx) -> &RoomSlot {
        self.rooms.get(r).expect("room index taken from a live entry")
    }
    pub(super) fn room_mut(&mut self, r: RoomIdx) -> &mut RoomSlot {
        self.rooms.get_mut(r).expect("room index taken from a live entry")
    }
    pub(super) fn entry(&self, e: EntryIdx) -> &EntrySlot {
        self.entries.get(e).expect("entry index taken from a device, room or deadline")
    }
    pub(super) fn entry_mut(&mut self, e: EntryIdx) -> &mut EntrySlot {
        self.entries.get_mut(e).expect("entry index taken from a device, room or deadline")
    }
    /// The entry of (d, r), if the machine remembers one.
    pub(super) fn entry_of(&self, d: DevIdx, r: RoomIdx) -> Option<EntryIdx> {
        self.dev(d).entries.get(&r).copied()
    }
    /// Adds the entry of (d, r), which has none, in `state`: in the slab, under its device, and
    /// counted by its room. The caller does the rest of what `state` means (peekers, lists).
    pub(super) fn add_entry(&mut self, d: DevIdx, r: RoomIdx, state: Entry) -> EntryIdx {
        let e = self.entries.insert(EntrySlot { d, r, state });
        let entries = &mut self.dev_mut(d).entries;
        let first = entries.is_empty();
        let replaced = entries.insert(r, e);
        debug_assert_eq!(replaced, None, "one entry per (device, room)");
        if first {
            self.holding += 1;
        }
        self.room_mut(r).refs += 1;
        e
    }
    /// Forgets entry `e` (its room's peekers and the deadline lists no longer name it): out of
    /// the slab and off its device, and its room freed unless something else holds it. Call
    /// it after queueing the outputs that name the entry, which keep the slots. Whether the
    /// device's slot goes is the caller's call (`release_device`).
    pub(super) fn forget_entry(&mut self, e: EntryIdx) {
        let EntrySlot { d, r, .. } = self.entries.remove(e).expect("entry index is live");
        let entries = &mut self.dev_mut(d).entries;
        entries.remove(&r);
        if entries.is_empty() {
            self.holding -= 1;
        }
        self.room_mut(r).refs -= 1;
        self.release_room(r);
    }
    /// Takes the retained entry `e` out of the collection list (unless `deadline` says it was
    /// popped) and out of the retained counts: it is being peeked again, or forgotten.
    pub(super) fn unretain(&mut self, e: EntryIdx, deadline: Deadline) {
        let EntrySlot { d, state, .. } = *self.entry(e);
        let Entry::Ended { position, at, collect, .. } = state else {
            unreachable!("unretain is only called on a retained entry")
        };
        let (key, due) = ((position.0, e), at.saturating_add(self.config.ended_retention));
        match deadline {
            Deadline::Listed => {
                self.collect.cancel(collect, key, due);
            }
            Deadline::Taken => debug_assert!(!self.collect.holds(collect, key, due), "popped"),
        }
        self.dev_mut(d).ended -= 1;
        self.ended_total -= 1;
    }
    /// Takes the peeker in place `slot` out of room `r`'s peekers, moving the last one into the
    /// place (its entry learns its new place).
    pub(super) fn take_peeker(&mut self, r: RoomIdx, slot: u32) {
        let room = self.room_mut(r);
        room.peekers.swap_remove(slot as usize);
        if let Some(&(_, moved)) = room.peekers.get(slot as usize)
            && let Entry::Peeking { slot: s, .. } = &mut self.entry_mut(moved).state
        {
            *s = slot;
        }
    }
    /// The state of the device's entry on the room, if any.
    pub(super) fn state_of(&self, d: DevIdx, r: RoomIdx) -> Option<Entry> {
        self.entry_of(d, r).map(|e| self.entry(e).state)
    }

    pub(super) fn find_device(
        &self,
        user: &ruma_common::UserId,
        device: &ruma_common::DeviceId,
    ) -> Option<DevIdx> {
        let hash = self.names.device_hash(user, device);
        self.names.find_device(&self.devices, hash, user, device)
    }

    /// The room slot of `room`.
    pub(super) fn find_room(&self, room: &ruma_common::RoomId) -> Option<RoomIdx> {
        self.names.room(&self.rooms, room)
    }

    pub(super) fn intern_device(
        &mut self,
        user: &ruma_common::UserId,
        device: &ruma_common::DeviceId,
    ) -> DevIdx {
        let hash = self.names.device_hash(user, device);
        match self.names.find_device(&self.devices, hash, user, device) {
            Some(d) => d,
            None => self.add_device(hash, user, device),
        }
    }

    /// Adds a device that [`find_device`](Self::find_device) does not know; `hash` is its
    /// `Names::device_hash`.
    pub(super) fn add_device(
        &mut self,
        hash: u64,
        user: &ruma_common::UserId,
        device: &ruma_common::DeviceId,
    ) -> DevIdx {
        let d = self.devices.insert(DeviceSlot {
            hash,
            user: user.to_owned(),
            device: device.to_owned(),
            entries: HashMap::default(),
            live_peeks: 0,
            ended: 0,
            idle: false,
            queued: 0,
        });
        self.names.add_device(&self.devices, d);
        d
    }

    pub(super) fn intern_room(&mut self, room: &ruma_common::RoomId) -> RoomIdx {
        let hash = self.names.room_hash(room);
        match self.names.find_room(&self.rooms, hash, room) {
            Some(r) => r,
            None => self.add_room(hash, room),
        }
    }

    /// Adds a room that the index does not hold; `hash` is its `Names::room_hash`.
    pub(super) fn add_room(&mut self, hash: u64, room: &ruma_common::RoomId) -> RoomIdx {
        let r = self.rooms.insert(RoomSlot {
            hash,
            id: room.to_owned(),
            peekers: Vec::new(),
            live: 0,
            refs: 0,
            queued: 0,
        });
        self.names.add_room(&self.rooms, r);
        r
    }

    /// Frees the device slot once it holds no entries and no queued output names it.
    pub(super) fn release_device(&mut self, d: DevIdx) {
        let dev = self.dev(d);
        if !dev.entries.is_empty() || dev.queued != 0 {
            return;
        }
        self.idle.cancel(&d);
        self.names.remove_device(&self.devices, d);
        self.devices.remove(d).expect("device index is live");
    }

    /// Frees the room slot once no entry points at it and no queued output names it.
    pub(super) fn release_room(&mut self, r: RoomIdx) {
        let room = self.room(r);
        if room.refs != 0 || room.queued != 0 {
            return;
        }
        let slot = self.rooms.remove(r).expect("room index is live");
        self.names.remove_room(slot.hash, r);
    }

    pub(super) fn next_position(&mut self) -> StreamPosition {
        self.position = self.position.saturating_add(1);
        StreamPosition(self.position)
    }

    /// Queues the `Persist` of entry `e` as it is now.
    pub(super) fn persist_entry(&mut self, e: EntryIdx) {
        let EntrySlot { d, r, state } = *self.entry(e);
        self.queue(match state {
            Entry::Peeking { started, expires_at, .. } => {
                Queued::UpsertPeek { d, r, started, expires_at }
            }
            Entry::Ended { started, position, at, reason, .. } => {
                Queued::UpsertEnded { d, r, started, position, at, reason }
            }
        });
    }

    /// Writes the stream record if the store's copy is stale; called before every removal so
    /// the highest position and the horizon are never lost.
    pub(super) fn persist_stream(&mut self) {
        if self.persisted_stream != (self.position, self.horizon) {
            self.persisted_stream = (self.position, self.horizon);
            self.queue(Queued::Stream {
                position: StreamPosition(self.position),
                horizon: StreamPosition(self.horizon),
            });
        }
    }

    pub(super) fn wake(&mut self, d: DevIdx) {
        self.queue(Queued::Wake { d });
    }

    pub(super) fn inc_live(&mut self, r: RoomIdx) {
        let room = self.room_mut(r);
        room.live += 1;
        if room.live == 1 {
            self.queue(Queued::Demand { r, demanded: true });
        }
    }

    pub(super) fn dec_live(&mut self, r: RoomIdx) {
        let room = self.room_mut(r);
        room.live = room.live.saturating_sub(1);
        if room.live == 0 {
            self.queue(Queued::Demand { r, demanded: false });
        }
    }

    /// The device is alive at `now` (a sync or a peek): revive its demand if it was idle and
    /// restart its idle deadline (docs/architecture.md §4.4).
    pub(super) fn touch(&mut self, now: Timestamp, d: DevIdx) {
        let Some(idle_after) = self.config.device_idle_after else { return };
        if self.dev(d).idle {
            self.dev_mut(d).idle = false;
            let rooms: Vec<RoomIdx> = self.peeking_rooms(d);
            for r in rooms {
                self.inc_live(r);
            }
        }
        if self.dev(d).live_peeks > 0 {
            self.idle.schedule(d, now.saturating_add(idle_after));
        }
    }

    /// The device's live peeks, in room-index order (deterministic outputs).
    pub(super) fn peeking_rooms(&self, d: DevIdx) -> Vec<RoomIdx> {
        let mut rooms: Vec<RoomIdx> = self
            .dev(d)
            .entries
            .iter()
            .filter(|&(_, &e)| matches!(self.entry(e).state, Entry::Peeking { .. }))
            .map(|(r, _)| *r)
            .collect();
        rooms.sort_unstable();
        rooms
    }

    /// The device went idle: it no longer counts for demand.
    pub(super) fn go_idle(&mut self, d: DevIdx) {
        if self.dev(d).idle {
            return;
        }
        self.dev_mut(d).idle = true;
        for r in self.peeking_rooms(d) {
            self.dec_live(r);
        }
    }

    /// Starts a fresh peek (the caller checked that none is live); its lease runs from the
    /// host's `host_now`.
    pub(super) fn start_peek(&mut self, host_now: Timestamp, d: DevIdx, r: RoomIdx) -> Timestamp {
        let expires_at = host_now.saturating_add(self.config.effective_lease());
        self.stats.started += 1;
        let started = self.next_position();
        let slot = u32::try_from(self.room(r).peekers.len()).expect("peekers bounded by the caps");
        // A retained entry of (d, r) is reused; otherwise a new one is added. Its lease is
        // listed by the entry's index, then kept in the entry.
        let peeking = |lease| Entry::Peeking { started, expires_at, slot, lease };
        let e = match self.entry_of(d, r) {
            // Not a live one: `start_peek` is only called without a live peek.
            Some(e) => {
                self.unretain(e, Deadline::Listed);
                e
            }
            None => self.add_entry(d, r, peeking(Handle::NONE)),
        };
        let lease = self.leases.insert(e, expires_at);
        self.entry_mut(e).state = peeking(lease);
        self.dev_mut(d).live_peeks += 1;
        self.live_total += 1;
        self.room_mut(r).peekers.push((d, e));
        self.persist_entry(e);
        self.wake(d);
        if !self.dev(d).idle {
            self.inc_live(r);
        }
        self.enforce_retention_caps(d);
        expires_at
    }

    /// Takes the live peek `e` out of its room and, unless `deadline` says it is already out,
    /// the lease queue. Returns its start, and whether it counted towards the room's demand
    /// (its device was not idle): the caller then calls [`dec_live`](Self::dec_live) once the
    /// end itself is queued.
    fn unlink_peek(&mut self, e: EntryIdx, deadline: Deadline) -> (StreamPosition, bool) {
        let EntrySlot { d, r, state } = *self.entry(e);
        let Entry::Peeking { started, slot, expires_at, lease: handle } = state else {
            unreachable!("unlink_peek is only called on a live peek")
        };
        match deadline {
            Deadline::Listed => {
                self.leases.cancel(handle, e, expires_at);
            }
            // Also when the lease was in the late set, where a handle names no node.
            Deadline::Taken => debug_assert!(!self.leases.holds(handle, e, expires_at)),
        }
        self.take_peeker(r, slot);
        let dev = self.dev_mut(d);
        dev.live_peeks -= 1;
        let idle = dev.idle;
        if dev.live_peeks == 0 {
            dev.idle = false;
            self.idle.cancel(&d);
        }
        self.live_total -= 1;
        (started, !idle)
    }

    /// Ends the live peek `e`; unless the device is being removed, wakes it and then keeps
    /// its retained entries within the caps (see [`end_peek_unwoken`](Self::end_peek_unwoken)).
    pub(super) fn end_peek(&mut self, now: Timestamp, e: EntryIdx, reason: LocalEndReason) {
        if let Some(d) = self.end_peek_unwoken(now, e, reason, Deadline::Listed) {
            self.wake(d);
            self.enforce_retention_caps(d);
        }
    }

    /// Ends the live peek `e`. `DeviceRemoved`/`UserDeactivated` drop it without an ended
    /// entry (R25) and return `None`; every other reason leaves an entry for `/sync` and
    /// returns the device, for the caller to wake once every change of the input is queued (a
    /// device whose several peeks end in one input is woken once) and then to apply
    /// [`enforce_retention_caps`](Self::enforce_retention_caps) after the wake, so the wake
    /// comes before the removals the caps queue (a store restored under a lower cap).
    /// `deadline` says whether the peek's lease deadline is still listed (`handle_timeout` has
    /// already popped it).
    #[must_use = "the device of an ended peek must be woken, then its caps applied"]
    pub(super) fn end_peek_unwoken(
        &mut self,
        now: Timestamp,
        e: EntryIdx,
        reason: LocalEndReason,
        deadline: Deadline,
    ) -> Option<DevIdx> {
        self.stats.ended(reason);
        // Persist first: compute the change, queue it, then the consequences (the end, the
        // room's demand).
        let (started, demanded) = self.unlink_peek(e, deadline);
        let EntrySlot { d, r, .. } = *self.entry(e);
        let removed =
            matches!(reason, LocalEndReason::DeviceRemoved | LocalEndReason::UserDeactivated);
        if removed {
            self.persist_stream();
            self.queue(Queued::Remove { d, r });
        } else {
            let position = self.next_position();
            let due = now.saturating_add(self.config.ended_retention);
            let collect = self.collect.insert((position.0, e), due);
            self.entry_mut(e).state = Entry::Ended { started, position, at: now, reason, collect };
            let dev = self.dev_mut(d);
            dev.ended += 1;
            self.ended_total += 1;
            self.persist_entry(e);
        }
        self.queue(Queued::Ended { d, r, reason });
        if demanded {
            self.dec_live(r);
        }
        if removed {
            // The entry goes, and with it the room's last reference, maybe.
            self.forget_entry(e);
            return None;
        }
        Some(d)
    }

    /// Forgets the retained entry `e` (retention over, or a cap reached): the horizon moves
    /// past it. `deadline` says whether its collection deadline is still listed
    /// (`handle_timeout` has already popped it).
    pub(super) fn collect_entry(&mut self, e: EntryIdx, deadline: Deadline) {
        let Some(&EntrySlot { d, r, state: Entry::Ended { position, .. } }) = self.entries.get(e)
        else {
            return;
        };
        self.unretain(e, deadline);
        self.horizon = self.horizon.max(position.0);
        self.persist_stream();
        self.queue(Queued::Remove { d, r });
        self.forget_entry(e);
        self.release_device(d);
    }

    /// Keeps retained entries within the caps: per device at most `max_peeks_per_device`,
    /// overall live + retained at most `max_peeks_total`; the oldest goes first.
    pub(super) fn enforce_retention_caps(&mut self, d: DevIdx) {
        while self
            .devices
            .get(d)
            .is_some_and(|dev| dev.ended as usize > self.config.max_peeks_per_device)
        {
            let oldest = self
                .dev(d)
                .entries
                .values()
                .filter_map(|&e| match self.entry(e).state {
                    Entry::Ended { position, .. } => Some((position, e)),
                    Entry::Peeking { .. } => None,
                })
                .min();
            let Some((_, e)) = oldest else { break };
            self.collect_entry(e, Deadline::Listed);
        }
        while self.ended_total > 0
            && self.ended_total + self.live_total > self.config.max_peeks_total
        {
            // The earliest collection deadline is the oldest entry: `at` never decreases as
            // positions grow, and ties come out in position order (the key's first field).
            let Some((_, (_, e))) = self.collect.peek() else { break };
            self.collect_entry(e, Deadline::Listed);
        }
    }
}

impl LocalPeeks {
    /// Passes the host's `now` through the clock; a correction heals the machine first.
    pub(super) fn tick(&mut self, now: Timestamp) -> Timestamp {
        match self.clock.advance(now) {
            Tick::Normal(now) => now,
            Tick::Corrected(now) => {
                self.heal(now);
                now
            }
        }
    }

    /// The host's clock was corrected back to `now` (see `CLOCK_STEP_LIMIT`): no lease outlives
    /// `now + lease`, no retained entry ended after `now`, and no device stays live beyond
    /// `now + device_idle_after`. Every changed entry is persisted. O(entries); only on a
    /// correction (and on restore).
    pub(super) fn heal(&mut self, now: Timestamp) {
        let max_expiry = now.saturating_add(self.config.effective_lease());
        let mut changed: Vec<EntryIdx> = self
            .entries
            .iter()
            .filter(|(_, slot)| match slot.state {
                Entry::Peeking { expires_at, .. } => expires_at > max_expiry,
                Entry::Ended { at, .. } => at > now,
            })
            .map(|(e, _)| e)
            .collect();
        changed.sort_by(|a, b| self.cmp_entries(*a, *b));
        let retention = self.config.ended_retention;
        for e in changed {
            let slot = self.entries.get_mut(e).expect("an entry found above");
            match &mut slot.state {
                Entry::Peeking { expires_at, lease, .. } => {
                    let old = std::mem::replace(expires_at, max_expiry);
                    *lease = self.leases.reschedule(*lease, e, old, max_expiry);
                }
                Entry::Ended { position, at, collect, .. } => {
                    let old = std::mem::replace(at, now);
                    let key = (position.0, e);
                    let (from, to) = (old.saturating_add(retention), now.saturating_add(retention));
                    *collect = self.collect.reschedule(*collect, key, from, to);
                }
            }
            self.persist_entry(e);
        }
        if let Some(idle_after) = self.config.device_idle_after {
            let max_idle = now.saturating_add(idle_after);
            let late: Vec<DevIdx> =
                self.idle.iter().filter(|(at, _)| *at > max_idle).map(|(_, d)| *d).collect();
            for d in late {
                self.idle.schedule(d, max_idle);
            }
        }
    }
}
