//! The benches of DESIGN §12: every machine workload beside a **floor** (one `HashMap` upsert
//! plus one `BTreeMap` deadline move per op; a direct lookup for fan-out) and a
//! **periodic-scan** reference, in the same run, so results read as ratios.
//!
//! * `cargo bench --bench peeks -- --warm-up-time 1 --measurement-time 2 [GROUP]` runs at 1 k,
//!   10 k, 100 k and 1 M live peeks; `GROUP` (or `PEEK_BENCH=GROUP`) picks the groups whose
//!   name contains it (setup of the others is skipped too).
//! * `cargo test --benches` (criterion's test mode, no `--bench` argument) runs every routine
//!   once at 1 k peeks so the benches never rot.
#![allow(clippy::disallowed_methods, missing_docs)] // benches measure wall time.

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use matrix_peek::inbound::InboundPeeks;
use matrix_peek::local::{LocalPeeks, LocalRecord};
use matrix_peek::outbound::{
    OutboundConfig, OutboundOutput, OutboundPeeks, PeekOutcome, Request, RequestKind,
};
use matrix_peek::{RoomAccess, StreamPosition, Timestamp};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};
use support::*;

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

fn drain_in(m: &mut InboundPeeks) {
    while let Some(o) = m.poll_output() {
        black_box(o);
    }
}

fn drain_local(m: &mut LocalPeeks) {
    while let Some(o) = m.poll_output() {
        black_box(o);
    }
}

/// Large prime stride: walks 0..n without repeats within n steps (n is a power of ten).
const STRIDE: usize = 1_000_003;

/// Runs `iters` operations in chunks of at most `chunk`: `op(k, true)` is measured,
/// `op(k, false)` (restoring the population) is not.
fn chunked(iters: u64, chunk: usize, mut op: impl FnMut(usize, bool)) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let c = left.min(chunk);
        let start = Instant::now();
        op(c, true);
        total += start.elapsed();
        op(c, false);
        left -= c;
    }
    total
}

fn spare(n: usize) -> usize {
    (n / 10).clamp(10, 1_000)
}

// ---------------------------------------------------------------- inbound

fn inbound_machine(ids: &InboundIds) -> InboundPeeks {
    let mut m = InboundPeeks::restore(ts(T0), InboundIds::config(), ids.records());
    drain_in(&mut m);
    m
}

fn inbound_floor(ids: &InboundIds) -> Floor {
    let mut f = Floor::default();
    for r in ids.records() {
        f.upsert(r.origin.as_str(), r.room_id.as_str(), &r.peek_id, r.expires_at);
    }
    f
}

fn inbound_scan(ids: &InboundIds) -> Scan {
    let mut f = Scan::default();
    for r in ids.records() {
        f.upsert(r.origin.as_str(), r.room_id.as_str(), &r.peek_id, r.expires_at);
    }
    f
}

fn bench_inbound(c: &mut Criterion, plan: &Plan, n: usize) {
    let ops = ["inbound_peek", "inbound_renew", "inbound_unpeek"];
    if !ops.iter().any(|g| plan.wants(g)) {
        return;
    }
    let e = spare(n);
    let ids = InboundIds::new(n, e);
    let acc = access();
    let ver = [RoomVersionId::V10];
    let mut m = inbound_machine(&ids);
    let mut f = inbound_floor(&ids);
    let mut sc = inbound_scan(&ids);
    let (sv, rm) = (&ids.servers, &ids.rooms);
    let mut now = T0 + 1;
    let dl = |now: u64| ts(now).saturating_add(LONG);

    if plan.wants("inbound_peek") {
        let mut g = c.benchmark_group("inbound_peek");
        g.bench_function(BenchmarkId::new("machine", n), |b| {
            b.iter_custom(|iters| {
                chunked(iters, e, |c, timed| {
                    if timed {
                        for k in 0..c {
                            let (s, r, id) = ids.extra(k);
                            now += 1;
                            let g = m.handle_peek(ts(now), &sv[s], &rm[r], id, &ver, Some(&acc));
                            black_box(g.expect("peek granted"));
                            drain_in(&mut m);
                        }
                    } else {
                        for k in 0..c {
                            let (s, r, id) = ids.extra(k);
                            m.handle_unpeek(ts(now), &sv[s], &rm[r], id).expect("live");
                            drain_in(&mut m);
                        }
                    }
                })
            })
        });
        g.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter_custom(|iters| {
                chunked(iters, e, |c, timed| {
                    if timed {
                        for k in 0..c {
                            let (s, r, id) = ids.extra(k);
                            now += 1;
                            f.upsert(sv[s].as_str(), rm[r].as_str(), id, dl(now));
                        }
                    } else {
                        for k in 0..c {
                            let (s, r, id) = ids.extra(k);
                            f.remove(sv[s].as_str(), rm[r].as_str(), id);
                        }
                    }
                })
            })
        });
        g.finish();
    }

    if plan.wants("inbound_renew") {
        let mut g = c.benchmark_group("inbound_renew");
        let mut at = 0usize;
        g.bench_function(BenchmarkId::new("machine", n), |b| {
            b.iter(|| {
                at = (at + STRIDE) % n;
                let (s, r, id) = ids.key(at);
                now += 1;
                black_box(m.handle_renew(ts(now), &sv[s], &rm[r], id).expect("live"));
                drain_in(&mut m);
            })
        });
        g.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter(|| {
                at = (at + STRIDE) % n;
                let (s, r, id) = ids.key(at);
                now += 1;
                f.upsert(sv[s].as_str(), rm[r].as_str(), id, dl(now));
            })
        });
        g.bench_function(BenchmarkId::new("scan", n), |b| {
            b.iter(|| {
                at = (at + STRIDE) % n;
                let (s, r, id) = ids.key(at);
                now += 1;
                sc.upsert(sv[s].as_str(), rm[r].as_str(), id, dl(now));
            })
        });
        g.finish();
    }

    if plan.wants("inbound_unpeek") {
        let mut g = c.benchmark_group("inbound_unpeek");
        let mut at = 0usize;
        let chunk = e;
        g.bench_function(BenchmarkId::new("machine", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let c = left.min(chunk);
                    let keys: Vec<usize> = (0..c).map(|k| (at + k * STRIDE) % n).collect();
                    at = (at + c * STRIDE) % n;
                    let start = Instant::now();
                    for &i in &keys {
                        let (s, r, id) = ids.key(i);
                        now += 1;
                        m.handle_unpeek(ts(now), &sv[s], &rm[r], id).expect("live");
                        drain_in(&mut m);
                    }
                    total += start.elapsed();
                    for &i in &keys {
                        let (s, r, id) = ids.key(i);
                        m.handle_peek(ts(now), &sv[s], &rm[r], id, &ver, Some(&acc))
                            .expect("granted");
                        drain_in(&mut m);
                    }
                    left -= c;
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let c = left.min(chunk);
                    let keys: Vec<usize> = (0..c).map(|k| (at + k * STRIDE) % n).collect();
                    at = (at + c * STRIDE) % n;
                    let start = Instant::now();
                    for &i in &keys {
                        let (s, r, id) = ids.key(i);
                        now += 1;
                        black_box(f.remove(sv[s].as_str(), rm[r].as_str(), id));
                    }
                    total += start.elapsed();
                    for &i in &keys {
                        let (s, r, id) = ids.key(i);
                        f.upsert(sv[s].as_str(), rm[r].as_str(), id, dl(now));
                    }
                    left -= c;
                }
                total
            })
        });
        g.finish();
    }
}

/// Fan-out, `handle_timeout` and `restore` at the largest size of the run.
fn bench_inbound_big(c: &mut Criterion, plan: &Plan) {
    let n = plan.largest();
    let ver = [RoomVersionId::V10];
    let acc = access();
    if plan.wants("fanout_destinations") {
        let ids = InboundIds::new(n, 0);
        let mut m = inbound_machine(&ids);
        let mut floor: HashMap<OwnedRoomId, Vec<OwnedServerName>> = HashMap::new();
        let mut g = c.benchmark_group("fanout_destinations");
        for k in [1usize, 10, 1_000] {
            let fan = room(20_000_000 + k);
            for s in 0..k {
                let srv = &ids.servers[s];
                m.handle_peek(ts(T0), srv, &fan, "fan", &ver, Some(&acc)).expect("granted");
                floor.entry(fan.clone()).or_default().push(srv.clone());
            }
            drain_in(&mut m);
            g.bench_function(BenchmarkId::new(format!("machine/{k}"), n), |b| {
                b.iter(|| m.destinations(black_box(&fan)).map(|s| s.as_str().len()).sum::<usize>())
            });
            g.bench_function(BenchmarkId::new(format!("floor/{k}"), n), |b| {
                b.iter(|| {
                    floor
                        .get(black_box(&fan))
                        .map_or(0, |v| v.iter().map(|s| s.as_str().len()).sum::<usize>())
                })
            });
        }
        g.finish();
    }
    if plan.wants("timeout") {
        // 1/10 of the population is due: ~100 k at 1 M.
        let ids = InboundIds::new(n, 0);
        let proto = inbound_machine(&ids);
        let cutoff = ts(T0).saturating_add(LONG).saturating_add(Duration::from_millis(8_640_000));
        let mut fproto = inbound_floor(&ids);
        let keys: Vec<Box<str>> = {
            let mut v = vec![Box::<str>::from(""); fproto.map.len()];
            for (k, (_, slot)) in &fproto.map {
                v[*slot as usize] = k.clone();
            }
            v
        };
        let sproto = inbound_scan(&ids);
        let due = {
            let mut m = proto.clone();
            m.handle_timeout(cutoff);
            n - m.len()
        };
        eprintln!("timeout: {due} of {n} peeks due");
        let mut g = c.benchmark_group(format!("timeout_{due}_of_{n}"));
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
        g.bench_function("machine", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut m = proto.clone();
                    let start = Instant::now();
                    m.handle_timeout(cutoff);
                    drain_in(&mut m);
                    total += start.elapsed();
                    drop(m);
                }
                total
            })
        });
        g.bench_function("floor", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut f = fproto.clone();
                    let start = Instant::now();
                    while let Some(&(at, slot)) = f.by_time.first() {
                        if at > cutoff {
                            break;
                        }
                        f.by_time.pop_first();
                        black_box(f.map.remove(&keys[slot as usize]));
                    }
                    total += start.elapsed();
                    drop(f);
                }
                total
            })
        });
        g.bench_function("scan", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut s = sproto.clone();
                    let start = Instant::now();
                    black_box(s.sweep(cutoff));
                    total += start.elapsed();
                    drop(s);
                }
                total
            })
        });
        g.bench_function("scan_idle_tick", |b| {
            // A tick of the periodic scan that finds nothing due: the cost it pays every 60 s.
            let mut s = sproto.clone();
            b.iter(|| black_box(s.sweep(ts(T0))))
        });
        g.finish();
        fproto.map.clear();
    }
    if plan.wants("restore") {
        let ids = InboundIds::new(n, 0);
        let records = ids.records();
        let mut g = c.benchmark_group(format!("restore_{n}"));
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
        g.bench_function("inbound_machine", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let recs = records.clone();
                    let start = Instant::now();
                    let m = InboundPeeks::restore(ts(T0), InboundIds::config(), recs);
                    total += start.elapsed();
                    drop(black_box(m));
                }
                total
            })
        });
        g.bench_function("inbound_floor", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let recs = records.clone();
                    let start = Instant::now();
                    let mut f = Floor::default();
                    for r in recs {
                        f.upsert(r.origin.as_str(), r.room_id.as_str(), &r.peek_id, r.expires_at);
                    }
                    total += start.elapsed();
                    drop(black_box(f));
                }
                total
            })
        });
        drop(records);
        let lids = LocalIds::new(n, 0);
        let lrecords = local_records(&lids);
        g.bench_function("local_machine", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let recs = lrecords.clone();
                    let start = Instant::now();
                    let mut m = LocalPeeks::restore(ts(T0), LocalIds::config(), recs);
                    drain_local(&mut m);
                    total += start.elapsed();
                    drop(black_box(m));
                }
                total
            })
        });
        g.finish();
    }
}

// ---------------------------------------------------------------- local

fn local_records(ids: &LocalIds) -> Vec<LocalRecord> {
    let mut v: Vec<LocalRecord> = (0..ids.n)
        .map(|i| {
            let (u, d, r) = ids.key(i);
            LocalRecord::Peek {
                user: ids.users[u].clone(),
                device: ids.devices[d].clone(),
                room_id: r.clone(),
                started: StreamPosition(i as u64 + 1),
                expires_at: ts(T0).saturating_add(LONG),
            }
        })
        .collect();
    v.push(LocalRecord::Stream {
        position: StreamPosition(ids.n as u64),
        horizon: StreamPosition(0),
    });
    v
}

fn local_machine(ids: &LocalIds) -> LocalPeeks {
    let mut m = LocalPeeks::restore(ts(T0), LocalIds::config(), local_records(ids));
    drain_local(&mut m);
    m
}

fn local_floor(ids: &LocalIds) -> Floor {
    let mut f = Floor::default();
    for i in 0..ids.n {
        let (u, d, r) = ids.key(i);
        f.upsert(ids.users[u].as_str(), ids.devices[d].as_str(), r.as_str(), ts(T0));
    }
    f
}

fn bench_local(c: &mut Criterion, plan: &Plan, n: usize) {
    let ops = ["local_peek", "local_renew", "local_unpeek"];
    if !ops.iter().any(|g| plan.wants(g)) {
        return;
    }
    let e = spare(n);
    let ids = LocalIds::new(n, e);
    let acc = access();
    let mut m = local_machine(&ids);
    let mut f = local_floor(&ids);
    let (us, ds) = (&ids.users, &ids.devices);
    let mut now = T0 + 1;
    let dl = |now: u64| ts(now).saturating_add(LONG);

    if plan.wants("local_peek") {
        let mut g = c.benchmark_group("local_peek");
        g.bench_function(BenchmarkId::new("machine", n), |b| {
            b.iter_custom(|iters| {
                chunked(iters, e, |c, timed| {
                    if timed {
                        for k in 0..c {
                            let (u, d, r) = ids.extra(k);
                            now += 1;
                            let g = m.handle_peek(ts(now), &us[u], &ds[d], r, false, &acc);
                            black_box(g.expect("peek granted"));
                            drain_local(&mut m);
                        }
                    } else {
                        for k in 0..c {
                            let (u, d, r) = ids.extra(k);
                            m.handle_unpeek(ts(now), &us[u], &ds[d], r).expect("live");
                            drain_local(&mut m);
                        }
                    }
                })
            })
        });
        g.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter_custom(|iters| {
                chunked(iters, e, |c, timed| {
                    if timed {
                        for k in 0..c {
                            let (u, d, r) = ids.extra(k);
                            now += 1;
                            f.upsert(us[u].as_str(), ds[d].as_str(), r.as_str(), dl(now));
                        }
                    } else {
                        for k in 0..c {
                            let (u, d, r) = ids.extra(k);
                            f.remove(us[u].as_str(), ds[d].as_str(), r.as_str());
                        }
                    }
                })
            })
        });
        g.finish();
    }

    if plan.wants("local_renew") {
        let mut g = c.benchmark_group("local_renew");
        let mut at = 0usize;
        g.bench_function(BenchmarkId::new("machine", n), |b| {
            b.iter(|| {
                at = (at + STRIDE) % n;
                let (u, d, r) = ids.key(at);
                now += 1;
                black_box(m.handle_peek(ts(now), &us[u], &ds[d], r, false, &acc).expect("live"));
                drain_local(&mut m);
            })
        });
        g.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter(|| {
                at = (at + STRIDE) % n;
                let (u, d, r) = ids.key(at);
                now += 1;
                f.upsert(us[u].as_str(), ds[d].as_str(), r.as_str(), dl(now));
            })
        });
        g.finish();
    }

    if plan.wants("local_unpeek") {
        let mut g = c.benchmark_group("local_unpeek");
        let mut at = 0usize;
        let chunk = e;
        g.bench_function(BenchmarkId::new("machine", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let c = left.min(chunk);
                    let keys: Vec<usize> = (0..c).map(|k| (at + k * STRIDE) % n).collect();
                    at = (at + c * STRIDE) % n;
                    let start = Instant::now();
                    for &i in &keys {
                        let (u, d, r) = ids.key(i);
                        now += 1;
                        m.handle_unpeek(ts(now), &us[u], &ds[d], r).expect("live");
                        drain_local(&mut m);
                    }
                    total += start.elapsed();
                    for &i in &keys {
                        let (u, d, r) = ids.key(i);
                        m.handle_peek(ts(now), &us[u], &ds[d], r, false, &acc).expect("granted");
                        drain_local(&mut m);
                    }
                    left -= c;
                }
                total
            })
        });
        g.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let c = left.min(chunk);
                    let keys: Vec<usize> = (0..c).map(|k| (at + k * STRIDE) % n).collect();
                    at = (at + c * STRIDE) % n;
                    let start = Instant::now();
                    for &i in &keys {
                        let (u, d, r) = ids.key(i);
                        now += 1;
                        black_box(f.remove(us[u].as_str(), ds[d].as_str(), r.as_str()));
                    }
                    total += start.elapsed();
                    for &i in &keys {
                        let (u, d, r) = ids.key(i);
                        f.upsert(us[u].as_str(), ds[d].as_str(), r.as_str(), dl(now));
                    }
                    left -= c;
                }
                total
            })
        });
        g.finish();
    }
}

fn bench_local_fanout(c: &mut Criterion, plan: &Plan) {
    if !plan.wants("fanout_peekers") {
        return;
    }
    let n = plan.largest();
    let ids = LocalIds::new(n, 0);
    let acc = access();
    let mut m = local_machine(&ids);
    let mut floor: HashMap<OwnedRoomId, Vec<(usize, usize)>> = HashMap::new();
    let mut g = c.benchmark_group("fanout_peekers");
    for k in [1usize, 10, 1_000] {
        let fan = room(30_000_000 + k);
        for d in 0..k.min(ids.dev_count()) {
            m.handle_peek(ts(T0), &ids.users[d / 2], &ids.devices[d], &fan, false, &acc)
                .expect("granted");
            floor.entry(fan.clone()).or_default().push((d / 2, d));
        }
        drain_local(&mut m);
        g.bench_function(BenchmarkId::new(format!("machine/{k}"), n), |b| {
            b.iter(|| {
                m.peekers(black_box(&fan))
                    .map(|(u, d)| u.as_str().len() + d.as_str().len())
                    .sum::<usize>()
            })
        });
        let (us, ds) = (&ids.users, &ids.devices);
        g.bench_function(BenchmarkId::new(format!("floor/{k}"), n), |b| {
            b.iter(|| {
                floor.get(black_box(&fan)).map_or(0, |v| {
                    v.iter().map(|&(u, d)| us[u].as_str().len() + ds[d].as_str().len()).sum()
                })
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------- outbound

/// Answers every `Send` at once (at `now`), until the machine asks for nothing more.
fn pump(m: &mut OutboundPeeks, now: Timestamp, q: &mut Vec<Request>) -> usize {
    let mut answered = 0;
    let acc = access();
    loop {
        while let Some(o) = m.poll_output() {
            if let OutboundOutput::Send(r) = o {
                q.push(r);
            }
        }
        if q.is_empty() {
            return answered;
        }
        for r in q.drain(..) {
            let hour = Duration::from_secs(3600);
            let outcome = match r.kind {
                RequestKind::Peek { .. } => {
                    PeekOutcome::Established { renewal_interval: hour, access: acc.clone() }
                }
                RequestKind::Renew => PeekOutcome::Renewed { renewal_interval: hour },
                RequestKind::Unpeek => PeekOutcome::Deleted,
            };
            answered += 1;
            m.handle_response(now, r.id, outcome);
        }
    }
}

/// One day of `rooms` outbound peeks: demand staggered over the first minute, renewals every
/// 30 min (a 1 h interval), all demand dropped at the end (linger, then `DELETE`).
/// Returns the number of requests answered.
fn outbound_day(rooms: &[OwnedRoomId], via: &[OwnedServerName]) -> usize {
    let mut m = OutboundPeeks::new(OutboundConfig { max_rooms: rooms.len(), ..Default::default() });
    let mut q = Vec::new();
    let mut answered = 0;
    let start = T0;
    for (i, r) in rooms.iter().enumerate() {
        let now = ts(start + (i as u64 * 60_000) / rooms.len() as u64);
        m.handle_demand(now, r, &via[i % via.len()..][..1]);
        answered += pump(&mut m, now, &mut q);
    }
    let end = ts(start + 24 * 3600 * 1000);
    while let Some(t) = m.poll_timeout() {
        if t > end {
            break;
        }
        m.handle_timeout(t);
        answered += pump(&mut m, t, &mut q);
    }
    for r in rooms {
        m.handle_no_demand(end, r);
    }
    answered += pump(&mut m, end, &mut q);
    while let Some(t) = m.poll_timeout() {
        m.handle_timeout(t);
        answered += pump(&mut m, t, &mut q);
    }
    assert!(m.is_empty(), "every room deleted at the end of the day");
    answered
}

fn bench_outbound(c: &mut Criterion, plan: &Plan) {
    if !plan.wants("outbound_day") {
        return;
    }
    let n = if plan.full { 10_000 } else { 100 };
    let rooms: Vec<OwnedRoomId> = (0..n).map(room).collect();
    let via: Vec<OwnedServerName> = (0..100).map(server).collect();
    eprintln!("outbound_day: {} requests answered for {n} rooms", outbound_day(&rooms, &via));
    let mut g = c.benchmark_group("outbound_day");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.bench_function(BenchmarkId::new("machine", n), |b| b.iter(|| outbound_day(&rooms, &via)));
    g.finish();
}

fn main() {
    let plan = Plan::from_env();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    for &n in &plan.sizes {
        bench_inbound(&mut c, &plan, n);
    }
    for &n in &plan.sizes {
        bench_local(&mut c, &plan, n);
    }
    bench_inbound_big(&mut c, &plan);
    bench_local_fanout(&mut c, &plan);
    bench_outbound(&mut c, &plan);
    c.final_summary();
}
