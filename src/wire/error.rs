//! One table from every machine error to `(HTTP status, errcode, message)`, the Matrix error
//! body it serialises to, and the reverse: [`OutboundFailure::from_response`] classifies a remote's
//! error reply.
//!
//! | error | status | errcode | requirement |
//! |---|---|---|---|
//! | `LocalPeekError::AlreadyJoined` | 400 | `M_BAD_STATE` | R6 |
//! | `LocalPeekError::NotPeekable` | 403 | `M_FORBIDDEN` | R7 |
//! | `LocalPeekError::Encrypted` | 403 | `M_FORBIDDEN` | R8 |
//! | `LocalPeekError::NotPeeking` | 400 | `M_BAD_STATE` | R13 |
//! | `LocalPeekError::LimitExceeded` | 429 | `M_LIMIT_EXCEEDED` + `retry_after_ms` | R3 |
//! | `InboundPeekError::InvalidPeekId` | 400 | `M_UNRECOGNIZED` | R29 |
//! | `InboundPeekError::UnknownRoom` | 404 | `M_NOT_FOUND` | R31 |
//! | `InboundPeekError::NotPeekable` | 403 | `M_FORBIDDEN` | R32 |
//! | `InboundPeekError::IncompatibleRoomVersion` | 400 | `M_INCOMPATIBLE_ROOM_VERSION` + `room_version` | R33 |
//! | `InboundPeekError::LimitExceeded` | 429 | `M_LIMIT_EXCEEDED` + `retry_after_ms` | R34 |
//! | `InboundPeekError::UnknownPeek` | 404 | `M_NOT_FOUND` | R41, R42 |
//! | `OutboundFailure::Forbidden` | 403 | `M_FORBIDDEN` | R27 (passed through) |
//! | `OutboundFailure::NotFound` | 404 | `M_NOT_FOUND` | R27 |
//! | `OutboundFailure::IncompatibleRoomVersion` | 400 | `M_INCOMPATIBLE_ROOM_VERSION` | R27 |
//! | `OutboundFailure::RateLimited` | 429 | `M_LIMIT_EXCEEDED` (+ `retry_after_ms` when known) | R27 |
//! | `OutboundFailure::Unreachable` | 502 | `M_UNKNOWN` | R27: a gateway failure, not "no such room" |
//! | `OutboundFailure::InvalidResponse` | 502 | `M_UNKNOWN` | R27, R49 |
//! | `OutboundFailure::Other(s)` | `s` if 400–599, else 502 | `M_UNKNOWN` | R27 |
//! | `OutboundPeekError::NoCandidates` | 404 | `M_NOT_FOUND` | R27, R46 |
//! | `OutboundPeekError::LimitExceeded` | 429 | `M_LIMIT_EXCEEDED` (no hint) | caps |
//! | `OutboundPeekError::Remote(f)` | as `f` | as `f` | R27 |
//! | `PeekError::Local(e)` / `Remote(e)` | as `e` | as `e` | |
//! | [`WireError`] | 400 / 413 / 404 | `M_NOT_JSON`, `M_BAD_JSON`, `M_INVALID_PARAM`, `M_TOO_LARGE`, `M_UNRECOGNIZED` | R12, R29 |
//!
//! Hosts answer an unknown room or alias on the client `/peek` (R4) with
//! [`MatrixError::not_found`] themselves: no machine sees that case.

use std::fmt;
use std::time::Duration;

use ruma_common::RoomVersionId;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::WireError;
use super::json::interval_ms;
use crate::PeekError;
use crate::inbound::InboundPeekError;
use crate::local::LocalPeekError;
use crate::outbound::{OutboundFailure, OutboundPeekError};

/// Largest error body [`OutboundFailure::from_response`] looks into; a longer one is classified by
/// its status alone.
pub const MAX_ERROR_BODY_BYTES: usize = super::MAX_REQUEST_BODY_BYTES;

/// The Matrix error codes this crate emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `M_FORBIDDEN`
    Forbidden,
    /// `M_NOT_FOUND`
    NotFound,
    /// `M_BAD_STATE`
    BadState,
    /// `M_UNRECOGNIZED`
    Unrecognized,
    /// `M_LIMIT_EXCEEDED`
    LimitExceeded,
    /// `M_INCOMPATIBLE_ROOM_VERSION`
    IncompatibleRoomVersion,
    /// `M_NOT_JSON`
    NotJson,
    /// `M_BAD_JSON`
    BadJson,
    /// `M_INVALID_PARAM`
    InvalidParam,
    /// `M_TOO_LARGE`
    TooLarge,
    /// `M_UNKNOWN`
    Unknown,
}

impl ErrorCode {
    /// The errcode string.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Forbidden => "M_FORBIDDEN",
            ErrorCode::NotFound => "M_NOT_FOUND",
            ErrorCode::BadState => "M_BAD_STATE",
            ErrorCode::Unrecognized => "M_UNRECOGNIZED",
            ErrorCode::LimitExceeded => "M_LIMIT_EXCEEDED",
            ErrorCode::IncompatibleRoomVersion => "M_INCOMPATIBLE_ROOM_VERSION",
            ErrorCode::NotJson => "M_NOT_JSON",
            ErrorCode::BadJson => "M_BAD_JSON",
            ErrorCode::InvalidParam => "M_INVALID_PARAM",
            ErrorCode::TooLarge => "M_TOO_LARGE",
            ErrorCode::Unknown => "M_UNKNOWN",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An HTTP error reply: the status plus the Matrix error body.
///
/// Serialises (the body only) as `{"errcode", "error"}`, plus `retry_after_ms` when
/// `retry_after` is set (429) and `room_version` when set (`M_INCOMPATIBLE_ROOM_VERSION`, R33).
/// Send [`MatrixError::retry_after_header`] as `Retry-After` too (R3, R34).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixError {
    /// The HTTP status.
    pub status: u16,
    /// The errcode.
    pub errcode: ErrorCode,
    /// A human-readable message.
    pub error: String,
    /// For 429: how long to wait (`retry_after_ms`, `Retry-After`).
    pub retry_after: Option<Duration>,
    /// For `M_INCOMPATIBLE_ROOM_VERSION`: the room's version.
    pub room_version: Option<RoomVersionId>,
}

impl MatrixError {
    /// An error without extras.
    pub fn new(status: u16, errcode: ErrorCode, error: impl Into<String>) -> Self {
        MatrixError { status, errcode, error: error.into(), retry_after: None, room_version: None }
    }

    /// 404 `M_NOT_FOUND`, e.g. for an unknown room or alias on the client `/peek` (R4).
    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(404, ErrorCode::NotFound, error)
    }

    /// 429 `M_LIMIT_EXCEEDED` with an optional hint (R3, R34).
    pub fn limit_exceeded(retry_after: Option<Duration>) -> Self {
        MatrixError { retry_after, ..Self::new(429, ErrorCode::LimitExceeded, "too many requests") }
    }

    /// The `Retry-After` header value: whole seconds, rounded up, or `None` without a hint.
    pub fn retry_after_header(&self) -> Option<u64> {
        let d = self.retry_after?;
        let secs = d.as_secs();
        Some(if d.subsec_nanos() > 0 { secs.saturating_add(1) } else { secs })
    }

    /// The JSON body.
    pub fn to_body(&self) -> Vec<u8> {
        // Cannot fail: a map of strings and integers.
        serde_json::to_vec(self).expect("a Matrix error body always serialises")
    }
}

impl fmt::Display for MatrixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.errcode, self.error)
    }
}

impl std::error::Error for MatrixError {}

impl Serialize for MatrixError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let extras =
            usize::from(self.retry_after.is_some()) + usize::from(self.room_version.is_some());
        let mut map = s.serialize_map(Some(2 + extras))?;
        map.serialize_entry("errcode", &self.errcode)?;
        map.serialize_entry("error", &self.error)?;
        if let Some(d) = self.retry_after {
            map.serialize_entry(
                "retry_after_ms",
                &u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            )?;
        }
        if let Some(v) = &self.room_version {
            map.serialize_entry("room_version", v)?;
        }
        map.end()
    }
}

/// Maps an error to its HTTP reply (the table in this module's docs).
pub trait ToMatrixError {
    /// The status, errcode, message and extras for this error.
    fn to_matrix_error(&self) -> MatrixError;
}

impl ToMatrixError for LocalPeekError {
    fn to_matrix_error(&self) -> MatrixError {
        let msg = self.to_string();
        match self {
            LocalPeekError::AlreadyJoined => MatrixError::new(400, ErrorCode::BadState, msg),
            LocalPeekError::NotPeekable => MatrixError::new(403, ErrorCode::Forbidden, msg),
            LocalPeekError::Encrypted => {
                MatrixError::new(403, ErrorCode::Forbidden, "cannot peek into an encrypted room")
            }
            LocalPeekError::NotPeeking => MatrixError::new(400, ErrorCode::BadState, msg),
            LocalPeekError::LimitExceeded { retry_after } => MatrixError {
                error: "too many peeks".into(),
                ..MatrixError::limit_exceeded(Some(*retry_after))
            },
        }
    }
}

impl ToMatrixError for InboundPeekError {
    fn to_matrix_error(&self) -> MatrixError {
        let msg = self.to_string();
        match self {
            InboundPeekError::InvalidPeekId => MatrixError::new(400, ErrorCode::Unrecognized, msg),
            InboundPeekError::UnknownRoom => MatrixError::new(404, ErrorCode::NotFound, msg),
            InboundPeekError::NotPeekable => MatrixError::new(403, ErrorCode::Forbidden, msg),
            InboundPeekError::IncompatibleRoomVersion { room_version } => MatrixError {
                room_version: Some(room_version.clone()),
                ..MatrixError::new(400, ErrorCode::IncompatibleRoomVersion, msg)
            },
            InboundPeekError::LimitExceeded { retry_after } => MatrixError {
                error: "too many peeks".into(),
                ..MatrixError::limit_exceeded(Some(*retry_after))
            },
            InboundPeekError::UnknownPeek => MatrixError::new(404, ErrorCode::NotFound, msg),
        }
    }
}

impl ToMatrixError for OutboundFailure {
    fn to_matrix_error(&self) -> MatrixError {
        let msg = format!("remote peek failed: {self}");
        match self {
            OutboundFailure::Forbidden => MatrixError::new(403, ErrorCode::Forbidden, msg),
            OutboundFailure::NotFound => MatrixError::new(404, ErrorCode::NotFound, msg),
            OutboundFailure::IncompatibleRoomVersion => {
                MatrixError::new(400, ErrorCode::IncompatibleRoomVersion, msg)
            }
            OutboundFailure::RateLimited { retry_after } => {
                MatrixError { error: msg, ..MatrixError::limit_exceeded(*retry_after) }
            }
            OutboundFailure::Unreachable => MatrixError::new(502, ErrorCode::Unknown, msg),
            OutboundFailure::InvalidResponse => MatrixError::new(502, ErrorCode::Unknown, msg),
            OutboundFailure::Other(status) => {
                let status = if (400..=599).contains(status) { *status } else { 502 };
                MatrixError::new(status, ErrorCode::Unknown, msg)
            }
        }
    }
}

impl ToMatrixError for OutboundPeekError {
    fn to_matrix_error(&self) -> MatrixError {
        match self {
            OutboundPeekError::NoCandidates => {
                MatrixError::not_found("no server known to peek into the room through")
            }
            OutboundPeekError::LimitExceeded => MatrixError {
                error: "too many rooms are being peeked over federation".into(),
                ..MatrixError::limit_exceeded(None)
            },
            OutboundPeekError::Remote(failure) => failure.to_matrix_error(),
        }
    }
}

impl ToMatrixError for PeekError {
    fn to_matrix_error(&self) -> MatrixError {
        match self {
            PeekError::Local(e) => e.to_matrix_error(),
            PeekError::Remote(e) => e.to_matrix_error(),
        }
    }
}

impl ToMatrixError for WireError {
    fn to_matrix_error(&self) -> MatrixError {
        let msg = self.to_string();
        match self {
            WireError::TooLarge { .. } => MatrixError::new(413, ErrorCode::TooLarge, msg),
            WireError::NotJson(_) => MatrixError::new(400, ErrorCode::NotJson, msg),
            WireError::NotObject | WireError::BadJson(_) => {
                MatrixError::new(400, ErrorCode::BadJson, msg)
            }
            WireError::TooMany { .. } | WireError::InvalidParam { .. } => {
                MatrixError::new(400, ErrorCode::InvalidParam, msg)
            }
            WireError::InvalidPeekId => MatrixError::new(400, ErrorCode::Unrecognized, msg),
            WireError::UnknownPath(_) => MatrixError::new(404, ErrorCode::Unrecognized, msg),
        }
    }
}

macro_rules! from_via_table {
    ($($t:ty),*) => {$(
        impl From<&$t> for MatrixError {
            fn from(e: &$t) -> Self {
                e.to_matrix_error()
            }
        }
        impl From<$t> for MatrixError {
            fn from(e: $t) -> Self {
                e.to_matrix_error()
            }
        }
    )*};
}

from_via_table!(
    LocalPeekError,
    InboundPeekError,
    OutboundFailure,
    OutboundPeekError,
    PeekError,
    WireError
);

/// The fields of a remote error body this crate reads; everything else is skipped.
#[derive(Deserialize)]
struct RemoteErrorBody {
    #[serde(default)]
    errcode: Option<String>,
    #[serde(default, with = "interval_ms::option")]
    retry_after_ms: Option<Duration>,
}

impl OutboundFailure {
    /// Classifies a remote's non-2xx reply to a peek, renew or delete in one call (R60).
    ///
    /// `retry_after` is the raw `Retry-After` header, if any; `body` the raw body.
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
        let parsed: Option<RemoteErrorBody> = if body.len() <= MAX_ERROR_BODY_BYTES {
            super::json::from_object(body, MAX_ERROR_BODY_BYTES).ok()
        } else {
            None
        };
        let (errcode, retry_after_ms) =
            parsed.map_or((None, None), |b| (b.errcode, b.retry_after_ms));
        match status {
            429 => OutboundFailure::RateLimited {
                retry_after: retry_after_ms.or_else(|| retry_after.and_then(parse_retry_after)),
            },
            403 => OutboundFailure::Forbidden,
            404 if errcode.as_deref() == Some("M_UNRECOGNIZED") => OutboundFailure::Other(404),
            404 => OutboundFailure::NotFound,
            400 if errcode.as_deref() == Some("M_INCOMPATIBLE_ROOM_VERSION") => {
                OutboundFailure::IncompatibleRoomVersion
            }
            200..=299 => OutboundFailure::InvalidResponse,
            100..=599 => OutboundFailure::Other(status),
            _ => OutboundFailure::InvalidResponse,
        }
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
}
