//! [`OutboundPeeks::restore`]: rebuilding the machine from its stored records (R59), and healing
//! it when the host corrects its clock (both clamp times that a wrong clock pushed too far).

use std::collections::BTreeMap;

use super::room::{Candidate, Demand, History, Lease, PeekRef, Phase, Retire, Room};
use super::{OutboundConfig, OutboundPeekPhase, OutboundPeekRecord, OutboundPeeks, OutboundRecord};
use crate::shared::SharedRoomId;
use crate::time::{Monotonic, Tick, Timestamp};

impl OutboundPeeks {
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
    /// * Retired peeks (and `Deleting` ones written by earlier versions) send their `DELETE` at
    ///   once (queued in the outputs).
    /// * In-flight renewals were persisted as `Live` and are re-sent when due; responses to
    ///   requests of the previous run are unknown ids and ignored.
    /// * Linger ends, candidates' backoff, the pacer and event activity are not stored: a room
    ///   lingering at the crash lingers afresh from `now` (one extra `linger` per restart).
    /// * Rooms waiting for a candidate without a granted peek are not stored once their `PUT`
    ///   failed; they come back when demand is re-declared.
    /// * Duplicates: the last record for a key wins; nothing panics on odd records.
    pub fn restore(
        now: Timestamp,
        config: OutboundConfig,
        records: impl IntoIterator<Item = OutboundRecord>,
    ) -> Self {
        let mut m = OutboundPeeks::new(config);
        m.clock = Monotonic::starting_at(now);
        let mut peeks: BTreeMap<SharedRoomId, OutboundPeekRecord> = BTreeMap::new();
        let mut retired: BTreeMap<SharedRoomId, Vec<PeekRef>> = BTreeMap::new();
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
                OutboundRecord::Retired { room_id, server, peek_id } => {
                    let list = retired.entry(room_id).or_default();
                    let peek = PeekRef { server: m.servers.intern(&server), peek_id };
                    if !list.contains(&peek) {
                        list.push(peek);
                    }
                }
            }
        }
        // Stored times heal as a running machine's do when its clock is corrected: nothing
        // outlives its normal length from the restart time.
        let heal_at = now;
        m.peek_id_reserved = m.next_peek_id;
        m.request_reserved = m.next_request;
        let until = now.saturating_add(m.config.linger);
        let rooms: std::collections::BTreeSet<SharedRoomId> =
            peeks.keys().chain(retired.keys()).cloned().collect();
        for room_id in rooms {
            let current = peeks.remove(&room_id);
            let retired_here = retired.remove(&room_id).unwrap_or_default();
            // A current peek's resident is the room's one candidate; retired peeks add none.
            let candidates = usize::from(current.is_some());
            let mut room = Room::new(room_id.clone(), Demand::Lingering { until }, candidates);
            let mut old_deleting = None;
            if let Some(p) = current {
                let server = m.servers.intern(&p.server);
                room.candidates.push(Candidate {
                    server: server.clone(),
                    failures: 0,
                    retry_at: Timestamp::ZERO,
                });
                room.access = p.access;
                room.persisted = true;
                let peek = PeekRef { server, peek_id: p.peek_id };
                match p.phase {
                    // A peek id is never current again once retired: a `Retired` record of
                    // the room's current peek means the room's record is stale (a crash
                    // between the two writes of `retire_current`). The peek is retired once,
                    // like an old `Deleting` record, and the room's record removed.
                    _ if retired_here.contains(&peek) => old_deleting = Some(peek),
                    OutboundPeekPhase::Opening => {
                        room.phase = Phase::Opening { peek, request: None };
                    }
                    OutboundPeekPhase::Live { renewed_at, interval, renew_at, expires_at } => {
                        let lease = Lease { renewed_at, interval, renew_at, expires_at };
                        room.history = History::Up;
                        room.last_good = renewed_at;
                        room.phase = Phase::Live { peek, lease, failing: None };
                    }
                    OutboundPeekPhase::Deleting => old_deleting = Some(peek),
                }
            }
            let hash = m.index.hash(&room.id);
            let slot = m.insert_room(room, hash);
            m.heal_room(slot, heal_at);
            // Retired peeks (and old `Deleting` records) owe a DELETE at once.
            for peek in old_deleting.into_iter().chain(retired_here) {
                if m.room(slot).retired.iter().all(|r| r.peek != peek) {
                    m.retire(slot, peek, Retire::Due { at: now });
                }
            }
            if m.room(slot).phase == Phase::Idle {
                // An old `Deleting` record, or a stale one, is a retired peek now.
                m.persist_current(slot);
            }
            m.step(slot, now);
        }
        m.flush();
        m
    }

    /// Passes the host's `now` through the clock; a correction heals every room first.
    pub(super) fn tick(&mut self, now: Timestamp) -> Timestamp {
        match self.clock.advance(now) {
            Tick::Normal(now) => now,
            Tick::Corrected(now) => {
                let slots: Vec<u32> = self.rooms.iter().map(|(slot, _)| slot).collect();
                for slot in slots {
                    self.heal_room(slot, now);
                    self.step(slot, now);
                }
                now
            }
        }
    }

    /// The host's clock was corrected back to `now` (see `CLOCK_STEP_LIMIT`), or a restored
    /// record was written under a wrong clock: every time of the room keeps at most its normal
    /// length from `now`. A changed lease is persisted.
    pub(super) fn heal_room(&mut self, slot: u32, now: Timestamp) {
        let linger = self.config.linger;
        let max_wait = self.config.backoff_max.max(OutboundConfig::MIN_RETRY_AFTER);
        let renew_after = |interval| self.config.renew_after(interval);
        let r = self.rooms.get(slot).expect("slot in use");
        let lease = r.phase.lease().map(|l| {
            let after = renew_after(l.interval);
            let renewed_at = l.renewed_at.min(now);
            let renew_at = l.renew_at.min(now.saturating_add(after));
            let expires_at = l.expires_at.min(now.saturating_add(l.interval.max(after)));
            Lease { renewed_at, interval: l.interval, renew_at, expires_at }
        });
        let r = self.room_mut(slot);
        if let Demand::Lingering { until } = &mut r.demand {
            *until = (*until).min(now.saturating_add(linger));
        }
        let lease_changed = lease.is_some_and(|l| r.phase.lease() != Some(&l));
        match (&mut r.phase, lease) {
            (Phase::Live { lease, failing, .. }, Some(healed))
            | (Phase::Renewing { lease, failing, .. }, Some(healed)) => {
                *lease = healed;
                if let Some(f) = failing {
                    f.since = f.since.min(now);
                    f.retry_at = f.retry_at.min(now.saturating_add(max_wait));
                }
            }
            _ => {}
        }
        for c in &mut r.candidates {
            c.retry_at = c.retry_at.min(now.saturating_add(max_wait));
        }
        for retired in &mut r.retired {
            if let Retire::Due { at } = &mut retired.step {
                *at = (*at).min(now.saturating_add(max_wait));
            }
        }
        if let History::Lost { since } = &mut r.history {
            *since = (*since).min(now);
        }
        r.last_good = r.last_good.min(now);
        r.activity.heal(now);
        r.pacer.heal(now);
        if lease_changed {
            self.persist_current(slot);
        }
    }
}
