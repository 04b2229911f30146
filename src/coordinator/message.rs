//! The routing messages between [`SyncSide`](super::SyncSide) and
//! [`FederationSide`](super::FederationSide) (docs/architecture.md §7.5): what crosses a log when
//! the two halves of [`Peeking`](super::Peeking) run in different processes, and what
//! `Peeking` passes directly when they run in one.
//!
//! Every message is about one room and carries a [`Seq`]: the sender's incarnation (`epoch`)
//! and a counter. Receivers keep, per room, the newest `Seq` they applied and drop anything not
//! newer, so duplicates and redeliveries of old messages change nothing. Federation-side
//! messages also say which sync-side demand they answer (`after`), so an answer to a demand
//! the sync side has since replaced is recognised as stale.

use ruma_common::{OwnedRoomId, OwnedServerName, RoomId};
use serde::{Deserialize, Serialize};

use super::Output;
use crate::access::RoomAccess;
use crate::outbound::OutboundPeekError;

/// A message's place in its sender's history: compared as `(epoch, n)`.
///
/// `epoch` must grow with every restart of the sending half, so a restarted sender's messages
/// are newer than anything it sent before; `n` counts messages within one epoch. Prefer a
/// persisted counter raised to at least the wall-clock milliseconds at start (as
/// `matrix-peek-postgres`'s `PostgresStore::next_epoch`): the clock alone can step back across
/// a restart, and every message of the restarted side would then be dropped as old.
/// [`Peeking`](super::Peeking) uses epoch 0.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Seq {
    /// The sender's incarnation.
    pub epoch: u64,
    /// The message's number within the epoch (from 1).
    pub n: u64,
}

/// Hands out increasing [`Seq`]s for one sender.
#[derive(Debug, Clone)]
pub(super) struct Sequencer {
    epoch: u64,
    next: u64,
}

impl Sequencer {
    pub(super) fn new(epoch: u64) -> Self {
        Sequencer { epoch, next: 1 }
    }

    pub(super) fn next(&mut self) -> Seq {
        let seq = Seq { epoch: self.epoch, n: self.next };
        self.next += 1;
        seq
    }
}

/// Sync side → federation side: what the sync side wants of a room's federated peek. Each
/// message states the latest wish for its room (level, not edge): the federation side applies
/// a message only if its [`Seq`] is newer than the last one it applied for the same room and
/// [`Channel`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToFederation {
    /// Local devices peek the room or client peeks wait on it: keep a federated peek open
    /// (`OutboundPeeks::handle_demand`). Always answered with [`ToSync::Granted`] or
    /// [`ToSync::NotGranted`].
    Demand {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
        /// Candidate servers, in order of preference.
        via: Vec<OwnedServerName>,
        /// The host said this server is not in the room while a client peek of it waited:
        /// clear a stale "joined, never peek" mark first (`handle_server_left`).
        not_resident: bool,
        /// An anti-entropy restatement of the standing wish (docs/architecture.md §7.5), not a
        /// new one: a room the federation side still holds keeps its candidates as they are
        /// (`via` does not bring back a server that refused it); a room it no longer holds is
        /// demanded with `via` as usual.
        #[serde(default)]
        restated: bool,
    },
    /// Nobody here peeks the room or waits on it any more: let the federated peek linger and
    /// end (`handle_no_demand`).
    NoDemand {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
    },
    /// This server joined the room: delete the federated peek and never peek the room again
    /// until the server leaves it (`handle_server_joined`, R56, R57).
    ServerJoined {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
    },
    /// The room's access changed (`OutboundPeeks::handle_access_changed`, R40). Only for rooms
    /// peeked over federation; the inbound machine hears of it from the host directly.
    AccessChanged {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
        /// The room's access now.
        access: RoomAccess,
    },
}

/// Which per-room ordering a [`ToFederation`] message belongs to: messages of different
/// channels never supersede each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// `Demand`, `NoDemand`, `ServerJoined`: the room's demand.
    Demand,
    /// `AccessChanged`: the room's access.
    Access,
}

impl ToFederation {
    /// The room the message is about (the key to shard and order by).
    pub fn room_id(&self) -> &RoomId {
        match self {
            ToFederation::Demand { room_id, .. }
            | ToFederation::NoDemand { room_id, .. }
            | ToFederation::ServerJoined { room_id, .. }
            | ToFederation::AccessChanged { room_id, .. } => room_id,
        }
    }

    /// The message's sequence number.
    pub fn seq(&self) -> Seq {
        match self {
            ToFederation::Demand { seq, .. }
            | ToFederation::NoDemand { seq, .. }
            | ToFederation::ServerJoined { seq, .. }
            | ToFederation::AccessChanged { seq, .. } => *seq,
        }
    }

    /// The per-room ordering the message belongs to.
    pub fn channel(&self) -> Channel {
        match self {
            ToFederation::AccessChanged { .. } => Channel::Access,
            _ => Channel::Demand,
        }
    }
}

/// Federation side → sync side: what became of a room's federated peek. `after` is the
/// [`Seq`] of the last [`ToFederation`] demand-channel message the federation side had applied
/// for the room when it sent this (`None`: it has heard nothing about the room since it
/// started). The sync side applies a message only while it still wants the room, only if
/// `after` is at least the `Seq` of its latest `Demand` for it, and only if the message's own
/// `seq` is newer than the last one it applied for the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToSync {
    /// The federated peek is granted by `server` (it was just established, or it already was
    /// when a `Demand` arrived): waiting client peeks are decided against `access`.
    Granted {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
        /// The last demand message applied for the room.
        after: Option<Seq>,
        /// The resident server.
        server: OwnedServerName,
        /// What the peek response said about the room.
        access: RoomAccess,
    },
    /// The answer to a `Demand` when the peek is not granted yet: client peeks wait.
    NotGranted {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
        /// The last demand message applied for the room.
        after: Option<Seq>,
    },
    /// An established peek dropped and is being opened again: new client peeks wait.
    Lost {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
        /// The last demand message applied for the room.
        after: Option<Seq>,
    },
    /// No federated peek into the room could be had: waiting client peeks fail with `error`
    /// and local peeks of the room end (`RemoteUnavailable`).
    Unavailable {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
        /// The last demand message applied for the room.
        after: Option<Seq>,
        /// Why.
        error: OutboundPeekError,
    },
    /// The federation side restarted and holds a peek of the room from its store (`after` is
    /// `None`): the sync side states its wish again (`Demand` or `NoDemand`). Without it, a
    /// restarted federation side would let every restored peek linger and end.
    Restored {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
    },
    /// Anti-entropy (docs/architecture.md §7.5): the federation side still holds the room's
    /// peek for the demand `after`, but has heard no `Demand` restated for twice
    /// `PeekingConfig::resync_interval`. A sync side that no longer wants the room answers
    /// with `NoDemand` (its own `NoDemand` was lost, e.g. in a crash before it was published);
    /// one that still wants it changes nothing.
    Confirm {
        /// The room.
        room_id: OwnedRoomId,
        /// The message's sequence number.
        seq: Seq,
        /// The last demand message applied for the room.
        after: Option<Seq>,
    },
}

impl ToSync {
    /// The room the message is about.
    pub fn room_id(&self) -> &RoomId {
        match self {
            ToSync::Granted { room_id, .. }
            | ToSync::NotGranted { room_id, .. }
            | ToSync::Lost { room_id, .. }
            | ToSync::Unavailable { room_id, .. }
            | ToSync::Restored { room_id, .. }
            | ToSync::Confirm { room_id, .. } => room_id,
        }
    }

    /// The message's sequence number.
    pub fn seq(&self) -> Seq {
        match self {
            ToSync::Granted { seq, .. }
            | ToSync::NotGranted { seq, .. }
            | ToSync::Lost { seq, .. }
            | ToSync::Unavailable { seq, .. }
            | ToSync::Restored { seq, .. }
            | ToSync::Confirm { seq, .. } => *seq,
        }
    }

    /// The last demand message the federation side had applied for the room when it sent this.
    pub fn after(&self) -> Option<Seq> {
        match self {
            ToSync::Granted { after, .. }
            | ToSync::NotGranted { after, .. }
            | ToSync::Lost { after, .. }
            | ToSync::Unavailable { after, .. }
            | ToSync::Confirm { after, .. } => *after,
            ToSync::Restored { .. } => None,
        }
    }
}

/// Either direction, for a transport that carries both on one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteMessage {
    /// For the federation side.
    ToFederation(ToFederation),
    /// For the sync side.
    ToSync(ToSync),
}

impl RouteMessage {
    /// The room the message is about.
    pub fn room_id(&self) -> &RoomId {
        match self {
            RouteMessage::ToFederation(m) => m.room_id(),
            RouteMessage::ToSync(m) => m.room_id(),
        }
    }
}

/// What a half hands out: an [`Output`] for its host, or a message for the other half.
#[derive(Debug, Clone, PartialEq)]
pub enum SideOutput<M> {
    /// For this half's host, exactly as [`Peeking::poll_output`](super::Peeking::poll_output)
    /// would hand it out.
    Host(Output),
    /// For the other half: deliver it (at least once, in order per room apart from
    /// redeliveries) to its `handle_route`.
    Route(M),
}
