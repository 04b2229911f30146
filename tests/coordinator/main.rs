//! The `Peeking` coordinator: where client peeks go, client peeks waiting on federation,
//! teardown through the coordinator, and its deadlines.

mod clock_faults;
mod deadlines;
mod pending;
mod routing;
mod stats;
mod support;
mod teardown;
mod tracing;
