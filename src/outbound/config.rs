//! [`OutboundConfig`], [`OutboundRenewStyle`], and the pure arithmetic the machine uses: renewal
//! clamping, deterministic backoff with jitter, and peek-id encoding (R47, R53, R60).

use std::time::Duration;

use ruma_common::{RoomId, RoomVersionId};

use crate::ids::PeekId;

/// How an established peek is kept alive (R53).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum OutboundRenewStyle {
    /// MSC2444 final: `POST …/peek/{roomId}/{peekId}/renew` ([`OutboundRequestKind::Renew`]).
    ///
    /// [`OutboundRequestKind::Renew`]: super::OutboundRequestKind::Renew
    #[default]
    RenewEndpoint,
    /// Older peers (Dendrite, palpo, the Sept-2020 draft): re-send the `PUT` with the **same**
    /// peek id ([`OutboundRequestKind::Peek`]). Either `Established` or `Renewed` is accepted as the
    /// answer.
    ///
    /// [`OutboundRequestKind::Peek`]: super::OutboundRequestKind::Peek
    RePut,
}

/// Tunables of [`OutboundPeeks`](super::OutboundPeeks). Every field has a documented default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OutboundConfig {
    /// Room versions advertised as `ver` on every `PUT` (R48), and accepted in an
    /// `Established` answer (R49). Default: every stable version ruma-common 0.20 knows, `1`–`12`.
    pub supported_versions: Vec<RoomVersionId>,
    /// Renew after this fraction of the remote's `renewal_interval` (R53). Default `0.5`;
    /// values outside `0.05..=1.0` (or NaN) are clamped into it.
    pub renew_fraction: f64,
    /// Never renew sooner than this after a success, however short the remote's interval (a
    /// 10 ms interval renews after this). Default 60 s.
    #[serde(with = "crate::time::duration_serde")]
    pub min_renew_after: Duration,
    /// Never wait longer than this to renew, however long the remote's interval (Dendrite
    /// advertises 3 600 000 000 ms = 1000 h, B-4). Default 30 min.
    #[serde(with = "crate::time::duration_serde")]
    pub max_renew_after: Duration,
    /// How long a peek with no local demand is kept before it is deleted (R55); demand returning
    /// within it cancels the teardown with no traffic. Default 2 min.
    #[serde(with = "crate::time::duration_serde")]
    pub linger: Duration,
    /// The backoff after a candidate's first network failure (R60). Default 1 s. Every delay is
    /// **shortened** by a deterministic jitter of up to 10 % (never lengthened), so the real
    /// first delay is between 0.9 × and 1 × this (900 ms–1 s by default); each further failure
    /// of the same candidate doubles it, up to `backoff_max`. Other candidates are tried in the
    /// meantime: backoff is kept per candidate.
    #[serde(with = "crate::time::duration_serde")]
    pub backoff_base: Duration,
    /// Cap on every backoff delay, and on a `RateLimited` `retry_after` hint. Default 10 min.
    #[serde(with = "crate::time::duration_serde")]
    pub backoff_max: Duration,
    /// Failed `PUT`s (network failures and rate limiting, across all candidates) after which a
    /// room whose peek was **never** established gives up: `Unavailable`, and the client peeks
    /// waiting on it fail. This is the only thing that ends a backoff sequence; a peek that
    /// **was** established is retried for as long as it is demanded. Default 6 (with one
    /// candidate and the default backoff: about 30 s of trying).
    pub max_attempts: u32,
    /// Most rooms tracked at once (any state, lingering and deleting included); a demand beyond
    /// it gets `Unavailable { error: LimitExceeded }`. Default 10 000.
    pub max_rooms: usize,
    /// How to renew. Default [`OutboundRenewStyle::RenewEndpoint`].
    pub renew_style: OutboundRenewStyle,
    /// Most candidate servers kept per room; further `via` entries are ignored. Default 16.
    pub max_candidates: usize,
    /// `DELETE` attempts that failed on network trouble (or 429) before the delete is dropped;
    /// the resident then expires the peek itself after its `renewal_interval` (R43), since we
    /// never renew it again. Default 5.
    pub max_delete_attempts: u32,
    /// How long the renewals (or silence probes) of an established peek may fail on the network
    /// before the room moves to another candidate **at once**, while the old resident's peek is
    /// deleted in the background. Default **60 s**: with the 30 s silence floor and a 10 s
    /// request timeout, an active room whose resident dies is served by another candidate
    /// within about two minutes. With one candidate, renewals go on until the peek lapses.
    #[serde(with = "crate::time::duration_serde")]
    pub failover_after: Duration,
    /// The shortest silence that makes an **active** room (its last four gaps between events
    /// known) probe its resident with an early renewal. A room probes after four times its
    /// longest recent gap without events, at least this, and only when that comes before the
    /// normal renewal; quiet rooms never probe, and a room whose probe succeeded is not probed
    /// again until its next event. Default **30 s**.
    #[serde(with = "crate::time::duration_serde")]
    pub min_silence: Duration,
    /// This host's salt for every jitter the machine draws (backoff, and the renewal retry
    /// spread below). Default `0`. The jitter is a hash of the room id and the attempt
    /// number, so two servers with the same salt peeking the same room retry **in
    /// lockstep**: when a popular room's resident comes back, every peeking server's retry
    /// lands in the same millisecond. Set it once per host to something that differs between
    /// servers, for example a hash of the server name (the machine itself has no randomness).
    /// [`Driver::open`](crate::Driver::open) replaces a 0 with a salt drawn once per process.
    pub jitter_seed: u64,
    /// Spreads the retries of a **failing renewal** (or probe) over the time the peek has
    /// left: the retry waits at least `u × renew_retry_spread × (expires_at − now)`, `u`
    /// drawn uniformly from `[0, 1)` by the jitter hash (room, attempt, [`jitter_seed`]), and
    /// at least the ordinary backoff (or a 429's hint). Default `0.0`: off, retries follow
    /// the backoff alone. Values outside `0.0..=0.9` (or NaN) are clamped into it (a spread
    /// of 1 could put the retry past the lapse).
    ///
    /// A failing renewal leaves the peek granted until `expires_at`, and a resident that comes
    /// back with its store relays events again without waiting for the renewal, so there is
    /// no hurry: with `0.8` the thousands of servers that noticed a popular resident's outage
    /// at the same moment come back over tens of minutes instead of within one backoff step
    /// (the herd of issue #20, `run_scale`). Failover to another candidate is not delayed: it
    /// is timed by `failover_after` from the first failure, not by the retries.
    ///
    /// [`jitter_seed`]: Self::jitter_seed
    pub renew_retry_spread: f64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        use RoomVersionId::*;
        OutboundConfig {
            supported_versions: vec![V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12],
            renew_fraction: 0.5,
            min_renew_after: Duration::from_secs(60),
            max_renew_after: Duration::from_secs(30 * 60),
            linger: Duration::from_secs(120),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            max_attempts: 6,
            max_rooms: 10_000,
            renew_style: OutboundRenewStyle::RenewEndpoint,
            max_candidates: 16,
            max_delete_attempts: 5,
            failover_after: Duration::from_secs(60),
            min_silence: Duration::from_secs(30),
            jitter_seed: 0,
            renew_retry_spread: 0.0,
        }
    }
}

impl OutboundConfig {
    /// How long after a success the next renewal is due:
    /// `clamp(interval × renew_fraction, min_renew_after, max_renew_after)` (R53).
    ///
    /// `interval` is the remote's, unclamped; `max_renew_after` wins if it is configured below
    /// `min_renew_after`. A `renew_fraction` outside `0.05..=1.0` is clamped into it (NaN counts
    /// as `0.5`). The product is within a nanosecond (rounded down) below 104 days and
    /// saturates at about 584 years (`u64::MAX` ns), which only matters for a
    /// `max_renew_after` beyond that.
    pub fn renew_after(&self, interval: Duration) -> Duration {
        let fraction =
            if self.renew_fraction.is_nan() { 0.5 } else { self.renew_fraction.clamp(0.05, 1.0) };
        // In nanoseconds: within 1 ns below 2^53 ns (104 days; the cast rounds down, so
        // 0.7 × 3 s gives 2_099_999_999 ns), off by at most a few microseconds up
        // to 2^64 ns; a float-to-int `as` saturates, so a huger interval gives the largest u64
        // (584 years), which the clamp below brings down.
        // (From the seconds and the nanoseconds as u64 and u32: a u128 to f64 conversion is a
        // slow library call.)
        let nanos = interval.as_secs() as f64 * 1e9 + f64::from(interval.subsec_nanos());
        let scaled = Duration::from_nanos((nanos * fraction) as u64);
        scaled.max(self.min_renew_after).min(self.max_renew_after)
    }

    /// The delay before retry number `attempt` (1-based) of `room`:
    /// `min(backoff_base × 2^(attempt−1), backoff_max)` **minus** a deterministic jitter of up
    /// to 10 % (so delays are never longer than that), derived from a hash of the room id and
    /// the attempt number (no randomness; the same room and attempt always give the same
    /// delay, R60). With the defaults the first delay is between 900 ms and 1 s.
    pub fn backoff(&self, room: &RoomId, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(40);
        let full = self.backoff_base.saturating_mul(1u32 << exp.min(31)).min(self.backoff_max);
        let full = if exp > 31 { self.backoff_max } else { full };
        let full_ms = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
        let span = full_ms / 10;
        let jitter =
            if span == 0 { 0 } else { jitter_hash(self.jitter_seed, room, attempt) % (span + 1) };
        Duration::from_millis(full_ms - jitter)
    }

    /// The wait a `RateLimited { retry_after }` asks for: the hint raised to
    /// [`MIN_RETRY_AFTER`](Self::MIN_RETRY_AFTER) (a hint of zero would otherwise make us
    /// retry in a loop) and clamped to `backoff_max`, or the ordinary backoff when there is no
    /// hint (R60).
    pub fn rate_limited_wait(
        &self,
        room: &RoomId,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        match retry_after {
            Some(hint) => {
                hint.max(Self::MIN_RETRY_AFTER).min(self.backoff_max.max(Self::MIN_RETRY_AFTER))
            }
            None => self.backoff(room, attempt),
        }
    }

    /// The shortest wait a `429` can impose, whatever its `retry_after`: 1 s, the same floor
    /// as the hints this crate sends.
    pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

    /// The wait before retrying a renewal of `room` that failed for the `attempt`-th time
    /// (1-based) with `wait` the ordinary delay ([`backoff`](Self::backoff), or a 429's
    /// [`rate_limited_wait`](Self::rate_limited_wait)) and `left` the time until the peek
    /// lapses: `max(wait, u × renew_retry_spread × left)` with `u` in `[0, 1)` hashed from
    /// the room, the attempt and [`jitter_seed`](Self::jitter_seed). With the default spread
    /// of 0 it is `wait`.
    pub fn renewal_retry(
        &self,
        room: &RoomId,
        attempt: u32,
        wait: Duration,
        left: Duration,
    ) -> Duration {
        let spread = if self.renew_retry_spread.is_nan() {
            0.0
        } else {
            self.renew_retry_spread.clamp(0.0, 0.9)
        };
        if spread == 0.0 {
            return wait;
        }
        // 53 random bits as a fraction in [0, 1); the salt keeps the hash apart from backoff's.
        let h = jitter_hash(self.jitter_seed ^ 0x5eed_5eed, room, attempt);
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        let spread =
            Duration::try_from_secs_f64(left.as_secs_f64() * spread * u).unwrap_or(Duration::ZERO);
        wait.max(spread)
    }
}

/// FNV-1a over the host's seed (when not zero), the room id and the attempt number: stable
/// across platforms and Rust versions. A zero seed hashes as before seeds existed.
fn jitter_hash(seed: u64, room: &RoomId, attempt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let seed = if seed == 0 { &[][..] } else { &seed.to_le_bytes()[..] };
    for b in seed.iter().copied().chain(room.as_str().bytes()).chain(attempt.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The 64 characters peek ids are spelt with, a subset of MSC2444's `[0-9a-zA-Z.=_-]`.
const ALPHABET: &[u8; 64] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-";

/// The peek id for counter value `n`: exactly 8 characters, distinct for every `n < 2^48`
/// (R47). Counters never get near 2^48 (one id per millisecond for 8 900 years).
pub(crate) fn encode_peek_id(n: u64) -> PeekId {
    // Bytes, then one check of 8 ASCII bytes: collecting `char`s into the id cost about 250
    // instructions per id (a push per character), a twentieth of opening a peek.
    let mut id = [0u8; 8];
    for (i, b) in id.iter_mut().rev().enumerate() {
        *b = ALPHABET[((n >> (6 * i)) & 63) as usize];
    }
    PeekId::from(std::str::from_utf8(&id).expect("the alphabet is ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> ruma_common::OwnedRoomId {
        RoomId::parse("!a:example.org").unwrap()
    }

    #[test]
    fn renew_after_clamps_both_ways() {
        // R53
        let c = OutboundConfig::default();
        assert_eq!(c.renew_after(Duration::from_secs(3600)), Duration::from_secs(1800));
        assert_eq!(c.renew_after(Duration::from_millis(3_600_000_000)), c.max_renew_after);
        assert_eq!(c.renew_after(Duration::from_millis(10)), c.min_renew_after);
        assert_eq!(c.renew_after(Duration::MAX), c.max_renew_after);
        // To the nanosecond for intervals a resident grants (a fraction that is a power of two
        // is exact; others may round down by 1 ns).
        let quarter = OutboundConfig { renew_fraction: 0.25, ..OutboundConfig::default() };
        assert_eq!(quarter.renew_after(Duration::new(401, 4)), Duration::new(100, 250_000_001));
        // A fraction out of range is clamped into 0.05..=1.0; NaN counts as 0.5.
        let hour = Duration::from_secs(3600);
        let with = |f: f64| OutboundConfig { renew_fraction: f, ..OutboundConfig::default() };
        assert_eq!(with(f64::NAN).renew_after(hour), Duration::from_secs(1800));
        assert_eq!(with(-3.0).renew_after(hour), Duration::from_secs(180));
        assert_eq!(with(f64::NEG_INFINITY).renew_after(hour), Duration::from_secs(180));
        assert_eq!(with(7.0).renew_after(hour / 4), hour / 4);
        assert_eq!(with(f64::INFINITY).renew_after(hour / 4), hour / 4);
        // Limits the wrong way round: the maximum wins.
        let crossed = OutboundConfig {
            min_renew_after: hour,
            max_renew_after: Duration::from_secs(60),
            ..OutboundConfig::default()
        };
        assert_eq!(crossed.renew_after(hour), Duration::from_secs(60));
        // A huge maximum: the product saturates at u64::MAX nanoseconds.
        let open = OutboundConfig { max_renew_after: Duration::MAX, ..with(1.0) };
        assert_eq!(open.renew_after(Duration::MAX), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn backoff_doubles_and_caps_with_bounded_jitter() {
        // R60
        let c = OutboundConfig::default();
        let r = room();
        for attempt in 1..60 {
            let full = c.backoff_base.saturating_mul(1 << (attempt - 1).min(31)).min(c.backoff_max);
            let d = c.backoff(&r, attempt);
            assert!(d <= full && d >= full - full / 10, "attempt {attempt}: {d:?} vs {full:?}");
            assert_eq!(d, c.backoff(&r, attempt));
        }
    }

    #[test]
    fn jitter_seeds_set_servers_apart_and_a_zero_seed_keeps_the_old_delays() {
        let r = room();
        let plain = OutboundConfig::default();
        let other = OutboundConfig { jitter_seed: 0xdead_beef, ..OutboundConfig::default() };
        let old: Vec<_> = (1..20).map(|a| plain.backoff(&r, a)).collect();
        let new: Vec<_> = (1..20).map(|a| other.backoff(&r, a)).collect();
        assert_ne!(old, new, "another seed draws other jitters");
        // The delays of the zero seed are those of the unseeded hash.
        let full = plain.backoff_base.as_millis() as u64;
        let expected = full - jitter_hash(0, &r, 1) % (full / 10 + 1);
        assert_eq!(plain.backoff(&r, 1).as_millis() as u64, expected);
    }

    #[test]
    fn a_failing_renewal_retries_within_the_spread_of_the_time_left_and_never_before_the_backoff() {
        let r = room();
        let left = Duration::from_secs(1800);
        let wait = Duration::from_secs(2);
        let off = OutboundConfig::default();
        assert_eq!(off.renewal_retry(&r, 1, wait, left), wait, "off by default");
        let mut spread_out = Vec::new();
        for seed in 1..200u64 {
            let c = OutboundConfig {
                jitter_seed: seed,
                renew_retry_spread: 0.8,
                ..OutboundConfig::default()
            };
            let d = c.renewal_retry(&r, 1, wait, left);
            assert!(d >= wait && d <= left.mul_f64(0.8), "{d:?}");
            spread_out.push(d);
        }
        // 199 servers spread over the window: no minute holds more than a tenth of them.
        let mut per_minute = std::collections::BTreeMap::new();
        for d in &spread_out {
            *per_minute.entry(d.as_secs() / 60).or_insert(0) += 1;
        }
        assert!(per_minute.values().all(|&n| n < 20), "{per_minute:?}");
        // Clamped: a spread of 5 (or NaN) cannot reach the lapse.
        for bad in [5.0, f64::NAN, -1.0] {
            let c = OutboundConfig {
                jitter_seed: 3,
                renew_retry_spread: bad,
                ..OutboundConfig::default()
            };
            assert!(c.renewal_retry(&r, 1, wait, left) <= left.mul_f64(0.9));
        }
    }

    #[test]
    fn peek_ids_are_eight_valid_distinct_characters() {
        // R47
        let mut seen = std::collections::HashSet::new();
        for n in (0..5_000).chain([1 << 40, (1 << 48) - 1]) {
            let id = encode_peek_id(n);
            assert_eq!(id.len(), 8);
            assert!(crate::ids::is_msc_peek_id(&id));
            assert!(seen.insert(id));
        }
        assert!(!crate::ids::is_msc_peek_id(""));
        assert!(!crate::ids::is_msc_peek_id("!room:ex"));
        assert!(!crate::ids::is_msc_peek_id("123456789"));
    }
}
