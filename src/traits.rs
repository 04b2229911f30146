//! What the host supplies: storage ([`PeekStore`]), federation transport ([`PeekTransport`]) and
//! time ([`Clock`]), plus the serde types that cross the storage boundary ([`Change`],
//! [`Snapshot`]).
//!
//! The machines never call these; the [`Driver`](crate::Driver) does. A host that drives
//! [`Peeking`](crate::Peeking) itself needs none of them, but the [`Change`] and [`Snapshot`]
//! types are still what its own storage writes and reads.
//!
//! # Storage contract
//!
//! A store keeps, per record kind, a map from key to record. [`PeekStore::save`] applies one
//! batch of [`Change`]s **in order** (an upsert replaces the record with the same key; a remove
//! of a missing key is a no-op) and must be atomic: after a crash either the whole batch is
//! there or none of it. Saves are idempotent: applying the same batch twice leaves the same
//! state. [`PeekStore::load`] returns every record ([`Snapshot`]); order does not matter.
//! `testing::store_conformance` checks a store against this contract.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::coordinator::{RemoteRoomChange, RemoteRoomRecord};
use crate::inbound::{InboundChange, InboundRecord};
use crate::local::{LocalChange, LocalRecord};
use crate::outbound::{OutboundChange, OutboundRecord, PeekOutcome, Request};

/// One storage write, from whichever machine asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// A local peek record changed.
    Local(LocalChange),
    /// An inbound peek record changed.
    Inbound(InboundChange),
    /// An outbound peek record changed.
    Outbound(OutboundChange),
    /// The coordinator's memory of which rooms are peeked over federation changed.
    RemoteRoom(RemoteRoomChange),
}

/// Everything a store holds: what [`Peeking::restore`](crate::Peeking::restore) needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Local peek records.
    pub local: Vec<LocalRecord>,
    /// Inbound peek records.
    pub inbound: Vec<InboundRecord>,
    /// Outbound peek records.
    pub outbound: Vec<OutboundRecord>,
    /// Rooms the coordinator peeks over federation, with their candidate servers.
    pub remote_rooms: Vec<RemoteRoomRecord>,
}

impl Snapshot {
    /// Applies `changes` in order with the storage contract's semantics. Returns the result as a
    /// new snapshot, records sorted by key. A reference implementation for hosts and tests; a
    /// real store applies changes to its tables instead.
    pub fn apply(&self, changes: &[Change]) -> Snapshot {
        let mut maps = SnapshotMaps::from_snapshot(self);
        maps.apply(changes);
        maps.to_snapshot()
    }
}

/// A [`Snapshot`] kept as key → record maps, so batches apply in O(log n) per change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SnapshotMaps {
    local: BTreeMap<crate::local::LocalKey, LocalRecord>,
    inbound: BTreeMap<crate::inbound::InboundKey, InboundRecord>,
    outbound: BTreeMap<crate::outbound::OutboundKey, OutboundRecord>,
    remote_rooms: BTreeMap<ruma_common::OwnedRoomId, RemoteRoomRecord>,
}

impl SnapshotMaps {
    /// Empty maps.
    pub fn new() -> Self {
        Self::default()
    }

    /// The maps holding `snapshot`'s records (a later duplicate key wins).
    pub fn from_snapshot(snapshot: &Snapshot) -> Self {
        let mut maps = SnapshotMaps::new();
        for r in &snapshot.local {
            maps.local.insert(r.key(), r.clone());
        }
        for r in &snapshot.inbound {
            maps.inbound.insert(r.key(), r.clone());
        }
        for r in &snapshot.outbound {
            maps.outbound.insert(r.key(), r.clone());
        }
        for r in &snapshot.remote_rooms {
            maps.remote_rooms.insert(r.key(), r.clone());
        }
        maps
    }

    /// Applies one change: upsert replaces, remove of a missing key does nothing.
    pub fn apply_one(&mut self, change: &Change) {
        match change {
            Change::Local(c) => c.apply_to(&mut self.local),
            Change::Inbound(c) => c.apply_to(&mut self.inbound),
            Change::Outbound(c) => c.apply_to(&mut self.outbound),
            Change::RemoteRoom(c) => c.apply_to(&mut self.remote_rooms),
        }
    }

    /// Applies a batch in order.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            self.apply_one(change);
        }
    }

    /// The records as a [`Snapshot`], sorted by key.
    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            local: self.local.values().cloned().collect(),
            inbound: self.inbound.values().cloned().collect(),
            outbound: self.outbound.values().cloned().collect(),
            remote_rooms: self.remote_rooms.values().cloned().collect(),
        }
    }

    /// Total number of records.
    pub fn len(&self) -> usize {
        self.local.len() + self.inbound.len() + self.outbound.len() + self.remote_rooms.len()
    }

    /// Whether there are no records at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `apply_to`: the storage contract for one record kind, in one place. Stores, tests and
/// [`SnapshotMaps`] all apply changes through it.
macro_rules! apply_to_map {
    ($change:ty, $key:ty, $record:ty) => {
        impl $change {
            /// Applies this change to a key → record map: an upsert replaces the record with
            /// the same key, a remove of a missing key does nothing.
            pub fn apply_to(&self, map: &mut BTreeMap<$key, $record>) {
                match self {
                    Self::Upsert(record) => {
                        map.insert(record.key(), record.clone());
                    }
                    Self::Remove(key) => {
                        map.remove(key);
                    }
                }
            }
        }
    };
}

apply_to_map!(LocalChange, crate::local::LocalKey, LocalRecord);
apply_to_map!(InboundChange, crate::inbound::InboundKey, InboundRecord);
apply_to_map!(OutboundChange, crate::outbound::OutboundKey, OutboundRecord);
apply_to_map!(RemoteRoomChange, ruma_common::OwnedRoomId, RemoteRoomRecord);

/// Durable storage for peek state.
///
/// `save` must be atomic per batch and idempotent (see the module docs). The driver calls
/// `save` before it acknowledges a call or starts a send the batch justifies, and never calls
/// two `save`s concurrently.
#[async_trait]
pub trait PeekStore: Send + Sync {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every stored record.
    async fn load(&self) -> Result<Snapshot, Self::Error>;

    /// Applies one batch of changes, in order, atomically.
    async fn save(&self, changes: &[Change]) -> Result<(), Self::Error>;
}

/// The federation client: sends one MSC2444 request and classifies the answer.
///
/// The implementation does the HTTP call (with signing), and for a successful `PUT` validates
/// the response like a `send_join` response and ingests the state (R49, R50) before answering
/// [`PeekOutcome::Established`]. `crate::wire` has the paths, bodies and the
/// response → [`PeekFailure`](crate::outbound::PeekFailure) classifier. It should bound its own
/// time (a timeout answers `Failed(Unreachable)`); the driver keeps retries and deadlines.
#[async_trait]
pub trait PeekTransport: Send + Sync {
    /// Sends `request` and reports what became of it.
    async fn send(&self, request: Request) -> PeekOutcome;
}

/// Wall-clock time for the driver.
///
/// [`SystemClock`](crate::SystemClock) reads the system time; `testing::ManualClock` is moved
/// by hand.
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Completes once `now() >= deadline`.
    async fn sleep_until(&self, deadline: Timestamp);
}
