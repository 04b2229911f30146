//! [`SyncSide`]: the client and sync half of [`Peeking`](super::Peeking) — [`LocalPeeks`], the
//! client peeks waiting on federation, and the memory of remote rooms. It talks to the
//! [`FederationSide`](super::FederationSide) only through [`ToFederation`] and [`ToSync`]
//! messages (docs/architecture.md §7.5).

use std::collections::{HashMap, VecDeque};

use ruma_common::{
    DeviceId, OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomVersionId,
    UserId,
};

use super::message::{Sequencer, SideOutput, ToFederation, ToSync};
use super::resync::RoomTimers;
use super::{
    ClientPeek, ClientPeekCounts, ClientPeekReply, PeekError, PeekingConfig, PeekingStats,
    Residency, Snapshot,
};
use crate::access::RoomAccess;
use crate::ids::{RequestId, StreamPosition};
use crate::local::{LocalGrant, LocalPeekError, LocalPeeks, SyncDelta};
use crate::outbound::{OutboundFailure, OutboundPeekError};
use crate::time::{Monotonic, Tick, Timestamp};
use crate::timer::TimerQueue;

#[derive(Debug, Clone)]
pub(super) struct PendingPeek {
    pub(super) user_id: OwnedUserId,
    pub(super) device_id: OwnedDeviceId,
    pub(super) room_id: OwnedRoomId,
    pub(super) joined: bool,
}

#[derive(Debug, Clone)]
pub(super) struct RemoteRoom {
    pub(super) via: Vec<OwnedServerName>,
    pub(super) access: Option<RoomAccess>,
}

/// What the sync side knows of the federated peek of a room it wants (it sent `Demand` last).
#[derive(Debug, Clone)]
pub(super) struct Wanted {
    /// The `Seq` of the latest `Demand`: answers to older ones are stale.
    pub(super) asked: super::Seq,
    /// The newest federation-side message applied for the room.
    pub(super) heard: Option<super::Seq>,
    /// Whether a client peek found the host calling the room remote (sticky, so a newer
    /// `Demand` never undoes the clearing of a stale joined mark).
    pub(super) not_resident: bool,
    /// What the federation side last said of the peek.
    pub(super) peek: FederatedPeek,
}

/// The sync side's view of one room's federated peek.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FederatedPeek {
    /// Not granted, or not known to be (no answer yet).
    Down,
    /// Granted, with the access the resident reported (updated by access changes).
    Granted(RoomAccess),
}

/// The client and sync half of [`Peeking`](super::Peeking): owns [`LocalPeeks`] and the client
/// peeks waiting on federation, and decides them on what the
/// [`FederationSide`](super::FederationSide) reports.
///
/// Run-loop contract: as for `Peeking`, but [`poll_output`](Self::poll_output) yields
/// [`SideOutput`]s: `Host` outputs for this worker's host (`Persist`, `Wake`, `PeekEnded`,
/// `ClientPeekDone`) and `Route` messages to deliver to the federation side. Messages from the
/// federation side go to [`handle_route`](Self::handle_route), at least once, in any order
/// apart from what docs/architecture.md §7.5 requires.
///
/// Its store holds `Snapshot::local` and `Snapshot::remote_rooms`; [`restore`](Self::restore)
/// ignores the other fields.
#[derive(Debug, Clone)]
pub struct SyncSide {
    pub(super) local: LocalPeeks,
    pub(super) clock: Monotonic,
    pub(super) max_pending: usize,
    pub(super) max_via: usize,
    pub(super) max_pending_wait: std::time::Duration,
    /// When each waiting client peek gives up (`max_pending_wait`).
    pub(super) pending_deadlines: TimerQueue<RequestId>,
    pub(super) remote_rooms: HashMap<OwnedRoomId, RemoteRoom>,
    pub(super) pending: HashMap<RequestId, PendingPeek>,
    pub(super) pending_by_room: HashMap<OwnedRoomId, Vec<RequestId>>,
    /// Rooms whose last demand-channel message was `Demand`.
    pub(super) wanted: HashMap<OwnedRoomId, Wanted>,
    pub(super) seq: Sequencer,
    pub(super) next_client_request: u64,
    /// The pending id being answered synchronously, and its answer if it came during the call.
    pub(super) answering: Option<(RequestId, Option<Result<LocalGrant, PeekError>>)>,
    pub(super) outputs: VecDeque<SideOutput<ToFederation>>,
    pub(super) counts: ClientPeekCounts,
    pub(super) stale: u64,
    /// When each wanted room's demand is restated (anti-entropy; off inside `Peeking`).
    pub(super) resync: RoomTimers,
    /// Demands restated by the anti-entropy timer since this side started.
    pub(super) restated: u64,
}

impl SyncSide {
    /// A sync side with no peeks; `epoch` as in [`Seq`](super::Seq).
    pub fn new(config: PeekingConfig, epoch: u64) -> Self {
        Self::restore(Timestamp::ZERO, config, Snapshot::default(), epoch)
    }

    /// Rebuilds the sync side from `snapshot.local` and `snapshot.remote_rooms` at restart time
    /// `now`, in incarnation `epoch` (greater than any before it). Restored local peeks
    /// re-declare their rooms' demand: a `Demand` message for every remembered remote room.
    pub fn restore(now: Timestamp, config: PeekingConfig, snapshot: Snapshot, epoch: u64) -> Self {
        let Snapshot { local, remote_rooms, .. } = snapshot;
        let mut side = SyncSide {
            local: LocalPeeks::restore(now, config.local, local),
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
            wanted: HashMap::new(),
            seq: Sequencer::new(epoch),
            next_client_request: 0,
            answering: None,
            outputs: VecDeque::new(),
            counts: ClientPeekCounts::default(),
            stale: 0,
            resync: RoomTimers::new(config.resync_interval),
            restated: 0,
        };
        side.drain(now);
        // Client peeks that waited on federation are not persisted: a remembered remote room
        // that no restored local peek uses is forgotten now, or it would stay for good (§7.3).
        let mut unused: Vec<OwnedRoomId> = side.remote_rooms.keys().cloned().collect();
        unused.sort_unstable();
        for room_id in unused {
            side.forget_remote_if_unused(&room_id);
        }
        side
    }

    /// A client's `/peek` (R1–R9, R27): as [`Peeking::handle_client_peek`](super::Peeking).
    /// Across processes a remote room's peek is answered at once only when the federation side
    /// has already reported it granted; otherwise it is `Pending` and completes with
    /// `ClientPeekDone` once [`ToSync::Granted`] or [`ToSync::Unavailable`] arrives.
    pub fn handle_client_peek(&mut self, now: Timestamp, peek: ClientPeek) -> ClientPeekReply {
        crate::log::span!("client_peek", user = %peek.user_id, device = %peek.device_id, room = %peek.room_id);
        let reply = self.begin_client_peek(now, peek);
        self.settle_client_peek(reply)
    }

    /// The first half of [`handle_client_peek`](Self::handle_client_peek): decides or queues
    /// the peek and leaves `answering` set for a synchronous answer.
    pub(super) fn begin_client_peek(
        &mut self,
        now: Timestamp,
        peek: ClientPeek,
    ) -> ClientPeekReply {
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
        reply
    }

    /// The second half: a `Pending` peek answered during the call (directly, or by messages
    /// the composition passed meanwhile) becomes `Done`.
    pub(super) fn settle_client_peek(&mut self, reply: ClientPeekReply) -> ClientPeekReply {
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
        // Already peeking, or the federated peek is up: decide locally at once.
        let known_access = self.established(&room_id).cloned().or_else(|| {
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
        // The host says we are not in the room, so a "joined, never re-peek" mark on the
        // federation side is stale (the host did not report `handle_server_left`): the demand
        // clears it, or it would be ignored and the client would wait forever. A lingering,
        // still-granted peek answers the demand with `Granted` at once.
        self.send_demand(now, &room_id, true);
        ClientPeekReply::Pending(id)
    }

    /// The access of the room's federated peek if it is granted and demanded from here.
    fn established(&self, room_id: &RoomId) -> Option<&RoomAccess> {
        match &self.wanted.get(room_id)?.peek {
            FederatedPeek::Granted(access) => Some(access),
            FederatedPeek::Down => None,
        }
    }

    /// As [`Peeking::handle_client_peek_withdrawn`](super::Peeking::handle_client_peek_withdrawn).
    pub fn handle_client_peek_withdrawn(&mut self, now: Timestamp, id: RequestId) {
        self.tick(now);
        if self.pending.contains_key(&id) {
            self.counts.withdrawn += 1;
            self.fail_pending(now, vec![id], &PeekError::Local(LocalPeekError::NotPeeking));
        }
        self.drain(now);
    }

    /// As [`Peeking::handle_client_unpeek`](super::Peeking::handle_client_unpeek).
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

    /// As [`Peeking::handle_joined`](super::Peeking::handle_joined); a room peeked over
    /// federation sends [`ToFederation::ServerJoined`].
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

    /// The local side of [`Peeking::handle_access_changed`](super::Peeking::handle_access_changed):
    /// local peeks, the remote-room memory, and [`ToFederation::AccessChanged`] for a room
    /// peeked over federation. The inbound machine hears of it through
    /// [`FederationSide::handle_access_changed`](super::FederationSide::handle_access_changed).
    pub fn handle_access_changed(&mut self, now: Timestamp, room_id: &RoomId, access: &RoomAccess) {
        self.tick(now);
        self.local.handle_access_changed(now, room_id, access);
        if let Some(remote) = self.remote_rooms.get_mut(room_id) {
            remote.access = Some(access.clone());
            let record = self.remote_record(room_id);
            self.host(super::Output::Persist(super::Change::RemoteRoom(record)));
            if let Some(Wanted { peek: FederatedPeek::Granted(known), .. }) =
                self.wanted.get_mut(room_id)
            {
                *known = access.clone();
            }
            let seq = self.seq.next();
            self.route(ToFederation::AccessChanged {
                room_id: room_id.to_owned(),
                seq,
                access: access.clone(),
            });
        }
        self.drain(now);
    }

    /// The device synced: it is alive (docs/architecture.md §4.4).
    pub fn handle_device_synced(&mut self, now: Timestamp, user_id: &UserId, device_id: &DeviceId) {
        self.tick(now);
        self.local.handle_device_synced(now, user_id, device_id);
        self.drain(now);
    }

    /// As [`Peeking::handle_device_removed`](super::Peeking::handle_device_removed).
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

    /// As [`Peeking::handle_user_deactivated`](super::Peeking::handle_user_deactivated).
    pub fn handle_user_deactivated(&mut self, now: Timestamp, user_id: &UserId) {
        self.tick(now);
        self.local.handle_user_deactivated(now, user_id);
        self.cancel_pending(now, |p| p.user_id == user_id);
        self.drain(now);
    }

    /// A message from the federation side (see [`ToSync`] for when it is applied).
    pub fn handle_route(&mut self, now: Timestamp, message: ToSync) {
        self.tick(now);
        self.apply_route(now, message);
        self.drain(now);
    }

    /// Fires the local machine's deadlines, gives up on client peeks that waited
    /// `max_pending_wait`, and restates the demand for wanted rooms whose
    /// `resync_interval` has passed. Spurious calls are no-ops.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.handle_local_timeout(now);
        self.expire_pending(now);
        self.restate_due(now);
        self.drain(now);
    }

    pub(super) fn handle_local_timeout(&mut self, now: Timestamp) {
        self.tick(now);
        self.local.handle_timeout(now);
        self.drain(now);
    }

    pub(super) fn expire_pending(&mut self, now: Timestamp) {
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

    /// The next output for the host or the federation side, or `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<SideOutput<ToFederation>> {
        self.outputs.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: the local machine's
    /// deadlines, the waiting client peeks' `max_pending_wait`, and the next restatement of a
    /// wanted room's demand. Changes only after a `handle_*` call.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        [self.local.poll_timeout(), self.pending_deadlines.next(), self.resync.next()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Watches the host's clock for a call that reaches only the federation side.
    pub(super) fn tick_only(&mut self, now: Timestamp) {
        self.tick(now);
    }

    /// Watches the host's clock for corrections (see `CLOCK_STEP_LIMIT`); on one, no waiting
    /// client peek waits longer than `max_pending_wait` from the corrected time, and no
    /// restatement is due later than `resync_interval` from it.
    fn tick(&mut self, now: Timestamp) {
        if let Tick::Corrected(now) = self.clock.advance(now) {
            self.resync.heal(now);
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

    /// What the device's `/sync` shows since `since` (docs/architecture.md §4.3).
    pub fn sync_delta(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        since: Option<StreamPosition>,
    ) -> SyncDelta {
        self.local.sync_delta(user_id, device_id, since)
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

    /// Rooms this side currently wants a federated peek of (its last message was `Demand`).
    pub fn wanted_rooms(&self) -> impl Iterator<Item = &RoomId> + '_ {
        self.wanted.keys().map(|r| &**r)
    }

    /// Client peeks waiting on federation.
    pub fn pending_client_peeks(&self) -> usize {
        self.pending.len()
    }

    /// Federation-side messages dropped as duplicates or stale since this side started.
    pub fn stale_messages(&self) -> u64 {
        self.stale
    }

    /// `Demand`s restated by the anti-entropy timer (`PeekingConfig::resync_interval`) since
    /// this side started; always 0 inside [`Peeking`](super::Peeking).
    pub fn restated_demands(&self) -> u64 {
        self.restated
    }

    /// This side's part of [`PeekingStats`]: `local`, `client_peeks`, `pending_client_peeks`,
    /// `remote_rooms` (the inbound and outbound parts stay zero).
    pub fn stats(&self) -> PeekingStats {
        let mut stats = PeekingStats::default();
        stats.local = self.local.stats();
        stats.client_peeks = self.counts;
        stats.pending_client_peeks = self.pending.len() as u64;
        stats.remote_rooms = self.remote_rooms.len() as u64;
        stats
    }
}
