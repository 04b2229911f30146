//! [`PeekingStats`]: what [`Peeking`](super::Peeking) and its three machines did and hold.

use serde::Serialize;

use crate::inbound::InboundStats;
use crate::local::LocalStats;
use crate::outbound::OutboundStats;

/// How client peeks of rooms this server is not in went (MSC2753 over MSC2444). Peeks of
/// resident rooms are counted by [`LocalStats`] alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ClientPeekCounts {
    /// Client peeks of remote rooms received.
    pub remote: u64,
    /// Of these, decided at once (the federated peek was already up, or the user is joined).
    pub answered_at_once: u64,
    /// Of these, made to wait on federation (`ClientPeekReply::Pending`).
    pub waited: u64,
    /// Waiting peeks granted when the federated peek was established.
    pub granted_after_wait: u64,
    /// Waiting peeks refused: every resident refused, or the local checks refused.
    pub refused_after_wait: u64,
    /// Waiting peeks withdrawn: the client went away or unpeeked, or its device or user is gone.
    pub withdrawn: u64,
    /// Waiting peeks that gave up after `max_pending_wait`.
    pub timed_out: u64,
    /// Refused at once because `max_pending_client_peeks` peeks were already waiting.
    pub over_capacity: u64,
}

/// Everything a metrics scrape needs, from [`Peeking::stats`](super::Peeking::stats): the
/// three machines' stats and the coordinator's own. Counters only grow and restart at zero
/// after a restore; gauges are the values now. Changes after every `handle_*` call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PeekingStats {
    /// Local peeks (MSC2753).
    pub local: LocalStats,
    /// Inbound peeks (MSC2444, resident side).
    pub inbound: InboundStats,
    /// Outbound peeks (MSC2444, peeking side).
    pub outbound: OutboundStats,
    /// Client peeks of remote rooms.
    pub client_peeks: ClientPeekCounts,
    /// Gauge: client peeks waiting on federation now.
    pub pending_client_peeks: u64,
    /// Gauge: rooms peeked over federation (remembered with their `via`).
    pub remote_rooms: u64,
}
