//! Property test of `OutboundPeeks` against its reference model (`tests/support/model/outbound.rs`:
//! the resident servers and the local demand): random demand on/off, joins, scripted outcomes,
//! remote expiry, clocks jumping forwards and backwards, and crash-restarts from the persisted
//! records.
//!
//! Invariants checked after every operation:
//! * R58, R55: every peek a resident holds is the room's current peek or a retired one owed a
//!   `DELETE` (the store names it), and a retired peek is dropped while held only as the
//!   oldest of more than `MAX_RETIRED`;
//! * R55: no `PUT`/renewal for a room without demand past its linger, none for a joined room (R57);
//! * R59: at every `Send` the store names its peek (a `PUT` or `DELETE` right after the
//!   `Persist` of its record, a renewal under the `Live` record of its lease), and every
//!   granted lease is stored as the machine holds it;
//! * `poll_timeout` is in the future, exists whenever a room waits on no request, firing early is
//!   a no-op, it is no later than the model's renewal deadline of each established room and
//!   equals the earliest of them when every room is simply established;
//! * answers to requests of a previous run are ignored;
//! * at the end, with demand gone and the residents answering, nothing is leaked (R55, R59).

use std::time::Duration;

use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundKey, OutboundOutcome, OutboundOutput, OutboundRequest,
    OutboundRequestKind, OutboundState, Timestamp,
};
use proptest::prelude::*;
use ruma_common::OwnedServerName;

use crate::support::model::{Demand, Reply, World, access};
use crate::support::prop::saved_beside_source;

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

/// What the resident does with `kind`, chosen by `code`; `interval` is the one it grants.
fn reply(kind: &OutboundRequestKind, code: u8, interval: Duration, max_now: u64) -> Reply {
    match kind {
        OutboundRequestKind::Peek { .. } => match code % 8 {
            0..=3 => Reply::Establish { interval, access: access(true) },
            4 => Reply::Answer(OutboundOutcome::Failed(
                [
                    OutboundFailure::Forbidden,
                    OutboundFailure::NotFound,
                    OutboundFailure::IncompatibleRoomVersion,
                ][(code / 8) as usize % 3]
                    .clone(),
            )),
            5 => Reply::Hold {
                until: max_now + 3_600_000,
                outcome: OutboundOutcome::Failed(OutboundFailure::InvalidResponse),
            },
            6 => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::Unreachable)),
            _ => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::RateLimited {
                retry_after: (code & 8 != 0).then_some(Duration::from_secs(2)),
            })),
        },
        OutboundRequestKind::Renew => match code % 8 {
            0..=3 => Reply::Renew { interval },
            4 => Reply::Remove(OutboundOutcome::Failed(OutboundFailure::NotFound)),
            5 => Reply::Remove(OutboundOutcome::Failed(OutboundFailure::Forbidden)),
            6 => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::Other(502))),
            _ => Reply::Answer(OutboundOutcome::Failed(OutboundFailure::Unreachable)),
        },
        OutboundRequestKind::Unpeek => match code % 4 {
            0 | 1 => Reply::Remove(OutboundOutcome::Deleted),
            2 => Reply::Remove(OutboundOutcome::Failed(OutboundFailure::NotFound)),
            _ => Reply::DeleteLost,
        },
    }
}

/// One generated case: the world, the demand the machine was told of, and the requests of
/// runs before a restart.
struct Case {
    w: World,
    demand: Demand,
    stale: Vec<OutboundRequest>,
}

impl Case {
    fn new() -> Self {
        Case {
            w: World::new(config(), ROOMS, 1_000_000),
            demand: Demand::default(),
            stale: Vec::new(),
        }
    }

    fn drain(&mut self) -> Result<Vec<OutboundOutput>, TestCaseError> {
        let demand = &self.demand;
        self.w.drain_with(10_000, |w, o| {
            if let OutboundOutput::Send(req) = o
                && !matches!(req.kind, OutboundRequestKind::Unpeek)
            {
                prop_assert!(!demand.joined.contains(&*req.room_id), "peek of a joined room");
                let (demanded, since) =
                    demand.rooms.get(&*req.room_id).copied().unwrap_or((false, 0));
                let linger = w.cfg.linger.as_millis() as u64;
                prop_assert!(
                    demanded || w.clock <= since + linger,
                    "{:?} for an undemanded room past its linger",
                    req
                );
            }
            Ok(())
        })
    }

    /// The resident's answer to `req`, chosen by `code`, applied to the model.
    fn answer(&mut self, req: &OutboundRequest, code: u8) -> OutboundOutcome {
        let interval = Duration::from_millis(INTERVALS[(code / 4) as usize % 4]);
        let (max_now, clock) = (self.w.max_now, self.w.clock);
        let outcome = self.w.answer(req, || reply(&req.kind, code, interval, max_now));
        // Only the room's current peek has a renewal deadline (a retired one is being deleted).
        let current = matches!(self.w.store.get(&OutboundKey::Room(req.room_id.clone())),
            Some(matrix_peek::OutboundRecord::Peek(p)) if p.peek_id == req.peek_id && p.server == req.server);
        if current
            && matches!(
                outcome,
                OutboundOutcome::Established { .. } | OutboundOutcome::Renewed { .. }
            )
        {
            let renew_after = self.w.cfg.renew_after(interval).as_millis() as u64;
            self.demand
                .renew_due
                .insert(req.room_id.to_owned_id(), (clock + renew_after, renew_after));
        }
        outcome
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let t = self.w.t();
        match op.clone() {
            Op::Demand(r, mask) => {
                let room = self.w.rooms[r].clone();
                let via: Vec<OwnedServerName> = SERVERS
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, s)| (*s).try_into().unwrap())
                    .collect();
                self.demand.rooms.insert(room.clone(), (true, 0));
                self.w.m.handle_demand(t, &room, &via);
            }
            Op::NoDemand(r) => {
                let room = self.w.rooms[r].clone();
                if let Some((d, since)) = self.demand.rooms.get_mut(&room)
                    && *d
                {
                    *d = false;
                    *since = self.w.clock;
                }
                self.w.m.handle_no_demand(t, &room);
            }
            Op::Joined(r) => {
                self.demand.joined.insert(self.w.rooms[r].clone());
                self.w.m.handle_server_joined(t, &self.w.rooms[r].clone());
            }
            Op::Left(r) => {
                self.demand.joined.remove(&self.w.rooms[r]);
                self.w.m.handle_server_left(t, &self.w.rooms[r].clone());
            }
            Op::AccessLost(r) => {
                self.w.m.handle_access_changed(t, &self.w.rooms[r].clone(), &access(false));
            }
            Op::Advance(d) => {
                let now = self.w.now.saturating_add_signed(d);
                let before = self.w.clock;
                self.w.advance_to(now);
                if self.w.clock < before {
                    self.demand.heal(self.w.clock);
                }
            }
            Op::Tick => self.w.tick(),
            Op::Respond(i, code) => {
                if !self.w.pending.is_empty() {
                    let req = self.w.pending.remove(i % self.w.pending.len());
                    let outcome = self.answer(&req, code);
                    self.w.m.handle_response(t, req.id, outcome);
                }
            }
            Op::RemoteExpire(r, stale) => {
                let room = self.w.rooms[r].clone();
                let current = self.w.residents.first_in(&room);
                match (current, stale) {
                    (Some((server, id)), false) => {
                        self.w.residents.peeks.remove(&(room.clone(), server.clone(), id.clone()));
                        self.w.m.handle_remote_expired(t, &server, &room, &id);
                    }
                    _ => {
                        let server: OwnedServerName = "a.org".try_into().unwrap();
                        self.w.m.handle_remote_expired(t, &server, &room, "zzzzzzzz");
                        prop_assert!(self.drain()?.is_empty(), "unknown expiry acted on");
                    }
                }
            }
            Op::Restart => {
                let clock = self.w.clock;
                // Every restored room lingers afresh from the restart (linger ends are not stored).
                for d in self.demand.rooms.values_mut() {
                    *d = (false, clock);
                }
                // The restart happens at the machine's clock (backwards jumps happen while
                // running); in-flight requests die with the process (the residents never saw
                // them).
                let lost = self.w.restart(clock);
                self.stale.extend(lost);
            }
            Op::Stale(i, code) => {
                if !self.stale.is_empty() {
                    let req = self.stale[i % self.stale.len()].clone();
                    let outcome = if code % 2 == 0 {
                        OutboundOutcome::Deleted
                    } else {
                        OutboundOutcome::Failed(OutboundFailure::Forbidden)
                    };
                    self.w.m.handle_response(t, req.id, outcome);
                    prop_assert!(self.drain()?.is_empty(), "stale answer acted on");
                }
            }
        }
        self.drain()?;
        self.check()
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        if let Err(key) = self.w.residents.accounted_for(&self.w.store) {
            prop_assert!(false, "a resident holds {:?}, which the store does not name", key);
        }
        let (m, max_now) = (&self.w.m, self.w.clock);
        let timeout = m.poll_timeout();
        if let Some(t) = timeout {
            prop_assert!(t.as_millis() > max_now, "poll_timeout in the past");
            if t.as_millis() > max_now + 1 {
                let mut early = m.clone();
                early.handle_timeout(Timestamp::from_millis(t.as_millis() - 1));
                prop_assert!(early.poll_output().is_none(), "firing early did something");
                prop_assert_eq!(early.poll_timeout(), timeout);
            }
        }
        prop_assert!(m.in_flight() <= self.w.pending.len());
        if m.in_flight() < m.len() {
            prop_assert!(timeout.is_some(), "a room waits on nothing");
        }
        let mut all_established = !m.is_empty();
        let mut earliest = u64::MAX;
        for room in &self.w.rooms {
            let state = m.state(room);
            if state != Some(OutboundState::Established) && state.is_some() {
                all_established = false;
            }
            if state == Some(OutboundState::Established) {
                let due = self.demand.renew_due.get(room).map(|(due, _)| *due);
                prop_assert!(due.is_some(), "established without a model deadline");
                let due = due.unwrap();
                earliest = earliest.min(due);
                prop_assert!(timeout.is_some_and(|t| t.as_millis() <= due.max(max_now + 1)));
            }
            if state == Some(OutboundState::Lingering)
                && let Some(&(false, since)) = self.demand.rooms.get(room)
            {
                let until = since + self.w.cfg.linger.as_millis() as u64;
                prop_assert!(timeout.is_some_and(|t| t.as_millis() <= until.max(max_now + 1)));
            }
            if m.established(room).is_some() {
                prop_assert!(matches!(
                    state,
                    Some(OutboundState::Established | OutboundState::Renewing)
                ));
            }
        }
        let retired = self.w.store.keys().any(|k| matches!(k, OutboundKey::Retired { .. }));
        if all_established && !retired && earliest > max_now {
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
            if self.w.m.is_empty() && self.w.pending.is_empty() {
                break;
            }
            while let Some(req) = self.w.pending.pop() {
                let code = if matches!(req.kind, OutboundRequestKind::Unpeek) { 0 } else { 8 };
                let outcome = self.answer(&req, code);
                self.w.m.handle_response(self.w.t(), req.id, outcome);
                self.drain()?;
                self.check()?;
            }
            self.apply(&Op::Tick)?;
        }
        prop_assert!(self.w.m.is_empty(), "machine never settled");
        prop_assert!(
            self.w.residents.peeks.is_empty(),
            "leaked remote peeks: {:?}",
            self.w.residents.peeks
        );
        let left = self
            .w
            .store
            .keys()
            .any(|k| matches!(k, OutboundKey::Room(_) | OutboundKey::Retired { .. }));
        prop_assert!(!left, "peek records left in the store");
        Ok(())
    }
}

proptest! {
    #![proptest_config(saved_beside_source(ProptestConfig::default()))]

    #[test]
    fn outbound_peeks_match_the_reference_model(ops in proptest::collection::vec(op(), 1..80)) {
        let mut c = Case::new();
        c.w.m.handle_timeout(c.w.t()); // the machine has seen the start time
        for op in &ops {
            c.apply(op)?;
        }
        c.finale()?;
    }
}

#[test]
fn the_stored_record_check_rejects_sends_the_store_does_not_justify() {
    use std::collections::BTreeMap;

    use matrix_peek::{
        OutboundChange, OutboundKey, OutboundOutput, OutboundPeekPhase, OutboundPeekRecord,
        OutboundRecord, OutboundRequest, OutboundRequestKind, RequestId, Timestamp,
    };

    use crate::support::model::check_send_stored;
    use crate::support::{HOUR, room, server};

    let (r, s) = (room("!r:a.org"), server("a.org"));
    let record = |peek_id: &str, phase| OutboundPeekRecord {
        room_id: r.clone().into(),
        server: s.clone().into(),
        peek_id: peek_id.into(),
        phase,
        access: None,
    };
    let live = OutboundPeekPhase::Live {
        renewed_at: Timestamp::from_millis(0),
        interval: HOUR,
        renew_at: Timestamp::from_millis(1),
        expires_at: Timestamp::from_millis(2),
    };
    let request = |kind| OutboundRequest {
        id: RequestId(1),
        server: s.clone().into(),
        room_id: r.clone().into(),
        peek_id: "p1".into(),
        kind,
    };
    let put = request(OutboundRequestKind::Peek { ver: vec![].into() });
    let mut store = BTreeMap::new();
    store.insert(
        OutboundKey::Room(r.clone().into()),
        OutboundRecord::Peek(record("p1", live.clone())),
    );
    let upsert = |rec| OutboundOutput::Persist(OutboundChange::Upsert(rec));

    // Justified: a renewal of the stored lease; a PUT right after its Opening record.
    assert!(check_send_stored(&store, None, &request(OutboundRequestKind::Renew), false).is_ok());
    let opening = upsert(OutboundRecord::Peek(record("p1", OutboundPeekPhase::Opening)));
    assert!(check_send_stored(&store, Some(&opening), &put, false).is_ok());
    // A renewal whose stored lease names another peek id.
    let other = BTreeMap::from([(
        OutboundKey::Room(r.clone().into()),
        OutboundRecord::Peek(record("p2", live.clone())),
    )]);
    assert!(check_send_stored(&other, None, &request(OutboundRequestKind::Renew), false).is_err());
    // A PUT with no Persist before it, unless it re-PUTs a stored lease (RePut renewals).
    assert!(check_send_stored(&store, None, &put, false).is_err());
    assert!(check_send_stored(&store, None, &put, true).is_ok());
    assert!(check_send_stored(&BTreeMap::new(), None, &put, true).is_err());
    // A DELETE whose Retired record is not stored, whatever came before it; with its record
    // stored (written when the peek was retired), wherever in the outputs.
    let delete = request(OutboundRequestKind::Unpeek);
    assert!(check_send_stored(&store, Some(&opening), &delete, false).is_err());
    let retired = |peek_id: &str| {
        let record = OutboundRecord::Retired {
            room_id: r.clone().into(),
            server: s.clone().into(),
            peek_id: peek_id.into(),
        };
        (record.key(), record)
    };
    let mut other_retired = store.clone();
    other_retired.extend([retired("p2")]);
    assert!(
        check_send_stored(&other_retired, Some(&upsert(retired("p2").1)), &delete, false).is_err()
    );
    let mut with_retired = store.clone();
    with_retired.extend([retired("p1")]);
    assert!(check_send_stored(&with_retired, None, &delete, false).is_ok());
    assert!(check_send_stored(&with_retired, Some(&opening), &delete, false).is_ok());
}
