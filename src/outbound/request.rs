//! The IO vocabulary of [`OutboundPeeks`](super::OutboundPeeks): the requests it asks the host
//! to send ([`OutboundRequest`]) and the outcomes the host reports back ([`OutboundOutcome`]).

use std::sync::Arc;
use std::time::Duration;

use ruma_common::RoomVersionId;
use serde::{Deserialize, Serialize};

use super::OutboundFailure;
use crate::access::RoomAccess;
use crate::ids::{PeekId, RequestId};
use crate::shared::{SharedRoomId, SharedServerName};

/// A federation request the host must send, then answer with
/// `OutboundPeeks::handle_response(now, id, outcome)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRequest {
    /// Names this request; the outcome must come back with it.
    pub id: RequestId,
    /// The resident server to send to.
    pub server: SharedServerName,
    /// The room being peeked.
    pub room_id: SharedRoomId,
    /// The peek id (8 characters of `[0-9a-zA-Z.=_-]`, R47).
    pub peek_id: PeekId,
    /// What to send.
    pub kind: OutboundRequestKind,
}

/// The three federation calls of MSC2444.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutboundRequestKind {
    /// `PUT /_matrix/federation/v1/peek/{roomId}/{peekId}?ver=…` with body `{}` (R48).
    Peek {
        /// One `ver` query parameter per supported room version: the machine's
        /// `supported_versions`, shared by every `PUT` (cloning it copies no versions).
        ver: Arc<[RoomVersionId]>,
    },
    /// `POST …/peek/{roomId}/{peekId}/renew` with body `{}` (R53).
    Renew,
    /// `DELETE …/peek/{roomId}/{peekId}` with no body (R55).
    Unpeek,
}

/// What became of a [`OutboundRequest`], as the host's transport saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OutboundOutcome {
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
        /// The interval the resident granted, unclamped; `None` when the answer omitted it
        /// (some peers answer a renewal with `{}`): the last known interval is kept.
        renewal_interval: Option<Duration>,
    },
    /// The `DELETE` succeeded.
    Deleted,
    /// The request failed.
    Failed(OutboundFailure),
}
