//! Errors and expiry reasons of [`InboundPeeks`](super::InboundPeeks).

use std::time::Duration;

use ruma_common::RoomVersionId;
use serde::{Deserialize, Serialize};

/// What a remote server's peek request got wrong (checked in this order, docs/architecture.md §5).
///
/// The HTTP mapping lives in [`crate::wire`]; the statuses in brackets are for orientation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundPeekError {
    /// The peek id fails the configured `PeekIdPolicy` (R29) [400 `M_UNRECOGNIZED`].
    #[error("invalid peek id")]
    InvalidPeekId,
    /// The room is not known to this server (R31) [404 `M_NOT_FOUND`].
    #[error("unknown room")]
    UnknownRoom,
    /// The room is not `world_readable`, or is encrypted (R32) [403 `M_FORBIDDEN`].
    #[error("the room is not peekable")]
    NotPeekable,
    /// The room's version is not in the request's `ver` list (R33)
    /// [400 `M_INCOMPATIBLE_ROOM_VERSION`, with `room_version` in the body].
    #[error("room version {room_version} is not supported by the peeking server")]
    IncompatibleRoomVersion {
        /// The room's actual version.
        room_version: RoomVersionId,
    },
    /// A cap (per server, per room or total) is reached (R34) [429 `M_LIMIT_EXCEEDED`].
    /// `retry_after` is a hint for `retry_after_ms` / `Retry-After`, never zero.
    #[error("too many peeks; retry after {retry_after:?}")]
    LimitExceeded {
        /// How long the peeking server should wait before trying again.
        retry_after: Duration,
    },
    /// Renew or delete of a peek that does not exist (any more) (R41, R42) [404 `M_NOT_FOUND`].
    #[error("unknown peek")]
    UnknownPeek,
}

/// Why an inbound peek expired (carried by `InboundOutput::Expired`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InboundEndReason {
    /// Not renewed within `renewal_interval + grace` (R43).
    Lapsed,
    /// The room stopped being `world_readable`, or became encrypted (R40).
    AccessLost,
    /// The peeking server was denied by the room's server ACL (R45).
    ServerDenied,
}
