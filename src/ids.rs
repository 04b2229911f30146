//! The crate's small shared vocabulary of identifiers: [`RequestId`], [`StreamPosition`], and
//! the MSC2444 peek id syntax.
//!
//! They live on the ground floor, beside [`Timestamp`](crate::Timestamp), so that every machine
//! imports them downwards and none of them depends on the crate root.

use serde::{Deserialize, Serialize};

/// Names an IO request a machine asked for; the result comes back with the same id.
///
/// Allocated from a counter, never random. Unique within one machine's lifetime and, because
/// the counter is restored past every persisted request, across restarts too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// A monotonic position in the stream of local peek changes, for `/sync` `since` tokens
/// (docs/architecture.md §4.3). Every (user, device, room) change gets a fresh, larger
/// position.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StreamPosition(pub u64);

/// Whether `id` is a peek id as MSC2444 defines it: 1–8 characters of `[0-9a-zA-Z.=_-]` (R29,
/// R47). `PeekIdPolicy::Strict` accepts exactly these; the outbound machine only makes these.
pub(crate) fn is_msc_peek_id(id: &str) -> bool {
    (1..=8).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'=' | b'_' | b'-'))
}
