//! [`LocalPeeks::restore`]: rebuilding the machine from its stored records.
//!
//! One pass over the records upserts each entry straight into the interned state (a repeated
//! key replaces the entry it already wrote, so the last record wins without first collecting
//! the records into a map keyed by cloned ids); a second pass over the entries builds the
//! three timer queues in bulk (one sort each instead of a tree insert per deadline).

use super::queue::Queued;
use super::state::{DevIdx, Entry, RoomIdx};
use super::{LocalConfig, LocalPeeks, LocalRecord};
use crate::deadlines::{DeadlineList, Handle, Ties};
use crate::time::{Monotonic, Timestamp};
use crate::timer::TimerQueue;

impl LocalPeeks {
    /// Rebuilds the machine from the records a store kept (every `Persist` applied in order).
    ///
    /// * Leases, stream positions (the counter survives, so clients' `since` tokens stay
    ///   valid), retained ended/joined entries and every deadline are rebuilt. Deadlines already
    ///   past are not acted on here: `poll_timeout` returns them and the first `handle_timeout`
    ///   processes them, exactly as the machine before the restart would have.
    /// * Liveness is not persisted (docs/architecture.md §4.4): every restored device counts as live from
    ///   `now`, and `poll_output` yields `RoomDemand { demanded: true }` for every room with a
    ///   live peek (sorted by room id) so the coordinator re-declares outbound demand.
    /// * Duplicate keys: the last record wins. Nothing panics on odd input; caps are not
    ///   re-applied to what the store already holds.
    /// * Stored times heal as when a running machine's clock is corrected: a lease ending more
    ///   than one lease after `now`, or an ended entry dated after `now`, is clamped and
    ///   re-persisted (a store written under a wrong clock keeps nothing alive for years).
    ///
    /// Memory: the entry slab is sized from the iterator's `size_hint` (its lower bound, at
    /// most `max_peeks_total`).
    ///
    /// Cost: O(n) hash-map upserts plus one O(n log n) sort per deadline list.
    pub fn restore(
        now: Timestamp,
        config: LocalConfig,
        records: impl IntoIterator<Item = LocalRecord>,
    ) -> Self {
        let mut this = LocalPeeks::new(config);
        this.clock = Monotonic::starting_at(now);
        // The entry slab is sized once from the records (at most the configured total), so a
        // restored machine does not hold room for up to twice its entries, as a vector that
        // grew by doubling would.
        let records = records.into_iter();
        this.entries.reserve(records.size_hint().0.min(this.config.max_peeks_total));
        // The last stream record wins, like any other key.
        let mut stream: Option<(u64, u64)> = None;
        // Stores hand records back grouped by device (key order): skip the two-level device
        // lookup while the device repeats. Device slots are never freed during a restore.
        let mut last: Option<DevIdx> = None;
        for record in records {
            let (user, device, room_id, entry) = match &record {
                LocalRecord::Stream { position, horizon } => {
                    stream = Some((position.0, horizon.0));
                    continue;
                }
                LocalRecord::Peek {
                    user_id: user,
                    device_id: device,
                    room_id,
                    started,
                    expires_at,
                } => {
                    let entry = Entry::Peeking {
                        started: *started,
                        expires_at: *expires_at,
                        slot: 0,
                        lease: Handle::LATE,
                    };
                    (user, device, room_id, entry)
                }
                LocalRecord::Ended {
                    user_id: user,
                    device_id: device,
                    room_id,
                    started,
                    position,
                    at,
                    reason,
                } => {
                    let entry = Entry::Ended {
                        started: *started,
                        position: *position,
                        at: *at,
                        reason: *reason,
                        collect: Handle::LATE,
                    };
                    (user, device, room_id, entry)
                }
            };
            let d = match last {
                Some(d) if this.dev(d).device == *device && this.dev(d).user == *user => d,
                _ => this.intern_device(user, device),
            };
            last = Some(d);
            let r = this.intern_room(room_id);
            this.restore_entry(d, r, entry);
        }
        this.restore_deadlines(now);
        // Stored times heal as a running machine's do when its clock is corrected: nothing
        // outlives its normal length from the restart time (a store written under a wrong
        // clock does not keep a peek alive for years).
        this.heal(now);
        if let Some((position, horizon)) = stream {
            this.position = this.position.max(position);
            this.horizon = this.horizon.max(horizon);
            this.persisted_stream = (position, horizon);
        }
        let mut demanded = Vec::new();
        for (r, room) in this.rooms.iter_mut() {
            room.live = u32::try_from(room.peekers.len()).expect("bounded by the records");
            if room.live > 0 {
                demanded.push(r);
            }
        }
        // In room-id order, so the outputs do not depend on slot numbering.
        demanded.sort_unstable_by(|a, b| this.room(*a).id.cmp(&this.room(*b).id));
        for r in demanded {
            this.queue(Queued::Demand { r, demanded: true });
        }
        this
    }

    /// Writes `entry` as the (only) entry of (d, r), replacing and unlinking whatever an
    /// earlier record left there. Room `live` counts and deadlines are set afterwards.
    fn restore_entry(&mut self, d: DevIdx, r: RoomIdx, mut entry: Entry) {
        // The deadline lists are built afterwards: an earlier record's entry is unlinked from
        // its room and the counts only.
        let e = match self.entry_of(d, r) {
            None => self.add_entry(d, r, entry),
            Some(e) => {
                match self.entry(e).state {
                    Entry::Peeking { slot, .. } => {
                        self.take_peeker(r, slot);
                        self.dev_mut(d).live_peeks -= 1;
                        self.live_total -= 1;
                    }
                    Entry::Ended { .. } => {
                        self.dev_mut(d).ended -= 1;
                        self.ended_total -= 1;
                    }
                }
                e
            }
        };
        match &mut entry {
            Entry::Peeking { slot, .. } => {
                let room = self.room_mut(r);
                *slot = u32::try_from(room.peekers.len()).expect("bounded by the records");
                room.peekers.push((d, e));
                self.dev_mut(d).live_peeks += 1;
                self.live_total += 1;
            }
            Entry::Ended { .. } => {
                self.dev_mut(d).ended += 1;
                self.ended_total += 1;
            }
        }
        self.entry_mut(e).state = entry;
    }

    /// Builds the lease, collection and idle queues from the restored entries in bulk, and
    /// moves the stream position past every restored position.
    fn restore_deadlines(&mut self, now: Timestamp) {
        let retention = self.config.ended_retention;
        let mut leases = Vec::with_capacity(self.live_total);
        let mut collect = Vec::with_capacity(self.ended_total);
        let mut idle = Vec::new();
        let mut position = self.position;
        for (e, slot) in self.entries.iter() {
            match slot.state {
                Entry::Peeking { started, expires_at, .. } => {
                    leases.push((expires_at, e));
                    position = position.max(started.0);
                }
                Entry::Ended { started, position: end, at, .. } => {
                    collect.push((at.saturating_add(retention), (end.0, e)));
                    position = position.max(started.0).max(end.0);
                }
            }
        }
        if let Some(idle_after) = self.config.device_idle_after {
            for (d, dev) in self.devices.iter() {
                if dev.live_peeks > 0 {
                    idle.push((d, now.saturating_add(idle_after)));
                }
            }
        }
        // `build` lays the nodes out in deadline order, as `handle_timeout` walks them. A second
        // pass visits the entries in the same order (the slab is not changed in between) and
        // gives each its handle.
        let (leases, lease_handles) = DeadlineList::build(Ties::Any, leases);
        let (collect, collect_handles) = DeadlineList::build(Ties::ByKey, collect);
        let (mut lease, mut kept) = (lease_handles.iter(), collect_handles.iter());
        for slot in self.entries.values_mut() {
            match &mut slot.state {
                Entry::Peeking { lease: handle, .. } => {
                    *handle = *lease.next().expect("one handle per live peek");
                }
                Entry::Ended { collect: handle, .. } => {
                    *handle = *kept.next().expect("one handle per retained entry");
                }
            }
        }
        self.position = position;
        self.leases = leases;
        self.collect = collect;
        self.idle = TimerQueue::from_deadlines(idle);
    }
}
