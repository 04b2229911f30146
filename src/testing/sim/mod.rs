//! [`Sim`]: several homeservers, each a [`Peeking`] coordinator with its own store, joined by
//! a simulated federation on a virtual clock (docs/architecture.md §10, §13). The picture and
//! the rules are on [`Sim`]; the files split it by concern:
//!
//! * this file: the world, its servers (add, down, up, crash) and running the clock;
//! * `rooms.rs` and `clients.rs`: the inputs a test gives (rooms, events, client requests);
//! * `net.rs`: the wire and every server's outputs;
//! * `checks.rs`, `leaks.rs`, `queries.rs`, `settle.rs`: the records, invariants and questions
//!   a test asks;
//! * `load.rs`, `relay.rs`, `scale/`: the scale mode ([`SimConfig::lean`], [`Sim::watch`],
//!   [`run_scale`]): what a resident sees, batched relays, and issue #20's simulated day;
//! * `error.rs`: [`SimError`], why an input or a question was refused.

mod checks;
mod clients;
mod error;
mod leaks;
mod load;
mod net;
mod queries;
mod relay;
mod rng;
mod rooms;
mod scale;
mod settle;
mod types;

use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use ruma_common::{
    OwnedDeviceId, OwnedRoomAliasId, OwnedRoomId, OwnedServerName, OwnedUserId, ServerName, UserId,
};

pub use error::{Pending, SimError};
pub use leaks::{LeakReport, UnaccountedPeek};
pub use load::{LoadBucket, ResidentLoad};
pub use queries::{Gap, OutboundEvent, OutboundEventKind};
pub use rng::SimRng;
pub use scale::{ScaleConfig, ScaleFigures, ScaleReport, run_scale};
pub use types::{
    BadRelay, ClientPeekRecord, LeakedPeek, Livelock, SentRequest, SimConfig, SimRoom,
    TimelineEntry, fmt_elapsed,
};

use crate::coordinator::SnapshotMaps;
use crate::outbound::{OutboundFailure, OutboundOutcome};
use crate::{Peeking, PeekingConfig, RequestId, Timestamp};
use leaks::Accounting;
use net::Scheduled;
use queries::Spans;

#[derive(Debug)]
struct Node {
    peeking: Peeking,
    config: PeekingConfig,
    store: SnapshotMaps,
    up: bool,
    /// [`Sim::drop_store_writes`]: `Persist` outputs are acknowledged but not written.
    drop_writes: bool,
    /// Incremented by every crash: answers to requests of an older incarnation are dropped.
    epoch: u64,
    /// Requests whose answer arrived while the server was down (same incarnation): their
    /// HTTP calls timed out meanwhile, reported as `Unreachable` when it comes back up.
    missed: Vec<RequestId>,
    /// Its entry in [`Sim::timers`]: `poll_timeout` as of the last drain, while it is up.
    due: Option<Timestamp>,
    /// Its index in [`Sim::names`] (the order it was added in).
    idx: u32,
}

/// The simulator's own record of live inbound peeks: (resident, room) → origin → peek id →
/// expiry. Nested so that a relay to thousands of destinations looks each up by reference.
type Grants =
    HashMap<(OwnedServerName, OwnedRoomId), HashMap<OwnedServerName, BTreeMap<String, Timestamp>>>;
type DeviceKey = (OwnedServerName, OwnedUserId, OwnedDeviceId);

/// N homeservers joined by a simulated federation on a virtual clock (docs/architecture.md
/// §10, §13).
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
///   earliest `poll_timeout` of an up server (kept in an index updated after every drain), so a
///   simulated week takes well under a second, and a day of 5 000 servers
///   ([`run_scale`]) minutes.
/// * **Persistence**: every `Persist` is applied to the server's own store (a map per record
///   kind) as it is drained, so [`Sim::crash_restart`] is `Peeking::restore(now, config, store
///   snapshot)`. Requests it had in flight die with it (their answers are dropped), client
///   peeks waiting on it are recorded as aborted.
/// * **Failures**: a request that is lost (either way) or reaches a down server produces
///   `Failed(Unreachable)` at the sender after the request timeout. Events and
///   `expired_peeks` are not lost (federation `/send` retries) but a down server misses them;
///   they arrive in order per (sender, destination) link, like `/send` transactions. The
///   simulated hosts do not fetch missed events (`Established { missed_since }` is recorded,
///   see [`Sim::outbound_history`] and [`Sim::event_gaps`]).
/// * **Rooms** are shared models ([`SimRoom`]): resident servers answer inbound peeks with the
///   room's access (`None` when not resident, R31); ACL-denied origins get 403 (R30).
/// * **Inputs never panic.** Every input addressed to an unknown or down server, an unknown
///   room, or a server that cannot do it (an event from a server not in the room) is refused
///   with a [`SimError`] and changes nothing. Besides the `assert_*` helpers, only `run_for`
///   and `run_until_idle` panic, on a [`Livelock`] (a machine that never stops asking to be
///   woken is a bug the kit asserts); [`Sim::run_until_settled`] returns it as an error.
/// * **Invariants** checked from the simulator's own bookkeeping, not the machines':
///   [`Sim::leaks`] (inbound peeks that outlived the window in which they may exist without
///   their origin accounting for them), [`Sim::bad_relays`] (relays to a server whose peek
///   had expired or been deleted), [`Sim::incomplete_client_peeks`].
/// * **Questions**: [`Sim::event_gaps`] (how long a device went without its room's events),
///   [`Sim::outbound_history`] (when each federated peek was established, lost or failed
///   over), [`Sim::run_until_settled`] (run until nothing is left to fire).
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
    /// Every up server's next deadline and index, earliest first (ties in the order servers
    /// were added): kept in step with each drain, so finding the next thing due costs
    /// O(log servers), not a scan.
    timers: BTreeSet<(Timestamp, u32)>,
    /// Every server by index.
    names: Vec<OwnedServerName>,
    seq: u64,
    steps: u64,
    timeline: Vec<TimelineEntry>,
    sent: Vec<SentRequest>,
    /// The simulator's own record of live inbound peeks.
    grants: Grants,
    relays: BTreeMap<(OwnedServerName, OwnedRoomId), u64>,
    /// Event copies relayed to peeking servers, in total (kept in lean mode too).
    relay_copies: u64,
    /// Last arrival of a batched relay from each resident ([`SimConfig::lean`]).
    relay_links: HashMap<OwnedServerName, Timestamp>,
    /// [`Sim::watch`]ed residents and what they saw.
    watched: BTreeMap<OwnedServerName, ResidentLoad>,
    /// Modelled size of each room's state answer ([`Sim::set_state_bytes`]).
    state_bytes: HashMap<OwnedRoomId, u64>,
    /// Arrival time of the last `/send` on each (from, to) link (FIFO per destination).
    links: HashMap<(OwnedServerName, OwnedServerName), Timestamp>,
    bad_relays: Vec<BadRelay>,
    /// When each event of a room first reached each server (or was created there).
    received: BTreeMap<(OwnedServerName, OwnedRoomId), BTreeMap<u64, Timestamp>>,
    /// When each event of a room was created at its origin: event `n` at index `n - 1`.
    created: BTreeMap<OwnedRoomId, Vec<Timestamp>>,
    /// When each device peeked each room, for [`Sim::event_gaps`].
    spans: Spans,
    /// Each server's host-facing outbound outputs per room, for [`Sim::outbound_history`].
    history: BTreeMap<(OwnedServerName, OwnedRoomId), Vec<OutboundEvent>>,
    /// Which inbound peeks their origins' stores account for, for [`Sim::leaks`].
    accounting: Accounting,
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
            timers: BTreeSet::new(),
            names: Vec::new(),
            seq: 0,
            steps: 0,
            timeline: Vec::new(),
            sent: Vec::new(),
            grants: HashMap::new(),
            relays: BTreeMap::new(),
            relay_copies: 0,
            relay_links: HashMap::new(),
            watched: BTreeMap::new(),
            state_bytes: HashMap::new(),
            links: HashMap::new(),
            bad_relays: Vec::new(),
            received: BTreeMap::new(),
            created: BTreeMap::new(),
            spans: Spans::default(),
            history: BTreeMap::new(),
            accounting: Accounting::default(),
            event_wakes: BTreeMap::new(),
            sync_wakes: BTreeMap::new(),
            client_peeks: Vec::new(),
            pending_peeks: HashMap::new(),
        }
    }

    // ----- servers -----

    /// Adds a homeserver named `name` with [`SimConfig::peeking`], up, with an empty store.
    /// Refused with [`SimError::InvalidServerName`] or [`SimError::DuplicateServer`].
    pub fn add_server(&mut self, name: &str) -> Result<OwnedServerName, SimError> {
        let config = self.config.peeking.clone();
        self.add_server_with(name, config)
    }

    /// [`add_server`](Self::add_server) with its own coordinator configuration.
    pub fn add_server_with(
        &mut self,
        name: &str,
        config: PeekingConfig,
    ) -> Result<OwnedServerName, SimError> {
        let server: OwnedServerName =
            name.try_into().map_err(|_| SimError::InvalidServerName(name.to_owned()))?;
        if self.nodes.contains_key(&server) {
            return Err(SimError::DuplicateServer(server));
        }
        let peeking = Peeking::restore(self.now, config.clone(), Default::default());
        let node = Node {
            peeking,
            config,
            store: SnapshotMaps::new(),
            up: true,
            drop_writes: false,
            epoch: 0,
            missed: Vec::new(),
            due: None,
            idx: u32::try_from(self.names.len()).expect("fewer than 2^32 servers"),
        };
        self.names.push(server.clone());
        self.nodes.insert(server.clone(), node);
        self.drain(&server);
        Ok(server)
    }

    /// The servers, in name order. Changes only with [`add_server`](Self::add_server).
    pub fn servers(&self) -> impl Iterator<Item = &ServerName> {
        self.nodes.keys().map(|s| s.as_ref())
    }

    /// The server's coordinator, for assertions; also while the server is down (its memory is
    /// kept). Changes after every input or step that reaches the server.
    /// [`SimError::UnknownServer`] for a server never added.
    pub fn peeking(&self, server: &ServerName) -> Result<&Peeking, SimError> {
        Ok(&self.node(server)?.peeking)
    }

    /// What the server's store holds now (also while it is down). Changes as the server
    /// persists (unless [`drop_store_writes`](Self::drop_store_writes) is on).
    pub fn store(&self, server: &ServerName) -> Result<crate::Snapshot, SimError> {
        Ok(self.node(server)?.store.to_snapshot())
    }

    /// Whether the server is up. Changes with [`down`](Self::down), [`up`](Self::up) and
    /// [`crash_restart`](Self::crash_restart).
    pub fn is_up(&self, server: &ServerName) -> Result<bool, SimError> {
        Ok(self.node(server)?.up)
    }

    /// Takes the server off the network: it handles nothing, misses events, requests to it
    /// time out and its clients get [`SimError::ServerDown`]. Its memory is kept (a partition
    /// or a pause); see [`crash_restart`](Self::crash_restart). A server already down stays so.
    pub fn down(&mut self, server: &ServerName) -> Result<(), SimError> {
        let node = self.node_mut(server)?;
        if node.up {
            node.up = false;
            self.log(server, || "server DOWN (unreachable)".to_owned());
            self.refresh_timer(server);
        }
        Ok(())
    }

    /// Brings the server back with its memory, and fires what fell due while it was away. A
    /// server already up is left as it is.
    pub fn up(&mut self, server: &ServerName) -> Result<(), SimError> {
        let node = self.node_mut(server)?;
        if node.up {
            return Ok(());
        }
        node.up = true;
        // Its requests whose answers it missed while away timed out: say so, or its machine
        // would wait forever for them.
        let missed = std::mem::take(&mut node.missed);
        self.log(server, || "server UP".to_owned());
        let now = self.now;
        let node = self.node_mut(server)?;
        for id in missed {
            let outcome = OutboundOutcome::Failed(OutboundFailure::Unreachable);
            node.peeking.handle_response(now, id, outcome);
        }
        node.peeking.handle_timeout(now);
        self.drain(server);
        Ok(())
    }

    /// Crashes the server and restarts it from its store at `now`, up afterwards (also from
    /// down: a partitioned server that reboots): `Peeking::restore(now, config, snapshot)`,
    /// then the timers already due fire. In-flight requests' answers are dropped and client
    /// peeks waiting on it are marked aborted.
    pub fn crash_restart(&mut self, server: &ServerName) -> Result<(), SimError> {
        let now = self.now;
        let node = self.node_mut(server)?;
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
        self.node_mut(server)?.peeking.handle_timeout(now);
        self.drain(server);
        self.close_lost_spans(server);
        Ok(())
    }

    /// [`crash_restart`](Self::crash_restart) after losing every inbound peek from the
    /// server's store: a resident whose host keeps inbound peeks in memory only, or restores
    /// from an old backup. The peeking servers find out when a renewal is answered 404 (or
    /// their room falls silent and a probe is), and open new peeks (R54).
    pub fn crash_restart_losing_inbound(&mut self, server: &ServerName) -> Result<(), SimError> {
        let node = self.node_mut(server)?;
        let mut snapshot = node.store.to_snapshot();
        let lost = std::mem::take(&mut snapshot.inbound);
        node.store = SnapshotMaps::from_snapshot(&snapshot);
        for r in lost {
            self.forget_grant(server, &r.room_id, &r.server, &r.peek_id);
        }
        self.log(server, || "its store lost every inbound peek".to_owned());
        self.crash_restart(server)
    }

    /// While `drop` is on, the server's `Persist` outputs are acknowledged but never written:
    /// a host whose store silently loses writes, breaking the persistence contract (R59) on
    /// the host's side. The machine runs on from memory; a
    /// [`crash_restart`](Self::crash_restart) restores only what was written. For checking
    /// checkers: [`leaks`](Self::leaks) reports the peeks such a server keeps alive without a
    /// record once their window has passed. Off for every new server.
    pub fn drop_store_writes(&mut self, server: &ServerName, drop: bool) -> Result<(), SimError> {
        self.node_mut(server)?.drop_writes = drop;
        self.log(server, || format!("store writes {}", if drop { "DROPPED" } else { "kept" }));
        Ok(())
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
    /// Changes after every input and step.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.next_due_inner().map(|(at, _)| at)
    }

    fn next_due_inner(&self) -> Option<(Timestamp, Option<OwnedServerName>)> {
        let msg = self.queue.peek().map(|s| (s.at, None));
        let timer =
            self.timers.first().map(|&(t, idx)| (t, Some(self.names[idx as usize].clone())));
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
                let node = self.nodes.get_mut(&server).expect("it reported the deadline");
                node.peeking.handle_timeout(at);
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

    fn node(&self, server: &ServerName) -> Result<&Node, SimError> {
        self.nodes.get(server).ok_or_else(|| SimError::UnknownServer(server.to_owned()))
    }

    fn node_mut(&mut self, server: &ServerName) -> Result<&mut Node, SimError> {
        self.nodes.get_mut(server).ok_or_else(|| SimError::UnknownServer(server.to_owned()))
    }

    /// Whether the server exists and is up (for the wire: a missing server is unreachable).
    fn alive(&self, server: &ServerName) -> bool {
        self.nodes.get(server).is_some_and(|n| n.up)
    }

    /// The server exists and is up: it can act or answer.
    fn up_node(&self, server: &ServerName) -> Result<&Node, SimError> {
        let node = self.node(server)?;
        if node.up { Ok(node) } else { Err(SimError::ServerDown(server.to_owned())) }
    }

    /// A client request of `user` to `server`: the server exists and is up, and it is the
    /// user's own homeserver.
    fn client_of(&self, server: &ServerName, user: &UserId) -> Result<&Node, SimError> {
        let node = self.up_node(server)?;
        if user.server_name() != server {
            return Err(SimError::ForeignUser {
                user_id: user.to_owned(),
                server: server.to_owned(),
            });
        }
        Ok(node)
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
