//! Fan-out at the largest size of the run: `fanout_destinations` (inbound: the servers peeking
//! a room) and `fanout_peekers` (local: the devices peeking a room), for 1, 10 and 1 000
//! peekers of one room beside a direct `HashMap<room, Vec<…>>` lookup.
//!
//! Both sides read every byte of every name they return ([`read_name`]), as a host does when
//! it looks up each destination's queue or each device's sync stream, and both run behind an
//! `#[inline(never)]` function of this module with the same reader, so neither side's loop is
//! inlined into the bench and the other's not.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use matrix_peek::{InboundPeeks, LocalPeeks};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomVersionId,
};

use crate::support::*;
use crate::{Plan, access, inbound, local};

/// The peeker counts of one room.
const FANS: [usize; 3] = [1, 10, 1_000];

/// `who/k/n`: the bench id of a room with `k` peekers in a population of `n`.
fn id(who: &str, k: usize, n: usize) -> BenchmarkId {
    BenchmarkId::new(format!("{who}/{k}"), n)
}

#[inline(never)]
fn machine_destinations(m: &InboundPeeks, room: &RoomId) -> u64 {
    m.destinations(room).fold(0, |acc, s| read_name(acc, s.as_str()))
}

#[inline(never)]
fn floor_destinations(f: &HashMap<OwnedRoomId, Vec<OwnedServerName>>, room: &RoomId) -> u64 {
    f.get(room).map_or(0, |v| v.iter().fold(0, |acc, s| read_name(acc, s.as_str())))
}

#[inline(never)]
fn machine_peekers(m: &LocalPeeks, room: &RoomId) -> u64 {
    m.peekers(room).fold(0, |acc, (u, d)| read_name(read_name(acc, u.as_str()), d.as_str()))
}

type PeekerFloor = HashMap<OwnedRoomId, Vec<(OwnedUserId, OwnedDeviceId)>>;

#[inline(never)]
fn floor_peekers(f: &PeekerFloor, room: &RoomId) -> u64 {
    f.get(room).map_or(0, |v| {
        v.iter().fold(0, |acc, (u, d)| read_name(read_name(acc, u.as_str()), d.as_str()))
    })
}

pub fn destinations(c: &mut Criterion, plan: &Plan) {
    if !plan.wants("fanout_destinations") {
        return;
    }
    let n = plan.largest();
    let ver = [RoomVersionId::V10];
    let acc = access();
    let ids = InboundIds::new(n, 0);
    let mut m = inbound::machine(&ids);
    let mut floor: HashMap<OwnedRoomId, Vec<OwnedServerName>> = HashMap::new();
    let mut g = c.benchmark_group("fanout_destinations");
    for k in FANS {
        let fan = room(20_000_000 + k);
        for s in 0..k {
            let srv = &ids.servers[s];
            m.handle_peek(ts(T0), srv, &fan, "fan", &ver, Some(&acc)).expect("granted");
            floor.entry(fan.clone()).or_default().push(srv.clone());
        }
        inbound::drain(&mut m);
        assert_eq!(machine_destinations(&m, &fan), floor_destinations(&floor, &fan));
        g.bench_function(id("machine", k, n), |b| {
            b.iter(|| machine_destinations(&m, black_box(&fan)))
        });
        g.bench_function(id("floor", k, n), |b| {
            b.iter(|| floor_destinations(&floor, black_box(&fan)))
        });
    }
    g.finish();
}

pub fn peekers(c: &mut Criterion, plan: &Plan) {
    if !plan.wants("fanout_peekers") {
        return;
    }
    let n = plan.largest();
    let ids = LocalIds::new(n, 0);
    let acc = access();
    let mut m = local::machine(&ids);
    let mut floor: PeekerFloor = HashMap::new();
    let (us, ds) = (&ids.users, &ids.devices);
    let mut g = c.benchmark_group("fanout_peekers");
    for k in FANS {
        let fan = room(30_000_000 + k);
        for d in 0..k.min(ids.dev_count()) {
            m.handle_peek(ts(T0), &us[d / 2], &ds[d], &fan, false, &acc).expect("granted");
            floor.entry(fan.clone()).or_default().push((us[d / 2].clone(), ds[d].clone()));
        }
        local::drain(&mut m);
        assert_eq!(machine_peekers(&m, &fan), floor_peekers(&floor, &fan));
        g.bench_function(id("machine", k, n), |b| b.iter(|| machine_peekers(&m, black_box(&fan))));
        g.bench_function(id("floor", k, n), |b| b.iter(|| floor_peekers(&floor, black_box(&fan))));
    }
    g.finish();
}
