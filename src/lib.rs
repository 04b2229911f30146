#![doc = include_str!("../README.md")]
//!
//! # Crate map
//!
//! * [`local`]: [`LocalPeeks`], device leases on rooms (MSC2753).
//! * [`inbound`]: [`InboundPeeks`], remote servers peeking our rooms (MSC2444 resident side).
//! * [`outbound`]: [`OutboundPeeks`], our federated peeks into remote rooms (MSC2444 peeking
//!   side).
//! * [`wire`]: serde types for both proposals' bodies, paths and Matrix errors.
//! * [`TimerQueue`], [`Timestamp`], [`RoomAccess`]: the shared vocabulary (DESIGN §3).
//!
//! Every machine is pure and sans-IO: no clock reads, IO, tasks, locks, randomness or async.
//! Each input carries `now`; each consequence comes out of `poll_output()`; `poll_timeout()`
//! says when to call `handle_timeout(now)` next.

pub mod access;
pub mod coordinator;
pub mod driver;
mod error;
pub mod inbound;
pub mod local;
pub mod outbound;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
pub mod timer;
pub mod traits;
pub mod wire;

use serde::{Deserialize, Serialize};

pub use access::RoomAccess;
pub use coordinator::{ClientPeek, ClientPeekReply, Output, Peeking, PeekingConfig, Residency};
pub use driver::{Driver, DriverConfig, DriverError, SystemClock};
pub use error::PeekError;
pub use inbound::{
    InboundChange, InboundConfig, InboundEndReason, InboundGrant, InboundKey, InboundOutput,
    InboundPeekError, InboundPeekInfo, InboundPeeks, InboundRecord, PeekIdPolicy,
};
pub use local::{
    LocalChange, LocalConfig, LocalEndReason, LocalGrant, LocalKey, LocalOutput, LocalPeekError,
    LocalPeeks, LocalRecord, SyncDelta,
};
pub use outbound::{
    LostReason, OutboundChange, OutboundConfig, OutboundKey, OutboundOutput, OutboundPeekError,
    OutboundPeeks, OutboundRecord, OutboundState, PeekFailure, PeekOutcome, PeekPhase, PeekRecord,
    RenewStyle, Request, RequestKind,
};
#[cfg(feature = "testing")]
pub use testing::{ManualClock, MemoryStore, ScriptedTransport, Sim, store_conformance};
pub use time::Timestamp;
pub use timer::TimerQueue;
pub use traits::{Change, Clock, PeekStore, PeekTransport, Snapshot};

/// Names an IO request a machine asked for; the result comes back with the same id.
///
/// Allocated from a counter, never random. Unique within one machine's lifetime and, because
/// the counter is restored past every persisted request, across restarts too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// A monotonic position in the stream of local peek changes, for `/sync` `since` tokens
/// (DESIGN §4.3). Every (user, device, room) change gets a fresh, larger position.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StreamPosition(pub u64);
