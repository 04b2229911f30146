//! Every input the driver gives the coordinator, as data: a call is applied to the working
//! machine at once and replayed, unchanged, on the committed view once its batch is saved (the
//! machines are deterministic), or re-applied after a rebuild.

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId};

use crate::access::RoomAccess;
use crate::coordinator::{ClientPeek, ClientPeekReply, PeekError, Peeking};
use crate::ids::RequestId;
use crate::inbound::{InboundGrant, InboundPeekError};
use crate::outbound::OutboundOutcome;
use crate::time::Timestamp;

/// One input to [`Peeking`].
#[derive(Debug, Clone)]
pub(super) enum Input {
    ClientPeek(ClientPeek),
    ClientPeekWithdrawn(RequestId),
    ClientUnpeek {
        user_id: OwnedUserId,
        device_id: OwnedDeviceId,
        room_id: OwnedRoomId,
    },
    InboundPeek {
        origin: OwnedServerName,
        room_id: OwnedRoomId,
        peek_id: String,
        ver: Vec<RoomVersionId>,
        access: Option<RoomAccess>,
    },
    InboundRenew {
        origin: OwnedServerName,
        room_id: OwnedRoomId,
        peek_id: String,
    },
    InboundUnpeek {
        origin: OwnedServerName,
        room_id: OwnedRoomId,
        peek_id: String,
    },
    Joined {
        user_id: OwnedUserId,
        room_id: OwnedRoomId,
        access: RoomAccess,
    },
    ServerLeft(OwnedRoomId),
    AccessChanged {
        room_id: OwnedRoomId,
        access: RoomAccess,
    },
    ServerDenied {
        room_id: OwnedRoomId,
        server: OwnedServerName,
    },
    DeviceSynced {
        user_id: OwnedUserId,
        device_id: OwnedDeviceId,
    },
    DeviceRemoved {
        user_id: OwnedUserId,
        device_id: OwnedDeviceId,
    },
    UserDeactivated(OwnedUserId),
    RemoteExpired {
        server: OwnedServerName,
        room_id: OwnedRoomId,
        peek_id: String,
    },
    RemoteEvent(OwnedRoomId),
    ServerUnreachable(OwnedServerName),
    Response {
        id: RequestId,
        outcome: OutboundOutcome,
    },
    Timeout,
}

/// What an input answered at once.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Reply {
    ClientPeek(ClientPeekReply),
    Inbound(Result<InboundGrant, InboundPeekError>),
    InboundUnpeek(Result<(), InboundPeekError>),
    ClientUnpeek(Result<(), PeekError>),
    Done,
}

impl Input {
    /// Applies the input to `m` at `now`. The outputs stay in `m` for the caller to drain.
    pub(super) fn apply(&self, m: &mut Peeking, now: Timestamp) -> Reply {
        match self {
            Input::ClientPeek(peek) => Reply::ClientPeek(m.handle_client_peek(now, peek.clone())),
            Input::ClientPeekWithdrawn(id) => {
                m.handle_client_peek_withdrawn(now, *id);
                Reply::Done
            }
            Input::ClientUnpeek { user_id, device_id, room_id } => {
                Reply::ClientUnpeek(m.handle_client_unpeek(now, user_id, device_id, room_id))
            }
            Input::InboundPeek { origin, room_id, peek_id, ver, access } => Reply::Inbound(
                m.handle_inbound_peek(now, origin, room_id, peek_id, ver, access.as_ref()),
            ),
            Input::InboundRenew { origin, room_id, peek_id } => {
                Reply::Inbound(m.handle_inbound_renew(now, origin, room_id, peek_id))
            }
            Input::InboundUnpeek { origin, room_id, peek_id } => {
                Reply::InboundUnpeek(m.handle_inbound_unpeek(now, origin, room_id, peek_id))
            }
            Input::Joined { user_id, room_id, access } => {
                m.handle_joined(now, user_id, room_id, access);
                Reply::Done
            }
            Input::ServerLeft(room_id) => {
                m.handle_server_left(now, room_id);
                Reply::Done
            }
            Input::AccessChanged { room_id, access } => {
                m.handle_access_changed(now, room_id, access);
                Reply::Done
            }
            Input::ServerDenied { room_id, server } => {
                m.handle_server_denied(now, room_id, server);
                Reply::Done
            }
            Input::DeviceSynced { user_id, device_id } => {
                m.handle_device_synced(now, user_id, device_id);
                Reply::Done
            }
            Input::DeviceRemoved { user_id, device_id } => {
                m.handle_device_removed(now, user_id, device_id);
                Reply::Done
            }
            Input::UserDeactivated(user_id) => {
                m.handle_user_deactivated(now, user_id);
                Reply::Done
            }
            Input::RemoteExpired { server, room_id, peek_id } => {
                m.handle_remote_expired(now, server, room_id, peek_id);
                Reply::Done
            }
            Input::RemoteEvent(room_id) => {
                m.handle_remote_event(now, room_id);
                Reply::Done
            }
            Input::ServerUnreachable(server) => {
                m.handle_server_unreachable(now, server);
                Reply::Done
            }
            Input::Response { id, outcome } => {
                m.handle_response(now, *id, outcome.clone());
                Reply::Done
            }
            Input::Timeout => {
                m.handle_timeout(now);
                Reply::Done
            }
        }
    }
}
