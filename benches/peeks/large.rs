//! The large workloads at the largest size of the run: `handle_timeout` expiring a tenth of the
//! population (inbound and local), and `restore` of a whole population. Each iteration runs on
//! a fresh clone of the population; cloning and dropping are not measured.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use matrix_peek::InboundPeeks;
use matrix_peek::LocalPeeks;

use crate::local_floor::{Ended, LocalFloor};
use crate::support::*;
use crate::{Group, Plan, inbound, local};

/// A tenth of the day over which the snapshots spread their deadlines is due
/// ([`InboundIds::expires_at`]).
pub fn cutoff() -> matrix_peek::Timestamp {
    ts(T0)
        .saturating_add(LONG - Duration::from_millis(DAY_MS))
        .saturating_add(Duration::from_millis(DAY_MS / 10))
}

pub fn timeout(c: &mut Criterion, plan: &Plan) {
    let n = plan.largest();
    let cutoff = cutoff();
    if plan.wants("timeout_inbound") {
        let ids = InboundIds::new(n, 0);
        let records = ids.records();
        let proto = inbound::machine(&ids);
        let fproto = inbound::InboundFloor::new(&records);
        let sproto = inbound::scan(records);
        let due = {
            let mut m = proto.clone();
            m.handle_timeout(cutoff);
            n - m.len()
        };
        eprintln!("timeout_inbound: {due} of {n} peeks due");
        let mut expired = fproto.clone();
        assert_eq!(due, expired.expire(cutoff), "machine and floor expire alike");
        expired.check(n - due);
        let mut g = c.benchmark_group("timeout_inbound");
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
        let name = |who: &str| format!("{who}/{due}_of_{n}");
        on_fresh(
            &mut g,
            &name("machine"),
            || proto.clone(),
            |mut m| {
                m.handle_timeout(cutoff);
                inbound::drain(&mut m);
                m
            },
        );
        on_fresh(
            &mut g,
            &name("floor"),
            || fproto.clone(),
            |mut f| {
                black_box(f.expire(cutoff));
                f
            },
        );
        on_fresh(
            &mut g,
            &name("scan"),
            || sproto.clone(),
            |mut s| {
                black_box(s.sweep(cutoff));
                s
            },
        );
        g.bench_function(name("scan_idle_tick"), |b| {
            // A tick of the periodic scan that finds nothing due: the cost it pays every 60 s.
            let mut s = sproto.clone();
            b.iter(|| black_box(s.sweep(ts(T0))))
        });
        g.finish();
    }
    // `timeout_local`: the bench config's zero `ended_retention`, so the same call also
    // collects every ended entry (its `Persist` of the removal, the stream record);
    // `timeout_local_retained`: the default retention, so expiry only ends the peeks (their
    // `Persist`, `PeekEnded`, `Wake`) and collection comes a retention later, as in production.
    let groups = [
        ("timeout_local", LocalIds::config(), Ended::Forgotten),
        ("timeout_local_retained", retained_config(), Ended::Retained),
    ];
    for (group, config, ended) in groups {
        if !plan.wants(group) {
            continue;
        }
        let ids = LocalIds::new(n, 0);
        let proto = local::machine_with(&ids, config);
        let fproto = local::floor(&ids);
        let due = {
            let mut m = proto.clone();
            m.handle_timeout(cutoff);
            n - m.len()
        };
        eprintln!("{group}: {due} of {n} peeks due");
        let mut expired = fproto.clone();
        assert_eq!(due, expired.expire(cutoff, ended), "machine and floor expire alike");
        expired.check(n - due);
        let mut g = c.benchmark_group(group);
        g.sample_size(10).sampling_mode(SamplingMode::Flat);
        let name = |who: &str| format!("{who}/{due}_of_{n}");
        on_fresh(
            &mut g,
            &name("machine"),
            || proto.clone(),
            |mut m| {
                m.handle_timeout(cutoff);
                local::drain(&mut m);
                m
            },
        );
        on_fresh(
            &mut g,
            &name("floor"),
            || fproto.clone(),
            |mut f| {
                black_box(f.expire(cutoff, ended));
                f
            },
        );
        g.finish();
    }
}

/// The bench's local config with the default `ended_retention`: expiry ends the peeks, and
/// collection comes a retention later, as in production.
pub fn retained_config() -> matrix_peek::LocalConfig {
    matrix_peek::LocalConfig {
        ended_retention: matrix_peek::LocalConfig::default().ended_retention,
        ..LocalIds::config()
    }
}

pub fn restore(c: &mut Criterion, plan: &Plan) {
    if !plan.wants("restore") {
        return;
    }
    let n = plan.largest();
    let mut g = c.benchmark_group("restore");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    let name = |who: &str| format!("{who}/{n}");
    let ids = InboundIds::new(n, 0);
    let records = ids.records();
    inbound::InboundFloor::new(&records).check(n);
    on_fresh(
        &mut g,
        &name("inbound_machine"),
        || records.clone(),
        |recs| InboundPeeks::restore(ts(T0), InboundIds::config(), recs),
    );
    // The floors borrow the records, which are dropped after the timed part (returned).
    on_fresh(
        &mut g,
        &name("inbound_floor"),
        || records.clone(),
        |recs| (inbound::InboundFloor::new(&recs), recs),
    );
    drop(records);
    let lids = LocalIds::new(n, 0);
    let lrecords = local::records(&lids);
    local_floor(&lrecords).check(n);
    on_fresh(
        &mut g,
        &name("local_machine"),
        || lrecords.clone(),
        |recs| {
            let mut m = LocalPeeks::restore(ts(T0), LocalIds::config(), recs);
            local::drain(&mut m);
            m
        },
    );
    on_fresh(&mut g, &name("local_floor"), || lrecords.clone(), |recs| (local_floor(&recs), recs));
    g.finish();
}

/// The floor of a local restore: [`LocalFloor::bulk`] over the records' names.
fn local_floor(records: &[matrix_peek::LocalRecord]) -> LocalFloor {
    LocalFloor::bulk(
        records.len(),
        records.iter().filter_map(|r| match r {
            matrix_peek::LocalRecord::Peek { user_id, device_id, room_id, expires_at, .. } => {
                Some(([user_id.as_str(), device_id.as_str(), room_id.as_str()], *expires_at))
            }
            _ => None,
        }),
    )
}

/// `name` in `g`: `op` on a fresh input from `setup` each iteration; building the input and
/// dropping the output are not measured.
fn on_fresh<I, O>(g: &mut Group, name: &str, setup: impl Fn() -> I, op: impl Fn(I) -> O) {
    g.bench_function(name, |b| b.iter_custom(|iters| measure_each(iters, &setup, &op)));
}
