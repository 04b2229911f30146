//! The searches: a CI-sized one, and larger ones `#[ignore]`d (run them with
//! `cargo test --release --all-features --test explore -- --ignored --nocapture`; sizes and
//! times are in BENCHMARKS.md, "Exhaustive exploration").

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::search::explore;
use crate::world::{Ctx, Scenario, small_config};

/// Explores `scenario` to `depth` with every invariant, prints what it saw, panics with the
/// path to the first violation.
fn run(ctx: Ctx, depth: usize) {
    let scenario = ctx.scenario;
    match explore(&ctx, depth) {
        Ok((stats, coverage)) => {
            let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
            println!("{scenario:?}, depth {depth}:\n  {stats}");
            println!("  checks: {coverage}");
            println!(
                "  server transitions: {} computed, {} shared",
                n(&ctx.memo.lookups) - n(&ctx.memo.hits),
                n(&ctx.memo.hits)
            );
        }
        Err(why) => panic!("{why}"),
    }
}

/// One device that peeks and unpeeks; any one fault per run: a lost message, a duplicated
/// one, the peeking server's crash-restart or the first resident's outage; reordering always.
const CI: Scenario = Scenario {
    devices: 1,
    duplications: 1,
    losses: 1,
    events: 0,
    crash: true,
    outage: true,
    renewals: false,
    client_actions: 2,
    faults: 1,
};

/// The CI search: about 95 000 states; 14 s in debug with a core to itself, 45 s on a busy
/// machine (BENCHMARKS.md).
#[test]
fn every_state_within_12_steps_keeps_the_invariants() {
    run(Ctx::new(small_config(), CI), 12);
}

/// The CI world, four steps deeper.
#[test]
#[ignore = "about 1.2 million states: run in release"]
fn every_state_within_16_steps_keeps_the_invariants() {
    run(Ctx::new(small_config(), CI), 16);
}

/// Two faults of any kinds in one run (a crash and a loss, an outage and a duplication, …),
/// and a device that peeks, unpeeks and peeks again.
#[test]
#[ignore = "about 1.4 million states: run in release"]
fn two_faults_per_run_within_12_steps_keep_the_invariants() {
    let scenario = Scenario { client_actions: 3, faults: 2, ..CI };
    run(Ctx::new(small_config(), scenario), 12);
}

/// Two devices (each may renew its lease by peeking again), and events relayed by the
/// residents, with one fault per run.
#[test]
#[ignore = "about a million states: run in release"]
fn two_devices_and_events_within_11_steps_keep_the_invariants() {
    let scenario = Scenario { devices: 2, events: 1, renewals: true, client_actions: 3, ..CI };
    run(Ctx::new(small_config(), scenario), 11);
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Any size, from the environment: `EXPLORE_DEPTH` (12), `EXPLORE_DEVICES` (1),
/// `EXPLORE_DUPS` (1), `EXPLORE_LOSSES` (1), `EXPLORE_EVENTS` (0), `EXPLORE_CRASH` (1),
/// `EXPLORE_OUTAGE` (1), `EXPLORE_RENEWALS` (0), `EXPLORE_CLIENT` (2), `EXPLORE_FAULTS` (1).
#[test]
#[ignore = "sized by the environment"]
fn explore_from_env() {
    let scenario = Scenario {
        devices: knob("EXPLORE_DEVICES", 1),
        duplications: knob("EXPLORE_DUPS", 1) as u8,
        losses: knob("EXPLORE_LOSSES", 1) as u8,
        events: knob("EXPLORE_EVENTS", 0) as u8,
        crash: knob("EXPLORE_CRASH", 1) == 1,
        outage: knob("EXPLORE_OUTAGE", 1) == 1,
        renewals: knob("EXPLORE_RENEWALS", 0) == 1,
        client_actions: knob("EXPLORE_CLIENT", 2) as u8,
        faults: knob("EXPLORE_FAULTS", 1) as u8,
    };
    run(Ctx::new(small_config(), scenario), knob("EXPLORE_DEPTH", 12));
}
