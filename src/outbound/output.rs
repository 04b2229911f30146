//! What [`OutboundPeeks`](super::OutboundPeeks) tells the host: [`OutboundOutput`],
//! [`OutboundLostReason`], and the observable [`OutboundState`].

use super::{OutboundChange, OutboundPeekError, OutboundRequest};
use crate::access::RoomAccess;
use crate::shared::{SharedRoomId, SharedServerName};
use crate::time::Timestamp;

/// A consequence for the host, from `OutboundPeeks::poll_output`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OutboundOutput {
    /// Write this change before acting on any later output (R59). The record naming a `Send`'s
    /// peek is always written before the `Send`: a `PUT` and a background `DELETE` come right
    /// after the `Persist` of their record, a renewal after the one that stored its lease (a
    /// renewal in flight is stored as the lease it renews, so it is not written again).
    Persist(OutboundChange),
    /// Send this federation request, then report its outcome with `handle_response`.
    Send(OutboundRequest),
    /// The room's peek is established (or re-established after `Lost`) through `server`;
    /// pending client peeks on the room can be granted with `access` (R27).
    Established {
        /// The room.
        room_id: SharedRoomId,
        /// The resident server the peek goes through.
        server: SharedServerName,
        /// What the host learnt about the room from the `PUT` response.
        access: RoomAccess,
        /// `Some` when this re-establishes the room after a gap (a failover, a lapse, a re-peek
        /// after `expired_peeks`): events after this time may be missing. Fetch them between
        /// the last event received before it and the new response's latest event, with
        /// `/get_missing_events` or backfill (R52). `None` for a first establishment.
        missed_since: Option<Timestamp>,
    },
    /// No peek could be provided; pending client peeks on the room fail with `error` and the
    /// room's local peeks end (reason `RemoteUnavailable`). The room's demand is forgotten:
    /// nothing is retried until `handle_demand` is called again.
    Unavailable {
        /// The room.
        room_id: SharedRoomId,
        /// Why.
        error: OutboundPeekError,
    },
    /// An established peek dropped while demanded. Reported once; the machine keeps trying and
    /// reports `Established` again when it is back (events in between may need backfill, R52).
    /// Local peeks are not ended by this.
    Lost {
        /// The room.
        room_id: SharedRoomId,
        /// Why.
        reason: OutboundLostReason,
    },
}

/// Why an established peek was lost ([`OutboundOutput::Lost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutboundLostReason {
    /// The resident dropped it: an `expired_peeks` entry named it, or a renewal got 404 (R54).
    /// A fresh peek id is opened at once.
    RemoteExpired,
    /// Renewals failed on network trouble or rate limiting until the peek lapsed.
    Unreachable,
    /// The resident refused the renewal (403, or incompatible room version); other candidates
    /// are tried, and `Unavailable` follows if they all refuse.
    Refused,
    /// The host reported the room is no longer peekable (`handle_access_changed`); the peek is
    /// deleted at once and not re-opened until demand is declared again.
    AccessLost,
}

/// The observable state of a room's outbound peek (see the module docs' state diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OutboundState {
    /// A `PUT` is in flight (or about to be re-sent after a restart).
    Connecting,
    /// Granted and demanded; waiting for the renewal deadline.
    Established,
    /// Granted; a renewal is in flight or being retried after a failure (still valid until it
    /// lapses).
    Renewing,
    /// No remote peek; waiting before the next attempt (R60).
    Backoff,
    /// Granted (or maybe granted) but not demanded; deleted when the linger ends (R55).
    Lingering,
    /// A `DELETE` is in flight or waiting to be retried.
    Deleting,
}
