//! Outbound groups: the per-op `outbound_peek` (a room's peek opened: `handle_demand`, the
//! `PUT`'s answer), `outbound_renew` (a renewal: the `handle_timeout` that asks for it, the
//! answer) and `outbound_unpeek` (demand dropped: `handle_no_demand`, the `DELETE`'s answer),
//! each beside the floor; and `outbound_day`, one simulated day of 10 k rooms.
//!
//! Every request is answered at once, in the measured part. `linger` is zero, so an unpeek
//! sends its `DELETE` at once (with the default 2 min linger the same work is split between
//! `handle_no_demand` and a later `handle_timeout`).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use matrix_peek::Timestamp;
use matrix_peek::{
    OutboundConfig, OutboundOutcome, OutboundOutput, OutboundPeeks, OutboundRequestKind, RoomAccess,
};
use ruma_common::{OwnedRoomId, OwnedServerName};

pub use crate::outbound_floor::{OutboundFloor, RoomKeyed, SlotKeyed};
use crate::support::*;
use crate::{Churn, Keys, PerOp, Plan, access};

/// Candidate servers (one per room, in the room's `via`).
const VIA: usize = 100;

/// Answers every `Send` at once (at `now`), as it is drained, until the machine asks for
/// nothing more: a `PUT` is granted for `interval`, a renewal for `interval` too, a `DELETE`
/// succeeds. Returns the number of requests answered. (Each answer goes in before the outputs
/// queued after its request are drained, as a host may answer at any time; collecting the
/// requests into a vector first cost the machine's side about 90 instructions per create
/// that no host needs to spend.)
fn pump(m: &mut OutboundPeeks, now: Timestamp, interval: Duration, acc: &RoomAccess) -> usize {
    let mut answered = 0;
    while let Some(o) = m.poll_output() {
        let OutboundOutput::Send(r) = o else {
            drop(black_box(o));
            continue;
        };
        let outcome = match r.kind {
            OutboundRequestKind::Peek { .. } => {
                OutboundOutcome::Established { renewal_interval: interval, access: acc.clone() }
            }
            OutboundRequestKind::Renew => {
                OutboundOutcome::Renewed { renewal_interval: Some(interval) }
            }
            OutboundRequestKind::Unpeek => OutboundOutcome::Deleted,
        };
        answered += 1;
        m.handle_response(now, r.id, outcome);
    }
    answered
}

/// The rooms of an outbound population of `n` peeks.
pub struct OutboundIds {
    rooms: Vec<OwnedRoomId>,
    via: Vec<OwnedServerName>,
}

/// An outbound peek's key: the room and its `via`.
pub type Key = (OwnedRoomId, [OwnedServerName; 1]);

impl OutboundIds {
    pub fn new(n: usize) -> Self {
        OutboundIds { rooms: (0..n).map(room).collect(), via: (0..VIA).map(server).collect() }
    }
}

impl Keys for OutboundIds {
    type Key = Key;
    fn live(&self, i: usize) -> Key {
        (self.rooms[i].clone(), [self.via[i % VIA].clone()])
    }
    fn warm(&self, e: usize) -> Key {
        (room(60_000_000 + e), [self.via[e % VIA].clone()])
    }
    /// A room id never used before.
    fn cold(&self, c: u64) -> Key {
        (room(70_000_000 + c as usize), [self.via[hash64(c) as usize % VIA].clone()])
    }
}

fn config() -> OutboundConfig {
    OutboundConfig {
        max_rooms: usize::MAX,
        linger: Duration::ZERO,
        min_renew_after: Duration::from_millis(1),
        max_renew_after: LONG,
        ..OutboundConfig::default()
    }
}

/// The machine as the per-op workloads drive it: every request answered, every output
/// drained. Peeks are granted for `2 × LONG`, so no renewal falls due.
pub struct Machine {
    pub m: OutboundPeeks,
    acc: RoomAccess,
}

impl Machine {
    pub fn pump(&mut self, now: u64, interval: Duration) -> usize {
        pump(&mut self.m, ts(now), interval, &self.acc)
    }
}

/// Bench milliseconds per machine millisecond in the per-op workloads: the machine paces each
/// room's requests (a burst of 16, then one per second, docs/architecture.md §6), and the warm
/// create bench opens and drops the same rooms once per chunk (≥ 10 ops), so each op moves the
/// machine's clock 200 ms: a room is opened and dropped at most once per 2 s, within its
/// pace, as a room's peek would be in production. (Without it, from the 9th cycle on each
/// `DELETE` waits for a timer the bench never fires, and the room stays.)
const PACE: u64 = 200;

fn paced(now: u64) -> u64 {
    T0 + (now - T0) * PACE
}

impl Churn<Key> for Machine {
    fn create(&mut self, (r, via): &Key, now: u64) {
        let now = paced(now);
        self.m.handle_demand(ts(now), r, via);
        black_box(self.pump(now, 2 * LONG));
    }
    fn remove(&mut self, (r, _): &Key, now: u64) {
        let now = paced(now);
        self.m.handle_no_demand(ts(now), r);
        black_box(self.pump(now, 2 * LONG));
    }
}

/// The floor each outbound op is measured against: the cheaper layout for it
/// (`outbound_floor`; the counts are in BENCHMARKS.md, part 2, eighth step). A create, warm or
/// cold, costs the slot-keyed layout about 260 fewer instructions (one hash of the room, not
/// two) for at most 0.2 more last-level misses; an unpeek costs the room-keyed one less of
/// both.
pub type CreateFloor = SlotKeyed;
/// See [`CreateFloor`].
pub type UnpeekFloor = RoomKeyed;

/// `n` rooms with an established peek, none due for renewal.
pub fn population(ids: &OutboundIds, n: usize) -> Machine {
    let mut m = Machine { m: OutboundPeeks::new(config()), acc: access() };
    for i in 0..n {
        m.create(&ids.live(i), T0);
    }
    m
}

/// A floor of layout `F` holding the same `n` rooms as [`population`]'s machine.
pub fn floor<F: OutboundFloor>(ids: &OutboundIds, n: usize) -> F {
    let mut f = F::default();
    for i in 0..n {
        f.create(&ids.live(i), T0);
    }
    f.check(n);
    f
}

/// `n` rooms opened at `T0 + i` (room `i`); room `i`'s first renewal is due at
/// `T0 + n + R0 + pos(i)` where `pos` is a random permutation, so renewals visit the rooms in
/// an order unrelated to their slots. Answering each renewal with an interval of
/// `2 × (n + R0)` keeps that order from cycle to cycle. Returns the machine and the renewal
/// period `n + R0`.
pub fn renew_population(ids: &OutboundIds, n: usize) -> (Machine, Floor, Duration) {
    const R0: u64 = 1_000;
    let perm = permutation(n, SEED ^ 0x0b7);
    let mut pos = vec![0u64; n];
    for (k, &i) in perm.iter().enumerate() {
        pos[i as usize] = k as u64;
    }
    let mut m = Machine { m: OutboundPeeks::new(config()), acc: access() };
    let mut f = Floor::default();
    for (i, pos) in pos.into_iter().enumerate() {
        let now = T0 + i as u64;
        let (r, via) = ids.live(i);
        m.m.handle_demand(ts(now), &r, &via);
        let until = n as u64 + R0 + pos - i as u64;
        m.pump(now, Duration::from_millis(2 * until));
        f.upsert(r.as_str(), "", "", ts(now + until));
    }
    (m, f, Duration::from_millis(n as u64 + R0))
}

/// The outbound per-op groups at `n` live peeks.
pub fn bench(c: &mut Criterion, plan: &Plan, n: usize) {
    let ids = OutboundIds::new(n);
    if plan.wants("outbound_peek") || plan.wants("outbound_unpeek") {
        let mut m = population(&ids, n);
        let w = PerOp::new(n, &ids);
        if plan.wants("outbound_peek") {
            let mut f: CreateFloor = floor(&ids, n);
            if plan.paired {
                w.paired_creates_cold("outbound_peek/cold", &mut m, &mut f);
                w.paired_creates_warm("outbound_peek/warm", &mut m, &mut f);
            } else {
                let mut g = c.benchmark_group("outbound_peek");
                w.creates_cold(&mut g, "cold_machine", &mut m);
                w.creates_cold(&mut g, "cold_floor", &mut f);
                w.creates_warm(&mut g, "warm_machine", &mut m);
                w.creates_warm(&mut g, "warm_floor", &mut f);
                g.finish();
            }
            f.check(n);
        }
        if plan.wants("outbound_unpeek") {
            let mut f: UnpeekFloor = floor(&ids, n);
            if plan.paired {
                w.paired_removes("outbound_unpeek", &mut m, &mut f);
            } else {
                let mut g = c.benchmark_group("outbound_unpeek");
                w.removes(&mut g, "machine", &mut m);
                w.removes(&mut g, "floor", &mut f);
                g.finish();
            }
            f.check(n);
        }
        assert_eq!(m.m.len(), n, "the population is back at n rooms");
    }
    if plan.wants("outbound_renew") {
        let (mut m, mut f, period) = renew_population(&ids, n);
        let (mut deadlines, names) = floor_entries(&f, &ids, n);
        if plan.paired {
            let chunk = crate::spare(n);
            paired(
                "outbound_renew",
                n,
                chunk,
                || renew_machine(&mut m, chunk as u64, period),
                || renew_floor(&mut f, &mut deadlines, &names, chunk as u64, period),
            );
            return;
        }
        let mut g = c.benchmark_group("outbound_renew");
        g.bench_function(BenchmarkId::new("machine", n), |b| {
            b.iter_custom(|iters| renew_machine(&mut m, iters, period))
        });
        g.bench_function(BenchmarkId::new("floor", n), |b| {
            b.iter_custom(|iters| renew_floor(&mut f, &mut deadlines, &names, iters, period))
        });
        g.finish();
    }
}

/// The renew floor's entries by slot: each deadline, and the names a renewal request is built
/// from (`server|room|peek id`, one string per entry).
pub fn floor_entries(f: &Floor, ids: &OutboundIds, n: usize) -> (Vec<Timestamp>, Vec<Box<str>>) {
    let mut deadlines = vec![Timestamp::MAX; n];
    for &(at, slot) in &f.by_time {
        deadlines[slot as usize] = at;
    }
    let names = (0..n)
        .map(|i| {
            let (r, [s]) = ids.live(i);
            format!("{s}|{r}|p{i:07}").into_boxed_str()
        })
        .collect();
    (deadlines, names)
}

/// The time of `iters` renewals of the machine: each asked for by the `handle_timeout` of the
/// earliest deadline and answered at once.
#[allow(clippy::disallowed_methods)] // benches measure wall time.
fn renew_machine(m: &mut Machine, iters: u64, period: Duration) -> Duration {
    let start = std::time::Instant::now();
    let mut answered = 0;
    for _ in 0..iters {
        let t = m.m.poll_timeout().expect("a renewal is scheduled");
        m.m.handle_timeout(t);
        answered += m.pump(t.as_millis(), 2 * period);
    }
    let took = start.elapsed();
    assert_eq!(answered as u64, iters, "one renewal per handle_timeout");
    took
}

/// The time of `iters` renewals of the floor.
#[allow(clippy::disallowed_methods)] // benches measure wall time.
fn renew_floor(
    f: &mut Floor,
    deadlines: &mut [Timestamp],
    names: &[Box<str>],
    iters: u64,
    period: Duration,
) -> Duration {
    let start = std::time::Instant::now();
    for _ in 0..iters {
        black_box(f.renew_first(deadlines, names, period));
    }
    start.elapsed()
}

/// One day of `rooms` outbound peeks: demand staggered over the first minute, renewals every
/// 30 min (a 1 h interval), all demand dropped at the end (linger, then `DELETE`).
/// Returns the number of requests answered.
fn outbound_day(rooms: &[OwnedRoomId], via: &[OwnedServerName]) -> usize {
    let mut m = OutboundPeeks::new(OutboundConfig { max_rooms: rooms.len(), ..Default::default() });
    let acc = access();
    let hour = Duration::from_secs(3600);
    let mut answered = 0;
    let start = T0;
    for (i, r) in rooms.iter().enumerate() {
        let now = ts(start + (i as u64 * 60_000) / rooms.len() as u64);
        m.handle_demand(now, r, &via[i % via.len()..][..1]);
        answered += pump(&mut m, now, hour, &acc);
    }
    let end = ts(start + 24 * 3600 * 1000);
    while let Some(t) = m.poll_timeout() {
        if t > end {
            break;
        }
        m.handle_timeout(t);
        answered += pump(&mut m, t, hour, &acc);
    }
    for r in rooms {
        m.handle_no_demand(end, r);
    }
    answered += pump(&mut m, end, hour, &acc);
    while let Some(t) = m.poll_timeout() {
        m.handle_timeout(t);
        answered += pump(&mut m, t, hour, &acc);
    }
    assert!(m.is_empty(), "every room deleted at the end of the day");
    answered
}

pub fn day(c: &mut Criterion, plan: &Plan) {
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
