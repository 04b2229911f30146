//! Fan-out at the largest size of the run: `fanout_destinations` (inbound: the servers peeking
//! a room) and `fanout_peekers` (local: the devices peeking a room), for 1, 10 and 1 000
//! peekers of one room beside a direct `HashMap<room, Vec<…>>` lookup.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

use crate::support::*;
use crate::{Plan, access, inbound, local};

/// The peeker counts of one room.
const FANS: [usize; 3] = [1, 10, 1_000];

/// `who/k/n`: the bench id of a room with `k` peekers in a population of `n`.
fn id(who: &str, k: usize, n: usize) -> BenchmarkId {
    BenchmarkId::new(format!("{who}/{k}"), n)
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
        g.bench_function(id("machine", k, n), |b| {
            b.iter(|| m.destinations(black_box(&fan)).map(|s| s.as_str().len()).sum::<usize>())
        });
        g.bench_function(id("floor", k, n), |b| {
            b.iter(|| {
                floor
                    .get(black_box(&fan))
                    .map_or(0, |v| v.iter().map(|s| s.as_str().len()).sum::<usize>())
            })
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
    let mut floor: HashMap<OwnedRoomId, Vec<(usize, usize)>> = HashMap::new();
    let (us, ds) = (&ids.users, &ids.devices);
    let mut g = c.benchmark_group("fanout_peekers");
    for k in FANS {
        let fan = room(30_000_000 + k);
        for d in 0..k.min(ids.dev_count()) {
            m.handle_peek(ts(T0), &us[d / 2], &ds[d], &fan, false, &acc).expect("granted");
            floor.entry(fan.clone()).or_default().push((d / 2, d));
        }
        local::drain(&mut m);
        g.bench_function(id("machine", k, n), |b| {
            b.iter(|| {
                m.peekers(black_box(&fan))
                    .map(|(u, d)| u.as_str().len() + d.as_str().len())
                    .sum::<usize>()
            })
        });
        g.bench_function(id("floor", k, n), |b| {
            b.iter(|| {
                floor.get(black_box(&fan)).map_or(0, |v| {
                    v.iter().map(|&(u, d)| us[u].as_str().len() + ds[d].as_str().len()).sum()
                })
            })
        });
    }
    g.finish();
}
