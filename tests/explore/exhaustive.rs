//! The searches: a CI-sized one, and deeper ones `#[ignore]`d (run them with
//! `cargo test --release --test explore -- --ignored --nocapture`).

use crate::search::explore;
use crate::world::{Ctx, Scenario, small_config};

fn run(scenario: Scenario, depth: usize) {
    let ctx = Ctx::new(small_config(), scenario);
    match explore(&ctx, depth) {
        Ok((stats, coverage)) => {
            let memo =
                |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
            println!("{scenario:?}, depth {depth}:\n  {stats}");
            println!("  checks: {coverage}");
            println!(
                "  server transitions: {} computed, {} shared",
                memo(&ctx.memo.lookups) - memo(&ctx.memo.hits),
                memo(&ctx.memo.hits)
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

#[test]
fn every_state_within_12_steps_keeps_the_invariants() {
    run(CI, 12);
}

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Any size: `EXPLORE_DEPTH`, `EXPLORE_DEVICES`, `EXPLORE_DUPS`, `EXPLORE_LOSSES`,
/// `EXPLORE_EVENTS`, `EXPLORE_RENEWALS` (0/1).
#[test]
#[ignore = "sized by the environment"]
fn explore_from_env() {
    let scenario = Scenario {
        devices: knob("EXPLORE_DEVICES", 1),
        duplications: knob("EXPLORE_DUPS", 1) as u8,
        losses: knob("EXPLORE_LOSSES", 1) as u8,
        events: knob("EXPLORE_EVENTS", 1) as u8,
        crash: knob("EXPLORE_CRASH", 1) == 1,
        outage: knob("EXPLORE_OUTAGE", 1) == 1,
        renewals: knob("EXPLORE_RENEWALS", 0) == 1,
        client_actions: knob("EXPLORE_CLIENT", 3) as u8,
        faults: knob("EXPLORE_FAULTS", 4) as u8,
    };
    let depth = knob("EXPLORE_DEPTH", 12);
    if knob("EXPLORE_CHECKS", 1) == 0 {
        let ctx = Ctx::new(small_config(), scenario);
        let none = |_: &crate::world::World, _: &Ctx| Ok(());
        println!("{}", crate::search::explore_with(&ctx, depth, &none).unwrap());
        return;
    }
    run(scenario, depth);
}
