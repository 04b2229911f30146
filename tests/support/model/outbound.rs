//! The reference model of `OutboundPeeks`' world (MSC2444, peeking side): the machine under
//! test with its store and the requests it has in flight, a host clock that may go backwards,
//! and the resident servers: which of our peeks each holds and until when, and what each
//! kind of answer does to them. One [`World`] serves both outbound users:
//!
//! * `tests/outbound/model.rs`, the property test, adds [`Demand`] (the local demand the
//!   machine was told of and the renewal deadlines the model expects) and picks each
//!   resident's [`Reply`] from a generated code;
//! * `tests/outbound/soak.rs`, long random runs with extreme configs, picks replies with a
//!   seeded PRNG and delivers the residents' `expired_peeks` at random.
//!
//! Each keeps its own invariants; the `Send`-after-`Persist` rule (R59) is checked here for
//! both.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use matrix_peek::{
    OutboundChange, OutboundConfig, OutboundFailure, OutboundKey, OutboundOutcome, OutboundOutput,
    OutboundPeeks, OutboundRecord, OutboundRenewStyle, OutboundRequest, OutboundRequestKind,
    RoomAccess, Timestamp,
};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, RoomVersionId};

/// A peek of ours at a resident: (room, resident server, peek id).
pub type PeekKey = (OwnedRoomId, OwnedServerName, matrix_peek::PeekId);

/// R59 at a `Send`, checked against `store` (every earlier `Persist` applied) and the output
/// just before it (`prev`): a restart at this point must find the request's peek. (`prev`, a
/// `Persist`, is in `store` already: naming the request is what it must do.)
///
/// * A `PUT` of a peek being opened comes right after the `Persist` of the room's `Opening`
///   record.
/// * A background `DELETE` finds the peek's `Retired` record in the store: it was written when
///   the peek was retired, and is not written again before each `DELETE` (or retry).
/// * A renewal (`Renew`, or with `reput` a re-`PUT` of a granted peek) finds its room's `Live`
///   record naming the same resident and peek id in the store: it was written when the lease
///   was granted, and is not written again ([`check_leases_stored`] checks it is the current
///   lease).
pub fn check_send_stored(
    store: &BTreeMap<OutboundKey, OutboundRecord>,
    prev: Option<&OutboundOutput>,
    req: &OutboundRequest,
    reput: bool,
) -> Result<(), String> {
    let names_req = |p: &matrix_peek::OutboundPeekRecord| {
        p.room_id == req.room_id && p.peek_id == req.peek_id && p.server == req.server
    };
    let stored = store.get(&OutboundKey::Room(req.room_id.clone()));
    let live = matches!(
        stored,
        Some(OutboundRecord::Peek(p)) if names_req(p)
            && matches!(p.phase, matrix_peek::OutboundPeekPhase::Live { .. })
    );
    let ok = match (&req.kind, prev) {
        (OutboundRequestKind::Renew, _) => live,
        (
            OutboundRequestKind::Peek { .. },
            Some(OutboundOutput::Persist(OutboundChange::Upsert(OutboundRecord::Peek(p)))),
        ) => names_req(p) || reput && live,
        (OutboundRequestKind::Peek { .. }, _) => reput && live,
        (OutboundRequestKind::Unpeek, _) => {
            let key = OutboundKey::Retired {
                room_id: req.room_id.clone(),
                server: req.server.clone(),
                peek_id: req.peek_id.clone(),
            };
            matches!(store.get(&key), Some(OutboundRecord::Retired { .. }))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("Send {req:?} without its stored record (after {prev:?}; stored {stored:?})"))
    }
}

/// R59 between calls (every output drained and applied to `store`): every granted peek's
/// lease and access are stored as the machine holds them, so a renewal, which writes nothing
/// before it is sent, restarts from the lease it renews.
pub fn check_leases_stored(
    m: &OutboundPeeks,
    store: &BTreeMap<OutboundKey, OutboundRecord>,
) -> Result<(), String> {
    for info in m.rooms() {
        let Some(expires_at) = info.expires_at else { continue };
        let stored = store.get(&OutboundKey::Room(info.room_id.into()));
        let ok = matches!(
            stored,
            Some(OutboundRecord::Peek(p)) if Some(p.peek_id.as_str()) == info.peek_id
                && Some(&**p.server) == info.resident
                && matches!(p.phase, matrix_peek::OutboundPeekPhase::Live { expires_at: e, .. } if e == expires_at)
                && p.access.as_ref() == m.granted(info.room_id).map(|(_, access)| access)
        );
        if !ok {
            return Err(format!(
                "{}: lease until {expires_at:?} of {:?} (or its access) not stored as held \
                 (stored {stored:?})",
                info.room_id, info.peek_id
            ));
        }
    }
    Ok(())
}

/// A v11 room's access, peekable (world-readable) or not.
pub fn access(peekable: bool) -> RoomAccess {
    RoomAccess::new(RoomVersionId::V11, peekable, false)
}

/// What a resident does with one request of ours. [`World::answer`] applies it to the
/// residents and returns the outcome the machine is given.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A `PUT` granted for `interval` from the latest time seen, answered `Established`. The
    /// resident holds nothing new if that end is not later (a zero interval), and nothing at
    /// all if `access` is not peekable (it would not have granted it; the machine deletes it).
    Establish { interval: Duration, access: RoomAccess },
    /// A renewal for `interval` from the latest time seen, answered `Renewed`. A zero interval
    /// lapses the peek at once (the resident owes an `expired_peeks` entry).
    Renew { interval: Duration },
    /// The resident holds no peek under this id afterwards and answers `outcome`: a refused
    /// `PUT`, a renewal answered 403 or 404, a `DELETE` answered either way.
    Remove(OutboundOutcome),
    /// A `DELETE` answered truthfully: `Deleted` if the resident held the peek, else 404.
    Delete,
    /// The resident holds the peek until `until` (ms), but the answer that reaches us is
    /// `outcome` (garbled, or of the wrong kind).
    Hold { until: u64, outcome: OutboundOutcome },
    /// Nothing changes at the resident and the answer is `outcome`: network trouble, a 5xx or
    /// 429, or a refusal that leaves a peek it already holds alone.
    Answer(OutboundOutcome),
    /// A `DELETE` that does not get through (`Unreachable`). After `max_delete_attempts` of
    /// them the machine gives up and the resident expires the peek itself (R43).
    DeleteLost,
}

/// The resident servers, as far as our peeks go.
#[derive(Debug, Default)]
pub struct Residents {
    /// The peeks they hold for us, with their expiry (ms).
    pub peeks: BTreeMap<PeekKey, u64>,
    /// Peeks they expired and owe us an `expired_peeks` entry for, not delivered yet.
    pub expiries: Vec<PeekKey>,
    /// `DELETE`s that did not get through, per peek.
    pub delete_failures: BTreeMap<PeekKey, u32>,
}

impl Residents {
    /// Lapses every peek whose expiry is not after `now`; each is owed an `expired_peeks`
    /// entry.
    pub fn expire(&mut self, now: u64) {
        let expired: Vec<PeekKey> =
            self.peeks.iter().filter(|(_, e)| **e <= now).map(|(k, _)| k.clone()).collect();
        for k in expired {
            self.peeks.remove(&k);
            self.expiries.push(k);
        }
    }

    /// Whether every peek the residents hold is one the store names: the room's current peek
    /// or a retired one owed a `DELETE` (none is forgotten, R55, R59).
    pub fn accounted_for(
        &self,
        store: &BTreeMap<OutboundKey, OutboundRecord>,
    ) -> Result<(), PeekKey> {
        for key @ (room, server, id) in self.peeks.keys() {
            let current = matches!(store.get(&OutboundKey::Room(room.clone().into())),
                Some(OutboundRecord::Peek(p)) if &p.server == server && &p.peek_id == id);
            let retired = store.contains_key(&OutboundKey::Retired {
                room_id: room.clone().into(),
                server: server.clone().into(),
                peek_id: id.clone(),
            });
            if !current && !retired {
                return Err(key.clone());
            }
        }
        Ok(())
    }

    /// The first peek held in `room` (its server and id), if any.
    pub fn first_in(&self, room: &RoomId) -> Option<(OwnedServerName, matrix_peek::PeekId)> {
        self.peeks.keys().find(|(r, _, _)| r == room).map(|(_, s, id)| (s.clone(), id.clone()))
    }
}

/// The local demand the machine was told of, and what the model expects from it.
#[derive(Debug, Default)]
pub struct Demand {
    /// room -> (demanded, undemanded since).
    pub rooms: BTreeMap<OwnedRoomId, (bool, u64)>,
    /// Rooms the server joined.
    pub joined: BTreeSet<OwnedRoomId>,
    /// room -> when the model expects the next renewal of its current peek, and how long after
    /// a success renewals come (a clock correction brings a later deadline back to that).
    pub renew_due: BTreeMap<OwnedRoomId, (u64, u64)>,
}

/// The machine, its store and requests, the host's clock and the residents.
pub struct World {
    pub cfg: OutboundConfig,
    pub m: OutboundPeeks,
    /// Wall clock as the host sees it (may go backwards), the latest seen (the residents'
    /// time), and the machine's own clock (steps back within `CLOCK_STEP_LIMIT` absorbed, a
    /// larger one a correction).
    pub now: u64,
    pub max_now: u64,
    pub clock: u64,
    /// The store: every `Persist` applied.
    pub store: BTreeMap<OutboundKey, OutboundRecord>,
    /// Requests sent and not answered yet.
    pub pending: Vec<OutboundRequest>,
    /// The rooms the operations name: `!r{i}:x.org`.
    pub rooms: Vec<OwnedRoomId>,
    pub residents: Residents,
}

impl Demand {
    /// The machine's clock was corrected back to `clock`: no renewal is due later than its
    /// normal delay from then.
    pub fn heal(&mut self, clock: u64) {
        for (due, after) in self.renew_due.values_mut() {
            *due = (*due).min(clock + *after);
        }
    }
}

impl World {
    /// A fresh machine with `cfg` at `start` (ms), over `rooms` rooms.
    pub fn new(cfg: OutboundConfig, rooms: usize, start: u64) -> Self {
        World {
            m: OutboundPeeks::new(cfg.clone()),
            cfg,
            now: start,
            max_now: start,
            clock: start,
            store: BTreeMap::new(),
            pending: Vec::new(),
            rooms: (0..rooms).map(|i| format!("!r{i}:x.org").try_into().unwrap()).collect(),
            residents: Residents::default(),
        }
    }

    pub fn t(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    /// Sets the host's clock (at most `Timestamp::MAX`); the residents lapse every peek that
    /// ended by the latest time seen.
    pub fn set_now(&mut self, now: u64) {
        self.now = now.min(Timestamp::MAX.as_millis());
        self.max_now = self.max_now.max(self.now);
        let limit = matrix_peek::CLOCK_STEP_LIMIT.as_millis() as u64;
        if self.now >= self.clock || self.clock - self.now > limit {
            self.clock = self.now;
        }
        self.residents.expire(self.max_now);
    }

    /// Sets the host's clock to `now` and fires what is due.
    pub fn advance_to(&mut self, now: u64) {
        self.set_now(now);
        self.m.handle_timeout(self.t());
    }

    /// Jumps to the machine's next deadline, if it has one, and fires it.
    pub fn tick(&mut self) {
        if let Some(at) = self.m.poll_timeout() {
            self.advance_to(at.as_millis());
        }
    }

    /// Drains the machine: every output is shown to `check` first; every `Send` must find its
    /// peek stored (R59, [`check_send_stored`]) and joins `pending`; every `Persist` is applied
    /// to `store`, and at the end every granted lease must be stored as the machine holds it
    /// ([`check_leases_stored`]). A retired record dropped while its resident still holds the peek
    /// must be the oldest of more than `MAX_RETIRED` (the resident then expires it, R43). More
    /// than `limit` outputs in one go is a runaway queue.
    pub fn drain_with<E>(
        &mut self,
        limit: usize,
        mut check: impl FnMut(&World, &OutboundOutput) -> Result<(), E>,
    ) -> Result<Vec<OutboundOutput>, E> {
        let mut out: Vec<OutboundOutput> = Vec::new();
        let reput = self.m.config().renew_style == OutboundRenewStyle::RePut;
        while let Some(o) = self.m.poll_output() {
            assert!(out.len() < limit, "output queue runs away");
            check(self, &o)?;
            match &o {
                OutboundOutput::Send(req) => {
                    if let Err(e) = check_send_stored(&self.store, out.last(), req, reput) {
                        panic!("{e}");
                    }
                    self.pending.push(req.clone());
                }
                OutboundOutput::Persist(change) => {
                    if let OutboundChange::Remove(OutboundKey::Retired {
                        room_id,
                        server,
                        peek_id,
                    }) = change
                    {
                        let key = (room_id.to_owned_id(), server.to_owned_id(), peek_id.clone());
                        if self.residents.peeks.contains_key(&key) {
                            let retired = self
                                .store
                                .keys()
                                .filter(|k| matches!(k, OutboundKey::Retired { room_id: r, .. } if r == room_id))
                                .count();
                            assert_eq!(
                                retired,
                                OutboundPeeks::MAX_RETIRED + 1,
                                "retired peek {key:?} dropped while its resident holds it"
                            );
                            // Abandoned: the resident expires it itself (R43).
                            self.residents.peeks.remove(&key);
                        }
                    }
                    change.apply_to(&mut self.store)
                }
                _ => {}
            }
            out.push(o);
        }
        if let Err(e) = check_leases_stored(&self.m, &self.store) {
            panic!("{e}");
        }
        Ok(out)
    }

    /// The answer of `req`'s resident. A renewal of a peek it does not hold is answered 404
    /// (and `reply` is not asked); otherwise `reply()` is applied to the residents at the
    /// latest time seen.
    pub fn answer(
        &mut self,
        req: &OutboundRequest,
        reply: impl FnOnce() -> Reply,
    ) -> OutboundOutcome {
        let key = (req.room_id.to_owned_id(), req.server.to_owned_id(), req.peek_id.clone());
        let held = self.residents.peeks.contains_key(&key);
        if matches!(req.kind, OutboundRequestKind::Renew) && !held {
            return OutboundOutcome::Failed(OutboundFailure::NotFound);
        }
        let max_now = self.max_now;
        let until = |interval: Duration| {
            Timestamp::from_millis(max_now).saturating_add(interval).as_millis()
        };
        let residents = &mut self.residents;
        match reply() {
            Reply::Establish { interval, access } => {
                if until(interval) > max_now {
                    residents.peeks.insert(key.clone(), until(interval));
                }
                if !access.is_peekable() {
                    residents.peeks.remove(&key);
                }
                OutboundOutcome::Established { renewal_interval: interval, access }
            }
            Reply::Renew { interval } => {
                if until(interval) > max_now {
                    residents.peeks.insert(key, until(interval));
                } else {
                    residents.peeks.remove(&key);
                    residents.expiries.push(key);
                }
                OutboundOutcome::Renewed { renewal_interval: Some(interval) }
            }
            Reply::Remove(outcome) => {
                residents.peeks.remove(&key);
                outcome
            }
            Reply::Delete => {
                residents.peeks.remove(&key);
                if held {
                    OutboundOutcome::Deleted
                } else {
                    OutboundOutcome::Failed(OutboundFailure::NotFound)
                }
            }
            Reply::Hold { until, outcome } => {
                residents.peeks.insert(key, until);
                outcome
            }
            Reply::Answer(outcome) => outcome,
            Reply::DeleteLost => {
                let n = residents.delete_failures.entry(key.clone()).or_default();
                *n += 1;
                if *n >= self.cfg.max_delete_attempts {
                    // The machine gives up; the resident expires the peek itself (R43).
                    residents.peeks.remove(&key);
                }
                OutboundOutcome::Failed(OutboundFailure::Unreachable)
            }
        }
    }

    /// A crash and a restart at `at` (ms): the requests in flight die with the process (the
    /// residents never saw them; they are returned) and the machine is restored from the
    /// store; its clock starts at `at`.
    pub fn restart(&mut self, at: u64) -> Vec<OutboundRequest> {
        let lost = std::mem::take(&mut self.pending);
        self.now = at;
        self.clock = at;
        self.m = OutboundPeeks::restore(self.t(), self.cfg.clone(), self.store.values().cloned());
        lost
    }
}
