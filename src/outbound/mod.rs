//! Outbound federated peeks (MSC2444, peeking side). The state diagram and the rules are on
//! [`OutboundPeeks`], the public face of this module.

mod answer;
mod config;
mod error;
mod index;
mod inspect;
mod output;
mod record;
mod request;
mod restore;
mod room;
mod servers;
mod stats;
mod step;
mod versions;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use ruma_common::{OwnedServerName, RoomId, ServerName};

pub use config::{OutboundConfig, OutboundRenewStyle};
pub use error::{OutboundFailure, OutboundPeekError};
pub use inspect::OutboundRoomInfo;
pub use output::{OutboundLostReason, OutboundOutput, OutboundState};
pub use record::{
    OutboundChange, OutboundKey, OutboundPeekPhase, OutboundPeekRecord, OutboundRecord,
};
pub use request::{OutboundOutcome, OutboundRequest, OutboundRequestKind};
pub use stats::{OutboundRequestCounts, OutboundStateCounts, OutboundStats};

use crate::access::RoomAccess;
use crate::ids::RequestId;
use crate::shared::SharedRoomId;
use crate::slab::Slab;
use crate::time::{Monotonic, Timestamp};
use crate::timer::{FxBuild, SlotTimers};
use index::RoomIndex;
use room::{Candidate, Demand, Pacer, Phase, Room};
use servers::Servers;
use versions::Versions;

/// How many ids are reserved per persisted high-water mark.
const COUNTER_BLOCK: u64 = 256;

/// Our federated peeks into remote rooms (MSC2444 peeking side). See the module docs.
///
/// Outbound federated peeks (MSC2444, peeking side): [`OutboundPeeks`].
///
/// One federated peek per room, shared by every local device that peeks it (R58). The host
/// declares demand (`handle_demand` / `handle_no_demand`, normally from `LocalOutput::RoomDemand`),
/// sends the [`OutboundRequest`]s the machine asks for, reports each [`OutboundOutcome`], and
/// tells the machine when an event of a peeked room arrives (`handle_room_event`), so that a
/// resident that falls silent is noticed in minutes rather than at the next renewal.
///
/// # States
///
/// A room's state is its **demand** and the **phase** of its current peek; `step` matches on the
/// pair. Peeks that stop being current are **retired** and deleted in the background, so a
/// `DELETE` never delays a new `PUT`.
///
/// ```text
///  demand:  Demanded ──handle_no_demand──▶ Lingering{until} ──linger ends──▶ Gone
///              ▲  ◀──────handle_demand─────────┘                             ▲
///              └──────────────handle_demand (fresh start)────────────────────┘
///           joined (R56/R57), access lost, Unavailable ──▶ Gone at once
///
///  phase:            open at the best ready candidate (pacer permitting)
///          Idle ────────────────────────────────────────────▶ Opening{PUT}
///           ▲ ▲  transient failure: that candidate backs off   │  │ 403/404/400/invalid: candidate
///           │ └────────────────────────────────────────────────┘  │ dropped (granted → retired)
///           │                                         Established │
///           │   404 / expired_peeks (R54), refusal                ▼
///           ├───────────────────────────────────────────────── Live ◀─── Renewed ───┐
///           │   lapse at expires_at; failover after                │                  │
///           │   failover_after of failures; Gone: retired          │ renew_at, or a    │
///           │                                                       │ probe when an     │
///           │                                                       ▼ active room is    │
///           └───────────────────────────────────────────────── Renewing ── silent ──────┘
///                                                                  │ network/429: Live{failing},
///                                                                  └ retried after a backoff
///
///  retired peek:  Awaiting{its request in flight} ──▶ Due{at} ──▶ Deleting{DELETE} ──▶ (gone)
///                 (only a granted or renewed peek is   ▲   │ network/429: retried, at most
///                  deleted)                             └───┘ max_delete_attempts times
/// ```
///
/// * **Candidates** (R46): only from `via`, de-duplicated, in order, at most `max_candidates`;
///   never the room id's domain (v12 room ids have none, B-13). Each candidate keeps its own
///   backoff: a `PUT` goes to the ready candidate with the fewest recent failures (`via` order
///   among equals), so a candidate never tried, or that has not failed, goes before one that
///   just failed. No candidate → `Unavailable(NoCandidates)`. More `via` on a live room merges.
/// * **Peek ids** (R47): exactly 8 characters of `[0-9a-zA-Z_-]` from a counter whose high-water
///   mark is persisted (in blocks, before use); every `PUT` to a new target gets a fresh id, so no
///   id is ever reused, also across restarts. A `PUT` that failed on the network is assumed not
///   to have created a peek; if it did, the resident expires it after its interval (R43).
/// * **Renewal** (R53): at `clamp(interval × renew_fraction, min_renew_after, max_renew_after)`
///   after each success, using the remote's latest interval (an omitted one keeps the last).
///   [`OutboundRenewStyle::RePut`] re-sends the `PUT` with the same id for older peers.
///   Renewals continue while lingering.
/// * **A dead resident** is noticed three ways: a renewal fails; an **active** room (events
///   arriving through [`handle_room_event`](OutboundPeeks::handle_room_event)) falls silent for
///   four of its recent gaps (at least `min_silence`) and the early renewal it sends as a probe
///   fails; or the host reports the server down
///   ([`handle_server_unreachable`](OutboundPeeks::handle_server_unreachable)). Renewals then
///   retry with backoff; after `failover_after` of failures, a demanded room opens a peek at
///   another candidate **at once** (`Lost`, then `Established` with `missed_since`), and the
///   old peek is retired. Quiet rooms send nothing extra.
/// * **Refusals** (R60): `Forbidden`, `NotFound`, `IncompatibleRoomVersion`, `InvalidResponse`
///   drop that candidate; a granted peek is retired (R49, R55). When every candidate refused,
///   or a never-established room used `max_attempts`, the room becomes `Unavailable` with the
///   most specific error (`Forbidden` > `NotFound` > `IncompatibleRoomVersion` > the rest). A
///   peek that **was** established is retried for as long as it is demanded.
/// * **Renewal failures**: 404 → dead at the resident, `Lost(RemoteExpired)`, re-open with a
///   fresh id (R54). 403/incompatible → `Lost(Refused)`, that candidate is dropped.
///   Network/429/invalid → retried with backoff until failover or until the peek lapses at
///   `expires_at` (`max(renewed + interval, renew_at)`): then `Lost(Unreachable)`, the peek is
///   retired (the resident may still hold it) and a new one opened.
/// * **Teardown** (R55): no demand → lingering for `linger` → retired. Joined (R56) → retired at
///   once and never peeked again until `handle_server_left` (R57). A retired peek's `DELETE`
///   answered 404 (or any refusal) is done; network failures are retried with backoff
///   `max_delete_attempts` times, then dropped (the resident expires the peek itself). At most
///   [`MAX_RETIRED`](OutboundPeeks::MAX_RETIRED) retired peeks per room; beyond that the oldest
///   is dropped the same way.
/// * **Access lost** (`handle_access_changed` with an unpeekable room): the peek is retired at
///   once; demanded rooms report `Lost(AccessLost)` if a peek was established, else
///   `Unavailable(Remote(Forbidden))`. The demand is forgotten until declared again.
/// * **Pacing**: every request of a room, whatever the answers, goes through the room's pacer:
///   at most [`REQUEST_BURST`](OutboundPeeks::REQUEST_BURST) at once, then one per
///   [`REQUEST_SPACING`](OutboundPeeks::REQUEST_SPACING), so at most
///   [`MAX_REQUESTS_PER_MINUTE`](OutboundPeeks::MAX_REQUESTS_PER_MINUTE) in any minute; a
///   `retry_after` below 1 s is raised to 1 s. Background `DELETE`s use only half the burst.
/// * **Requests in flight**: at most one for the current peek, plus one per retired peek. At most
///   one peek per room is current (R58); retired ones are on their way out. The host must answer
///   every request (`Unreachable` on timeout).
/// * **Restart** (R59): see [`OutboundPeeks::restore`].
/// * The machine never validates responses (R49): the host checks a `PUT` answer like a
///   `send_join` response before reporting `Established`, and reports `InvalidResponse`
///   otherwise (the machine then retires the granted peek and tries the next candidate).
#[derive(Debug, Clone)]
pub struct OutboundPeeks {
    config: OutboundConfig,
    /// `config.supported_versions`, shared by every `PUT` it sends; the machine reads the
    /// versions only from here (the config never changes after `new`).
    versions: Versions,
    clock: Monotonic,
    /// Room slots.
    rooms: Slab<Room>,
    /// Room id → slot (the ids are the rooms' own).
    index: RoomIndex,
    /// One shared copy of each candidate's and resident's name.
    servers: Servers,
    /// At most one deadline per room slot.
    timers: SlotTimers,
    /// In-flight requests → room slot; the room's current phase or one of its retired peeks
    /// must still name the id. Request ids are our own counter, so FxHash.
    requests: HashMap<RequestId, u32, FxBuild>,
    /// Rooms a local user is joined to: never peeked (R57).
    joined: HashSet<SharedRoomId>,
    /// The pacer of rooms forgotten while it still held requests back, so forgetting and
    /// re-creating a room never refills its budget. Entries are pruned once they have no
    /// effect (at most one per room forgotten in the last `REQUEST_BURST` seconds). Keyed by
    /// the room id's hash in `index` (keyed SipHash, computed anyway), so a new room costs no
    /// second hash of its id; two rooms sharing a 64-bit keyed hash would only share a pacer.
    paced: HashMap<u64, Pacer, FxBuild>,
    next_peek_id: u64,
    peek_id_reserved: u64,
    next_request: u64,
    request_reserved: u64,
    outputs: VecDeque<OutboundOutput>,
    /// Host notifications decided mid-handler, queued after the handler's `Persist`s.
    deferred: Vec<OutboundOutput>,
    stats: OutboundStats,
}

impl OutboundPeeks {
    /// Requests one room may send at once (see the module docs' "Pacing").
    pub const REQUEST_BURST: u32 = Pacer::BURST as u32;
    /// After a burst, one request per this, per room.
    pub const REQUEST_SPACING: Duration = Pacer::SPACING;
    /// The most requests one room sends in any 60 s, whatever the answers:
    /// `REQUEST_BURST + 60 s / REQUEST_SPACING`.
    pub const MAX_REQUESTS_PER_MINUTE: u32 = Self::REQUEST_BURST + 60;
    /// Retired peeks kept per room while their `DELETE`s go out.
    pub const MAX_RETIRED: usize = 4;

    /// An empty machine.
    pub fn new(config: OutboundConfig) -> Self {
        OutboundPeeks {
            versions: Versions::new(&config.supported_versions),
            config,
            clock: Monotonic::default(),
            rooms: Slab::default(),
            index: RoomIndex::default(),
            servers: Servers::default(),
            timers: SlotTimers::default(),
            requests: HashMap::default(),
            joined: HashSet::new(),
            paced: HashMap::default(),
            next_peek_id: 0,
            peek_id_reserved: 0,
            next_request: 0,
            request_reserved: 0,
            outputs: VecDeque::new(),
            deferred: Vec::new(),
            stats: OutboundStats::default(),
        }
    }

    /// Local devices need `room` (R58: however many call this, one federated peek). `via` are
    /// the candidate servers (MSC2753 `servers`), merged into any known ones; the room id's
    /// domain is never used (R46, B-13).
    ///
    /// Consequences: `Send(Peek)` for a new room; nothing when a peek is already there or
    /// lingering (the linger is cancelled); `Unavailable(NoCandidates)` with no candidate,
    /// `Unavailable(LimitExceeded)` over `max_rooms`. Ignored for joined rooms (R57).
    pub fn handle_demand(&mut self, now: Timestamp, room: &RoomId, via: &[OwnedServerName]) {
        crate::log::span!("outbound_demand", %room);
        let now = self.tick(now);
        if self.joined.contains(room) {
            return;
        }
        let hash = self.index.hash(room);
        let full = self.index.len() >= self.config.max_rooms;
        // One probe of the index finds the room or where a new one goes.
        let slot = match self.index.entry(&self.rooms, hash, room) {
            Ok(slot) => slot,
            Err(vacant) => {
                let error = if via.is_empty() {
                    Some(OutboundPeekError::NoCandidates)
                } else if full {
                    Some(OutboundPeekError::LimitExceeded)
                } else {
                    None
                };
                if let Some(error) = error {
                    let room_id = room.into();
                    self.deferred.push(OutboundOutput::Unavailable { room_id, error });
                    return self.flush();
                }
                // The candidate list is sized once, not grown from empty.
                let candidates = via.len().min(self.config.max_candidates);
                let r = Room::new(room.into(), Demand::Demanded, candidates);
                let slot = self.rooms.insert(Self::admit(&mut self.paced, r, hash));
                vacant.insert(slot);
                slot
            }
        };
        self.revive(slot);
        let max = self.config.max_candidates;
        for name in via {
            let r = self.room(slot);
            if r.candidates.len() >= max {
                break;
            }
            if !r.candidates.iter().any(|c| c.server == **name) {
                let (server, failures, retry_at) = (self.servers.intern(name), 0, Timestamp::ZERO);
                self.room_mut(slot).candidates.push(Candidate { server, failures, retry_at });
            }
        }
        self.step(slot, now);
        self.flush();
    }

    /// No local device needs `room` any more: linger, then `DELETE` (R55). A room with no remote
    /// peek and nothing in flight is forgotten at once.
    pub fn handle_no_demand(&mut self, now: Timestamp, room: &RoomId) {
        crate::log::span!("outbound_no_demand", %room);
        let now = self.tick(now);
        let Some(slot) = self.index.get(&self.rooms, room) else { return };
        let until = now.saturating_add(self.config.linger);
        let r = self.room_mut(slot);
        if r.is_demanded() {
            r.demand = Demand::Lingering { until };
        }
        self.step(slot, now);
        self.flush();
    }

    /// A local user joined `room`: this server is resident now. The peek is deleted at once
    /// (R56), and the room is never peeked again, whatever demand is declared, until
    /// [`handle_server_left`](Self::handle_server_left) (R57). Persists a `Joined` marker.
    pub fn handle_server_joined(&mut self, now: Timestamp, room: &RoomId) {
        crate::log::span!("outbound_server_joined", %room);
        let now = self.tick(now);
        let slot = self.index.get(&self.rooms, room);
        if !self.joined.contains(room) {
            // The room's own copy of its id when the machine knows it.
            let room_id = slot.map_or_else(|| room.into(), |slot| self.room(slot).id.clone());
            self.joined.insert(room_id.clone());
            let record = OutboundRecord::Joined { room_id };
            self.outputs.push_back(OutboundOutput::Persist(OutboundChange::Upsert(record)));
        }
        if let Some(slot) = slot {
            self.step(slot, now);
        }
        self.flush();
    }

    /// The last local user left `room`: it may be peeked again.
    pub fn handle_server_left(&mut self, now: Timestamp, room: &RoomId) {
        self.tick(now);
        if let Some(room_id) = self.joined.take(room) {
            let change = OutboundChange::Remove(OutboundKey::Joined(room_id));
            self.outputs.push_back(OutboundOutput::Persist(change));
        }
    }

    /// The host learnt new facts about `room`. The stored access is updated; an unpeekable room
    /// (R40) is deleted at once without linger, reporting `Lost(AccessLost)` if a peek was
    /// established and demanded, `Unavailable(Remote(Forbidden))` if a client was still waiting.
    /// Unknown rooms are ignored.
    pub fn handle_access_changed(&mut self, now: Timestamp, room: &RoomId, access: &RoomAccess) {
        crate::log::span!("outbound_access_changed", %room);
        let now = self.tick(now);
        let Some(slot) = self.index.get(&self.rooms, room) else { return };
        let r = self.room_mut(slot);
        let changed = r.access.as_ref() != Some(access);
        r.access = Some(access.clone());
        if access.is_peekable() {
            // The stored record carries the access; a renewal no longer rewrites it, so it is
            // written here (restoring loses nothing, R59).
            if changed && self.room(slot).persisted {
                self.persist_current(slot);
            }
            return;
        }
        if r.is_demanded() {
            if r.phase.lease().is_some() {
                self.lose(slot, OutboundLostReason::AccessLost);
                self.room_mut(slot).demand = Demand::Gone;
            } else {
                let error = OutboundPeekError::Remote(OutboundFailure::Forbidden);
                self.give_up(slot, error);
            }
        }
        self.room_mut(slot).demand = Demand::Gone;
        self.step(slot, now);
        self.flush();
    }

    /// An event of `room` arrived through its peek (from the resident's `/send`). Cheap: O(1),
    /// plus one timer move the first time a room becomes active. The machine learns the
    /// room's rhythm and probes the resident early when an active room falls silent; a room
    /// that is not tracked is ignored.
    pub fn handle_room_event(&mut self, now: Timestamp, room: &RoomId) {
        let now = self.tick(now);
        let Some(slot) = self.index.get(&self.rooms, room) else { return };
        let r = self.room_mut(slot);
        r.activity.record(now);
        let lease = match &r.phase {
            Phase::Live { lease, failing: None, .. } if r.is_demanded() => *lease,
            Phase::Live { .. } | Phase::Renewing { .. } => {
                r.last_good = r.last_good.max(now);
                return;
            }
            Phase::Idle | Phase::Opening { .. } => return,
        };
        r.last_good = r.last_good.max(now);
        if let Some(probe) = self.silence_deadline(slot, &lease)
            && self.timers.deadline(slot).is_none_or(|at| probe < at)
        {
            self.timers.schedule(slot, probe);
        }
    }

    /// The host knows `server` is unreachable (from its other federation traffic). Every room
    /// that lists it backs it off, and every demanded room peeked through it moves to another
    /// ready candidate at once (its old peek retired). O(rooms).
    pub fn handle_server_unreachable(&mut self, now: Timestamp, server: &ServerName) {
        crate::log::span!("outbound_server_unreachable", %server);
        let now = self.tick(now);
        // Names compare by their shared copy: no room's names are read. A name no room holds
        // concerns none.
        let Some(server) = self.servers.find(server) else { return self.flush() };
        let server = &server;
        let slots: Vec<u32> = self.rooms.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            if self.room(slot).candidates.iter().all(|c| !c.server.is(server)) {
                continue;
            }
            self.penalise(slot, server, now, &OutboundFailure::Unreachable);
            let r = self.room(slot);
            let on_it = r.phase.peek().is_some_and(|p| p.server.is(server));
            let elsewhere = r.candidates.iter().any(|c| !c.server.is(server) && c.retry_at <= now);
            if on_it && r.is_demanded() && elsewhere {
                self.stats.failovers += 1;
                crate::log::warning!(room = %self.room(slot).id, %server, "resident unreachable: failing over");
                let r = self.room(slot);
                if r.phase.lease().is_some() {
                    self.lose(slot, OutboundLostReason::Unreachable);
                }
                self.retire_current(slot, now);
            }
            self.step(slot, now);
        }
        self.flush();
    }

    /// The resident sent `expired_peeks` naming (`room`, `peek_id`) from `server` (R54). If it
    /// is the current peek, it is dead: re-opened with a fresh id when demanded (`Lost` then
    /// `Established`), forgotten otherwise. An entry naming a peek whose opening `PUT` is in
    /// flight is ignored (its answer decides), and so is any other id. Because the entry may
    /// predate a same-id `PUT` that re-created the peek (a restore's re-`PUT` of an opening
    /// peek, a [`OutboundRenewStyle::RePut`] renewal, a late duplicate), the lost peek is
    /// retired and `DELETE`d in the background (404 = already gone, R55) rather than silently
    /// forgotten.
    pub fn handle_remote_expired(
        &mut self,
        now: Timestamp,
        server: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) {
        crate::log::span!("outbound_remote_expired", %server, %room, peek_id);
        let now = self.tick(now);
        let Some(slot) = self.index.get(&self.rooms, room) else { return };
        if self.on_remote_expired(slot, server, peek_id, now) {
            self.step(slot, now);
        }
        self.flush();
    }

    /// The outcome of request `id`. Unknown, stale and duplicate ids are ignored.
    pub fn handle_response(&mut self, now: Timestamp, id: RequestId, outcome: OutboundOutcome) {
        crate::log::span!("outbound_response", id = id.0, ?outcome);
        let now = self.tick(now);
        let Some(slot) = self.requests.remove(&id) else { return };
        self.on_response(slot, id, outcome, now);
        self.step(slot, now);
        self.flush();
    }

    /// Fires every due deadline: renewals and probes, backoff ends, failovers, linger ends,
    /// lapses, `DELETE` retries. A no-op when nothing is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        crate::log::span!("outbound_timeout", now = now.as_millis());
        let now = self.tick(now);
        while let Some((slot, _)) = self.timers.pop_due(now) {
            self.step(slot, now);
        }
        self.flush();
    }

    /// The next consequence, in order. Changes after every `handle_*` and `restore`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<OutboundOutput> {
        let output = self.outputs.pop_front();
        crate::log::output!("outbound", output);
        output
    }

    /// The earliest deadline, when `handle_timeout` must be called: a renewal or probe, the end
    /// of a backoff or of the pacer's wait, a failover, a linger's end, a lapse, or a `DELETE`
    /// retry. Rooms waiting only on answers have none. Changes after every `handle_*`.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    fn room(&self, slot: u32) -> &Room {
        // Cannot fail: slots come from `index`, `requests` or `timers`, which are cleared
        // together with the slot in `remove_room`.
        self.rooms.get(slot).expect("slot in use")
    }

    fn room_mut(&mut self, slot: u32) -> &mut Room {
        // Cannot fail: see `room`.
        self.rooms.get_mut(slot).expect("slot in use")
    }

    /// Adds `room`, whose id's index hash is `hash`.
    fn insert_room(&mut self, room: Room, hash: u64) -> u32 {
        let slot = self.rooms.insert(Self::admit(&mut self.paced, room, hash));
        self.index.insert(&self.rooms, slot);
        slot
    }

    /// `room`, to be indexed under `hash`, with that hash stored and the pacer of a room of
    /// that hash forgotten while it still held requests back.
    fn admit(paced: &mut HashMap<u64, Pacer, FxBuild>, mut room: Room, hash: u64) -> Room {
        if let Some(pacer) = paced.remove(&hash) {
            room.pacer = pacer;
        }
        room.hash = hash;
        room
    }

    /// Queues the host notifications decided during a handler, after its `Persist`s.
    fn flush(&mut self) {
        // Most handlers decide no notification: an empty drain still costs about 30
        // instructions.
        if self.deferred.is_empty() {
            return;
        }
        // One pass that counts and queues each notification: a counting pass and then
        // `extend(drain)` cost about 90 instructions more per opened peek (two handlers, one
        // of them with nothing to queue).
        for output in self.deferred.drain(..) {
            match output {
                OutboundOutput::Established { .. } => self.stats.established += 1,
                OutboundOutput::Lost { .. } => self.stats.lost += 1,
                OutboundOutput::Unavailable { .. } => self.stats.unavailable += 1,
                _ => {}
            }
            self.outputs.push_back(output);
        }
    }

    /// What the machine did (counters) and holds (gauges). O(rooms) for the state gauges;
    /// cheap enough for every metrics scrape. Changes after every `handle_*`.
    pub fn stats(&self) -> OutboundStats {
        let mut stats = self.stats;
        let mut rooms = OutboundStateCounts::default();
        let mut retired = 0;
        for (_, r) in self.rooms.iter() {
            retired += r.retired.len() as u64;
            let counter = match self.state_of(r) {
                OutboundState::Connecting => &mut rooms.connecting,
                OutboundState::Established => &mut rooms.established,
                OutboundState::Renewing => &mut rooms.renewing,
                OutboundState::Backoff => &mut rooms.backoff,
                OutboundState::Lingering => &mut rooms.lingering,
                OutboundState::Deleting => &mut rooms.deleting,
            };
            *counter += 1;
        }
        stats.rooms = rooms;
        stats.retired_peeks = retired;
        stats.in_flight = self.requests.len() as u64;
        stats
    }
}
