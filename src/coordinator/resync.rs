//! [`RoomTimers`]: the per-room anti-entropy deadlines of the split halves
//! (docs/architecture.md §7.5, "Anti-entropy").
//!
//! Over a log, a half can lose what the other half told it: a federation side restarts and
//! forgets a demand it held no record for, or a sync side crashes after saving "nobody peeks
//! the room" but before publishing `NoDemand`. Because the routing messages are levels, saying
//! the current level again is always safe, so each half restates on a timer:
//!
//! ```text
//!   sync side:        Demand(R) sent ──(resync_interval)──► Demand(R) again, while R is wanted
//!   federation side:  Demand(R) applied ──(2 × resync_interval, nothing newer)──►
//!                     Confirm(R) to the sync side, while R is demanded and its peek held
//! ```
//!
//! While both halves are up and R is wanted, the sync side's restatement arrives every
//! interval and keeps pushing the federation side's deadline back, so `Confirm` is sent only
//! when the sync side went quiet about a room it no longer wants (or is down). Inside
//! [`Peeking`](super::Peeking), where messages cannot be lost, both are off.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ruma_common::{OwnedRoomId, RoomId};

use crate::time::Timestamp;

/// The shortest restatement interval: a smaller configured value is raised to it.
pub(super) const MIN_RESYNC_INTERVAL: Duration = Duration::from_secs(1);

/// One deadline per room, `period` after it was last armed; after a clock correction the
/// owning side calls [`heal`](Self::heal), so no deadline is then further than `period` away.
/// Ordered maps, not hash tables: room ids come from clients and remotes, and nothing here
/// needs O(1).
#[derive(Debug, Clone)]
pub(super) struct RoomTimers {
    by_room: BTreeMap<OwnedRoomId, Timestamp>,
    by_time: BTreeSet<(Timestamp, OwnedRoomId)>,
    /// `None`: switched off (inside `Peeking`); arming does nothing.
    period: Option<Duration>,
}

impl RoomTimers {
    /// Timers that fire `period` (raised to [`MIN_RESYNC_INTERVAL`]) after being armed.
    pub(super) fn new(period: Duration) -> Self {
        RoomTimers {
            by_room: BTreeMap::new(),
            by_time: BTreeSet::new(),
            period: Some(period.max(MIN_RESYNC_INTERVAL)),
        }
    }

    /// Switches the timers off and forgets every deadline.
    pub(super) fn disable(&mut self) {
        self.period = None;
        self.by_room.clear();
        self.by_time.clear();
    }

    /// (Re)arms `room`'s deadline one period from `now`.
    pub(super) fn arm(&mut self, now: Timestamp, room: &RoomId) {
        if let Some(period) = self.period {
            self.set(room.to_owned(), now.saturating_add(period));
        }
    }

    fn set(&mut self, room: OwnedRoomId, at: Timestamp) {
        if let Some(old) = self.by_room.insert(room.clone(), at) {
            self.by_time.remove(&(old, room.clone()));
        }
        self.by_time.insert((at, room));
    }

    /// Forgets `room`'s deadline.
    pub(super) fn disarm(&mut self, room: &RoomId) {
        if let Some(at) = self.by_room.remove(room) {
            self.by_time.remove(&(at, room.to_owned()));
        }
    }

    /// Every room whose deadline is at or before `now`, in deadline order; they are disarmed.
    pub(super) fn due(&mut self, now: Timestamp) -> Vec<OwnedRoomId> {
        let mut due = Vec::new();
        while self.by_time.first().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, room)) = self.by_time.pop_first() {
                self.by_room.remove(&room);
                due.push(room);
            }
        }
        due
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// After the owner's clock was corrected back to `now`: no deadline stays further than one
    /// period from it.
    pub(super) fn heal(&mut self, now: Timestamp) {
        let Some(period) = self.period else { return };
        let latest = now.saturating_add(period);
        let late: Vec<OwnedRoomId> = self
            .by_time
            .iter()
            .rev()
            .take_while(|(at, _)| *at > latest)
            .map(|(_, room)| room.clone())
            .collect();
        for room in late {
            self.set(room, latest);
        }
    }
}
