//! Per-op local groups (`local_peek`, `local_renew`, `local_unpeek`) at one population size,
//! and the builders of the local machine and floor.

use std::hint::black_box;

use criterion::Criterion;
use matrix_peek::{LocalPeeks, LocalRecord};
use matrix_peek::{RoomAccess, StreamPosition, Timestamp};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId};

use crate::local_floor::{LocalFloor, LocalKeyFloor};
use crate::support::*;
use crate::{Churn, Keys, PerOp, Plan, Renew, access, spare};

/// A local peek's key: (user, device, room).
pub type Key = (OwnedUserId, OwnedDeviceId, OwnedRoomId);

impl Keys for LocalIds {
    type Key = Key;
    fn live(&self, i: usize) -> Key {
        let (u, d, r) = self.key(i);
        (self.users[u].clone(), self.devices[d].clone(), r.clone())
    }
    fn warm(&self, e: usize) -> Key {
        let (u, d, r) = self.extra(e);
        (self.users[u].clone(), self.devices[d].clone(), r.clone())
    }
    /// A random existing device and a live room it never peeked (see
    /// [`LocalIds::cold_key`]: beyond `D·(step − 1)` keys — 900 at 1 k peeks, 99 000 at
    /// 10 k — they repeat, each long after the previous use was forgotten).
    fn cold(&self, c: u64) -> Key {
        let (u, d, r) = self.cold_key(c);
        (self.users[u].clone(), self.devices[d].clone(), r)
    }
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
                expires_at: LocalIds::expires_at(i),
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
    machine_with(ids, LocalIds::config())
}

/// The machine holding the population, under `config`.
pub fn machine_with(ids: &LocalIds, config: matrix_peek::LocalConfig) -> LocalPeeks {
    let mut m = LocalPeeks::restore(ts(T0), config, records(ids));
    drain(&mut m);
    m
}

/// The population's names and deadlines, for the floors' bulk builds.
fn items(ids: &LocalIds) -> impl Iterator<Item = ([&str; 3], Timestamp)> + '_ {
    (0..ids.n).map(|i| {
        let (u, d, r) = ids.key(i);
        ([ids.users[u].as_str(), ids.devices[d].as_str(), r.as_str()], LocalIds::expires_at(i))
    })
}

/// The floor of creates and expiry holding the population (bulk-built, as a restore of the
/// floor would be).
pub fn floor(ids: &LocalIds) -> LocalFloor {
    LocalFloor::bulk(ids.n, items(ids))
}

/// The floor of renewals and unpeeks holding the population.
pub fn key_floor(ids: &LocalIds) -> LocalKeyFloor {
    LocalKeyFloor::bulk(ids.n, items(ids))
}

/// The machine as the per-op workloads drive it: every output drained. A renew is a repeated
/// `handle_peek` (it extends the lease).
pub struct Machine {
    pub m: LocalPeeks,
    acc: RoomAccess,
}

impl Machine {
    pub fn new(m: LocalPeeks) -> Self {
        Machine { m, acc: access() }
    }
}

impl Churn<Key> for Machine {
    fn create(&mut self, (u, d, r): &Key, now: u64) {
        black_box(self.m.handle_peek(ts(now), u, d, r, false, &self.acc).expect("peek granted"));
        drain(&mut self.m);
    }
    fn remove(&mut self, (u, d, r): &Key, now: u64) {
        self.m.handle_unpeek(ts(now), u, d, r).expect("live");
        drain(&mut self.m);
    }
    /// Unpeek, then collect the ended entry (`ended_retention` is zero in the bench config).
    fn forget(&mut self, key: &Key, now: u64) {
        self.remove(key, now);
        self.m.handle_timeout(ts(now));
        drain(&mut self.m);
    }
}

impl Renew<Key> for Machine {
    fn renew(&mut self, key: &Key, now: u64) {
        self.create(key, now);
    }
}

impl Churn<Key> for LocalFloor {
    fn create(&mut self, (u, d, r): &Key, now: u64) {
        self.upsert(u.as_str(), d.as_str(), r.as_str(), deadline(now));
    }
    /// Ends the peek and keeps it, as the machine's unpeek does.
    fn remove(&mut self, (u, d, r): &Key, _now: u64) {
        black_box(LocalFloor::remove(self, u.as_str(), d.as_str(), r.as_str()));
    }
    /// Ends the peek and collects it, as the machine's unpeek and `handle_timeout` do.
    fn forget(&mut self, (u, d, r): &Key, _now: u64) {
        black_box(LocalFloor::forget(self, u.as_str(), d.as_str(), r.as_str()));
    }
}

impl Renew<Key> for LocalFloor {
    fn renew(&mut self, (u, d, r): &Key, now: u64) {
        self.upsert(u.as_str(), d.as_str(), r.as_str(), deadline(now));
    }
}

impl Churn<Key> for LocalKeyFloor {
    fn create(&mut self, (u, d, r): &Key, now: u64) {
        self.upsert(u.as_str(), d.as_str(), r.as_str(), deadline(now));
    }
    fn remove(&mut self, (u, d, r): &Key, _now: u64) {
        black_box(LocalKeyFloor::remove(self, u.as_str(), d.as_str(), r.as_str()));
    }
}

impl Renew<Key> for LocalKeyFloor {
    fn renew(&mut self, (u, d, r): &Key, now: u64) {
        LocalKeyFloor::renew(self, u.as_str(), d.as_str(), r.as_str(), deadline(now));
    }
}

/// The local per-op groups at `n` live peeks; machine and floor share one clock.
pub fn bench(c: &mut Criterion, plan: &Plan, n: usize) {
    let ops = ["local_peek", "local_renew", "local_unpeek"];
    if !ops.iter().any(|g| plan.wants(g)) {
        return;
    }
    let ids = LocalIds::new(n, spare(n));
    let mut m = Machine::new(machine(&ids));
    // Each op against the keying that makes it cheaper (see `local_floor`).
    let mut f = floor(&ids);
    let mut k = key_floor(&ids);
    let w = PerOp::new(n, &ids);

    if plan.paired {
        if plan.wants("local_peek") {
            w.paired_creates_cold("local_peek/cold", &mut m, &mut f);
            w.paired_creates_warm("local_peek/warm", &mut m, &mut f);
        }
        if plan.wants("local_renew") {
            w.paired_renews("local_renew", &mut m, &mut k);
        }
        if plan.wants("local_unpeek") {
            w.paired_removes("local_unpeek", &mut m, &mut k);
        }
        f.check(n);
        k.check(n);
        return;
    }
    if plan.wants("local_peek") {
        let mut g = c.benchmark_group("local_peek");
        w.creates_cold(&mut g, "cold_machine", &mut m);
        w.creates_cold(&mut g, "cold_floor", &mut f);
        w.creates_warm(&mut g, "warm_machine", &mut m);
        w.creates_warm(&mut g, "warm_floor", &mut f);
        g.finish();
    }
    if plan.wants("local_renew") {
        let mut g = c.benchmark_group("local_renew");
        w.renews(&mut g, "machine", &mut m);
        w.renews(&mut g, "floor", &mut k);
        g.finish();
    }
    if plan.wants("local_unpeek") {
        let mut g = c.benchmark_group("local_unpeek");
        w.removes(&mut g, "machine", &mut m);
        w.removes(&mut g, "floor", &mut k);
        g.finish();
    }
    f.check(n);
    k.check(n);
}
