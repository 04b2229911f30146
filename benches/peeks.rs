//! The benches of docs/architecture.md §12: every machine workload beside a **floor** (the
//! least a correct tracker does for it: §12 and `peeks/*_floor.rs`) and a **periodic-scan**
//! reference, in the same run, so results read as ratios.
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
#[path = "peeks/inbound_floor.rs"]
mod inbound_floor;
#[path = "peeks/key_floor.rs"]
mod key_floor;
#[path = "peeks/large.rs"]
mod large;
#[path = "peeks/local.rs"]
mod local;
#[path = "peeks/local_floor.rs"]
mod local_floor;
#[path = "peeks/outbound.rs"]
mod outbound;
#[path = "peeks/outbound_floor.rs"]
mod outbound_floor;
#[path = "peeks/profile.rs"]
mod profile;

use std::cell::{Cell, RefCell};
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion};
use matrix_peek::RoomAccess;
use ruma_common::RoomVersionId;
use support::{Order, T0, measure_in_chunks, paired};

/// Which groups run, and at which sizes.
struct Plan {
    sizes: Vec<usize>,
    filter: Option<String>,
    full: bool,
    /// `PEEK_PAIRED=1`: the per-op groups measure machine and floor chunk by chunk,
    /// alternately, instead of through criterion (see [`support::paired`]).
    paired: bool,
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
        let paired = std::env::var("PEEK_PAIRED").is_ok_and(|v| v != "0");
        Plan { sizes, filter, full, paired }
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

/// Spare keys (fresh peeks) per population of `n`: also the chunk size of every per-op bench.
fn spare(n: usize) -> usize {
    (n / 10).clamp(10, 1_000)
}

// ---------------------------------------------------------------- per-op workload shapes

type Group<'a> = BenchmarkGroup<'a, WallTime>;

/// The keys of one population, as owned copies: a chunk of them is built before each measured
/// chunk, so the key strings are fresh in cache, like the strings of a request just parsed,
/// while the tracker's own state is wherever the random order leaves it.
trait Keys {
    type Key;
    /// Live key `i < n`.
    fn live(&self, i: usize) -> Self::Key;
    /// Spare key `e < spare(n)`: not live; the warm create bench creates and removes the same
    /// spare keys again and again.
    fn warm(&self, e: usize) -> Self::Key;
    /// Cold key number `c`: not live, and never used before in this process (see each
    /// population for the exceptions).
    fn cold(&self, c: u64) -> Self::Key;
}

/// Starts and ends peeks: the machine, or the floor (whose `remove` is `black_box`ed, it
/// returns whether the key was there).
trait Churn<K> {
    /// Starts the peek of `key`, which is not live.
    fn create(&mut self, key: &K, now: u64);
    /// Ends the live peek of `key`.
    fn remove(&mut self, key: &K, now: u64);
    /// Ends the live peek of `key` and forgets it entirely (the undo of a cold create, so cold
    /// keys leave nothing behind). The same as `remove` unless the tracker keeps ended keys.
    fn forget(&mut self, key: &K, now: u64) {
        self.remove(key, now);
    }
}

/// Renews a live peek: the machine, the floor or the periodic-scan reference.
trait Renew<K> {
    fn renew(&mut self, key: &K, now: u64);
}

/// The per-op workloads of one population of `n` live peeks. Every tracker of the population
/// (machine, floor, scan) shares one bench clock `now` (ms): a measured op ticks it first, an
/// unmeasured undo reuses its current value. Every measured op runs in chunks of
/// `spare(n)` keys built beforehand ([`measure_in_chunks`]).
struct PerOp<'a, P> {
    n: usize,
    ids: &'a P,
    /// Keys per measured chunk (also the number of spare keys).
    chunk: usize,
    now: Cell<u64>,
    /// The live keys in a seeded random order; the group's benches share it, each one carrying
    /// on where the previous left off.
    order: RefCell<Order>,
    /// The next cold key number.
    cold: Cell<u64>,
}

impl<'a, P: Keys> PerOp<'a, P> {
    fn new(n: usize, ids: &'a P) -> Self {
        PerOp {
            n,
            ids,
            chunk: spare(n),
            now: Cell::new(T0 + 1),
            order: RefCell::new(Order::new(n)),
            cold: Cell::new(0),
        }
    }

    fn tick(&self) -> u64 {
        self.now.set(self.now.get() + 1);
        self.now.get()
    }

    /// The spare keys `0..c` (the same every chunk: their strings, slots and buckets stay
    /// warm).
    fn warm_keys(&self, c: usize) -> Vec<P::Key> {
        (0..c).map(|e| self.ids.warm(e)).collect()
    }

    /// `c` keys never seen before.
    fn cold_keys(&self, c: usize) -> Vec<P::Key> {
        let first = self.cold.get();
        self.cold.set(first + c as u64);
        (first..first + c as u64).map(|k| self.ids.cold(k)).collect()
    }

    /// The next `c` live keys of the random order.
    fn live_keys(&self, c: usize) -> Vec<P::Key> {
        self.order.borrow_mut().take(c).into_iter().map(|i| self.ids.live(i)).collect()
    }

    /// `name/n` in `g`: creates the spare keys `0..chunk` (measured), then ends them again
    /// (not measured), so the population stays at `n`.
    fn creates_warm<T: Churn<P::Key>>(&self, g: &mut Group, name: &str, t: &mut T) {
        self.chunked(g, name, t, |c| self.warm_keys(c), T::create, T::remove);
    }

    /// `name/n` in `g`: creates `chunk` keys never seen before (measured), then ends and forgets
    /// them (not measured), so the population stays at `n`.
    fn creates_cold<T: Churn<P::Key>>(&self, g: &mut Group, name: &str, t: &mut T) {
        self.chunked(g, name, t, |c| self.cold_keys(c), T::create, T::forget);
    }

    /// `name/n` in `g`: renews the next live keys of the random order.
    fn renews<T: Renew<P::Key>>(&self, g: &mut Group, name: &str, t: &mut T) {
        self.chunked(g, name, t, |c| self.live_keys(c), T::renew, |_, _, _| {});
    }

    /// `name/n` in `g`: ends a chunk of live keys from the random order (measured), then starts
    /// them again (not measured), so the population stays at `n`.
    fn removes<T: Churn<P::Key>>(&self, g: &mut Group, name: &str, t: &mut T) {
        self.chunked(g, name, t, |c| self.live_keys(c), T::remove, T::create);
    }

    /// `name/n` in `g`: `op` on each key of a chunk from `pick` (measured, each after a tick),
    /// then `undo` on each (not measured).
    fn chunked<T>(
        &self,
        g: &mut Group,
        name: &str,
        t: &mut T,
        pick: impl Fn(usize) -> Vec<P::Key>,
        op: impl Fn(&mut T, &P::Key, u64),
        undo: impl Fn(&mut T, &P::Key, u64),
    ) {
        g.bench_function(BenchmarkId::new(name, self.n), |b| {
            b.iter_custom(|iters| self.measure(iters, t, &pick, &op, &undo))
        });
    }

    /// The time of `iters` ops in chunks: `op` on each key from `pick` (each after a tick),
    /// then `undo` on each (not measured).
    fn measure<T>(
        &self,
        iters: u64,
        t: &mut T,
        pick: impl Fn(usize) -> Vec<P::Key>,
        op: impl Fn(&mut T, &P::Key, u64),
        undo: impl Fn(&mut T, &P::Key, u64),
    ) -> Duration {
        measure_in_chunks(
            iters,
            self.chunk,
            t,
            pick,
            |t, keys| keys.iter().for_each(|k| op(t, k, self.tick())),
            |t, keys| keys.iter().for_each(|k| undo(t, k, self.now.get())),
        )
    }

    // ----- paired mode (`PEEK_PAIRED=1`): machine `a` and floor `b`, chunk by chunk -----

    fn paired_creates_warm<A: Churn<P::Key>, B: Churn<P::Key>>(
        &self,
        label: &str,
        a: &mut A,
        b: &mut B,
    ) {
        let pick = |c: usize| self.warm_keys(c);
        paired(
            label,
            self.n,
            self.chunk,
            || self.measure(self.chunk as u64, a, pick, A::create, A::remove),
            || self.measure(self.chunk as u64, b, pick, B::create, B::remove),
        );
    }

    fn paired_creates_cold<A: Churn<P::Key>, B: Churn<P::Key>>(
        &self,
        label: &str,
        a: &mut A,
        b: &mut B,
    ) {
        let pick = |c: usize| self.cold_keys(c);
        paired(
            label,
            self.n,
            self.chunk,
            || self.measure(self.chunk as u64, a, pick, A::create, A::forget),
            || self.measure(self.chunk as u64, b, pick, B::create, B::forget),
        );
    }

    fn paired_renews<A: Renew<P::Key>, B: Renew<P::Key>>(&self, label: &str, a: &mut A, b: &mut B) {
        let pick = |c: usize| self.live_keys(c);
        paired(
            label,
            self.n,
            self.chunk,
            || self.measure(self.chunk as u64, a, pick, A::renew, |_, _, _| {}),
            || self.measure(self.chunk as u64, b, pick, B::renew, |_, _, _| {}),
        );
    }

    fn paired_removes<A: Churn<P::Key>, B: Churn<P::Key>>(
        &self,
        label: &str,
        a: &mut A,
        b: &mut B,
    ) {
        let pick = |c: usize| self.live_keys(c);
        paired(
            label,
            self.n,
            self.chunk,
            || self.measure(self.chunk as u64, a, pick, A::remove, A::create),
            || self.measure(self.chunk as u64, b, pick, B::remove, B::create),
        );
    }
}

fn main() {
    let plan = Plan::from_env();
    if let Ok(what) = std::env::var("PEEK_PROFILE") {
        return profile::run(&plan, &what);
    }
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
    for &n in &plan.sizes {
        outbound::bench(&mut c, &plan, n);
    }
    if plan.paired {
        return; // the paired mode covers the per-op groups only
    }
    // Fan-out, `handle_timeout` and `restore` at the largest size of the run.
    fanout::destinations(&mut c, &plan);
    large::timeout(&mut c, &plan);
    large::restore(&mut c, &plan);
    fanout::peekers(&mut c, &plan);
    outbound::day(&mut c, &plan);
    c.final_summary();
}
