//! [`LocalConfig`], [`LocalGrant`] and the outputs of [`LocalPeeks`](super::LocalPeeks).

use std::time::Duration;

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId};
use serde::{Deserialize, Serialize};

use super::LocalEndReason;
use super::record::LocalChange;
use crate::{StreamPosition, Timestamp};

/// Policy of the local peek machine (DESIGN §4.5). Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// How long a peek lives without a renewal (R11). Default **1 hour**. A zero lease is
    /// treated as 1 ms so that `peek_expiry_ts` is always in the future (R9).
    pub lease: Duration,
    /// Live peeks one device may hold (R3). Default **100**. Also bounds the ended/joined
    /// entries kept per device for `/sync`: when a device has more, its oldest is collected
    /// early.
    pub max_peeks_per_device: usize,
    /// Live peeks across all devices (R3). Default **1 000 000**. Live peeks plus retained
    /// ended/joined entries never exceed it: the oldest retained entry is collected early.
    pub max_peeks_total: usize,
    /// How long an ended or joined entry is kept so that an incremental `/sync` can still
    /// report it (DESIGN §4.3). Default **24 hours**. A `since` older than what was collected is
    /// answered like an initial sync.
    pub ended_retention: Duration,
    /// A device that has not synced (nor peeked) for this long stops counting as a live peeker
    /// for room demand (DESIGN §4.4); its peeks stay until their leases end. Default **`None`**:
    /// leases alone decide. Set it (for example to 10 minutes) once the host calls
    /// `handle_device_synced` on every `/sync`.
    pub device_idle_after: Option<Duration>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            lease: Duration::from_secs(60 * 60),
            max_peeks_per_device: 100,
            max_peeks_total: 1_000_000,
            ended_retention: Duration::from_secs(24 * 60 * 60),
            device_idle_after: None,
        }
    }
}

impl LocalConfig {
    pub(super) fn effective_lease(&self) -> Duration {
        self.lease.max(Duration::from_millis(1))
    }
}

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
pub enum LocalOutput {
    /// Write this to the store. Always queued before the outputs it justifies.
    Persist(LocalChange),
    /// The device's next `/sync` has something new (a peek started, ended or turned into a
    /// join): wake its long-poll. Not emitted for renewals, nor for removed devices.
    Wake {
        /// The device's user.
        user: OwnedUserId,
        /// The device.
        device: OwnedDeviceId,
    },
    /// The room gained its first (`true`) or lost its last (`false`) *live* peeker
    /// (DESIGN §4.4). The coordinator turns this into outbound federation work.
    RoomDemand {
        /// The room.
        room_id: OwnedRoomId,
        /// Whether some live device now peeks it.
        demanded: bool,
    },
    /// A peek ended (for observability; the `/sync` side is in `sync_delta`).
    PeekEnded {
        /// The device's user.
        user: OwnedUserId,
        /// The device.
        device: OwnedDeviceId,
        /// The room.
        room_id: OwnedRoomId,
        /// Why it ended.
        reason: LocalEndReason,
    },
}

/// Where each of a device's rooms goes in its next `/sync` (DESIGN §4.3). Every list is sorted.
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
