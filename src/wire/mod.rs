//! Wire types for MSC2753 (client `/peek`, `/unpeek`, `/sync`'s `peek`) and MSC2444
//! (federation `PUT` peek, `renew`, `DELETE`, `expired_peeks`): the endpoints as ruma API
//! types, peers' older response shapes, and one table mapping every error to ruma's Matrix
//! error (docs/architecture.md §9). Every type has one path: `matrix_peek::wire::X`.
//!
//! # Endpoints (ruma's `api`)
//!
//! Each endpoint is a ruma request/response pair (`metadata!`, `#[request]`, `#[response]`):
//! a ruma-based server routes it with `PATH_BUILDER.all_paths()`, parses it with
//! `IncomingRequest::try_from_http_request` and answers with
//! `OutgoingResponse::try_into_http_response`; a client sends it with
//! `OutgoingRequest::try_into_http_request` and reads the answer with
//! `IncomingResponse::try_from_http_response` (features `client` and `server`, both default).
//!
//! | endpoint | request | response |
//! |---|---|---|
//! | `POST /_matrix/client/{v3,r0,unstable/org.matrix.msc2753}/peek/{roomIdOrAlias}` (R1, R2, R9) | [`ClientPeekRequest`] ([`ClientPeekBody`]) | [`ClientPeekResponse`] |
//! | `POST /_matrix/client/{…}/rooms/{roomId}/unpeek` (R12) | [`ClientUnpeekRequest`] | [`ClientUnpeekResponse`] |
//! | `PUT /_matrix/federation/v1/peek/{roomId}/{peekId}?ver=…` (R28, R35, R48) | [`FederationPeekRequest`] | [`FederationPeekResponse`] (or [`AnyPeekResponse`]) |
//! | `POST /_matrix/federation/v1/peek/{roomId}/{peekId}/renew` (R41) | [`FederationRenewRequest`] | [`FederationRenewResponse`] (or [`AnyRenewResponse`]) |
//! | `DELETE /_matrix/federation/v1/peek/{roomId}/{peekId}` (R42) | [`FederationUnpeekRequest`] | [`FederationUnpeekResponse`] |
//!
//! Also: [`ObjectBody`] (a body that must be a JSON object, R12, R36), [`SYNC_ROOMS_PEEK_KEY`]
//! (R14), [`ExpiredPeek`] / [`ExpiredPeeks`] (the `/send` key, R43).
//!
//! What ruma does not do is hand-written here, each piece saying why: [`ClientPrefix`] and
//! [`FederationPrefix`] (choosing the client path on purpose; a federation prefix other than
//! `v1`, R28), [`PeekIdSegment`] (a peek id must not become a dot segment), and
//! [`FederationPeekPath::parse`] (path arguments for a host without a router).
//!
//! # Peers' shapes
//!
//! [`AnyPeekResponse`] reads the MSC's, Dendrite's and palpo's peek responses
//! ([`LegacyPeekResponse`] is the older shape alone; [`PeekResponseFormat`], [`Extremities`],
//! [`StateIds`]); [`AnyRenewResponse`] reads any renewal reply. Both have `from_http_response`,
//! which also classifies an error reply.
//!
//! # Errors
//!
//! Every machine error, [`DriverError`](crate::DriverError) and [`WireError`] converts into
//! ruma's [`Error`](ruma_common::api::error::Error) (`From`, by value or reference) with its
//! status and `ErrorKind`; [`ToMatrixError`] maps by reference to an [`ErrorReply`] (ruma's
//! error with the `Retry-After` header rounded up, and the status and body as plain values).
//! [`OutboundFailure::from_response`](crate::OutboundFailure::from_response) classifies a
//! remote's reply (R60). [`ErrorCode`] is ruma's, re-exported (docs/architecture.md §9.4).
//!
//! | error | status | `ErrorKind` | requirement |
//! |---|---|---|---|
//! | `LocalPeekError::AlreadyJoined` | 400 | `BadState` | R6 |
//! | `LocalPeekError::NotPeekable` | 403 | `Forbidden` | R7 |
//! | `LocalPeekError::Encrypted` | 403 | `Forbidden` | R8 |
//! | `LocalPeekError::NotPeeking` | 400 | `BadState` | R13 |
//! | `LocalPeekError::LimitExceeded` | 429 | `LimitExceeded` + `retry_after_ms` | R3 |
//! | `InboundPeekError::InvalidPeekId` | 400 | `Unrecognized` | R29 |
//! | `InboundPeekError::UnknownRoom` | 404 | `NotFound` | R31 |
//! | `InboundPeekError::NotPeekable` | 403 | `Forbidden` | R32 |
//! | `InboundPeekError::IncompatibleRoomVersion` | 400 | `IncompatibleRoomVersion` + `room_version` | R33 |
//! | `InboundPeekError::LimitExceeded` | 429 | `LimitExceeded` + `retry_after_ms` | R34 |
//! | `InboundPeekError::UnknownPeek` | 404 | `NotFound` | R41, R42 |
//! | `OutboundFailure::Forbidden` | 403 | `Forbidden` | R27 (passed through) |
//! | `OutboundFailure::NotFound` | 404 | `NotFound` | R27 |
//! | `OutboundFailure::IncompatibleRoomVersion` | 400 | `M_INCOMPATIBLE_ROOM_VERSION` as an `ErrorBody::Json` (see below) | R27 |
//! | `OutboundFailure::RateLimited` | 429 | `LimitExceeded` (+ `retry_after_ms` when known) | R27 |
//! | `OutboundFailure::Unreachable` | 502 | `Unknown` | R27: a gateway failure, not "no such room" |
//! | `OutboundFailure::InvalidResponse` | 502 | `Unknown` | R27, R49 |
//! | `OutboundFailure::Other(s)` | `s` if 400–599, else 502 | `Unknown` | R27 |
//! | `OutboundPeekError::NoCandidates` | 404 | `NotFound` | R27, R46 |
//! | `OutboundPeekError::LimitExceeded` | 429 | `LimitExceeded` (no hint) | caps |
//! | `OutboundPeekError::Remote(f)` | as `f` | as `f` | R27 |
//! | `PeekError::Local(e)` / `Remote(e)` | as `e` | as `e` | |
//! | `DriverError::Peek(e)` / `Inbound(e)` | as `e` | as `e` | |
//! | `DriverError::Store(_)` | 500 | `Unknown` | |
//! | `DriverError::Interrupted` | 503 | `Unknown` | |
//! | `DriverError::TimedOut` | 504 | `Unknown` | |
//! | `DriverError::Closed` | 503 | `Unknown` | |
//! | [`WireError`] | 400 / 413 / 404 | `NotJson`, `BadJson`, `InvalidParam`, `TooLarge`, `Unrecognized` | R12, R29 |
//!
//! `OutboundFailure::IncompatibleRoomVersion` has no version to name, which ruma's
//! `ErrorKind::IncompatibleRoomVersion` requires: its error is ruma's free-form
//! `ErrorBody::Json` with the errcode and message alone. Hosts answer an unknown room or alias
//! on the client `/peek` (R4) with [`ErrorReply::not_found`] themselves: no machine sees that
//! case.
//!
//! # What these types do not do
//!
//! PDUs stay raw JSON ([`RawValue`](serde_json::value::RawValue)). This crate **never checks
//! signatures, hashes, event auth or room state**: a host validates a peek response like a
//! `send_join` response before reporting `OutboundOutcome::Established` (R49), and filters events
//! by history visibility when it relays or serves them (R18, R40, R44). Nor does it sign or check
//! X-Matrix: the federation endpoints' ruma authentication is `NoAuthentication`.
//!
//! # Bounds
//!
//! * **Body sizes**: every `from_slice` takes bytes and a size limit from this module
//!   ([`MAX_REQUEST_BODY_BYTES`], [`MAX_PEEK_RESPONSE_BYTES`], [`MAX_TRANSACTION_BYTES`],
//!   [`MAX_ERROR_BODY_BYTES`]). ruma's `try_from_http_request` / `try_from_http_response` do not
//!   check sizes: cap the body at the same limits before handing it over.
//! * **Element counts**: [`MAX_SERVERS`], [`MAX_VER`], [`MAX_EXPIRED_PEEKS`], and in a peek
//!   response [`MAX_PDUS_PER_LIST`] (`events`, `state`, `auth_chain`, `messages`),
//!   [`MAX_STATE_IDS`] (`common_state_ids`, and all of `latest_event_state_ids`' lists together)
//!   and [`MAX_EXTREMITIES`] (`latest_event_state_ids`' keys). These caps live in the types'
//!   `Deserialize`, so ruma's parsers apply them too.
//! * **Ids**: peek ids in paths are at most [`MAX_PEEK_ID_BYTES`]; every event id a response
//!   carries at most [`MAX_EVENT_ID_BYTES`] ([`WireError::EventIdTooLong`]).
//! * **Memory**: the collections of a peek response ([`PduList`], [`EventIdList`],
//!   [`StateIdMap`]) keep the JSON text they came as, so a parsed response holds about the
//!   body's size, and parsing never more than twice it (`tests/wire/heap.rs` measures the worst
//!   cases).
//! * **Nesting** is bounded by `serde_json`'s recursion limit (128).
//!
//! Anything malformed is a typed [`WireError`]; no parser panics (a proptest feeds them
//! arbitrary bytes and JSON).

mod client;
mod compat;
mod error;
mod federation;
mod json;
mod path;
mod raw;

pub use client::peek::{Request as ClientPeekRequest, Response as ClientPeekResponse};
pub use client::unpeek::{Request as ClientUnpeekRequest, Response as ClientUnpeekResponse};
pub use client::{ClientPeekBody, SYNC_ROOMS_PEEK_KEY};
pub use compat::{AnyPeekResponse, Extremities, LegacyPeekResponse, PeekResponseFormat, StateIds};
pub use error::{ErrorReply, MAX_ERROR_BODY_BYTES, ToMatrixError};
pub use federation::peek::{Request as FederationPeekRequest, Response as FederationPeekResponse};
pub use federation::renew::{
    Request as FederationRenewRequest, Response as FederationRenewResponse,
};
pub use federation::unpeek::{
    Request as FederationUnpeekRequest, Response as FederationUnpeekResponse,
};
pub use federation::{AnyRenewResponse, ExpiredPeek, ExpiredPeeks};
pub use json::ObjectBody;
pub use path::{ClientPrefix, FederationPeekPath, FederationPrefix, PeekIdSegment};
pub use raw::{EventIdList, PduList, StateIdMap};
#[doc(no_inline)]
pub use ruma_common::api::error::ErrorCode;

/// Largest request body (client `/peek`, `/unpeek`, federation `PUT` / `renew`) and largest
/// error or renewal body the parsers accept: 64 KiB. These bodies are `{}` or a short list.
pub const MAX_REQUEST_BODY_BYTES: usize = 64 * 1024;

/// Largest federation peek response accepted: 128 MiB. It carries a room's whole state and
/// auth chain, like a `send_join` response, so it may be large for big rooms. Parsed, it holds
/// about its own size (see [`PduList`]).
pub const MAX_PEEK_RESPONSE_BYTES: usize = 128 * 1024 * 1024;

/// Largest `/send` transaction body [`ExpiredPeeks::from_transaction`] reads: 16 MiB (50 PDUs
/// and 100 EDUs of at most 64 KiB each, with room to spare).
pub const MAX_TRANSACTION_BYTES: usize = 16 * 1024 * 1024;

/// Most `servers` entries a client `/peek` body may carry (R2).
pub const MAX_SERVERS: usize = 100;

/// Most `ver` query parameters a federation `PUT` may carry (R33). There are a dozen room
/// versions.
pub const MAX_VER: usize = 100;

/// Most `expired_peeks` entries read from one `/send` transaction (R43).
pub const MAX_EXPIRED_PEEKS: usize = 1000;

/// Most PDUs in one list of a peek response (`events`, `state`, `auth_chain`, `messages`):
/// 1 000 000. The largest public rooms have a few hundred thousand state events and a
/// comparable auth chain.
pub const MAX_PDUS_PER_LIST: usize = 1_000_000;

/// Most state event ids in a peek response's `common_state_ids`, and in all the lists of its
/// `latest_event_state_ids` together: 1 000 000 each (a room's state, see
/// [`MAX_PDUS_PER_LIST`]).
pub const MAX_STATE_IDS: usize = 1_000_000;

/// Most forward extremities (keys of `latest_event_state_ids`) in a peek response: 1000.
/// Servers keep a room's extremities to a handful (an event cites at most 20 `prev_events`).
pub const MAX_EXTREMITIES: usize = 1000;

/// Longest event id (bytes) a peek response may carry: the Matrix identifier limit, which ruma
/// does not check for the ids of room versions 3 and later (it checks only the sigil).
pub const MAX_EVENT_ID_BYTES: usize = 255;

/// Longest peek id (bytes) a path or `expired_peeks` entry may carry: the Matrix identifier
/// limit. The MSC allows 8 characters (R29); peers send room ids (Dendrite) and `peek_<ULID>`
/// (palpo). The inbound machine applies the real policy.
pub const MAX_PEEK_ID_BYTES: usize = 255;

/// A malformed or oversized piece of wire input. It converts into ruma's Matrix error (400
/// `M_NOT_JSON` / `M_BAD_JSON` / `M_INVALID_PARAM`, 413 `M_TOO_LARGE`, 400 `M_UNRECOGNIZED` for a
/// bad peek id, 404 `M_UNRECOGNIZED` for an unknown path); ruma's own parse failures of a
/// request convert into it (`From<FromHttpRequestError>`).
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
        /// What was counted (`"servers"`, `"ver"`, `"expired_peeks"`, `"PDUs"`,
        /// `"state event ids"`, `"extremities"`).
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// An event id in a response is longer than [`MAX_EVENT_ID_BYTES`].
    #[error("an event id is longer than {limit} bytes")]
    EventIdTooLong {
        /// The limit ([`MAX_EVENT_ID_BYTES`]).
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
