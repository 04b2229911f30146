//! Wire types for MSC2753 (client `/peek`, `/unpeek`, `/sync`'s `peek`) and MSC2444
//! (federation `/peek`, `/renew`, `DELETE`, `expired_peeks`), plus one table mapping every
//! machine error to a Matrix error body (docs/architecture.md §9).
//!
//! * [`client`]: [`PeekRequest`], [`client::PeekResponse`], [`UnpeekRequest`],
//!   [`SYNC_ROOMS_PEEK_KEY`] (R2, R9, R12, R14).
//! * [`federation`]: [`PeekBody`], [`federation::PeekResponse`] (MSC-final shape, R35),
//!   [`RenewResponse`] (R41), [`ExpiredPeek`] / [`ExpiredPeeks`] (R43), and
//!   [`compat`]'s [`LegacyPeekResponse`] (Dendrite, palpo) and [`AnyPeekResponse`], which reads
//!   all three shapes.
//! * [`query`]: [`parse_ver`], the repeatable `?ver=` parameter (R33, R48).
//! * [`path`]: client and federation path builders (configurable prefixes, R1, R12, R28) and
//!   [`FederationPeekPath::parse`].
//! * [`error`]: [`MatrixError`], [`ErrorCode`], [`ToMatrixError`] for every machine error
//!   (R3–R13, R29–R43) and [`OutboundFailure::from_response`](crate::outbound::OutboundFailure) to
//!   classify a remote's reply (R60).
//!
//! # What these types do not do
//!
//! PDUs stay raw JSON ([`RawValue`](serde_json::value::RawValue)). This crate **never checks
//! signatures, hashes, event auth or room state**: a host validates a peek response like a
//! `send_join` response before reporting `OutboundOutcome::Established` (R49), and filters events
//! by history visibility when it relays or serves them (R18, R40, R44).
//!
//! # Bounds
//!
//! Every parser takes bytes and a size limit from this module ([`MAX_REQUEST_BODY_BYTES`],
//! [`MAX_PEEK_RESPONSE_BYTES`], [`MAX_TRANSACTION_BYTES`]), caps its collections
//! ([`MAX_SERVERS`], [`MAX_VER`], [`MAX_EXPIRED_PEEKS`]) and returns a typed [`WireError`] on
//! anything malformed; none panics (checked by a proptest over arbitrary bytes and JSON).
//! JSON nesting is bounded by `serde_json`'s recursion limit (128).

pub mod client;
pub mod compat;
pub mod error;
pub mod federation;
pub mod path;
pub mod query;

mod json;
mod percent;

pub use client::{PeekRequest, SYNC_ROOMS_PEEK_KEY, UnpeekRequest, UnpeekResponse};
pub use compat::{AnyPeekResponse, Extremities, LegacyPeekResponse, PeekResponseFormat, StateIds};
pub use error::{ErrorCode, MatrixError, ToMatrixError};
pub use federation::{AnyRenewResponse, ExpiredPeek, ExpiredPeeks, PeekBody, RenewResponse};
pub use path::{ClientPrefix, FederationPeekPath, FederationPrefix};
pub use query::{parse_ver, ver_query};

/// Largest request body (client `/peek`, `/unpeek`, federation `PUT` / `renew`) and largest
/// error or renewal body the parsers accept: 64 KiB. These bodies are `{}` or a short list.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;

/// Largest federation peek response accepted: 128 MiB. It carries a room's whole state and
/// auth chain, like a `send_join` response, so it may be large for big rooms.
pub const MAX_PEEK_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// Largest `/send` transaction body [`ExpiredPeeks::from_transaction`] reads: 16 MiB (50 PDUs
/// and 100 EDUs of at most 64 KiB each, with room to spare).
pub const MAX_TRANSACTION_BYTES: usize = 16 * 1024 * 1024;

/// Most `servers` entries a client [`PeekRequest`] may carry (R2).
pub const MAX_SERVERS: usize = 100;

/// Most `ver` query parameters [`parse_ver`] accepts (R33). There are a dozen room versions.
pub const MAX_VER: usize = 100;

/// Most `expired_peeks` entries read from one `/send` transaction (R43).
pub const MAX_EXPIRED_PEEKS: usize = 1000;

/// Longest peek id (bytes) a path or `expired_peeks` entry may carry: the Matrix identifier
/// limit. The MSC allows 8 characters (R29); peers send room ids (Dendrite) and `peek_<ULID>`
/// (palpo). The inbound machine applies the real policy.
pub const MAX_PEEK_ID_BYTES: usize = 255;

/// A malformed or oversized piece of wire input. Map it to an HTTP reply with
/// [`ToMatrixError`] (400 `M_NOT_JSON` / `M_BAD_JSON` / `M_INVALID_PARAM`, 413 `M_TOO_LARGE`,
/// 400 `M_UNRECOGNIZED` for a bad peek id, 404 `M_UNRECOGNIZED` for an unknown path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The body is longer than the limit for its kind.
    #[error("body of {actual} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit that applied.
        limit: usize,
        /// The body's length.
        actual: usize,
    },
    /// The body is not valid JSON (syntax error, truncation, bad UTF-8, nesting too deep).
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    /// The body is JSON but not an object (R12, R36).
    #[error("body must be a JSON object")]
    NotObject,
    /// The body is a JSON object of the wrong shape (missing or mistyped field).
    #[error("bad JSON body: {0}")]
    BadJson(String),
    /// A list is longer than its cap.
    #[error("too many {what}: at most {limit} allowed")]
    TooMany {
        /// What was counted (`"servers"`, `"ver"`, `"expired_peeks"`).
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// A query or path parameter has an invalid value.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The peek id in a path is empty or longer than [`MAX_PEEK_ID_BYTES`] (R29).
    #[error("invalid peek id")]
    InvalidPeekId,
    /// The path is not a peek endpoint under the given prefix.
    #[error("not a peek path: {0}")]
    UnknownPath(String),
}
