//! `PEEK_PROFILE=WORKLOAD:SIDE`: runs one workload's ops without criterion, for callgrind.
//!
//! The population (`PEEK_SIZES`, largest size; default 1 k) and the ops' keys are built first;
//! then `PEEK_PROFILE_OPS` ops (default 10 000) run inside [`collected`], the one function to
//! collect: `valgrind --tool=callgrind --toggle-collect='*collected*' <bench binary>`, the
//! binary `cargo bench --bench peeks --no-run` names. `SIDE` is `machine` or `floor` (for
//! the inbound and local families, `floor` is the keying the bench measures that op against;
//! `number_floor` and `key_floor` name one, to compare them; for the outbound family,
//! `room_floor` and `slot_floor` name the two layouts of `outbound_floor`);
//! `WORKLOAD` is `FAMILY_OP`: `FAMILY` one of `inbound`, `local`, `outbound`, `OP` one of
//! `peek_cold`, `peek_warm`, `renew`, `unpeek`, or `timeout` (`inbound` and `local`: one
//! `handle_timeout` expiring a tenth of the population, as the `timeout_*` benches; the local
//! machine keeps the default retention, as `timeout_local_retained`). A timeout's op count is
//! the number of peeks it expired, printed as `profile: ops counted N` for `profile.sh`.

use std::hint::black_box;

use crate::support::*;
use crate::{Churn, Keys, Plan, Renew, inbound, large, local, outbound, spare};
use outbound::{CreateFloor, RoomKeyed, SlotKeyed, UnpeekFloor};

/// Runs [`collected`], timed here, outside it, so the clock reads stay out of callgrind's
/// counts.
fn profiled<T, K>(t: &mut T, keys: &[K], now0: u64, op: impl FnMut(&mut T, &K, u64)) {
    let start = std::time::Instant::now();
    collected(t, keys, now0, op);
    TIMED.with(|c| c.set((c.get().0 + start.elapsed().as_nanos(), c.get().1 + keys.len())));
}

/// The measured loop, the ops callgrind collects (`--toggle-collect='*collected*'`): `op` on
/// each key, each at its own millisecond.
#[inline(never)]
fn collected<T, K>(t: &mut T, keys: &[K], now0: u64, mut op: impl FnMut(&mut T, &K, u64)) {
    for (i, k) in keys.iter().enumerate() {
        op(t, k, now0 + i as u64);
    }
}

thread_local! {
    /// Wall time (ns) and ops of every [`profiled`] call: printed at the end, as a quick
    /// wall-clock figure beside callgrind's counts (not a benchmark: one run, no floor beside).
    static TIMED: std::cell::Cell<(u128, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// `ops` live keys of `ids`, in a random order.
fn live_keys<P: Keys>(ids: &P, n: usize, ops: usize) -> Vec<P::Key> {
    Order::new(n).take(ops).into_iter().map(|i| ids.live(i)).collect()
}

/// The warm create: the spare keys `0..spare(n)` are created (collected) and ended again (not
/// collected), `ops` creates in all, after one round that is not collected, as the warm create
/// bench does.
fn warm_creates<P: Keys, T: Churn<P::Key>>(t: &mut T, ids: &P, n: usize, ops: usize, now0: u64) {
    let keys: Vec<P::Key> = (0..spare(n)).map(|e| ids.warm(e)).collect();
    let mut now = now0;
    let end = |t: &mut T, k: &P::Key, now| t.remove(k, now);
    // One round first, not collected (as the bench's warm-up): the first creates past the
    // population grow vectors sized for it (a one-off copy of megabytes that a 10 000-op sample
    // would charge to its ops).
    warm_up(t, &keys, &mut now, end);
    let mut done = 0;
    while done < ops {
        let chunk = &keys[..keys.len().min(ops - done)];
        created_and_ended(t, chunk, &mut now, end);
        done += chunk.len();
    }
}

/// Creates `keys` and ends them again with `end`, none of it collected, one millisecond for
/// each half.
fn warm_up<K, T: Churn<K>>(t: &mut T, keys: &[K], now: &mut u64, end: impl Fn(&mut T, &K, u64)) {
    keys.iter().for_each(|k| t.create(k, *now));
    *now += 1;
    keys.iter().for_each(|k| end(t, k, *now));
    *now += 1;
}

/// Creates `keys` (collected, each at its own millisecond), then ends them with `end` (not
/// collected).
fn created_and_ended<K, T: Churn<K>>(
    t: &mut T,
    keys: &[K],
    now: &mut u64,
    end: impl Fn(&mut T, &K, u64),
) {
    profiled(t, keys, *now, |t, k, now| t.create(k, now));
    *now += keys.len() as u64;
    keys.iter().for_each(|k| end(t, k, *now));
}

/// The cold create: chunks of `spare(n)` keys never seen before are created (collected) and
/// forgotten again (not collected), `ops` creates in all, as the cold create bench does: the
/// population stays at `n`, and a create takes the slot, index bucket and timer entry the
/// last forget freed.
fn cold_creates<P: Keys, T: Churn<P::Key>>(t: &mut T, ids: &P, n: usize, ops: usize, now0: u64) {
    let mut now = now0;
    let mut next = 0u64;
    let mut chunk = |c: usize| {
        next += c as u64;
        (next - c as u64..next).map(|k| ids.cold(k)).collect::<Vec<P::Key>>()
    };
    let end = |t: &mut T, k: &P::Key, now| t.forget(k, now);
    // One round first, not collected, as in `warm_creates`.
    warm_up(t, &chunk(spare(n)), &mut now, end);
    let mut done = 0;
    while done < ops {
        let keys = chunk(spare(n).min(ops - done));
        created_and_ended(t, &keys, &mut now, end);
        done += keys.len();
    }
}

/// `ops` creates, cold or warm, or unpeeks on `t` (`op` is `peek_cold`, `peek_warm` or
/// `unpeek`; any other op panics).
fn churn<P: Keys, T: Churn<P::Key>>(t: &mut T, ids: &P, n: usize, op: &str, ops: usize) {
    let now0 = T0 + 10_000;
    match op {
        "peek_warm" => warm_creates(t, ids, n, ops, now0),
        "peek_cold" => cold_creates(t, ids, n, ops, now0),
        "unpeek" => profiled(t, &live_keys(ids, n, ops), now0, |t, k, now| t.remove(k, now)),
        _ => panic!("unknown profile op {op}"),
    }
}

/// [`churn`], or `renew` of live keys.
fn run_on<P: Keys, T: Churn<P::Key> + Renew<P::Key>>(
    t: &mut T,
    ids: &P,
    n: usize,
    op: &str,
    ops: usize,
) {
    if op == "renew" {
        let keys = live_keys(ids, n, ops);
        profiled(t, &keys, T0 + 10_000, |t, k, now| t.renew(k, now));
    } else {
        churn(t, ids, n, op, ops);
    }
}

pub fn run(plan: &Plan, what: &str) {
    let (workload, side) = what.split_once(':').unwrap_or((what, "machine"));
    let (family, op) = workload.split_once('_').expect("WORKLOAD is FAMILY_OP");
    let n = plan.largest();
    let ops: usize =
        std::env::var("PEEK_PROFILE_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let ops = if op == "unpeek" { ops.min(n) } else { ops };
    if op == "timeout" {
        eprintln!("profile: {workload} {side}, {n} live peeks, a tenth of them due");
    } else {
        eprintln!("profile: {workload} {side}, {n} live peeks, {ops} ops");
    }
    run_workload(family, op, side, n, ops, what);
    let (ns, done) = TIMED.with(|c| c.get());
    eprintln!("profile: {:.0} ns per op (wall clock, {done} ops)", ns as f64 / done.max(1) as f64);
}

/// The inbound or local floor `side` names for `op`: `floor` is the one the bench measures
/// `op` against, the cheaper keying (renewals and unpeeks by the joined id strings, the rest
/// by numbers; see `inbound_floor` and `local_floor`).
fn floor_keying<'a>(side: &'a str, op: &str) -> &'a str {
    match (side, op) {
        ("floor", "renew" | "unpeek") => "key_floor",
        ("floor", _) => "number_floor",
        (side, _) => side,
    }
}

/// Builds the population of `family` at `n` and runs `ops` ops of `op` on `side`.
fn run_workload(family: &str, op: &str, side: &str, n: usize, ops: usize, what: &str) {
    match (family, side) {
        (_, _) if op == "timeout" => timeout(family, side, n),
        ("inbound", "machine") => {
            let ids = InboundIds::new(n, spare(n));
            let mut m = inbound::Machine::new(inbound::machine(&ids));
            run_on(&mut m, &ids, n, op, ops);
        }
        ("inbound", "floor" | "number_floor" | "key_floor") => {
            let ids = InboundIds::new(n, spare(n));
            let records = ids.records();
            match floor_keying(side, op) {
                "key_floor" => run_on(&mut inbound::key_floor(&records), &ids, n, op, ops),
                _ => run_on(&mut inbound::InboundFloor::new(&records), &ids, n, op, ops),
            }
        }
        ("local", "machine") => {
            let ids = LocalIds::new(n, spare(n));
            run_on(&mut local::Machine::new(local::machine(&ids)), &ids, n, op, ops);
        }
        ("local", "floor" | "number_floor" | "key_floor") => {
            let ids = LocalIds::new(n, spare(n));
            match floor_keying(side, op) {
                "key_floor" => run_on(&mut local::key_floor(&ids), &ids, n, op, ops),
                _ => run_on(&mut local::floor(&ids), &ids, n, op, ops),
            }
        }
        ("outbound", side @ ("machine" | "floor")) if op == "renew" => {
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
        ("outbound", "machine") => {
            let ids = outbound::OutboundIds::new(n);
            churn(&mut outbound::population(&ids, n), &ids, n, op, ops);
        }
        ("outbound", "floor" | "room_floor" | "slot_floor") => {
            let ids = outbound::OutboundIds::new(n);
            match side {
                "slot_floor" => churn(&mut outbound::floor::<SlotKeyed>(&ids, n), &ids, n, op, ops),
                "room_floor" => churn(&mut outbound::floor::<RoomKeyed>(&ids, n), &ids, n, op, ops),
                _ if op == "unpeek" => {
                    churn(&mut outbound::floor::<UnpeekFloor>(&ids, n), &ids, n, op, ops)
                }
                _ => churn(&mut outbound::floor::<CreateFloor>(&ids, n), &ids, n, op, ops),
            }
        }
        _ => panic!("unknown profile workload {what}"),
    }
}

/// One `handle_timeout` at [`large::cutoff`] on `side` of `family` at `n` live peeks, its
/// outputs drained inside the collected call; prints how many peeks it expired.
fn timeout(family: &str, side: &str, n: usize) {
    let cutoff = large::cutoff();
    let at = cutoff.as_millis();
    let due = match (family, side) {
        ("inbound", "machine") => {
            let mut m = inbound::machine(&InboundIds::new(n, 0));
            profiled(&mut m, &[()], at, |m, _, _| {
                m.handle_timeout(cutoff);
                inbound::drain(m);
            });
            n - m.len()
        }
        ("local", "machine") => {
            let mut m = local::machine_with(&LocalIds::new(n, 0), large::retained_config());
            profiled(&mut m, &[()], at, |m, _, _| {
                m.handle_timeout(cutoff);
                local::drain(m);
            });
            n - m.len()
        }
        ("inbound", "floor") => {
            let mut f = inbound::InboundFloor::new(&InboundIds::new(n, 0).records());
            let mut due = 0;
            profiled(&mut f, &[()], at, |f, _, _| due = black_box(f.expire(cutoff)));
            due
        }
        ("local", "floor") => {
            let mut f = local::floor(&LocalIds::new(n, 0));
            let mut due = 0;
            // The retention of `timeout_local_retained`, as the machine's above.
            let ended = crate::local_floor::Ended::Retained;
            profiled(&mut f, &[()], at, |f, _, _| due = black_box(f.expire(cutoff, ended)));
            due
        }
        _ => panic!("unknown profile workload {family}_timeout:{side}"),
    };
    // The call is one `profiled` op: its wall time counts per expired peek.
    TIMED.with(|c| c.set((c.get().0, due)));
    eprintln!("profile: ops counted {due}");
}
