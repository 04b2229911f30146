//! The knobs of the long random runs of `LocalPeeks` and `InboundPeeks` (`tests/local/soak.rs`,
//! `tests/inbound/soak.rs`): extreme durations, start times near `Timestamp::MAX` and clock
//! steps that jump both ways.

use std::time::Duration;

use matrix_peek::Timestamp;
use matrix_peek::testing::SimRng;

/// Durations for leases, intervals, grace, retention and idle times: zero to `Duration::MAX`.
pub const DURS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_secs(10),
    Duration::from_secs(3600),
    Duration::MAX,
];

/// How many seeds a run covers: `SOAK_SEEDS`, else 200.
pub fn seeds() -> u64 {
    std::env::var("SOAK_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200)
}

/// A start time: zero, ordinary, or near and at `Timestamp::MAX`.
pub fn start(rng: &mut SimRng) -> u64 {
    rng.pick(&[0, 1_000_000, Timestamp::MAX.as_millis() - 50_000, Timestamp::MAX.as_millis()])
}

/// The clock after one step from `now`: usually forwards, one in five backwards, by anything
/// from 0 ms to half of `u64::MAX` (capped at `Timestamp::MAX`).
pub fn step_time(rng: &mut SimRng, now: u64) -> u64 {
    let d = rng.pick(&[0u64, 1, 700, 20_000, 4_000_000, u64::MAX / 2]);
    let t = if rng.range(0, 4) == 0 { now.saturating_sub(d) } else { now.saturating_add(d) };
    t.min(Timestamp::MAX.as_millis())
}
