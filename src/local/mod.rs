//! Local peeks (MSC2753): device leases on rooms, `/sync` deltas, wake-ups and room demand.
//! The state diagram and the rules are on [`LocalPeeks`], the public face of this module.

mod config;
mod error;
mod inspect;
mod names;
mod output;
mod queue;
mod record;
mod restore;
mod state;
mod stats;

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use ruma_common::{DeviceId, RoomId, UserId};

pub use config::LocalConfig;
pub use error::{LocalEndReason, LocalPeekError};
pub use inspect::{LocalEnding, LocalPeekInfo};
pub use output::{LocalGrant, LocalOutput, SyncDelta};
pub use record::{LocalChange, LocalKey, LocalRecord};
pub use stats::{LocalEndings, LocalRefusals, LocalStats};

use names::Names;
use state::{Deadline, DevIdx, DeviceSlot, Entry, EntryIdx, EntrySlot, RoomIdx, RoomSlot};

use crate::access::RoomAccess;
use crate::deadlines::{DeadlineList, Ties};
use crate::ids::StreamPosition;
use crate::slab::Slab;
use crate::time::{Monotonic, Timestamp};
use crate::timer::{FxBuild, TimerQueue};

/// The local peek machine (MSC2753). See the [type docs](Self) for the state diagram.
///
/// Local peeks (MSC2753): device leases on rooms, `/sync` deltas, wake-ups and room demand.
///
/// [`LocalPeeks`] tracks, per (user, device, room), whether the device peeks the room, until
/// when (its lease), and what its next `/sync` must say about it. It is pure and sans-IO: every
/// `handle_*` takes `now` first, consequences come out of [`LocalPeeks::poll_output`], and
/// [`LocalPeeks::poll_timeout`] says when to call [`LocalPeeks::handle_timeout`].
///
/// # States of one (user, device, room)
///
/// ```text
///                 handle_peek (R5: renew, same state, no stream entry, no Wake)
///                   ┌──────┐
///                   │      ▼
///   (none) ──peek──▶ peeking ──unpeek (R12) / expiry at expires_at (R11) /──▶ ended ──retention──▶ (none)
///     ▲              │   │     access lost (R24) / remote unavailable (R27)     │
///     │              │   │                                                      │ peek again (R15)
///     │              │   └──handle_joined (R19, R20)──▶ joined ──retention──▶ (none)
///     │              │                                    └─ a later leave does not bring `peek` back
///     └─device removed / user deactivated (R25): dropped, no ended entry, no Wake
/// ```
///
/// * `peeking` is reported as `started` (full state, R15) to a sync whose `since` is before the
///   start, else as `peeking` (only with new events, R16). Per device only (R10).
/// * `ended` is reported in `leave` (R21) and `joined` in `join` without full state (R19),
///   but only to a device that had been told about the peek; a peek that started and ended
///   between two syncs is not reported at all. A room is never in both `peek` and `join` (R23).
/// * An initial sync (no `since`) lists every live peek as `started` and cancels nothing (R22).
/// * Check order of `handle_peek` (R3–R8): already peeking → renew; joined → `AlreadyJoined`
///   (R6); not `world_readable` → `NotPeekable` (R7); encrypted → `Encrypted` (R8); caps →
///   `LimitExceeded` (R3).
///
/// # Demand (docs/architecture.md §4.4)
///
/// A room is *demanded* while one of its peeks belongs to a *live* device: one that synced or
/// peeked within [`LocalConfig::device_idle_after`] (always live when that is `None`).
/// [`LocalOutput::RoomDemand`] reports every change; the coordinator opens or winds down the
/// federated peek accordingly. Idleness never ends a peek, only its lease does. Liveness is not
/// persisted: after [`LocalPeeks::restore`] every device counts as live from the restart.
///
/// # Run-loop contract
///
/// After every `handle_*` (and after `restore`), drain `poll_output` until `None`, write every
/// `Persist` before acting on what follows it, then read `poll_timeout` and call
/// `handle_timeout` when it is reached.
#[derive(Debug, Clone)]
pub struct LocalPeeks {
    config: LocalConfig,
    clock: Monotonic,
    devices: Slab<DeviceSlot>,
    rooms: Slab<RoomSlot>,
    /// Every (device, room) remembered: live peeks and retained ended/joined entries.
    entries: Slab<EntrySlot>,
    /// (user, device) → device, user → devices, room id → room (the names live in the slots).
    names: Names,
    /// Lease deadlines of live peeks (R11), by entry; each entry's `expires_at` is its
    /// deadline here, and its `lease` handle where it is kept. Ties in any order:
    /// `handle_timeout` sorts.
    leases: DeadlineList<EntryIdx>,
    /// Idle deadlines of devices with live peeks (docs/architecture.md §4.4).
    idle: TimerQueue<DevIdx>,
    /// Collection deadlines of ended/joined entries, keyed by (position, entry); an entry's
    /// deadline is its `at + ended_retention` (its `collect` handle says where it is kept).
    /// Ties in key order: the oldest entry comes first.
    collect: DeadlineList<(u64, EntryIdx)>,
    live_total: usize,
    ended_total: usize,
    /// Devices holding an entry (the others are kept only for queued outputs).
    holding: usize,
    /// The latest stream position handed out.
    position: u64,
    /// Entries at or below this position may have been collected.
    horizon: u64,
    /// What the store holds in its `Stream` record.
    persisted_stream: (u64, u64),
    /// Outputs not yet taken, compact (their ids are copied out when taken; see `queue.rs`).
    out: VecDeque<queue::Queued>,
    stats: LocalStats,
}

impl LocalPeeks {
    /// An empty machine.
    pub fn new(config: LocalConfig) -> Self {
        LocalPeeks {
            config,
            clock: Monotonic::default(),
            devices: Slab::default(),
            rooms: Slab::default(),
            entries: Slab::default(),
            names: Names::default(),
            leases: DeadlineList::new(Ties::Any),
            idle: TimerQueue::new(),
            collect: DeadlineList::new(Ties::ByKey),
            live_total: 0,
            ended_total: 0,
            holding: 0,
            position: 0,
            horizon: 0,
            persisted_stream: (0, 0),
            out: VecDeque::new(),
            stats: LocalStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LocalConfig {
        &self.config
    }

    /// The next consequence of earlier inputs, or `None`. New outputs appear only after a
    /// `handle_*` call or `restore`; drain it after each.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<LocalOutput> {
        let output = self.take_output();
        crate::log::output!("local", output);
        output
    }

    /// What the machine did (counters) and holds (gauges). O(rooms) for the demanded-rooms
    /// gauge; cheap enough for every metrics scrape. Changes after every `handle_*`.
    pub fn stats(&self) -> LocalStats {
        let mut stats = self.stats;
        stats.live_peeks = self.live_total as u64;
        stats.retained_entries = self.ended_total as u64;
        // A device slot kept only for a queued output holds nothing.
        stats.devices = self.holding as u64;
        stats.demanded_rooms = self.rooms.iter().filter(|(_, room)| room.live > 0).count() as u64;
        stats
    }

    /// The earliest deadline, or `None` when there is none. Three kinds:
    ///
    /// * a live peek's lease end (R11);
    /// * a device going idle (`device_idle_after`, when set): its rooms stop counting as
    ///   demanded, no peek ends;
    /// * the collection of a retained ended or joined entry (`ended_retention` after it ended,
    ///   24 h by default), which ends nothing visible: the entry leaves `/sync` and
    ///   [`end_reason`](Self::end_reason).
    ///
    /// So after every lease has expired a deadline remains until the last entry is collected.
    /// Changes only through `handle_*` calls.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        [self.leases.next(), self.idle.next(), self.collect.next()].into_iter().flatten().min()
    }

    /// Whether the device has a live peek on the room (R10). Changes only through `handle_*`.
    pub fn is_peeking(&self, user: &UserId, device: &DeviceId, room: &RoomId) -> bool {
        self.lease(user, device, room).is_some()
    }

    /// When the device's live peek on the room expires, if it has one.
    pub fn lease(&self, user: &UserId, device: &DeviceId, room: &RoomId) -> Option<Timestamp> {
        let d = self.find_device(user, device)?;
        let r = self.find_room(room)?;
        match self.state_of(d, r)? {
            Entry::Peeking { expires_at, .. } => Some(expires_at),
            Entry::Ended { .. } => None,
        }
    }

    /// The devices with a live peek on the room: the ones to wake when a new event lands in
    /// it (R14, R16). O(peekers); unordered.
    pub fn peekers<'a>(
        &'a self,
        room: &RoomId,
    ) -> impl Iterator<Item = (&'a UserId, &'a DeviceId)> + 'a {
        let slot = self.find_room(room).and_then(|r| self.rooms.get(r));
        slot.into_iter().flat_map(move |room| {
            room.peekers.iter().map(move |&(d, _)| {
                let dev = self.dev(d);
                (&*dev.user, &*dev.device)
            })
        })
    }

    /// Whether some live device peeks the room (docs/architecture.md §4.4).
    pub fn is_demanded(&self, room: &RoomId) -> bool {
        self.find_room(room).is_some_and(|r| self.room(r).live > 0)
    }

    /// Every demanded room, unordered.
    pub fn demanded_rooms(&self) -> impl Iterator<Item = &RoomId> {
        self.rooms.iter().filter(|(_, room)| room.live > 0).map(|(_, room)| &*room.id)
    }

    /// The number of live peeks.
    pub fn len(&self) -> usize {
        self.live_total
    }

    /// Whether there is no live peek.
    pub fn is_empty(&self) -> bool {
        self.live_total == 0
    }

    /// The latest stream position handed out (what an initial sync returns as `next`).
    pub fn stream_position(&self) -> StreamPosition {
        StreamPosition(self.position)
    }

    /// Where each of the device's rooms goes in `/sync` since `since` (docs/architecture.md §4.3): see
    /// [`SyncDelta`]. `None` (initial sync), a `since` older than the collection horizon, or
    /// one later than any position handed out are all answered like an initial sync. A pure
    /// query: it cancels nothing (R22). O(entries of the device).
    pub fn sync_delta(
        &self,
        user: &UserId,
        device: &DeviceId,
        since: Option<StreamPosition>,
    ) -> SyncDelta {
        let mut delta = SyncDelta { next: StreamPosition(self.position), ..SyncDelta::default() };
        let Some(d) = self.find_device(user, device) else { return delta };
        let since = since.filter(|s| s.0 >= self.horizon && s.0 <= self.position);
        for (r, &e) in &self.dev(d).entries {
            let room_id = || self.room(*r).id.clone();
            match (self.entry(e).state, since) {
                (Entry::Peeking { .. }, None) => delta.started.push(room_id()),
                (Entry::Peeking { started, .. }, Some(s)) => {
                    if started > s {
                        delta.started.push(room_id());
                    } else {
                        delta.peeking.push(room_id());
                    }
                }
                (Entry::Ended { .. }, None) => {}
                (Entry::Ended { started, position, reason, .. }, Some(s)) => {
                    // Not yet seen by this since, and the device had been told of the peek.
                    if position > s && started <= s {
                        if reason == LocalEndReason::Joined {
                            delta.joined.push(room_id());
                        } else {
                            delta.ended.push(room_id());
                        }
                    }
                }
            }
        }
        delta.started.sort();
        delta.peeking.sort();
        delta.ended.sort();
        delta.joined.sort();
        delta
    }
}

// ----- inputs -----

impl LocalPeeks {
    /// `POST /peek`: starts or renews the lease of (user, device, room).
    ///
    /// Checks, in order (docs/architecture.md §4.1): already peeking → renew (new expiry, no new stream
    /// entry, no `Wake`, R5); `joined` → [`LocalPeekError::AlreadyJoined`] (R6); not
    /// `world_readable` → [`LocalPeekError::NotPeekable`] (R7); encrypted →
    /// [`LocalPeekError::Encrypted`] (R8); a cap → [`LocalPeekError::LimitExceeded`] (R3).
    /// A peek (start or renew) also counts as device activity (docs/architecture.md §4.4).
    pub fn handle_peek(
        &mut self,
        now: Timestamp,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
        joined: bool,
        access: &RoomAccess,
    ) -> Result<LocalGrant, LocalPeekError> {
        crate::log::span!("local_peek", %user, %device, %room);
        let result = self.peek(now, user, device, room, joined, access);
        if let Err(e) = &result {
            self.stats.refused(e);
            crate::log::debug!(error = %e, "local peek refused");
        }
        result
    }

    fn peek(
        &mut self,
        now: Timestamp,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
        joined: bool,
        access: &RoomAccess,
    ) -> Result<LocalGrant, LocalPeekError> {
        // Leases run from the host's own `now`, so no grant ends more than one lease after it,
        // even while a small step back is being absorbed.
        let host_now = now;
        let now = self.tick(now);
        let lease = self.config.effective_lease();
        // One lookup of each name per call: the device and room found here are reused below
        // (each lookup is a keyed hash of the id and a probe).
        let device_hash = self.names.device_hash(user, device);
        let found_device = self.names.find_device(&self.devices, device_hash, user, device);
        let room_hash = self.names.room_hash(room);
        let found_room = self.names.find_room(&self.rooms, room_hash, room);
        if let Some((d, r)) = found_device.zip(found_room)
            && let Some(e) = self.entry_of(d, r)
            && let Some(EntrySlot {
                state: Entry::Peeking { expires_at, lease: handle, .. }, ..
            }) = self.entries.get_mut(e)
        {
            // R5: renew.
            let new_expiry = host_now.saturating_add(lease);
            let old = std::mem::replace(expires_at, new_expiry);
            *handle = self.leases.reschedule(*handle, e, old, new_expiry);
            self.stats.renewed += 1;
            self.persist_entry(e);
            self.touch(now, d);
            return Ok(LocalGrant { room_id: room.to_owned(), expires_at: new_expiry });
        }
        if joined {
            return Err(LocalPeekError::AlreadyJoined);
        }
        if !access.world_readable {
            return Err(LocalPeekError::NotPeekable);
        }
        if access.encrypted {
            return Err(LocalPeekError::Encrypted);
        }
        let device_peeks = found_device.map_or(0, |d| self.dev(d).live_peeks as usize);
        if device_peeks >= self.config.max_peeks_per_device {
            let earliest = found_device.and_then(|d| {
                self.dev(d)
                    .entries
                    .values()
                    .filter_map(|&e| match self.entry(e).state {
                        Entry::Peeking { expires_at, .. } => Some(expires_at),
                        Entry::Ended { .. } => None,
                    })
                    .min()
            });
            return Err(self.limit(now, earliest));
        }
        if self.live_total >= self.config.max_peeks_total {
            return Err(self.limit(now, self.leases.next()));
        }
        let d = match found_device {
            Some(d) => d,
            None => self.add_device(device_hash, user, device),
        };
        let r = match found_room {
            Some(r) => r,
            None => self.add_room(room_hash, room),
        };
        self.touch(now, d);
        let expires_at = self.start_peek(host_now, d, r);
        // The first `touch` revived an idle device; this one starts the idle clock now that
        // the device has a live peek.
        self.touch(now, d);
        Ok(LocalGrant { room_id: room.to_owned(), expires_at })
    }

    /// Orders two entries by their (user, device, room) ids.
    fn cmp_entries(&self, a: EntryIdx, b: EntryIdx) -> std::cmp::Ordering {
        let (a, b) = (self.entry(a), self.entry(b));
        let (da, db) = (self.dev(a.d), self.dev(b.d));
        (&da.user, &da.device, &self.room(a.r).id).cmp(&(&db.user, &db.device, &self.room(b.r).id))
    }

    fn limit(&self, now: Timestamp, earliest: Option<Timestamp>) -> LocalPeekError {
        let retry_after = earliest
            .map_or(self.config.effective_lease(), |at| at.saturating_duration_since(now))
            .max(Duration::from_millis(1));
        LocalPeekError::LimitExceeded { retry_after }
    }

    /// `POST /unpeek` (R12): ends the peek; the room goes to `leave` in the device's next sync
    /// (R21). Unknown → [`LocalPeekError::NotPeeking`] (R13).
    pub fn handle_unpeek(
        &mut self,
        now: Timestamp,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
    ) -> Result<(), LocalPeekError> {
        crate::log::span!("local_unpeek", %user, %device, %room);
        let now = self.tick(now);
        let Some(e) = self.live_peek(user, device, room) else {
            self.stats.refused(&LocalPeekError::NotPeeking);
            return Err(LocalPeekError::NotPeeking);
        };
        self.end_peek(now, e, LocalEndReason::Unpeeked);
        Ok(())
    }

    /// The live peek of (user, device, room), if there is one.
    fn live_peek(&self, user: &UserId, device: &DeviceId, room: &RoomId) -> Option<EntryIdx> {
        let d = self.find_device(user, device)?;
        let r = self.find_room(room)?;
        self.entry_of(d, r).filter(|&e| matches!(self.entry(e).state, Entry::Peeking { .. }))
    }

    /// The user joined the room (R19, R20): every device of theirs peeking it moves to `join`
    /// without full state, the peeks end with [`LocalEndReason::Joined`], and a later leave does
    /// not bring `peek` back.
    pub fn handle_joined(&mut self, now: Timestamp, user: &UserId, room: &RoomId) {
        let now = self.tick(now);
        let Some(r) = self.find_room(room) else { return };
        let mut peeks: Vec<EntryIdx> = self
            .names
            .devices_of(&self.devices, user)
            .iter()
            .filter_map(|&d| self.entry_of(d, r))
            .filter(|&e| matches!(self.entry(e).state, Entry::Peeking { .. }))
            .collect();
        peeks.sort_by(|a, b| self.cmp_entries(*a, *b));
        for e in peeks {
            self.end_peek(now, e, LocalEndReason::Joined);
        }
    }

    /// The room's access changed (R24): when it is no longer peekable (not `world_readable`, or
    /// encrypted) every peek on it ends with [`LocalEndReason::AccessLost`] and goes to
    /// `leave`. A peekable `access` changes nothing.
    pub fn handle_access_changed(&mut self, now: Timestamp, room: &RoomId, access: &RoomAccess) {
        let now = self.tick(now);
        if !access.is_peekable() {
            self.end_room(now, room, LocalEndReason::AccessLost);
        }
    }

    /// The remote room can no longer be peeked (R27; the coordinator calls this when the
    /// federated peek is lost for good): every peek on it ends with
    /// [`LocalEndReason::RemoteUnavailable`] and goes to `leave`.
    pub fn handle_room_unavailable(&mut self, now: Timestamp, room: &RoomId) {
        let now = self.tick(now);
        self.end_room(now, room, LocalEndReason::RemoteUnavailable);
    }

    fn end_room(&mut self, now: Timestamp, room: &RoomId, reason: LocalEndReason) {
        let Some(r) = self.find_room(room) else { return };
        let mut peeks: Vec<EntryIdx> = self.room(r).peekers.iter().map(|&(_, e)| e).collect();
        peeks.sort_by(|a, b| self.cmp_entries(*a, *b));
        for e in peeks {
            self.end_peek(now, e, reason);
        }
    }

    /// The device was deleted or logged out (R25): its peeks and retained entries are dropped,
    /// with no `leave` entry and no `Wake` (nobody is left to sync).
    pub fn handle_device_removed(&mut self, now: Timestamp, user: &UserId, device: &DeviceId) {
        self.tick(now);
        if let Some(d) = self.find_device(user, device) {
            self.remove_device(d, LocalEndReason::DeviceRemoved);
        }
    }

    /// The account was deactivated (R25): like [`LocalPeeks::handle_device_removed`] for each of
    /// its devices.
    pub fn handle_user_deactivated(&mut self, now: Timestamp, user: &UserId) {
        self.tick(now);
        let mut devices: Vec<DevIdx> = self.names.devices_of(&self.devices, user).to_vec();
        devices.sort_unstable();
        for d in devices {
            self.remove_device(d, LocalEndReason::UserDeactivated);
        }
    }

    fn remove_device(&mut self, d: DevIdx, reason: LocalEndReason) {
        let now = self.clock.now();
        for r in self.peeking_rooms(d) {
            let e = self.entry_of(d, r).expect("a peeking room has an entry");
            self.end_peek(now, e, reason);
        }
        let mut retained: Vec<RoomIdx> = self.dev(d).entries.keys().copied().collect();
        retained.sort_unstable();
        for r in retained {
            // Dropping a retained entry does not move the horizon: the device is gone.
            let Some(e) = self.entry_of(d, r) else { continue };
            // Its live peeks have just ended and gone: what is left is retained.
            self.unretain(e, Deadline::Listed);
            self.persist_stream();
            self.queue(queue::Queued::Remove { d, r });
            self.forget_entry(e);
        }
        self.release_device(d);
    }

    /// The device synced (docs/architecture.md §4.4): it counts as live for `device_idle_after` from `now`;
    /// if it was idle, its rooms are demanded again. Unknown devices are ignored.
    pub fn handle_device_synced(&mut self, now: Timestamp, user: &UserId, device: &DeviceId) {
        let now = self.tick(now);
        if let Some(d) = self.find_device(user, device) {
            self.touch(now, d);
        }
    }

    /// Processes every deadline at or before `now`: leases end exactly at `expires_at` (R11,
    /// reason [`LocalEndReason::Expired`]), devices go idle, retained entries are collected.
    /// A no-op when nothing is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.tick(now);
        let mut due = Vec::new();
        while let Some((key, at)) = self.leases.pop_due(now) {
            due.push((at, key));
        }
        // Canonical order (deadline, user, device, room), so positions and cap evictions do
        // not depend on slot numbering (which differs after a restore).
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| self.cmp_entries(a.1, b.1)));
        // Each device is woken once, after every end's `Persist`, in the order its first peek
        // ended; then the retention caps are applied (their removals come after the wakes).
        let mut seen = HashSet::with_capacity_and_hasher(due.len(), FxBuild::default());
        let mut wake = Vec::new();
        for (_, e) in due {
            if let Some(d) = self.end_peek_unwoken(now, e, LocalEndReason::Expired, Deadline::Taken)
                && seen.insert(d)
            {
                wake.push(d);
            }
        }
        for &d in &wake {
            self.wake(d);
        }
        for d in wake {
            self.enforce_retention_caps(d);
        }
        while let Some((d, _)) = self.idle.pop_due(now) {
            self.go_idle(d);
        }
        // The horizon moves past every entry collected here before the first removal, so the
        // stream record is written once for the lot, not once per entry.
        let mut collect = Vec::new();
        while let Some(((position, e), _)) = self.collect.pop_due(now) {
            self.horizon = self.horizon.max(position);
            collect.push(e);
        }
        for e in collect {
            self.collect_entry(e, Deadline::Taken);
        }
    }
}

#[cfg(test)]
mod tests;
