//! [`LocalStats`]: what [`LocalPeeks`](super::LocalPeeks) did and holds, for metrics.

use serde::Serialize;

use super::{LocalEndReason, LocalPeekError};

/// Peeks refused, by reason (each counts one `handle_peek` or `handle_unpeek` error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LocalRefusals {
    /// The user is joined (R6).
    pub already_joined: u64,
    /// Not `world_readable` (R7).
    pub not_peekable: u64,
    /// Encrypted (R8).
    pub encrypted: u64,
    /// A cap was reached (R3).
    pub limit_exceeded: u64,
    /// `/unpeek` of a room the device does not peek (R13).
    pub not_peeking: u64,
}

/// Peeks ended, by [`LocalEndReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LocalEndings {
    /// `/unpeek` (R12).
    pub unpeeked: u64,
    /// The lease ran out (R11).
    pub expired: u64,
    /// The user joined (R19).
    pub joined: u64,
    /// The room stopped being peekable (R24).
    pub access_lost: u64,
    /// Every resident refused the federated peek (R27).
    pub remote_unavailable: u64,
    /// The device was removed (R25).
    pub device_removed: u64,
    /// The account was deactivated (R25).
    pub user_deactivated: u64,
}

/// What [`LocalPeeks`](super::LocalPeeks) did (counters, only growing) and holds (gauges),
/// from [`LocalPeeks::stats`](super::LocalPeeks::stats). Counters restart at zero after a
/// restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LocalStats {
    /// Peeks started (granted by a first `/peek`).
    pub started: u64,
    /// Leases renewed by a repeated `/peek` (R5).
    pub renewed: u64,
    /// Refusals by reason.
    pub refused: LocalRefusals,
    /// Peeks ended, by reason.
    pub ended: LocalEndings,
    /// Gauge: live peeks.
    pub live_peeks: u64,
    /// Gauge: devices with a live peek or a retained entry.
    pub devices: u64,
    /// Gauge: rooms some live device peeks (their federated peeks are kept).
    pub demanded_rooms: u64,
    /// Gauge: ended or joined entries kept for `/sync`.
    pub retained_entries: u64,
}

impl LocalStats {
    pub(super) fn refused(&mut self, error: &LocalPeekError) {
        let r = &mut self.refused;
        match error {
            LocalPeekError::AlreadyJoined => r.already_joined += 1,
            LocalPeekError::NotPeekable => r.not_peekable += 1,
            LocalPeekError::Encrypted => r.encrypted += 1,
            LocalPeekError::LimitExceeded { .. } => r.limit_exceeded += 1,
            LocalPeekError::NotPeeking => r.not_peeking += 1,
        }
    }

    pub(super) fn ended(&mut self, reason: LocalEndReason) {
        let e = &mut self.ended;
        match reason {
            LocalEndReason::Unpeeked => e.unpeeked += 1,
            LocalEndReason::Expired => e.expired += 1,
            LocalEndReason::Joined => e.joined += 1,
            LocalEndReason::AccessLost => e.access_lost += 1,
            LocalEndReason::RemoteUnavailable => e.remote_unavailable += 1,
            LocalEndReason::DeviceRemoved => e.device_removed += 1,
            LocalEndReason::UserDeactivated => e.user_deactivated += 1,
        }
    }
}
