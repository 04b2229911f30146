//! What [`LocalPeeks`](super::LocalPeeks) hands out: [`LocalGrant`] (the `/peek` reply),
//! [`LocalOutput`] (consequences for the host) and [`SyncDelta`] (the `/sync` answer).

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::LocalEndReason;
use super::record::LocalChange;
use crate::ids::StreamPosition;
use crate::time::Timestamp;

/// A successful `/peek` (R9): the resolved room and when the lease ends (`peek_expiry_ts`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocalGrant {
    /// The room being peeked.
    pub room_id: OwnedRoomId,
    /// When the peek expires unless renewed (epoch milliseconds, always later than `now`).
    pub expires_at: Timestamp,
}

/// A consequence of an input to [`LocalPeeks`](super::LocalPeeks), drained with `poll_output`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LocalOutput {
    /// Write this to the store. Always queued before the outputs it justifies.
    Persist(LocalChange),
    /// The device's next `/sync` has something new (a peek started, ended or turned into a
    /// join): wake its long-poll. Not emitted for renewals, nor for removed devices; one
    /// `handle_timeout` wakes a device once, after the writes of every peek of it that ended.
    Wake {
        /// The device's user.
        user_id: OwnedUserId,
        /// The device.
        device_id: OwnedDeviceId,
    },
    /// The room gained its first (`true`) or lost its last (`false`) *live* peeker
    /// (docs/architecture.md §4.4). The coordinator turns this into outbound federation work.
    RoomDemand {
        /// The room.
        room_id: OwnedRoomId,
        /// Whether some live device now peeks it.
        demanded: bool,
    },
    /// A peek ended (for observability; the `/sync` side is in `sync_delta`).
    PeekEnded {
        /// The device's user.
        user_id: OwnedUserId,
        /// The device.
        device_id: OwnedDeviceId,
        /// The room.
        room_id: OwnedRoomId,
        /// Why it ended.
        reason: LocalEndReason,
    },
}

/// Where each of a device's rooms goes in its next `/sync` (docs/architecture.md §4.3). Every list is sorted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncDelta {
    /// Rooms to put in `rooms.peek` **with full state**: peeks that began after `since`
    /// (including a re-peek after an unpeek, R15), or every live peek on an initial sync.
    pub started: Vec<OwnedRoomId>,
    /// Rooms still peeked that the device already knows about: put them in `rooms.peek` only
    /// when they have new events since `since` (R16).
    pub peeking: Vec<OwnedRoomId>,
    /// Rooms to put in `rooms.leave` (with the events up to the end of the peek, R21): peeks
    /// the device had been told about that ended after `since`. Never on an initial sync.
    pub ended: Vec<OwnedRoomId>,
    /// Rooms the user joined while this device peeked them: put them in `rooms.join`
    /// **without** full state (R19). A room is never both here and in `started`/`peeking`.
    pub joined: Vec<OwnedRoomId>,
    /// The position to hand back as (part of) the next `since`.
    pub next: StreamPosition,
}
