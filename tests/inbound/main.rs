//! `InboundPeeks` (MSC2444, resident side): admission, caps, renewal, teardown, the clock,
//! restore, the property test against the reference model (`tests/support/model/inbound.rs`)
//! and long random runs.

mod admission;
mod caps;
mod model;
mod renewal;
mod restore;
mod soak;
mod support;
mod teardown;
mod time;
