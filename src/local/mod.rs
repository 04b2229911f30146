//! Local peeks (MSC2753): device leases on rooms, `/sync` deltas, wake-ups and room demand.
//!
//! [`LocalPeeks`] tracks, per (user, device, room), whether the device peeks the room, until
//! when (its lease), and what its next `/sync` must say about it. It is pure and sans-IO: every
//! `handle_*` takes `now` first, consequences come out of [`LocalPeeks::poll_output`], and
//! [`LocalPeeks::poll_timeout`] says when to call [`LocalPeeks::handle_timeout`].
//!
//! # States of one (user, device, room)
//!
//! ```text
//!                 handle_peek (R5: renew, same state, no stream entry, no Wake)
//!                   ┌──────┐
//!                   │      ▼
//!   (none) ──peek──▶ peeking ──unpeek (R12) / expiry at expires_at (R11) /──▶ ended ──retention──▶ (none)
//!     ▲              │   │     access lost (R24) / remote unavailable (R27)     │
//!     │              │   │                                                      │ peek again (R15)
//!     │              │   └──handle_joined (R19, R20)──▶ joined ──retention──▶ (none)
//!     │              │                                    └─ a later leave does not bring `peek` back
//!     └─device removed / user deactivated (R25): dropped, no ended entry, no Wake
//! ```
//!
//! * `peeking` is reported as `started` (full state, R15) to a sync whose `since` is before the
//!   start, else as `peeking` (only with new events, R16). Per device only (R10).
//! * `ended` is reported in `leave` (R21) and `joined` in `join` without full state (R19),
//!   but only to a device that had been told about the peek; a peek that started and ended
//!   between two syncs is not reported at all. A room is never in both `peek` and `join` (R23).
//! * An initial sync (no `since`) lists every live peek as `started` and cancels nothing (R22).
//! * Check order of `handle_peek` (R3–R8): already peeking → renew; joined → `AlreadyJoined`
//!   (R6); not `world_readable` → `NotPeekable` (R7); encrypted → `Encrypted` (R8); caps →
//!   `LimitExceeded` (R3).
//!
//! # Demand (DESIGN §4.4)
//!
//! A room is *demanded* while one of its peeks belongs to a *live* device: one that synced or
//! peeked within [`LocalConfig::device_idle_after`] (always live when that is `None`).
//! [`LocalOutput::RoomDemand`] reports every change; the coordinator opens or winds down the
//! federated peek accordingly. Idleness never ends a peek, only its lease does. Liveness is not
//! persisted: after [`LocalPeeks::restore`] every device counts as live from the restart.
//!
//! # Run-loop contract
//!
//! After every `handle_*` (and after `restore`), drain `poll_output` until `None`, write every
//! `Persist` before acting on what follows it, then read `poll_timeout` and call
//! `handle_timeout` when it is reached.

mod config;
mod error;
mod machine;
mod record;
mod restore;
mod state;

use std::collections::{HashMap, VecDeque};

use ruma_common::{DeviceId, OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, UserId};

pub use config::{LocalConfig, LocalGrant, LocalOutput, SyncDelta};
pub use error::{LocalEndReason, LocalPeekError};
pub use record::{LocalChange, LocalKey, LocalRecord};

use state::{DevIdx, DeviceSlot, Entry, RoomIdx, RoomSlot, Slab};

use crate::time::Monotonic;
use crate::{StreamPosition, TimerQueue, Timestamp};

/// The local peek machine (MSC2753). See the [module docs](self) for the state diagram.
#[derive(Debug, Clone)]
pub struct LocalPeeks {
    config: LocalConfig,
    clock: Monotonic,
    devices: Slab<DeviceSlot>,
    users: HashMap<OwnedUserId, HashMap<OwnedDeviceId, DevIdx>>,
    rooms: Slab<RoomSlot>,
    room_ids: HashMap<OwnedRoomId, RoomIdx>,
    /// Lease deadlines of live peeks (R11).
    leases: TimerQueue<(DevIdx, RoomIdx)>,
    /// Idle deadlines of devices with live peeks (DESIGN §4.4).
    idle: TimerQueue<DevIdx>,
    /// Collection deadlines of ended/joined entries, keyed by (position, device, room).
    collect: TimerQueue<(u64, DevIdx, RoomIdx)>,
    live_total: usize,
    ended_total: usize,
    /// The latest stream position handed out.
    position: u64,
    /// Entries at or below this position may have been collected.
    horizon: u64,
    /// What the store holds in its `Stream` record.
    persisted_stream: (u64, u64),
    out: VecDeque<LocalOutput>,
}

impl LocalPeeks {
    /// An empty machine.
    pub fn new(config: LocalConfig) -> Self {
        LocalPeeks {
            config,
            clock: Monotonic::default(),
            devices: Slab::default(),
            users: HashMap::new(),
            rooms: Slab::default(),
            room_ids: HashMap::new(),
            leases: TimerQueue::new(),
            idle: TimerQueue::new(),
            collect: TimerQueue::new(),
            live_total: 0,
            ended_total: 0,
            position: 0,
            horizon: 0,
            persisted_stream: (0, 0),
            out: VecDeque::new(),
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
        self.out.pop_front()
    }

    /// The earliest real deadline (a lease end, an idle device, a retained entry to collect),
    /// or `None` when there is none. Changes only through `handle_*` calls.
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
        let r = *self.room_ids.get(room)?;
        match self.dev(d).entries.get(&r)? {
            Entry::Peeking { expires_at, .. } => Some(*expires_at),
            Entry::Ended { .. } => None,
        }
    }

    /// The devices with a live peek on the room: the ones to wake when a new event lands in
    /// it (R14, R16). O(peekers); unordered.
    pub fn peekers<'a>(
        &'a self,
        room: &RoomId,
    ) -> impl Iterator<Item = (&'a UserId, &'a DeviceId)> + 'a {
        let slot = self.room_ids.get(room).and_then(|r| self.rooms.get(*r));
        slot.into_iter().flat_map(move |room| {
            room.peekers.iter().map(move |d| {
                let dev = self.dev(*d);
                (&*dev.user, &*dev.device)
            })
        })
    }

    /// Whether some live device peeks the room (DESIGN §4.4).
    pub fn is_demanded(&self, room: &RoomId) -> bool {
        self.room_ids.get(room).is_some_and(|r| self.room(*r).live > 0)
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

    /// Where each of the device's rooms goes in `/sync` since `since` (DESIGN §4.3): see
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
        for (r, entry) in &self.dev(d).entries {
            let room_id = || self.room(*r).id.clone();
            match (*entry, since) {
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

#[cfg(test)]
mod tests;
