//! `PEEK_PROFILE=WORKLOAD:SIDE`: runs one workload's ops without criterion, for callgrind.
//!
//! The population (`PEEK_SIZES`, largest size; default 1 k) and the ops' keys are built first;
//! then `PEEK_PROFILE_OPS` ops (default 10 000) run inside [`profiled`], the one function to
//! collect: `valgrind --tool=callgrind --toggle-collect='*profiled*' <bench binary>`, the
//! binary `cargo bench --bench peeks --no-run` names. `SIDE` is `machine` or `floor`;
//! `WORKLOAD` is `FAMILY_OP`: `FAMILY` one of `inbound`, `local`, `outbound`, `OP` one of
//! `peek_cold`, `peek_warm`, `renew`, `unpeek`.

use std::hint::black_box;

use crate::support::*;
use crate::{Churn, Keys, Plan, Renew, inbound, local, outbound, spare};

/// The measured loop: `op` on each key, each at its own millisecond.
#[inline(never)]
fn profiled<T, K>(t: &mut T, keys: &[K], now0: u64, mut op: impl FnMut(&mut T, &K, u64)) {
    let start = std::time::Instant::now();
    for (i, k) in keys.iter().enumerate() {
        op(t, k, now0 + i as u64);
    }
    TIMED.with(|c| c.set((c.get().0 + start.elapsed().as_nanos(), c.get().1 + keys.len())));
}

thread_local! {
    /// Wall time (ns) and ops of every [`profiled`] call: printed at the end, as a quick
    /// wall-clock figure beside callgrind's counts (not a benchmark: one run, no floor beside).
    static TIMED: std::cell::Cell<(u128, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// `ops` keys of workload `kind` (`cold`, `live`) of `ids`.
fn keys<P: Keys>(ids: &P, n: usize, kind: &str, ops: usize) -> Vec<P::Key> {
    match kind {
        "cold" => (0..ops as u64).map(|c| ids.cold(c)).collect(),
        _ => Order::new(n).take(ops).into_iter().map(|i| ids.live(i)).collect(),
    }
}

/// The warm create: the spare keys `0..spare(n)` are created (collected) and ended again (not
/// collected), `ops` creates in all, after one round that is not collected, as the warm create
/// bench does.
fn warm_creates<P: Keys, T: Churn<P::Key>>(t: &mut T, ids: &P, n: usize, ops: usize, now0: u64) {
    let keys: Vec<P::Key> = (0..spare(n)).map(|e| ids.warm(e)).collect();
    let mut now = now0;
    // One round first, not collected (as the bench's warm-up): the first creates past the
    // population grow vectors sized for it (a one-off copy of megabytes that a 10 000-op sample
    // would charge to its ops).
    keys.iter().for_each(|k| t.create(k, now));
    now += 1;
    keys.iter().for_each(|k| t.remove(k, now));
    now += 1;
    let mut done = 0;
    while done < ops {
        let chunk = &keys[..keys.len().min(ops - done)];
        profiled(t, chunk, now, |t, k, now| t.create(k, now));
        now += chunk.len() as u64;
        chunk.iter().for_each(|k| t.remove(k, now));
        done += chunk.len();
    }
}

fn run_on<K, T: Churn<K> + Renew<K>>(t: &mut T, op: &str, keys: &[K]) {
    let now0 = T0 + 10_000;
    match op {
        "peek_cold" => profiled(t, keys, now0, |t, k, now| t.create(k, now)),
        "renew" => profiled(t, keys, now0, |t, k, now| t.renew(k, now)),
        "unpeek" => profiled(t, keys, now0, |t, k, now| t.remove(k, now)),
        other => panic!("unknown profile op {other}"),
    }
}

pub fn run(plan: &Plan, what: &str) {
    let (workload, side) = what.split_once(':').unwrap_or((what, "machine"));
    let (family, op) = workload.split_once('_').expect("WORKLOAD is FAMILY_OP");
    let n = plan.largest();
    let ops: usize =
        std::env::var("PEEK_PROFILE_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let ops = if op == "unpeek" { ops.min(n) } else { ops };
    let kind = if op == "peek_cold" { "cold" } else { "live" };
    eprintln!("profile: {workload} {side}, {n} live peeks, {ops} ops");
    run_workload(family, op, side, n, ops, kind, what);
    let (ns, done) = TIMED.with(|c| c.get());
    eprintln!("profile: {:.0} ns per op (wall clock, {done} ops)", ns as f64 / done.max(1) as f64);
}

/// Builds the population of `family` at `n` and runs `ops` ops of `op` on `side`.
fn run_workload(family: &str, op: &str, side: &str, n: usize, ops: usize, kind: &str, what: &str) {
    match (family, side) {
        ("inbound", "machine") => {
            let ids = InboundIds::new(n, spare(n));
            let mut m = inbound::Machine::new(inbound::machine(&ids));
            if op == "peek_warm" {
                return warm_creates(&mut m, &ids, n, ops, T0 + 10_000);
            }
            run_on(&mut m, op, &keys(&ids, n, kind, ops));
        }
        ("inbound", "floor") => {
            let ids = InboundIds::new(n, spare(n));
            let mut f = inbound::floor(&ids.records());
            if op == "peek_warm" {
                return warm_creates(&mut f, &ids, n, ops, T0 + 10_000);
            }
            run_on(&mut f, op, &keys(&ids, n, kind, ops));
        }
        ("local", "machine") => {
            let ids = LocalIds::new(n, spare(n));
            let mut m = local::Machine::new(local::machine(&ids));
            if op == "peek_warm" {
                return warm_creates(&mut m, &ids, n, ops, T0 + 10_000);
            }
            run_on(&mut m, op, &keys(&ids, n, kind, ops));
        }
        ("local", "floor") => {
            let ids = LocalIds::new(n, spare(n));
            let mut f = local::floor(&ids);
            if op == "peek_warm" {
                return warm_creates(&mut f, &ids, n, ops, T0 + 10_000);
            }
            run_on(&mut f, op, &keys(&ids, n, kind, ops));
        }
        ("outbound", side) if op == "renew" => {
            let ids = outbound::OutboundIds::new(n);
            let (mut m, mut f, period) = outbound::renew_population(&ids, n);
            let unit: Vec<()> = vec![(); ops];
            if side == "machine" {
                profiled(&mut m, &unit, 0, |m, _, _| {
                    let t = m.m.poll_timeout().expect("a renewal is scheduled");
                    m.m.handle_timeout(t);
                    black_box(m.pump(t.as_millis(), 2 * period));
                });
            } else {
                let (mut deadlines, names) = outbound::floor_entries(&f, &ids, n);
                profiled(&mut f, &unit, 0, |f, _, _| {
                    black_box(f.renew_first(&mut deadlines, &names, period));
                });
            }
        }
        ("outbound", side) => {
            let ids = outbound::OutboundIds::new(n);
            let (mut m, mut f) = outbound::population(&ids, n);
            let keys = keys(&ids, n, kind, ops);
            let now0 = T0 + 10_000;
            match (side, op) {
                ("machine", "peek_warm") => warm_creates(&mut m, &ids, n, ops, now0),
                (_, "peek_warm") => warm_creates(&mut f, &ids, n, ops, now0),
                ("machine", "peek_cold") => {
                    profiled(&mut m, &keys, now0, |t, k, now| t.create(k, now))
                }
                ("machine", "unpeek") => {
                    profiled(&mut m, &keys, now0, |t, k, now| t.remove(k, now))
                }
                (_, "peek_cold") => profiled(&mut f, &keys, now0, |t, k, now| t.create(k, now)),
                (_, "unpeek") => profiled(&mut f, &keys, now0, Churn::remove),
                _ => panic!("unknown profile op {op}"),
            }
        }
        _ => panic!("unknown profile workload {what}"),
    }
}
