//! Long random runs of `OutboundPeeks` against the reference model of the residents
//! (`tests/support/model/outbound.rs`), beyond the property test's reach: more rooms, both
//! renew styles, extreme configs (zero linger/backoff/min renewal, `Duration::MAX` intervals
//! and hints), clocks near `Timestamp::MAX`, answers in any order, restarts (also with a clock
//! behind) at any step. Checked after every step:
//! * no spin: after `handle_timeout(now)`, `poll_timeout()` is later than every time seen;
//! * R59: every `Send` finds its peek stored (a `PUT` or `DELETE` right after the `Persist` of
//!   its record, a renewal under its lease's `Live` record), and every granted lease is stored
//!   as the machine holds it;
//! * R58: at most one request in flight per peek, and at most one for each room's current peek
//!   plus one per retired peek in all;
//! * no leak: every peek a resident holds for us is the room's current one or a retired one
//!   owed a `DELETE`, as the store names them;
//! * R47: an id once given up (deleted or replaced) is never `PUT` again, ids never cross rooms;
//! * at the end, with demand gone and residents answering, the machine and residents are empty.
//!
//! `SOAK_SEEDS` (default 300) and `SOAK_FIRST_SEED` choose the seeds; `SOAK_TRACE` prints every
//! step and output.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use matrix_peek::testing::SimRng;
use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundKey, OutboundOutcome, OutboundOutput,
    OutboundRenewStyle, OutboundRequest, OutboundRequestKind, Timestamp,
};
use ruma_common::{OwnedRoomId, OwnedServerName};

use crate::support::model::{PeekKey, Reply, World, access};

const SERVERS: [&str; 3] = ["a.org", "b.org", "c.org"];
const INTERVALS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(10),
    Duration::from_secs(30),
    Duration::from_secs(3600),
    Duration::from_millis(3_600_000_000),
    Duration::MAX,
];

/// One seed's run: the world, its PRNG, and what the run checks ids against.
struct Soak {
    rng: SimRng,
    w: World,
    given_up: BTreeSet<PeekKey>,
    id_room: BTreeMap<matrix_peek::PeekId, OwnedRoomId>,
    current: BTreeMap<OwnedRoomId, PeekKey>,
    /// Sends seen per kind (PUT, renew, DELETE), to show the run reached them.
    seen: [u64; 3],
    /// Rooms the last restore brought back (they may exceed `max_rooms`).
    restored_rooms: usize,
}

impl Soak {
    fn new(seed: u64) -> Self {
        let mut rng = SimRng::new(seed);
        let cfg = OutboundConfig {
            renew_style: if rng.range(0, 1) == 0 {
                OutboundRenewStyle::RePut
            } else {
                OutboundRenewStyle::RenewEndpoint
            },
            min_renew_after: rng.pick(&[Duration::ZERO, Duration::from_secs(5)]),
            max_renew_after: rng.pick(&[Duration::from_secs(60), Duration::MAX]),
            linger: rng.pick(&[Duration::ZERO, Duration::from_secs(10), Duration::MAX]),
            backoff_base: rng.pick(&[Duration::ZERO, Duration::from_secs(1)]),
            backoff_max: rng.pick(&[Duration::from_secs(8), Duration::MAX]),
            max_attempts: rng.range(0, 3) as u32,
            max_delete_attempts: 1 + rng.range(0, 2) as u32,
            max_rooms: 1 + rng.range(0, 5) as usize,
            max_candidates: rng.range(0, 3) as usize,
            ..OutboundConfig::default()
        };
        let start = rng.pick(&[1_000_000, Timestamp::MAX.as_millis() - 100_000]);
        Soak {
            w: World::new(cfg, 6, start),
            rng,
            given_up: BTreeSet::new(),
            id_room: BTreeMap::new(),
            current: BTreeMap::new(),
            seen: [0; 3],
            restored_rooms: 0,
        }
    }

    fn drain(&mut self, ctx: &str) {
        let trace = std::env::var("SOAK_TRACE").is_ok();
        let (given_up, id_room, current, seen) =
            (&mut self.given_up, &mut self.id_room, &mut self.current, &mut self.seen);
        let drained = self.w.drain_with(100_000, |w, o| {
            if trace {
                eprintln!("   OUT {o:?}");
            }
            if let OutboundOutput::Persist(matrix_peek::OutboundChange::Remove(
                OutboundKey::Room(room),
            )) = o
            {
                // The room has no current peek any more: the last one is never PUT again.
                if let Some(old) = current.remove(&**room) {
                    given_up.insert(old);
                }
            }
            let OutboundOutput::Send(req) = o else { return Ok::<_, Infallible>(()) };
            assert!(
                !w.pending.iter().any(|p| p.room_id == req.room_id
                    && p.server == req.server
                    && p.peek_id == req.peek_id),
                "{ctx}: two requests in flight for one peek {req:?}",
            );

            let key = (req.room_id.to_owned_id(), req.server.to_owned_id(), req.peek_id.clone());
            if let Some(r) = id_room.insert(req.peek_id.clone(), req.room_id.to_owned_id()) {
                assert_eq!(r, req.room_id, "{ctx}: peek id reused across rooms");
            }
            seen[match req.kind {
                OutboundRequestKind::Peek { .. } => 0,
                OutboundRequestKind::Renew => 1,
                OutboundRequestKind::Unpeek => 2,
            }] += 1;
            match req.kind {
                OutboundRequestKind::Peek { .. } => {
                    assert!(!given_up.contains(&key), "{ctx}: given-up id re-PUT {key:?}");
                    if let Some(old) = current.insert(req.room_id.to_owned_id(), key.clone())
                        && old != key
                    {
                        given_up.insert(old);
                    }
                }
                OutboundRequestKind::Unpeek => {
                    given_up.insert(key);
                }
                OutboundRequestKind::Renew => {}
            }
            Ok(())
        });
        let Ok(_) = drained;
        self.check(ctx);
    }

    /// What a driver does after every input: fire what is due at its current time. Afterwards
    /// the next deadline must be in the future (else the driver spins).
    fn settle(&mut self, ctx: &str) {
        self.w.m.handle_timeout(self.w.t());
        self.drain(ctx);
        if let Some(t) = self.w.m.poll_timeout() {
            assert!(t > self.w.t(), "{ctx}: poll_timeout {t:?} not after now {}", self.w.now);
        }
    }

    fn check(&self, ctx: &str) {
        let w = &self.w;
        if let Err((room, server, id)) = w.residents.accounted_for(&w.store) {
            panic!(
                "{ctx}: resident holds {room}/{server}/{id} but the store names {:?}",
                w.store.get(&OutboundKey::Room(room.clone().into()))
            );
        }
        assert!(w.m.in_flight() <= w.pending.len(), "{ctx}: in_flight > pending");
        // Per room: one request for the current peek and one per retired peek.
        let bound = w.m.len() * (1 + matrix_peek::OutboundPeeks::MAX_RETIRED);
        assert!(w.m.in_flight() <= bound, "{ctx}: {} requests in flight", w.m.in_flight());
        // New rooms only below the cap; a restore brings back whatever the store held.
        assert!(
            w.m.len() <= w.cfg.max_rooms.max(self.restored_rooms),
            "{ctx}: {} rooms over the cap of {}",
            w.m.len(),
            w.cfg.max_rooms
        );
    }

    /// The resident's answer to `req`: a good one (granted, renewed, deleted) when `good`,
    /// else anything.
    fn answer(&mut self, req: &OutboundRequest, good: bool) -> OutboundOutcome {
        let rng = &mut self.rng;
        let interval = rng.pick(&INTERVALS);
        let max_now = self.w.max_now;
        let exp = Timestamp::from_millis(max_now).saturating_add(interval).as_millis();
        let c = if good { 0 } else { rng.range(0, 9) };
        self.w.answer(req, || match req.kind {
            OutboundRequestKind::Peek { .. } => match c {
                0..=3 => Reply::Establish { interval, access: access(rng.range(0, 7) != 0) },
                // A refusing resident holds no peek for this key (a re-PUT's too ends).
                4 => Reply::Remove(OutboundOutcome::Failed(rng.pick(&[
                    OutboundFailure::Forbidden,
                    OutboundFailure::NotFound,
                    OutboundFailure::IncompatibleRoomVersion,
                ]))),
                5 => Reply::Hold {
                    until: exp.max(max_now + 1),
                    outcome: rng.pick(&[
                        OutboundOutcome::Failed(OutboundFailure::InvalidResponse),
                        OutboundOutcome::Renewed { renewal_interval: Some(interval) },
                        OutboundOutcome::Deleted,
                    ]),
                },
                6 | 7 => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::Unreachable)),
                _ => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::RateLimited {
                    retry_after: rng.pick(&[None, Some(Duration::ZERO), Some(Duration::MAX)]),
                })),
            },
            OutboundRequestKind::Renew => match c {
                0..=4 => Reply::Renew { interval },
                5 => Reply::Remove(OutboundOutcome::Failed(
                    rng.pick(&[OutboundFailure::NotFound, OutboundFailure::Forbidden]),
                )),
                6 => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::Other(502))),
                7 => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::RateLimited {
                    retry_after: Some(Duration::MAX),
                })),
                _ => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::Unreachable)),
            },
            OutboundRequestKind::Unpeek => {
                if c < 6 {
                    Reply::Delete
                } else {
                    Reply::DeleteLost
                }
            }
        })
    }

    fn step(&mut self) {
        let r = self.rng.range(0, 5) as usize;
        let room = self.w.rooms[r].clone();
        let op = self.rng.range(0, 99);
        let t = self.w.t();
        let ctx;
        match op {
            0..=14 => {
                let mask = self.rng.range(0, 7);
                let via: Vec<OwnedServerName> = SERVERS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, s)| (*s).try_into().unwrap())
                    .collect();
                self.w.m.handle_demand(t, &room, &via);
                ctx = format!("demand {room} {via:?}");
            }
            15..=24 => {
                self.w.m.handle_no_demand(t, &room);
                ctx = format!("no_demand {room}");
            }
            25..=26 => {
                self.w.m.handle_server_joined(t, &room);
                ctx = format!("joined {room}");
            }
            27..=28 => {
                self.w.m.handle_server_left(t, &room);
                ctx = format!("left {room}");
            }
            29 => {
                // Unpeekable, the same, or peekable but changed (it must be stored at once).
                let changed =
                    matrix_peek::RoomAccess::new(ruma_common::RoomVersionId::V12, true, false);
                let a = self.rng.pick(&[access(false), access(true), changed]);
                self.w.m.handle_access_changed(t, &room, &a);
                ctx = format!("access {room}");
            }
            30..=39 => {
                let d = self.rng.pick(&[1u64, 500, 5_000, 60_000, 4_000_000, u64::MAX / 4]);
                let back = self.rng.range(0, 4) == 0;
                let now =
                    if back { self.w.now.saturating_sub(d) } else { self.w.now.saturating_add(d) };
                self.w.advance_to(now);
                ctx = format!("advance to {now}");
            }
            40..=54 => {
                self.w.tick();
                ctx = "tick".into();
            }
            55..=84 => {
                if self.w.pending.is_empty() {
                    return;
                }
                let i = self.rng.index(self.w.pending.len());
                let req = self.w.pending.remove(i);
                let outcome = self.answer(&req, false);
                ctx = format!("answer {req:?} with {outcome:?}");
                self.w.m.handle_response(t, req.id, outcome.clone());
                if self.rng.range(0, 9) == 0 {
                    // A duplicate answer is ignored.
                    self.w.m.handle_response(t, req.id, outcome);
                }
            }
            85..=91 => {
                if self.w.residents.expiries.is_empty() {
                    return;
                }
                let i = self.rng.index(self.w.residents.expiries.len());
                let (room, server, id) = self.w.residents.expiries.remove(i);
                // The peek the entry names is retired and its renewal in flight (if any)
                // awaited, whatever the renewal style: the entry may predate a same-id `PUT`
                // that re-created it. Requests of retired peeks are never forgotten.
                self.w.m.handle_remote_expired(t, &server, &room, &id);
                self.drain("expired");
                ctx = format!("expired {room} {server} {id}");
            }
            _ => {
                // Crash: in-flight requests die unsent; restart maybe with a clock behind.
                let back = self.rng.pick(&[0u64, 0, 1_000, 10_000_000]);
                self.w.restart(self.w.clock.saturating_sub(back));
                self.restored_rooms = self.w.m.len();
                ctx = format!("restart at {} (max {})", self.w.now, self.w.max_now);
            }
        }
        if std::env::var("SOAK_TRACE").is_ok() {
            eprintln!("STEP {ctx}");
        }
        self.drain(&ctx);
        self.settle(&ctx);
    }

    fn finale(&mut self) {
        for room in self.w.rooms.clone() {
            self.w.m.handle_no_demand(self.w.t(), &room);
            self.drain("finale no_demand");
        }
        for i in 0..2_000 {
            if self.w.m.is_empty() && self.w.pending.is_empty() {
                break;
            }
            if i == 1_000 {
                // A `Duration::MAX` linger keeps renewing a lingering peek until the end of
                // time: go there.
                self.w.advance_to(Timestamp::MAX.as_millis());
                self.drain("finale end of time");
            }
            if let Some(req) = self.w.pending.pop() {
                let outcome = self.answer(&req, true);
                self.w.m.handle_response(self.w.t(), req.id, outcome);
                self.drain("finale answer");
            } else if self.w.m.poll_timeout().is_some() {
                self.w.tick();
                self.drain("finale tick");
            } else {
                break;
            }
        }
        let w = &self.w;
        assert!(w.m.is_empty(), "machine never settled: {} rooms", w.m.len());
        assert_eq!(w.m.in_flight(), 0);
        assert!(w.m.poll_timeout().is_none(), "a timer outlives every room");
        assert!(w.residents.peeks.is_empty(), "leaked remote peeks: {:?}", w.residents.peeks);
        assert!(
            w.store
                .keys()
                .all(|k| !matches!(k, OutboundKey::Room(_) | OutboundKey::Retired { .. })),
            "peek records left"
        );
    }
}

#[test]
fn outbound_long_random_runs_keep_every_invariant() {
    let seeds: u64 = std::env::var("SOAK_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let first: u64 =
        std::env::var("SOAK_FIRST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut seen = [0u64; 3];
    for seed in first..seeds {
        let mut s = Soak::new(seed);
        s.w.m.handle_timeout(s.w.t());
        for _ in 0..400 {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.step()));
            if let Err(e) = r {
                eprintln!("seed {seed} cfg {:?}", s.w.cfg);
                std::panic::resume_unwind(e);
            }
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.finale()));
        if let Err(e) = r {
            eprintln!("seed {seed} cfg {:?}", s.w.cfg);
            std::panic::resume_unwind(e);
        }
        for (total, n) in seen.iter_mut().zip(s.seen) {
            *total += n;
        }
    }
    eprintln!("sends (PUT, renew, DELETE): {seen:?}");
    assert!(seen.iter().all(|&n| n >= seeds), "the runs reach every request kind: {seen:?}");
}
