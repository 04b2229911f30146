//! What [`InboundPeeks`](super::InboundPeeks) persists (the crate's persistence contract):
//! [`InboundRecord`], its [`InboundKey`], and [`InboundChange`].

use ruma_common::{OwnedRoomId, OwnedServerName};
use serde::{Deserialize, Serialize};

use crate::ids::PeekId;
use crate::time::Timestamp;

/// Identifies one inbound peek: (origin server, room, peek id). The store's map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InboundKey {
    /// The peeking server (the authenticated origin of the request).
    #[serde(rename = "origin")]
    pub server: OwnedServerName,
    /// The peeked room.
    pub room_id: OwnedRoomId,
    /// The peeking server's peek id.
    pub peek_id: PeekId,
}

/// One live inbound peek as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRecord {
    /// The peeking server.
    #[serde(rename = "origin")]
    pub server: OwnedServerName,
    /// The peeked room.
    pub room_id: OwnedRoomId,
    /// The peeking server's peek id.
    pub peek_id: PeekId,
    /// When the peek was created or last renewed.
    pub renewed_at: Timestamp,
    /// Its deadline; restored as is, so a config change never moves a granted deadline.
    pub expires_at: Timestamp,
}

impl InboundRecord {
    /// This record's key in the store.
    pub fn key(&self) -> InboundKey {
        InboundKey {
            server: self.server.clone(),
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
