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
    #[serde(with = "crate::time::duration_serde")]
    pub max_pending_wait: std::time::Duration,
    /// Anti-entropy between a [`SyncSide`](crate::SyncSide) and a
    /// [`FederationSide`](crate::FederationSide) running apart (default 5 min, at least 1 s;
    /// docs/architecture.md §7.5): the sync side states its demand for each room it wants
    /// again this long after its last `Demand` for it, and the federation side asks the sync
    /// side to confirm a demand it has not heard restated for twice this long
    /// ([`ToSync::Confirm`](crate::ToSync::Confirm)). It bounds how long a demand lost in a
    /// crash goes unnoticed. [`Peeking`](crate::Peeking) passes messages directly and never
    /// restates.
    #[serde(with = "crate::time::duration_serde")]
    pub resync_interval: std::time::Duration,
    /// How late a log may redeliver a routing message after a newer one of the same room was
    /// delivered (default 1 h; docs/architecture.md §7.5). A
    /// [`FederationSide`](crate::FederationSide) remembers each room's newest applied message
    /// at least this long, so a redelivery within it is recognised as stale; after it, a room
    /// it no longer peeks is forgotten, which bounds that memory. A JetStream consumer with
    /// one message in flight (`max_ack_pending = 1`) never redelivers an older message after
    /// a newer one. Unused by [`Peeking`](crate::Peeking), whose messages cannot be
    /// redelivered.
    #[serde(with = "crate::time::duration_serde")]
    pub replay_window: std::time::Duration,
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
            resync_interval: std::time::Duration::from_secs(300),
            replay_window: std::time::Duration::from_secs(3600),
        }
    }
}
