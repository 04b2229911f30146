//! Group commit, measured: the [`Driver`] against a serial front end that saves once per call
//! (what the driver did before group commit), on the same store, with the same peeks and the
//! same concurrency. Not a timed test: it prints figures and checks only that every call was
//! granted and stored.
//!
//! Each run spawns `CALLS` (256) `client_peek` calls at once on a 2-worker tokio runtime, before
//! awaiting any, and times them from the first spawn to the last answer. The calls are
//! **local peeks on resident rooms** (`Residency::Resident`, world-readable): distinct users and
//! devices, rooms scattered over 64. Three stores:
//!
//! * `slow`: a `MemoryStore` whose `save` first sleeps 2 ms on tokio's timer (a store with a
//!   fixed commit latency). Target: the driver at least **20×** faster.
//! * `sqlite`: `SqliteStore` on disk (WAL, `synchronous = FULL`, as the crate opens it), a fresh
//!   database file per run for both variants. Target: at least **10×** the peeks per second.
//! * `free`: a plain `MemoryStore` (a save costs nothing): no target; it shows what the front
//!   ends themselves cost, i.e. the floor under the driver's figures above.
//!
//! The two variants of a run are interleaved (and which goes first alternates), so drifting load
//! hits both alike.
//!
//! ```text
//! cargo bench -p matrix-peek-sqlite --bench group_commit              # all three stores
//! cargo bench -p matrix-peek-sqlite --bench group_commit -- sqlite    # only names containing it
//! cargo bench -p matrix-peek-sqlite --bench group_commit -- --smoke   # CI: 1 run, 32 calls
//! ```
//!
//! Smoke mode (`--smoke`, `GROUP_COMMIT_SMOKE=1`, or run by `cargo test`, which passes no
//! `--bench`): 1 run of 32 calls per variant. Environment: `GROUP_COMMIT_RUNS` (slow and free
//! stores, default 15), `GROUP_COMMIT_SQLITE_RUNS` (default 9), `GROUP_COMMIT_CALLS` (default 256),
//! `GROUP_COMMIT_DIR` (where the SQLite files go; default cargo's per-target temp dir, under
//! `target/`, which is on the real disk where `/tmp` may be tmpfs). Temp files are removed.
#![allow(clippy::disallowed_methods, missing_docs)] // a bench measures wall time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use matrix_peek::testing::{MemoryStore, ScriptedTransport};
use matrix_peek::{
    Change, ClientPeek, ClientPeekReply, Clock, Driver, DriverConfig, LocalGrant, Output,
    PeekStore, Peeking, PeekingConfig, Residency, RoomAccess, Snapshot, SystemClock,
};
use matrix_peek_sqlite::{SqliteStore, SqliteStoreError};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomVersionId};
use tokio::runtime::Runtime;

/// What to run.
struct Settings {
    calls: usize,
    slow_runs: usize,
    sqlite_runs: usize,
    dir: PathBuf,
    filter: Option<String>,
    smoke: bool,
}

impl Settings {
    fn from_env() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let number = |name: &str, default: usize| {
            env(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name}={v}")))
        };
        // `cargo bench` passes `--bench`; `cargo test --benches` does not: a quick run then.
        let smoke = args.iter().any(|a| a == "--smoke")
            || env("GROUP_COMMIT_SMOKE").is_some_and(|v| v != "0")
            || !args.iter().any(|a| a == "--bench");
        let filter = args.iter().find(|a| !a.starts_with("--")).cloned();
        let dir = env("GROUP_COMMIT_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
        if smoke {
            Settings { calls: 32, slow_runs: 1, sqlite_runs: 1, dir, filter, smoke }
        } else {
            Settings {
                calls: number("GROUP_COMMIT_CALLS", 256),
                slow_runs: number("GROUP_COMMIT_RUNS", 15).max(1),
                sqlite_runs: number("GROUP_COMMIT_SQLITE_RUNS", 9).max(1),
                dir,
                filter,
                smoke,
            }
        }
    }

    fn wants(&self, name: &str) -> bool {
        self.filter.as_deref().is_none_or(|f| name.contains(f))
    }
}

fn main() {
    let settings = Settings::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    println!(
        "group commit: {} concurrent client_peek calls per run, tokio multi-thread runtime with 2 \
         workers{}",
        settings.calls,
        if settings.smoke { " (smoke mode)" } else { "" }
    );
    if settings.wants("slow") {
        memory_store(&rt, &settings, "slow", Duration::from_millis(2), Some(20.0));
    }
    if settings.wants("sqlite") {
        sqlite_store(&rt, &settings);
    }
    if settings.wants("free") {
        memory_store(&rt, &settings, "free", Duration::ZERO, None);
    }
}

// ----- the two front ends -----

/// The peeks of one run: distinct users and devices, rooms scattered over 64 (consecutive calls
/// land in different rooms), all local rooms this server is in, world-readable.
fn peeks(n: usize) -> Vec<ClientPeek> {
    let access = RoomAccess::new(RoomVersionId::V10, true, false);
    (0..n)
        .map(|i| ClientPeek {
            user_id: OwnedUserId::try_from(format!("@u{i}:local.test")).unwrap(),
            device_id: OwnedDeviceId::from(format!("D{i}")),
            room_id: OwnedRoomId::try_from(format!("!r{}:local.test", (i * 37 + 11) % 64)).unwrap(),
            joined: false,
            residency: Residency::Resident(access.clone()),
            via: vec![],
        })
        .collect()
}

fn clock() -> SystemClock {
    SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// The driver before group commit, minus nothing but the grouping: one async lock around the
/// coordinator held across the save, so every call is applied and saved on its own.
struct Serial<S> {
    machine: futures::lock::Mutex<Peeking>,
    store: S,
    clock: SystemClock,
}

impl<S: PeekStore> Serial<S> {
    /// Like `Driver::open`: restore from the store, save what the restore wrote.
    async fn open(config: PeekingConfig, store: S) -> Self {
        let clock = clock();
        let snapshot = store.load().await.expect("load");
        let mut machine = Peeking::restore(clock.now(), config, snapshot);
        let changes = persisted(&mut machine);
        if !changes.is_empty() {
            store.save(&changes).await.expect("save");
        }
        Serial { machine: futures::lock::Mutex::new(machine), store, clock }
    }

    /// Lock, apply, drain, save, unlock: one `save` per call.
    async fn client_peek(&self, peek: ClientPeek) -> Result<LocalGrant, String> {
        let mut machine = self.machine.lock().await;
        let reply = machine.handle_client_peek(self.clock.now(), peek);
        let changes = persisted(&mut machine);
        if !changes.is_empty() {
            self.store.save(&changes).await.map_err(|e| e.to_string())?;
        }
        drop(machine);
        match reply {
            ClientPeekReply::Done(result) => result.map_err(|e| e.to_string()),
            ClientPeekReply::Pending(_) => Err("a resident peek waited on federation".into()),
        }
    }
}

/// Drains the machine, keeping the `Persist` changes (a resident local peek has no effects).
fn persisted(machine: &mut Peeking) -> Vec<Change> {
    let mut changes = Vec::new();
    while let Some(output) = machine.poll_output() {
        if let Output::Persist(change) = output {
            changes.push(change);
        }
    }
    changes
}

/// Spawns every call, then awaits them all; panics if one was refused. The wall time of the
/// whole lot.
async fn fire<F, Fut>(peeks: Vec<ClientPeek>, call: F) -> Duration
where
    F: Fn(ClientPeek) -> Fut,
    Fut: std::future::Future<Output = Result<LocalGrant, String>> + Send + 'static,
{
    let start = Instant::now();
    let handles: Vec<_> = peeks.into_iter().map(|peek| tokio::spawn(call(peek))).collect();
    for handle in handles {
        handle.await.expect("the call panicked").expect("the peek was granted");
    }
    start.elapsed()
}

/// One run of the serial front end on `store`.
async fn run_serial<S: PeekStore + 'static>(store: S, n: usize) -> Duration {
    let serial = Arc::new(Serial::open(PeekingConfig::default(), store).await);
    fire(peeks(n), move |peek| {
        let serial = Arc::clone(&serial);
        async move { serial.client_peek(peek).await }
    })
    .await
}

/// One run of the driver on `store` (with `run` on its own task, as a host runs it): the wall
/// time and the (batches, batched calls) of the run.
async fn run_driver<S: PeekStore + 'static>(store: S, n: usize) -> (Duration, (u64, u64)) {
    let driver = Driver::open(DriverConfig::default(), store, ScriptedTransport::new(), clock())
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    let runner = driver.clone();
    let run = tokio::spawn(async move { runner.run().await });
    let before = driver.stats();
    let d = driver.clone();
    let wall = fire(peeks(n), move |peek| {
        let d = d.clone();
        async move { d.client_peek(peek).await.map_err(|e| e.to_string()) }
    })
    .await;
    let after = driver.stats();
    driver.close();
    run.await.expect("run panicked");
    (wall, (after.batches - before.batches, after.batched_calls - before.batched_calls))
}

// ----- the stores -----

/// Every `save`, in order: its size (changes) and how long it took.
#[derive(Clone, Default)]
struct Saves(Arc<Mutex<Vec<(usize, Duration)>>>);

impl Saves {
    fn record(&self, changes: &[Change], start: Instant) {
        self.0.lock().unwrap().push((changes.len(), start.elapsed()));
    }
    fn take(&self) -> Vec<(usize, Duration)> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// A `MemoryStore` whose `save` takes `delay` (tokio's timer) before applying the batch; no
/// wait at all when `delay` is zero.
#[derive(Clone)]
struct SlowStore {
    inner: MemoryStore,
    delay: Duration,
    saves: Saves,
}

#[async_trait]
impl PeekStore for SlowStore {
    type Error = std::convert::Infallible;

    async fn load(&self) -> Result<Snapshot, Self::Error> {
        self.inner.load().await
    }

    async fn save(&self, changes: &[Change]) -> Result<(), Self::Error> {
        let start = Instant::now();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let saved = self.inner.save(changes).await;
        self.saves.record(changes, start);
        saved
    }
}

/// A `SqliteStore` shared with the bench, so it can be closed (and its files released) once the
/// front end is done with it.
#[derive(Clone)]
struct SharedSqlite {
    inner: Arc<SqliteStore>,
    saves: Saves,
}

#[async_trait]
impl PeekStore for SharedSqlite {
    type Error = SqliteStoreError;

    async fn load(&self) -> Result<Snapshot, Self::Error> {
        self.inner.load().await
    }

    async fn save(&self, changes: &[Change]) -> Result<(), Self::Error> {
        let start = Instant::now();
        self.inner.save(changes).await?;
        self.saves.record(changes, start);
        Ok(())
    }
}

// ----- the scenarios -----

/// What the runs of one variant measured.
#[derive(Default)]
struct Variant {
    walls: Vec<Duration>,
    batches: Vec<u64>,
    batched_calls: u64,
    /// The saves of every run: changes and duration of each.
    saves: Vec<Vec<(usize, Duration)>>,
}

impl Variant {
    fn min(&self) -> Duration {
        *self.walls.iter().min().unwrap()
    }
    fn median(&self) -> Duration {
        median(&self.walls)
    }
}

fn median<T: Ord + Copy>(xs: &[T]) -> T {
    let mut xs = xs.to_vec();
    xs.sort_unstable();
    xs[xs.len() / 2]
}

/// `MemoryStore` behind a `delay` per save (none: `free`, the front ends' own cost).
fn memory_store(
    rt: &Runtime,
    settings: &Settings,
    name: &str,
    delay: Duration,
    target: Option<f64>,
) {
    let n = settings.calls;
    println!(
        "\n== {name}: MemoryStore + {} ms tokio sleep per save, {n} resident client peeks, {} runs ==",
        delay.as_millis(),
        settings.slow_runs
    );
    let load_start = loadavg();
    let (mut serial, mut driver) = (Variant::default(), Variant::default());
    for run in 0..settings.slow_runs {
        let store = || SlowStore { inner: MemoryStore::new(), delay, saves: Saves::default() };
        let (serial_store, driver_store) = (store(), store());
        let check = |store: &SlowStore| {
            assert_eq!(store.inner.len(), n, "every peek is stored");
            store.saves.take()
        };
        let mut one = |first_serial: bool| {
            if first_serial {
                serial.walls.push(rt.block_on(run_serial(serial_store.clone(), n)));
                serial.saves.push(check(&serial_store));
            } else {
                let (wall, (batches, calls)) = rt.block_on(run_driver(driver_store.clone(), n));
                driver.walls.push(wall);
                driver.batches.push(batches);
                driver.batched_calls += calls;
                driver.saves.push(check(&driver_store));
            }
        };
        one(run % 2 == 0);
        one(run % 2 != 0);
    }
    report(n, &serial, &driver, target, load_start);
}

fn sqlite_store(rt: &Runtime, settings: &Settings) {
    let n = settings.calls;
    std::fs::create_dir_all(&settings.dir).expect("the SQLite directory");
    let (fs, device) = filesystem(&settings.dir);
    println!(
        "\n== sqlite: SqliteStore on disk (WAL, synchronous = FULL), fresh file per run, {n} \
         resident client peeks, {} runs ==\n   files in {} ({fs} on {device})",
        settings.sqlite_runs,
        settings.dir.display()
    );
    if matches!(fs.as_str(), "tmpfs" | "ramfs") {
        println!("   WARNING: {fs} is memory, not a disk: fsync costs nothing there");
    }
    let load_start = loadavg();
    let (mut serial, mut driver) = (Variant::default(), Variant::default());
    for run in 0..settings.sqlite_runs {
        let mut one = |first_serial: bool| {
            let dir = tempfile::Builder::new()
                .prefix("group-commit-")
                .tempdir_in(&settings.dir)
                .expect("a temp dir");
            let store = SharedSqlite {
                inner: Arc::new(SqliteStore::open(dir.path().join("peeks.db")).expect("open")),
                saves: Saves::default(),
            };
            if first_serial {
                serial.walls.push(rt.block_on(run_serial(store.clone(), n)));
                serial.saves.push(store.saves.take());
            } else {
                let (wall, (batches, calls)) = rt.block_on(run_driver(store.clone(), n));
                driver.walls.push(wall);
                driver.batches.push(batches);
                driver.batched_calls += calls;
                driver.saves.push(store.saves.take());
            }
            rt.block_on(async {
                let stored = store.inner.load().await.expect("load");
                assert_eq!(stored.local.len(), n, "every peek is stored");
                let sqlite = Arc::into_inner(store.inner).expect("the front end is gone");
                sqlite.close().await.expect("close");
            });
            dir.close().expect("removing the temp dir");
        };
        one(run % 2 == 0);
        one(run % 2 != 0);
    }
    report(n, &serial, &driver, Some(10.0), load_start);
}

fn report(n: usize, serial: &Variant, driver: &Variant, target: Option<f64>, load_start: f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ops = |d: Duration| n as f64 / d.as_secs_f64();
    let line = |name: &str, v: &Variant| {
        println!(
            "   {name:<28} min {:>9.2} ms  median {:>9.2} ms   {:>8.0} ops/s (median)  {:>8.0} ops/s (min)",
            ms(v.min()),
            ms(v.median()),
            ops(v.median()),
            ops(v.min()),
        );
    };
    println!("   load average (1 min) at start: {load_start:.2}");
    line("serial (one save per call)", serial);
    line("driver (group commit)", driver);
    let runs = |v: &Variant| {
        let mut walls = v.walls.clone();
        walls.sort_unstable();
        walls.iter().map(|&d| format!("{:.1}", ms(d))).collect::<Vec<_>>().join(" ")
    };
    println!("   serial runs, sorted (ms): {}", runs(serial));
    println!("   driver runs, sorted (ms): {}", runs(driver));
    let saves_per_run: Vec<usize> = serial.saves.iter().map(Vec::len).collect();
    println!(
        "   serial: {} saves per run (median), {:.2} ms per call (median wall / calls)",
        median(&saves_per_run),
        ms(serial.median()) / n as f64
    );
    let total_batches: u64 = driver.batches.iter().sum();
    println!(
        "   driver: mean batch {:.1} calls (batched_calls / batches = {} / {}), batches per run \
         min {} median {} max {}",
        driver.batched_calls as f64 / total_batches.max(1) as f64,
        driver.batched_calls,
        total_batches,
        driver.batches.iter().min().unwrap(),
        median(&driver.batches),
        driver.batches.iter().max().unwrap(),
    );
    // Run by run: how much of each wall time was spent inside `save`.
    let in_save = |saves: &[(usize, Duration)]| ms(saves.iter().map(|(_, d)| *d).sum());
    println!(
        "   run | serial ms (in save) | driver ms (in save) | speedup | driver: changes per save"
    );
    for run in 0..serial.walls.len() {
        let sizes: Vec<usize> = driver.saves[run].iter().map(|(n, _)| *n).collect();
        println!(
            "   {run:>3} | {:>8.1} ({:>8.1}) | {:>8.1} ({:>8.1}) | {:>6.1}x | [{}]",
            ms(serial.walls[run]),
            in_save(&serial.saves[run]),
            ms(driver.walls[run]),
            in_save(&driver.saves[run]),
            serial.walls[run].as_secs_f64() / driver.walls[run].as_secs_f64(),
            runs_of(&sizes),
        );
    }
    let by_median = serial.median().as_secs_f64() / driver.median().as_secs_f64();
    let by_min = serial.min().as_secs_f64() / driver.min().as_secs_f64();
    // The two variants of a run ran back to back: their ratio shares that moment's load.
    let paired: Vec<f64> = serial
        .walls
        .iter()
        .zip(&driver.walls)
        .map(|(s, d)| s.as_secs_f64() / d.as_secs_f64())
        .collect();
    let mut sorted = paired.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "   speedup within each run (serial / driver of the same run): min {:.1}x median {:.1}x \
         max {:.1}x",
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    let verdict = match target {
        None => String::new(),
        Some(target) if n < 256 => format!("  (target >= {target}x: not judged below 256 calls)"),
        Some(target) if by_median >= target => format!("  (target >= {target}x: met)"),
        Some(target) => format!("  (target >= {target}x: NOT met)"),
    };
    println!("   speedup: median/median {by_median:.1}x, min/min {by_min:.1}x{verdict}");
    println!("   load average (1 min) at end: {:.2}", loadavg());
}

/// `[1, 1, 1, 99]` as `1 x3, 99`.
fn runs_of(sizes: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sizes.len() {
        let same = sizes[i..].iter().take_while(|&&s| s == sizes[i]).count();
        out.push(if same > 1 { format!("{} x{same}", sizes[i]) } else { sizes[i].to_string() });
        i += same;
    }
    out.join(", ")
}

// ----- the machine -----

/// The 1-minute load average (NaN where /proc is missing).
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// The file system type and device `path` is on, from /proc/self/mounts (the longest mount
/// point that contains it); `("unknown", "?")` elsewhere.
fn filesystem(path: &Path) -> (String, String) {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (device, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(point).then(|| (point.len(), fs.to_owned(), device.to_owned()))
        })
        .max_by_key(|(len, ..)| *len)
        .map_or_else(|| ("unknown".into(), "?".into()), |(_, fs, device)| (fs, device))
}
