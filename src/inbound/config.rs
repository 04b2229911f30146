//! [`InboundConfig`] and [`PeekIdPolicy`]: what the resident side accepts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which `peekId` path segments [`InboundPeeks`](super::InboundPeeks) accepts (R29).
///
/// The check runs first in [`handle_peek`](super::InboundPeeks::handle_peek); a failure is
/// [`InboundPeekError::InvalidPeekId`](super::InboundPeekError::InvalidPeekId)
/// (400 `M_UNRECOGNIZED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PeekIdPolicy {
    /// The MSC2444 rule: 1 to 8 characters of `[0-9a-zA-Z.=_-]`.
    Strict,
    /// Any visible ASCII character (`!` to `~`, so no space, no control characters) except
    /// `/`, 1 to 255 bytes.
    ///
    /// The default, because the peers actually deployed break the strict rule
    /// (docs/regressions.md, docs/requirements.md#r29): Dendrite uses the room id itself as the
    /// peek id (`!abc:example.org`, which has `!` and `:` and is usually longer than 8
    /// characters), and palpo uses `peek_` plus a 26-character ULID. A strict resident would
    /// answer both with 400 and they could never peek. Lenient ids still cannot smuggle a path
    /// separator, whitespace or control bytes into logs, storage keys or URLs, and their length
    /// is bounded so a remote cannot make us store arbitrarily large keys.
    #[default]
    Lenient,
}

impl PeekIdPolicy {
    /// Whether `peek_id` is acceptable under this policy.
    pub fn accepts(self, peek_id: &str) -> bool {
        let bytes = peek_id.as_bytes();
        match self {
            PeekIdPolicy::Strict => crate::ids::is_msc_peek_id(peek_id),
            PeekIdPolicy::Lenient => {
                (1..=255).contains(&bytes.len())
                    && bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'/')
            }
        }
    }
}

/// Configuration of [`InboundPeeks`](super::InboundPeeks). Public fields; start from
/// [`InboundConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InboundConfig {
    /// The `renewal_interval` we tell peeking servers (R35, R41). Default 1 hour
    /// (3 600 000 ms, the MSC's example; note Dendrite's 1000× unit bug, B-4).
    #[serde(with = "crate::time::duration_serde")]
    pub renewal_interval: Duration,
    /// Extra time after `renewal_interval` before an unrenewed peek expires (R43), to absorb
    /// network delay and clock skew of a peer that renews right at the deadline.
    /// A peek renewed at `t` expires at `t + renewal_interval + grace`. Default 5 minutes.
    #[serde(with = "crate::time::duration_serde")]
    pub grace: Duration,
    /// Live peeks one server may hold across all our rooms (R34). Default 10 000.
    pub max_peeks_per_server: usize,
    /// Live peeks one room may have, from all servers together (R34). Default 1 000.
    pub max_peeks_per_room: usize,
    /// Live peeks in total (R34). Default 1 000 000. At most `u32::MAX - 1` is honoured.
    pub max_peeks_total: usize,
    /// Which peek ids are accepted (R29). Default [`PeekIdPolicy::Lenient`] (see there why).
    pub peek_id_policy: PeekIdPolicy,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            renewal_interval: Duration::from_millis(3_600_000),
            grace: Duration::from_secs(5 * 60),
            max_peeks_per_server: 10_000,
            max_peeks_per_room: 1_000,
            max_peeks_total: 1_000_000,
            peek_id_policy: PeekIdPolicy::Lenient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_is_the_msc_rule() {
        // R29
        let s = PeekIdPolicy::Strict;
        assert!(s.accepts("a"));
        assert!(s.accepts("Zz09.=_-"));
        assert!(!s.accepts(""));
        assert!(!s.accepts("123456789"));
        assert!(!s.accepts("a/b"));
        assert!(!s.accepts("!room:server"));
        assert!(!s.accepts("é"));
    }

    #[test]
    fn lenient_accepts_deployed_peers_ids() {
        let l = PeekIdPolicy::Lenient;
        assert!(l.accepts("!abc:example.org")); // Dendrite: peek id = room id
        assert!(l.accepts("peek_01HZX3K4M5N6P7Q8R9S0T1V2W3")); // palpo: peek_ + ULID
        assert!(l.accepts(&"x".repeat(255)));
        assert!(!l.accepts(&"x".repeat(256)));
        assert!(!l.accepts(""));
        assert!(!l.accepts("a/b"));
        assert!(!l.accepts("a\nb"));
        assert!(!l.accepts("a\u{7f}"));
        assert!(!l.accepts("a b"));
        assert!(!l.accepts("é"));
    }

    #[test]
    fn default_is_one_hour_and_lenient() {
        let c = InboundConfig::default();
        assert_eq!(c.renewal_interval.as_millis(), 3_600_000);
        assert_eq!(c.peek_id_policy, PeekIdPolicy::Lenient);
    }
}
