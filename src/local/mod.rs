//! Local peeks (MSC2753). Being built.
mod error;
pub use error::{LocalEndReason, LocalPeekError};
