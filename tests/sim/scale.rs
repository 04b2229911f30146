//! The scale mode (issue #20, docs/architecture.md §13.2) on a reduced day: 100 homeservers
//! and 500 rooms, the popular room peeked by 400 servers, the biggest resident restarting after
//! four hours with the herd settings of `ScaleConfig::peeking_default`. The full day is
//! `cargo run --release --example scale` (BENCHMARKS.md, "Federation at scale").

#![cfg(feature = "testing")]

use std::sync::OnceLock;

use matrix_peek::testing::{ScaleConfig, ScaleReport, SimError, run_scale};

const SEED: u64 = 20;

/// One reduced day, shared by the tests that read it (a day takes seconds in a debug build).
/// `run_scale` itself asserts that the world settles once demand ends with no leak, no inbound
/// peek left, no relay after expiry and every client peek answered.
fn day() -> &'static ScaleReport {
    static DAY: OnceLock<ScaleReport> = OnceLock::new();
    DAY.get_or_init(|| run_scale(&ScaleConfig::smoke(SEED)).expect("the reduced day runs"))
}

#[test]
fn a_resident_restart_herd_stays_within_twice_the_steady_rate() {
    let report = day();
    let g = &report.figures;
    assert!(g.steady_per_minute > 10.0, "the resident had steady work: {report}");
    assert!(g.herd_ratio <= 2.0, "{report}");
}

#[test]
fn every_popular_peek_is_back_within_one_renewal_interval_of_the_restart() {
    let report = day();
    let g = &report.figures;
    assert_eq!(g.popular_back, g.popular_peekers, "{report}");
    let back = g.all_back_after.expect("every peeker that stayed up is back");
    assert!(back <= g.renewal_interval, "{report}");
}

#[test]
fn a_scale_day_relays_every_event_to_its_peekers_and_leaves_nothing_behind() {
    let report = day();
    assert!(report.figures.relay_copies_per_event > 100.0, "{report}");
    assert!(report.steps > 100_000, "the day did work: {report}");
}

#[test]
fn a_scale_day_is_deterministic_from_its_seed() -> Result<(), SimError> {
    let again = run_scale(&ScaleConfig::smoke(SEED))?;
    assert_eq!(again.minutes, day().minutes);
    assert_eq!(again.figures, day().figures);
    Ok(())
}
