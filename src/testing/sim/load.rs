//! What a resident sees ([`Sim::watch`]): the federation requests that reach it, per time
//! bucket and kind, what it answered, the state it sent and the relay copies it made. For
//! questions about load at scale (`run_scale`), where keeping every request is too much.

use std::collections::HashMap;
use std::time::Duration;

use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, ServerName};

use super::{Sim, SimError};
use crate::Timestamp;
use crate::outbound::{OutboundFailure, OutboundOutcome, OutboundRequestKind};

/// One time bucket of a [`ResidentLoad`]: what reached the resident while it was up (a
/// request sent to it while it was down is not seen, and not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadBucket {
    /// `PUT /peek` requests (new peeks, and re-`PUT`s of `RePut` renewals).
    pub put: u64,
    /// `POST …/renew` requests.
    pub renew: u64,
    /// `DELETE /peek` requests.
    pub delete: u64,
    /// `PUT`s answered with a new or refreshed peek (each sent the room's state).
    pub granted: u64,
    /// Requests answered 429 (`LimitExceeded`).
    pub rate_limited: u64,
    /// Requests answered 404 (an unknown peek or room).
    pub not_found: u64,
    /// Modelled bytes of state sent in granted `PUT` answers ([`Sim::set_state_bytes`]).
    pub state_bytes: u64,
    /// Event copies relayed to peeking servers.
    pub relay_copies: u64,
    /// Events relayed (created there, or received directly from their origin).
    pub events: u64,
}

impl LoadBucket {
    /// Every request: `put + renew + delete`.
    pub fn requests(&self) -> u64 {
        self.put + self.renew + self.delete
    }
}

/// What one watched resident saw, from [`Sim::watch`] on: a [`LoadBucket`] per `bucket` of
/// virtual time (bucket `i` covers `[start + i·bucket, start + (i+1)·bucket)`), the granted
/// `PUT`s per room, and the first success of each (room, origin) since the last
/// [`Sim::mark_load`]. Grows as requests arrive; a snapshot once cloned.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResidentLoad {
    /// When watching started.
    pub start: Timestamp,
    /// The width of a bucket.
    pub bucket: Duration,
    /// The buckets, up to the last one in which something happened.
    pub buckets: Vec<LoadBucket>,
    /// Granted `PUT`s per room, over the whole watch.
    pub granted_per_room: HashMap<OwnedRoomId, u64>,
    /// When [`Sim::mark_load`] was last called.
    pub mark: Option<Timestamp>,
    /// Since the mark: the first granted `PUT` or successful renewal of each (room, origin).
    pub back_since_mark: HashMap<(OwnedRoomId, OwnedServerName), Timestamp>,
}

impl ResidentLoad {
    fn bucket_mut(&mut self, at: Timestamp) -> &mut LoadBucket {
        let ms = at.saturating_duration_since(self.start).as_millis();
        let width = self.bucket.as_millis().max(1);
        let i = usize::try_from(ms / width).unwrap_or(usize::MAX);
        // Capped: a watch covers at most ~four years of one-minute buckets.
        let i = i.min(1 << 21);
        if self.buckets.len() <= i {
            self.buckets.resize(i + 1, LoadBucket::default());
        }
        &mut self.buckets[i]
    }
}

impl Sim {
    /// Starts recording what `server` sees, in buckets of `bucket` (at least 1 ms) from now
    /// ([`load`](Self::load)). Watching again starts afresh. [`SimError::UnknownServer`] for
    /// a server never added.
    pub fn watch(&mut self, server: &ServerName, bucket: Duration) -> Result<(), SimError> {
        self.node(server)?;
        let load = ResidentLoad {
            start: self.now,
            bucket: bucket.max(Duration::from_millis(1)),
            buckets: Vec::new(),
            granted_per_room: HashMap::new(),
            mark: None,
            back_since_mark: HashMap::new(),
        };
        self.watched.insert(server.to_owned(), load);
        Ok(())
    }

    /// What a [`watch`](Self::watch)ed server saw so far; `None` if it is not watched.
    pub fn load(&self, server: &ServerName) -> Option<&ResidentLoad> {
        self.watched.get(server)
    }

    /// From now on, [`ResidentLoad::back_since_mark`] records the first success of each (room,
    /// origin) at the watched `server` (cleared first). Does nothing for a server not watched.
    pub fn mark_load(&mut self, server: &ServerName) {
        let now = self.now;
        if let Some(load) = self.watched.get_mut(server) {
            load.mark = Some(now);
            load.back_since_mark.clear();
        }
    }

    /// Models the size of `room`'s state, sent in every granted `PUT` answer, for
    /// [`LoadBucket::state_bytes`]. Rooms without one count 0.
    pub fn set_state_bytes(&mut self, room: &RoomId, bytes: u64) {
        self.state_bytes.insert(room.to_owned(), bytes);
    }

    /// Event copies relayed to peeking servers so far, everywhere (kept in lean mode).
    pub fn relay_copies(&self) -> u64 {
        self.relay_copies
    }

    /// A request reached the watched `target` and was answered with `outcome`.
    pub(super) fn note_request(
        &mut self,
        target: &ServerName,
        origin: &ServerName,
        room: &RoomId,
        kind: &OutboundRequestKind,
        outcome: &OutboundOutcome,
    ) {
        let now = self.now;
        let Some(load) = self.watched.get_mut(target) else { return };
        let state = self.state_bytes.get(room).copied().unwrap_or(0);
        let put = matches!(kind, OutboundRequestKind::Peek { .. });
        let b = load.bucket_mut(now);
        match kind {
            OutboundRequestKind::Peek { .. } => b.put += 1,
            OutboundRequestKind::Renew => b.renew += 1,
            OutboundRequestKind::Unpeek => b.delete += 1,
        }
        let ok = match outcome {
            OutboundOutcome::Established { .. } => {
                b.granted += 1;
                b.state_bytes += state;
                true
            }
            OutboundOutcome::Renewed { .. } => {
                if put {
                    // A refreshed PUT sends the state again.
                    b.granted += 1;
                    b.state_bytes += state;
                }
                true
            }
            OutboundOutcome::Failed(OutboundFailure::RateLimited { .. }) => {
                b.rate_limited += 1;
                false
            }
            OutboundOutcome::Failed(OutboundFailure::NotFound) => {
                b.not_found += 1;
                false
            }
            _ => false,
        };
        if ok && put {
            *load.granted_per_room.entry(room.to_owned()).or_default() += 1;
        }
        if ok && load.mark.is_some() && !matches!(kind, OutboundRequestKind::Unpeek) {
            load.back_since_mark.entry((room.to_owned(), origin.to_owned())).or_insert(now);
        }
    }

    /// The watched `from` relayed one event to `copies` peeking servers.
    pub(super) fn note_relay(&mut self, from: &ServerName, copies: usize) {
        let now = self.now;
        if let Some(load) = self.watched.get_mut(from) {
            let b = load.bucket_mut(now);
            b.events += 1;
            b.relay_copies += copies as u64;
        }
    }
}
