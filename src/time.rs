//! [`Timestamp`] and the monotonic clamp every machine applies to `now`.
//!
//! Timestamps are wall-clock milliseconds since the Unix epoch (not `Instant`), because
//! deadlines are persisted and must survive restarts. They are capped at
//! [`Timestamp::MAX`] (2^53 − 1, the largest integer JSON peers can represent exactly), so every
//! conversion to and from [`ruma_common::MilliSecondsSinceUnixEpoch`] is lossless.

use std::fmt;
use std::time::Duration;

use ruma_common::MilliSecondsSinceUnixEpoch;
use serde::{Deserialize, Deserializer, Serialize};

/// A point in time: milliseconds since the Unix epoch, in `0..=2^53-1`.
///
/// `Copy`, totally ordered, serialised as a plain integer. Arithmetic saturates: adding a
/// duration never wraps and never exceeds [`Timestamp::MAX`]; a duration "since" a later time is
/// zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The latest representable time: 2^53 − 1 ms (JSON's largest exact integer).
    pub const MAX: Timestamp = Timestamp((1 << 53) - 1);

    /// A timestamp from milliseconds since the epoch, clamped to [`Timestamp::MAX`].
    pub const fn from_millis(millis: u64) -> Self {
        if millis > Self::MAX.0 { Self::MAX } else { Timestamp(millis) }
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + duration`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Self {
        let add = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self::from_millis(self.0.saturating_add(add))
    }

    /// `self - duration`, saturating at [`Timestamp::ZERO`].
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let sub = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(sub))
    }

    /// The time from `earlier` to `self`, or zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Clamp rather than reject: a stored or remote value above 2^53 − 1 means "never".
        u64::deserialize(deserializer).map(Timestamp::from_millis)
    }
}

impl From<MilliSecondsSinceUnixEpoch> for Timestamp {
    fn from(value: MilliSecondsSinceUnixEpoch) -> Self {
        Timestamp::from_millis(value.get().into())
    }
}

impl From<Timestamp> for MilliSecondsSinceUnixEpoch {
    fn from(value: Timestamp) -> Self {
        // Cannot fail: a Timestamp never exceeds 2^53 − 1, which is `UInt::MAX`.
        MilliSecondsSinceUnixEpoch(value.0.try_into().expect("Timestamp is at most 2^53 - 1"))
    }
}

/// How far back the host's clock may step before a machine takes it as a **correction**.
///
/// * A step back of at most this (threads passing slightly stale times, NTP slewing) is
///   absorbed: the machine keeps its later time, so nothing is resurrected, evicted or renewed
///   twice; timers simply wait for the host's clock to catch up.
/// * A step back of more than this means the earlier, later time was wrong (an NTP step, a bad
///   RTC, one wrong argument): the machine takes the new time as the truth and **heals**, so
///   that every lease, peek, renewal and wait keeps at most its normal length from the
///   corrected time. Whatever a wrong future time already expired stays expired (the host said
///   that much time had passed); nothing granted after it outlives one normal lease.
pub const CLOCK_STEP_LIMIT: Duration = Duration::from_secs(10);

/// What [`Monotonic::advance`] made of the host's `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Time moved forward, stood still, or stepped back within [`CLOCK_STEP_LIMIT`] (absorbed).
    Normal(Timestamp),
    /// Time stepped back by more than the limit: the clock is now this, and the caller must
    /// clamp every deadline it holds to its normal length from it.
    Corrected(Timestamp),
}

/// The latest `now` a machine has seen, with corrections (see [`CLOCK_STEP_LIMIT`]).
///
/// Every `handle_*` passes its `now` through [`Monotonic::advance`] and uses the result, so a
/// small step backwards never resurrects, evicts or renews anything, and a large one heals the
/// machine instead of leaving it stuck in the wrong future.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Monotonic {
    last: Timestamp,
}

impl Monotonic {
    /// Starts at `at` (the restart time of a restored machine).
    pub(crate) fn starting_at(at: Timestamp) -> Self {
        Monotonic { last: at }
    }

    /// `max(now, latest seen)` for steps back within [`CLOCK_STEP_LIMIT`]; a larger step back
    /// is a correction to `now`.
    pub(crate) fn advance(&mut self, now: Timestamp) -> Tick {
        if now > self.last {
            self.last = now;
        } else if self.last.saturating_duration_since(now) > CLOCK_STEP_LIMIT {
            self.last = now;
            return Tick::Corrected(now);
        }
        Tick::Normal(self.last)
    }

    /// The latest time seen so far.
    pub(crate) fn now(&self) -> Timestamp {
        self.last
    }
}

/// Serde for durations in configuration files: written as a human-readable string (`"1h"`,
/// `"30s"`, `"250ms"`, as the `humantime` crate spells them), read from such a string or from
/// a plain integer of milliseconds. `Duration::MAX` is written as `"forever"`. Serde's own
/// `{"secs": …, "nanos": …}` form of a `Duration` is read too, so files written before a field
/// used this module still load.
pub(crate) mod duration_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if *d == Duration::MAX {
            s.serialize_str("forever")
        } else {
            s.serialize_str(&humantime::format_duration(*d).to_string())
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
        Std { secs: u64, nanos: u32 },
    }

    pub(crate) fn parse(raw: &str) -> Result<Duration, String> {
        if raw == "forever" {
            return Ok(Duration::MAX);
        }
        humantime::parse_duration(raw).map_err(|e| format!("invalid duration {raw:?}: {e}"))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
            Raw::Text(text) => parse(&text).map_err(de::Error::custom),
            Raw::Std { secs, nanos } => {
                let extra = Duration::from_nanos(u64::from(nanos));
                Ok(Duration::from_secs(secs).saturating_add(extra))
            }
        }
    }

    /// The same for an optional duration (`None` is a missing field or `null`).
    pub(crate) mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] Duration);
            Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(d)| d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_millis_clamps_to_json_safe_range() {
        assert_eq!(Timestamp::from_millis(u64::MAX), Timestamp::MAX);
        assert_eq!(Timestamp::from_millis(5).as_millis(), 5);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(t.saturating_add(Duration::from_millis(500)).as_millis(), 1_500);
        assert_eq!(t.saturating_add(Duration::MAX), Timestamp::MAX);
        assert_eq!(t.saturating_sub(Duration::from_secs(10)), Timestamp::ZERO);
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_millis(400)),
            Duration::from_millis(600)
        );
        assert_eq!(Timestamp::ZERO.saturating_duration_since(t), Duration::ZERO);
    }

    #[test]
    fn serde_is_a_plain_integer_and_clamps() {
        let t = Timestamp::from_millis(1_700_000_000_000);
        assert_eq!(serde_json::to_string(&t).unwrap(), "1700000000000");
        let back: Timestamp = serde_json::from_str("1700000000000").unwrap();
        assert_eq!(back, t);
        let huge: Timestamp = serde_json::from_str("18446744073709551615").unwrap();
        assert_eq!(huge, Timestamp::MAX);
        assert!(serde_json::from_str::<Timestamp>("-1").is_err());
    }

    #[test]
    fn ruma_conversion_is_lossless_both_ways() {
        for ms in [0, 1, 1_700_000_000_123, Timestamp::MAX.as_millis()] {
            let t = Timestamp::from_millis(ms);
            let r: MilliSecondsSinceUnixEpoch = t.into();
            assert_eq!(u64::from(r.get()), ms);
            assert_eq!(Timestamp::from(r), t);
        }
    }

    #[test]
    fn small_steps_back_are_absorbed_and_large_ones_are_corrections() {
        let t = |ms| Timestamp::from_millis(ms);
        let mut m = Monotonic::default();
        assert_eq!(m.advance(t(100_000)), Tick::Normal(t(100_000)));
        assert_eq!(m.advance(t(95_000)), Tick::Normal(t(100_000)), "5 s back: absorbed");
        assert_eq!(m.advance(t(90_000)), Tick::Normal(t(100_000)), "exactly the limit: absorbed");
        assert_eq!(m.advance(t(100_001)), Tick::Normal(t(100_001)));
        assert_eq!(m.now(), t(100_001));
        assert_eq!(m.advance(t(50_000)), Tick::Corrected(t(50_000)), "50 s back: corrected");
        assert_eq!(m.now(), t(50_000));
        assert_eq!(Monotonic::starting_at(t(7)).now(), t(7));
    }
}
