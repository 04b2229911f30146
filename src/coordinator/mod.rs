//! [`Peeking`]: the three machines behind one front door (docs/architecture.md §7). The routing
//! diagram and the rules are on [`Peeking`].

mod config;
mod error;
mod federation_side;
mod message;
mod output;
mod record;
mod resync;
mod stats;
mod sync_route;
mod sync_side;

use std::collections::VecDeque;

use ruma_common::{
    DeviceId, OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomVersionId,
    ServerName, UserId,
};

pub use config::PeekingConfig;
pub use error::PeekError;
pub use federation_side::FederationSide;
pub use message::{Channel, RouteMessage, Seq, SideOutput, ToFederation, ToSync};
pub use output::{ClientPeekReply, Output};
#[cfg(feature = "testing")]
pub(crate) use record::SnapshotMaps;
pub use record::{Change, RemoteRoomChange, RemoteRoomRecord, Snapshot};
pub use stats::{ClientPeekCounts, PeekingStats};
pub use sync_side::SyncSide;

use crate::access::RoomAccess;
use crate::ids::{RequestId, StreamPosition};
use crate::inbound::{InboundGrant, InboundPeekError, InboundPeeks};
use crate::local::{LocalPeeks, SyncDelta};
use crate::outbound::{OutboundOutcome, OutboundPeeks};
use crate::time::Timestamp;

/// Whether this server is in the room a client wants to peek.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Residency {
    /// This server is joined to the room; here is its current access.
    Resident(RoomAccess),
    /// This server is not in the room: peek over federation (MSC2444).
    Remote,
}

/// A client's `/peek` request, after the host resolved any alias (R4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPeek {
    /// The peeking user.
    pub user_id: OwnedUserId,
    /// The peeking device.
    pub device_id: OwnedDeviceId,
    /// The room.
    pub room_id: OwnedRoomId,
    /// Whether the user's membership is `join` (R6).
    pub joined: bool,
    /// Whether this server is in the room.
    pub residency: Residency,
    /// Candidate servers for a remote room: the request's `servers`, then the alias's domain
    /// (R46). Never derived from the room ID.
    pub via: Vec<OwnedServerName>,
}

/// The coordinator: owns [`LocalPeeks`], [`InboundPeeks`] and [`OutboundPeeks`].
///
/// Run-loop contract: after every `handle_*` (and after `restore`), drain
/// [`poll_output`](Self::poll_output) until `None`, then read
/// [`poll_timeout`](Self::poll_timeout) and call [`handle_timeout`](Self::handle_timeout) then.
///
/// [`Peeking`]: the three machines behind one front door (docs/architecture.md §7).
///
/// ```text
///   client /peek ──► handle_client_peek ──► Resident(access) ──► LocalPeeks ─────────► Done
///                                      └──► Remote ──┬─ outbound established ─► LocalPeeks ─► Done
///                                                    └─ otherwise: Pending(id) + demand
///                                                         OutboundPeeks ─ Established ─► ClientPeekDone(Ok)
///                                                                       └ Unavailable ─► ClientPeekDone(Err)
///   LocalPeeks ── RoomDemand{true/false} ──► OutboundPeeks::handle_demand / handle_no_demand
///   federation PUT/renew/DELETE ──► InboundPeeks (destinations for relaying, Expired for /send)
/// ```
///
/// `Peeking` is the in-process composition of a [`SyncSide`] (`LocalPeeks`, waiting client
/// peeks) and a [`FederationSide`] (`InboundPeeks`, `OutboundPeeks`), which talk only through
/// [`ToFederation`] and [`ToSync`] messages; here those are passed directly, so the same rules
/// run in one process or across several (docs/architecture.md §7.5).
///
/// The coordinator routes by **draining** every child's outputs inside its own `handle_*`
/// (never by callbacks): internal outputs (`RoomDemand`, outbound `Established` while client
/// peeks wait) are consumed here; host-facing ones come out of [`Peeking::poll_output`] in the
/// order they happened, `Persist` always before what it justifies.
///
/// Rules kept here:
/// * A room this server is resident in never gets a federated peek (R57); a `Resident` client
///   peek on a room that still has one is a join of the server, and the outbound peek is deleted.
/// * One federated peek per room whatever the number of local devices (R58): local demand, not
///   client peeks, drives outbound work.
/// * A client peek on a remote room is answered at once when the federated peek is established,
///   otherwise it waits (`Pending`) and completes with [`Output::ClientPeekDone`] (R27). When every
///   resident refuses, it fails with the mapped remote error and existing local peeks on the
///   room end with `RemoteUnavailable`.
/// * The coordinator remembers which rooms are peeked over federation (with their `via` and the
///   access learnt at establishment) as [`RemoteRoomRecord`]s, so a restart re-declares demand
///   to the right machine.
#[derive(Debug, Clone)]
pub struct Peeking {
    sync: SyncSide,
    federation: FederationSide,
    outputs: VecDeque<Output>,
}

impl Peeking {
    /// A coordinator with no peeks.
    pub fn new(config: PeekingConfig) -> Self {
        Self::restore(Timestamp::ZERO, config, Snapshot::default())
    }

    /// Rebuilds all three machines from a store's [`Snapshot`] at restart time `now`.
    ///
    /// Restored local peeks re-declare their rooms' demand, which reaches the outbound machine
    /// for every remote room, so established federated peeks keep being renewed; an outbound
    /// peek nobody re-demands is deleted after its linger (nothing leaks). Drain
    /// [`poll_output`](Self::poll_output) afterwards.
    pub fn restore(now: Timestamp, config: PeekingConfig, snapshot: Snapshot) -> Self {
        let Snapshot { local, inbound, outbound, remote_rooms } = snapshot;
        let sync_snapshot =
            Snapshot { local, remote_rooms, inbound: Vec::new(), outbound: Vec::new() };
        let federation_snapshot =
            Snapshot { inbound, outbound, local: Vec::new(), remote_rooms: Vec::new() };
        let mut federation = FederationSide::restore(now, config.clone(), federation_snapshot, 0);
        // Both halves restart together here: the sync side re-declares its demand itself, so
        // the federation side's `Restored` announcements are not needed.
        federation.outputs.retain(|o| !matches!(o, SideOutput::Route(ToSync::Restored { .. })));
        let mut sync = SyncSide::restore(now, config, sync_snapshot, 0);
        federation.delivery = federation_side::Delivery::InProcess;
        // Messages passed directly cannot be lost: no anti-entropy restatements.
        sync.resync.disable();
        federation.confirm.disable();
        let mut peeking = Peeking { sync, federation, outputs: VecDeque::new() };
        peeking.pump(now);
        peeking
    }

    /// Passes every message between the halves at once and collects their host outputs, in
    /// the order they happened, until both are quiet. A message's consequences (and theirs)
    /// are handled before the next queued output, as if the machines called each other.
    fn pump(&mut self, now: Timestamp) {
        loop {
            if let Some(out) = self.sync.outputs.pop_front() {
                self.take_sync(now, out);
            } else if let Some(out) = self.federation.outputs.pop_front() {
                self.take_federation(now, out);
            } else {
                break;
            }
        }
    }

    fn take_sync(&mut self, now: Timestamp, out: SideOutput<ToFederation>) {
        match out {
            SideOutput::Host(output) => self.outputs.push_back(output),
            SideOutput::Route(message) => {
                let before = self.federation.outputs.len();
                self.federation.handle_route(now, message);
                for out in self.federation.outputs.split_off(before) {
                    self.take_federation(now, out);
                }
            }
        }
    }

    fn take_federation(&mut self, now: Timestamp, out: SideOutput<ToSync>) {
        match out {
            SideOutput::Host(output) => self.outputs.push_back(output),
            SideOutput::Route(message) => {
                let before = self.sync.outputs.len();
                self.sync.handle_route(now, message);
                for out in self.sync.outputs.split_off(before) {
                    self.take_sync(now, out);
                }
            }
        }
    }

    // ----- client side (MSC2753) -----

    /// A client's `/peek` (R1–R9, R27). See [`ClientPeekReply`].
    pub fn handle_client_peek(&mut self, now: Timestamp, peek: ClientPeek) -> ClientPeekReply {
        crate::log::span!("client_peek", user = %peek.user_id, device = %peek.device_id, room = %peek.room_id);
        let reply = self.sync.begin_client_peek(now, peek);
        self.pump(now);
        self.sync.settle_client_peek(reply)
    }

    /// The client behind a [`ClientPeekReply::Pending`] peek went away (its HTTP request was
    /// dropped, or the host's deadline for it passed): the waiting peek is withdrawn and will
    /// never be granted. It completes with `ClientPeekDone(Err(NotPeeking))`; a room nobody
    /// else waits on or peeks loses its demand. An id that is not waiting (already decided, or
    /// unknown) is ignored.
    pub fn handle_client_peek_withdrawn(&mut self, now: Timestamp, id: RequestId) {
        self.sync.handle_client_peek_withdrawn(now, id);
        self.pump(now);
    }

    /// A client's `/unpeek` (R12, R13).
    pub fn handle_client_unpeek(
        &mut self,
        now: Timestamp,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
    ) -> Result<(), PeekError> {
        let result = self.sync.handle_client_unpeek(now, user_id, device_id, room_id);
        self.pump(now);
        result
    }

    /// `user_id` joined `room_id` (R19, R20, R56): their peeks on it become joins; if the room
    /// was peeked over federation, this server is resident now and the federated peek is
    /// deleted (R56, R57). `access` is the room's access now that we are in it; client peeks
    /// still waiting on the room are decided against it.
    pub fn handle_joined(
        &mut self,
        now: Timestamp,
        user_id: &UserId,
        room_id: &RoomId,
        access: &RoomAccess,
    ) {
        self.sync.handle_joined(now, user_id, room_id, access);
        self.pump(now);
    }

    /// This server's last local member left `room_id`: a later peek of it goes over federation
    /// again (clears the outbound "never re-peek a joined room" mark).
    pub fn handle_server_left(&mut self, now: Timestamp, room_id: &RoomId) {
        self.sync.tick_only(now);
        self.federation.handle_server_left(now, room_id);
        self.pump(now);
    }

    /// The room's history visibility or encryption changed (R24, R40): every machine that
    /// cares hears of it. Not peekable any more ends local peeks, expires inbound peeks and
    /// deletes the federated peek.
    pub fn handle_access_changed(&mut self, now: Timestamp, room_id: &RoomId, access: &RoomAccess) {
        self.sync.handle_access_changed(now, room_id, access);
        self.federation.handle_access_changed(now, room_id, access);
        self.pump(now);
    }

    /// The device synced: it is alive (docs/architecture.md §4.4).
    pub fn handle_device_synced(&mut self, now: Timestamp, user_id: &UserId, device_id: &DeviceId) {
        self.sync.handle_device_synced(now, user_id, device_id);
        self.pump(now);
    }

    /// The device was deleted or logged out (R25). Its client peeks still waiting on
    /// federation fail with `NotPeeking` (they are never granted later).
    pub fn handle_device_removed(
        &mut self,
        now: Timestamp,
        user_id: &UserId,
        device_id: &DeviceId,
    ) {
        self.sync.handle_device_removed(now, user_id, device_id);
        self.pump(now);
    }

    /// The account was deactivated (R25). Its client peeks still waiting on federation fail
    /// with `NotPeeking`.
    pub fn handle_user_deactivated(&mut self, now: Timestamp, user_id: &UserId) {
        self.sync.handle_user_deactivated(now, user_id);
        self.pump(now);
    }

    // ----- federation, resident side (MSC2444) -----

    /// A remote server's `PUT …/peek/{roomId}/{peekId}` (R28–R38). Call it **before** taking
    /// the state snapshot; if the snapshot fails, roll back with
    /// [`handle_inbound_unpeek`](Self::handle_inbound_unpeek) (R37).
    pub fn handle_inbound_peek(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
        ver: &[RoomVersionId],
        access: Option<&RoomAccess>,
    ) -> Result<InboundGrant, InboundPeekError> {
        self.sync.tick_only(now);
        let result =
            self.federation.handle_inbound_peek(now, origin, room_id, peek_id, ver, access);
        self.pump(now);
        result
    }

    /// A remote server's `POST …/renew` (R41).
    pub fn handle_inbound_renew(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) -> Result<InboundGrant, InboundPeekError> {
        self.sync.tick_only(now);
        let result = self.federation.handle_inbound_renew(now, origin, room_id, peek_id);
        self.pump(now);
        result
    }

    /// A remote server's `DELETE …/peek/{roomId}/{peekId}` (R42).
    pub fn handle_inbound_unpeek(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) -> Result<(), InboundPeekError> {
        self.sync.tick_only(now);
        let result = self.federation.handle_inbound_unpeek(now, origin, room_id, peek_id);
        self.pump(now);
        result
    }

    /// `server` is newly denied by the room's server ACL (R45).
    pub fn handle_server_denied(&mut self, now: Timestamp, room_id: &RoomId, server: &ServerName) {
        self.sync.tick_only(now);
        self.federation.handle_server_denied(now, room_id, server);
        self.pump(now);
    }

    // ----- federation, peeking side (MSC2444) -----

    /// The outcome of an [`Output::Send`] request.
    pub fn handle_response(&mut self, now: Timestamp, id: RequestId, outcome: OutboundOutcome) {
        self.sync.tick_only(now);
        self.federation.handle_response(now, id, outcome);
        self.pump(now);
    }

    /// An event of `room_id` arrived through its federated peek (in a `/send` from the
    /// resident). Cheap; it lets the outbound machine notice a resident that falls silent in an
    /// active room and fail over in minutes (see `OutboundConfig::failover_after`). Events of
    /// rooms that are not peeked over federation are ignored.
    pub fn handle_remote_event(&mut self, now: Timestamp, room_id: &RoomId) {
        self.sync.tick_only(now);
        self.federation.handle_remote_event(now, room_id);
        self.pump(now);
    }

    /// The host knows `server` is unreachable (its other federation traffic to it fails):
    /// rooms peeked through it move to another candidate at once.
    pub fn handle_server_unreachable(&mut self, now: Timestamp, server: &ServerName) {
        self.sync.tick_only(now);
        self.federation.handle_server_unreachable(now, server);
        self.pump(now);
    }

    /// An `expired_peeks` entry arrived in a `/send` from `server` (R54).
    pub fn handle_remote_expired(
        &mut self,
        now: Timestamp,
        server: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) {
        self.sync.tick_only(now);
        self.federation.handle_remote_expired(now, server, room_id, peek_id);
        self.pump(now);
    }

    // ----- time and outputs -----

    /// Fires everything due at or before `now` in all three machines. Spurious calls are
    /// no-ops.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.sync.handle_local_timeout(now);
        self.federation.handle_timeout(now);
        self.pump(now);
        self.sync.expire_pending(now);
        self.pump(now);
    }

    /// The next output for the host, or `None`. Answers change only after a `handle_*` call or
    /// `restore`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the earliest of
    ///
    /// * [`LocalPeeks::poll_timeout`]: lease ends, devices going idle, collection of retained
    ///   ended entries (up to `ended_retention` after the last peek ended);
    /// * [`InboundPeeks::poll_timeout`]: inbound peek expiries;
    /// * [`OutboundPeeks::poll_timeout`]: renewals and probes, backoff and pacer ends,
    ///   failovers, linger ends, lapses, `DELETE` retries;
    /// * the `max_pending_wait` of each client peek waiting on federation.
    ///
    /// Changes only after a `handle_*` call.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        [self.sync.poll_timeout(), self.federation.poll_timeout()].into_iter().flatten().min()
    }

    // ----- queries -----

    /// The local peeks machine (read-only).
    pub fn local(&self) -> &LocalPeeks {
        self.sync.local()
    }

    /// The inbound peeks machine (read-only).
    pub fn inbound(&self) -> &InboundPeeks {
        self.federation.inbound()
    }

    /// The outbound peeks machine (read-only).
    pub fn outbound(&self) -> &OutboundPeeks {
        self.federation.outbound()
    }

    /// The client and sync half (read-only).
    pub fn sync_side(&self) -> &SyncSide {
        &self.sync
    }

    /// The federation half (read-only).
    pub fn federation_side(&self) -> &FederationSide {
        &self.federation
    }

    /// What the device's `/sync` shows since `since` (docs/architecture.md §4.3).
    pub fn sync_delta(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        since: Option<StreamPosition>,
    ) -> SyncDelta {
        self.sync.sync_delta(user_id, device_id, since)
    }

    /// Servers with a live inbound peek on the room, once each (R39). The host relays every
    /// event of the room to these ∪ the joined servers.
    pub fn destinations<'a>(
        &'a self,
        room_id: &RoomId,
    ) -> impl Iterator<Item = &'a ServerName> + 'a {
        self.federation.destinations(room_id)
    }

    /// Local devices peeking the room: wake them when an event lands in it.
    pub fn peekers<'a>(
        &'a self,
        room_id: &RoomId,
    ) -> impl Iterator<Item = (&'a UserId, &'a DeviceId)> + 'a {
        self.sync.peekers(room_id)
    }

    /// Whether the room is peeked over federation (rather than resident).
    pub fn is_remote(&self, room_id: &RoomId) -> bool {
        self.sync.is_remote(room_id)
    }

    /// Client peeks waiting on federation.
    pub fn pending_client_peeks(&self) -> usize {
        self.sync.pending_client_peeks()
    }

    /// How many (room, channel) pairs the routing between the halves remembers
    /// ([`FederationSide::routing_memory`]): the rooms the outbound machine holds and, until
    /// the next amortised prune, up to as many again. Changes with every input.
    pub fn routing_memory(&self) -> usize {
        self.federation.routing_memory()
    }

    /// What the coordinator and its machines did (counters) and hold (gauges), for metrics.
    /// O(rooms + devices); cheap enough for every scrape. Changes after every `handle_*` call.
    pub fn stats(&self) -> PeekingStats {
        let mut stats = self.sync.stats();
        let federation = self.federation.stats();
        stats.inbound = federation.inbound;
        stats.outbound = federation.outbound;
        stats
    }
}
