//! What [`Peeking`](super::Peeking) persists: its own [`RemoteRoomRecord`]s, every machine's
//! changes as one [`Change`], and everything a store holds as one [`Snapshot`].

use std::collections::BTreeMap;

use ruma_common::{OwnedRoomId, OwnedServerName};
use serde::{Deserialize, Serialize};

use crate::access::RoomAccess;
use crate::inbound::{InboundChange, InboundKey, InboundRecord};
use crate::local::{LocalChange, LocalKey, LocalRecord};
use crate::outbound::{OutboundChange, OutboundKey, OutboundRecord};

/// The coordinator's persisted memory of a room it peeks over federation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteRoomRecord {
    /// The room.
    pub room_id: OwnedRoomId,
    /// Candidate servers, in order of preference.
    pub via: Vec<OwnedServerName>,
    /// What the last established federated peek said about the room.
    pub access: Option<RoomAccess>,
}

impl RemoteRoomRecord {
    /// The storage key.
    pub fn key(&self) -> OwnedRoomId {
        self.room_id.clone()
    }
}

/// A change to the coordinator's [`RemoteRoomRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteRoomChange {
    /// Insert or replace.
    Upsert(RemoteRoomRecord),
    /// Remove (a missing key is fine).
    Remove(OwnedRoomId),
}

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
pub(crate) struct SnapshotMaps {
    local: BTreeMap<LocalKey, LocalRecord>,
    inbound: BTreeMap<InboundKey, InboundRecord>,
    outbound: BTreeMap<OutboundKey, OutboundRecord>,
    remote_rooms: BTreeMap<OwnedRoomId, RemoteRoomRecord>,
}

impl SnapshotMaps {
    /// Empty maps.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The maps holding `snapshot`'s records (a later duplicate key wins).
    pub(crate) fn from_snapshot(snapshot: &Snapshot) -> Self {
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
    pub(crate) fn apply_one(&mut self, change: &Change) {
        match change {
            Change::Local(c) => c.apply_to(&mut self.local),
            Change::Inbound(c) => c.apply_to(&mut self.inbound),
            Change::Outbound(c) => c.apply_to(&mut self.outbound),
            Change::RemoteRoom(c) => c.apply_to(&mut self.remote_rooms),
        }
    }

    /// Applies a batch in order.
    pub(crate) fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            self.apply_one(change);
        }
    }

    /// The records as a [`Snapshot`], sorted by key.
    pub(crate) fn to_snapshot(&self) -> Snapshot {
        Snapshot {
            local: self.local.values().cloned().collect(),
            inbound: self.inbound.values().cloned().collect(),
            outbound: self.outbound.values().cloned().collect(),
            remote_rooms: self.remote_rooms.values().cloned().collect(),
        }
    }

    /// Total number of records.
    #[cfg(feature = "testing")]
    pub(crate) fn len(&self) -> usize {
        self.local.len() + self.inbound.len() + self.outbound.len() + self.remote_rooms.len()
    }

    /// Whether there are no records at all.
    #[cfg(feature = "testing")]
    pub(crate) fn is_empty(&self) -> bool {
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

apply_to_map!(LocalChange, LocalKey, LocalRecord);
apply_to_map!(InboundChange, InboundKey, InboundRecord);
apply_to_map!(OutboundChange, OutboundKey, OutboundRecord);
apply_to_map!(RemoteRoomChange, OwnedRoomId, RemoteRoomRecord);
