//! Property test: `LocalPeeks` against a plain BTreeMap reference model (DESIGN §13), with
//! random operations over a few users, devices and rooms, backwards and jumping clocks, and
//! restores from the `Persist` stream. Checked after every step: live sets and leases,
//! `poll_timeout`, `sync_delta` for remembered `since` tokens, demand (queried and as
//! reported by `RoomDemand`), ended-peek counts, and a bounded output queue.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use matrix_peek::{
    LocalConfig, LocalEndReason, LocalKey, LocalOutput, LocalPeekError, LocalPeeks, LocalRecord,
    RoomAccess, StreamPosition, SyncDelta, Timestamp,
};
use proptest::prelude::*;
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId};

const USERS: u8 = 3;
const DEVICES: u8 = 2;
const ROOMS: u8 = 3;
const LEASE: u64 = 1_000;
const PER_DEVICE: usize = 2;
const TOTAL: usize = 6;
const RETENTION: u64 = 1_500;
const IDLE: u64 = 700;

fn user(n: u8) -> OwnedUserId {
    UserId::parse(format!("@u{n}:example.org")).unwrap()
}
fn dev(n: u8) -> OwnedDeviceId {
    format!("D{n}").as_str().into()
}
fn room(n: u8) -> OwnedRoomId {
    RoomId::parse(format!("!r{n}:example.org")).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Peek { u: u8, d: u8, r: u8, joined: bool, access: u8 },
    Unpeek { u: u8, d: u8, r: u8 },
    Joined { u: u8, r: u8 },
    AccessLost { r: u8 },
    Unavailable { r: u8 },
    DeviceRemoved { u: u8, d: u8 },
    UserDeactivated { u: u8 },
    Synced { u: u8, d: u8 },
    Timeout,
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    let (u, d, r) = (0..USERS, 0..DEVICES, 0..ROOMS);
    prop_oneof![
        6 => (u.clone(), d.clone(), r.clone(), prop::bool::weighted(0.1), prop_oneof![6 => Just(0u8), 1 => 1..4u8])
            .prop_map(|(u, d, r, joined, access)| Op::Peek { u, d, r, joined, access }),
        3 => (u.clone(), d.clone(), r.clone()).prop_map(|(u, d, r)| Op::Unpeek { u, d, r }),
        1 => (u.clone(), r.clone()).prop_map(|(u, r)| Op::Joined { u, r }),
        1 => r.clone().prop_map(|r| Op::AccessLost { r }),
        1 => r.prop_map(|r| Op::Unavailable { r }),
        1 => (u.clone(), d.clone()).prop_map(|(u, d)| Op::DeviceRemoved { u, d }),
        1 => u.clone().prop_map(|u| Op::UserDeactivated { u }),
        2 => (u, d).prop_map(|(u, d)| Op::Synced { u, d }),
        4 => Just(Op::Timeout),
        1 => Just(Op::Restore),
    ]
}

/// A clock step: mostly small forward, sometimes backwards, sometimes a big jump.
fn dt() -> impl Strategy<Value = i64> {
    prop_oneof![8 => 0..600i64, 2 => -800..0i64, 1 => Just(10_000_000_000i64)]
}

type Dev = (u8, u8);
type Key = (u8, u8, u8);

#[derive(Debug, Clone, Copy)]
enum ME {
    Peeking { started: u64, expires: u64 },
    Ended { started: u64, pos: u64, at: u64, joined: bool },
}

#[derive(Debug, Clone, Default)]
struct Model {
    idle_after: Option<u64>,
    clock: u64,
    entries: BTreeMap<Key, ME>,
    last_active: BTreeMap<Dev, u64>,
    idle: BTreeSet<Dev>,
    pos: u64,
    horizon: u64,
    ended_now: usize,
}

impl Model {
    fn live(&self) -> impl Iterator<Item = (Key, u64)> + '_ {
        self.entries.iter().filter_map(|(k, e)| match e {
            ME::Peeking { expires, .. } => Some((*k, *expires)),
            ME::Ended { .. } => None,
        })
    }
    fn dev_live(&self, dv: Dev) -> usize {
        self.live().filter(|((u, d, _), _)| (*u, *d) == dv).count()
    }
    fn ended_of(&self, dv: Option<Dev>) -> Vec<(u64, Key)> {
        self.entries
            .iter()
            .filter_map(|(k, e)| match e {
                ME::Ended { pos, .. } if dv.is_none_or(|dv| (k.0, k.1) == dv) => Some((*pos, *k)),
                _ => None,
            })
            .collect()
    }
    fn touch(&mut self, dv: Dev) {
        self.last_active.insert(dv, self.clock);
        self.idle.remove(&dv);
    }
    fn evict(&mut self, k: Key, pos: u64) {
        self.entries.remove(&k);
        self.horizon = self.horizon.max(pos);
    }
    fn enforce(&mut self, dv: Dev) {
        loop {
            let mine = self.ended_of(Some(dv));
            if mine.len() <= PER_DEVICE {
                break;
            }
            let (pos, k) = *mine.iter().min().unwrap();
            self.evict(k, pos);
        }
        loop {
            let all = self.ended_of(None);
            if all.is_empty() || all.len() + self.live().count() <= TOTAL {
                break;
            }
            let (pos, k) = *all.iter().min().unwrap();
            self.evict(k, pos);
        }
    }
    fn limit(&self, earliest: Option<u64>) -> LocalPeekError {
        let ms = earliest.map_or(LEASE, |e| e.saturating_sub(self.clock)).max(1);
        LocalPeekError::LimitExceeded { retry_after: Duration::from_millis(ms) }
    }
    fn peek(&mut self, k: Key, joined: bool, access: &RoomAccess) -> Result<u64, LocalPeekError> {
        let now = self.clock;
        let dv = (k.0, k.1);
        if let Some(ME::Peeking { expires, .. }) = self.entries.get_mut(&k) {
            *expires = (*expires).max(now + LEASE);
            let e = *expires;
            self.touch(dv);
            return Ok(e);
        }
        if joined {
            return Err(LocalPeekError::AlreadyJoined);
        }
        if !access.world_readable {
            return Err(LocalPeekError::NotPeekable);
        }
        if access.encrypted {
            return Err(LocalPeekError::Encrypted);
        }
        if self.dev_live(dv) >= PER_DEVICE {
            let earliest =
                self.live().filter(|((u, d, _), _)| (*u, *d) == dv).map(|(_, e)| e).min();
            return Err(self.limit(earliest));
        }
        if self.live().count() >= TOTAL {
            return Err(self.limit(self.live().map(|(_, e)| e).min()));
        }
        self.touch(dv);
        self.pos += 1;
        self.entries.insert(k, ME::Peeking { started: self.pos, expires: now + LEASE });
        self.enforce(dv);
        Ok(now + LEASE)
    }
    fn end(&mut self, k: Key, removed: bool, joined: bool) {
        let Some(ME::Peeking { started, .. }) = self.entries.get(&k).copied() else { return };
        self.ended_now += 1;
        let dv = (k.0, k.1);
        if removed {
            self.entries.remove(&k);
        } else {
            self.pos += 1;
            self.entries.insert(k, ME::Ended { started, pos: self.pos, at: self.clock, joined });
        }
        if self.dev_live(dv) == 0 {
            self.idle.remove(&dv);
        }
        if !removed {
            self.enforce(dv);
        }
    }
    fn end_room(&mut self, r: u8) {
        let keys: Vec<Key> = self.live().map(|(k, _)| k).filter(|k| k.2 == r).collect();
        for k in keys {
            self.end(k, false, false);
        }
    }
    fn remove_device(&mut self, dv: Dev) {
        let keys: Vec<Key> = self.entries.keys().copied().filter(|k| (k.0, k.1) == dv).collect();
        for k in keys {
            if matches!(self.entries[&k], ME::Peeking { .. }) {
                self.end(k, true, false);
            } else {
                self.entries.remove(&k);
            }
        }
    }
    fn timeout(&mut self) {
        let now = self.clock;
        let mut due: Vec<(u64, Key)> =
            self.live().filter(|(_, e)| *e <= now).map(|(k, e)| (e, k)).collect();
        due.sort();
        for (_, k) in due {
            self.end(k, false, false);
        }
        if let Some(idle) = self.idle_after {
            let devs: BTreeSet<Dev> = self.live().map(|((u, d, _), _)| (u, d)).collect();
            for dv in devs {
                if !self.idle.contains(&dv) && self.last_active[&dv] + idle <= now {
                    self.idle.insert(dv);
                }
            }
        }
        let collect: Vec<(u64, Key)> = self
            .entries
            .iter()
            .filter_map(|(k, e)| match e {
                ME::Ended { pos, at, .. } if at + RETENTION <= now => Some((*pos, *k)),
                _ => None,
            })
            .collect();
        for (pos, k) in collect {
            self.evict(k, pos);
        }
    }
    fn restore(&mut self) {
        let devs: BTreeSet<Dev> = self.live().map(|((u, d, _), _)| (u, d)).collect();
        self.idle.clear();
        for dv in devs {
            self.last_active.insert(dv, self.clock);
        }
    }
    fn poll_timeout(&self) -> Option<u64> {
        let leases = self.live().map(|(_, e)| e);
        let idle = self.idle_after.into_iter().flat_map(|idle| {
            let devs: BTreeSet<Dev> = self.live().map(|((u, d, _), _)| (u, d)).collect();
            devs.into_iter()
                .filter(|dv| !self.idle.contains(dv))
                .map(move |dv| self.last_active[&dv] + idle)
        });
        let collect = self.entries.values().filter_map(|e| match e {
            ME::Ended { at, .. } => Some(at + RETENTION),
            ME::Peeking { .. } => None,
        });
        leases.chain(idle).chain(collect).min()
    }
    fn demanded(&self) -> BTreeSet<u8> {
        self.live()
            .filter(|((u, d, _), _)| !self.idle.contains(&(*u, *d)))
            .map(|((_, _, r), _)| r)
            .collect()
    }
    fn sync_delta(&self, dv: Dev, since: Option<u64>) -> SyncDelta {
        let since = since.filter(|s| *s >= self.horizon && *s <= self.pos);
        let mut delta = SyncDelta { next: StreamPosition(self.pos), ..SyncDelta::default() };
        for ((u, d, r), e) in &self.entries {
            if (*u, *d) != dv {
                continue;
            }
            match (e, since) {
                (ME::Peeking { .. }, None) => delta.started.push(room(*r)),
                (ME::Peeking { started, .. }, Some(s)) if *started > s => {
                    delta.started.push(room(*r))
                }
                (ME::Peeking { .. }, Some(_)) => delta.peeking.push(room(*r)),
                (ME::Ended { .. }, None) => {}
                (ME::Ended { started, pos, joined, .. }, Some(s)) => {
                    if *pos > s && *started <= s {
                        if *joined {
                            delta.joined.push(room(*r))
                        } else {
                            delta.ended.push(room(*r))
                        }
                    }
                }
            }
        }
        delta.started.sort();
        delta.peeking.sort();
        delta.ended.sort();
        delta.joined.sort();
        delta
    }
}

fn access(kind: u8) -> RoomAccess {
    let v = RoomVersionId::V11;
    match kind {
        0 => RoomAccess::new(v, true, false),
        1 => RoomAccess::new(v, false, false),
        2 => RoomAccess::new(v, true, true),
        _ => RoomAccess::new(v, false, true),
    }
}

fn config(idle: bool) -> LocalConfig {
    LocalConfig {
        lease: Duration::from_millis(LEASE),
        max_peeks_per_device: PER_DEVICE,
        max_peeks_total: TOTAL,
        ended_retention: Duration::from_millis(RETENTION),
        device_idle_after: idle.then_some(Duration::from_millis(IDLE)),
    }
}

proptest! {
    // 256 cases by default (proptest's default); raise with PROPTEST_CASES.
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(256), ..ProptestConfig::default() })]

    // R5, R10, R11, R13, R15, R16, R19-R25, DESIGN §4.3/§4.4, persistence contract
    #[test]
    fn local_peeks_match_the_reference_model(
        idle in any::<bool>(),
        steps in prop::collection::vec((op(), dt()), 1..60),
    ) {
        let cfg = config(idle);
        let mut m = LocalPeeks::new(cfg.clone());
        let mut model = Model { idle_after: idle.then_some(IDLE), clock: 0, ..Model::default() };
        let mut now: i64 = 1_000;
        let mut store: BTreeMap<LocalKey, LocalRecord> = BTreeMap::new();
        let mut reported: BTreeSet<OwnedRoomId> = BTreeSet::new();
        let mut tokens: Vec<u64> = vec![0];
        for (op, dt) in steps {
            now = (now + dt).max(0);
            let ts = Timestamp::from_millis(now as u64);
            model.clock = model.clock.max(now as u64);
            model.ended_now = 0;
            match op {
                Op::Peek { u, d, r, joined, access: a } => {
                    let got = m.handle_peek(ts, &user(u), &dev(d), &room(r), joined, &access(a));
                    let want = model.peek((u, d, r), joined, &access(a));
                    prop_assert_eq!(got.map(|g| g.expires_at.as_millis()), want);
                }
                Op::Unpeek { u, d, r } => {
                    let got = m.handle_unpeek(ts, &user(u), &dev(d), &room(r));
                    let live = matches!(model.entries.get(&(u, d, r)), Some(ME::Peeking { .. }));
                    prop_assert_eq!(got.is_ok(), live);
                    if !live {
                        prop_assert_eq!(got, Err(LocalPeekError::NotPeeking));
                    }
                    model.end((u, d, r), false, false);
                }
                Op::Joined { u, r } => {
                    m.handle_joined(ts, &user(u), &room(r));
                    for d in 0..DEVICES {
                        model.end((u, d, r), false, true);
                    }
                }
                Op::AccessLost { r } => {
                    m.handle_access_changed(ts, &room(r), &access(1));
                    model.end_room(r);
                }
                Op::Unavailable { r } => {
                    m.handle_room_unavailable(ts, &room(r));
                    model.end_room(r);
                }
                Op::DeviceRemoved { u, d } => {
                    m.handle_device_removed(ts, &user(u), &dev(d));
                    model.remove_device((u, d));
                }
                Op::UserDeactivated { u } => {
                    m.handle_user_deactivated(ts, &user(u));
                    for d in 0..DEVICES {
                        model.remove_device((u, d));
                    }
                }
                Op::Synced { u, d } => {
                    m.handle_device_synced(ts, &user(u), &dev(d));
                    if model.entries.keys().any(|k| (k.0, k.1) == (u, d)) {
                        model.touch((u, d));
                    }
                }
                Op::Timeout => {
                    m.handle_timeout(ts);
                    model.timeout();
                }
                Op::Restore => {
                    m = LocalPeeks::restore(Timestamp::from_millis(model.clock), cfg.clone(), store.values().cloned());
                    model.restore();
                    reported.clear();
                }
            }
            // Drain: apply Persist, follow RoomDemand, count PeekEnded; bounded queue.
            let out: Vec<LocalOutput> = std::iter::from_fn(|| m.poll_output()).collect();
            prop_assert!(out.len() <= 8 * (TOTAL + 1) + 8, "output queue too long: {}", out.len());
            let mut ended = 0;
            for o in out {
                match o {
                    LocalOutput::Persist(change) => change.apply_to(&mut store),
                    LocalOutput::RoomDemand { room_id, demanded } => {
                        prop_assert_eq!(reported.contains(&room_id), !demanded, "demand flip must be a change");
                        if demanded { reported.insert(room_id); } else { reported.remove(&room_id); }
                    }
                    LocalOutput::PeekEnded { reason, .. } => {
                        let unavailable = matches!(op, Op::Unavailable { .. });
                        prop_assert!(reason != LocalEndReason::RemoteUnavailable || unavailable);
                        ended += 1;
                    }
                    LocalOutput::Wake { .. } => {}
                    other => panic!("unexpected output {other:?}"),
                }
            }
            prop_assert_eq!(ended, model.ended_now);
            // Live sets and leases.
            prop_assert_eq!(m.len(), model.live().count());
            for u in 0..USERS { for d in 0..DEVICES { for r in 0..ROOMS {
                let want = match model.entries.get(&(u, d, r)) {
                    Some(ME::Peeking { expires, .. }) => Some(*expires),
                    _ => None,
                };
                prop_assert_eq!(m.lease(&user(u), &dev(d), &room(r)).map(|t| t.as_millis()), want);
            }}}
            for r in 0..ROOMS {
                let mut got: Vec<(OwnedUserId, OwnedDeviceId)> =
                    m.peekers(&room(r)).map(|(u, d)| (u.to_owned(), d.to_owned())).collect();
                got.sort();
                let mut want: Vec<(OwnedUserId, OwnedDeviceId)> =
                    model.live().filter(|(k, _)| k.2 == r).map(|((u, d, _), _)| (user(u), dev(d))).collect();
                want.sort();
                prop_assert_eq!(got, want);
            }
            // Deadlines.
            prop_assert_eq!(m.poll_timeout().map(|t| t.as_millis()), model.poll_timeout());
            // Demand, queried and as reported.
            let want: BTreeSet<OwnedRoomId> = model.demanded().into_iter().map(room).collect();
            let got: BTreeSet<OwnedRoomId> = m.demanded_rooms().map(|r| r.to_owned()).collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(&reported, &want);
            // Sync deltas for remembered tokens.
            prop_assert_eq!(m.stream_position().0, model.pos);
            tokens.push(model.pos);
            let n = tokens.len();
            let picks = [None, Some(tokens[0]), Some(tokens[n / 2]), Some(tokens[n.saturating_sub(3)]), Some(tokens[n - 1])];
            for u in 0..USERS { for d in 0..DEVICES {
                for since in picks {
                    let got = m.sync_delta(&user(u), &dev(d), since.map(StreamPosition));
                    let want = model.sync_delta((u, d), since);
                    prop_assert!(
                        got.joined.iter().all(|r| !got.started.contains(r) && !got.peeking.contains(r)),
                        "R23: never both peek and join"
                    );
                    prop_assert_eq!(got, want, "u{} d{} since {:?}", u, d, since);
                }
            }}
        }
    }
}
