//! What [`OutboundPeeks`](super::OutboundPeeks) persists (R59), per the crate's persistence
//! contract: [`OutboundRecord`], its [`OutboundKey`], and [`OutboundChange`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::access::RoomAccess;
use crate::ids::PeekId;
use crate::shared::{SharedRoomId, SharedServerName};
use crate::time::Timestamp;

/// One stored fact. A store keeps `OutboundKey -> OutboundRecord` and hands the values back to
/// [`OutboundPeeks::restore`](super::OutboundPeeks::restore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundRecord {
    /// The counters' high-water marks (singleton key [`OutboundKey::Counters`]). Ids and request
    /// ids below these may have been used; a restored machine starts from them, so a peek id is
    /// never reused, also across restarts (R47). Reserved in blocks, persisted before use.
    Counters {
        /// Next peek-id counter value that has never been handed out.
        peek_id: u64,
        /// Next request id that has never been handed out.
        request: u64,
    },
    /// A remote peek that exists or may exist (key [`OutboundKey::Room`], one per room, R58).
    Peek(OutboundPeekRecord),
    /// A local user is joined to this room: never peek it (R56, R57) until `handle_server_left`.
    Joined {
        /// The room.
        room_id: SharedRoomId,
    },
    /// A peek that is no longer the room's current one and is owed a `DELETE` (R55), sent in
    /// the background (key [`OutboundKey::Retired`]). Restored as a `DELETE` to send at once.
    Retired {
        /// The room.
        room_id: SharedRoomId,
        /// The resident holding (or maybe holding) it.
        server: SharedServerName,
        /// Its peek id there.
        peek_id: PeekId,
    },
}

/// A remote peek, as persisted (R59: room, target, peek id, deadlines, interval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundPeekRecord {
    /// The peeked room.
    pub room_id: SharedRoomId,
    /// The resident server holding (or asked for) the peek.
    pub server: SharedServerName,
    /// Our peek id at that server.
    pub peek_id: PeekId,
    /// What we know of it.
    pub phase: OutboundPeekPhase,
    /// What the host learnt about the room when the peek was established.
    pub access: Option<RoomAccess>,
}

/// How far a persisted peek got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum OutboundPeekPhase {
    /// The `PUT` was sent; its answer is unknown, so the resident may hold the peek. Restored as
    /// "maybe live": re-`PUT` with the same id (idempotent) when demanded again, else `DELETE`.
    Opening,
    /// Granted. Renew at `renew_at`; the resident drops it at `expires_at` unless renewed.
    Live {
        /// The last successful `PUT` or renewal.
        renewed_at: Timestamp,
        /// The remote's `renewal_interval`, unclamped, in milliseconds.
        #[serde(with = "millis")]
        interval: Duration,
        /// When the next renewal is due (R53).
        renew_at: Timestamp,
        /// When the peek is considered lapsed if not renewed.
        expires_at: Timestamp,
    },
    /// A `DELETE` is owed (R55); restored deletes are re-sent at once. Written by earlier
    /// versions only: a peek being deleted is now an [`OutboundRecord::Retired`].
    Deleting,
}

/// The key of an [`OutboundRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "room_id", rename_all = "snake_case")]
pub enum OutboundKey {
    /// The singleton counters record.
    Counters,
    /// The peek record of a room.
    Room(SharedRoomId),
    /// The joined marker of a room.
    Joined(SharedRoomId),
    /// A retired peek of a room.
    Retired {
        /// The room.
        room_id: SharedRoomId,
        /// The resident.
        server: SharedServerName,
        /// The peek id.
        peek_id: PeekId,
    },
}

impl OutboundRecord {
    /// The key this record is stored under.
    pub fn key(&self) -> OutboundKey {
        match self {
            OutboundRecord::Counters { .. } => OutboundKey::Counters,
            OutboundRecord::Peek(p) => OutboundKey::Room(p.room_id.clone()),
            OutboundRecord::Joined { room_id } => OutboundKey::Joined(room_id.clone()),
            OutboundRecord::Retired { room_id, server, peek_id } => OutboundKey::Retired {
                room_id: room_id.clone(),
                server: server.clone(),
                peek_id: peek_id.clone(),
            },
        }
    }
}

/// A change the store must apply, in order, before the output it precedes takes effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OutboundChange {
    /// Insert or replace the record under its key.
    Upsert(OutboundRecord),
    /// Remove the record under this key (a no-op when missing).
    Remove(OutboundKey),
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let rec = OutboundRecord::Peek(OutboundPeekRecord {
            room_id: "!r:a.org".try_into().unwrap(),
            server: "a.org".try_into().unwrap(),
            peek_id: "00000001".into(),
            phase: OutboundPeekPhase::Live {
                renewed_at: Timestamp::from_millis(5),
                interval: Duration::from_millis(3_600_000),
                renew_at: Timestamp::from_millis(10),
                expires_at: Timestamp::from_millis(20),
            },
            access: None,
        });
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<OutboundRecord>(&json).unwrap(), rec);
        let key = serde_json::to_string(&rec.key()).unwrap();
        assert_eq!(serde_json::from_str::<OutboundKey>(&key).unwrap(), rec.key());
        let c = OutboundChange::Upsert(OutboundRecord::Counters { peek_id: 1, request: 2 });
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<OutboundChange>(&json).unwrap(), c);
        assert_eq!(
            serde_json::to_string(&OutboundKey::Counters).unwrap(),
            r#"{"type":"counters"}"#
        );
    }
}
