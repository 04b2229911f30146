//! [`Peeking`]: the three machines behind one front door (docs/architecture.md §7). The routing
//! diagram and the rules are on [`Peeking`].

mod config;
mod error;
mod output;
mod record;
mod route;
mod stats;

use std::collections::{HashMap, VecDeque};

use ruma_common::{
    DeviceId, OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomVersionId,
    ServerName, UserId,
};

pub use config::PeekingConfig;
pub use error::PeekError;
pub use output::{ClientPeekReply, Output};
#[cfg(feature = "testing")]
pub(crate) use record::SnapshotMaps;
pub use record::{Change, RemoteRoomChange, RemoteRoomRecord, Snapshot};
pub use stats::{ClientPeekCounts, PeekingStats};

use crate::access::RoomAccess;
use crate::ids::{RequestId, StreamPosition};
use crate::inbound::{InboundGrant, InboundPeekError, InboundPeeks};
use crate::local::{LocalGrant, LocalPeekError, LocalPeeks, SyncDelta};
use crate::outbound::{OutboundFailure, OutboundOutcome, OutboundPeekError, OutboundPeeks};
use crate::time::{Monotonic, Tick, Timestamp};
use crate::timer::TimerQueue;

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

#[derive(Debug, Clone)]
struct PendingPeek {
    user_id: OwnedUserId,
    device_id: OwnedDeviceId,
    room_id: OwnedRoomId,
    joined: bool,
}

#[derive(Debug, Clone)]
struct RemoteRoom {
    via: Vec<OwnedServerName>,
    access: Option<RoomAccess>,
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
    local: LocalPeeks,
    inbound: InboundPeeks,
    outbound: OutboundPeeks,
    clock: Monotonic,
    max_pending: usize,
    max_via: usize,
    max_pending_wait: std::time::Duration,
    /// When each waiting client peek gives up (`max_pending_wait`).
    pending_deadlines: TimerQueue<RequestId>,
    remote_rooms: HashMap<OwnedRoomId, RemoteRoom>,
    pending: HashMap<RequestId, PendingPeek>,
    pending_by_room: HashMap<OwnedRoomId, Vec<RequestId>>,
    next_client_request: u64,
    /// The pending id being answered synchronously, and its answer if it came during the call.
    answering: Option<(RequestId, Option<Result<LocalGrant, PeekError>>)>,
    outputs: VecDeque<Output>,
    counts: ClientPeekCounts,
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
        let mut peeking = Peeking {
            local: LocalPeeks::restore(now, config.local, local),
            inbound: InboundPeeks::restore(now, config.inbound, inbound),
            outbound: OutboundPeeks::restore(now, config.outbound, outbound),
            clock: Monotonic::starting_at(now),
            max_pending: config.max_pending_client_peeks,
            max_via: config.max_via,
            max_pending_wait: config.max_pending_wait,
            pending_deadlines: TimerQueue::new(),
            remote_rooms: remote_rooms
                .into_iter()
                .map(|r| (r.room_id, RemoteRoom { via: r.via, access: r.access }))
                .collect(),
            pending: HashMap::new(),
            pending_by_room: HashMap::new(),
            next_client_request: 0,
            answering: None,
            outputs: VecDeque::new(),
            counts: ClientPeekCounts::default(),
        };
        peeking.drain(now);
        peeking
    }

    // ----- client side (MSC2753) -----

    /// A client's `/peek` (R1–R9, R27). See [`ClientPeekReply`].
    pub fn handle_client_peek(&mut self, now: Timestamp, peek: ClientPeek) -> ClientPeekReply {
        crate::log::span!("client_peek", user = %peek.user_id, device = %peek.device_id, room = %peek.room_id);
        self.tick(now);
        let ClientPeek { user_id, device_id, room_id, joined, residency, via } = peek;
        let reply = match residency {
            Residency::Resident(access) => {
                if self.remote_rooms.contains_key(&room_id) {
                    // We are resident now: the federated peek is no longer needed (R57).
                    self.server_joined(now, &room_id, &access);
                }
                let result =
                    self.local.handle_peek(now, &user_id, &device_id, &room_id, joined, &access);
                ClientPeekReply::Done(result.map_err(PeekError::from))
            }
            Residency::Remote => {
                self.remote_client_peek(now, user_id, device_id, room_id, joined, via)
            }
        };
        self.drain(now);
        match reply {
            ClientPeekReply::Pending(id) => match self.answering.take() {
                Some((answered, Some(result))) if answered == id => {
                    self.counts.answered_at_once += 1;
                    ClientPeekReply::Done(result)
                }
                _ => {
                    self.counts.waited += 1;
                    ClientPeekReply::Pending(id)
                }
            },
            done => {
                self.answering = None;
                done
            }
        }
    }

    fn remote_client_peek(
        &mut self,
        now: Timestamp,
        user_id: OwnedUserId,
        device_id: OwnedDeviceId,
        room_id: OwnedRoomId,
        joined: bool,
        via: Vec<OwnedServerName>,
    ) -> ClientPeekReply {
        self.counts.remote += 1;
        if !joined && self.outbound.is_joined(&room_id) {
            // The host says we are not in the room, so the outbound "joined, never re-peek"
            // mark is stale (the host did not report `handle_server_left`): clear it, or the
            // demand below would be ignored and the client would wait forever.
            self.outbound.handle_server_left(now, &room_id);
        }
        // Already peeking, or the federated peek is up: decide locally at once.
        let known_access =
            self.outbound.established(&room_id).map(|(_, access)| access.clone()).or_else(|| {
                if self.local.is_peeking(&user_id, &device_id, &room_id) {
                    self.remote_rooms.get(&room_id).and_then(|r| r.access.clone())
                } else {
                    None
                }
            });
        if joined || known_access.is_some() {
            // `joined` is refused by the local checks whatever the access (R6).
            let access =
                known_access.unwrap_or_else(|| RoomAccess::new(RoomVersionId::V1, false, false));
            let result =
                self.local.handle_peek(now, &user_id, &device_id, &room_id, joined, &access);
            if result.is_ok() {
                // Only a granted peek makes the room one we peek over federation; a refused
                // one (R6) leaves no memory behind.
                self.remember_remote(&room_id, &via);
            }
            self.counts.answered_at_once += 1;
            return ClientPeekReply::Done(result.map_err(PeekError::from));
        }
        if self.pending.len() >= self.max_pending {
            self.counts.over_capacity += 1;
            crate::log::warning!(room = %room_id, "client peek refused: too many waiting on federation");
            return ClientPeekReply::Done(Err(PeekError::Local(LocalPeekError::LimitExceeded {
                retry_after: std::time::Duration::from_secs(1),
            })));
        }
        let id = RequestId(self.next_client_request);
        self.next_client_request += 1;
        self.pending
            .insert(id, PendingPeek { user_id, device_id, room_id: room_id.clone(), joined });
        self.pending_by_room.entry(room_id.clone()).or_default().push(id);
        self.pending_deadlines.schedule(id, now.saturating_add(self.max_pending_wait));
        self.remember_remote(&room_id, &via);
        self.answering = Some((id, None));
        let via = self.via_of(&room_id);
        self.outbound.handle_demand(now, &room_id, &via);
        // Demand returning to a lingering, still-granted peek revives it without traffic and
        // without a new `Established` output: decide the waiting peeks against it now.
        if let Some((_, access)) = self.outbound.granted(&room_id) {
            let access = access.clone();
            self.learn_access(&room_id, &access);
            self.complete_pending(now, &room_id, Ok(&access));
        }
        ClientPeekReply::Pending(id)
    }

    /// The client behind a [`ClientPeekReply::Pending`] peek went away (its HTTP request was
    /// dropped, or the host's deadline for it passed): the waiting peek is withdrawn and will
    /// never be granted. It completes with `ClientPeekDone(Err(NotPeeking))`; a room nobody
    /// else waits on or peeks loses its demand. An id that is not waiting (already decided, or
    /// unknown) is ignored.
    pub fn handle_client_peek_withdrawn(&mut self, now: Timestamp, id: RequestId) {
        self.tick(now);
        if self.pending.contains_key(&id) {
            self.counts.withdrawn += 1;
            self.fail_pending(now, vec![id], &PeekError::Local(LocalPeekError::NotPeeking));
        }
        self.drain(now);
    }

    /// A client's `/unpeek` (R12, R13).
    pub fn handle_client_unpeek(
        &mut self,
        now: Timestamp,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
    ) -> Result<(), PeekError> {
        self.tick(now);
        let mut result = self.local.handle_unpeek(now, user_id, device_id, room_id);
        let withdraws = |p: &PendingPeek| {
            p.user_id == user_id && p.device_id == device_id && p.room_id == room_id
        };
        if result == Err(LocalPeekError::NotPeeking) && self.pending.values().any(withdraws) {
            // The device gave up on a peek still waiting on federation: the waiting `/peek`
            // fails (`NotPeeking`), the unpeek succeeds, and nothing is granted later.
            self.cancel_pending(now, withdraws);
            result = Ok(());
        }
        self.drain(now);
        result.map_err(PeekError::from)
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
        self.tick(now);
        self.local.handle_joined(now, user_id, room_id);
        // The user's own peeks still waiting on the room are peeks of a joined user now: they
        // are refused (R6), never granted next to the join (R23).
        for id in self.pending_by_room.get(room_id).into_iter().flatten() {
            if let Some(p) = self.pending.get_mut(id)
                && p.user_id == user_id
            {
                p.joined = true;
            }
        }
        if self.remote_rooms.contains_key(room_id) || self.pending_by_room.contains_key(room_id) {
            self.server_joined(now, room_id, access);
        }
        self.drain(now);
    }

    /// This server's last local member left `room_id`: a later peek of it goes over federation
    /// again (clears the outbound "never re-peek a joined room" mark).
    pub fn handle_server_left(&mut self, now: Timestamp, room_id: &RoomId) {
        self.tick(now);
        self.outbound.handle_server_left(now, room_id);
        self.drain(now);
    }

    /// The room's history visibility or encryption changed (R24, R40): every machine that
    /// cares hears of it. Not peekable any more ends local peeks, expires inbound peeks and
    /// deletes the federated peek.
    pub fn handle_access_changed(&mut self, now: Timestamp, room_id: &RoomId, access: &RoomAccess) {
        self.tick(now);
        self.local.handle_access_changed(now, room_id, access);
        self.inbound.handle_access_changed(now, room_id, access);
        if let Some(remote) = self.remote_rooms.get_mut(room_id) {
            remote.access = Some(access.clone());
            let record = self.remote_record(room_id);
            self.outputs.push_back(Output::Persist(Change::RemoteRoom(record)));
            self.outbound.handle_access_changed(now, room_id, access);
        }
        self.drain(now);
    }

    /// The device synced: it is alive (docs/architecture.md §4.4).
    pub fn handle_device_synced(&mut self, now: Timestamp, user_id: &UserId, device_id: &DeviceId) {
        self.tick(now);
        self.local.handle_device_synced(now, user_id, device_id);
        self.drain(now);
    }

    /// The device was deleted or logged out (R25). Its client peeks still waiting on
    /// federation fail with `NotPeeking` (they are never granted later).
    pub fn handle_device_removed(
        &mut self,
        now: Timestamp,
        user_id: &UserId,
        device_id: &DeviceId,
    ) {
        self.tick(now);
        self.local.handle_device_removed(now, user_id, device_id);
        self.cancel_pending(now, |p| p.user_id == user_id && p.device_id == device_id);
        self.drain(now);
    }

    /// The account was deactivated (R25). Its client peeks still waiting on federation fail
    /// with `NotPeeking`.
    pub fn handle_user_deactivated(&mut self, now: Timestamp, user_id: &UserId) {
        self.tick(now);
        self.local.handle_user_deactivated(now, user_id);
        self.cancel_pending(now, |p| p.user_id == user_id);
        self.drain(now);
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
        self.tick(now);
        let result = self.inbound.handle_peek(now, origin, room_id, peek_id, ver, access);
        self.drain(now);
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
        self.tick(now);
        let result = self.inbound.handle_renew(now, origin, room_id, peek_id);
        self.drain(now);
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
        self.tick(now);
        let result = self.inbound.handle_unpeek(now, origin, room_id, peek_id);
        self.drain(now);
        result
    }

    /// `server` is newly denied by the room's server ACL (R45).
    pub fn handle_server_denied(&mut self, now: Timestamp, room_id: &RoomId, server: &ServerName) {
        self.tick(now);
        self.inbound.handle_server_denied(now, room_id, server);
        self.drain(now);
    }

    // ----- federation, peeking side (MSC2444) -----

    /// The outcome of an [`Output::Send`] request.
    pub fn handle_response(&mut self, now: Timestamp, id: RequestId, outcome: OutboundOutcome) {
        self.tick(now);
        self.outbound.handle_response(now, id, outcome);
        self.drain(now);
    }

    /// An event of `room_id` arrived through its federated peek (in a `/send` from the
    /// resident). Cheap; it lets the outbound machine notice a resident that falls silent in an
    /// active room and fail over in minutes (see `OutboundConfig::failover_after`). Events of
    /// rooms that are not peeked over federation are ignored.
    pub fn handle_remote_event(&mut self, now: Timestamp, room_id: &RoomId) {
        self.tick(now);
        self.outbound.handle_room_event(now, room_id);
        self.drain(now);
    }

    /// The host knows `server` is unreachable (its other federation traffic to it fails):
    /// rooms peeked through it move to another candidate at once.
    pub fn handle_server_unreachable(&mut self, now: Timestamp, server: &ServerName) {
        self.tick(now);
        self.outbound.handle_server_unreachable(now, server);
        self.drain(now);
    }

    /// An `expired_peeks` entry arrived in a `/send` from `server` (R54).
    pub fn handle_remote_expired(
        &mut self,
        now: Timestamp,
        server: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) {
        self.tick(now);
        self.outbound.handle_remote_expired(now, server, room_id, peek_id);
        self.drain(now);
    }

    // ----- time and outputs -----

    /// Fires everything due at or before `now` in all three machines. Spurious calls are
    /// no-ops.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.tick(now);
        self.local.handle_timeout(now);
        self.inbound.handle_timeout(now);
        self.outbound.handle_timeout(now);
        self.drain(now);
        let overdue = self.pending_deadlines.expire(now);
        if !overdue.is_empty() {
            self.counts.timed_out += overdue.len() as u64;
            crate::log::warning!(
                count = overdue.len(),
                "client peeks gave up waiting on federation"
            );
            let error = PeekError::Remote(OutboundPeekError::Remote(OutboundFailure::Unreachable));
            self.fail_pending(now, overdue, &error);
            self.drain(now);
        }
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
        [
            self.local.poll_timeout(),
            self.inbound.poll_timeout(),
            self.outbound.poll_timeout(),
            self.pending_deadlines.next(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Watches the host's clock for corrections (see `CLOCK_STEP_LIMIT`); on one, no waiting
    /// client peek waits longer than `max_pending_wait` from the corrected time. The children
    /// get the host's `now` as it is and heal themselves.
    fn tick(&mut self, now: Timestamp) {
        if let Tick::Corrected(now) = self.clock.advance(now) {
            let latest = now.saturating_add(self.max_pending_wait);
            let late: Vec<RequestId> = self
                .pending_deadlines
                .iter()
                .filter(|(at, _)| *at > latest)
                .map(|(_, id)| *id)
                .collect();
            for id in late {
                self.pending_deadlines.schedule(id, latest);
            }
        }
    }

    // ----- queries -----

    /// The local peeks machine (read-only).
    pub fn local(&self) -> &LocalPeeks {
        &self.local
    }

    /// The inbound peeks machine (read-only).
    pub fn inbound(&self) -> &InboundPeeks {
        &self.inbound
    }

    /// The outbound peeks machine (read-only).
    pub fn outbound(&self) -> &OutboundPeeks {
        &self.outbound
    }

    /// What the device's `/sync` shows since `since` (docs/architecture.md §4.3).
    pub fn sync_delta(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        since: Option<StreamPosition>,
    ) -> SyncDelta {
        self.local.sync_delta(user_id, device_id, since)
    }

    /// Servers with a live inbound peek on the room, once each (R39). The host relays every
    /// event of the room to these ∪ the joined servers.
    pub fn destinations<'a>(
        &'a self,
        room_id: &RoomId,
    ) -> impl Iterator<Item = &'a ServerName> + 'a {
        self.inbound.destinations(room_id)
    }

    /// Local devices peeking the room: wake them when an event lands in it.
    pub fn peekers<'a>(
        &'a self,
        room_id: &RoomId,
    ) -> impl Iterator<Item = (&'a UserId, &'a DeviceId)> + 'a {
        self.local.peekers(room_id)
    }

    /// Whether the room is peeked over federation (rather than resident).
    pub fn is_remote(&self, room_id: &RoomId) -> bool {
        self.remote_rooms.contains_key(room_id)
    }

    /// Client peeks waiting on federation.
    pub fn pending_client_peeks(&self) -> usize {
        self.pending.len()
    }

    /// What the coordinator and its machines did (counters) and hold (gauges), for metrics.
    /// O(rooms + devices); cheap enough for every scrape. Changes after every `handle_*` call.
    pub fn stats(&self) -> PeekingStats {
        let mut stats = PeekingStats::default();
        stats.local = self.local.stats();
        stats.inbound = self.inbound.stats();
        stats.outbound = self.outbound.stats();
        stats.client_peeks = self.counts;
        stats.pending_client_peeks = self.pending.len() as u64;
        stats.remote_rooms = self.remote_rooms.len() as u64;
        stats
    }
}
