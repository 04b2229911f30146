//! Long random runs of `OutboundPeeks` against a model of the residents, beyond the property
//! test's reach: more rooms, both renew styles, extreme configs (zero linger/backoff/min
//! renewal, `Duration::MAX` intervals and hints), clocks near `Timestamp::MAX`, answers in any
//! order, restarts (also with a clock behind) at any step. Checked after every step:
//! * no spin: after `handle_timeout(now)`, `poll_timeout()` is later than every time seen;
//! * R59: every `Send` right after the `Persist` of its room's record;
//! * R58: at most one request in flight per room, at most one live remote peek per room;
//! * no leak: every peek a resident holds for us is the one the store names for its room;
//! * R47: an id once given up (deleted or replaced) is never `PUT` again, ids never cross rooms;
//! * at the end, with demand gone and residents answering, the machine and residents are empty.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use matrix_peek::testing::SimRng;
use matrix_peek::{
    OutboundChange, OutboundConfig, OutboundFailure, OutboundKey, OutboundOutcome, OutboundOutput,
    OutboundPeeks, OutboundRecord, OutboundRenewStyle, OutboundRequest, OutboundRequestKind,
    RoomAccess, Timestamp,
};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

const SERVERS: [&str; 3] = ["a.org", "b.org", "c.org"];
const INTERVALS: [Duration; 6] = [
    Duration::ZERO,
    Duration::from_millis(10),
    Duration::from_secs(30),
    Duration::from_secs(3600),
    Duration::from_millis(3_600_000_000),
    Duration::MAX,
];

type Key = (OwnedRoomId, OwnedServerName, String);

struct World {
    rng: SimRng,
    cfg: OutboundConfig,
    m: OutboundPeeks,
    now: u64,
    max_now: u64,
    store: BTreeMap<OutboundKey, OutboundRecord>,
    pending: Vec<OutboundRequest>,
    rooms: Vec<OwnedRoomId>,
    /// Residents' live peeks of ours, with their expiry.
    resident: BTreeMap<Key, u64>,
    /// `expired_peeks` not yet delivered.
    expiries: Vec<Key>,
    delete_failures: BTreeMap<Key, u32>,
    given_up: BTreeSet<Key>,
    id_room: BTreeMap<String, OwnedRoomId>,
    current: BTreeMap<OwnedRoomId, Key>,
    /// Sends seen per kind (PUT, renew, DELETE), to show the run reached them.
    seen: [u64; 3],
}

fn access(peekable: bool) -> RoomAccess {
    RoomAccess::new(RoomVersionId::V11, peekable, false)
}

impl World {
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
        World {
            m: OutboundPeeks::new(cfg.clone()),
            cfg,
            rng,
            now: start,
            max_now: start,
            store: BTreeMap::new(),
            pending: Vec::new(),
            rooms: (0..6).map(|i| format!("!r{i}:x.org").try_into().unwrap()).collect(),
            resident: BTreeMap::new(),
            expiries: Vec::new(),
            delete_failures: BTreeMap::new(),
            given_up: BTreeSet::new(),
            id_room: BTreeMap::new(),
            current: BTreeMap::new(),
            seen: [0; 3],
        }
    }

    fn t(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    fn set_now(&mut self, now: u64) {
        self.now = now.min(Timestamp::MAX.as_millis());
        self.max_now = self.max_now.max(self.now);
        let max_now = self.max_now;
        let expired: Vec<Key> =
            self.resident.iter().filter(|(_, e)| **e <= max_now).map(|(k, _)| k.clone()).collect();
        for k in expired {
            self.resident.remove(&k);
            self.expiries.push(k);
        }
    }

    fn drain(&mut self, ctx: &str) {
        let mut last: Option<OutboundOutput> = None;
        let mut n = 0;
        while let Some(o) = self.m.poll_output() {
            n += 1;
            assert!(n < 100_000, "{ctx}: output queue runs away");
            if std::env::var("REVIEW_TRACE").is_ok() {
                eprintln!("   OUT {o:?}");
            }
            match &o {
                OutboundOutput::Send(req) => {
                    let ok = matches!(&last, Some(OutboundOutput::Persist(OutboundChange::Upsert(
                        OutboundRecord::Peek(p)))) if p.room_id == req.room_id && p.peek_id == req.peek_id && p.server == req.server);
                    assert!(ok, "{ctx}: Send {req:?} not preceded by its Persist: {last:?}");
                    assert!(
                        !self.pending.iter().any(|p| p.room_id == req.room_id),
                        "{ctx}: two requests in flight for {}",
                        req.room_id
                    );
                    let key = (req.room_id.clone(), req.server.clone(), req.peek_id.clone());
                    if let Some(r) = self.id_room.insert(req.peek_id.clone(), req.room_id.clone()) {
                        assert_eq!(r, req.room_id, "{ctx}: peek id reused across rooms");
                    }
                    self.seen[match req.kind {
                        OutboundRequestKind::Peek { .. } => 0,
                        OutboundRequestKind::Renew => 1,
                        OutboundRequestKind::Unpeek => 2,
                    }] += 1;
                    match req.kind {
                        OutboundRequestKind::Peek { .. } => {
                            assert!(
                                !self.given_up.contains(&key),
                                "{ctx}: given-up id re-PUT {key:?}"
                            );
                            if let Some(old) = self.current.insert(req.room_id.clone(), key.clone())
                                && old != key
                            {
                                self.given_up.insert(old);
                            }
                        }
                        OutboundRequestKind::Unpeek => {
                            self.given_up.insert(key);
                        }
                        OutboundRequestKind::Renew => {}
                    }
                    self.pending.push(req.clone());
                }
                OutboundOutput::Persist(change) => change.apply_to(&mut self.store),
                _ => {}
            }
            last = Some(o);
        }
        self.check(ctx);
    }

    /// What a driver does after every input: fire what is due at its current time. Afterwards
    /// the next deadline must be in the future (else the driver spins).
    fn settle(&mut self, ctx: &str) {
        self.m.handle_timeout(self.t());
        self.drain(ctx);
        if let Some(t) = self.m.poll_timeout() {
            assert!(t > self.t(), "{ctx}: poll_timeout {t:?} not after now {}", self.now);
        }
    }

    fn check(&self, ctx: &str) {
        let mut per_room: BTreeMap<&OwnedRoomId, usize> = BTreeMap::new();
        for (room, server, id) in self.resident.keys() {
            *per_room.entry(room).or_default() += 1;
            let held = matches!(self.store.get(&OutboundKey::Room(room.clone())),
                Some(OutboundRecord::Peek(p)) if &p.server == server && &p.peek_id == id);
            assert!(
                held,
                "{ctx}: resident holds {room}/{server}/{id} but the store names {:?}",
                self.store.get(&OutboundKey::Room(room.clone()))
            );
        }
        for (room, n) in per_room {
            assert!(n <= 1, "{ctx}: {n} live remote peeks in {room}");
        }
        assert!(self.m.in_flight() <= self.pending.len(), "{ctx}: in_flight > pending");
        assert!(
            self.m.len() <= self.cfg.max_rooms.max(self.m.len().min(6)),
            "{ctx}: rooms over cap"
        );
    }

    fn answer(&mut self, req: &OutboundRequest, good: bool) -> OutboundOutcome {
        let key = (req.room_id.clone(), req.server.clone(), req.peek_id.clone());
        let exists = self.resident.contains_key(&key);
        let interval = self.rng.pick(&INTERVALS);
        let exp = Timestamp::from_millis(self.max_now).saturating_add(interval).as_millis();
        let c = if good { 0 } else { self.rng.range(0, 9) };
        match req.kind {
            OutboundRequestKind::Peek { .. } => match c {
                0..=3 => {
                    if exp > self.max_now {
                        self.resident.insert(key, exp);
                    }
                    let acc = access(self.rng.range(0, 7) != 0);
                    if !acc.is_peekable() {
                        // The resident would not grant it; the machine deletes it anyway.
                        self.resident.remove(&(
                            req.room_id.clone(),
                            req.server.clone(),
                            req.peek_id.clone(),
                        ));
                    }
                    OutboundOutcome::Established { renewal_interval: interval, access: acc }
                }
                4 => {
                    // A refusing resident holds no peek for this key (a re-PUT's too ends).
                    self.resident.remove(&key);
                    OutboundOutcome::Failed(self.rng.pick(&[
                        OutboundFailure::Forbidden,
                        OutboundFailure::NotFound,
                        OutboundFailure::IncompatibleRoomVersion,
                    ]))
                }
                5 => {
                    self.resident.insert(key, exp.max(self.max_now + 1));
                    self.rng.pick(&[
                        OutboundOutcome::Failed(OutboundFailure::InvalidResponse),
                        OutboundOutcome::Renewed { renewal_interval: Some(interval) },
                        OutboundOutcome::Deleted,
                    ])
                }
                6 | 7 => OutboundOutcome::Failed(OutboundFailure::Unreachable),
                _ => OutboundOutcome::Failed(OutboundFailure::RateLimited {
                    retry_after: self.rng.pick(&[None, Some(Duration::ZERO), Some(Duration::MAX)]),
                }),
            },
            OutboundRequestKind::Renew => {
                if !exists {
                    return OutboundOutcome::Failed(OutboundFailure::NotFound);
                }
                match c {
                    0..=4 => {
                        if exp > self.max_now {
                            self.resident.insert(key, exp);
                        } else {
                            self.resident.remove(&key);
                            self.expiries.push(key);
                        }
                        OutboundOutcome::Renewed { renewal_interval: Some(interval) }
                    }
                    5 => {
                        self.resident.remove(&key);
                        OutboundOutcome::Failed(
                            self.rng.pick(&[OutboundFailure::NotFound, OutboundFailure::Forbidden]),
                        )
                    }
                    6 => OutboundOutcome::Failed(OutboundFailure::Other(502)),
                    7 => OutboundOutcome::Failed(OutboundFailure::RateLimited {
                        retry_after: Some(Duration::MAX),
                    }),
                    _ => OutboundOutcome::Failed(OutboundFailure::Unreachable),
                }
            }
            OutboundRequestKind::Unpeek => {
                if c < 6 {
                    self.resident.remove(&key);
                    return if exists {
                        OutboundOutcome::Deleted
                    } else {
                        OutboundOutcome::Failed(OutboundFailure::NotFound)
                    };
                }
                let n = self.delete_failures.entry(key.clone()).or_default();
                *n += 1;
                if *n >= self.cfg.max_delete_attempts {
                    // The machine gives up; the resident expires it itself (documented).
                    self.resident.remove(&key);
                }
                OutboundOutcome::Failed(OutboundFailure::Unreachable)
            }
        }
    }

    fn step(&mut self) {
        let r = self.rng.range(0, 5) as usize;
        let room = self.rooms[r].clone();
        let op = self.rng.range(0, 99);
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
                self.m.handle_demand(self.t(), &room, &via);
                ctx = format!("demand {room} {via:?}");
            }
            15..=24 => {
                self.m.handle_no_demand(self.t(), &room);
                ctx = format!("no_demand {room}");
            }
            25..=26 => {
                self.m.handle_server_joined(self.t(), &room);
                ctx = format!("joined {room}");
            }
            27..=28 => {
                self.m.handle_server_left(self.t(), &room);
                ctx = format!("left {room}");
            }
            29 => {
                self.m.handle_access_changed(self.t(), &room, &access(self.rng.range(0, 1) == 0));
                ctx = format!("access {room}");
            }
            30..=39 => {
                let d = self.rng.pick(&[1u64, 500, 5_000, 60_000, 4_000_000, u64::MAX / 4]);
                let back = self.rng.range(0, 4) == 0;
                let now =
                    if back { self.now.saturating_sub(d) } else { self.now.saturating_add(d) };
                self.set_now(now);
                self.m.handle_timeout(self.t());
                ctx = format!("advance to {now}");
            }
            40..=54 => {
                if let Some(at) = self.m.poll_timeout() {
                    self.set_now(at.as_millis());
                    self.m.handle_timeout(self.t());
                }
                ctx = "tick".into();
            }
            55..=84 => {
                if self.pending.is_empty() {
                    return;
                }
                let i = self.rng.index(self.pending.len());
                let req = self.pending.remove(i);
                let outcome = self.answer(&req, false);
                ctx = format!("answer {req:?} with {outcome:?}");
                self.m.handle_response(self.t(), req.id, outcome.clone());
                if self.rng.range(0, 9) == 0 {
                    // A duplicate answer is ignored.
                    self.m.handle_response(self.t(), req.id, outcome);
                }
            }
            85..=91 => {
                if self.expiries.is_empty() {
                    return;
                }
                let i = self.rng.index(self.expiries.len());
                let (room, server, id) = self.expiries.remove(i);
                // A renewal or delete in flight for the expired peek is forgotten by the machine;
                // at the resident it finds nothing (404) and changes nothing.
                // (With RePut the machine keeps a DELETE owed: the id may have been re-created.)
                let reput = self.cfg.renew_style == OutboundRenewStyle::RePut;
                let orphan = |p: &OutboundRequest| {
                    p.room_id == room
                        && p.server == server
                        && p.peek_id == id
                        && match p.kind {
                            OutboundRequestKind::Peek { .. } => false,
                            OutboundRequestKind::Renew => true,
                            OutboundRequestKind::Unpeek => !reput,
                        }
                };
                let orphans: Vec<OutboundRequest> =
                    self.pending.iter().filter(|p| orphan(p)).cloned().collect();
                self.pending.retain(|p| !orphan(p));
                self.m.handle_remote_expired(self.t(), &server, &room, &id);
                self.drain("expired");
                for o in orphans {
                    self.m.handle_response(
                        self.t(),
                        o.id,
                        OutboundOutcome::Failed(OutboundFailure::NotFound),
                    );
                    let mut n = 0;
                    while let Some(out) = self.m.poll_output() {
                        n += 1;
                        let _ = out;
                    }
                    assert_eq!(n, 0, "an orphaned answer was acted on");
                }
                ctx = format!("expired {room} {server} {id}");
            }
            _ => {
                // Crash: in-flight requests die unsent; restart maybe with a clock behind.
                self.pending.clear();
                let back = self.rng.pick(&[0u64, 0, 1_000, 10_000_000]);
                self.now = self.max_now.saturating_sub(back);
                self.m = OutboundPeeks::restore(
                    self.t(),
                    self.cfg.clone(),
                    self.store.values().cloned(),
                );
                ctx = format!("restart at {} (max {})", self.now, self.max_now);
            }
        }
        if std::env::var("REVIEW_TRACE").is_ok() {
            eprintln!("STEP {ctx}");
        }
        self.drain(&ctx);
        self.settle(&ctx);
    }

    fn finale(&mut self) {
        for room in self.rooms.clone() {
            self.m.handle_no_demand(self.t(), &room);
            self.drain("finale no_demand");
        }
        for _ in 0..2_000 {
            if self.m.is_empty() && self.pending.is_empty() {
                break;
            }
            if let Some(req) = self.pending.pop() {
                let outcome = self.answer(&req, true);
                self.m.handle_response(self.t(), req.id, outcome);
                self.drain("finale answer");
            } else if let Some(at) = self.m.poll_timeout() {
                self.set_now(at.as_millis());
                self.m.handle_timeout(self.t());
                self.drain("finale tick");
            } else {
                break;
            }
        }
        assert!(self.m.is_empty(), "machine never settled: {} rooms", self.m.len());
        assert_eq!(self.m.in_flight(), 0);
        assert!(self.m.poll_timeout().is_none(), "a timer outlives every room");
        assert!(self.resident.is_empty(), "leaked remote peeks: {:?}", self.resident);
        assert!(self.store.keys().all(|k| !matches!(k, OutboundKey::Room(_))), "room records left");
    }
}

#[test]
fn outbound_long_random_runs_keep_every_invariant() {
    let seeds: u64 = std::env::var("REVIEW_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let first: u64 = std::env::var("REVIEW_FIRST").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut seen = [0u64; 3];
    for seed in first..seeds {
        let mut w = World::new(seed);
        w.m.handle_timeout(w.t());
        for _ in 0..400 {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.step()));
            if let Err(e) = r {
                eprintln!("seed {seed} cfg {:?}", w.cfg);
                std::panic::resume_unwind(e);
            }
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.finale()));
        if let Err(e) = r {
            eprintln!("seed {seed} cfg {:?}", w.cfg);
            std::panic::resume_unwind(e);
        }
        for (total, n) in seen.iter_mut().zip(w.seen) {
            *total += n;
        }
    }
    eprintln!("sends (PUT, renew, DELETE): {seen:?}");
    assert!(seen.iter().all(|&n| n >= seeds), "the runs reach every request kind: {seen:?}");
}
