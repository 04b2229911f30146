//! The benches of docs/architecture.md §12: every machine workload beside a **floor** (one `HashMap` upsert
//! plus one `BTreeMap` deadline move per op; a direct lookup for fan-out) and a
//! **periodic-scan** reference, in the same run, so results read as ratios.
//!
//! * `cargo bench --bench peeks -- --warm-up-time 1 --measurement-time 2 [GROUP]` runs at 1 k,
//!   10 k, 100 k and 1 M live peeks; `GROUP` (or `PEEK_BENCH=GROUP`) picks the groups whose
//!   name contains it (setup of the others is skipped too).
//! * `cargo test --benches` (criterion's test mode, no `--bench` argument) runs every routine
//!   once at 1 k peeks so the benches never rot.
//!
//! Layout: this file holds the plan, the three per-op workload shapes every tracker runs
//! (create, renew, remove) and `main`; `peeks/` has one module per concern (inbound and local
//! per-op groups, fan-out, the large timeout/restore workloads, the outbound day), and
//! `support/` the ids, the reference trackers and the timing helpers.
#![allow(clippy::disallowed_methods, missing_docs)] // benches measure wall time.

mod support;

#[path = "peeks/fanout.rs"]
mod fanout;
#[path = "peeks/inbound.rs"]
mod inbound;
#[path = "peeks/large.rs"]
mod large;
#[path = "peeks/local.rs"]
mod local;
#[path = "peeks/outbound.rs"]
mod outbound;

use std::cell::Cell;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use matrix_peek::RoomAccess;
use ruma_common::RoomVersionId;
use support::{Scatter, T0, measure_in_chunks};

/// Which groups run, and at which sizes.
struct Plan {
    sizes: Vec<usize>,
    filter: Option<String>,
    full: bool,
}

impl Plan {
    fn from_env() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let full = args.iter().any(|a| a == "--bench");
        // Criterion options that take a value: their value is not a filter.
        const VALUED: &[&str] = &[
            "--warm-up-time",
            "--measurement-time",
            "--sample-size",
            "--save-baseline",
            "--baseline",
            "--load-baseline",
            "--output-format",
            "--color",
            "--nresamples",
            "--noise-threshold",
            "--confidence-level",
            "--significance-level",
            "--plotting-backend",
            "--profile-time",
            "--format",
        ];
        let mut filter = std::env::var("PEEK_BENCH").ok();
        let mut skip = false;
        for a in &args {
            if skip {
                skip = false;
            } else if VALUED.contains(&a.as_str()) {
                skip = true;
            } else if !a.starts_with('-') && filter.is_none() {
                filter = Some(a.clone());
            }
        }
        let sizes = match std::env::var("PEEK_SIZES") {
            Ok(s) => s.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
            Err(_) if full => vec![1_000, 10_000, 100_000, 1_000_000],
            Err(_) => vec![1_000],
        };
        Plan { sizes, filter, full }
    }
    fn wants(&self, group: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| group.contains(f))
    }
    fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(1_000)
    }
}

fn access() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V10, true, false)
}

/// Spare keys (fresh peeks) per population of `n`: also the chunk size of create and remove.
fn spare(n: usize) -> usize {
    (n / 10).clamp(10, 1_000)
}

// ---------------------------------------------------------------- per-op workload shapes

type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// Starts and ends peeks: the machine, or the floor (whose `remove` is `black_box`ed, it
/// returns whether the key was there).
trait Churn<K> {
    /// Starts the peek of `key`, which is not live.
    fn create(&mut self, key: K, now: u64);
    /// Ends the live peek of `key`.
    fn remove(&mut self, key: K, now: u64);
}

/// Renews a live peek: the machine, the floor or the periodic-scan reference.
trait Renew<K> {
    fn renew(&mut self, key: K, now: u64);
}

/// The per-op workloads of one population of `n` live peeks. Every tracker of the population
/// (machine, floor, scan) shares one bench clock `now` (ms): a measured op ticks it first, an
/// unmeasured undo reuses its current value.
struct PerOp<L, F> {
    n: usize,
    /// Keys per measured chunk of creates or removes (also the number of spare keys).
    chunk: usize,
    now: Cell<u64>,
    /// Live key `i < n` of the population.
    live: L,
    /// Spare key `e < chunk`, not live (a fresh peek).
    fresh: F,
}

impl<L, F> PerOp<L, F> {
    fn new(n: usize, live: L, fresh: F) -> Self {
        PerOp { n, chunk: spare(n), now: Cell::new(T0 + 1), live, fresh }
    }

    fn tick(&self) -> u64 {
        self.now.set(self.now.get() + 1);
        self.now.get()
    }

    /// `name/n` in `g`: creates the spare keys `0..chunk` (measured), then ends them again
    /// (not measured), so the population stays at `n`.
    fn creates<K, T: Churn<K>>(&self, g: &mut Group, name: &str, t: &mut T)
    where
        F: Fn(usize) -> K,
    {
        self.chunked(g, name, t, |c| (0..c).collect(), &self.fresh, T::create, T::remove);
    }

    /// `name/n` in `g`: renews the next live key of the scattered cursor `keys` per iteration.
    fn renews<K, T: Renew<K>>(&self, g: &mut Group, name: &str, t: &mut T, keys: &mut Scatter)
    where
        L: Fn(usize) -> K,
    {
        g.bench_function(BenchmarkId::new(name, self.n), |b| {
            b.iter(|| t.renew((self.live)(keys.step()), self.tick()))
        });
    }

    /// `name/n` in `g`: ends a chunk of live keys from the scattered cursor `keys` (measured),
    /// then starts them again (not measured), so the population stays at `n`.
    fn removes<K, T: Churn<K>>(&self, g: &mut Group, name: &str, t: &mut T, keys: &mut Scatter)
    where
        L: Fn(usize) -> K,
    {
        self.chunked(g, name, t, |c| keys.take(c), &self.live, T::remove, T::create);
    }

    /// `name/n` in `g`: `op` on each key of a chunk from `pick` (measured, each after a tick),
    /// then `undo` on each (not measured).
    #[allow(clippy::too_many_arguments)]
    fn chunked<K, T>(
        &self,
        g: &mut Group,
        name: &str,
        t: &mut T,
        mut pick: impl FnMut(usize) -> Vec<usize>,
        key: impl Fn(usize) -> K,
        op: impl Fn(&mut T, K, u64),
        undo: impl Fn(&mut T, K, u64),
    ) {
        g.bench_function(BenchmarkId::new(name, self.n), |b| {
            b.iter_custom(|iters| {
                measure_in_chunks(
                    iters,
                    self.chunk,
                    t,
                    &mut pick,
                    |t, keys| keys.iter().for_each(|&k| op(t, key(k), self.tick())),
                    |t, keys| keys.iter().for_each(|&k| undo(t, key(k), self.now.get())),
                )
            })
        });
    }
}

fn main() {
    let plan = Plan::from_env();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    for &n in &plan.sizes {
        inbound::bench(&mut c, &plan, n);
    }
    for &n in &plan.sizes {
        local::bench(&mut c, &plan, n);
    }
    // Fan-out, `handle_timeout` and `restore` at the largest size of the run.
    fanout::destinations(&mut c, &plan);
    large::timeout(&mut c, &plan);
    large::restore(&mut c, &plan);
    fanout::peekers(&mut c, &plan);
    outbound::day(&mut c, &plan);
    c.final_summary();
}
