//! What the wire tests take from `tests/support/`.

#[path = "../support/prop.rs"]
pub mod prop;
