//! `LocalPeeks` (MSC2753 device leases): scenarios by behaviour, the clock, restore, the
//! property test against the reference model (`tests/support/model/local.rs`) and long random
//! runs.

mod endings;
mod fan_out;
mod grants;
mod inspect;
mod model;
mod restore;
mod soak;
mod support;
mod sync;
mod time;
