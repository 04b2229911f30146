//! Per-op local groups (`local_peek`, `local_renew`, `local_unpeek`) at one population size,
//! and the builders of the local machine and floor.

use std::hint::black_box;

use criterion::Criterion;
use matrix_peek::{LocalPeeks, LocalRecord};
use matrix_peek::{RoomAccess, StreamPosition};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId};

use crate::support::*;
use crate::{Churn, PerOp, Plan, Renew, access, spare};

/// A local peek's key: (user, device, room).
type Key<'a> = (&'a OwnedUserId, &'a OwnedDeviceId, &'a OwnedRoomId);

/// Live key `i` of the population.
fn live_key(ids: &LocalIds, i: usize) -> Key<'_> {
    let (u, d, r) = ids.key(i);
    (&ids.users[u], &ids.devices[d], r)
}

/// Spare key `e` (a fresh peek).
fn fresh_key(ids: &LocalIds, e: usize) -> Key<'_> {
    let (u, d, r) = ids.extra(e);
    (&ids.users[u], &ids.devices[d], r)
}

pub fn drain(m: &mut LocalPeeks) {
    while let Some(o) = m.poll_output() {
        black_box(o);
    }
}

pub fn records(ids: &LocalIds) -> Vec<LocalRecord> {
    let mut v: Vec<LocalRecord> = (0..ids.n)
        .map(|i| {
            let (u, d, r) = ids.key(i);
            LocalRecord::Peek {
                user_id: ids.users[u].clone(),
                device_id: ids.devices[d].clone(),
                room_id: r.clone(),
                started: StreamPosition(i as u64 + 1),
                expires_at: ts(T0).saturating_add(LONG),
            }
        })
        .collect();
    v.push(LocalRecord::Stream {
        position: StreamPosition(ids.n as u64),
        horizon: StreamPosition(0),
    });
    v
}

pub fn machine(ids: &LocalIds) -> LocalPeeks {
    let mut m = LocalPeeks::restore(ts(T0), LocalIds::config(), records(ids));
    drain(&mut m);
    m
}

fn floor(ids: &LocalIds) -> Floor {
    let mut f = Floor::default();
    for i in 0..ids.n {
        let (u, d, r) = ids.key(i);
        f.upsert(ids.users[u].as_str(), ids.devices[d].as_str(), r.as_str(), ts(T0));
    }
    f
}

/// The machine as the per-op workloads drive it: every output drained. A renew is a repeated
/// `handle_peek` (it extends the lease).
struct Machine {
    m: LocalPeeks,
    acc: RoomAccess,
}

impl Churn<Key<'_>> for Machine {
    fn create(&mut self, (u, d, r): Key<'_>, now: u64) {
        black_box(self.m.handle_peek(ts(now), u, d, r, false, &self.acc).expect("peek granted"));
        drain(&mut self.m);
    }
    fn remove(&mut self, (u, d, r): Key<'_>, now: u64) {
        self.m.handle_unpeek(ts(now), u, d, r).expect("live");
        drain(&mut self.m);
    }
}

impl Renew<Key<'_>> for Machine {
    fn renew(&mut self, key: Key<'_>, now: u64) {
        self.create(key, now);
    }
}

impl Churn<Key<'_>> for Floor {
    fn create(&mut self, (u, d, r): Key<'_>, now: u64) {
        self.upsert(u.as_str(), d.as_str(), r.as_str(), deadline(now));
    }
    fn remove(&mut self, (u, d, r): Key<'_>, _now: u64) {
        black_box(Floor::remove(self, u.as_str(), d.as_str(), r.as_str()));
    }
}

impl Renew<Key<'_>> for Floor {
    fn renew(&mut self, key: Key<'_>, now: u64) {
        self.create(key, now);
    }
}

/// The local per-op groups at `n` live peeks; machine and floor share one clock.
pub fn bench(c: &mut Criterion, plan: &Plan, n: usize) {
    let ops = ["local_peek", "local_renew", "local_unpeek"];
    if !ops.iter().any(|g| plan.wants(g)) {
        return;
    }
    let e = spare(n);
    let ids = LocalIds::new(n, e);
    let mut m = Machine { m: machine(&ids), acc: access() };
    let mut f = floor(&ids);
    let w = PerOp::new(n, |i| live_key(&ids, i), |e| fresh_key(&ids, e));

    if plan.wants("local_peek") {
        let mut g = c.benchmark_group("local_peek");
        w.creates(&mut g, "machine", &mut m);
        w.creates(&mut g, "floor", &mut f);
        g.finish();
    }
    if plan.wants("local_renew") {
        let mut g = c.benchmark_group("local_renew");
        let mut keys = Scatter::new(n);
        w.renews(&mut g, "machine", &mut m, &mut keys);
        w.renews(&mut g, "floor", &mut f, &mut keys);
        g.finish();
    }
    if plan.wants("local_unpeek") {
        let mut g = c.benchmark_group("local_unpeek");
        let mut keys = Scatter::new(n);
        w.removes(&mut g, "machine", &mut m, &mut keys);
        w.removes(&mut g, "floor", &mut f, &mut keys);
        g.finish();
    }
}
