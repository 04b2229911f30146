//! `OutboundPeeks` (MSC2444, peeking side): opening, retries, renewal, teardown, races with the
//! residents, restore, the property test against the reference model
//! (`tests/support/model/outbound.rs`) and long random runs against the same model.

mod failover;
mod inspect;
mod model;
mod opening;
mod pacing;
mod phases;
mod races;
mod renewal;
mod restore;
mod retries;
mod soak;
mod support;
mod teardown;
