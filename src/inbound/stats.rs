//! [`InboundStats`]: what [`InboundPeeks`](super::InboundPeeks) did and holds, for metrics.

use serde::Serialize;

use super::{InboundEndReason, InboundPeekError};

/// Requests refused, by reason (each counts one `handle_*` error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InboundRefusals {
    /// A peek id outside the policy (R29).
    pub invalid_peek_id: u64,
    /// An unknown room (R31).
    pub unknown_room: u64,
    /// Not peekable (R32).
    pub not_peekable: u64,
    /// The room's version was not in `ver` (R33).
    pub incompatible_room_version: u64,
    /// A cap was reached (R34).
    pub limit_exceeded: u64,
    /// Renew or delete of an unknown peek (R41, R42).
    pub unknown_peek: u64,
}

/// Peeks ended, by how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InboundEndings {
    /// The peeking server's `DELETE` (R42).
    pub deleted: u64,
    /// Not renewed in time (R43).
    pub lapsed: u64,
    /// The room stopped being peekable (R40).
    pub access_lost: u64,
    /// The server was denied by the room's ACL (R45).
    pub server_denied: u64,
}

/// What [`InboundPeeks`](super::InboundPeeks) did (counters, only growing) and holds (gauges),
/// from [`InboundPeeks::stats`](super::InboundPeeks::stats). Counters restart at zero after a
/// restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InboundStats {
    /// Peeks created by a `PUT`.
    pub granted: u64,
    /// `PUT`s of a live peek (idempotent refresh, R38; how older peers renew).
    pub refreshed: u64,
    /// `POST …/renew`s answered (R41).
    pub renewed: u64,
    /// Refusals by reason.
    pub refused: InboundRefusals,
    /// Peeks ended, by how.
    pub ended: InboundEndings,
    /// Gauge: live peeks.
    pub live_peeks: u64,
    /// Gauge: rooms with a live peek.
    pub rooms: u64,
    /// Gauge: servers with a live peek.
    pub servers: u64,
}

impl InboundStats {
    pub(super) fn refused(&mut self, error: &InboundPeekError) {
        let r = &mut self.refused;
        match error {
            InboundPeekError::InvalidPeekId => r.invalid_peek_id += 1,
            InboundPeekError::UnknownRoom => r.unknown_room += 1,
            InboundPeekError::NotPeekable => r.not_peekable += 1,
            InboundPeekError::IncompatibleRoomVersion { .. } => r.incompatible_room_version += 1,
            InboundPeekError::LimitExceeded { .. } => r.limit_exceeded += 1,
            InboundPeekError::UnknownPeek => r.unknown_peek += 1,
        }
    }

    pub(super) fn ended(&mut self, reason: Option<InboundEndReason>) {
        let e = &mut self.ended;
        match reason {
            None => e.deleted += 1,
            Some(InboundEndReason::Lapsed) => e.lapsed += 1,
            Some(InboundEndReason::AccessLost) => e.access_lost += 1,
            Some(InboundEndReason::ServerDenied) => e.server_denied += 1,
        }
    }
}
