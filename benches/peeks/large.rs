//! The large workloads at the largest size of the run: `handle_timeout` expiring a tenth of the
//! population, and `restore` of a whole population. Each iteration runs on a fresh clone of the
//! population; cloning and dropping are not measured.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use matrix_peek::InboundPeeks;
use matrix_peek::LocalPeeks;

use crate::support::*;
use crate::{Group, Plan, inbound, local};

pub fn timeout(c: &mut Criterion, plan: &Plan) {
    if !plan.wants("timeout") {
        return;
    }
    let n = plan.largest();
    // 1/10 of the population is due: ~100 k at 1 M.
    let ids = InboundIds::new(n, 0);
    let proto = inbound::machine(&ids);
    let cutoff = ts(T0).saturating_add(LONG).saturating_add(Duration::from_millis(8_640_000));
    let mut fproto = inbound::floor(ids.records());
    // The floor's keys by slot, so its expiry can remove a deadline's entry from the map.
    let keys: Vec<Box<str>> = {
        let mut v = vec![Box::<str>::from(""); fproto.map.len()];
        for (k, (_, slot)) in &fproto.map {
            v[*slot as usize] = k.clone();
        }
        v
    };
    let sproto = inbound::scan(ids.records());
    let due = {
        let mut m = proto.clone();
        m.handle_timeout(cutoff);
        n - m.len()
    };
    eprintln!("timeout: {due} of {n} peeks due");
    let mut g = c.benchmark_group(format!("timeout_{due}_of_{n}"));
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    on_fresh(
        &mut g,
        "machine",
        || proto.clone(),
        |mut m| {
            m.handle_timeout(cutoff);
            inbound::drain(&mut m);
            m
        },
    );
    on_fresh(
        &mut g,
        "floor",
        || fproto.clone(),
        |mut f| {
            while let Some(&(at, slot)) = f.by_time.first() {
                if at > cutoff {
                    break;
                }
                f.by_time.pop_first();
                black_box(f.map.remove(&keys[slot as usize]));
            }
            f
        },
    );
    on_fresh(
        &mut g,
        "scan",
        || sproto.clone(),
        |mut s| {
            black_box(s.sweep(cutoff));
            s
        },
    );
    g.bench_function("scan_idle_tick", |b| {
        // A tick of the periodic scan that finds nothing due: the cost it pays every 60 s.
        let mut s = sproto.clone();
        b.iter(|| black_box(s.sweep(ts(T0))))
    });
    g.finish();
    fproto.map.clear();
}

pub fn restore(c: &mut Criterion, plan: &Plan) {
    if !plan.wants("restore") {
        return;
    }
    let n = plan.largest();
    let ids = InboundIds::new(n, 0);
    let records = ids.records();
    let mut g = c.benchmark_group(format!("restore_{n}"));
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    on_fresh(
        &mut g,
        "inbound_machine",
        || records.clone(),
        |recs| InboundPeeks::restore(ts(T0), InboundIds::config(), recs),
    );
    on_fresh(&mut g, "inbound_floor", || records.clone(), inbound::floor);
    drop(records);
    let lids = LocalIds::new(n, 0);
    let lrecords = local::records(&lids);
    on_fresh(
        &mut g,
        "local_machine",
        || lrecords.clone(),
        |recs| {
            let mut m = LocalPeeks::restore(ts(T0), LocalIds::config(), recs);
            local::drain(&mut m);
            m
        },
    );
    g.finish();
}

/// `name` in `g`: `op` on a fresh input from `setup` each iteration; building the input and
/// dropping the output are not measured.
fn on_fresh<I, O>(g: &mut Group, name: &str, setup: impl Fn() -> I, op: impl Fn(I) -> O) {
    g.bench_function(name, |b| b.iter_custom(|iters| measure_each(iters, &setup, &op)));
}
