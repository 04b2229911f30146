//! Outbound federated peeks (MSC2444, peeking side): [`OutboundPeeks`].
//!
//! One federated peek per room, shared by every local device that peeks it (R58). The host
//! declares demand (`handle_demand` / `handle_no_demand`, normally from `LocalOutput::RoomDemand`),
//! sends the [`OutboundRequest`]s the machine asks for, and reports each [`OutboundOutcome`].
//!
//! # States
//!
//! ```text
//!                 handle_demand(via)                       Established
//!   (none) ──────────────────────────▶ Connecting ─────────────────────────▶ Established
//!                                       │  ▲   │ 403/404/400/invalid:              │  ▲
//!                network/429 (R60) ◀────┘  │   │ next candidate (DELETE first      │  │ Renewed
//!                      Backoff ────────────┘   │ if granted); none left →          ▼  │
//!                        │ max_attempts        │ Unavailable                    Renewing
//!                        ▼ (never established) │                     404/expired_peeks (R54):
//!                   Unavailable                │                     Lost, fresh peek id → Connecting
//!                                              │
//!   Established/Renewing ── handle_no_demand ──▶ Lingering ── linger ends ──▶ Deleting ──▶ (none)
//!          ▲                                      │                          (DELETE; 404 = done)
//!          └──────── demand returns (no traffic) ─┘
//!
//!   handle_server_joined (R56/R57), access lost, failed validation: ─▶ Deleting at once, no linger
//! ```
//!
//! * **Candidates** (R46): only from `via`, de-duplicated, in order, at most `max_candidates`;
//!   never the room id's domain (v12 room ids have none, B-13). No candidate →
//!   `Unavailable(NoCandidates)`. More `via` on a live room merges in.
//! * **Peek ids** (R47): exactly 8 characters of `[0-9a-zA-Z_-]` from a counter whose high-water
//!   mark is persisted (in blocks, before use); every `PUT` to a new target gets a fresh id, so no
//!   id is ever reused, also across restarts. A retried `PUT` after a network failure gets a
//!   fresh id too: a `PUT` that failed on the network is assumed not to have created a peek; if
//!   it did, the resident expires it after its interval (R43), since we never renew it.
//! * **Renewal** (R53): at `clamp(interval × renew_fraction, min_renew_after, max_renew_after)`
//!   after each success, using the remote's latest interval. [`OutboundRenewStyle::RePut`] re-sends the
//!   `PUT` with the same id for older peers. Renewals continue while lingering.
//! * **Failures** (R60): `Forbidden`, `NotFound`, `IncompatibleRoomVersion`, `InvalidResponse`
//!   from a candidate drop it and try the next, after a `DELETE` when the peek had been granted
//!   (`InvalidResponse`, or an `Established` whose room is unpeekable or of an unsupported
//!   version, R49/R55). `Unreachable`, `Other` and `RateLimited` back off (`base`, `2×base`,
//!   `4×base`… capped at `backoff_max`, minus up to 10 % jitter hashed from the room id and
//!   attempt; `retry_after` honoured up to `backoff_max`) and rotate to the next candidate. When
//!   every candidate refused, or a never-established peek used `max_attempts`, the room becomes
//!   `Unavailable` with the most specific error (`Forbidden` > `NotFound` >
//!   `IncompatibleRoomVersion` > the rest). A peek that **was** established is retried without
//!   limit while demanded: `Lost` once, `Established` when back.
//! * **Renewal failures**: 404 → the peek is dead, `Lost(RemoteExpired)`, re-open with a fresh id
//!   (R54). 403/incompatible → `Lost(Refused)`, that candidate is dropped, re-open elsewhere.
//!   Network/429/invalid/other → retry the renewal with backoff until it lapses at `expires_at`
//!   (`max(renewed + interval, renew_at)`), then `Lost(Unreachable)`, a `DELETE` (the resident
//!   may still hold it: its grace, or a renewal that timed out after reaching it), and re-open.
//! * **Teardown** (R55): no demand → `Lingering` for `linger` → one `DELETE`. Joined (R56) →
//!   `DELETE` at once and never peek the room again until `handle_server_left` (R57). A `DELETE`
//!   answered 404 (or any refusal) is done; network failures are retried with backoff
//!   `max_delete_attempts` times, then dropped (the resident expires the peek itself).
//! * **Access lost** (`handle_access_changed` with an unpeekable room): the peek is deleted at
//!   once without linger; demanded rooms report `Lost(AccessLost)` if a peek was established,
//!   else `Unavailable(Remote(Forbidden))` (the pending client peeks fail). The demand is
//!   forgotten until declared again.
//! * **One request per room**: the machine never has two requests in flight for one room, so at
//!   most one remote peek per room exists at any time (R58); changes that arrive meanwhile are
//!   applied when the answer comes. The host must answer every request (`Unreachable` on timeout).
//! * **Restart** (R59): see [`OutboundPeeks::restore`].
//! * The machine never validates responses (R49): the host checks a `PUT` answer like a
//!   `send_join` response before reporting `Established`, and reports `InvalidResponse`
//!   otherwise (the machine then deletes the granted peek and fails over).

mod config;
mod drive;
mod error;
mod output;
mod record;
mod request;

use std::collections::{HashMap, HashSet, VecDeque};

use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, ServerName};

pub use config::{OutboundConfig, OutboundRenewStyle};
pub use error::{OutboundFailure, OutboundPeekError};
pub use output::{OutboundLostReason, OutboundOutput, OutboundState};
pub use record::{
    OutboundChange, OutboundKey, OutboundPeekPhase, OutboundPeekRecord, OutboundRecord,
};
pub use request::{OutboundOutcome, OutboundRequest, OutboundRequestKind};

use crate::access::RoomAccess;
use crate::ids::RequestId;
use crate::slab::Slab;
use crate::time::{Monotonic, Timestamp};
use crate::timer::TimerQueue;
use drive::{Peek, Room};

/// How many ids are reserved per persisted high-water mark.
const COUNTER_BLOCK: u64 = 256;

/// Our federated peeks into remote rooms (MSC2444 peeking side). See the module docs.
#[derive(Debug, Clone)]
pub struct OutboundPeeks {
    config: OutboundConfig,
    clock: Monotonic,
    /// Room slots.
    rooms: Slab<Room>,
    index: HashMap<OwnedRoomId, u32>,
    /// At most one deadline per room slot.
    timers: TimerQueue<u32>,
    /// In-flight requests → room slot; the room's `request` must still name the id.
    requests: HashMap<RequestId, u32>,
    /// Rooms a local user is joined to: never peeked (R57).
    joined: HashSet<OwnedRoomId>,
    next_peek_id: u64,
    peek_id_reserved: u64,
    next_request: u64,
    request_reserved: u64,
    outputs: VecDeque<OutboundOutput>,
    /// Host notifications decided mid-handler, queued after the handler's `Persist`s.
    deferred: Vec<OutboundOutput>,
}

impl OutboundPeeks {
    /// An empty machine.
    pub fn new(config: OutboundConfig) -> Self {
        OutboundPeeks {
            config,
            clock: Monotonic::default(),
            rooms: Slab::default(),
            index: HashMap::new(),
            timers: TimerQueue::new(),
            requests: HashMap::new(),
            joined: HashSet::new(),
            next_peek_id: 0,
            peek_id_reserved: 0,
            next_request: 0,
            request_reserved: 0,
            outputs: VecDeque::new(),
            deferred: Vec::new(),
        }
    }

    /// Rebuilds the machine from the stored records at restart time `now` (R59).
    ///
    /// * The counters resume from their persisted high-water marks: no peek id or request id
    ///   from before the crash is handed out again.
    /// * Every restored room starts **without demand** and lingers from `now`: the host must
    ///   re-declare demand (as `LocalPeeks` does after its own restore); rooms not re-demanded
    ///   within `linger` are deleted, so a restart leaks nothing.
    /// * `Live` peeks keep their stored deadlines (renewed at the stored `renew_at`, also while
    ///   lingering; a past deadline renews at the first `handle_timeout`).
    /// * `Opening` peeks (a `PUT` whose answer was lost in the crash) are re-`PUT` with the same
    ///   id when demanded again (idempotent at the resident), else deleted after the linger.
    /// * `Deleting` peeks re-send their `DELETE` at once (queued in the outputs).
    /// * In-flight renewals were persisted as `Live` and are re-sent when due; responses to
    ///   requests of the previous run are unknown ids and ignored.
    /// * Linger ends are not stored: a room lingering at the crash lingers afresh from `now`
    ///   (bounded: one extra `linger` per restart).
    /// * Rooms in `Backoff` or `Connecting` without a granted peek are not stored once their
    ///   `PUT` failed; they come back when demand is re-declared.
    /// * Duplicates: the last record for a key wins; nothing panics on odd records.
    pub fn restore(
        now: Timestamp,
        config: OutboundConfig,
        records: impl IntoIterator<Item = OutboundRecord>,
    ) -> Self {
        let mut m = OutboundPeeks::new(config);
        m.clock = Monotonic::starting_at(now);
        let mut peeks: HashMap<OwnedRoomId, OutboundPeekRecord> = HashMap::new();
        for record in records {
            match record {
                OutboundRecord::Counters { peek_id, request } => {
                    m.next_peek_id = m.next_peek_id.max(peek_id);
                    m.next_request = m.next_request.max(request);
                }
                OutboundRecord::Joined { room_id } => {
                    m.joined.insert(room_id);
                }
                OutboundRecord::Peek(p) => {
                    peeks.insert(p.room_id.clone(), p);
                }
            }
        }
        // A clock that went backwards across the restart never precedes a renewal we saw.
        for p in peeks.values() {
            if let OutboundPeekPhase::Live { renewed_at, .. } = p.phase {
                m.clock.advance(renewed_at);
            }
        }
        let now = m.clock.now();
        m.peek_id_reserved = m.next_peek_id;
        m.request_reserved = m.next_request;
        let linger_until = now.saturating_add(m.config.linger);
        let mut restored: Vec<_> = peeks.into_values().collect();
        restored.sort_by(|a, b| a.room_id.cmp(&b.room_id));
        for p in restored {
            let mut room = Room::new(p.room_id.clone());
            room.candidates.push(p.server.clone());
            room.access = p.access;
            room.persisted = true;
            room.linger_until = Some(linger_until);
            room.peek = Some(Peek::from_record(p.server, p.peek_id, &p.phase));
            if matches!(p.phase, OutboundPeekPhase::Live { .. }) {
                room.was_established = true;
            }
            let slot = m.insert_room(room);
            m.step(slot, now);
        }
        m.flush();
        m
    }

    /// Local devices need `room` (R58: however many call this, one federated peek). `via` are
    /// the candidate servers (MSC2753 `servers`), merged into any known ones; the room id's
    /// domain is never used (R46, B-13).
    ///
    /// Consequences: `Send(Peek)` for a new room; nothing when a peek is already there or
    /// lingering (the linger is cancelled); `Unavailable(NoCandidates)` with no candidate,
    /// `Unavailable(LimitExceeded)` over `max_rooms`. Ignored for joined rooms (R57).
    pub fn handle_demand(&mut self, now: Timestamp, room: &RoomId, via: &[OwnedServerName]) {
        let now = self.clock.advance(now);
        if self.joined.contains(room) {
            return;
        }
        let slot = match self.index.get(room) {
            Some(&slot) => slot,
            None => {
                if via.is_empty() {
                    self.unavailable(room.to_owned(), OutboundPeekError::NoCandidates);
                    return self.flush();
                }
                if self.index.len() >= self.config.max_rooms {
                    self.unavailable(room.to_owned(), OutboundPeekError::LimitExceeded);
                    return self.flush();
                }
                self.insert_room(Room::new(room.to_owned()))
            }
        };
        let max = self.config.max_candidates;
        let r = self.room_mut(slot);
        if !r.demanded {
            r.demanded = true;
            r.linger_until = None;
        }
        for server in via {
            if r.candidates.len() >= max {
                break;
            }
            if !r.candidates.contains(server) {
                r.candidates.push(server.clone());
            }
        }
        self.step(slot, now);
        self.flush();
    }

    /// No local device needs `room` any more: linger, then `DELETE` (R55). A room with no remote
    /// peek and nothing in flight is forgotten at once.
    pub fn handle_no_demand(&mut self, now: Timestamp, room: &RoomId) {
        let now = self.clock.advance(now);
        let Some(&slot) = self.index.get(room) else { return };
        let linger = now.saturating_add(self.config.linger);
        let r = self.room_mut(slot);
        if r.demanded {
            r.demanded = false;
            r.linger_until = Some(linger);
        }
        self.step(slot, now);
        self.flush();
    }

    /// A local user joined `room`: this server is resident now. The peek is deleted at once
    /// (R56), and the room is never peeked again, whatever demand is declared, until
    /// [`handle_server_left`](Self::handle_server_left) (R57). Persists a `Joined` marker.
    pub fn handle_server_joined(&mut self, now: Timestamp, room: &RoomId) {
        let now = self.clock.advance(now);
        if self.joined.insert(room.to_owned()) {
            self.persist(OutboundChange::Upsert(OutboundRecord::Joined {
                room_id: room.to_owned(),
            }));
        }
        if let Some(&slot) = self.index.get(room) {
            self.room_mut(slot).abandon();
            self.step(slot, now);
        }
        self.flush();
    }

    /// The last local user left `room`: it may be peeked again.
    pub fn handle_server_left(&mut self, now: Timestamp, room: &RoomId) {
        self.clock.advance(now);
        if self.joined.remove(room) {
            self.persist(OutboundChange::Remove(OutboundKey::Joined(room.to_owned())));
        }
    }

    /// The host learnt new facts about `room`. The stored access is updated; an unpeekable room
    /// (R40) is deleted at once without linger, reporting `Lost(AccessLost)` if a peek was
    /// established and demanded, `Unavailable(Remote(Forbidden))` if a client was still waiting.
    /// Unknown rooms are ignored.
    pub fn handle_access_changed(&mut self, now: Timestamp, room: &RoomId, access: &RoomAccess) {
        let now = self.clock.advance(now);
        let Some(&slot) = self.index.get(room) else { return };
        let r = self.room_mut(slot);
        r.access = Some(access.clone());
        if access.is_peekable() {
            return;
        }
        let live = r.is_live() && !r.lost;
        let demanded = r.demanded;
        r.abandon();
        let room_id = r.id.clone();
        self.step(slot, now);
        if demanded {
            // After the step's `Persist` (and its DELETE), like every other notification.
            self.outputs.push_back(if live {
                OutboundOutput::Lost { room_id, reason: OutboundLostReason::AccessLost }
            } else {
                OutboundOutput::Unavailable {
                    room_id,
                    error: OutboundPeekError::Remote(OutboundFailure::Forbidden),
                }
            });
        }
        self.flush();
    }

    /// The resident sent `expired_peeks` naming (`room`, `peek_id`) from `server` (R54). If it
    /// is the current peek, it is dead: re-opened with a fresh id when demanded (`Lost` then
    /// `Established`), forgotten otherwise. Any other id (an old one) is ignored, and so is an
    /// entry naming a peek whose opening `PUT` is in flight (its answer decides). With
    /// [`OutboundRenewStyle::RePut`] the entry may predate a re-`PUT` that re-created the id (or one in
    /// flight may re-create it), so the peek is `DELETE`d (404 = gone) once any re-`PUT` in
    /// flight is answered, before a fresh one is opened.
    pub fn handle_remote_expired(
        &mut self,
        now: Timestamp,
        server: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) {
        let now = self.clock.advance(now);
        let Some(&slot) = self.index.get(room) else { return };
        if self.on_remote_expired(slot, server, peek_id) {
            self.step(slot, now);
        }
        self.flush();
    }

    /// The outcome of request `id`. Unknown, stale and duplicate ids are ignored.
    pub fn handle_response(&mut self, now: Timestamp, id: RequestId, outcome: OutboundOutcome) {
        let now = self.clock.advance(now);
        let Some(slot) = self.requests.remove(&id) else { return };
        self.on_response(slot, id, outcome, now);
        self.step(slot, now);
        self.flush();
    }

    /// Fires every due deadline: renewals, backoff ends, linger ends, lapses. A no-op when
    /// nothing is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.clock.advance(now);
        while let Some((slot, _)) = self.timers.pop_due(now) {
            self.step(slot, now);
        }
        self.flush();
    }

    /// The next consequence, in order. Changes after every `handle_*` and `restore`.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<OutboundOutput> {
        self.outputs.pop_front()
    }

    /// The earliest deadline, when `handle_timeout` must be called. Rooms with a request in
    /// flight have none (they wait for the answer). Changes after every `handle_*`.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// The server and access of `room`'s peek while it is `Established` or `Renewing`: only the
    /// server that granted the current peek (never another candidate, B-9).
    pub fn established(&self, room: &RoomId) -> Option<(&ServerName, &RoomAccess)> {
        let r = self.room(*self.index.get(room)?);
        match self.state_of(r) {
            OutboundState::Established | OutboundState::Renewing => {
                Some((&r.peek.as_ref()?.server, r.access.as_ref()?))
            }
            _ => None,
        }
    }

    /// The state of `room`'s outbound peek, `None` when it has none.
    pub fn state(&self, room: &RoomId) -> Option<OutboundState> {
        Some(self.state_of(self.room(*self.index.get(room)?)))
    }

    /// Requests sent and not yet answered (answers to forgotten requests are ignored).
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Rooms tracked, in any state.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no room is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether a local user is joined to `room` (as far as this machine was told).
    pub fn is_joined(&self, room: &RoomId) -> bool {
        self.joined.contains(room)
    }

    /// The configuration.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
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

    fn insert_room(&mut self, room: Room) -> u32 {
        let id = room.id.clone();
        let slot = self.rooms.insert(room);
        self.index.insert(id, slot);
        slot
    }

    /// Queues `Unavailable` after this handler's `Persist`s (the room's removal is stored first).
    fn unavailable(&mut self, room_id: OwnedRoomId, error: OutboundPeekError) {
        self.deferred.push(OutboundOutput::Unavailable { room_id, error });
    }

    fn flush(&mut self) {
        self.outputs.extend(self.deferred.drain(..));
    }

    fn persist(&mut self, change: OutboundChange) {
        self.outputs.push_back(OutboundOutput::Persist(change));
    }
}
