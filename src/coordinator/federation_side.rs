//! [`FederationSide`]: the federation half of [`Peeking`](super::Peeking) — [`InboundPeeks`]
//! and [`OutboundPeeks`]. It talks to the [`SyncSide`](super::SyncSide) only through
//! [`ToFederation`] and [`ToSync`] messages (docs/architecture.md §7.5).

use std::collections::{HashMap, VecDeque};

use ruma_common::{OwnedRoomId, RoomId, RoomVersionId, ServerName};

use super::message::{Channel, Seq, Sequencer, SideOutput, ToFederation, ToSync};
use super::resync::RoomTimers;
use super::{Change, Output, PeekingConfig, PeekingStats, Snapshot};
use crate::access::RoomAccess;
use crate::ids::RequestId;
use crate::inbound::{InboundGrant, InboundOutput, InboundPeekError, InboundPeeks};
use crate::outbound::{OutboundOutcome, OutboundOutput, OutboundPeeks};
use crate::time::{Monotonic, Tick, Timestamp};

/// How sync-side messages reach a [`FederationSide`], which decides whether its memory of
/// applied messages may be pruned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Over a log, at least once, possibly replayed within `PeekingConfig::replay_window`:
    /// a room's applied message is remembered while the outbound machine holds the room and
    /// for `replay_window` after it was applied (forgetting it sooner would let a replay of
    /// an older message apply again).
    Log(std::time::Duration),
    /// Inside [`Peeking`](super::Peeking): exactly once, in order, so no message is ever
    /// stale, and the memory of rooms the outbound machine no longer holds is pruned.
    InProcess,
}

/// The newest applied sync-side message of a room and channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Applied {
    pub(super) seq: Seq,
    pub(super) wish: Wish,
    /// When it was applied (the host's `now`).
    pub(super) at: Timestamp,
}

/// What the newest applied sync-side message of a room and channel stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wish {
    /// `Demand`: keep a federated peek.
    Wanted,
    /// `NoDemand` or `ServerJoined`: no federated peek.
    NotWanted,
    /// `AccessChanged` (the access channel carries no wish).
    Access,
}

/// The federation half of [`Peeking`](super::Peeking): owns [`InboundPeeks`] (the resident
/// side: who peeks our rooms, whom to relay to, `expired_peeks`) and [`OutboundPeeks`] (our
/// peeks into remote rooms, driven by the sync side's demand).
///
/// Run-loop contract: as for `Peeking`, but [`poll_output`](Self::poll_output) yields
/// [`SideOutput`]s: `Host` outputs for this worker's host (`Persist`, `Send`, `Expired`,
/// `Established`, `Lost`, `Unavailable`) and `Route` messages for the sync side. Messages from
/// the sync side go to [`handle_route`](Self::handle_route), at least once.
///
/// Its store holds `Snapshot::inbound` and `Snapshot::outbound`; [`restore`](Self::restore)
/// ignores the other fields. Several federation sides can share the rooms between them (each
/// room to exactly one, e.g. by a stable hash of the room id), each with its own store.
#[derive(Debug, Clone)]
pub struct FederationSide {
    pub(super) inbound: InboundPeeks,
    pub(super) outbound: OutboundPeeks,
    /// The newest sync-side message applied, per room and channel, and the wish it stated.
    /// Pruned (amortised, see [`prune_applied`](Self::prune_applied)) to about twice the
    /// rooms the outbound machine holds plus, over a log, the rooms written about within
    /// `replay_window`. Not persisted: after a restart, `Restored`, the sync side's fresh
    /// `Seq`s and its restatements rebuild it.
    pub(super) applied: HashMap<(OwnedRoomId, Channel), Applied>,
    /// `applied`'s size at which the next prune runs.
    pub(super) prune_at: usize,
    /// How messages arrive: whether `applied` may be pruned.
    pub(super) delivery: Delivery,
    pub(super) seq: Sequencer,
    pub(super) outputs: VecDeque<SideOutput<ToSync>>,
    pub(super) stale: u64,
    /// When to ask the sync side to confirm each demanded room (anti-entropy; off inside
    /// `Peeking`).
    pub(super) confirm: RoomTimers,
    /// `Confirm` messages sent since this side started.
    pub(super) confirms: u64,
    /// Applied-message entries dropped early at the cap, since this side started.
    pub(super) forgotten_early: u64,
    /// The host's clock, watched for corrections.
    pub(super) clock: Monotonic,
}

impl FederationSide {
    /// The smallest size of the applied-message memory at which it is pruned.
    const MIN_PRUNE_AT: usize = 64;

    /// A federation side with no peeks; `epoch` as in [`Seq`].
    pub fn new(config: PeekingConfig, epoch: u64) -> Self {
        Self::restore(Timestamp::ZERO, config, Snapshot::default(), epoch)
    }

    /// Rebuilds the federation side from `snapshot.inbound` and `snapshot.outbound` at restart
    /// time `now`, in incarnation `epoch` (greater than any before it). Every restored outbound
    /// room is announced with [`ToSync::Restored`], so the sync side states its demand again;
    /// a restored peek nobody demands lingers and ends.
    pub fn restore(now: Timestamp, config: PeekingConfig, snapshot: Snapshot, epoch: u64) -> Self {
        let Snapshot { inbound, outbound, .. } = snapshot;
        let mut side = FederationSide {
            inbound: InboundPeeks::restore(now, config.inbound, inbound),
            outbound: OutboundPeeks::restore(now, config.outbound, outbound),
            applied: HashMap::new(),
            prune_at: Self::MIN_PRUNE_AT,
            delivery: Delivery::Log(config.replay_window),
            seq: Sequencer::new(epoch),
            outputs: VecDeque::new(),
            stale: 0,
            confirm: RoomTimers::new(config.resync_interval.saturating_mul(2)),
            confirms: 0,
            forgotten_early: 0,
            clock: Monotonic::starting_at(now),
        };
        let mut rooms: Vec<OwnedRoomId> =
            side.outbound.rooms().map(|info| info.room_id.to_owned()).collect();
        rooms.sort_unstable();
        side.drain(now);
        for room_id in rooms {
            let seq = side.seq.next();
            side.outputs.push_back(SideOutput::Route(ToSync::Restored { room_id, seq }));
        }
        side
    }

    /// A message from the sync side. Applied only if its [`Seq`] is newer than the last one
    /// applied for the same room and [`Channel`]; a `Demand` is answered with the peek's state.
    pub fn handle_route(&mut self, now: Timestamp, message: ToFederation) {
        let now = self.tick(now);
        let room = message.room_id().to_owned();
        let key = (room.clone(), message.channel());
        let seq = message.seq();
        let wish = match message {
            ToFederation::Demand { .. } => Wish::Wanted,
            ToFederation::NoDemand { .. } | ToFederation::ServerJoined { .. } => Wish::NotWanted,
            ToFederation::AccessChanged { .. } => Wish::Access,
        };
        let previous = self.applied.get(&key).copied();
        if previous.is_some_and(|applied| seq <= applied.seq) {
            self.stale += 1;
            return;
        }
        self.applied.insert(key, Applied { seq, wish, at: now });
        match message {
            ToFederation::Demand { room_id, via, not_resident, restated, .. } => {
                if not_resident {
                    self.outbound.handle_server_left(now, &room_id);
                }
                // A restatement of a room still held changes no candidate: a server that
                // refused the room stays dropped, as in `Peeking`, where nothing restates.
                let held = self.outbound.state(&room_id).is_some();
                let via: &[_] = if restated && held { &[] } else { &via };
                self.outbound.handle_demand(now, &room_id, via);
                self.drain(now);
                // Demand returning to a lingering, still-granted peek revives it without
                // traffic and without `Established`: say so, or clients would wait for nothing.
                let after = self.after(&room_id);
                let seq = self.seq.next();
                let answer = match self.outbound.granted(&room_id) {
                    Some((server, access)) => ToSync::Granted {
                        room_id,
                        seq,
                        after,
                        server: server.to_owned(),
                        access: access.clone(),
                    },
                    None => ToSync::NotGranted { room_id, seq, after },
                };
                self.outputs.push_back(SideOutput::Route(answer));
            }
            ToFederation::NoDemand { room_id, .. } => {
                // Level, not edge: a repeated `NoDemand` (the sync side saying it again) changes
                // nothing; only the change from wanted does.
                if previous.is_none_or(|applied| applied.wish == Wish::Wanted) {
                    self.outbound.handle_no_demand(now, &room_id);
                }
            }
            ToFederation::ServerJoined { room_id, .. } => {
                self.outbound.handle_server_joined(now, &room_id);
            }
            ToFederation::AccessChanged { room_id, access, .. } => {
                self.outbound.handle_access_changed(now, &room_id, &access);
            }
        }
        self.drain(now);
        match wish {
            // The sync side restates a demand every `resync_interval`: ask it only if it went
            // quiet for twice that, and only about a peek held (a refused room costs nothing).
            Wish::Wanted if self.outbound.state(&room).is_some() => self.confirm.arm(now, &room),
            Wish::Wanted | Wish::NotWanted => self.confirm.disarm(&room),
            Wish::Access => {}
        }
        self.prune_applied(now);
    }

    /// Watches the host's clock (see `CLOCK_STEP_LIMIT`): after a large step back, no applied
    /// message is dated later than the corrected time (so none is kept longer than
    /// `replay_window` from it) and no `Confirm` is due further than its wait from it.
    fn tick(&mut self, now: Timestamp) -> Timestamp {
        match self.clock.advance(now) {
            Tick::Normal(now) => now,
            Tick::Corrected(now) => {
                for applied in self.applied.values_mut() {
                    applied.at = applied.at.min(now);
                }
                self.confirm.heal(now);
                now
            }
        }
    }

    /// Forgets the newest applied message of every room the outbound machine no longer
    /// holds, once the memory has doubled since the last prune (amortised O(1) per message).
    /// Inside [`Peeking`](super::Peeking) ([`Delivery::InProcess`]) messages arrive exactly
    /// once and in order, so none is ever stale and every such room goes. Over a log
    /// ([`Delivery::Log`]) a room's entry also stays for `replay_window` after it was applied:
    /// within it, a redelivered older `Demand`, `ServerJoined` or `AccessChanged` is still
    /// recognised as stale; the log must not redeliver anything later than that.
    ///
    /// The memory is also capped at [`applied_cap`](Self::applied_cap): a prune that leaves
    /// more than half of it forgets the oldest entries of rooms not held first (counted in
    /// [`forgotten_early`](Self::forgotten_early)), shortening the window for them; the
    /// anti-entropy (§7.5) bounds what a replay then revives.
    fn prune_applied(&mut self, now: Timestamp) {
        if self.applied.len() < self.prune_at {
            return;
        }
        let kept_since = match self.delivery {
            Delivery::InProcess => None,
            Delivery::Log(window) => Some(now.saturating_sub(window)),
        };
        let outbound = &self.outbound;
        self.applied.retain(|(room_id, _), applied| {
            outbound.state(room_id).is_some() || kept_since.is_some_and(|since| applied.at > since)
        });
        let cap = self.applied_cap();
        if self.applied.len() > cap / 2 {
            let outbound = &self.outbound;
            let mut unheld: Vec<(Timestamp, (OwnedRoomId, Channel))> = self
                .applied
                .iter()
                .filter(|((room_id, _), _)| outbound.state(room_id).is_none())
                .map(|(key, applied)| (applied.at, key.clone()))
                .collect();
            unheld.sort_unstable();
            let excess = self.applied.len() - cap / 2;
            for (_, key) in unheld.into_iter().take(excess) {
                self.applied.remove(&key);
                self.forgotten_early += 1;
            }
        }
        self.prune_at =
            (2 * self.applied.len()).clamp(Self::MIN_PRUNE_AT, cap.max(Self::MIN_PRUNE_AT));
    }

    /// The most (room, channel) entries the applied-message memory holds: four per room the
    /// outbound machine may hold (`OutboundConfig::max_rooms`), so every held room's two
    /// channels fit in half of it.
    pub(super) fn applied_cap(&self) -> usize {
        self.outbound.config().max_rooms.saturating_mul(4).max(Self::MIN_PRUNE_AT)
    }

    fn after(&self, room_id: &RoomId) -> Option<Seq> {
        self.applied.get(&(room_id.to_owned(), Channel::Demand)).map(|applied| applied.seq)
    }

    // ----- federation, resident side (MSC2444) -----

    /// As [`Peeking::handle_inbound_peek`](super::Peeking::handle_inbound_peek): call it
    /// **before** taking the state snapshot.
    pub fn handle_inbound_peek(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
        ver: &[RoomVersionId],
        access: Option<&RoomAccess>,
    ) -> Result<InboundGrant, InboundPeekError> {
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
        let result = self.inbound.handle_unpeek(now, origin, room_id, peek_id);
        self.drain(now);
        result
    }

    /// `server` is newly denied by the room's server ACL (R45).
    pub fn handle_server_denied(&mut self, now: Timestamp, room_id: &RoomId, server: &ServerName) {
        self.inbound.handle_server_denied(now, room_id, server);
        self.drain(now);
    }

    /// The room's access changed, for the inbound machine (R40). The outbound machine hears of
    /// it through [`ToFederation::AccessChanged`] from the sync side, which knows which rooms
    /// are peeked over federation.
    pub fn handle_access_changed(&mut self, now: Timestamp, room_id: &RoomId, access: &RoomAccess) {
        self.inbound.handle_access_changed(now, room_id, access);
        self.drain(now);
    }

    // ----- federation, peeking side (MSC2444) -----

    /// The outcome of an [`Output::Send`] request.
    pub fn handle_response(&mut self, now: Timestamp, id: RequestId, outcome: OutboundOutcome) {
        self.outbound.handle_response(now, id, outcome);
        self.drain(now);
    }

    /// As [`Peeking::handle_remote_event`](super::Peeking::handle_remote_event).
    pub fn handle_remote_event(&mut self, now: Timestamp, room_id: &RoomId) {
        self.outbound.handle_room_event(now, room_id);
        self.drain(now);
    }

    /// As [`Peeking::handle_server_unreachable`](super::Peeking::handle_server_unreachable).
    pub fn handle_server_unreachable(&mut self, now: Timestamp, server: &ServerName) {
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
        self.outbound.handle_remote_expired(now, server, room_id, peek_id);
        self.drain(now);
    }

    /// This server's last local member left `room_id`: it may be peeked again.
    pub fn handle_server_left(&mut self, now: Timestamp, room_id: &RoomId) {
        self.outbound.handle_server_left(now, room_id);
        self.drain(now);
    }

    /// Fires everything due at or before `now` in both machines, and asks the sync side to
    /// confirm every demanded room it has not restated for twice `resync_interval`
    /// ([`ToSync::Confirm`]).
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.inbound.handle_timeout(now);
        self.outbound.handle_timeout(now);
        self.drain(now);
        self.ask_confirmations(now);
    }

    /// Anti-entropy (docs/architecture.md §7.5): a `Confirm` for every room whose deadline
    /// passed while its last applied demand-channel message is still `Demand` and the outbound
    /// machine still holds its peek; asked again after the same wait while nothing newer
    /// comes. A room the outbound machine dropped costs nothing, so it is not asked about.
    fn ask_confirmations(&mut self, now: Timestamp) {
        for room_id in self.confirm.due(now) {
            let key = (room_id.clone(), Channel::Demand);
            let wanted = self.applied.get(&key).is_some_and(|a| a.wish == Wish::Wanted);
            if !wanted || self.outbound.state(&room_id).is_none() {
                continue;
            }
            self.confirm.arm(now, &room_id);
            self.confirms += 1;
            let (seq, after) = (self.seq.next(), self.after(&room_id));
            self.outputs.push_back(SideOutput::Route(ToSync::Confirm { room_id, seq, after }));
        }
    }

    /// The next output for the host or the sync side, or `None`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<SideOutput<ToSync>> {
        self.outputs.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next: both machines' deadlines
    /// and the next [`ToSync::Confirm`] due. Changes only after a `handle_*` call.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        [self.inbound.poll_timeout(), self.outbound.poll_timeout(), self.confirm.next()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Moves every child output to the host queue or, as a message, to the sync side.
    fn drain(&mut self, now: Timestamp) {
        self.tick(now);
        loop {
            let mut progressed = false;
            while let Some(out) = self.inbound.poll_output() {
                progressed = true;
                let output = match out {
                    InboundOutput::Persist(change) => Output::Persist(Change::Inbound(change)),
                    InboundOutput::Expired { server, room_id, peek_id, reason } => {
                        Output::Expired { server, room_id, peek_id, reason }
                    }
                };
                self.outputs.push_back(SideOutput::Host(output));
            }
            while let Some(out) = self.outbound.poll_output() {
                progressed = true;
                self.route_outbound(out);
            }
            if !progressed {
                break;
            }
        }
    }

    fn route_outbound(&mut self, out: OutboundOutput) {
        let (message, output) = match out {
            OutboundOutput::Persist(change) => (None, Output::Persist(Change::Outbound(change))),
            OutboundOutput::Send(request) => (None, Output::Send(request)),
            OutboundOutput::Established { room_id, server, access, missed_since } => {
                let (seq, after) = (self.seq.next(), self.after(&room_id));
                let message = ToSync::Granted {
                    room_id: room_id.to_owned_id(),
                    seq,
                    after,
                    server: server.to_owned_id(),
                    access: access.clone(),
                };
                (Some(message), Output::Established { room_id, server, access, missed_since })
            }
            OutboundOutput::Unavailable { room_id, error } => {
                let (seq, after) = (self.seq.next(), self.after(&room_id));
                let message = ToSync::Unavailable {
                    room_id: room_id.to_owned_id(),
                    seq,
                    after,
                    error: error.clone(),
                };
                (Some(message), Output::Unavailable { room_id, error })
            }
            OutboundOutput::Lost { room_id, reason } => {
                let (seq, after) = (self.seq.next(), self.after(&room_id));
                let message = ToSync::Lost { room_id: room_id.to_owned_id(), seq, after };
                (Some(message), Output::Lost { room_id, reason })
            }
        };
        // The sync side's consequences (waiting clients decided) come before the host hears.
        if let Some(message) = message {
            self.outputs.push_back(SideOutput::Route(message));
        }
        self.outputs.push_back(SideOutput::Host(output));
    }

    // ----- queries -----

    /// The inbound peeks machine (read-only).
    pub fn inbound(&self) -> &InboundPeeks {
        &self.inbound
    }

    /// The outbound peeks machine (read-only).
    pub fn outbound(&self) -> &OutboundPeeks {
        &self.outbound
    }

    /// Entries of the applied-message memory dropped before `replay_window` ended, because
    /// the memory reached its cap (four per room `OutboundConfig::max_rooms` allows); a
    /// redelivery of an older message for such a room would apply again. Since this side
    /// started.
    pub fn forgotten_early(&self) -> u64 {
        self.forgotten_early
    }

    /// Servers with a live inbound peek on the room, once each (R39).
    pub fn destinations<'a>(
        &'a self,
        room_id: &RoomId,
    ) -> impl Iterator<Item = &'a ServerName> + 'a {
        self.inbound.destinations(room_id)
    }

    /// How many (room, channel) pairs this side remembers the newest sync-side message of:
    /// the rooms the outbound machine holds, over a log also those written about within
    /// `PeekingConfig::replay_window`, and, until the next prune, up to as many again.
    /// Changes with every [`handle_route`](Self::handle_route).
    pub fn routing_memory(&self) -> usize {
        self.applied.len()
    }

    /// Sync-side messages dropped as duplicates or stale since this side started.
    pub fn stale_messages(&self) -> u64 {
        self.stale
    }

    /// [`ToSync::Confirm`] messages sent since this side started (anti-entropy); always 0
    /// inside [`Peeking`](super::Peeking).
    pub fn confirmations_asked(&self) -> u64 {
        self.confirms
    }

    /// This side's part of [`PeekingStats`]: `inbound` and `outbound` (the rest stays zero).
    pub fn stats(&self) -> PeekingStats {
        let mut stats = PeekingStats::default();
        stats.inbound = self.inbound.stats();
        stats.outbound = self.outbound.stats();
        stats
    }
}
