//! [`Sim`]: several homeservers, each a [`Peeking`] coordinator with its own store, joined by
//! a simulated federation on a virtual clock (docs/architecture.md §10, §13).
//!
//! ```text
//!   hs1 (Peeking + SnapshotMaps) ──Send(OutboundRequest)──▶ wire: latency, loss, duplication ──▶ hs2
//!        ▲                                                                               │
//!        └── handle_response ◀── (status, body) → OutboundFailure::from_response ◀── handle_inbound_*
//!   events: origin ──▶ joined servers (direct) ──▶ each resident's destinations(room) (R39)
//!           Expired ──▶ expired_peeks at the peeking server (handle_remote_expired, R43, R54)
//! ```
//!
//! * **Time** jumps straight to the next thing due: the earliest message on the wire or the
//!   earliest `poll_timeout` of an up server, so a simulated week takes well under a second.
//! * **Persistence**: every `Persist` is applied to the server's own store (a map per record kind) as it is
//!   drained, so [`Sim::crash_restart`] is `Peeking::restore(now, config, store snapshot)`.
//!   Requests it had in flight die with it (their answers are dropped), client peeks waiting
//!   on it are recorded as aborted.
//! * **Failures**: a request that is lost (either way) or reaches a down server produces
//!   `Failed(Unreachable)` at the sender after the request timeout. Events and
//!   `expired_peeks` are not lost (federation `/send` retries) but a down server misses them;
//!   they arrive in order per (sender, destination) link, like `/send` transactions.
//! * **Rooms** are shared models ([`SimRoom`]): resident servers answer inbound peeks with the
//!   room's access (`None` when not resident, R31); ACL-denied origins get 403 (R30).
//! * **Invariants** checked from the simulator's own bookkeeping, not the machines':
//!   [`Sim::leaked_peeks`], [`Sim::bad_relays`] (relays to a server whose peek had expired or
//!   been deleted), [`Sim::incomplete_client_peeks`].
//! * Deterministic: one `u64` seed ([`SimConfig::seed`]) drives every random choice.

mod checks;
mod net;
mod rng;
mod types;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use ruma_common::{
    DeviceId, OwnedDeviceId, OwnedRoomAliasId, OwnedRoomId, OwnedServerName, OwnedUserId,
    RoomAliasId, RoomId, ServerName, UserId,
};

pub use rng::SimRng;
pub use types::{
    BadRelay, ClientPeekRecord, LeakedPeek, Livelock, SentRequest, SimConfig, SimRoom,
    TimelineEntry, fmt_elapsed,
};

use crate::coordinator::SnapshotMaps;
use crate::outbound::{OutboundFailure, OutboundOutcome};
use crate::{
    ClientPeek, ClientPeekReply, PeekError, Peeking, PeekingConfig, RequestId, Residency,
    RoomAccess, StreamPosition, SyncDelta, Timestamp,
};
use net::{Msg, Scheduled};

#[derive(Debug)]
struct Node {
    peeking: Peeking,
    config: PeekingConfig,
    store: SnapshotMaps,
    up: bool,
    /// Incremented by every crash: answers to requests of an older incarnation are dropped.
    epoch: u64,
    /// Requests whose answer arrived while the server was down (same incarnation): their
    /// HTTP calls timed out meanwhile, reported as `Unreachable` when it comes back up.
    missed: Vec<RequestId>,
}

type GrantKey = (OwnedServerName, OwnedRoomId, OwnedServerName);
type DeviceKey = (OwnedServerName, OwnedUserId, OwnedDeviceId);

/// N homeservers joined by a simulated federation (docs/architecture.md §10, §13).
/// a simulated federation on a virtual clock (docs/architecture.md §10, §13).
///
/// ```text
///   hs1 (Peeking + SnapshotMaps) ──Send(OutboundRequest)──▶ wire: latency, loss, duplication ──▶ hs2
///        ▲                                                                               │
///        └── handle_response ◀── (status, body) → OutboundFailure::from_response ◀── handle_inbound_*
///   events: origin ──▶ joined servers (direct) ──▶ each resident's destinations(room) (R39)
///           Expired ──▶ expired_peeks at the peeking server (handle_remote_expired, R43, R54)
/// ```
///
/// * **Time** jumps straight to the next thing due: the earliest message on the wire or the
///   earliest `poll_timeout` of an up server, so a simulated week takes well under a second.
/// * **Persistence**: every `Persist` is applied to the server's own store (a map per record kind) as it is
///   drained, so [`Sim::crash_restart`] is `Peeking::restore(now, config, store snapshot)`.
///   Requests it had in flight die with it (their answers are dropped), client peeks waiting
///   on it are recorded as aborted.
/// * **Failures**: a request that is lost (either way) or reaches a down server produces
///   `Failed(Unreachable)` at the sender after the request timeout. Events and
///   `expired_peeks` are not lost (federation `/send` retries) but a down server misses them;
///   they arrive in order per (sender, destination) link, like `/send` transactions.
/// * **Rooms** are shared models ([`SimRoom`]): resident servers answer inbound peeks with the
///   room's access (`None` when not resident, R31); ACL-denied origins get 403 (R30).
/// * **Invariants** checked from the simulator's own bookkeeping, not the machines':
///   [`Sim::leaked_peeks`], [`Sim::bad_relays`] (relays to a server whose peek had expired or
///   been deleted), [`Sim::incomplete_client_peeks`].
/// * Deterministic: one `u64` seed ([`SimConfig::seed`]) drives every random choice.
#[derive(Debug)]
pub struct Sim {
    config: SimConfig,
    now: Timestamp,
    rng: SimRng,
    nodes: BTreeMap<OwnedServerName, Node>,
    rooms: BTreeMap<OwnedRoomId, SimRoom>,
    aliases: BTreeMap<OwnedRoomAliasId, OwnedRoomId>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    steps: u64,
    timeline: Vec<TimelineEntry>,
    sent: Vec<SentRequest>,
    /// The simulator's own record of live inbound peeks: (resident, room, origin) → id → expiry.
    grants: BTreeMap<GrantKey, BTreeMap<String, Timestamp>>,
    relays: BTreeMap<(OwnedServerName, OwnedRoomId), u64>,
    /// Arrival time of the last `/send` on each (from, to) link (FIFO per destination).
    links: HashMap<(OwnedServerName, OwnedServerName), Timestamp>,
    bad_relays: Vec<BadRelay>,
    received: BTreeMap<(OwnedServerName, OwnedRoomId), BTreeSet<u64>>,
    event_wakes: BTreeMap<DeviceKey, u64>,
    sync_wakes: BTreeMap<DeviceKey, u64>,
    client_peeks: Vec<ClientPeekRecord>,
    pending_peeks: HashMap<(OwnedServerName, RequestId), usize>,
}

impl Sim {
    /// An empty world at `config.start`.
    pub fn new(config: SimConfig) -> Self {
        Sim {
            now: config.start,
            rng: SimRng::new(config.seed),
            config,
            nodes: BTreeMap::new(),
            rooms: BTreeMap::new(),
            aliases: BTreeMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            steps: 0,
            timeline: Vec::new(),
            sent: Vec::new(),
            grants: BTreeMap::new(),
            relays: BTreeMap::new(),
            links: HashMap::new(),
            bad_relays: Vec::new(),
            received: BTreeMap::new(),
            event_wakes: BTreeMap::new(),
            sync_wakes: BTreeMap::new(),
            client_peeks: Vec::new(),
            pending_peeks: HashMap::new(),
        }
    }

    // ----- servers -----

    /// Adds a homeserver named `name` with [`SimConfig::peeking`]. Panics on an invalid or
    /// duplicate name (a test bug).
    pub fn add_server(&mut self, name: &str) -> OwnedServerName {
        let config = self.config.peeking.clone();
        self.add_server_with(name, config)
    }

    /// Adds a homeserver with its own coordinator configuration.
    pub fn add_server_with(&mut self, name: &str, config: PeekingConfig) -> OwnedServerName {
        let server: OwnedServerName = name.try_into().expect("a valid server name");
        let peeking = Peeking::restore(self.now, config.clone(), Default::default());
        let node = Node {
            peeking,
            config,
            store: SnapshotMaps::new(),
            up: true,
            epoch: 0,
            missed: Vec::new(),
        };
        assert!(self.nodes.insert(server.clone(), node).is_none(), "duplicate server {server}");
        self.drain(&server);
        server
    }

    /// The servers, in name order.
    pub fn servers(&self) -> impl Iterator<Item = &ServerName> {
        self.nodes.keys().map(|s| s.as_ref())
    }

    /// The server's coordinator, for assertions. Panics on an unknown server.
    pub fn peeking(&self, server: &ServerName) -> &Peeking {
        &self.node(server).peeking
    }

    /// What the server's store holds now.
    pub fn store(&self, server: &ServerName) -> crate::Snapshot {
        self.node(server).store.to_snapshot()
    }

    /// Whether the server is up.
    pub fn is_up(&self, server: &ServerName) -> bool {
        self.nodes.get(server).is_some_and(|n| n.up)
    }

    /// Takes the server off the network: it handles nothing, misses events, and requests to it
    /// time out. Its memory is kept (a partition or a pause); see [`crash_restart`](Self::crash_restart).
    pub fn down(&mut self, server: &ServerName) {
        self.node_mut(server).up = false;
        self.log(server, || "server DOWN (unreachable)".to_owned());
    }

    /// Brings the server back with its memory, and fires what fell due while it was away.
    pub fn up(&mut self, server: &ServerName) {
        self.node_mut(server).up = true;
        self.log(server, || "server UP".to_owned());
        let now = self.now;
        // Its requests whose answers it missed while away timed out: say so, or its machine
        // would wait forever for them.
        let missed = std::mem::take(&mut self.node_mut(server).missed);
        for id in missed {
            let outcome = OutboundOutcome::Failed(OutboundFailure::Unreachable);
            self.node_mut(server).peeking.handle_response(now, id, outcome);
        }
        self.node_mut(server).peeking.handle_timeout(now);
        self.drain(server);
    }

    /// Crashes the server and restarts it from its store at `now` (it is up afterwards):
    /// `Peeking::restore(now, config, snapshot)`. In-flight requests' answers are dropped and
    /// client peeks waiting on it are marked aborted.
    pub fn crash_restart(&mut self, server: &ServerName) {
        let now = self.now;
        let node = self.node_mut(server);
        let snapshot = node.store.to_snapshot();
        node.peeking = Peeking::restore(now, node.config.clone(), snapshot);
        node.epoch += 1;
        node.up = true;
        node.missed.clear();
        let aborted: Vec<_> =
            self.pending_peeks.keys().filter(|(s, _)| s == server).cloned().collect();
        for key in aborted {
            let i = self.pending_peeks.remove(&key).expect("listed above");
            self.client_peeks[i].aborted = true;
            self.client_peeks[i].answered_at = Some(now);
        }
        self.log(server, || "CRASH: restarted from its store".to_owned());
        self.drain(server);
    }

    // ----- rooms -----

    /// Creates `room_id` on `server` with `creator` joined and the given access. Panics if the
    /// room exists.
    pub fn create_room(
        &mut self,
        server: &ServerName,
        creator: &UserId,
        room_id: &RoomId,
        access: RoomAccess,
    ) {
        let mut members = BTreeMap::new();
        members.insert(server.to_owned(), BTreeSet::from([creator.to_owned()]));
        let room = SimRoom { access, members, denied: BTreeSet::new(), events: 1 };
        assert!(self.rooms.insert(room_id.to_owned(), room).is_none(), "room {room_id} exists");
        self.log(server, || format!("{creator} created {room_id}"));
    }

    /// Publishes an alias for a room.
    pub fn add_alias(&mut self, alias: &RoomAliasId, room_id: &RoomId) {
        self.aliases.insert(alias.to_owned(), room_id.to_owned());
    }

    /// Resolves an alias (R4): the room and the alias's domain as the first candidate (R46).
    pub fn resolve_alias(&self, alias: &RoomAliasId) -> Option<(OwnedRoomId, OwnedServerName)> {
        Some((self.aliases.get(alias)?.clone(), alias.server_name().to_owned()))
    }

    /// The room model, if the room exists.
    pub fn room(&self, room_id: &RoomId) -> Option<&SimRoom> {
        self.rooms.get(room_id)
    }

    /// Creates an event in `room_id` on `server` (which must be resident) and sends it to the
    /// other joined servers and to `server`'s peeking servers (R39). Returns its number.
    pub fn send_event(&mut self, server: &ServerName, room_id: &RoomId) -> u64 {
        self.emit(server, room_id, None)
    }

    /// Sets history visibility (`world_readable` or not) by a state event from `server`.
    pub fn set_world_readable(&mut self, server: &ServerName, room_id: &RoomId, yes: bool) {
        let mut access = self.room_or_panic(room_id).access.clone();
        access.world_readable = yes;
        self.emit(server, room_id, Some(access));
    }

    /// Enables or disables encryption by a state event from `server`.
    pub fn set_encrypted(&mut self, server: &ServerName, room_id: &RoomId, yes: bool) {
        let mut access = self.room_or_panic(room_id).access.clone();
        access.encrypted = yes;
        self.emit(server, room_id, Some(access));
    }

    /// `m.room.server_acl` now denies `denied`: residents refuse its requests (R30) and expire
    /// its peeks (R45).
    pub fn deny_server(&mut self, room_id: &RoomId, denied: &ServerName) {
        let room = self.rooms.get_mut(room_id).expect("known room");
        room.denied.insert(denied.to_owned());
        let residents: Vec<_> =
            room.members.keys().filter(|s| room.is_resident(s)).cloned().collect();
        let now = self.now;
        for server in residents {
            if self.is_up(&server) {
                self.log(&server, || format!("server ACL of {room_id} now denies {denied}"));
                self.node_mut(&server).peeking.handle_server_denied(now, room_id, denied);
                self.drain(&server);
            }
        }
    }

    /// `user` of `server` joins `room_id` (R19, R20, R56): the model gains the member, the
    /// server's coordinator hears `handle_joined`, and a membership event is sent.
    pub fn join(&mut self, server: &ServerName, user: &UserId, room_id: &RoomId) {
        let access = self.room_or_panic(room_id).access.clone();
        self.rooms
            .get_mut(room_id)
            .expect("checked")
            .members
            .entry(server.to_owned())
            .or_default()
            .insert(user.to_owned());
        self.log(server, || format!("{user} joins {room_id}"));
        let now = self.now;
        if self.is_up(server) {
            self.node_mut(server).peeking.handle_joined(now, user, room_id, &access);
            self.drain(server);
        }
        self.emit(server, room_id, None);
    }

    /// `user` of `server` leaves `room_id`; the server's last member leaving makes it
    /// non-resident (`handle_server_left`).
    pub fn leave(&mut self, server: &ServerName, user: &UserId, room_id: &RoomId) {
        self.emit(server, room_id, None);
        let room = self.rooms.get_mut(room_id).expect("known room");
        let members = room.members.entry(server.to_owned()).or_default();
        members.remove(user);
        let last = members.is_empty();
        if last {
            room.members.remove(server);
        }
        self.log(server, || format!("{user} leaves {room_id}"));
        let now = self.now;
        if last && self.is_up(server) {
            self.node_mut(server).peeking.handle_server_left(now, room_id);
            self.drain(server);
        }
    }

    fn emit(&mut self, server: &ServerName, room_id: &RoomId, state: Option<RoomAccess>) -> u64 {
        let server_owned = server.to_owned();
        let room = self.rooms.get_mut(room_id).expect("known room");
        assert!(room.is_resident(&server_owned), "{server} is not in {room_id}");
        room.events += 1;
        let event = room.events;
        if let Some(access) = &state {
            room.access = access.clone();
        }
        let joined: Vec<OwnedServerName> =
            room.members.keys().filter(|s| room.is_resident(s)).cloned().collect();
        self.log(server, || match &state {
            Some(a) => format!(
                "state event #{event} in {room_id}: world_readable={}, encrypted={}",
                a.world_readable, a.encrypted
            ),
            None => format!("event #{event} in {room_id}"),
        });
        self.received.entry((server_owned.clone(), room_id.to_owned())).or_default().insert(event);
        if !self.is_up(server) {
            return event;
        }
        for to in joined.iter().filter(|s| **s != server_owned) {
            let at = self.send_at(server, to);
            let msg = Msg::Event {
                from: server_owned.clone(),
                to: to.clone(),
                room: room_id.to_owned(),
                event,
                state: state.clone(),
                direct: true,
            };
            self.schedule(at, msg);
        }
        self.relay_to_peekers(server, room_id, event, state.as_ref(), &joined);
        self.wake_peekers(server, room_id, event, server);
        if let Some(access) = state {
            let now = self.now;
            self.node_mut(server).peeking.handle_access_changed(now, room_id, &access);
            self.drain(server);
        }
        event
    }

    // ----- clients -----

    /// A client's `/peek` on `server` (R1–R9, R27): residency and `joined` come from the room
    /// model; `via` are the candidate servers. A `Pending` reply is completed later (see
    /// [`client_peeks`](Self::client_peeks)). Panics if the server is down.
    pub fn client_peek(
        &mut self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        room_id: &RoomId,
        via: &[OwnedServerName],
    ) -> ClientPeekReply {
        assert!(self.is_up(server), "client peek on a down server {server}");
        let server_owned = server.to_owned();
        let model = self.rooms.get(room_id);
        let residency = match model {
            Some(r) if r.is_resident(&server_owned) => Residency::Resident(r.access.clone()),
            _ => Residency::Remote,
        };
        let joined = model.and_then(|r| r.members.get(server)).is_some_and(|m| m.contains(user));
        let now = self.now;
        let reply = self.node_mut(server).peeking.handle_client_peek(
            now,
            ClientPeek {
                user_id: user.to_owned(),
                device_id: device.to_owned(),
                room_id: room_id.to_owned(),
                joined,
                residency,
                via: via.to_vec(),
            },
        );
        let mut record = ClientPeekRecord {
            server: server_owned.clone(),
            user_id: user.to_owned(),
            device_id: device.to_owned(),
            room_id: room_id.to_owned(),
            asked_at: now,
            pending: None,
            answered_at: None,
            result: None,
            aborted: false,
        };
        match &reply {
            ClientPeekReply::Done(result) => {
                record.answered_at = Some(now);
                record.result = Some(result.clone());
                self.log(server, || match result {
                    Ok(_) => format!("{user}/{device} /peek {room_id}: granted at once"),
                    Err(e) => format!("{user}/{device} /peek {room_id}: refused: {e}"),
                });
            }
            ClientPeekReply::Pending(id) => {
                record.pending = Some(*id);
                self.pending_peeks.insert((server_owned, *id), self.client_peeks.len());
                self.log(server, || {
                    format!(
                        "{user}/{device} /peek {room_id}: waits on federation (pending id {})",
                        id.0
                    )
                });
            }
        }
        self.client_peeks.push(record);
        self.drain(server);
        reply
    }

    /// A client's `/unpeek` (R12, R13).
    pub fn client_unpeek(
        &mut self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        room_id: &RoomId,
    ) -> Result<(), PeekError> {
        let now = self.now;
        let result = self.node_mut(server).peeking.handle_client_unpeek(now, user, device, room_id);
        self.log(server, || format!("{user}/{device} /unpeek {room_id}: {result:?}"));
        self.drain(server);
        result
    }

    /// The device synced (docs/architecture.md §4.4).
    pub fn device_synced(&mut self, server: &ServerName, user: &UserId, device: &DeviceId) {
        let now = self.now;
        self.node_mut(server).peeking.handle_device_synced(now, user, device);
        self.drain(server);
    }

    /// What the device's `/sync` shows since `since` (docs/architecture.md §4.3).
    pub fn sync_delta(
        &self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        since: Option<StreamPosition>,
    ) -> SyncDelta {
        self.node(server).peeking.sync_delta(user, device, since)
    }

    // ----- running -----

    /// The virtual time.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// When the next thing is due (a message or an up server's deadline), if anything is.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.next_due_inner().map(|(at, _)| at)
    }

    fn next_due_inner(&self) -> Option<(Timestamp, Option<OwnedServerName>)> {
        let msg = self.queue.peek().map(|s| (s.at, None));
        let timer = self
            .nodes
            .iter()
            .filter(|(_, n)| n.up)
            .filter_map(|(name, n)| n.peeking.poll_timeout().map(|t| (t, Some(name.clone()))))
            .min();
        // Messages first on ties.
        let next = match (msg, timer) {
            (Some(m), Some(t)) => Some(if m.0 <= t.0 { m } else { t }),
            (m, t) => m.or(t),
        };
        next.map(|(at, who)| (at.max(self.now), who))
    }

    /// Does the next thing due (delivers a message or fires a server's timers), jumping the
    /// clock to it. `false` when nothing at all is left.
    pub fn step(&mut self) -> bool {
        let Some((at, who)) = self.next_due_inner() else { return false };
        self.now = at;
        self.steps += 1;
        match who {
            None => {
                let scheduled = self.queue.pop().expect("peeked");
                self.deliver(scheduled.msg);
            }
            Some(server) => {
                self.node_mut(&server).peeking.handle_timeout(at);
                self.drain(&server);
            }
        }
        true
    }

    /// Steps until nothing is left, or `max_steps` were taken ([`Livelock`]). With established
    /// peeks there is always a renewal due: use [`run_for`](Self::run_for) for those.
    pub fn run_bounded(&mut self, max_steps: u64) -> Result<(), Livelock> {
        for _ in 0..max_steps {
            if !self.step() {
                return Ok(());
            }
        }
        if self.next_due().is_none() {
            Ok(())
        } else {
            Err(Livelock { steps: max_steps, at: self.now })
        }
    }

    /// [`run_bounded`](Self::run_bounded) with [`SimConfig::step_budget`]; panics on livelock.
    pub fn run_until_idle(&mut self) {
        if let Err(e) = self.run_bounded(self.config.step_budget) {
            panic!("{e}");
        }
    }

    /// Runs everything due within `d`, then sets the clock to `now + d`. Panics with
    /// [`Livelock`] after [`SimConfig::step_budget`] steps.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now.saturating_add(d);
        let mut steps = 0u64;
        while self.next_due().is_some_and(|at| at <= until) {
            self.step();
            steps += 1;
            if steps > self.config.step_budget {
                panic!("{}", Livelock { steps, at: self.now });
            }
        }
        self.now = self.now.max(until);
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    // ----- helpers -----

    fn node(&self, server: &ServerName) -> &Node {
        self.nodes.get(server).unwrap_or_else(|| panic!("unknown server {server}"))
    }

    fn node_mut(&mut self, server: &ServerName) -> &mut Node {
        self.nodes.get_mut(server).unwrap_or_else(|| panic!("unknown server {server}"))
    }

    fn room_or_panic(&self, room_id: &RoomId) -> &SimRoom {
        self.rooms.get(room_id).unwrap_or_else(|| panic!("unknown room {room_id}"))
    }

    fn log(&mut self, server: &ServerName, what: impl FnOnce() -> String) {
        if self.config.timeline {
            self.timeline.push(TimelineEntry {
                at: self.now,
                server: server.to_owned(),
                what: what(),
            });
        }
    }
}

#[cfg(test)]
mod tests;
