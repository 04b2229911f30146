//! The IO vocabulary of [`OutboundPeeks`](super::OutboundPeeks): requests it asks the host to
//! send, the outcomes the host reports back, and the errors it gives up with.

use std::time::Duration;

use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};
use serde::{Deserialize, Serialize};

use crate::{RequestId, RoomAccess};

/// A federation request the host must send, then answer with
/// `OutboundPeeks::handle_response(now, id, outcome)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Names this request; the outcome must come back with it.
    pub id: RequestId,
    /// The resident server to send to.
    pub server: OwnedServerName,
    /// The room being peeked.
    pub room_id: OwnedRoomId,
    /// The peek id (8 characters of `[0-9a-zA-Z.=_-]`, R47).
    pub peek_id: String,
    /// What to send.
    pub kind: RequestKind,
}

/// The three federation calls of MSC2444.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestKind {
    /// `PUT /_matrix/federation/v1/peek/{roomId}/{peekId}?ver=…` with body `{}` (R48).
    Peek {
        /// One `ver` query parameter per supported room version.
        ver: Vec<RoomVersionId>,
    },
    /// `POST …/peek/{roomId}/{peekId}/renew` with body `{}` (R53).
    Renew,
    /// `DELETE …/peek/{roomId}/{peekId}` with no body (R55).
    Unpeek,
}

/// What became of a [`Request`], as the host's transport saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeekOutcome {
    /// The `PUT` succeeded and the host has validated and ingested the state like a `send_join`
    /// response (R49, R50). `renewal_interval` is the remote's, unclamped.
    Established {
        /// The interval the resident granted.
        renewal_interval: Duration,
        /// What the host learnt about the room from the response's state.
        access: RoomAccess,
    },
    /// The renewal succeeded (R41, R53).
    Renewed {
        /// The interval the resident granted, unclamped.
        renewal_interval: Duration,
    },
    /// The `DELETE` succeeded.
    Deleted,
    /// The request failed.
    Failed(PeekFailure),
}

/// How a federation request failed, classified (see `wire` for mapping HTTP responses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum PeekFailure {
    /// 403: the room is not peekable, or we are denied (R32, R30).
    #[error("forbidden by the resident server")]
    Forbidden,
    /// 404: unknown room or unknown peek (R31, R41, R42).
    #[error("not found on the resident server")]
    NotFound,
    /// 400 `M_INCOMPATIBLE_ROOM_VERSION` (R33).
    #[error("incompatible room version")]
    IncompatibleRoomVersion,
    /// 429 (R34, R60), with the hint from `retry_after_ms` or `Retry-After` when given.
    #[error("rate limited")]
    RateLimited {
        /// How long the resident asked us to wait.
        retry_after: Option<Duration>,
    },
    /// The server could not be reached (DNS, connect, TLS, timeout).
    #[error("unreachable")]
    Unreachable,
    /// The response failed validation (R49): bad JSON, bad signatures, auth failures.
    #[error("invalid response")]
    InvalidResponse,
    /// Any other HTTP status.
    #[error("unexpected HTTP status {0}")]
    Other(u16),
}

/// Why [`OutboundPeeks`](super::OutboundPeeks) could not provide a peek into a room
/// (`OutboundOutput::Unavailable`); pending client peeks fail with it (R27).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundPeekError {
    /// No candidate server was known: `via` was empty (R46; a room ID's domain is never used).
    #[error("no candidate server to peek through")]
    NoCandidates,
    /// `max_rooms` outbound peeks already exist.
    #[error("too many outbound peeks")]
    LimitExceeded,
    /// Every candidate refused, or `max_attempts` ran out; the most specific failure seen
    /// (`Forbidden` beats `NotFound` beats `IncompatibleRoomVersion` beats the rest).
    #[error("remote peek failed: {0}")]
    Remote(PeekFailure),
}
