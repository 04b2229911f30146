//! The scale mode (issue #20, docs/architecture.md §13.2) on a reduced day: 100 homeservers
//! and 500 rooms, the popular room peeked by 400 servers, the biggest resident restarting after
//! four hours. The full day is `cargo run --release --example scale` (BENCHMARKS.md).

#![cfg(feature = "testing")]

use matrix_peek::testing::{ScaleConfig, SimError, run_scale};

/// The peeking side's settings that keep the herd flat (BENCHMARKS.md, "Federation at scale").
fn flattened(seed: u64) -> ScaleConfig {
    ScaleConfig::smoke(seed)
}

#[test]
fn a_resident_restart_herd_stays_within_twice_the_steady_rate() -> Result<(), SimError> {
    let report = run_scale(&flattened(20))?;
    let g = &report.figures;
    assert!(g.steady_per_minute > 10.0, "the resident had steady work: {report}");
    assert!(g.herd_ratio <= 2.0, "{report}");
    Ok(())
}

#[test]
fn every_popular_peek_is_back_within_one_renewal_interval_of_the_restart() -> Result<(), SimError>
{
    let report = run_scale(&flattened(21))?;
    let g = &report.figures;
    assert_eq!(g.popular_back, g.popular_peekers, "{report}");
    let back = g.all_back_after.expect("all back");
    assert!(back <= g.renewal_interval, "{report}");
    Ok(())
}

#[test]
fn a_scale_day_is_deterministic_from_its_seed_and_leaves_nothing_behind() -> Result<(), SimError> {
    // run_scale itself asserts that the world settles with no leak, no inbound peek left, no
    // relay after expiry and every client peek answered.
    let a = run_scale(&flattened(22))?;
    let b = run_scale(&flattened(22))?;
    assert_eq!(a.minutes, b.minutes);
    assert_eq!(a.figures, b.figures);
    assert!(a.figures.relay_copies_per_event > 1.0, "{a}");
    assert!(a.steps > 100_000, "the day did work: {a}");
    Ok(())
}
