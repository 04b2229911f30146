//! Per-op inbound groups (`inbound_peek`, `inbound_renew`, `inbound_unpeek`) at one population
//! size, and the builders of the inbound machine and reference trackers.

use std::hint::black_box;

use criterion::Criterion;
use matrix_peek::RoomAccess;
use matrix_peek::{InboundPeeks, InboundRecord};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

use crate::support::*;
use crate::{Churn, PerOp, Plan, Renew, access, spare};

/// An inbound peek's key: (origin, room, peek id).
type Key<'a> = (&'a OwnedServerName, &'a OwnedRoomId, &'a str);

/// Live key `i` of the population.
fn live_key(ids: &InboundIds, i: usize) -> Key<'_> {
    let (s, r, id) = ids.key(i);
    (&ids.servers[s], &ids.rooms[r], id)
}

/// Spare key `e` (a fresh peek).
fn fresh_key(ids: &InboundIds, e: usize) -> Key<'_> {
    let (s, r, id) = ids.extra(e);
    (&ids.servers[s], &ids.rooms[r], id)
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

/// The floor holding `records` (built by upserts, as a restore of the floor would).
pub fn floor(records: Vec<InboundRecord>) -> Floor {
    let mut f = Floor::default();
    for r in records {
        f.upsert(r.server.as_str(), r.room_id.as_str(), &r.peek_id, r.expires_at);
    }
    f
}

pub fn scan(records: Vec<InboundRecord>) -> Scan {
    let mut f = Scan::default();
    for r in records {
        f.upsert(r.server.as_str(), r.room_id.as_str(), &r.peek_id, r.expires_at);
    }
    f
}

/// The machine as the per-op workloads drive it: every output drained.
struct Machine {
    m: InboundPeeks,
    ver: [RoomVersionId; 1],
    acc: RoomAccess,
}

impl Churn<Key<'_>> for Machine {
    fn create(&mut self, (s, r, id): Key<'_>, now: u64) {
        let g = self.m.handle_peek(ts(now), s, r, id, &self.ver, Some(&self.acc));
        black_box(g.expect("peek granted"));
        drain(&mut self.m);
    }
    fn remove(&mut self, (s, r, id): Key<'_>, now: u64) {
        self.m.handle_unpeek(ts(now), s, r, id).expect("live");
        drain(&mut self.m);
    }
}

impl Renew<Key<'_>> for Machine {
    fn renew(&mut self, (s, r, id): Key<'_>, now: u64) {
        black_box(self.m.handle_renew(ts(now), s, r, id).expect("live"));
        drain(&mut self.m);
    }
}

impl Churn<Key<'_>> for Floor {
    fn create(&mut self, (s, r, id): Key<'_>, now: u64) {
        self.upsert(s.as_str(), r.as_str(), id, deadline(now));
    }
    fn remove(&mut self, (s, r, id): Key<'_>, _now: u64) {
        black_box(Floor::remove(self, s.as_str(), r.as_str(), id));
    }
}

impl Renew<Key<'_>> for Floor {
    fn renew(&mut self, (s, r, id): Key<'_>, now: u64) {
        self.upsert(s.as_str(), r.as_str(), id, deadline(now));
    }
}

impl Renew<Key<'_>> for Scan {
    fn renew(&mut self, (s, r, id): Key<'_>, now: u64) {
        self.upsert(s.as_str(), r.as_str(), id, deadline(now));
    }
}

/// The inbound per-op groups at `n` live peeks; machine, floor and scan share one clock.
pub fn bench(c: &mut Criterion, plan: &Plan, n: usize) {
    let ops = ["inbound_peek", "inbound_renew", "inbound_unpeek"];
    if !ops.iter().any(|g| plan.wants(g)) {
        return;
    }
    let e = spare(n);
    let ids = InboundIds::new(n, e);
    let mut m = Machine { m: machine(&ids), ver: [RoomVersionId::V10], acc: access() };
    let mut f = floor(ids.records());
    let mut sc = scan(ids.records());
    let w = PerOp::new(n, |i| live_key(&ids, i), |e| fresh_key(&ids, e));

    if plan.wants("inbound_peek") {
        let mut g = c.benchmark_group("inbound_peek");
        w.creates(&mut g, "machine", &mut m);
        w.creates(&mut g, "floor", &mut f);
        g.finish();
    }
    if plan.wants("inbound_renew") {
        let mut g = c.benchmark_group("inbound_renew");
        let mut keys = Scatter::new(n);
        w.renews(&mut g, "machine", &mut m, &mut keys);
        w.renews(&mut g, "floor", &mut f, &mut keys);
        w.renews(&mut g, "scan", &mut sc, &mut keys);
        g.finish();
    }
    if plan.wants("inbound_unpeek") {
        let mut g = c.benchmark_group("inbound_unpeek");
        let mut keys = Scatter::new(n);
        w.removes(&mut g, "machine", &mut m, &mut keys);
        w.removes(&mut g, "floor", &mut f, &mut keys);
        g.finish();
    }
}
