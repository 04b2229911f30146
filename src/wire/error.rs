//! One table from every machine error to ruma's Matrix error
//! ([`ruma_common::api::error::Error`]: HTTP status plus `ErrorKind` and message), and the
//! reverse: [`OutboundFailure::from_response`] classifies a remote's error reply.
//!
//! The table is in [`super`]'s docs (section "Errors").
//!
//! `OutboundFailure::IncompatibleRoomVersion` does not carry the room's version, which ruma's
//! `ErrorKind::IncompatibleRoomVersion` requires: its error is ruma's `ErrorBody::Json` with
//! the errcode and message alone (`error_kind()` is `None`; [`ErrorReply::errcode`] still
//! reads it).
//!
//! Hosts answer an unknown room or alias on the client `/peek` (R4) with
//! [`ErrorReply::not_found`] themselves: no machine sees that case.
//!
//! What is hand-written here and why: the conversions (ruma cannot know this crate's errors);
//! [`ErrorReply`], because ruma writes `Retry-After` as whole seconds rounded *down* (1.5 s
//! becomes 1, and 0.4 s becomes 0, "retry now"), while R3 and R34 want them rounded up and at
//! least 1, and because hosts and the simulator that are not on `http` want the status as a
//! number and the body as bytes; and the classification of a peer's reply, which reads the
//! body with ruma's `StandardErrorBody` but keeps a lenient reading for bodies ruma rejects.

use std::time::Duration;

use ruma_common::RoomVersionId;
use ruma_common::api::OutgoingResponseExt;
use ruma_common::api::error::{
    DeserializationError, Error, ErrorBody, ErrorCode, ErrorKind, FromHttpRequestError,
    IncompatibleRoomVersionErrorData, LimitExceededErrorData, RetryAfter, StandardErrorBody,
};
use ruma_common::exports::http::{self, HeaderValue, StatusCode};
use serde::Deserialize;

use super::WireError;
use super::json::{classify, from_object, interval_ms, retype};
use crate::inbound::InboundPeekError;
use crate::local::LocalPeekError;
use crate::outbound::{OutboundFailure, OutboundPeekError};
use crate::{DriverError, PeekError};

/// Largest error body [`OutboundFailure::from_response`] looks into; a longer one is classified by
/// its status alone.
pub const MAX_ERROR_BODY_BYTES: usize = super::MAX_REQUEST_BODY_BYTES;

/// The largest `retry_after_ms` a Matrix error body can carry: JSON integers are at most
/// 2^53 − 1 (ruma refuses to write more). Longer hints are sent as this.
const MAX_RETRY_AFTER_MS: u64 = (1 << 53) - 1;

fn matrix_error(status: u16, kind: ErrorKind, message: impl Into<String>) -> Error {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    Error::new(status, ErrorBody::Standard(StandardErrorBody::new(kind, message.into())))
}

fn limit_exceeded(retry_after: Option<Duration>) -> ErrorKind {
    let mut data = LimitExceededErrorData::new();
    data.retry_after = retry_after
        .map(|d| d.min(Duration::from_millis(MAX_RETRY_AFTER_MS)))
        .map(RetryAfter::Delay);
    ErrorKind::LimitExceeded(data)
}

fn incompatible(room_version: &RoomVersionId) -> ErrorKind {
    ErrorKind::IncompatibleRoomVersion(IncompatibleRoomVersionErrorData::new(room_version.clone()))
}

impl From<&LocalPeekError> for Error {
    fn from(e: &LocalPeekError) -> Self {
        let msg = e.to_string();
        match e {
            LocalPeekError::AlreadyJoined => matrix_error(400, ErrorKind::BadState, msg),
            LocalPeekError::NotPeekable => matrix_error(403, ErrorKind::Forbidden, msg),
            LocalPeekError::Encrypted => {
                matrix_error(403, ErrorKind::Forbidden, "cannot peek into an encrypted room")
            }
            LocalPeekError::NotPeeking => matrix_error(400, ErrorKind::BadState, msg),
            LocalPeekError::LimitExceeded { retry_after } => {
                matrix_error(429, limit_exceeded(Some(*retry_after)), "too many peeks")
            }
        }
    }
}

impl From<&InboundPeekError> for Error {
    fn from(e: &InboundPeekError) -> Self {
        let msg = e.to_string();
        match e {
            InboundPeekError::InvalidPeekId => matrix_error(400, ErrorKind::Unrecognized, msg),
            InboundPeekError::UnknownRoom => matrix_error(404, ErrorKind::NotFound, msg),
            InboundPeekError::NotPeekable => matrix_error(403, ErrorKind::Forbidden, msg),
            InboundPeekError::IncompatibleRoomVersion { room_version } => {
                matrix_error(400, incompatible(room_version), msg)
            }
            InboundPeekError::LimitExceeded { retry_after } => {
                matrix_error(429, limit_exceeded(Some(*retry_after)), "too many peeks")
            }
            InboundPeekError::UnknownPeek => matrix_error(404, ErrorKind::NotFound, msg),
        }
    }
}

impl From<&OutboundFailure> for Error {
    fn from(f: &OutboundFailure) -> Self {
        let msg = format!("remote peek failed: {f}");
        match f {
            OutboundFailure::Forbidden => matrix_error(403, ErrorKind::Forbidden, msg),
            OutboundFailure::NotFound => matrix_error(404, ErrorKind::NotFound, msg),
            OutboundFailure::IncompatibleRoomVersion => incompatible_without_version(msg),
            OutboundFailure::RateLimited { retry_after } => {
                matrix_error(429, limit_exceeded(*retry_after), msg)
            }
            OutboundFailure::Unreachable => matrix_error(502, ErrorKind::Unknown, msg),
            OutboundFailure::InvalidResponse => matrix_error(502, ErrorKind::Unknown, msg),
            OutboundFailure::Other(status) => {
                let status = if (400..=599).contains(status) { *status } else { 502 };
                matrix_error(status, ErrorKind::Unknown, msg)
            }
        }
    }
}

/// 400 `M_INCOMPATIBLE_ROOM_VERSION` without `room_version`: the remote's refusal passed
/// through (R27), when the version it named was not kept. ruma's `ErrorKind` for it requires
/// the version, so the body is ruma's free-form `ErrorBody::Json`.
fn incompatible_without_version(msg: String) -> Error {
    let body = serde_json::json!({ "errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": msg });
    ErrorBody::Json(body).into_error(StatusCode::BAD_REQUEST)
}

impl From<&OutboundPeekError> for Error {
    fn from(e: &OutboundPeekError) -> Self {
        match e {
            OutboundPeekError::NoCandidates => matrix_error(
                404,
                ErrorKind::NotFound,
                "no server known to peek into the room through",
            ),
            OutboundPeekError::LimitExceeded => matrix_error(
                429,
                limit_exceeded(None),
                "too many rooms are being peeked over federation",
            ),
            OutboundPeekError::Remote(failure) => failure.into(),
        }
    }
}

impl From<&PeekError> for Error {
    fn from(e: &PeekError) -> Self {
        match e {
            PeekError::Local(e) => e.into(),
            PeekError::Remote(e) => e.into(),
        }
    }
}

impl From<&WireError> for Error {
    fn from(e: &WireError) -> Self {
        let msg = e.to_string();
        match e {
            WireError::TooLarge { .. } => matrix_error(413, ErrorKind::TooLarge, msg),
            WireError::NotJson(_) => matrix_error(400, ErrorKind::NotJson, msg),
            WireError::NotObject | WireError::BadJson(_) | WireError::EventIdTooLong { .. } => {
                matrix_error(400, ErrorKind::BadJson, msg)
            }
            WireError::TooMany { .. } | WireError::InvalidParam { .. } => {
                matrix_error(400, ErrorKind::InvalidParam, msg)
            }
            WireError::InvalidPeekId => matrix_error(400, ErrorKind::Unrecognized, msg),
            WireError::UnknownPath(_) => matrix_error(404, ErrorKind::Unrecognized, msg),
        }
    }
}

impl<E: std::error::Error + 'static> From<&DriverError<E>> for Error {
    fn from(e: &DriverError<E>) -> Self {
        // `DriverError` is `#[non_exhaustive]` and its owners may add variants: an unmapped one
        // is an internal error until it is given a row here.
        #[allow(unreachable_patterns)]
        match e {
            DriverError::Peek(e) => e.into(),
            DriverError::Inbound(e) => e.into(),
            // The store's own message stays in the host's logs, not in the client's reply.
            DriverError::Store(_) => {
                matrix_error(500, ErrorKind::Unknown, "the server's storage failed; retry")
            }
            DriverError::Interrupted => matrix_error(503, ErrorKind::Unknown, "interrupted; retry"),
            // The residents did not answer within `client_peek_timeout`: a gateway timeout,
            // and the client may try again.
            DriverError::TimedOut => matrix_error(
                504,
                ErrorKind::Unknown,
                "timed out waiting for the room's servers; retry",
            ),
            // Shutting down: the server is unavailable, another instance may answer.
            DriverError::Closed => matrix_error(503, ErrorKind::Unknown, "shutting down"),
            _ => matrix_error(500, ErrorKind::Unknown, "internal error"),
        }
    }
}

macro_rules! by_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::from(&e)
            }
        }
        impl From<&$t> for ErrorReply {
            fn from(e: &$t) -> Self {
                ErrorReply::from(Error::from(e))
            }
        }
        impl From<$t> for ErrorReply {
            fn from(e: $t) -> Self {
                ErrorReply::from(Error::from(&e))
            }
        }
    )*};
}

by_value!(
    LocalPeekError,
    InboundPeekError,
    OutboundFailure,
    OutboundPeekError,
    PeekError,
    WireError
);

impl<E: std::error::Error + 'static> From<DriverError<E>> for Error {
    fn from(e: DriverError<E>) -> Self {
        Error::from(&e)
    }
}

impl<E: std::error::Error + 'static> From<DriverError<E>> for ErrorReply {
    fn from(e: DriverError<E>) -> Self {
        ErrorReply::from(Error::from(&e))
    }
}

/// An error reply: ruma's [`Error`] with its status and errcode at hand, the body as bytes and
/// the `Retry-After` header as R3 and R34 want it (whole seconds, rounded up, at least 1).
///
/// Send [`into_http_response`](Self::into_http_response), or `status`, [`to_body`](Self::to_body)
/// and [`retry_after_header`](Self::retry_after_header) when not on `http`. `status` and
/// `errcode` are copies of `error`'s (for matching on `(reply.status, reply.errcode)`).
#[derive(Debug, Clone)]
pub struct ErrorReply {
    /// The HTTP status.
    pub status: u16,
    /// The errcode (ruma's [`ErrorCode`]).
    pub errcode: ErrorCode,
    /// The Matrix error, for a host that answers with ruma.
    pub error: Error,
}

impl ErrorReply {
    /// A reply with `status`, `kind` and a message.
    pub fn new(status: u16, kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorReply::from(matrix_error(status, kind, message))
    }

    /// 404 `M_NOT_FOUND`, e.g. for an unknown room or alias on the client `/peek` (R4).
    pub fn not_found(message: impl Into<String>) -> Self {
        ErrorReply::new(404, ErrorKind::NotFound, message)
    }

    /// The `Retry-After` header value for a 429 with a delay: whole seconds, rounded up, at
    /// least 1 (R3, R34); `None` without a hint.
    pub fn retry_after_header(&self) -> Option<u64> {
        match self.error.error_kind()? {
            ErrorKind::LimitExceeded(LimitExceededErrorData {
                retry_after: Some(RetryAfter::Delay(d)),
                ..
            }) => {
                let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
                Some(secs.max(1))
            }
            _ => None,
        }
    }

    /// The JSON body: `errcode` and `error`, plus `retry_after_ms` (429 with a hint) or
    /// `room_version` (`M_INCOMPATIBLE_ROOM_VERSION` from `InboundPeekError`, R33).
    pub fn to_body(&self) -> Vec<u8> {
        match &self.error.body {
            ErrorBody::Standard(body) => serde_json::to_vec(body).unwrap_or_default(),
            ErrorBody::Json(json) => serde_json::to_vec(json).unwrap_or_default(),
            ErrorBody::NotJson { bytes, .. } => bytes.to_vec(),
        }
    }

    /// The whole reply as ruma writes it (`Content-Type: application/json`), with this crate's
    /// `Retry-After`.
    pub fn into_http_response(self) -> http::Response<Vec<u8>> {
        let header = self.retry_after_header();
        let status = self.error.status_code;
        let body = self.to_body();
        let mut response = match self.error.try_into_http_response::<Vec<u8>>() {
            Ok(response) => response,
            Err(_) => {
                // ruma refuses only bodies it cannot write (`ErrorBody::NotJson`): send as is.
                let mut response = http::Response::new(body);
                *response.status_mut() = status;
                response
            }
        };
        if let Some(secs) = header {
            response.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<Error> for ErrorReply {
    fn from(error: Error) -> Self {
        let errcode = match &error.body {
            ErrorBody::Standard(body) => body.kind.errcode(),
            ErrorBody::Json(json) => json
                .get("errcode")
                .and_then(|c| c.as_str())
                .map_or(ErrorCode::Unknown, ErrorCode::from),
            ErrorBody::NotJson { .. } => ErrorCode::Unknown,
        };
        ErrorReply { status: error.status_code.as_u16(), errcode, error }
    }
}

impl From<ErrorReply> for Error {
    fn from(reply: ErrorReply) -> Self {
        reply.error
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ErrorReply {}

/// Maps an error to its reply by reference (the table in this module's docs). Implemented for
/// every type that converts into ruma's [`Error`] by reference: the machine errors,
/// [`DriverError`] and [`WireError`].
pub trait ToMatrixError {
    /// The status, errcode, message and extras for this error.
    fn to_matrix_error(&self) -> ErrorReply;
}

impl<T: ?Sized> ToMatrixError for T
where
    for<'a> &'a T: Into<Error>,
{
    fn to_matrix_error(&self) -> ErrorReply {
        ErrorReply::from(self.into())
    }
}

impl From<DeserializationError> for WireError {
    /// ruma's parse failure of a request as the error table's input: a JSON body's syntax error
    /// is `NotJson`, its shape `BadJson` (or the cap or id error it carries), a path or query
    /// argument `InvalidParam` (ruma parses both with one deserialiser).
    fn from(e: DeserializationError) -> Self {
        match e {
            DeserializationError::Json(e) => classify(&e),
            DeserializationError::Query(e) => match retype(e.to_string()) {
                WireError::BadJson(reason) => {
                    WireError::InvalidParam { name: "path or query", reason }
                }
                typed => typed,
            },
            DeserializationError::Ident(e) => {
                WireError::InvalidParam { name: "path or query", reason: e.to_string() }
            }
            other => WireError::BadJson(other.to_string()),
        }
    }
}

impl From<FromHttpRequestError> for WireError {
    /// As for [`DeserializationError`]; a method mismatch is an unknown path (the router
    /// should not have sent it here).
    fn from(e: FromHttpRequestError) -> Self {
        match e {
            FromHttpRequestError::Deserialization(e) => e.into(),
            other => WireError::UnknownPath(other.to_string()),
        }
    }
}

/// The fields of a remote error body that ruma's parser rejects but this crate still reads:
/// a body without `error`, an errcode whose data is missing (`M_INCOMPATIBLE_ROOM_VERSION`
/// without `room_version`), a `retry_after_ms` beyond 2^53 − 1, or one without an errcode.
#[derive(Deserialize)]
struct LenientErrorBody {
    #[serde(default)]
    errcode: Option<String>,
    #[serde(default, with = "interval_ms::option")]
    retry_after_ms: Option<Duration>,
}

impl OutboundFailure {
    /// Classifies a remote's non-2xx reply to a peek, renew or delete in one call (R60).
    ///
    /// `retry_after` is the raw `Retry-After` header, if any; `body` the raw body, read with
    /// ruma's `StandardErrorBody` (and leniently when ruma rejects it).
    ///
    /// | reply | failure |
    /// |---|---|
    /// | 429 | `RateLimited`: `retry_after_ms` from the body, else `Retry-After` in whole seconds; an HTTP-date `Retry-After` (or none) is `None` |
    /// | 403 (any errcode) | `Forbidden` |
    /// | 404, except `M_UNRECOGNIZED` | `NotFound` |
    /// | 404 `M_UNRECOGNIZED` | `Other(404)`: the peer does not serve this endpoint (e.g. no `/renew`: use `OutboundRenewStyle::RePut`), not "unknown peek" |
    /// | 400 `M_INCOMPATIBLE_ROOM_VERSION` | `IncompatibleRoomVersion` |
    /// | 400 with any other errcode, or no JSON body | `Other(400)` |
    /// | any other 1xx–5xx | `Other(status)` |
    /// | 2xx | `InvalidResponse` (call this for a success only when its body failed to parse) |
    /// | a status outside 100–599 | `InvalidResponse` |
    ///
    /// A body that is not JSON, not an object, or over [`MAX_ERROR_BODY_BYTES`] is ignored and
    /// the status decides alone.
    pub fn from_response(status: u16, retry_after: Option<&str>, body: &[u8]) -> OutboundFailure {
        let (errcode, retry_after_ms) = read_error_body(body);
        let retry_after = retry_after_ms.or_else(|| retry_after.and_then(parse_retry_after));
        classify_reply(status, errcode.as_ref(), retry_after)
    }

    /// [`from_response`](Self::from_response) on an `http::Response`.
    pub fn from_http_response<B: AsRef<[u8]>>(response: &http::Response<B>) -> OutboundFailure {
        let header = response.headers().get(http::header::RETRY_AFTER);
        let header = header.and_then(|v| v.to_str().ok());
        OutboundFailure::from_response(response.status().as_u16(), header, response.body().as_ref())
    }
}

impl From<&Error> for OutboundFailure {
    /// Classifies ruma's error for a request that failed with it (what ruma's
    /// `IncomingResponse` returns as `FromHttpResponseError::Server`), as
    /// [`OutboundFailure::from_response`] does. ruma prefers `Retry-After` to
    /// `retry_after_ms`; an HTTP-date is no hint. A body ruma could not read as a standard
    /// error (`ErrorBody::Json`, e.g. without `error`) is read leniently, without the header,
    /// which ruma does not keep then.
    fn from(e: &Error) -> Self {
        let (errcode, retry_after) = match &e.body {
            ErrorBody::Standard(body) => (Some(body.kind.errcode()), delay_of(&body.kind)),
            ErrorBody::Json(json) => serde_json::from_value::<LenientErrorBody>(json.clone())
                .map_or((None, None), |b| {
                    (b.errcode.map(|c| ErrorCode::from(c.as_str())), b.retry_after_ms)
                }),
            ErrorBody::NotJson { .. } => (None, None),
        };
        classify_reply(e.status_code.as_u16(), errcode.as_ref(), retry_after)
    }
}

fn delay_of(kind: &ErrorKind) -> Option<Duration> {
    match kind {
        ErrorKind::LimitExceeded(LimitExceededErrorData {
            retry_after: Some(RetryAfter::Delay(d)),
            ..
        }) => Some(*d),
        _ => None,
    }
}

fn read_error_body(body: &[u8]) -> (Option<ErrorCode>, Option<Duration>) {
    if body.len() > MAX_ERROR_BODY_BYTES {
        return (None, None);
    }
    if let Ok(standard) = from_object::<StandardErrorBody>(body, MAX_ERROR_BODY_BYTES) {
        return (Some(standard.kind.errcode()), delay_of(&standard.kind));
    }
    match from_object::<LenientErrorBody>(body, MAX_ERROR_BODY_BYTES) {
        Ok(b) => (b.errcode.map(|c| ErrorCode::from(c.as_str())), b.retry_after_ms),
        Err(_) => (None, None),
    }
}

fn classify_reply(
    status: u16,
    errcode: Option<&ErrorCode>,
    retry_after: Option<Duration>,
) -> OutboundFailure {
    match status {
        429 => OutboundFailure::RateLimited { retry_after },
        403 => OutboundFailure::Forbidden,
        404 if errcode == Some(&ErrorCode::Unrecognized) => OutboundFailure::Other(404),
        404 => OutboundFailure::NotFound,
        400 if errcode == Some(&ErrorCode::IncompatibleRoomVersion) => {
            OutboundFailure::IncompatibleRoomVersion
        }
        200..=299 => OutboundFailure::InvalidResponse,
        100..=599 => OutboundFailure::Other(status),
        _ => OutboundFailure::InvalidResponse,
    }
}

/// `Retry-After` as delta-seconds; an HTTP-date (or anything else) is `None`.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Up to 20 digits may still exceed u64: saturate.
    Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_carries_retry_after_ms_and_room_version() {
        // R3, R33, R34
        let e = InboundPeekError::LimitExceeded { retry_after: Duration::from_millis(1500) }
            .to_matrix_error();
        assert_eq!(e.retry_after_header(), Some(2));
        let v: serde_json::Value = serde_json::from_slice(&e.to_body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"errcode":"M_LIMIT_EXCEEDED","error":"too many peeks","retry_after_ms":1500})
        );
        let e = InboundPeekError::IncompatibleRoomVersion { room_version: RoomVersionId::V12 }
            .to_matrix_error();
        let v: serde_json::Value = serde_json::from_slice(&e.to_body()).unwrap();
        assert_eq!(v["room_version"], "12");
        assert_eq!(v["errcode"], "M_INCOMPATIBLE_ROOM_VERSION");
        assert_eq!(e.retry_after_header(), None);
    }

    #[test]
    fn retry_after_header_parses_seconds_only() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("99999999999999999999"), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn huge_hints_are_sent_as_the_largest_json_integer() {
        let f = OutboundFailure::RateLimited { retry_after: Some(Duration::from_secs(u64::MAX)) };
        let reply = f.to_matrix_error();
        let v: serde_json::Value = serde_json::from_slice(&reply.to_body()).unwrap();
        assert_eq!(v["retry_after_ms"], MAX_RETRY_AFTER_MS);
        let response = reply.into_http_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "9007199254741");
    }
}
