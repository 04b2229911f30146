//! `step`: decides a room's next action from (phase, demand), and the helpers every decision
//! shares: opening at the best candidate, failing over, retiring a peek, sending under the
//! pacer, and persisting the record that justifies each send before it (a renewal's is the
//! stored lease it renews; a `DELETE`'s the `Retired` record written when its peek was
//! retired).
//!
//! Every `handle_*` only updates facts, then calls `step`. `step` is idempotent: it sends what is
//! due (never a second request for the current peek while one is in flight), deletes retired
//! peeks in the background, schedules the room's one deadline, or forgets the room.

use std::num::NonZeroU32;

use crate::shared::SharedServerName;

use super::config::encode_peek_id;
use super::room::{Demand, Failing, History, Lease, PeekRef, Phase, Retire, Retired, Room};
use super::servers::Server;
use super::{
    COUNTER_BLOCK, OutboundChange, OutboundFailure, OutboundKey, OutboundLostReason,
    OutboundOutput, OutboundPeekError, OutboundPeeks, OutboundRecord, OutboundRenewStyle,
    OutboundRequest, OutboundRequestKind,
};
use crate::ids::{PeekId, RequestId};
use crate::time::Timestamp;

/// What `step_current` left to do.
enum Next {
    /// The phase changed: decide again.
    Again,
    /// Nothing until this deadline (or an answer).
    At(Timestamp),
    /// Nothing until an answer or an input.
    Wait,
}

/// Which request to send for a peek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    /// `probe`: sent early because an active room fell silent.
    Renew {
        probe: bool,
    },
    Delete,
}

fn earliest(a: Option<Timestamp>, b: Timestamp) -> Option<Timestamp> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl OutboundPeeks {
    /// Decides and takes the room's next actions at `now`; see the module docs.
    pub(super) fn step(&mut self, slot: u32, now: Timestamp) {
        let joined = self.joined.contains(&self.room(slot).id);
        let r = self.room_mut(slot);
        if joined {
            r.demand = Demand::Gone;
        }
        if let Demand::Lingering { until } = r.demand
            && now >= until
        {
            r.demand = Demand::Gone;
        }
        let mut next = None;
        // Each `Again` moves the phase towards `Idle` or a sent request, so this ends within a
        // few rounds; the bound is a guard, not a limit that is ever reached.
        for _ in 0..8 {
            match self.step_current(slot, now) {
                Next::Again => continue,
                Next::At(at) => next = earliest(next, at),
                Next::Wait => {}
            }
            break;
        }
        if let Some(at) = self.step_retired(slot, now) {
            next = earliest(next, at);
        }
        let r = self.room(slot);
        if r.phase == Phase::Idle && !r.is_demanded() && r.retired.is_empty() {
            return self.remove_room(slot);
        }
        // The room's one deadline is replaced, not cancelled first: an unchanged deadline
        // (a restated demand, an answer that changes nothing) keeps its place in the list.
        match next {
            Some(at) => {
                debug_assert!(at > now, "step left a due deadline");
                self.timers.schedule(slot, at);
            }
            None => {
                self.timers.cancel(slot);
            }
        }
    }

    fn step_current(&mut self, slot: u32, now: Timestamp) -> Next {
        let failover_after = self.config.failover_after;
        let r = self.room(slot);
        let demand = r.demand;
        match (&r.phase, demand) {
            (Phase::Idle, Demand::Demanded) => self.open_next(slot, now),
            (Phase::Idle, _) => Next::Wait,
            (Phase::Opening { request: Some(_), .. }, Demand::Gone) => {
                // The PUT's answer goes to the retired peek: deleted if it was granted.
                self.retire_current(slot, now);
                Next::Again
            }
            (Phase::Opening { request: Some(_), .. }, _) => Next::Wait,
            (Phase::Opening { request: None, .. }, Demand::Gone) => {
                self.retire_current(slot, now);
                Next::Again
            }
            (Phase::Opening { request: None, .. }, Demand::Lingering { until }) => Next::At(until),
            (Phase::Opening { request: None, .. }, Demand::Demanded) => {
                self.send_current(slot, now, Kind::Put)
            }
            (Phase::Renewing { .. } | Phase::Live { .. }, Demand::Gone) => {
                self.retire_current(slot, now);
                Next::Again
            }
            (Phase::Renewing { failing, peek, .. }, _) => {
                // The answer decides, unless the renewals have failed for long enough to move
                // to another candidate (the peek is retired with its renewal still in flight).
                let Some(f) = failing else { return Next::Wait };
                if demand != Demand::Demanded {
                    return Next::Wait;
                }
                let due = f.since.saturating_add(failover_after);
                let server = peek.server.clone();
                match self.failover_ready(slot, &server, now, due) {
                    Ok(()) => {
                        self.fail_over(slot, now);
                        Next::Again
                    }
                    Err(Some(at)) => Next::At(at),
                    Err(None) => Next::Wait,
                }
            }
            (Phase::Live { peek, lease, failing }, _) => {
                // The peek's names are not copied: a renewal reads them once, into its request.
                let (lease, failing) = (*lease, *failing);
                if failing.is_some() && now >= lease.expires_at {
                    // The renewals kept failing and no other candidate took over: lapsed on our
                    // side. The resident may still hold it (its grace, or a renewal that timed
                    // out after reaching it): delete it in the background and open afresh.
                    let server = peek.server.clone();
                    self.stats.lapses += 1;
                    crate::log::warning!(room = %self.room(slot).id, %server, "peek lapsed: renewals kept failing");
                    self.lose(slot, OutboundLostReason::Unreachable);
                    self.penalise(slot, &server, now, &OutboundFailure::Unreachable);
                    self.retire_current(slot, now);
                    return Next::Again;
                }
                // Lapsing only matters while renewals fail (a due renewal is sent first).
                let mut at = if failing.is_some() { lease.expires_at } else { Timestamp::MAX };
                if let Demand::Lingering { until } = demand {
                    at = at.min(until);
                }
                let due = match failing {
                    Some(f) => {
                        if demand == Demand::Demanded {
                            let failover = f.since.saturating_add(failover_after);
                            match self.failover_ready(slot, &peek.server, now, failover) {
                                Ok(()) => {
                                    self.fail_over(slot, now);
                                    return Next::Again;
                                }
                                Err(Some(t)) => at = at.min(t),
                                Err(None) => {}
                            }
                        }
                        f.retry_at
                    }
                    None => {
                        let probe = (demand == Demand::Demanded)
                            .then(|| self.silence_deadline(slot, &lease))
                            .flatten();
                        probe.map_or(lease.renew_at, |p| p.min(lease.renew_at))
                    }
                };
                if now >= due {
                    let probe = failing.is_none() && now < lease.renew_at;
                    return match self.send_current(slot, now, Kind::Renew { probe }) {
                        Next::At(t) => Next::At(t.min(at)),
                        other => other,
                    };
                }
                Next::At(due.min(at))
            }
        }
    }

    /// When an active, demanded room's silence calls for an early renewal (a probe).
    pub(super) fn silence_deadline(&self, slot: u32, lease: &Lease) -> Option<Timestamp> {
        let renew_after = || self.config.renew_after(lease.interval);
        self.room(slot).activity.silence_deadline(
            self.config.min_silence,
            lease.renewed_at,
            renew_after,
        )
    }

    /// Whether the failing current peek on `server` may fail over at `now`: `due` has passed
    /// and another candidate is ready. `Err(Some(at))`: check again then.
    fn failover_ready(
        &self,
        slot: u32,
        server: &Server,
        now: Timestamp,
        due: Timestamp,
    ) -> Result<(), Option<Timestamp>> {
        let others = self.room(slot).candidates.iter().filter(|c| !c.server.is(server));
        let ready = others.map(|c| c.retry_at).min();
        match ready {
            None => Err(None), // nowhere to go: keep renewing until the lease lapses
            Some(ready) if now >= due && now >= ready => Ok(()),
            Some(ready) => Err(Some(due.max(ready))),
        }
    }

    /// Moves a failing peek to another candidate at once: `Lost`, the old resident is
    /// penalised and its peek deleted in the background, and the next `step` opens elsewhere.
    fn fail_over(&mut self, slot: u32, now: Timestamp) {
        let Some(server) = self.room(slot).phase.peek().map(|p| p.server.clone()) else { return };
        self.stats.failovers += 1;
        crate::log::warning!(room = %self.room(slot).id, %server, "failing over to another candidate");
        self.lose(slot, OutboundLostReason::Unreachable);
        self.penalise(slot, &server, now, &OutboundFailure::Unreachable);
        self.retire_current(slot, now);
    }

    /// Opens a peek at the best candidate that is ready: one never tried or that failed least
    /// recently, in `via` order among equals. No candidate at all: `Unavailable`.
    fn open_next(&mut self, slot: u32, now: Timestamp) -> Next {
        let r = self.room(slot);
        if r.candidates.is_empty() {
            let error =
                r.worst.clone().map_or(OutboundPeekError::NoCandidates, OutboundPeekError::Remote);
            self.give_up(slot, error);
            return Next::Again;
        }
        let ready = r
            .candidates
            .iter()
            .enumerate()
            .filter(|(_, c)| c.retry_at <= now)
            .min_by_key(|(i, c)| (c.failures, *i))
            .map(|(i, _)| i);
        let Some(i) = ready else {
            let at = r.candidates.iter().map(|c| c.retry_at).min().unwrap_or(now);
            return Next::At(at);
        };
        let ready_at = r.pacer.ready_at(now, false);
        if ready_at > now {
            return Next::At(ready_at);
        }
        let server = r.candidates[i].server.clone();
        let peek_id = self.alloc_peek_id();
        let peek = PeekRef { server, peek_id };
        self.room_mut(slot).phase = Phase::Opening { peek, request: None };
        self.send_current(slot, now, Kind::Put)
    }

    /// Sends `kind` for the current peek (the phase is `Opening` or `Live`) under the pacer,
    /// persisting the room's record first (for a `PUT`; a renewal's record is the stored
    /// lease). `Wait` once sent (the phase names the request); `At` when the pacer holds it
    /// back.
    fn send_current(&mut self, slot: u32, now: Timestamp, kind: Kind) -> Next {
        let ready_at = self.room(slot).pacer.ready_at(now, false);
        if ready_at > now {
            return Next::At(ready_at);
        }
        let id = self.alloc_request_id();
        let r = self.room_mut(slot);
        // The phase names the request and its names go straight into it; in any other phase
        // nothing changes, so no phase ever names a request that was not sent.
        let names = |peek: &PeekRef| (peek.server.shared(), peek.peek_id.clone());
        let (phase, names) = match std::mem::replace(&mut r.phase, Phase::Idle) {
            Phase::Opening { peek, .. } => {
                let names = names(&peek);
                (Phase::Opening { peek, request: Some(id) }, names)
            }
            Phase::Live { peek, lease, failing } => {
                let (names, probe) = (names(&peek), matches!(kind, Kind::Renew { probe: true }));
                (Phase::Renewing { peek, lease, request: id, failing, probe }, names)
            }
            other @ (Phase::Idle | Phase::Renewing { .. }) => {
                debug_assert!(false, "send_current needs an opening or live peek");
                r.phase = other;
                return Next::Wait;
            }
        };
        r.phase = phase;
        r.pacer.spend(now);
        // A `PUT` needs its `Opening` record stored first. A renewal's record is the `Live` one
        // stored when the lease was granted (the record is persisted whenever its lease or the
        // room's access changes), and `Renewing` stores as that same record: writing it again
        // would only double the store writes of the hottest request.
        if matches!(kind, Kind::Renew { .. }) {
            debug_assert!(self.room(slot).persisted, "a renewed lease was stored when granted");
        } else {
            self.persist_current(slot);
        }
        self.send(slot, id, kind, names);
        Next::Wait
    }

    /// Retired peeks: sends every `DELETE` that is due (half the pacer's burst is kept for the
    /// current peek). Returns the earliest later deadline.
    fn step_retired(&mut self, slot: u32, now: Timestamp) -> Option<Timestamp> {
        let mut next = None;
        for i in 0..self.room(slot).retired.len() {
            let Retire::Due { at } = self.room(slot).retired[i].step else { continue };
            if at > now {
                next = earliest(next, at);
                continue;
            }
            let ready_at = self.room(slot).pacer.ready_at(now, true);
            if ready_at > now {
                next = earliest(next, ready_at);
                continue;
            }
            let id = self.alloc_request_id();
            let r = self.room_mut(slot);
            r.pacer.spend(now);
            let retired = &mut r.retired[i];
            retired.step = Retire::Deleting { request: id };
            let peek = retired.peek.clone();
            // Its `Retired` record was written when it was retired (`retire`), before this
            // `DELETE`, and stays until it is dropped: nothing to write again.
            self.send(slot, id, Kind::Delete, (peek.server.shared(), peek.peek_id));
        }
        next
    }

    /// Queues the request naming the peek at `names` (resident, peek id), the room's current
    /// peek or a retired one; the record that justifies it is stored already (see
    /// `send_current`; a retired peek's since `retire`).
    fn send(&mut self, slot: u32, id: RequestId, kind: Kind, names: (SharedServerName, PeekId)) {
        match kind {
            Kind::Put => self.stats.puts.sent += 1,
            Kind::Renew { probe } => {
                self.stats.renewals.sent += 1;
                self.stats.probes += u64::from(probe);
            }
            Kind::Delete => self.stats.deletes.sent += 1,
        }
        let kind = match (kind, self.config.renew_style) {
            (Kind::Put, _) | (Kind::Renew { .. }, OutboundRenewStyle::RePut) => {
                OutboundRequestKind::Peek { ver: self.versions.list() }
            }
            (Kind::Renew { .. }, OutboundRenewStyle::RenewEndpoint) => OutboundRequestKind::Renew,
            (Kind::Delete, _) => OutboundRequestKind::Unpeek,
        };
        let (server, peek_id) = names;
        let room_id = self.room(slot).id.clone();
        let request = OutboundRequest { id, server, room_id, peek_id, kind };
        self.requests.insert(id, slot);
        self.outputs.push_back(OutboundOutput::Send(request));
    }

    /// Makes the current peek a retired one, deleted in the background (R55), and the phase
    /// `Idle`. A request still in flight for it is awaited first. Beyond
    /// [`MAX_RETIRED`](Self::MAX_RETIRED), the oldest retired peek is dropped (its resident
    /// expires it after its interval, R43).
    pub(super) fn retire_current(&mut self, slot: u32, now: Timestamp) {
        let r = self.room_mut(slot);
        let step = match std::mem::replace(&mut r.phase, Phase::Idle) {
            Phase::Idle => return,
            Phase::Opening { peek, request: Some(request) } => {
                (peek, Retire::Awaiting { request, delete_always: false })
            }
            Phase::Opening { peek, request: None } | Phase::Live { peek, .. } => {
                (peek, Retire::Due { at: now })
            }
            Phase::Renewing { peek, request, .. } => {
                (peek, Retire::Awaiting { request, delete_always: true })
            }
        };
        self.retire(slot, step.0, step.1);
        self.persist_current(slot);
    }

    pub(super) fn retire(&mut self, slot: u32, peek: PeekRef, step: Retire) {
        // Each retired peek is listed once: its record is written here and removed when it is
        // dropped, so a twin's drop would leave the other's `DELETE`s without a record.
        debug_assert!(
            self.room(slot).retired.iter().all(|r| r.peek != peek),
            "a peek is retired once"
        );
        self.persist_retired(slot, &peek);
        let r = self.room_mut(slot);
        r.retired.push(Retired { peek, step, attempts: 0 });
        if r.retired.len() > Self::MAX_RETIRED {
            let oldest = r.retired.remove(0);
            self.stats.deletes_abandoned += 1;
            if let Some(id) = oldest.request() {
                self.requests.remove(&id);
            }
            self.unpersist_retired(slot, &oldest.peek);
        }
    }

    /// Drops retired peek `i` (deleted, gone, or given up) and its record.
    pub(super) fn drop_retired(&mut self, slot: u32, i: usize) {
        let gone = self.room_mut(slot).retired.remove(i);
        self.unpersist_retired(slot, &gone.peek);
    }

    /// Reports `Lost` once for a granted peek that dropped while demanded, and remembers when
    /// the gap began (for the next `Established`).
    pub(super) fn lose(&mut self, slot: u32, reason: OutboundLostReason) {
        let r = self.room_mut(slot);
        if matches!(r.history, History::Lost { .. }) {
            return;
        }
        r.history = History::Lost { since: r.last_good };
        if r.is_demanded() {
            let room_id = r.id.clone();
            self.deferred.push(OutboundOutput::Lost { room_id, reason });
        }
    }

    /// Backs `server` off after `failure` (its own count, so other candidates go first).
    pub(super) fn penalise(
        &mut self,
        slot: u32,
        server: &Server,
        now: Timestamp,
        failure: &OutboundFailure,
    ) {
        let Some(failures) = self.room_mut(slot).candidate_mut(server).map(|c| {
            c.failures = c.failures.saturating_add(1);
            c.failures
        }) else {
            return;
        };
        let wait = self.delay(self.room(slot), failures, failure);
        if let Some(c) = self.room_mut(slot).candidate_mut(server) {
            c.retry_at = now.saturating_add(wait);
        }
    }

    /// Every candidate refused, or a never-established room ran out of attempts: the room's
    /// local peeks end (`Unavailable`) and its demand is forgotten.
    pub(super) fn give_up(&mut self, slot: u32, error: OutboundPeekError) {
        let r = self.room_mut(slot);
        let was_demanded = r.is_demanded();
        r.demand = Demand::Gone;
        r.attempts = 0;
        r.worst = None;
        if was_demanded {
            let room_id = r.id.clone();
            self.deferred.push(OutboundOutput::Unavailable { room_id, error });
        }
    }

    /// The wait before retry `attempt` after `failure`: the resident's hint for a 429 (floored
    /// and capped), else the backoff.
    pub(super) fn delay(
        &self,
        r: &Room,
        attempt: u32,
        failure: &OutboundFailure,
    ) -> std::time::Duration {
        match failure {
            OutboundFailure::RateLimited { retry_after } => {
                self.config.rate_limited_wait(&r.id, attempt, *retry_after)
            }
            _ => self.config.backoff(&r.id, attempt),
        }
    }

    /// A renewal or probe failed on the network (or was rate limited, or answered oddly):
    /// retry it after a backoff, spread over the time left until `expires_at`
    /// (`OutboundConfig::renewal_retry`); `step` fails over after `failover_after`.
    pub(super) fn renewal_failed(
        &mut self,
        slot: u32,
        now: Timestamp,
        failing: Option<Failing>,
        failure: &OutboundFailure,
        expires_at: Timestamp,
    ) -> Failing {
        let failures = failing.map_or(NonZeroU32::MIN, |f| f.failures.saturating_add(1));
        let wait = self.delay(self.room(slot), failures.get(), failure);
        let left = expires_at.saturating_duration_since(now);
        let wait = self.config.renewal_retry(&self.room(slot).id, failures.get(), wait, left);
        Failing {
            since: failing.map_or(now, |f| f.since),
            failures,
            retry_at: now.saturating_add(wait),
        }
    }

    /// Writes the current peek's record (or removes it when there is none).
    pub(super) fn persist_current(&mut self, slot: u32) {
        let r = self.room_mut(slot);
        match r.record() {
            Some(record) => {
                r.persisted = true;
                let change = OutboundChange::Upsert(OutboundRecord::Peek(record));
                self.outputs.push_back(OutboundOutput::Persist(change));
            }
            None if r.persisted => {
                r.persisted = false;
                let change = OutboundChange::Remove(OutboundKey::Room(r.id.clone()));
                self.outputs.push_back(OutboundOutput::Persist(change));
            }
            None => {}
        }
    }

    fn persist_retired(&mut self, slot: u32, peek: &PeekRef) {
        let record = OutboundRecord::Retired {
            room_id: self.room(slot).id.clone(),
            server: peek.server.shared(),
            peek_id: peek.peek_id.clone(),
        };
        self.outputs.push_back(OutboundOutput::Persist(OutboundChange::Upsert(record)));
    }

    fn unpersist_retired(&mut self, slot: u32, peek: &PeekRef) {
        let key = OutboundKey::Retired {
            room_id: self.room(slot).id.clone(),
            server: peek.server.shared(),
            peek_id: peek.peek_id.clone(),
        };
        self.outputs.push_back(OutboundOutput::Persist(OutboundChange::Remove(key)));
    }

    pub(super) fn remove_room(&mut self, slot: u32) {
        self.timers.cancel(slot);
        let Some(room) = self.rooms.remove(slot) else { return };
        if let Some(id) = room.phase.request() {
            self.requests.remove(&id);
        }
        for retired in &room.retired {
            if let Some(id) = retired.request() {
                self.requests.remove(&id);
            }
        }
        self.index.remove(room.hash, slot);
        let now = self.clock.now();
        if room.pacer.holds_back(now) {
            if self.paced.len() >= 64 && self.paced.len().is_power_of_two() {
                self.paced.retain(|_, p| p.holds_back(now));
            }
            self.paced.insert(room.hash, room.pacer);
        }
        if room.persisted {
            let change = OutboundChange::Remove(OutboundKey::Room(room.id));
            self.outputs.push_back(OutboundOutput::Persist(change));
        }
    }

    fn persist_counters(&mut self) {
        let record = OutboundRecord::Counters {
            peek_id: self.peek_id_reserved,
            request: self.request_reserved,
        };
        self.outputs.push_back(OutboundOutput::Persist(OutboundChange::Upsert(record)));
    }

    pub(super) fn alloc_peek_id(&mut self) -> PeekId {
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
}
