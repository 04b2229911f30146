//! What [`InboundPeeks`](super::InboundPeeks) hands out: [`InboundGrant`] (the reply to a
//! `PUT` or renewal), [`InboundPeekInfo`] (a query's answer) and [`InboundOutput`]
//! (consequences for the host).

use std::time::Duration;

use ruma_common::{OwnedRoomId, OwnedServerName};

use super::{InboundChange, InboundEndReason};
use crate::ids::PeekId;
use crate::time::Timestamp;

/// What a successful `handle_peek` / `handle_renew` grants the peeking server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundGrant {
    /// The `renewal_interval` to put in the response (R35, R41), in milliseconds on the wire.
    pub renewal_interval: Duration,
    /// When the peek expires unless renewed: `renewed_at + renewal_interval + grace` (R43).
    pub expires_at: Timestamp,
    /// `true` when the key already existed and this call only refreshed it (R38): the host
    /// still answers a `PUT` with the full snapshot, but no new subscription was created.
    pub refreshed: bool,
}

/// A read-only view of one live peek, from [`InboundPeeks::peek`](super::InboundPeeks::peek).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboundPeekInfo {
    /// When the peek was created or last renewed (re-`PUT` or `/renew`).
    pub renewed_at: Timestamp,
    /// When it expires unless renewed again.
    pub expires_at: Timestamp,
}

/// What [`InboundPeeks::poll_output`](super::InboundPeeks::poll_output) hands the host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InboundOutput {
    /// Apply this change to the store. Always queued before the output it justifies, and
    /// before the `handle_*` that caused it returns a success.
    Persist(InboundChange),
    /// A peek ended without the peeking server asking (lapse, access lost, ACL). Put
    /// `{room_id, peek_id}` into `expired_peeks` of the next `/send` transaction to
    /// `server` (R43; `pdus` may be empty). Never emitted for the server's own `DELETE`.
    Expired {
        /// The peeking server to tell.
        server: OwnedServerName,
        /// The peeked room.
        room_id: OwnedRoomId,
        /// The ended peek's id.
        peek_id: PeekId,
        /// Why it ended.
        reason: InboundEndReason,
    },
}
