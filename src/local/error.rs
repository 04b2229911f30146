//! Errors and end reasons of [`LocalPeeks`](super::LocalPeeks).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the caller of a local peek input got wrong (checked in this order, docs/architecture.md §4.1).
///
/// The HTTP mapping lives in [`crate::wire`]; the statuses in brackets are for orientation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocalPeekError {
    /// The user is joined to the room (R6) [400 `M_BAD_STATE`].
    #[error("the user is already joined to this room")]
    AlreadyJoined,
    /// The room's history visibility is not `world_readable` (R7) [403 `M_FORBIDDEN`].
    #[error("the room is not world_readable")]
    NotPeekable,
    /// The room is encrypted (R8) [403 `M_FORBIDDEN`].
    #[error("the room is encrypted")]
    Encrypted,
    /// Unpeek of a room the device is not peeking (R13) [400 `M_BAD_STATE`].
    #[error("this device is not peeking the room")]
    NotPeeking,
    /// A cap (`max_peeks_per_device` or `max_peeks_total`) is reached (R3) [429
    /// `M_LIMIT_EXCEEDED`]. `retry_after` is when a slot is expected to free up at the latest
    /// (the earliest relevant lease expiry), never zero.
    #[error("too many peeks; retry after {retry_after:?}")]
    LimitExceeded {
        /// How long until a slot is expected to free up.
        retry_after: Duration,
    },
}

/// Why a local peek ended (carried by `LocalOutput::PeekEnded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LocalEndReason {
    /// The device called `/unpeek` (R12).
    Unpeeked,
    /// The lease ran out without a renewal (R11).
    Expired,
    /// The user joined the room; the room moves to `join` (R19, R20).
    Joined,
    /// The room stopped being `world_readable`, or became encrypted (R24).
    AccessLost,
    /// Every resident server refused the federated peek (R27, docs/architecture.md §6.5).
    RemoteUnavailable,
    /// The device was deleted or logged out (R25).
    DeviceRemoved,
    /// The account was deactivated (R25).
    UserDeactivated,
}
