//! [`PeekingConfig`]: the three machines' configurations and the coordinator's own caps.

use crate::inbound::InboundConfig;
use crate::local::LocalConfig;
use crate::outbound::OutboundConfig;

/// Configuration of [`Peeking`](crate::Peeking): the three machines' configs plus the
/// coordinator's own caps. Loadable from a file like every config of the crate: missing fields
/// take their defaults; durations are humantime strings (`"90s"`) or integers of milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PeekingConfig {
    /// Local peeks (MSC2753).
    pub local: LocalConfig,
    /// Inbound federated peeks (MSC2444 resident side).
    pub inbound: InboundConfig,
    /// Outbound federated peeks (MSC2444 peeking side).
    pub outbound: OutboundConfig,
    /// Client peeks that may wait on federation at once (default 10 000); beyond it a remote
    /// client peek fails with `LimitExceeded`.
    pub max_pending_client_peeks: usize,
    /// Candidate servers kept per remote room (default 16); the rest of a long `via` is
    /// ignored.
    pub max_via: usize,
    /// Longest a client peek waits on federation (default 10 min); then it fails with
    /// `Remote(Unreachable)` (502). A never-established room gives up sooner by
    /// `OutboundConfig::max_attempts`; this bounds the wait on a room whose established peek
    /// was lost and is retried without limit (R27).
    pub max_pending_wait: std::time::Duration,
}

impl Default for PeekingConfig {
    fn default() -> Self {
        PeekingConfig {
            local: LocalConfig::default(),
            inbound: InboundConfig::default(),
            outbound: OutboundConfig::default(),
            max_pending_client_peeks: 10_000,
            max_via: 16,
            max_pending_wait: std::time::Duration::from_secs(600),
        }
    }
}
