//! What the front asks a federation worker over HTTP (loopback only, unauthenticated): the
//! inbound peek calls (the resident side's `InboundPeeks` lives with the room's shard), the
//! relay destinations of a room, `expired_peeks` received in a `/send`, and the rooms whose
//! events a `/send` relayed to us. A resident room's access change goes through JetStream
//! instead ([`ToShard`]), since it must not be lost.

use matrix_peek::{RoomAccess, ToFederation};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};
use ruma_events::room::server_acl::RoomServerAclEventContent;
use serde::{Deserialize, Serialize};

/// Which inbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InboundOp {
    /// `PUT …/peek/{roomId}/{peekId}`: register before the snapshot (R37).
    Peek,
    /// `POST …/renew`.
    Renew,
    /// `DELETE …/peek/{roomId}/{peekId}` (also the rollback when no snapshot can be had).
    Unpeek,
}

/// `POST /_internal/inbound`: one inbound call. The answer is [`InboundAnswer`] (200) or the
/// Matrix error reply to pass on (its own status).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundCall {
    /// Which call.
    pub op: InboundOp,
    /// The peeking server.
    pub origin: OwnedServerName,
    /// The room.
    pub room_id: OwnedRoomId,
    /// The peek id.
    pub peek_id: String,
    /// The room versions the peeking server supports (`Peek` only).
    pub ver: Vec<RoomVersionId>,
    /// The room's access if this server is in it (`Peek` only).
    pub access: Option<RoomAccess>,
}

/// A granted inbound call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InboundAnswer {
    /// The renewal interval granted, in milliseconds (0 for `Unpeek`).
    pub renewal_interval_ms: u64,
}

/// `POST /_internal/remote_expired`: an `expired_peeks` entry from `origin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteExpired {
    /// The resident that expired our peek.
    pub origin: OwnedServerName,
    /// The room.
    pub room_id: OwnedRoomId,
    /// The peek id.
    pub peek_id: String,
}

/// A room this server is resident in changed its access (history visibility); the shard's
/// `InboundPeeks` ends the peeks it no longer allows (R40). Sent through JetStream
/// ([`ToShard::AccessChanged`]), so it reaches a shard that is down when it happens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessChanged {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The room's access now.
    pub access: RoomAccess,
}

/// A resident room's `m.room.server_acl` changed: the shard ends the inbound peeks of every
/// server it now denies (R45). Sent through JetStream ([`ToShard::ServerAcl`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerAclChanged {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The room's ACL now.
    pub acl: RoomServerAclEventContent,
}

/// What a shard's consumer takes from `{prefix}.fed.{shard}`: the sync side's routing
/// messages and the front's access and ACL changes, in one order. Untagged: a routing message is a
/// plain [`ToFederation`] on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToShard {
    /// A routing message for the shard's `FederationSide`.
    Route(ToFederation),
    /// A resident room's access changed.
    AccessChanged(AccessChanged),
    /// A resident room's server ACL changed.
    ServerAcl(ServerAclChanged),
}

/// `POST /_internal/remote_events`: rooms peeked over federation whose events one `/send`
/// relayed to us, so the shard's `OutboundPeeks` knows their resident is alive (failover
/// liveness). One call per shard and transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteEvents {
    /// The rooms, each once.
    pub rooms: Vec<OwnedRoomId>,
}
