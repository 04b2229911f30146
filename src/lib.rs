#![doc = include_str!("../README.md")]
//!
//! # Crate map
//!
//! Every public type has one path, at the crate root, except the two modules a user names:
//!
//! * [`LocalPeeks`]: device leases on rooms (MSC2753), with [`LocalConfig`], [`LocalOutput`],
//!   [`LocalPeekError`] and [`LocalRecord`].
//! * [`InboundPeeks`]: remote servers peeking our rooms (MSC2444 resident side), with the
//!   `Inbound*` types.
//! * [`OutboundPeeks`]: our federated peeks into remote rooms (MSC2444 peeking side), with the
//!   `Outbound*` types.
//! * [`Peeking`]: the three machines behind one front door, with [`Output`], [`Change`] and
//!   [`Snapshot`]; [`Driver`] binds it to a [`PeekStore`], a [`PeekTransport`] and a [`Clock`].
//! * [`wire`]: serde types for both proposals' bodies, paths and Matrix errors.
//! * `testing` (feature `testing`): the kit for test authors, with the simulator; the chapter
//!   "Testing your server with matrix-peek" (`docs/testing.md`) shows how to use it.
//! * [`Timestamp`], [`RoomAccess`], [`RequestId`], [`StreamPosition`], [`PeekId`] and
//!   [`Shared`] ids: the shared vocabulary (docs/architecture.md §3).
//!
//! Outputs, errors, end reasons and states are `#[non_exhaustive]`: match them with a
//! wildcard arm, so that a new variant is not a breaking change.
//!
//! Every machine is pure and sans-IO: no clock reads, IO, tasks, locks, randomness or async.
//! Each input carries `now`; each consequence comes out of `poll_output()`; `poll_timeout()`
//! says when to call `handle_timeout(now)` next.

mod access;
mod coordinator;
mod deadlines;
mod driver;
mod ids;
mod inbound;
mod local;
mod log;
mod outbound;
mod shared;
mod slab;
mod slot_index;
#[cfg(feature = "testing")]
pub mod testing;
mod time;
mod timer;
mod traits;
pub mod wire;

pub use access::{AccessStateEvent, RoomAccess, RoomAccessError};
pub use coordinator::{
    Change, Channel, ClientPeek, ClientPeekCounts, ClientPeekReply, FederationSide, Output,
    PeekError, Peeking, PeekingConfig, PeekingStats, RemoteRoomChange, RemoteRoomRecord, Residency,
    RouteMessage, Seq, SideOutput, Snapshot, SyncSide, ToFederation, ToSync,
};
pub use driver::{Driver, DriverConfig, DriverError, DriverStats, SystemClock};
pub use ids::{PeekId, RequestId, StreamPosition};
pub use inbound::{
    InboundChange, InboundConfig, InboundEndReason, InboundEndings, InboundGrant, InboundKey,
    InboundOutput, InboundPeekError, InboundPeekInfo, InboundPeeks, InboundRecord, InboundRefusals,
    InboundStats, PeekIdPolicy,
};
pub use local::{
    LocalChange, LocalConfig, LocalEndReason, LocalEnding, LocalEndings, LocalGrant, LocalKey,
    LocalOutput, LocalPeekError, LocalPeekInfo, LocalPeeks, LocalRecord, LocalRefusals, LocalStats,
    SyncDelta,
};
pub use outbound::{
    OutboundChange, OutboundConfig, OutboundFailure, OutboundKey, OutboundLostReason,
    OutboundOutcome, OutboundOutput, OutboundPeekError, OutboundPeekPhase, OutboundPeekRecord,
    OutboundPeeks, OutboundRecord, OutboundRenewStyle, OutboundRequest, OutboundRequestCounts,
    OutboundRequestKind, OutboundRoomInfo, OutboundState, OutboundStateCounts, OutboundStats,
};
pub use shared::{Shared, SharedRoomId, SharedServerName};
pub use time::{CLOCK_STEP_LIMIT, Timestamp};
pub use traits::{Clock, PeekStore, PeekTransport};

// The chapter "Testing your server with matrix-peek" (`docs/testing.md`), included only when
// rustdoc collects doctests, so that every snippet in it runs under `cargo test --doc`. It is
// not part of the API.
#[cfg(doctest)]
#[doc = include_str!("../docs/testing.md")]
pub struct TestingChapter;
