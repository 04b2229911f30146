//! How each answer changes a room's facts: the current peek's `PUT` and renewal answers, the
//! retired peeks' `DELETE` answers, and `expired_peeks` entries. `step` then acts on the facts.

use ruma_common::ServerName;

use super::room::{Demand, History, Lease, PeekRef, Phase, Retire};
use super::servers::Server;
use super::{
    OutboundFailure, OutboundLostReason, OutboundOutcome, OutboundOutput, OutboundPeekError,
    OutboundPeeks,
};
use crate::ids::RequestId;
use crate::time::Timestamp;

/// Whether a failure is a refusal (the resident answered and will not serve us) rather than
/// trouble that a retry may fix.
fn is_refusal(f: &OutboundFailure) -> bool {
    matches!(
        f,
        OutboundFailure::Forbidden
            | OutboundFailure::NotFound
            | OutboundFailure::IncompatibleRoomVersion
    )
}

/// Which kind of request an answer is for (for the counters).
#[derive(Debug, Clone, Copy)]
enum AnswerOf {
    Put,
    Renew,
    Delete,
}

impl OutboundPeeks {
    fn count_answer(&mut self, of: AnswerOf, outcome: &OutboundOutcome) {
        let counts = match of {
            AnswerOf::Put => &mut self.stats.puts,
            AnswerOf::Renew => &mut self.stats.renewals,
            AnswerOf::Delete => &mut self.stats.deletes,
        };
        match (of, outcome) {
            (AnswerOf::Delete, OutboundOutcome::Failed(OutboundFailure::NotFound))
            | (_, OutboundOutcome::Established { .. })
            | (_, OutboundOutcome::Renewed { .. })
            | (AnswerOf::Delete, OutboundOutcome::Deleted) => counts.ok += 1,
            (_, OutboundOutcome::Failed(f)) if is_refusal(f) => counts.refused += 1,
            (_, OutboundOutcome::Failed(OutboundFailure::InvalidResponse))
            | (_, OutboundOutcome::Deleted) => counts.refused += 1,
            (_, OutboundOutcome::Failed(_failure)) => {
                counts.failed += 1;
                crate::log::warning!(failure = %_failure, "federation request failed");
            }
        }
    }

    /// Applies the answer to request `id` of the room in `slot` (the current peek's, or a
    /// retired peek's; a request the room no longer names is ignored).
    pub(super) fn on_response(
        &mut self,
        slot: u32,
        id: RequestId,
        outcome: OutboundOutcome,
        now: Timestamp,
    ) {
        let Some(r) = self.rooms.get(slot) else { return };
        if r.phase.request() == Some(id) {
            return match r.phase {
                Phase::Opening { .. } => self.on_open(slot, outcome, now),
                _ => self.on_renew(slot, outcome, now),
            };
        }
        if let Some(i) = r.retired.iter().position(|x| x.request() == Some(id)) {
            self.on_retired(slot, i, outcome, now);
        }
    }

    fn new_lease(&self, now: Timestamp, interval: std::time::Duration) -> Lease {
        let renew_at = now.saturating_add(self.config.renew_after(interval));
        let expires_at = now.saturating_add(interval).max(renew_at);
        Lease { renewed_at: now, interval, renew_at, expires_at }
    }

    /// `server` served us: its backoff is cleared. The candidate is found by the shared name
    /// (by pointer), without reading any name's bytes.
    fn served(&mut self, slot: u32, server: &Server, now: Timestamp) {
        let r = self.room_mut(slot);
        if let Some(c) = r.candidate_mut(server) {
            c.failures = 0;
            c.retry_at = Timestamp::ZERO;
        }
        r.last_good = r.last_good.max(now);
    }

    fn on_open(&mut self, slot: u32, outcome: OutboundOutcome, now: Timestamp) {
        let r = self.room_mut(slot);
        let Phase::Opening { peek, .. } = std::mem::replace(&mut r.phase, Phase::Idle) else {
            return;
        };
        self.count_answer(AnswerOf::Put, &outcome);
        let (interval, access) = match outcome {
            OutboundOutcome::Established { renewal_interval, access } => (renewal_interval, access),
            // A PUT answered like a renewal or a delete: the resident holds something odd.
            OutboundOutcome::Renewed { .. } | OutboundOutcome::Deleted => {
                return self.refuse(slot, peek, OutboundFailure::InvalidResponse, true, now);
            }
            OutboundOutcome::Failed(f @ OutboundFailure::InvalidResponse) => {
                return self.refuse(slot, peek, f, true, now);
            }
            OutboundOutcome::Failed(f) if is_refusal(&f) => {
                return self.refuse(slot, peek, f, false, now);
            }
            OutboundOutcome::Failed(f) => {
                // A PUT that failed on the network is assumed not to have created a peek; if it
                // did, the resident expires it after its interval (R43), since nobody renews it.
                self.penalise(slot, &peek.server, now, &f);
                let max_attempts = self.config.max_attempts;
                let r = self.room_mut(slot);
                r.note_failure(&f);
                r.attempts = r.attempts.saturating_add(1);
                if r.is_demanded() && r.history == History::Never && r.attempts >= max_attempts {
                    let error = OutboundPeekError::Remote(r.worst.clone().unwrap_or(f));
                    self.give_up(slot, error);
                }
                return self.persist_current(slot);
            }
        };
        let supported = self.versions.supports(&access.room_version);
        self.room_mut(slot).access = Some(access.clone());
        if !access.is_peekable() {
            // The room is not peekable (R32): no other candidate will serve it either.
            self.retire(slot, peek, Retire::Due { at: now });
            self.persist_current(slot);
            return self.give_up(slot, OutboundPeekError::Remote(OutboundFailure::Forbidden));
        }
        if !supported {
            return self.refuse(slot, peek, OutboundFailure::IncompatibleRoomVersion, true, now);
        }
        self.served(slot, &peek.server, now);
        let lease = self.new_lease(now, interval);
        let r = self.room_mut(slot);
        r.attempts = 0;
        r.worst = None;
        let missed_since = match r.history {
            History::Lost { since } => Some(since),
            History::Never | History::Up => None,
        };
        r.history = History::Up;
        let (room_id, server) = (r.id.clone(), peek.server.shared());
        r.phase = Phase::Live { peek, lease, failing: None };
        self.persist_current(slot);
        self.deferred.push(OutboundOutput::Established { room_id, server, access, missed_since });
    }

    /// The candidate behind `peek` refused (R60): it is dropped, the peek is deleted when it
    /// was granted (R49, R55), and the room gives up when no candidate is left.
    fn refuse(
        &mut self,
        slot: u32,
        peek: PeekRef,
        failure: OutboundFailure,
        granted: bool,
        now: Timestamp,
    ) {
        let r = self.room_mut(slot);
        r.note_failure(&failure);
        r.drop_candidate(&peek.server);
        let give_up = r.candidates.is_empty() && r.is_demanded();
        let error = OutboundPeekError::Remote(r.worst.clone().unwrap_or(failure));
        if granted {
            self.retire(slot, peek, Retire::Due { at: now });
        }
        self.persist_current(slot);
        if give_up {
            self.give_up(slot, error);
        }
    }

    fn on_renew(&mut self, slot: u32, outcome: OutboundOutcome, now: Timestamp) {
        let r = self.room_mut(slot);
        let Phase::Renewing { peek, lease, failing, probe, .. } =
            std::mem::replace(&mut r.phase, Phase::Idle)
        else {
            return;
        };
        self.count_answer(AnswerOf::Renew, &outcome);
        let interval = match outcome {
            OutboundOutcome::Renewed { renewal_interval } => renewal_interval,
            // RePut renewals (and lenient peers) answer with the full PUT response.
            OutboundOutcome::Established { renewal_interval, access } => {
                self.room_mut(slot).access = Some(access);
                Some(renewal_interval)
            }
            OutboundOutcome::Failed(OutboundFailure::NotFound) => {
                // R54: the resident dropped it; a fresh id is opened at once.
                return self.peek_gone(slot, OutboundLostReason::RemoteExpired, None);
            }
            OutboundOutcome::Failed(f) if is_refusal(&f) => {
                self.room_mut(slot).drop_candidate(&peek.server);
                return self.peek_gone(slot, OutboundLostReason::Refused, Some(f));
            }
            OutboundOutcome::Failed(f) => {
                let failing = self.renewal_failed(slot, now, failing, &f, lease.expires_at);
                self.room_mut(slot).phase = Phase::Live { peek, lease, failing: Some(failing) };
                return;
            }
            OutboundOutcome::Deleted => {
                let f = OutboundFailure::InvalidResponse;
                let failing = self.renewal_failed(slot, now, failing, &f, lease.expires_at);
                self.room_mut(slot).phase = Phase::Live { peek, lease, failing: Some(failing) };
                return;
            }
        };
        // An omitted interval keeps the last known one.
        let lease = self.new_lease(now, interval.unwrap_or(lease.interval));
        self.served(slot, &peek.server, now);
        let r = self.room_mut(slot);
        if probe {
            // The resident is alive: the room is quiet. No new probe until another event.
            r.activity.probed();
        }
        r.phase = Phase::Live { peek, lease, failing: None };
        self.persist_current(slot);
    }

    /// The current granted peek is gone at the resident (no `DELETE` needed): `Lost`, and a
    /// refusal counts towards giving up.
    fn peek_gone(
        &mut self,
        slot: u32,
        reason: OutboundLostReason,
        refused: Option<OutboundFailure>,
    ) {
        self.lose(slot, reason);
        self.persist_current(slot);
        if let Some(failure) = refused {
            let r = self.room_mut(slot);
            r.note_failure(&failure);
            if r.candidates.is_empty() && r.is_demanded() {
                let error = OutboundPeekError::Remote(r.worst.clone().unwrap_or(failure));
                self.give_up(slot, error);
            }
        }
    }

    fn on_retired(&mut self, slot: u32, i: usize, outcome: OutboundOutcome, now: Timestamp) {
        let max = self.config.max_delete_attempts;
        let r = self.room_mut(slot);
        let retired = &mut r.retired[i];
        let of = match retired.step {
            Retire::Awaiting { delete_always: true, .. } => AnswerOf::Renew,
            Retire::Awaiting { delete_always: false, .. } => AnswerOf::Put,
            Retire::Deleting { .. } | Retire::Due { .. } => AnswerOf::Delete,
        };
        self.count_answer(of, &outcome);
        let r = self.room_mut(slot);
        let retired = &mut r.retired[i];
        match retired.step {
            Retire::Awaiting { delete_always, .. } => {
                // Whether the resident may hold the peek now: any answer but a refusal or a
                // 404 says it was reached; a network failure of a PUT is assumed not to have
                // created it (as for a current peek), of a renewal not to have removed it.
                let exists = match &outcome {
                    OutboundOutcome::Established { .. }
                    | OutboundOutcome::Renewed { .. }
                    | OutboundOutcome::Deleted
                    | OutboundOutcome::Failed(OutboundFailure::InvalidResponse) => true,
                    OutboundOutcome::Failed(f) if is_refusal(f) => false,
                    OutboundOutcome::Failed(_) => delete_always,
                };
                if exists {
                    retired.step = Retire::Due { at: now };
                } else {
                    self.drop_retired(slot, i);
                }
            }
            Retire::Deleting { .. } => match outcome {
                OutboundOutcome::Failed(f) if !is_refusal(&f) => {
                    retired.attempts = retired.attempts.saturating_add(1);
                    let attempt = retired.attempts;
                    if attempt >= max {
                        // Given up: the resident expires it after its interval (R43).
                        self.stats.deletes_abandoned += 1;
                        self.drop_retired(slot, i);
                    } else {
                        let wait = self.delay(self.room(slot), attempt, &f);
                        self.room_mut(slot).retired[i].step =
                            Retire::Due { at: now.saturating_add(wait) };
                    }
                }
                // Deleted, 404 (already gone, R55), or a refusal: nothing more to do.
                _ => self.drop_retired(slot, i),
            },
            Retire::Due { .. } => {}
        }
    }

    /// `expired_peeks` named (`server`, `peek_id`). Returns whether anything changed.
    pub(super) fn on_remote_expired(
        &mut self,
        slot: u32,
        server: &ServerName,
        peek_id: &str,
        now: Timestamp,
    ) -> bool {
        let r = self.room_mut(slot);
        let names = |p: &PeekRef| p.server == server && p.peek_id == peek_id;
        if r.phase.peek().is_some_and(names) {
            match &r.phase {
                // The PUT in flight decides.
                Phase::Opening { request: Some(_), .. } => return false,
                Phase::Opening { request: None, .. } => {
                    r.phase = Phase::Idle;
                    self.persist_current(slot);
                }
                Phase::Live { .. } | Phase::Renewing { .. } => {
                    r.attempts = 0;
                    self.lose(slot, OutboundLostReason::RemoteExpired);
                    // The entry may predate the peek the resident holds now: a same-id `PUT`
                    // (a restore's re-`PUT` of an opening peek, a re-`PUT` renewal, or a late
                    // duplicate) can re-create the id after the first copy lapsed, and the
                    // `/send` carrying the entry travels apart from the `PUT`'s answer. So the
                    // peek is retired and `DELETE`d in the background, whatever the renewal
                    // style (a renewal in flight is forgotten; 404 = already gone, R55). A
                    // genuine expiry costs one `DELETE`; a stale one would otherwise leave the
                    // resident relaying to us until the re-created peek lapsed.
                    self.retire_current(slot, now);
                }
                Phase::Idle => return false,
            }
            return true;
        }
        // An entry naming a retired peek changes nothing: it may predate a re-`PUT` that
        // re-created the id, and the `DELETE` it still gets costs at most a 404.
        false
    }

    /// A demanded room whose demand was declared while `Gone` starts afresh.
    pub(super) fn revive(&mut self, slot: u32) {
        let r = self.room_mut(slot);
        if r.demand == Demand::Gone {
            r.attempts = 0;
            r.worst = None;
        }
        r.demand = Demand::Demanded;
    }
}
