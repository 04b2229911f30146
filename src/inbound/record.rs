//! Data that leaves [`InboundPeeks`](super::InboundPeeks): grants, outputs and the persisted
//! records (the persistence contract of the crate's conventions).

use std::time::Duration;

use ruma_common::{OwnedRoomId, OwnedServerName};
use serde::{Deserialize, Serialize};

use super::InboundEndReason;
use crate::Timestamp;

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

/// Identifies one inbound peek: (origin server, room, peek id). The store's map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InboundKey {
    /// The peeking server (the authenticated origin of the request).
    pub origin: OwnedServerName,
    /// The peeked room.
    pub room_id: OwnedRoomId,
    /// The peeking server's peek id.
    pub peek_id: String,
}

/// One live inbound peek as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRecord {
    /// The peeking server.
    pub origin: OwnedServerName,
    /// The peeked room.
    pub room_id: OwnedRoomId,
    /// The peeking server's peek id.
    pub peek_id: String,
    /// When the peek was created or last renewed.
    pub renewed_at: Timestamp,
    /// Its deadline; restored as is, so a config change never moves a granted deadline.
    pub expires_at: Timestamp,
}

impl InboundRecord {
    /// This record's key in the store.
    pub fn key(&self) -> InboundKey {
        InboundKey {
            origin: self.origin.clone(),
            room_id: self.room_id.clone(),
            peek_id: self.peek_id.clone(),
        }
    }
}

/// A change for the host's store: apply in order; `Upsert` replaces, `Remove` of a missing key
/// is a no-op. Hand the stored values back to [`InboundPeeks::restore`](super::InboundPeeks::restore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InboundChange {
    /// Store (or replace) this record.
    Upsert(InboundRecord),
    /// Delete the record with this key.
    Remove(InboundKey),
}

/// What [`InboundPeeks::poll_output`](super::InboundPeeks::poll_output) hands the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutput {
    /// Apply this change to the store. Always queued before the output it justifies, and
    /// before the `handle_*` that caused it returns a success.
    Persist(InboundChange),
    /// A peek ended without the peeking server asking (lapse, access lost, ACL). Put
    /// `{room_id, peek_id}` into `expired_peeks` of the next `/send` transaction to
    /// `destination` (R43; `pdus` may be empty). Never emitted for the server's own `DELETE`.
    Expired {
        /// The peeking server to tell.
        destination: OwnedServerName,
        /// The peeked room.
        room_id: OwnedRoomId,
        /// The ended peek's id.
        peek_id: String,
        /// Why it ended.
        reason: InboundEndReason,
    },
}
