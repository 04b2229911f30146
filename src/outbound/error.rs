//! How a federation request of [`OutboundPeeks`](super::OutboundPeeks) failed
//! ([`OutboundFailure`]), and why a room could not be peeked at all ([`OutboundPeekError`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a federation request failed, classified (see `wire` for mapping HTTP responses).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundFailure {
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
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
    Remote(OutboundFailure),
}
