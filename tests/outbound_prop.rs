//! Property test of `OutboundPeeks` against a plain reference model of the resident servers and
//! of local demand (BTreeMaps): random demand on/off, joins, scripted outcomes, remote expiry,
//! clocks jumping forwards and backwards, and crash-restarts from the persisted records.
//!
//! Invariants checked after every operation:
//! * R58: at most one live remote peek per room at the residents;
//! * R55: no `PUT`/renewal for a room without demand past its linger, none for a joined room (R57);
//! * R59: every `Send` immediately follows the `Persist` of its room's record;
//! * `poll_timeout` is in the future, exists whenever a room waits on no request, firing early is
//!   a no-op, it is no later than the model's renewal deadline of each established room and
//!   equals the earliest of them when every room is simply established;
//! * answers to requests of a previous run are ignored;
//! * at the end, with demand gone and the residents answering, nothing is leaked (R55, R59).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use matrix_peek::{
    OutboundChange, OutboundConfig, OutboundFailure, OutboundKey, OutboundOutcome, OutboundOutput,
    OutboundPeeks, OutboundRecord, OutboundRequest, OutboundRequestKind, OutboundState, RoomAccess,
    Timestamp,
};
use proptest::prelude::*;
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

const ROOMS: usize = 3;
const SERVERS: [&str; 3] = ["a.org", "b.org", "c.org"];
const INTERVALS: [u64; 4] = [10, 30_000, 3_600_000, 3_600_000_000];

#[derive(Debug, Clone)]
enum Op {
    Demand(usize, u8),
    NoDemand(usize),
    Joined(usize),
    Left(usize),
    AccessLost(usize),
    Advance(i64),
    Tick,
    Respond(usize, u8),
    RemoteExpire(usize, bool),
    Restart,
    Stale(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..ROOMS, 0u8..8).prop_map(|(r, m)| Op::Demand(r, m)),
        2 => (0..ROOMS).prop_map(Op::NoDemand),
        1 => (0..ROOMS).prop_map(Op::Joined),
        1 => (0..ROOMS).prop_map(Op::Left),
        1 => (0..ROOMS).prop_map(Op::AccessLost),
        3 => (-30_000i64..400_000).prop_map(Op::Advance),
        3 => Just(Op::Tick),
        8 => (0usize..8, 0u8..16).prop_map(|(i, c)| Op::Respond(i, c)),
        1 => (0..ROOMS, any::<bool>()).prop_map(|(r, s)| Op::RemoteExpire(r, s)),
        1 => Just(Op::Restart),
        1 => (0usize..8, 0u8..16).prop_map(|(i, c)| Op::Stale(i, c)),
    ]
}

fn config() -> OutboundConfig {
    OutboundConfig {
        min_renew_after: Duration::from_secs(5),
        max_renew_after: Duration::from_secs(60),
        linger: Duration::from_secs(10),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(8),
        max_attempts: 3,
        max_delete_attempts: 3,
        ..OutboundConfig::default()
    }
}

fn access(peekable: bool) -> RoomAccess {
    RoomAccess::new(RoomVersionId::V11, peekable, false)
}

struct World {
    cfg: OutboundConfig,
    m: OutboundPeeks,
    /// Wall clock as the host sees it (may go backwards) and the latest seen.
    now: u64,
    max_now: u64,
    store: BTreeMap<OutboundKey, OutboundRecord>,
    pending: Vec<OutboundRequest>,
    stale: Vec<OutboundRequest>,
    rooms: Vec<OwnedRoomId>,
    /// Residents: room -> (server, peek id) -> expiry.
    remote: BTreeMap<OwnedRoomId, BTreeMap<(OwnedServerName, String), u64>>,
    delete_failures: BTreeMap<(OwnedRoomId, String), u32>,
    /// room -> (demanded, undemanded since).
    demand: BTreeMap<OwnedRoomId, (bool, u64)>,
    joined: BTreeSet<OwnedRoomId>,
    /// room -> when the model expects the next renewal of its current peek.
    renew_due: BTreeMap<OwnedRoomId, u64>,
}

impl World {
    fn new() -> Self {
        let cfg = config();
        World {
            m: OutboundPeeks::new(cfg.clone()),
            cfg,
            now: 1_000_000,
            max_now: 1_000_000,
            store: BTreeMap::new(),
            pending: Vec::new(),
            stale: Vec::new(),
            rooms: (0..ROOMS).map(|i| format!("!r{i}:x.org").try_into().unwrap()).collect(),
            remote: BTreeMap::new(),
            delete_failures: BTreeMap::new(),
            demand: BTreeMap::new(),
            joined: BTreeSet::new(),
            renew_due: BTreeMap::new(),
        }
    }

    fn t(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    fn set_now(&mut self, now: u64) {
        self.now = now;
        self.max_now = self.max_now.max(now);
        let max_now = self.max_now;
        for peeks in self.remote.values_mut() {
            peeks.retain(|_, exp| *exp > max_now);
        }
    }

    fn drain(&mut self) -> Result<Vec<OutboundOutput>, TestCaseError> {
        let mut out: Vec<OutboundOutput> = Vec::new();
        while let Some(o) = self.m.poll_output() {
            prop_assert!(out.len() < 10_000, "output queue runs away");
            match &o {
                OutboundOutput::Send(req) => {
                    let ok = matches!(out.last(), Some(OutboundOutput::Persist(OutboundChange::Upsert(
                        OutboundRecord::Peek(p)))) if p.room_id == req.room_id && p.peek_id == req.peek_id);
                    prop_assert!(ok, "Send {:?} not preceded by its Persist", req);
                    if !matches!(req.kind, OutboundRequestKind::Unpeek) {
                        prop_assert!(!self.joined.contains(&req.room_id), "peek of a joined room");
                        let (demanded, since) =
                            self.demand.get(&req.room_id).copied().unwrap_or((false, 0));
                        let linger = self.cfg.linger.as_millis() as u64;
                        prop_assert!(
                            demanded || self.max_now <= since + linger,
                            "{:?} for an undemanded room past its linger",
                            req
                        );
                    }
                    self.pending.push(req.clone());
                }
                OutboundOutput::Persist(change) => change.apply_to(&mut self.store),
                _ => {}
            }
            out.push(o);
        }
        Ok(out)
    }

    /// The resident's answer to `req`, chosen by `code`, applied to the model.
    fn answer(&mut self, req: &OutboundRequest, code: u8) -> OutboundOutcome {
        let key = (req.server.clone(), req.peek_id.clone());
        let peeks = self.remote.entry(req.room_id.clone()).or_default();
        let exists = peeks.contains_key(&key);
        let interval = INTERVALS[(code / 4) as usize % 4];
        let max_now = self.max_now;
        match &req.kind {
            OutboundRequestKind::Peek { .. } => match code % 8 {
                0..=3 => {
                    peeks.insert(key, max_now + interval);
                    self.renew_due.insert(
                        req.room_id.clone(),
                        max_now
                            + self.cfg.renew_after(Duration::from_millis(interval)).as_millis()
                                as u64,
                    );
                    OutboundOutcome::Established {
                        renewal_interval: Duration::from_millis(interval),
                        access: access(true),
                    }
                }
                4 => OutboundOutcome::Failed(
                    [
                        OutboundFailure::Forbidden,
                        OutboundFailure::NotFound,
                        OutboundFailure::IncompatibleRoomVersion,
                    ][(code / 8) as usize % 3]
                        .clone(),
                ),
                5 => {
                    peeks.insert(key, max_now + 3_600_000);
                    OutboundOutcome::Failed(OutboundFailure::InvalidResponse)
                }
                6 => OutboundOutcome::Failed(OutboundFailure::Unreachable),
                _ => OutboundOutcome::Failed(OutboundFailure::RateLimited {
                    retry_after: (code & 8 != 0).then_some(Duration::from_secs(2)),
                }),
            },
            OutboundRequestKind::Renew => {
                if !exists {
                    return OutboundOutcome::Failed(OutboundFailure::NotFound);
                }
                match code % 8 {
                    0..=3 => {
                        peeks.insert(key, max_now + interval);
                        self.renew_due.insert(
                            req.room_id.clone(),
                            max_now
                                + self.cfg.renew_after(Duration::from_millis(interval)).as_millis()
                                    as u64,
                        );
                        OutboundOutcome::Renewed {
                            renewal_interval: Some(Duration::from_millis(interval)),
                        }
                    }
                    4 => {
                        peeks.remove(&key);
                        OutboundOutcome::Failed(OutboundFailure::NotFound)
                    }
                    5 => {
                        peeks.remove(&key);
                        OutboundOutcome::Failed(OutboundFailure::Forbidden)
                    }
                    6 => OutboundOutcome::Failed(OutboundFailure::Other(502)),
                    _ => OutboundOutcome::Failed(OutboundFailure::Unreachable),
                }
            }
            OutboundRequestKind::Unpeek => match code % 4 {
                0 | 1 => {
                    peeks.remove(&key);
                    OutboundOutcome::Deleted
                }
                2 => {
                    peeks.remove(&key);
                    OutboundOutcome::Failed(OutboundFailure::NotFound)
                }
                _ => {
                    let n = self
                        .delete_failures
                        .entry((req.room_id.clone(), req.peek_id.clone()))
                        .or_default();
                    *n += 1;
                    if *n >= self.cfg.max_delete_attempts {
                        // The machine gives up; the resident expires the peek itself (R43).
                        peeks.remove(&key);
                    }
                    OutboundOutcome::Failed(OutboundFailure::Unreachable)
                }
            },
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op.clone() {
            Op::Demand(r, mask) => {
                let room = self.rooms[r].clone();
                let via: Vec<OwnedServerName> = SERVERS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, s)| (*s).try_into().unwrap())
                    .collect();
                self.demand.insert(room.clone(), (true, 0));
                self.m.handle_demand(self.t(), &room, &via);
            }
            Op::NoDemand(r) => {
                let room = self.rooms[r].clone();
                if let Some((d, since)) = self.demand.get_mut(&room)
                    && *d
                {
                    *d = false;
                    *since = self.max_now;
                }
                self.m.handle_no_demand(self.t(), &room);
            }
            Op::Joined(r) => {
                self.joined.insert(self.rooms[r].clone());
                self.m.handle_server_joined(self.t(), &self.rooms[r].clone());
            }
            Op::Left(r) => {
                self.joined.remove(&self.rooms[r]);
                self.m.handle_server_left(self.t(), &self.rooms[r].clone());
            }
            Op::AccessLost(r) => {
                self.m.handle_access_changed(self.t(), &self.rooms[r].clone(), &access(false));
            }
            Op::Advance(d) => {
                let now = self.now.saturating_add_signed(d);
                self.set_now(now);
                self.m.handle_timeout(self.t());
            }
            Op::Tick => {
                if let Some(at) = self.m.poll_timeout() {
                    self.set_now(at.as_millis());
                    self.m.handle_timeout(self.t());
                }
            }
            Op::Respond(i, code) => {
                if !self.pending.is_empty() {
                    let req = self.pending.remove(i % self.pending.len());
                    let outcome = self.answer(&req, code);
                    self.m.handle_response(self.t(), req.id, outcome);
                }
            }
            Op::RemoteExpire(r, stale) => {
                let room = self.rooms[r].clone();
                let current = self.remote.get(&room).and_then(|p| p.keys().next().cloned());
                match (current, stale) {
                    (Some((server, id)), false) => {
                        self.remote.get_mut(&room).unwrap().remove(&(server.clone(), id.clone()));
                        self.m.handle_remote_expired(self.t(), &server, &room, &id);
                    }
                    _ => {
                        let server: OwnedServerName = "a.org".try_into().unwrap();
                        self.m.handle_remote_expired(self.t(), &server, &room, "zzzzzzzz");
                        prop_assert!(self.drain()?.is_empty(), "unknown expiry acted on");
                    }
                }
            }
            Op::Restart => {
                // In-flight requests die with the process (the residents never saw them).
                self.stale.append(&mut self.pending);
                let max_now = self.max_now;
                // Every restored room lingers afresh from the restart (linger ends are not stored).
                for d in self.demand.values_mut() {
                    *d = (false, max_now);
                }
                // The restart happens at the latest wall time (backwards jumps happen while running).
                self.now = self.max_now;
                self.m = OutboundPeeks::restore(
                    self.t(),
                    self.cfg.clone(),
                    self.store.values().cloned(),
                );
            }
            Op::Stale(i, code) => {
                if !self.stale.is_empty() {
                    let req = self.stale[i % self.stale.len()].clone();
                    let outcome = if code % 2 == 0 {
                        OutboundOutcome::Deleted
                    } else {
                        OutboundOutcome::Failed(OutboundFailure::Forbidden)
                    };
                    self.m.handle_response(self.t(), req.id, outcome);
                    prop_assert!(self.drain()?.is_empty(), "stale answer acted on");
                }
            }
        }
        self.drain()?;
        self.check()
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        for (room, peeks) in &self.remote {
            prop_assert!(peeks.len() <= 1, "two live remote peeks in {}: {:?}", room, peeks);
        }
        let timeout = self.m.poll_timeout();
        if let Some(t) = timeout {
            prop_assert!(t.as_millis() > self.max_now, "poll_timeout in the past");
            if t.as_millis() > self.max_now + 1 {
                let mut early = self.m.clone();
                early.handle_timeout(Timestamp::from_millis(t.as_millis() - 1));
                prop_assert!(early.poll_output().is_none(), "firing early did something");
                prop_assert_eq!(early.poll_timeout(), timeout);
            }
        }
        prop_assert!(self.m.in_flight() <= self.pending.len());
        if self.m.in_flight() < self.m.len() {
            prop_assert!(timeout.is_some(), "a room waits on nothing");
        }
        let mut all_established = !self.m.is_empty();
        let mut earliest = u64::MAX;
        for room in &self.rooms {
            let state = self.m.state(room);
            if state != Some(OutboundState::Established) && state.is_some() {
                all_established = false;
            }
            if state == Some(OutboundState::Established) {
                let due = self.renew_due.get(room).copied();
                prop_assert!(due.is_some(), "established without a model deadline");
                let due = due.unwrap();
                earliest = earliest.min(due);
                prop_assert!(timeout.is_some_and(|t| t.as_millis() <= due.max(self.max_now + 1)));
            }
            if state == Some(OutboundState::Lingering)
                && let Some(&(false, since)) = self.demand.get(room)
            {
                let until = since + self.cfg.linger.as_millis() as u64;
                prop_assert!(timeout.is_some_and(|t| t.as_millis() <= until.max(self.max_now + 1)));
            }
            if self.m.established(room).is_some() {
                prop_assert!(matches!(
                    state,
                    Some(OutboundState::Established | OutboundState::Renewing)
                ));
            }
        }
        if all_established && earliest > self.max_now {
            prop_assert_eq!(timeout.map(|t| t.as_millis()), Some(earliest));
        }
        Ok(())
    }

    /// Demand goes away everywhere and the residents answer: nothing may be left behind.
    fn finale(&mut self) -> Result<(), TestCaseError> {
        for r in 0..ROOMS {
            self.apply(&Op::NoDemand(r))?;
        }
        for _ in 0..500 {
            if self.m.is_empty() && self.pending.is_empty() {
                break;
            }
            while let Some(req) = self.pending.pop() {
                let code = if matches!(req.kind, OutboundRequestKind::Unpeek) { 0 } else { 8 };
                let outcome = self.answer(&req, code);
                self.m.handle_response(self.t(), req.id, outcome);
                self.drain()?;
                self.check()?;
            }
            self.apply(&Op::Tick)?;
        }
        prop_assert!(self.m.is_empty(), "machine never settled");
        prop_assert!(
            self.remote.values().all(BTreeMap::is_empty),
            "leaked remote peeks: {:?}",
            self.remote
        );
        prop_assert!(self.store.keys().all(|k| !matches!(k, OutboundKey::Room(_))));
        Ok(())
    }
}

proptest! {
    #[test]
    fn outbound_machine_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut w = World::new();
        w.m.handle_timeout(w.t()); // the machine has seen the start time
        for op in &ops {
            w.apply(op)?;
        }
        w.finale()?;
    }
}
