//! What [`Peeking`](super::Peeking) hands out: [`ClientPeekReply`] (the immediate answer to a
//! client peek) and [`Output`] (everything the host must do, in order).

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId};

use super::{Change, PeekError};
use crate::access::RoomAccess;
use crate::ids::{PeekId, RequestId};
use crate::inbound::InboundEndReason;
use crate::local::{LocalEndReason, LocalGrant};
use crate::outbound::{OutboundLostReason, OutboundPeekError, OutboundRequest};
use crate::shared::{SharedRoomId, SharedServerName};

/// The immediate answer to [`Peeking::handle_client_peek`](crate::Peeking::handle_client_peek).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum ClientPeekReply {
    /// The peek is decided: the grant (`peek_expiry_ts`) or why not.
    Done(Result<LocalGrant, PeekError>),
    /// The room is remote and its federated peek is not established yet; the answer comes as
    /// [`Output::ClientPeekDone`] with this id.
    Pending(RequestId),
}

/// What the coordinator asks of the host, in order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Write this before acting on anything after it.
    Persist(Change),
    /// Send this federation request and report the outcome with
    /// [`Peeking::handle_response`](crate::Peeking::handle_response).
    Send(OutboundRequest),
    /// The device's next `/sync` has something new: wake its long-poll.
    Wake {
        /// The user.
        user_id: OwnedUserId,
        /// The device.
        device_id: OwnedDeviceId,
    },
    /// A local peek ended (observability; the `/sync` side is in `sync_delta`).
    PeekEnded {
        /// The user.
        user_id: OwnedUserId,
        /// The device.
        device_id: OwnedDeviceId,
        /// The room.
        room_id: OwnedRoomId,
        /// Why.
        reason: LocalEndReason,
    },
    /// An inbound peek expired: put `{room_id, peek_id}` into the next `/send` to
    /// `server` as `expired_peeks` (R43).
    Expired {
        /// The peeking server.
        server: OwnedServerName,
        /// The room.
        room_id: OwnedRoomId,
        /// The peek id it used.
        peek_id: PeekId,
        /// Why.
        reason: InboundEndReason,
    },
    /// A federated peek is established (again) through `server`.
    Established {
        /// The room.
        room_id: SharedRoomId,
        /// The resident server.
        server: SharedServerName,
        /// What the peek response said about the room.
        access: RoomAccess,
        /// `Some` when the peek was re-established after a gap (a failover, a lapse, a re-peek
        /// after `expired_peeks`): events of the room after this time may be missing. Fetch
        /// them (`/get_missing_events` or backfill between the last event received before it
        /// and the new response's latest event, R52) before relying on the timeline.
        missed_since: Option<crate::time::Timestamp>,
    },
    /// A federated peek that was established dropped; another is being opened (a failover, or
    /// the same resident again). Events may be missed until `Established` says since when.
    Lost {
        /// The room.
        room_id: SharedRoomId,
        /// Why.
        reason: OutboundLostReason,
    },
    /// No federated peek into the room could be had; waiting client peeks have failed.
    Unavailable {
        /// The room.
        room_id: SharedRoomId,
        /// Why.
        error: OutboundPeekError,
    },
    /// A `Pending` client peek is decided.
    ClientPeekDone {
        /// The id [`ClientPeekReply::Pending`] carried.
        id: RequestId,
        /// The grant or why not.
        result: Result<LocalGrant, PeekError>,
    },
}
