//! What the host supplies: storage ([`PeekStore`]), federation transport ([`PeekTransport`]) and
//! time ([`Clock`]), plus the serde types that cross the storage boundary ([`Change`],
//! [`Snapshot`]).
//!
//! The machines never call these; the [`Driver`](crate::Driver) does. A host that drives
//! [`Peeking`](crate::Peeking) itself needs none of them, but the [`Change`] and [`Snapshot`]
//! types are still what its own storage writes and reads.
//!
//! # Storage contract
//!
//! A store keeps, per record kind, a map from key to record. [`PeekStore::save`] applies one
//! batch of [`Change`]s **in order** (an upsert replaces the record with the same key; a remove
//! of a missing key is a no-op) and must be atomic: after a crash either the whole batch is
//! there or none of it. Saves are idempotent: applying the same batch twice leaves the same
//! state. [`PeekStore::load`] returns every record ([`Snapshot`]); order does not matter.
//! `testing::store_conformance` checks a store against this contract.

use async_trait::async_trait;

use crate::coordinator::{Change, Snapshot};
use crate::outbound::{OutboundOutcome, OutboundRequest};
use crate::time::Timestamp;

/// Durable storage for peek state.
///
/// `save` must be atomic per batch and idempotent (see the module docs). The driver calls
/// `save` before it acknowledges a call or starts a send the batch justifies, and never calls
/// two `save`s concurrently.
#[async_trait]
pub trait PeekStore: Send + Sync {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Every stored record.
    async fn load(&self) -> Result<Snapshot, Self::Error>;

    /// Applies one batch of changes, in order, atomically.
    async fn save(&self, changes: &[Change]) -> Result<(), Self::Error>;
}

/// The federation client: sends one MSC2444 request and classifies the answer.
///
/// The implementation does the HTTP call (with signing), and for a successful `PUT` validates
/// the response like a `send_join` response and ingests the state (R49, R50) before answering
/// [`OutboundOutcome::Established`]. `crate::wire` has the paths, bodies and the
/// response → [`OutboundFailure`](crate::outbound::OutboundFailure) classifier. It should bound its own
/// time (a timeout answers `Failed(Unreachable)`); the driver keeps retries and deadlines.
#[async_trait]
pub trait PeekTransport: Send + Sync {
    /// Sends `request` and reports what became of it.
    async fn send(&self, request: OutboundRequest) -> OutboundOutcome;
}

/// Wall-clock time for the driver.
///
/// [`SystemClock`](crate::SystemClock) reads the system time; `testing::ManualClock` is moved
/// by hand.
#[async_trait]
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Completes once `now() >= deadline`.
    async fn sleep_until(&self, deadline: Timestamp);
}
