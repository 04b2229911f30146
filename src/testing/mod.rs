//! The testing kit (feature `testing`): everything our own tests use, for hosts and test
//! authors to use the same way (docs/architecture.md §10).
//!
//! * [`ManualClock`]: time that moves only when told; advancing it wakes sleepers.
//! * [`MemoryStore`]: an in-memory [`PeekStore`](crate::PeekStore) (`Error = Infallible`);
//!   [`FlakyStore`] wraps it to fail on demand.
//! * [`ScriptedTransport`]: a [`PeekTransport`](crate::PeekTransport) answering from a script,
//!   with delays and requests that never answer.
//! * [`DriverRig`]: a [`Driver`](crate::Driver) on a local executor with the two above, moved
//!   through simulated time: the recipe for driver tests.
//! * [`store_conformance`]: the checks a host's store must pass.
//! * [`Sim`]: several homeservers over a simulated federation with a virtual clock; inputs a
//!   deployment would refuse are [`SimError`]s, and it answers a test's questions: event gaps,
//!   peek histories, settling, leaks.
//!
//! The chapter "Testing your server with matrix-peek" (`docs/testing.md` in the repository)
//! walks through each of them with runnable examples.

mod clock;
mod conformance;
mod driver;
mod sim;
mod store;
mod transport;

pub use clock::ManualClock;
pub use conformance::store_conformance;
pub use driver::DriverRig;
pub use sim::{
    BadRelay, ClientPeekRecord, Gap, LeakReport, LeakedPeek, Livelock, LoadBucket, OutboundEvent,
    OutboundEventKind, Pending, ResidentLoad, ScaleConfig, ScaleFigures, ScaleReport, SentRequest,
    Sim, SimConfig, SimError, SimRng, SimRoom, TimelineEntry, UnaccountedPeek, fmt_elapsed,
    run_scale,
};
pub use store::{FlakyStore, MemoryStore, StoreFault};
pub use transport::{Reply, ScriptedTransport, TransportKind};
