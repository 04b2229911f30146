//! The persistence vocabulary of [`LocalPeeks`](super::LocalPeeks): [`LocalRecord`],
//! [`LocalKey`], [`LocalChange`] (docs/architecture.md §8.2).
//!
//! A store keeps a map `LocalKey -> LocalRecord`, applies every
//! [`LocalOutput::Persist`](super::LocalOutput::Persist) in order (an upsert replaces, a remove
//! of a missing key is a no-op) and hands the values back to
//! [`LocalPeeks::restore`](super::LocalPeeks::restore).

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::LocalEndReason;
use crate::ids::StreamPosition;
use crate::time::Timestamp;

/// One stored fact of the local peek machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LocalRecord {
    /// A live peek of (user, device, room).
    Peek {
        /// The device's user.
        #[serde(rename = "user")]
        user_id: OwnedUserId,
        /// The device.
        #[serde(rename = "device")]
        device_id: OwnedDeviceId,
        /// The room.
        room_id: OwnedRoomId,
        /// The stream position at which this peek started (R15).
        started: StreamPosition,
        /// When the lease ends (R11).
        expires_at: Timestamp,
    },
    /// A peek that ended (`reason != Joined`, reported in `leave`) or turned into a join
    /// (`reason == Joined`, reported in `join`), kept for `ended_retention`.
    Ended {
        /// The device's user.
        #[serde(rename = "user")]
        user_id: OwnedUserId,
        /// The device.
        #[serde(rename = "device")]
        device_id: OwnedDeviceId,
        /// The room.
        room_id: OwnedRoomId,
        /// The stream position at which the peek had started.
        started: StreamPosition,
        /// The stream position of the end.
        position: StreamPosition,
        /// When it ended; the entry is collected at `at + ended_retention`.
        at: Timestamp,
        /// Why it ended.
        reason: LocalEndReason,
    },
    /// The stream counter and the collection horizon, so `since` tokens stay valid across
    /// restarts. Written before any removal that could lose the highest position.
    Stream {
        /// The latest position handed out.
        position: StreamPosition,
        /// Positions at or below this may have been collected.
        horizon: StreamPosition,
    },
}

/// The store key of a [`LocalRecord`]: one entry per (user, device, room), plus the singleton
/// stream record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LocalKey {
    /// A peek or ended entry.
    Entry {
        /// The device's user.
        #[serde(rename = "user")]
        user_id: OwnedUserId,
        /// The device.
        #[serde(rename = "device")]
        device_id: OwnedDeviceId,
        /// The room.
        room_id: OwnedRoomId,
    },
    /// The stream record.
    Stream,
}

impl LocalRecord {
    /// The key this record is stored under.
    pub fn key(&self) -> LocalKey {
        match self {
            LocalRecord::Peek { user_id, device_id, room_id, .. }
            | LocalRecord::Ended { user_id, device_id, room_id, .. } => LocalKey::Entry {
                user_id: user_id.clone(),
                device_id: device_id.clone(),
                room_id: room_id.clone(),
            },
            LocalRecord::Stream { .. } => LocalKey::Stream,
        }
    }
}

/// What the store must write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LocalChange {
    /// Insert or replace the record under its key.
    Upsert(LocalRecord),
    /// Remove the record under this key (a no-op when missing).
    Remove(LocalKey),
}
