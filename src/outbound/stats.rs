//! [`OutboundStats`]: what [`OutboundPeeks`](super::OutboundPeeks) did and holds, for metrics.

use serde::Serialize;

/// One kind of federation request: how many were sent and how their answers went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OutboundRequestCounts {
    /// Requests sent.
    pub sent: u64,
    /// Answered with success (for a `DELETE`, also 404: already gone).
    pub ok: u64,
    /// Refused (403, 404, incompatible room version, an invalid answer).
    pub refused: u64,
    /// Failed on the network, rate limited (429) or another status: retried.
    pub failed: u64,
}

/// Rooms in each [`OutboundState`](super::OutboundState).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OutboundStateCounts {
    /// A `PUT` in flight.
    pub connecting: u64,
    /// Granted and demanded.
    pub established: u64,
    /// A renewal in flight or failing.
    pub renewing: u64,
    /// Demanded, waiting for a candidate.
    pub backoff: u64,
    /// Granted, not demanded.
    pub lingering: u64,
    /// Only retired peeks left, being deleted.
    pub deleting: u64,
}

/// What [`OutboundPeeks`](super::OutboundPeeks) did (counters, only growing) and holds
/// (gauges), from [`OutboundPeeks::stats`](super::OutboundPeeks::stats). Counters restart at
/// zero after a restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct OutboundStats {
    /// `PUT`s (opening a peek).
    pub puts: OutboundRequestCounts,
    /// Renewals (`POST …/renew`, or re-`PUT`s with `RePut`), probes included.
    pub renewals: OutboundRequestCounts,
    /// `DELETE`s of retired peeks.
    pub deletes: OutboundRequestCounts,
    /// Renewals sent early because an active room fell silent.
    pub probes: u64,
    /// Moves to another candidate after `failover_after` of failures, or when the host
    /// reported the resident unreachable.
    pub failovers: u64,
    /// Peeks that lapsed on our side (renewals kept failing, no other candidate).
    pub lapses: u64,
    /// `Established` reported (first and after a gap).
    pub established: u64,
    /// `Lost` reported.
    pub lost: u64,
    /// `Unavailable` reported.
    pub unavailable: u64,
    /// Retired peeks given up without a successful `DELETE` (the resident expires them).
    pub deletes_abandoned: u64,
    /// Gauge: rooms in each state.
    pub rooms: OutboundStateCounts,
    /// Gauge: retired peeks still being deleted.
    pub retired_peeks: u64,
    /// Gauge: requests in flight.
    pub in_flight: u64,
}
