//! [`SimError`]: why the simulator refused an input or a question, and [`Pending`], what was
//! still due when [`Sim::run_until_settled`](super::Sim::run_until_settled) gave up.

use std::fmt;
use std::time::Duration;

use ruma_common::{OwnedRoomAliasId, OwnedRoomId, OwnedServerName, OwnedUserId};

use super::types::{Livelock, fmt_elapsed};
use crate::{OutboundState, Timestamp};

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
    /// [`Sim::run_until_settled`](super::Sim::run_until_settled) ran for `within` and
    /// something was still due: live demand keeps renewing leases and peeks, so such a world
    /// never settles. The clock stands at `at`.
    #[error("not settled within {}: {}", fmt_elapsed(*within), PendingList { at: *at, pending })]
    NotSettled {
        /// The virtual time at which it gave up.
        at: Timestamp,
        /// The bound it was given.
        within: Duration,
        /// What was still due, message queue first, then each up server's deadlines.
        pending: Vec<Pending>,
    },
    /// A run took more than [`SimConfig::step_budget`](super::SimConfig::step_budget) steps
    /// without the clock getting past the bound: a machine keeps asking to be woken.
    #[error(transparent)]
    Livelock(#[from] Livelock),
}

/// Something still due when [`Sim::run_until_settled`](super::Sim::run_until_settled) gave up
/// (in [`SimError::NotSettled`]). A snapshot: it does not change once taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pending {
    /// Messages on the wire (requests, answers, events, `expired_peeks`).
    Messages {
        /// How many.
        count: usize,
        /// When the first is delivered.
        next_at: Timestamp,
    },
    /// An up server's local peeks have a deadline: a lease ending, a device going idle, or a
    /// retained ended entry being collected (`LocalConfig::ended_retention`, 24 h by default).
    LocalPeeks {
        /// The server.
        server: OwnedServerName,
        /// Its live local peeks.
        live: usize,
        /// The earliest deadline.
        due: Timestamp,
    },
    /// An up server holds inbound peeks for other servers: each lapses unless renewed.
    InboundPeeks {
        /// The resident.
        server: OwnedServerName,
        /// Live inbound peeks.
        live: usize,
        /// The earliest deadline.
        due: Timestamp,
    },
    /// An up server's outbound machine has a deadline: a renewal, a linger, a backoff or a
    /// `DELETE` (retry) of one of these rooms.
    OutboundPeeks {
        /// The peeking server.
        server: OwnedServerName,
        /// Every tracked room and its state, by room id.
        rooms: Vec<(OwnedRoomId, OutboundState)>,
        /// The earliest deadline.
        due: Timestamp,
    },
    /// An up server has client peeks waiting on federation (each gives up after
    /// `PeekingConfig::max_pending_wait`).
    ClientPeeks {
        /// The server.
        server: OwnedServerName,
        /// How many wait.
        waiting: usize,
        /// The server's earliest deadline of any kind.
        due: Timestamp,
    },
    /// A server that is down has deadlines of any kind: nothing fires until it is up.
    DownServer {
        /// The server.
        server: OwnedServerName,
        /// Its earliest deadline.
        due: Timestamp,
    },
}

impl Pending {
    /// When it is due.
    pub fn due(&self) -> Timestamp {
        match self {
            Pending::Messages { next_at, .. } => *next_at,
            Pending::LocalPeeks { due, .. }
            | Pending::InboundPeeks { due, .. }
            | Pending::OutboundPeeks { due, .. }
            | Pending::ClientPeeks { due, .. }
            | Pending::DownServer { due, .. } => *due,
        }
    }
}

/// The pending list of [`SimError::NotSettled`], one `; `-separated item each, due times
/// relative to when the run gave up.
struct PendingList<'a> {
    at: Timestamp,
    pending: &'a [Pending],
}

impl fmt::Display for PendingList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.pending.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let due = fmt_elapsed(p.due().saturating_duration_since(self.at));
            match p {
                Pending::Messages { count, .. } => write!(f, "{count} message(s) on the wire")?,
                Pending::LocalPeeks { server, live, .. } => {
                    write!(f, "{server}: local peeks ({live} live; lease, idleness or collection)")?
                }
                Pending::InboundPeeks { server, live, .. } => {
                    write!(f, "{server}: {live} inbound peek(s) held")?
                }
                Pending::OutboundPeeks { server, rooms, .. } => {
                    write!(f, "{server}: outbound")?;
                    for (room, state) in rooms {
                        write!(f, " {room} {state:?}")?;
                    }
                }
                Pending::ClientPeeks { server, waiting, .. } => {
                    write!(f, "{server}: {waiting} client peek(s) waiting on federation")?
                }
                Pending::DownServer { server, .. } => {
                    write!(f, "{server} is down with deadlines (they fire once it is up)")?
                }
            }
            write!(f, ", due {due} later")?;
        }
        Ok(())
    }
}
