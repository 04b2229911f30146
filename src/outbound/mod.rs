//! Outbound federated peeks (MSC2444, peeking side). Being built.
mod request;
pub use request::{OutboundPeekError, PeekFailure, PeekOutcome, Request, RequestKind};
