//! The per-room reconciler of [`OutboundPeeks`]: the room facts, `step` (which decides the one
//! next action of a room from its facts), and how each answer changes the facts.
//!
//! Every `handle_*` only updates facts and then calls `step`, which is idempotent: it sends at
//! most one request (never while one is in flight), schedules the room's one deadline, or
//! forgets the room. Keeping all decisions in `step` is what makes restore and timers simple.

use std::time::Duration;

use ruma_common::{OwnedRoomId, OwnedServerName, ServerName};

use super::config::encode_peek_id;
use super::{
    COUNTER_BLOCK, OutboundChange, OutboundFailure, OutboundKey, OutboundLostReason,
    OutboundOutcome, OutboundOutput, OutboundPeekError, OutboundPeekPhase, OutboundPeekRecord,
    OutboundPeeks, OutboundRecord, OutboundRenewStyle, OutboundRequest, OutboundRequestKind,
    OutboundState,
};
use crate::access::RoomAccess;
use crate::ids::RequestId;
use crate::time::Timestamp;

/// What a room's in-flight request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pending {
    Open,
    Renew,
    Delete,
}

/// A granted peek's deadlines.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Live {
    renewed_at: Timestamp,
    interval: Duration,
    renew_at: Timestamp,
    expires_at: Timestamp,
}

/// The remote peek a room holds or may hold.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Peek {
    pub(super) server: OwnedServerName,
    pub(super) peek_id: String,
    /// `None`: a `PUT` was sent and not (yet) answered with success.
    live: Option<Live>,
    /// A `DELETE` is owed; finished even if demand returns.
    deleting: bool,
}

impl Peek {
    pub(super) fn from_record(
        server: OwnedServerName,
        peek_id: String,
        phase: &OutboundPeekPhase,
    ) -> Self {
        let (live, deleting) = match phase {
            OutboundPeekPhase::Opening => (None, false),
            OutboundPeekPhase::Live { renewed_at, interval, renew_at, expires_at } => (
                Some(Live {
                    renewed_at: *renewed_at,
                    interval: *interval,
                    renew_at: *renew_at,
                    expires_at: *expires_at,
                }),
                false,
            ),
            OutboundPeekPhase::Deleting => (None, true),
        };
        Peek { server, peek_id, live, deleting }
    }
}

/// Everything known about one room.
#[derive(Debug, Clone)]
pub(super) struct Room {
    pub(super) id: OwnedRoomId,
    pub(super) demanded: bool,
    /// While not demanded: when the remote peek is deleted. `None` while not demanded means
    /// "delete at once".
    pub(super) linger_until: Option<Timestamp>,
    pub(super) candidates: Vec<OwnedServerName>,
    cursor: usize,
    /// Failed attempts (network, 429) since the last success: the backoff exponent.
    attempts: u32,
    delete_attempts: u32,
    /// The most specific failure seen since the last success.
    worst: Option<OutboundFailure>,
    pub(super) was_established: bool,
    /// `Lost` was reported and `Established` has not followed yet.
    pub(super) lost: bool,
    pub(super) access: Option<RoomAccess>,
    pub(super) peek: Option<Peek>,
    request: Option<(RequestId, Pending)>,
    /// Not before this: the next attempt (backoff), renewal retry, or delete retry.
    wait: Option<Timestamp>,
    /// A peek record for this room is in the store.
    pub(super) persisted: bool,
}

impl Room {
    pub(super) fn new(id: OwnedRoomId) -> Self {
        Room {
            id,
            demanded: false,
            linger_until: None,
            candidates: Vec::new(),
            cursor: 0,
            attempts: 0,
            delete_attempts: 0,
            worst: None,
            was_established: false,
            lost: false,
            access: None,
            peek: None,
            request: None,
            wait: None,
            persisted: false,
        }
    }

    /// A granted peek that is not being deleted.
    pub(super) fn is_live(&self) -> bool {
        self.peek.as_ref().is_some_and(|p| p.live.is_some() && !p.deleting)
    }

    /// Forget the demand and delete the peek at once, without linger.
    pub(super) fn abandon(&mut self) {
        self.demanded = false;
        self.linger_until = None;
        self.mark_deleting();
    }

    fn mark_deleting(&mut self) {
        if let Some(peek) = &mut self.peek
            && !peek.deleting
        {
            peek.deleting = true;
            self.wait = None;
            self.delete_attempts = 0;
        }
    }

    fn note_failure(&mut self, failure: &OutboundFailure) {
        fn rank(f: &OutboundFailure) -> u8 {
            match f {
                OutboundFailure::Forbidden => 3,
                OutboundFailure::NotFound => 2,
                OutboundFailure::IncompatibleRoomVersion => 1,
                _ => 0,
            }
        }
        if self.worst.as_ref().is_none_or(|w| rank(failure) >= rank(w)) {
            self.worst = Some(failure.clone());
        }
    }

    /// Drops `server` from the candidates; the cursor then names the one after it.
    fn drop_candidate(&mut self, server: &ServerName) {
        if let Some(pos) = self.candidates.iter().position(|c| c == server) {
            self.candidates.remove(pos);
            self.cursor = pos;
        }
    }

    /// Moves the cursor past `server`.
    fn rotate_past(&mut self, server: &ServerName) {
        if let Some(pos) = self.candidates.iter().position(|c| c == server) {
            self.cursor = pos + 1;
        }
    }

    fn record(&self) -> Option<OutboundPeekRecord> {
        let peek = self.peek.as_ref()?;
        let phase = match (&peek.live, peek.deleting) {
            (_, true) => OutboundPeekPhase::Deleting,
            (None, false) => OutboundPeekPhase::Opening,
            (Some(l), false) => OutboundPeekPhase::Live {
                renewed_at: l.renewed_at,
                interval: l.interval,
                renew_at: l.renew_at,
                expires_at: l.expires_at,
            },
        };
        Some(OutboundPeekRecord {
            room_id: self.id.clone(),
            server: peek.server.clone(),
            peek_id: peek.peek_id.clone(),
            phase,
            access: self.access.clone(),
        })
    }
}

impl OutboundPeeks {
    pub(super) fn state_of(&self, r: &Room) -> OutboundState {
        match (r.request, &r.peek) {
            (Some((_, Pending::Open)), _) => OutboundState::Connecting,
            (Some((_, Pending::Renew)), _) => OutboundState::Renewing,
            (Some((_, Pending::Delete)), _) => OutboundState::Deleting,
            (None, Some(p)) if p.deleting => OutboundState::Deleting,
            (None, Some(p)) if p.live.is_none() => {
                if r.demanded {
                    OutboundState::Connecting
                } else {
                    OutboundState::Lingering
                }
            }
            (None, Some(_)) if r.wait.is_some() => OutboundState::Renewing,
            (None, Some(_)) if r.demanded => OutboundState::Established,
            (None, Some(_)) => OutboundState::Lingering,
            (None, None) if r.wait.is_some() => OutboundState::Backoff,
            (None, None) => OutboundState::Connecting,
        }
    }

    /// Decides and takes the room's next action at `now`; see the module docs.
    pub(super) fn step(&mut self, slot: u32, now: Timestamp) {
        self.timers.cancel(&slot);
        let joined = self.joined.contains(&self.room(slot).id);
        let r = self.room_mut(slot);
        if r.request.is_some() {
            return; // wait for the answer
        }
        if joined {
            r.abandon();
        }
        if !r.demanded {
            match r.linger_until {
                Some(until) if now < until => {}
                _ => {
                    r.linger_until = None;
                    r.mark_deleting();
                }
            }
        }
        let linger_until = r.linger_until;
        let peek_facts = r
            .peek
            .as_ref()
            .map(|p| (p.deleting, p.live.as_ref().map(|l| (l.renew_at, l.expires_at))));
        match peek_facts {
            None => {}
            Some((true, _)) => {
                match r.wait {
                    Some(w) if now < w => self.schedule(slot, w),
                    _ => {
                        r.wait = None;
                        self.send(slot, Pending::Delete);
                    }
                }
                return;
            }
            Some((false, None)) if r.demanded => return self.send(slot, Pending::Open),
            // Not demanded: lingering, so `linger_until` is set (else it is deleting).
            Some((false, None)) => return self.schedule_opt(slot, linger_until),
            Some((false, Some((renew_at, expires_at)))) => {
                let linger_at = linger_until.unwrap_or(Timestamp::MAX);
                match r.wait {
                    Some(_) if now >= expires_at => {
                        // The renewal kept failing: lapsed on our side. The resident may still
                        // hold it (its grace, R43, or a renewal that timed out after reaching
                        // it): `DELETE` it before anything new is opened (R55, R58).
                        let report = r.demanded && !r.lost;
                        r.lost |= report;
                        r.mark_deleting();
                        let room_id = r.id.clone();
                        if report {
                            let reason = OutboundLostReason::Unreachable;
                            self.outputs.push_back(OutboundOutput::Lost { room_id, reason });
                        }
                        return self.send(slot, Pending::Delete);
                    }
                    Some(w) if now < w => {
                        return self.schedule(slot, w.min(expires_at).min(linger_at));
                    }
                    Some(_) => {
                        r.wait = None;
                        return self.send(slot, Pending::Renew);
                    }
                    None if now >= renew_at => return self.send(slot, Pending::Renew),
                    None => return self.schedule(slot, renew_at.min(linger_at)),
                }
            }
        }
        // No remote peek.
        let r = self.room_mut(slot);
        if !r.demanded {
            return self.remove_room(slot);
        }
        if r.candidates.is_empty() {
            let error =
                r.worst.clone().map_or(OutboundPeekError::NoCandidates, OutboundPeekError::Remote);
            let room_id = r.id.clone();
            self.unavailable(room_id, error);
            return self.remove_room(slot);
        }
        if let Some(w) = r.wait
            && now < w
        {
            if r.persisted {
                r.persisted = false;
                let key = OutboundKey::Room(r.id.clone());
                self.persist(OutboundChange::Remove(key));
            }
            return self.schedule(slot, w);
        }
        r.wait = None;
        r.cursor %= r.candidates.len();
        let server = r.candidates[r.cursor].clone();
        let peek_id = self.alloc_peek_id();
        let r = self.room_mut(slot);
        r.peek = Some(Peek { server, peek_id, live: None, deleting: false });
        self.send(slot, Pending::Open);
    }

    fn schedule(&mut self, slot: u32, at: Timestamp) {
        debug_assert!(at > self.clock.now(), "step left a due deadline");
        self.timers.schedule(slot, at);
    }

    fn schedule_opt(&mut self, slot: u32, at: Option<Timestamp>) {
        if let Some(at) = at {
            self.schedule(slot, at);
        }
    }

    pub(super) fn remove_room(&mut self, slot: u32) {
        self.timers.cancel(&slot);
        let Some(room) = self.rooms.remove(slot) else { return };
        if let Some((id, _)) = room.request {
            self.requests.remove(&id);
        }
        self.index.remove(&room.id);
        if room.persisted {
            self.persist(OutboundChange::Remove(OutboundKey::Room(room.id)));
        }
    }

    fn persist_counters(&mut self) {
        let record = OutboundRecord::Counters {
            peek_id: self.peek_id_reserved,
            request: self.request_reserved,
        };
        self.persist(OutboundChange::Upsert(record));
    }

    fn alloc_peek_id(&mut self) -> String {
        if self.next_peek_id >= self.peek_id_reserved {
            self.peek_id_reserved = self.next_peek_id.saturating_add(COUNTER_BLOCK);
            self.persist_counters();
        }
        let id = encode_peek_id(self.next_peek_id);
        self.next_peek_id += 1;
        id
    }

    fn alloc_request_id(&mut self) -> RequestId {
        if self.next_request >= self.request_reserved {
            self.request_reserved = self.next_request.saturating_add(COUNTER_BLOCK);
            self.persist_counters();
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    /// Persists the room's record, then sends `pending` for its peek.
    fn send(&mut self, slot: u32, pending: Pending) {
        let id = self.alloc_request_id();
        let ver = self.config.supported_versions.clone();
        let style = self.config.renew_style;
        let r = self.room_mut(slot);
        // Cannot fail: `step` only sends for a room holding a peek.
        let record = r.record().expect("send needs a peek");
        r.persisted = true;
        r.request = Some((id, pending));
        let kind = match (pending, style) {
            (Pending::Open, _) | (Pending::Renew, OutboundRenewStyle::RePut) => {
                OutboundRequestKind::Peek { ver }
            }
            (Pending::Renew, OutboundRenewStyle::RenewEndpoint) => OutboundRequestKind::Renew,
            (Pending::Delete, _) => OutboundRequestKind::Unpeek,
        };
        let request = OutboundRequest {
            id,
            server: record.server.clone(),
            room_id: record.room_id.clone(),
            peek_id: record.peek_id.clone(),
            kind,
        };
        self.requests.insert(id, slot);
        self.persist(OutboundChange::Upsert(OutboundRecord::Peek(record)));
        self.outputs.push_back(OutboundOutput::Send(request));
    }

    fn delay(&self, r: &Room, attempt: u32, failure: &OutboundFailure) -> Duration {
        match failure {
            OutboundFailure::RateLimited { retry_after } => {
                self.config.rate_limited_wait(&r.id, attempt, *retry_after)
            }
            _ => self.config.backoff(&r.id, attempt),
        }
    }

    /// Applies the answer to the room's in-flight request `id` (stale ids were filtered by the
    /// caller's map lookup; a room whose request differs ignores it).
    pub(super) fn on_response(
        &mut self,
        slot: u32,
        id: RequestId,
        outcome: OutboundOutcome,
        now: Timestamp,
    ) {
        let Some(r) = self.rooms.get(slot) else { return };
        let pending = match r.request {
            Some((current, pending)) if current == id => pending,
            _ => return,
        };
        self.room_mut(slot).request = None;
        match pending {
            Pending::Open => self.on_open(slot, outcome, now),
            Pending::Renew => self.on_renew(slot, outcome, now),
            Pending::Delete => self.on_delete(slot, outcome, now),
        }
    }

    fn new_live(&self, now: Timestamp, interval: Duration) -> Live {
        let renew_at = now.saturating_add(self.config.renew_after(interval));
        let expires_at = now.saturating_add(interval).max(renew_at);
        Live { renewed_at: now, interval, renew_at, expires_at }
    }

    fn persist_room(&mut self, slot: u32) {
        let r = self.room_mut(slot);
        if let Some(record) = r.record() {
            r.persisted = true;
            self.persist(OutboundChange::Upsert(OutboundRecord::Peek(record)));
        }
    }

    fn on_open(&mut self, slot: u32, outcome: OutboundOutcome, now: Timestamp) {
        let (interval, access) = match outcome {
            OutboundOutcome::Established { renewal_interval, access } => (renewal_interval, access),
            // A PUT answered like a renewal or a delete: the resident holds something odd.
            OutboundOutcome::Renewed { .. } | OutboundOutcome::Deleted => {
                return self.refuse(slot, OutboundFailure::InvalidResponse, true);
            }
            OutboundOutcome::Failed(f @ OutboundFailure::InvalidResponse) => {
                return self.refuse(slot, f, true);
            }
            OutboundOutcome::Failed(
                f @ (OutboundFailure::Forbidden
                | OutboundFailure::NotFound
                | OutboundFailure::IncompatibleRoomVersion),
            ) => return self.refuse(slot, f, false),
            OutboundOutcome::Failed(f) => return self.transient_open(slot, f, now),
        };
        let live = self.new_live(now, interval);
        let supported = self.config.supported_versions.contains(&access.room_version);
        let r = self.room_mut(slot);
        let Some(peek) = &mut r.peek else { return };
        peek.live = Some(live);
        let deleting = peek.deleting;
        let peekable = access.is_peekable();
        r.access = Some(access.clone());
        if deleting {
            return;
        }
        if !peekable {
            // The room turned out not to be peekable (R32): delete it; no other candidate
            // will serve it either.
            if r.demanded {
                let room_id = r.id.clone();
                self.unavailable(room_id, OutboundPeekError::Remote(OutboundFailure::Forbidden));
            }
            return self.room_mut(slot).abandon();
        }
        if !supported {
            return self.refuse(slot, OutboundFailure::IncompatibleRoomVersion, true);
        }
        r.attempts = 0;
        r.worst = None;
        r.wait = None;
        r.was_established = true;
        r.lost = false;
        let room_id = r.id.clone();
        let server = peek.server.clone();
        self.persist_room(slot);
        self.outputs.push_back(OutboundOutput::Established { room_id, server, access });
    }

    /// The current candidate refused (R60): drop it; `DELETE` first when the peek was granted
    /// (R49, R55); `Unavailable` when no candidate is left.
    fn refuse(&mut self, slot: u32, failure: OutboundFailure, granted: bool) {
        let r = self.room_mut(slot);
        r.note_failure(&failure);
        let Some(peek) = &mut r.peek else { return };
        let server = peek.server.clone();
        if granted {
            peek.deleting = true;
            r.wait = None;
            r.delete_attempts = 0;
        } else {
            r.peek = None;
        }
        r.drop_candidate(&server);
        if r.demanded && r.candidates.is_empty() {
            let error = OutboundPeekError::Remote(r.worst.clone().unwrap_or(failure));
            let room_id = r.id.clone();
            r.abandon();
            self.unavailable(room_id, error);
        }
    }

    /// A network failure or 429 on a `PUT`: back off and rotate (R60); give up after
    /// `max_attempts` unless the peek was established before.
    fn transient_open(&mut self, slot: u32, failure: OutboundFailure, now: Timestamp) {
        let max_attempts = self.config.max_attempts;
        let r = self.room_mut(slot);
        let Some(peek) = r.peek.take() else { return };
        if peek.deleting {
            return; // abandoned meanwhile: the PUT failed, so nothing to delete
        }
        r.note_failure(&failure);
        r.attempts = r.attempts.saturating_add(1);
        r.rotate_past(&peek.server);
        if r.demanded && !r.was_established && r.attempts >= max_attempts {
            let error = OutboundPeekError::Remote(r.worst.clone().unwrap_or(failure));
            let room_id = r.id.clone();
            r.abandon();
            return self.unavailable(room_id, error);
        }
        let attempt = r.attempts;
        let r = self.room(slot);
        let wait = now.saturating_add(self.delay(r, attempt, &failure));
        self.room_mut(slot).wait = Some(wait);
    }

    fn on_renew(&mut self, slot: u32, outcome: OutboundOutcome, now: Timestamp) {
        let interval = match outcome {
            OutboundOutcome::Renewed { renewal_interval } => renewal_interval,
            // RePut renewals (and lenient peers) answer with the full PUT response.
            OutboundOutcome::Established { renewal_interval, access } => {
                self.room_mut(slot).access = Some(access);
                renewal_interval
            }
            OutboundOutcome::Failed(OutboundFailure::NotFound) => {
                // R54: the resident dropped it; re-open with a fresh id.
                return self.peek_dead(slot, OutboundLostReason::RemoteExpired, None);
            }
            OutboundOutcome::Failed(
                f @ (OutboundFailure::Forbidden | OutboundFailure::IncompatibleRoomVersion),
            ) => return self.peek_dead(slot, OutboundLostReason::Refused, Some(f)),
            OutboundOutcome::Deleted => {
                return self.transient_renew(slot, OutboundFailure::InvalidResponse, now);
            }
            OutboundOutcome::Failed(f) => return self.transient_renew(slot, f, now),
        };
        let live = self.new_live(now, interval);
        let r = self.room_mut(slot);
        let Some(peek) = &mut r.peek else { return };
        peek.live = Some(live);
        if peek.deleting {
            return;
        }
        r.attempts = 0;
        r.wait = None;
        self.persist_room(slot);
    }

    fn transient_renew(&mut self, slot: u32, failure: OutboundFailure, now: Timestamp) {
        let r = self.room_mut(slot);
        if r.peek.as_ref().is_none_or(|p| p.deleting) {
            return;
        }
        r.attempts = r.attempts.saturating_add(1);
        let attempt = r.attempts;
        let r = self.room(slot);
        let wait = now.saturating_add(self.delay(r, attempt, &failure));
        self.room_mut(slot).wait = Some(wait);
    }

    /// The current peek is gone at the resident. `refused`: the resident will not serve us, so
    /// the candidate is dropped (and `Unavailable` follows when none is left).
    fn peek_dead(
        &mut self,
        slot: u32,
        reason: OutboundLostReason,
        refused: Option<OutboundFailure>,
    ) {
        let r = self.room_mut(slot);
        let Some(peek) = r.peek.take() else { return };
        r.wait = None;
        r.delete_attempts = 0;
        if peek.deleting {
            return; // a DELETE was owed; the peek is gone anyway
        }
        let room_id = r.id.clone();
        if r.demanded && !r.lost {
            r.lost = true;
            self.outputs.push_back(OutboundOutput::Lost { room_id: room_id.clone(), reason });
        }
        let r = self.room_mut(slot);
        if let Some(failure) = refused {
            r.note_failure(&failure);
            r.drop_candidate(&peek.server);
            if r.demanded && r.candidates.is_empty() {
                let error = OutboundPeekError::Remote(r.worst.clone().unwrap_or(failure));
                r.abandon();
                self.unavailable(room_id, error);
            }
        }
    }

    fn on_delete(&mut self, slot: u32, outcome: OutboundOutcome, now: Timestamp) {
        let max = self.config.max_delete_attempts;
        let r = self.room_mut(slot);
        match outcome {
            OutboundOutcome::Failed(
                f @ (OutboundFailure::Unreachable
                | OutboundFailure::Other(_)
                | OutboundFailure::RateLimited { .. }),
            ) => {
                r.delete_attempts = r.delete_attempts.saturating_add(1);
                if r.delete_attempts >= max {
                    // Dropped: the resident expires it after its interval (R43).
                    r.peek = None;
                    r.delete_attempts = 0;
                    r.wait = None;
                } else {
                    let attempt = r.delete_attempts;
                    let r = self.room(slot);
                    let wait = now.saturating_add(self.delay(r, attempt, &f));
                    self.room_mut(slot).wait = Some(wait);
                }
            }
            // Deleted, 404 (already gone, R55), or a refusal: nothing more we can do.
            _ => {
                r.peek = None;
                r.delete_attempts = 0;
                r.wait = None;
            }
        }
    }

    /// `expired_peeks` named (`server`, `peek_id`). Returns whether it named the current peek.
    pub(super) fn on_remote_expired(
        &mut self,
        slot: u32,
        server: &ServerName,
        peek_id: &str,
    ) -> bool {
        let reput = self.config.renew_style == OutboundRenewStyle::RePut;
        let r = self.room_mut(slot);
        let matches = r.peek.as_ref().is_some_and(|p| p.server == server && p.peek_id == peek_id);
        if !matches || matches!(r.request, Some((_, Pending::Open))) {
            return false;
        }
        if reput {
            // RePut renewals re-create the peek under the same id, so this entry may be older
            // than the peek the resident holds now, and a re-`PUT` in flight re-creates it if it
            // arrives after the expiry: `DELETE` it (404 = gone, R55) once the re-`PUT` in flight
            // (if any) is answered, rather than forget it, then re-open (R54, R58). A `DELETE`
            // already owed is kept as it is.
            if r.peek.as_ref().is_some_and(|p| p.deleting) {
                return false;
            }
            let report = r.is_live() && r.demanded && !r.lost;
            r.lost |= report;
            r.attempts = 0;
            r.mark_deleting();
            if report {
                let room_id = r.id.clone();
                let reason = OutboundLostReason::RemoteExpired;
                self.outputs.push_back(OutboundOutput::Lost { room_id, reason });
            }
            return true;
        }
        if let Some((id, _)) = r.request.take() {
            self.requests.remove(&id);
        }
        let r = self.room_mut(slot);
        let live = r.is_live();
        r.attempts = 0;
        if live {
            self.peek_dead(slot, OutboundLostReason::RemoteExpired, None);
        } else {
            let r = self.room_mut(slot);
            r.peek = None;
            r.wait = None;
            r.delete_attempts = 0;
        }
        true
    }
}
