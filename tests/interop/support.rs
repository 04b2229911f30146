//! What the interop tests take from `tests/support/`.

/// A coordinator driven like a host would drive it, and its fixtures.
#[path = "../support/host.rs"]
pub mod host;
