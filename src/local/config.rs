//! [`LocalConfig`]: the policy of [`LocalPeeks`](super::LocalPeeks).

use std::time::Duration;

/// Policy of the local peek machine (docs/architecture.md §4.5). Every field has a documented default.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct LocalConfig {
    /// How long a peek lives without a renewal (R11). Default **1 hour**. A zero lease is
    /// treated as 1 ms so that `peek_expiry_ts` is always in the future (R9).
    #[serde(with = "crate::time::duration_serde")]
    pub lease: Duration,
    /// Live peeks one device may hold (R3). Default **100**. Also bounds the ended/joined
    /// entries kept per device for `/sync`: when a device has more, its oldest is collected
    /// early.
    pub max_peeks_per_device: usize,
    /// Live peeks across all devices (R3). Default **1 000 000**. Live peeks plus retained
    /// ended/joined entries never exceed it: the oldest retained entry is collected early.
    pub max_peeks_total: usize,
    /// How long an ended or joined entry is kept so that an incremental `/sync` can still
    /// report it (docs/architecture.md §4.3). Default **24 hours**. A `since` older than what was collected is
    /// answered like an initial sync.
    #[serde(with = "crate::time::duration_serde")]
    pub ended_retention: Duration,
    /// A device that has not synced (nor peeked) for this long stops counting as a live peeker
    /// for room demand (docs/architecture.md §4.4); its peeks stay until their leases end. Default **`None`**:
    /// leases alone decide. Set it (for example to 10 minutes) once the host calls
    /// `handle_device_synced` on every `/sync`.
    #[serde(default, with = "crate::time::duration_serde::option")]
    pub device_idle_after: Option<Duration>,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            lease: Duration::from_secs(60 * 60),
            max_peeks_per_device: 100,
            max_peeks_total: 1_000_000,
            ended_retention: Duration::from_secs(24 * 60 * 60),
            device_idle_after: None,
        }
    }
}

impl LocalConfig {
    pub(super) fn effective_lease(&self) -> Duration {
        self.lease.max(Duration::from_millis(1))
    }
}
