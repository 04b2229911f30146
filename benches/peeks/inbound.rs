//! Per-op inbound groups (`inbound_peek`, `inbound_renew`, `inbound_unpeek`) at one population
//! size, and the builders of the inbound machine and reference trackers.

use std::hint::black_box;

use criterion::Criterion;
use matrix_peek::RoomAccess;
use matrix_peek::{InboundPeeks, InboundRecord};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

pub use crate::inbound_floor::{InboundFloor, InboundKeyFloor};
use crate::support::*;
use crate::{Churn, Keys, PerOp, Plan, Renew, access, spare};

/// An inbound peek's key: (origin, room, peek id).
pub type Key = (OwnedServerName, OwnedRoomId, String);

impl Keys for InboundIds {
    type Key = Key;
    fn live(&self, i: usize) -> Key {
        let (s, r, id) = self.key(i);
        (self.servers[s].clone(), self.rooms[r].clone(), id.to_owned())
    }
    fn warm(&self, e: usize) -> Key {
        let (s, r, id) = self.extra(e);
        (self.servers[s].clone(), self.rooms[r].clone(), id.to_owned())
    }
    /// A random server and live room, a peek id never used before.
    fn cold(&self, c: u64) -> Key {
        let (s, r, id) = self.cold_key(c);
        (self.servers[s].clone(), self.rooms[r].clone(), id)
    }
}

pub fn drain(m: &mut InboundPeeks) {
    while let Some(o) = m.poll_output() {
        black_box(o);
    }
}

pub fn machine(ids: &InboundIds) -> InboundPeeks {
    let mut m = InboundPeeks::restore(ts(T0), InboundIds::config(), ids.records());
    drain(&mut m);
    m
}

/// The floor of renewals and unpeeks holding `records`.
pub fn key_floor(records: &[InboundRecord]) -> InboundKeyFloor {
    let items = records
        .iter()
        .map(|r| ([r.server.as_str(), r.room_id.as_str(), r.peek_id.as_str()], r.expires_at));
    InboundKeyFloor::bulk(records.len(), items)
}

pub fn scan(records: Vec<InboundRecord>) -> Scan {
    let mut f = Scan::default();
    for r in records {
        f.upsert(r.server.as_str(), r.room_id.as_str(), &r.peek_id, r.expires_at);
    }
    f
}

/// The machine as the per-op workloads drive it: every output drained.
pub struct Machine {
    pub m: InboundPeeks,
    ver: [RoomVersionId; 1],
    acc: RoomAccess,
}

impl Machine {
    pub fn new(m: InboundPeeks) -> Self {
        Machine { m, ver: [RoomVersionId::V10], acc: access() }
    }
}

impl Churn<Key> for Machine {
    fn create(&mut self, (s, r, id): &Key, now: u64) {
        let g = self.m.handle_peek(ts(now), s, r, id, &self.ver, Some(&self.acc));
        black_box(g.expect("peek granted"));
        drain(&mut self.m);
    }
    fn remove(&mut self, (s, r, id): &Key, now: u64) {
        self.m.handle_unpeek(ts(now), s, r, id).expect("live");
        drain(&mut self.m);
    }
}

impl Renew<Key> for Machine {
    fn renew(&mut self, (s, r, id): &Key, now: u64) {
        black_box(self.m.handle_renew(ts(now), s, r, id).expect("live"));
        drain(&mut self.m);
    }
}

impl Churn<Key> for InboundFloor {
    fn create(&mut self, (s, r, id): &Key, now: u64) {
        self.upsert(s.as_str(), r.as_str(), id, deadline(now));
    }
    fn remove(&mut self, (s, r, id): &Key, _now: u64) {
        black_box(InboundFloor::remove(self, s.as_str(), r.as_str(), id));
    }
}

impl Renew<Key> for InboundFloor {
    fn renew(&mut self, (s, r, id): &Key, now: u64) {
        self.upsert(s.as_str(), r.as_str(), id, deadline(now));
    }
}

impl Churn<Key> for InboundKeyFloor {
    fn create(&mut self, (s, r, id): &Key, now: u64) {
        self.upsert(s.as_str(), r.as_str(), id, deadline(now));
    }
    fn remove(&mut self, (s, r, id): &Key, _now: u64) {
        black_box(InboundKeyFloor::remove(self, s.as_str(), r.as_str(), id));
    }
}

impl Renew<Key> for InboundKeyFloor {
    fn renew(&mut self, (s, r, id): &Key, now: u64) {
        InboundKeyFloor::renew(self, s.as_str(), r.as_str(), id, deadline(now));
    }
}

impl Renew<Key> for Scan {
    fn renew(&mut self, (s, r, id): &Key, now: u64) {
        self.upsert(s.as_str(), r.as_str(), id, deadline(now));
    }
}

/// The inbound per-op groups at `n` live peeks; machine, floor and scan share one clock.
pub fn bench(c: &mut Criterion, plan: &Plan, n: usize) {
    let ops = ["inbound_peek", "inbound_renew", "inbound_unpeek"];
    if !ops.iter().any(|g| plan.wants(g)) {
        return;
    }
    let ids = InboundIds::new(n, spare(n));
    let records = ids.records();
    // Each op against the keying that makes it cheaper (see `inbound_floor`).
    let mut f = InboundFloor::new(&records);
    let mut k = key_floor(&records);
    let want_scan = plan.wants("inbound_renew") && !plan.paired;
    let mut sc = if want_scan { scan(records) } else { Scan::default() };
    let mut m = Machine::new(machine(&ids));
    let w = PerOp::new(n, &ids);

    if plan.paired {
        if plan.wants("inbound_peek") {
            w.paired_creates_cold("inbound_peek/cold", &mut m, &mut f);
            w.paired_creates_warm("inbound_peek/warm", &mut m, &mut f);
        }
        if plan.wants("inbound_renew") {
            w.paired_renews("inbound_renew", &mut m, &mut k);
        }
        if plan.wants("inbound_unpeek") {
            w.paired_removes("inbound_unpeek", &mut m, &mut k);
        }
        f.check(n);
        k.check(n);
        return;
    }
    if plan.wants("inbound_peek") {
        let mut g = c.benchmark_group("inbound_peek");
        w.creates_cold(&mut g, "cold_machine", &mut m);
        w.creates_cold(&mut g, "cold_floor", &mut f);
        w.creates_warm(&mut g, "warm_machine", &mut m);
        w.creates_warm(&mut g, "warm_floor", &mut f);
        g.finish();
    }
    if plan.wants("inbound_renew") {
        let mut g = c.benchmark_group("inbound_renew");
        w.renews(&mut g, "machine", &mut m);
        w.renews(&mut g, "floor", &mut k);
        w.renews(&mut g, "scan", &mut sc);
        g.finish();
    }
    if plan.wants("inbound_unpeek") {
        let mut g = c.benchmark_group("inbound_unpeek");
        w.removes(&mut g, "machine", &mut m);
        w.removes(&mut g, "floor", &mut k);
        g.finish();
    }
    f.check(n);
    k.check(n);
}
