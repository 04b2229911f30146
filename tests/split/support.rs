//! What the split tests take from `tests/support/`.

/// A coordinator driven like a host would drive it, and its fixtures.
#[allow(dead_code)] // the fixtures of several areas: this one uses a few
#[path = "../support/host.rs"]
pub mod host;
