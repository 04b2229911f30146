//! Inbound federated peeks (MSC2444, resident side). Being built.
mod error;
pub use error::{InboundEndReason, InboundPeekError};
