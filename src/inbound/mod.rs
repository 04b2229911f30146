//! Inbound federated peeks (MSC2444, resident side): remote servers peeking our rooms. The
//! state diagram and the host rules are on [`InboundPeeks`], the public face of this module.

mod config;
mod error;
mod index;
mod output;
mod record;
mod stats;

use std::collections::VecDeque;
use std::time::Duration;

use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, RoomVersionId, ServerName};

pub use config::{InboundConfig, PeekIdPolicy};
pub use error::{InboundEndReason, InboundPeekError};
pub use output::{InboundGrant, InboundOutput, InboundPeekInfo};
pub use record::{InboundChange, InboundKey, InboundRecord};
pub use stats::{InboundEndings, InboundRefusals, InboundStats};

use crate::access::RoomAccess;
use crate::time::{Monotonic, Tick, Timestamp};
use crate::timer::SlotTimers;
use index::{Interner, Peeks, RoomServer};

/// The smallest `retry_after` hint of [`InboundPeekError::LimitExceeded`].
const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The live peeks remote servers hold on our rooms (MSC2444 resident side); see the
/// [type docs](Self) for the state diagram and the host rules.
///
/// Inbound federated peeks (MSC2444, resident side): remote servers peeking our rooms.
///
/// [`InboundPeeks`] tracks every peek a remote server holds on one of our rooms, keyed by
/// (origin server, room, peek id), tells the host where to relay each event of a room
/// ([`InboundPeeks::destinations`]), and expires peeks that are not renewed.
///
/// # States of one peek
///
/// ```text
///                  handle_peek (checks pass, caps ok)
///      (absent) ─────────────────────────────────────────► LIVE ◄──┐ handle_peek on the same key
///         ▲                                               │  │  │   (R38, refreshed: true)
///         │  handle_unpeek (R42)       ── Persist(Remove) │  │  └───┘ handle_renew (R41)
///         ├───────────────────────────────────────────────┘  │       deadline = now + interval + grace
///         │                                                  │
///         │  handle_timeout at renewed_at + renewal_interval + grace      (Lapsed, R43)
///         │  handle_access_changed: not world_readable, or encrypted  (AccessLost, R40)
///         │  handle_server_denied: the room's ACL denies the origin (ServerDenied, R45)
///         └──────────────────────────────────────────────────┘
///                       Persist(Remove), then Expired { destination, room_id, peek_id, reason }
/// ```
///
/// An ended peek is gone: renewing or deleting it gives [`InboundPeekError::UnknownPeek`]
/// (404), and only a new `handle_peek` brings the key back. Every `handle_*` first expires the
/// peeks already due at its `now`, so a renewal that arrives after the deadline does not
/// revive a lapsed peek even if the host was late calling `handle_timeout`.
///
/// # Checks of `handle_peek`, in order (docs/architecture.md §5)
///
/// 1. peek id syntax under [`PeekIdPolicy`] (R29) → [`InboundPeekError::InvalidPeekId`] (400);
/// 2. unknown room (`access == None`) (R31) → [`InboundPeekError::UnknownRoom`] (404);
/// 3. not peekable: not `world_readable`, or encrypted (R32, B-6) →
///    [`InboundPeekError::NotPeekable`] (403);
/// 4. room version not in `ver` (an empty `ver` means `["1"]`) (R33) →
///    [`InboundPeekError::IncompatibleRoomVersion`] carrying the room's version (400);
/// 5. caps per server, per room and in total (R34) → [`InboundPeekError::LimitExceeded`] (429).
///
/// An existing key is an idempotent refresh (R38): checks 1–4 run again, the caps do not, no
/// second subscription is created and the grant says `refreshed: true`. This is also how
/// Dendrite and palpo renew (re-`PUT`), and why a repeated `PUT` never fails the way it crashes
/// Dendrite (B-2).
///
/// # Host rules
///
/// * **Call [`handle_peek`](InboundPeeks::handle_peek) BEFORE taking the state snapshot** for
///   the `PUT` response, so no event can fall between the snapshot and the relay. If building
///   the snapshot fails, call [`handle_unpeek`](InboundPeeks::handle_unpeek) to roll back
///   (R37).
/// * **Relay every event of the room, whatever its origin, to `destinations(room)` ∪ the joined
///   servers, one copy per server** (R39; Dendrite only relayed local events, B-7). A server
///   holding several peeks on a room appears once. Only relay events that are `world_readable`
///   at the event (R40), and no EDUs.
/// * Route `DELETE` to `handle_unpeek`, `POST …/renew` to `handle_renew` and `PUT` to
///   `handle_peek` (Dendrite treated `DELETE` as a `PUT`, B-3). Tell peers the grant's
///   `renewal_interval` in milliseconds (Dendrite sent 1000 hours, B-4).
/// * Put each [`InboundOutput::Expired`] into `expired_peeks` of the next `/send` to its
///   destination (R43). Apply every [`InboundOutput::Persist`] to the store in order, before
///   acting on what follows it.
/// * Call [`handle_timeout`](InboundPeeks::handle_timeout) at
///   [`poll_timeout`](InboundPeeks::poll_timeout), and
///   [`handle_access_changed`](InboundPeeks::handle_access_changed) /
///   [`handle_server_denied`](InboundPeeks::handle_server_denied) when the room's history
///   visibility, encryption or `m.room.server_acl` change (R40, R45).
///
/// **This crate checks no signatures and no ACLs.** The host authenticates the X-Matrix
/// origin and rejects ACL-denied servers with 403 before calling in (R28, R30), and filters
/// relayed events by history visibility. Lookups are exact per (origin, room, peek id), never
/// "any peek of the room" (Dendrite's B-9).
#[derive(Debug, Clone)]
pub struct InboundPeeks {
    config: InboundConfig,
    clock: Monotonic,
    servers: Interner<OwnedServerName, ()>,
    /// Each room's `extra` is the list of servers with at least one live peek on it.
    rooms: Interner<OwnedRoomId, Vec<RoomServer>>,
    peeks: Peeks,
    /// One deadline per live slot (dense: indexed by slot id).
    timers: SlotTimers,
    out: VecDeque<InboundOutput>,
    stats: InboundStats,
}

impl InboundPeeks {
    /// An empty machine.
    pub fn new(config: InboundConfig) -> Self {
        InboundPeeks {
            config,
            clock: Monotonic::default(),
            servers: Interner::default(),
            rooms: Interner::default(),
            peeks: Peeks::default(),
            timers: SlotTimers::default(),
            out: VecDeque::new(),
            stats: InboundStats::default(),
        }
    }

    /// Rebuilds the machine from the records a store kept by applying every
    /// [`InboundOutput::Persist`] in order. `now` is the restart time.
    ///
    /// Every record becomes a live peek with its stored deadline, caps notwithstanding (they
    /// were granted). Duplicate keys: the last record wins. Records already past their deadline
    /// stay until the next `handle_*` (normally [`handle_timeout`](Self::handle_timeout), since
    /// [`poll_timeout`](Self::poll_timeout) is then due), which expires and reports them. Time
    /// starts at the latest of `now` and every `renewed_at`, so it never goes backwards across
    /// a restart. Emits no output.
    pub fn restore(
        now: Timestamp,
        config: InboundConfig,
        records: impl IntoIterator<Item = InboundRecord>,
    ) -> Self {
        let mut this = InboundPeeks::new(config);
        let records = records.into_iter();
        this.peeks.reserve(records.size_hint().0);
        this.timers.reserve(records.size_hint().0);
        for record in records {
            let (origin, room_id) = (&*record.server, &*record.room_id);
            let hash = this.peeks.hash(origin.as_str(), room_id.as_str(), &record.peek_id);
            let slot = match this.find_hashed(hash, origin, room_id, &record.peek_id) {
                Some(s) => {
                    this.peeks.slot_mut(s).renewed_at = record.renewed_at;
                    s
                }
                None => {
                    let server = this.servers.intern(origin);
                    let room = this.rooms.intern(room_id);
                    this.insert_peek(hash, server, room, &record.peek_id, record.renewed_at)
                }
            };
            // Ordered in one bulk build below (O(n log n) sort, O(n) tree) instead of n inserts.
            this.timers.set_unordered(slot, record.expires_at);
        }
        this.timers.rebuild_order();
        this.clock = Monotonic::starting_at(now);
        // Stored times heal as a running machine's do when its clock is corrected: no peek
        // outlives one interval (plus grace) from the restart time.
        this.heal(now);
        this
    }

    /// The latest `now` this machine has seen (time never goes backwards inside it, docs/architecture.md §3).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The configuration.
    pub fn config(&self) -> &InboundConfig {
        &self.config
    }

    /// A remote server's `PUT /peek/{roomId}/{peekId}?ver=…` (R28–R38): creates the peek, or
    /// refreshes it when `(origin, room, peek_id)` is already live (`refreshed: true`).
    ///
    /// `origin` is the authenticated X-Matrix origin (the host has already enforced ACLs,
    /// R30). `access` is what the host knows of the room, `None` if it does not know the room.
    /// Checks run in the order of the [type docs](Self). On success a
    /// [`InboundOutput::Persist`] is queued; answer the `PUT` only after storing it, and take
    /// the state snapshot after this call (R37).
    pub fn handle_peek(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room: &RoomId,
        peek_id: &str,
        ver: &[RoomVersionId],
        access: Option<&RoomAccess>,
    ) -> Result<InboundGrant, InboundPeekError> {
        crate::log::span!("inbound_peek", %origin, %room, peek_id);
        let result = self.peek_inner(now, origin, room, peek_id, ver, access);
        self.count_refusal(result)
    }

    fn peek_inner(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room: &RoomId,
        peek_id: &str,
        ver: &[RoomVersionId],
        access: Option<&RoomAccess>,
    ) -> Result<InboundGrant, InboundPeekError> {
        // Grants run from the host's own `now` (never more than one interval past it).
        let host_now = now;
        let now = self.advance(now);
        if !self.config.peek_id_policy.accepts(peek_id) {
            return Err(InboundPeekError::InvalidPeekId);
        }
        let access = access.ok_or(InboundPeekError::UnknownRoom)?;
        if !access.is_peekable() {
            return Err(InboundPeekError::NotPeekable);
        }
        let supported = if ver.is_empty() {
            access.room_version == RoomVersionId::V1
        } else {
            ver.contains(&access.room_version)
        };
        if !supported {
            return Err(InboundPeekError::IncompatibleRoomVersion {
                room_version: access.room_version.clone(),
            });
        }
        let hash = self.peeks.hash(origin.as_str(), room.as_str(), peek_id);
        if let Some(slot) = self.find_hashed(hash, origin, room, peek_id) {
            self.stats.refreshed += 1;
            return Ok(self.refresh(host_now, slot));
        }
        let (server, room_index) = (self.servers.find(origin), self.rooms.find(room));
        self.check_caps(now, server, room_index)?;
        let server = server.unwrap_or_else(|| self.servers.insert_new(origin));
        let room = room_index.unwrap_or_else(|| self.rooms.insert_new(room));
        let slot = self.insert_peek(hash, server, room, peek_id, host_now);
        self.stats.granted += 1;
        let expires_at = self.deadline_from(host_now);
        self.timers.schedule(slot, expires_at);
        self.persist_upsert(slot, expires_at);
        Ok(InboundGrant {
            renewal_interval: self.config.renewal_interval,
            expires_at,
            refreshed: false,
        })
    }

    /// A remote server's `POST /peek/{roomId}/{peekId}/renew` (R41): the deadline moves to
    /// `now + renewal_interval + grace`. An unknown (or already ended) key is
    /// [`InboundPeekError::UnknownPeek`] (404) and never creates a peek.
    pub fn handle_renew(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) -> Result<InboundGrant, InboundPeekError> {
        crate::log::span!("inbound_renew", %origin, %room, peek_id);
        let result = self.renew_inner(now, origin, room, peek_id);
        self.count_refusal(result)
    }

    /// Counts a refused request in the stats (and logs it); passes `result` through.
    fn count_refusal<T>(
        &mut self,
        result: Result<T, InboundPeekError>,
    ) -> Result<T, InboundPeekError> {
        if let Err(e) = &result {
            self.stats.refused(e);
            crate::log::debug!(error = %e, "inbound request refused");
        }
        result
    }

    fn renew_inner(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) -> Result<InboundGrant, InboundPeekError> {
        let host_now = now;
        self.advance(now);
        let slot = self.find(origin, room, peek_id).ok_or(InboundPeekError::UnknownPeek)?;
        self.stats.renewed += 1;
        Ok(self.refresh(host_now, slot))
    }

    /// A remote server's `DELETE /peek/{roomId}/{peekId}` (R42), or the host's roll-back when
    /// building the snapshot failed (R37). The server leaves
    /// [`destinations`](Self::destinations) at once if this was its last peek on the room.
    /// Queues a `Persist` but no `Expired` (the server asked). Unknown key →
    /// [`InboundPeekError::UnknownPeek`] (404).
    pub fn handle_unpeek(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) -> Result<(), InboundPeekError> {
        crate::log::span!("inbound_unpeek", %origin, %room, peek_id);
        let result = self.unpeek_inner(now, origin, room, peek_id);
        self.count_refusal(result)
    }

    fn unpeek_inner(
        &mut self,
        now: Timestamp,
        origin: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) -> Result<(), InboundPeekError> {
        self.advance(now);
        let slot = self.find(origin, room, peek_id).ok_or(InboundPeekError::UnknownPeek)?;
        self.end(slot, None);
        Ok(())
    }

    /// The room's history visibility or encryption changed (R40). When `access` is no longer
    /// peekable, every peek on the room ends with [`InboundEndReason::AccessLost`]; otherwise
    /// nothing happens.
    pub fn handle_access_changed(&mut self, now: Timestamp, room: &RoomId, access: &RoomAccess) {
        self.advance(now);
        if access.is_peekable() {
            return;
        }
        let Some(r) = self.rooms.find(room) else { return };
        let servers = self.rooms.get(r).extra.clone();
        for pair in servers {
            for slot in self.peeks.pair_slots(pair.head) {
                self.end(slot, Some(InboundEndReason::AccessLost));
            }
        }
    }

    /// The room's `m.room.server_acl` now denies `server` (R45): its peeks on this room end with
    /// [`InboundEndReason::ServerDenied`]. Other servers' peeks are untouched.
    pub fn handle_server_denied(&mut self, now: Timestamp, room: &RoomId, server: &ServerName) {
        self.advance(now);
        let (Some(r), Some(s)) = (self.rooms.find(room), self.servers.find(server)) else {
            return;
        };
        let head = self.rooms.get(r).extra.iter().find(|e| e.server == s).map(|e| e.head);
        for slot in self.peeks.pair_slots(head.unwrap_or(index::NIL)) {
            self.end(slot, Some(InboundEndReason::ServerDenied));
        }
    }

    /// Expires every peek whose deadline is at or before `now` (R43), each exactly once, with
    /// [`InboundEndReason::Lapsed`]. A no-op when nothing is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.advance(now);
    }

    /// The earliest deadline: call [`handle_timeout`](Self::handle_timeout) then. There is one
    /// kind only, a live peek's expiry (its lease plus the configured grace, R43). `None` when
    /// there are no peeks. Changes only when a `handle_*` or `restore` runs.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// The next queued output, oldest first. Grows only when a `handle_*` runs; drain it after
    /// each call.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<InboundOutput> {
        let output = self.out.pop_front();
        crate::log::output!("inbound", output);
        output
    }

    /// What the machine did (counters) and holds (gauges). O(1); cheap enough for every
    /// metrics scrape. Changes after every `handle_*`.
    pub fn stats(&self) -> InboundStats {
        let mut stats = self.stats;
        stats.live_peeks = self.peeks.len() as u64;
        stats.rooms = self.rooms.len() as u64;
        stats.servers = self.servers.len() as u64;
        stats
    }

    /// Every server with at least one live peek on `room`, each once (R39), in no particular
    /// order; O(result). Union it with the joined servers when relaying any event of the room.
    /// Changes only when a `handle_*` or `restore` runs.
    pub fn destinations<'a>(
        &'a self,
        room: &RoomId,
    ) -> impl Iterator<Item = &'a ServerName> + use<'a> {
        let list: &'a [RoomServer] = match self.rooms.find(room) {
            Some(r) => &self.rooms.get(r).extra,
            None => &[],
        };
        list.iter().map(move |e| &*self.servers.get(e.server).name)
    }

    /// Whether `(origin, room, peek_id)` is live.
    pub fn is_peeking(&self, origin: &ServerName, room: &RoomId, peek_id: &str) -> bool {
        self.find(origin, room, peek_id).is_some()
    }

    /// The live peek `(origin, room, peek_id)`, if any.
    pub fn peek(
        &self,
        origin: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) -> Option<InboundPeekInfo> {
        let slot = self.find(origin, room, peek_id)?;
        Some(InboundPeekInfo {
            renewed_at: self.peeks.slot(slot).renewed_at,
            expires_at: self.expires_at(slot),
        })
    }

    /// Number of live peeks.
    pub fn len(&self) -> usize {
        self.peeks.len()
    }

    /// Whether there are no live peeks.
    pub fn is_empty(&self) -> bool {
        self.peeks.len() == 0
    }

    /// Number of rooms with at least one live peek.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Every live peek as a record (what the store should hold), in no particular order.
    /// O(number of slots); meant for snapshots and checks, not for hot paths.
    pub fn records(&self) -> impl Iterator<Item = InboundRecord> + '_ {
        self.peeks.iter().map(|(slot, _)| self.record(slot))
    }

    // ----- internals -----

    /// Passes `now` through the clock (a correction heals the machine first) and expires what
    /// is due.
    fn advance(&mut self, now: Timestamp) -> Timestamp {
        let now = match self.clock.advance(now) {
            Tick::Normal(now) => now,
            Tick::Corrected(now) => {
                self.heal(now);
                now
            }
        };
        while let Some((slot, _)) = self.timers.pop_due(now) {
            self.end_untimed(slot, Some(InboundEndReason::Lapsed));
        }
        now
    }

    /// One SipHash of the three strings, one probe, then the key compared in full.
    fn find(&self, origin: &ServerName, room: &RoomId, peek_id: &str) -> Option<u32> {
        let hash = self.peeks.hash(origin.as_str(), room.as_str(), peek_id);
        self.find_hashed(hash, origin, room, peek_id)
    }

    fn find_hashed(
        &self,
        hash: u64,
        origin: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) -> Option<u32> {
        self.peeks.find(hash, |slot| {
            *slot.id == *peek_id
                && *self.servers.get(slot.server).name == *origin
                && *self.rooms.get(slot.room).name == *room
        })
    }

    fn deadline_from(&self, renewed_at: Timestamp) -> Timestamp {
        renewed_at.saturating_add(self.config.renewal_interval).saturating_add(self.config.grace)
    }

    fn expires_at(&self, slot: u32) -> Timestamp {
        // Every live slot has a deadline: scheduled on insert, cancelled only on removal.
        self.timers.deadline(slot).unwrap_or(Timestamp::MAX)
    }

    fn refresh(&mut self, now: Timestamp, slot: u32) -> InboundGrant {
        self.peeks.slot_mut(slot).renewed_at = now;
        let expires_at = self.deadline_from(now);
        self.timers.schedule(slot, expires_at);
        self.persist_upsert(slot, expires_at);
        InboundGrant { renewal_interval: self.config.renewal_interval, expires_at, refreshed: true }
    }

    /// `server` / `room_index`: the interned origin and room, when they already are.
    fn check_caps(
        &self,
        now: Timestamp,
        server: Option<u32>,
        room_index: Option<u32>,
    ) -> Result<(), InboundPeekError> {
        let lapse = self.config.renewal_interval.saturating_add(self.config.grace);
        let hint = |until: Option<Timestamp>| {
            let wait = until.map_or(lapse, |at| at.saturating_duration_since(now));
            InboundPeekError::LimitExceeded {
                retry_after: wait.clamp(MIN_RETRY_AFTER, lapse.max(MIN_RETRY_AFTER)),
            }
        };
        let total_cap = self.config.max_peeks_total.min(u32::MAX as usize - 1);
        if self.peeks.len() >= total_cap {
            // A slot frees when the earliest peek lapses.
            return Err(hint(self.timers.next()));
        }
        let server_live = server.map_or(0, |s| self.servers.get(s).live);
        if server_live as usize >= self.config.max_peeks_per_server {
            // Only this server's own peeks free its quota: by deleting unused ones, or within
            // one lapse time for those it stops renewing.
            return Err(hint(None));
        }
        let room_live = room_index.map_or(0, |r| self.rooms.get(r).live);
        if room_live as usize >= self.config.max_peeks_per_room {
            // The room's earliest deadline (a scan bounded by the per-room cap).
            let earliest = room_index.and_then(|r| {
                self.rooms
                    .get(r)
                    .extra
                    .iter()
                    .flat_map(|e| self.peeks.pair_slots(e.head))
                    .map(|slot| self.expires_at(slot))
                    .min()
            });
            return Err(hint(earliest));
        }
        Ok(())
    }

    fn insert_peek(
        &mut self,
        hash: u64,
        server: u32,
        room: u32,
        peek_id: &str,
        renewed_at: Timestamp,
    ) -> u32 {
        self.servers.get_mut(server).live += 1;
        let entry = self.rooms.get_mut(room);
        entry.live += 1;
        self.peeks.insert(hash, server, room, peek_id, renewed_at, &mut entry.extra)
    }

    /// Ends a live peek: cancels its deadline, then see [`Self::end_untimed`].
    fn end(&mut self, slot: u32, reason: Option<InboundEndReason>) {
        self.timers.cancel(slot);
        self.end_untimed(slot, reason);
    }

    /// Removes a peek whose deadline is already gone; queues `Persist(Remove)` and, with a
    /// reason, `Expired`.
    fn end_untimed(&mut self, slot: u32, reason: Option<InboundEndReason>) {
        self.stats.ended(reason);
        let room = self.peeks.slot(slot).room;
        let removed = self.peeks.remove(slot, &mut self.rooms.get_mut(room).extra);
        let server = self.servers.get(removed.server).name.clone();
        let room_id = self.rooms.get(room).name.clone();
        let peek_id = removed.id;
        self.servers.get_mut(removed.server).live -= 1;
        self.servers.release_if_unused(removed.server);
        self.rooms.get_mut(room).live -= 1;
        self.rooms.release_if_unused(room);
        let key = InboundKey {
            server: server.clone(),
            room_id: room_id.clone(),
            peek_id: peek_id.clone(),
        };
        self.out.push_back(InboundOutput::Persist(InboundChange::Remove(key)));
        if let Some(reason) = reason {
            self.out.push_back(InboundOutput::Expired { server, room_id, peek_id, reason });
        }
    }

    fn record(&self, slot: u32) -> InboundRecord {
        let s = self.peeks.slot(slot);
        InboundRecord {
            server: self.servers.get(s.server).name.clone(),
            room_id: self.rooms.get(s.room).name.clone(),
            peek_id: s.id.clone(),
            renewed_at: s.renewed_at,
            expires_at: self.expires_at(slot),
        }
    }

    /// The host's clock was corrected back to `now` (see `CLOCK_STEP_LIMIT`): no peek was
    /// renewed after `now`, and none lives beyond `now + renewal_interval + grace`. Changed
    /// peeks are persisted. O(peeks); only on a correction (and on restore).
    fn heal(&mut self, now: Timestamp) {
        let max_expiry = self.deadline_from(now);
        let changed: Vec<u32> = self
            .peeks
            .iter()
            .filter(|(slot, s)| s.renewed_at > now || self.expires_at(*slot) > max_expiry)
            .map(|(slot, _)| slot)
            .collect();
        for slot in changed {
            let s = self.peeks.slot_mut(slot);
            s.renewed_at = s.renewed_at.min(now);
            let expires_at = self.expires_at(slot).min(max_expiry);
            self.timers.schedule(slot, expires_at);
            self.persist_upsert(slot, expires_at);
        }
    }

    fn persist_upsert(&mut self, slot: u32, expires_at: Timestamp) {
        let mut record = self.record(slot);
        record.expires_at = expires_at;
        self.out.push_back(InboundOutput::Persist(InboundChange::Upsert(record)));
    }
}

#[cfg(test)]
mod tests;
