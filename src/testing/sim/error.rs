//! [`SimError`]: why the simulator refused an input or a question.

use ruma_common::{OwnedRoomAliasId, OwnedRoomId, OwnedServerName, OwnedUserId};

/// Why the simulator refused an input or a question. Each is what a real deployment would
/// answer (a down server cannot answer its clients) or a scenario the simulated world cannot
/// hold (an event from a server that is not in the room); none of them changes the world.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// No server of that name was added ([`Sim::add_server`](super::Sim::add_server)).
    #[error("unknown server {0}: add it with Sim::add_server first")]
    UnknownServer(OwnedServerName),
    /// The server is down ([`Sim::down`](super::Sim::down)): it cannot answer a client or
    /// send anything until [`Sim::up`](super::Sim::up) (or a crash-restart).
    #[error("server {0} is down: it cannot answer until Sim::up or Sim::crash_restart")]
    ServerDown(OwnedServerName),
    /// `add_server` was given a name that is not a valid server name.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// `add_server` was given the name of a server that already exists.
    #[error("server {0} already exists")]
    DuplicateServer(OwnedServerName),
    /// No room with that id was created ([`Sim::create_room`](super::Sim::create_room)).
    #[error("unknown room {0}: create it with Sim::create_room first")]
    UnknownRoom(OwnedRoomId),
    /// `create_room` was given the id of a room that already exists.
    #[error("room {0} already exists")]
    RoomExists(OwnedRoomId),
    /// `add_alias` was given an alias that already names another room.
    #[error("alias {alias} already names {room_id}")]
    AliasTaken {
        /// The alias.
        alias: OwnedRoomAliasId,
        /// The room it names.
        room_id: OwnedRoomId,
    },
    /// Only a server with a joined user can send the room's events (or state events).
    #[error("{server} is not in {room_id}: only a resident server sends the room's events")]
    NotResident {
        /// The server asked to send.
        server: OwnedServerName,
        /// The room.
        room_id: OwnedRoomId,
    },
    /// `leave` was asked for a user who is not joined to the room.
    #[error("{user_id} is not joined to {room_id}")]
    NotMember {
        /// The user.
        user_id: OwnedUserId,
        /// The room.
        room_id: OwnedRoomId,
    },
    /// A client talks to its own homeserver: `user_id` is not a user of `server`.
    #[error("{user_id} is not a user of {server}: a client talks to its own homeserver")]
    ForeignUser {
        /// The user.
        user_id: OwnedUserId,
        /// The server it was addressed to.
        server: OwnedServerName,
    },
}
