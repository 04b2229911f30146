//! The error table (R3–R13, R27, R29–R43) into ruma's Matrix error, and remote replies →
//! `OutboundFailure` (R60).

use std::time::Duration;

use matrix_peek::wire::{ErrorCode, ErrorReply, ToMatrixError, WireError};
use matrix_peek::{DriverError, InboundPeekError, LocalPeekError, PeekError};
use matrix_peek::{OutboundFailure, OutboundPeekError};
use ruma_common::RoomVersionId;
use ruma_common::api::EndpointError;
use ruma_common::api::error::{Error, ErrorKind, RetryAfter};
use ruma_common::exports::http;
use serde_json::{Value, json};

/// Checks `e`'s reply: ruma's error (status, errcode), the same through `ErrorReply`, the body
/// ruma writes and the `Retry-After` header, with `retry_after_ms` only for a 429 with a hint
/// and `room_version` only for an incompatible room version.
fn check(e: &impl ToMatrixError, status: u16, errcode: &str) -> ErrorReply {
    let m = e.to_matrix_error();
    assert_eq!((m.status, m.errcode.as_str()), (status, errcode), "{m}");
    assert_eq!(m.error.status_code.as_u16(), status);
    let response = m.clone().into_http_response();
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()[http::header::CONTENT_TYPE], "application/json");
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body, serde_json::from_slice::<Value>(&m.to_body()).unwrap());
    assert_eq!(body["errcode"], errcode);
    assert!(body["error"].as_str().is_some_and(|s| !s.is_empty()));
    let hint = match m.error.error_kind() {
        Some(ErrorKind::LimitExceeded(data)) => data.retry_after,
        _ => None,
    };
    assert_eq!(body.get("retry_after_ms").is_some(), hint.is_some());
    assert_eq!(response.headers().contains_key(http::header::RETRY_AFTER), hint.is_some());
    let has_version = matches!(m.error.error_kind(), Some(ErrorKind::IncompatibleRoomVersion(_)));
    assert_eq!(body.get("room_version").is_some(), has_version);
    m
}

/// Expected `(status, errcode)` per variant. The enums are `#[non_exhaustive]`, so a wildcard
/// arm is needed outside the crate; it panics, so a new variant fails these tests until it is
/// mapped here (the crate's own mapping is an exhaustive match, checked by the compiler).
fn expected_local(e: &LocalPeekError) -> (u16, &'static str) {
    match e {
        LocalPeekError::AlreadyJoined => (400, "M_BAD_STATE"), // R6
        LocalPeekError::NotPeekable => (403, "M_FORBIDDEN"),   // R7
        LocalPeekError::Encrypted => (403, "M_FORBIDDEN"),     // R8
        LocalPeekError::NotPeeking => (400, "M_BAD_STATE"),    // R13
        LocalPeekError::LimitExceeded { .. } => (429, "M_LIMIT_EXCEEDED"), // R3
        other => panic!("a new variant, map and check it here: {other:?}"),
    }
}

fn expected_inbound(e: &InboundPeekError) -> (u16, &'static str) {
    match e {
        InboundPeekError::InvalidPeekId => (400, "M_UNRECOGNIZED"), // R29
        InboundPeekError::UnknownRoom => (404, "M_NOT_FOUND"),      // R31
        InboundPeekError::NotPeekable => (403, "M_FORBIDDEN"),      // R32
        InboundPeekError::IncompatibleRoomVersion { .. } => (400, "M_INCOMPATIBLE_ROOM_VERSION"), // R33
        InboundPeekError::LimitExceeded { .. } => (429, "M_LIMIT_EXCEEDED"), // R34
        InboundPeekError::UnknownPeek => (404, "M_NOT_FOUND"),               // R41, R42
        other => panic!("a new variant, map and check it here: {other:?}"),
    }
}

fn expected_failure(f: &OutboundFailure) -> (u16, &'static str) {
    // R27: the remote's refusal passes through.
    match f {
        OutboundFailure::Forbidden => (403, "M_FORBIDDEN"),
        OutboundFailure::NotFound => (404, "M_NOT_FOUND"),
        OutboundFailure::IncompatibleRoomVersion => (400, "M_INCOMPATIBLE_ROOM_VERSION"),
        OutboundFailure::RateLimited { .. } => (429, "M_LIMIT_EXCEEDED"),
        OutboundFailure::Unreachable => (502, "M_UNKNOWN"),
        OutboundFailure::InvalidResponse => (502, "M_UNKNOWN"),
        OutboundFailure::Other(s) if (400..=599).contains(s) => (*s, "M_UNKNOWN"),
        OutboundFailure::Other(_) => (502, "M_UNKNOWN"),
        other => panic!("a new variant, map and check it here: {other:?}"),
    }
}

fn expected_outbound(e: &OutboundPeekError) -> (u16, &'static str) {
    match e {
        OutboundPeekError::NoCandidates => (404, "M_NOT_FOUND"), // R27, R46
        OutboundPeekError::LimitExceeded => (429, "M_LIMIT_EXCEEDED"),
        OutboundPeekError::Remote(f) => expected_failure(f),
        other => panic!("a new variant, map and check it here: {other:?}"),
    }
}

fn expected_peek(e: &PeekError) -> (u16, &'static str) {
    match e {
        PeekError::Local(l) => expected_local(l),
        PeekError::Remote(r) => expected_outbound(r),
        other => panic!("a new variant, map and check it here: {other:?}"),
    }
}

fn all_local() -> Vec<LocalPeekError> {
    vec![
        LocalPeekError::AlreadyJoined,
        LocalPeekError::NotPeekable,
        LocalPeekError::Encrypted,
        LocalPeekError::NotPeeking,
        LocalPeekError::LimitExceeded { retry_after: Duration::from_millis(2500) },
    ]
}

fn all_inbound() -> Vec<InboundPeekError> {
    vec![
        InboundPeekError::InvalidPeekId,
        InboundPeekError::UnknownRoom,
        InboundPeekError::NotPeekable,
        InboundPeekError::IncompatibleRoomVersion { room_version: RoomVersionId::V11 },
        InboundPeekError::LimitExceeded { retry_after: Duration::from_secs(30) },
        InboundPeekError::UnknownPeek,
    ]
}

fn all_failures() -> Vec<OutboundFailure> {
    vec![
        OutboundFailure::Forbidden,
        OutboundFailure::NotFound,
        OutboundFailure::IncompatibleRoomVersion,
        OutboundFailure::RateLimited { retry_after: None },
        OutboundFailure::RateLimited { retry_after: Some(Duration::from_millis(1)) },
        OutboundFailure::Unreachable,
        OutboundFailure::InvalidResponse,
        OutboundFailure::Other(500),
        OutboundFailure::Other(418),
        OutboundFailure::Other(200),
        OutboundFailure::Other(999),
    ]
}

fn all_outbound() -> Vec<OutboundPeekError> {
    let mut v = vec![OutboundPeekError::NoCandidates, OutboundPeekError::LimitExceeded];
    v.extend(all_failures().into_iter().map(OutboundPeekError::Remote));
    v
}

#[test]
fn every_error_variant_maps_to_its_required_status_and_errcode() {
    for e in all_local() {
        let (s, c) = expected_local(&e);
        check(&e, s, c);
        let (s, c) = expected_peek(&PeekError::Local(e.clone()));
        check(&PeekError::Local(e), s, c);
    }
    for e in all_inbound() {
        let (s, c) = expected_inbound(&e);
        check(&e, s, c);
    }
    for f in all_failures() {
        let (s, c) = expected_failure(&f);
        check(&f, s, c);
    }
    for e in all_outbound() {
        let (s, c) = expected_outbound(&e);
        check(&e, s, c);
        let (s, c) = expected_peek(&PeekError::Remote(e.clone()));
        check(&PeekError::Remote(e), s, c);
    }
}

#[test]
fn driver_errors_map_like_their_cause_or_to_server_errors() {
    // `DriverError` is `#[non_exhaustive]`: variants added later map to 500 M_UNKNOWN.
    type D = DriverError<std::io::Error>;
    for e in all_local() {
        let (s, c) = expected_local(&e);
        check(&D::Peek(PeekError::Local(e)), s, c);
    }
    for e in all_inbound() {
        let (s, c) = expected_inbound(&e);
        check(&D::Inbound(e), s, c);
    }
    let m = check(
        &D::Store(std::sync::Arc::new(std::io::Error::other("disk on fire"))),
        500,
        "M_UNKNOWN",
    );
    assert!(!m.to_string().contains("disk on fire"), "the store's message stays private");
    check(&D::Interrupted, 503, "M_UNKNOWN");
    check(&D::TimedOut, 504, "M_UNKNOWN");
    check(&D::Closed, 503, "M_UNKNOWN");
    let e: Error = D::Interrupted.into();
    assert_eq!(e.status_code, http::StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn limit_errors_carry_retry_after_ms_and_a_rounded_up_header() {
    // R3, R34: `retry_after_ms` exact; `Retry-After` whole seconds, rounded up, at least 1.
    let m = check(
        &LocalPeekError::LimitExceeded { retry_after: Duration::from_millis(2500) },
        429,
        "M_LIMIT_EXCEEDED",
    );
    assert_eq!(serde_json::from_slice::<Value>(&m.to_body()).unwrap()["retry_after_ms"], 2500);
    assert_eq!(m.retry_after_header(), Some(3));
    assert_eq!(m.into_http_response().headers()[http::header::RETRY_AFTER], "3");
    let m =
        InboundPeekError::LimitExceeded { retry_after: Duration::from_secs(30) }.to_matrix_error();
    assert_eq!(m.retry_after_header(), Some(30));
    let m = OutboundFailure::RateLimited { retry_after: Some(Duration::from_millis(1)) }
        .to_matrix_error();
    assert_eq!(m.retry_after_header(), Some(1));
    let m = LocalPeekError::LimitExceeded { retry_after: Duration::ZERO }.to_matrix_error();
    assert_eq!(m.retry_after_header(), Some(1));
    assert_eq!(serde_json::from_slice::<Value>(&m.to_body()).unwrap()["retry_after_ms"], 0);
    assert_eq!(OutboundPeekError::LimitExceeded.to_matrix_error().retry_after_header(), None);
    // ruma's error carries the hint as `RetryAfter::Delay`.
    let e = Error::from(InboundPeekError::LimitExceeded { retry_after: Duration::from_secs(2) });
    assert!(matches!(
        e.error_kind(),
        Some(ErrorKind::LimitExceeded(d)) if d.retry_after == Some(RetryAfter::Delay(Duration::from_secs(2)))
    ));
}

#[test]
fn incompatible_room_version_body_names_the_version() {
    // R33
    let m = ErrorReply::from(InboundPeekError::IncompatibleRoomVersion {
        room_version: RoomVersionId::V11,
    });
    let body: Value = serde_json::from_slice(&m.to_body()).unwrap();
    assert_eq!(body["room_version"], "11");
    assert_eq!(body.as_object().unwrap().len(), 3);
    assert!(matches!(
        m.error.error_kind(),
        Some(ErrorKind::IncompatibleRoomVersion(d)) if d.room_version == RoomVersionId::V11
    ));
    // A remote's refusal passed through has no version to name (R27): the errcode alone.
    let m = OutboundFailure::IncompatibleRoomVersion.to_matrix_error();
    assert_eq!((m.status, m.errcode.clone()), (400, ErrorCode::IncompatibleRoomVersion));
    let body: Value = serde_json::from_slice(&m.to_body()).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 2);
}

#[test]
fn wire_errors_map_to_client_errors() {
    // R12: non-objects are M_BAD_JSON / M_NOT_JSON.
    check(&WireError::NotObject, 400, "M_BAD_JSON");
    check(&WireError::NotJson("x".into()), 400, "M_NOT_JSON");
    check(&WireError::TooLarge { limit: 1, actual: 2 }, 413, "M_TOO_LARGE");
    check(&WireError::InvalidPeekId, 400, "M_UNRECOGNIZED"); // R29
    check(&WireError::TooMany { what: "ver", limit: 100 }, 400, "M_INVALID_PARAM");
    check(&WireError::EventIdTooLong { limit: 255 }, 400, "M_BAD_JSON");
    check(&WireError::UnknownPath("/x".into()), 404, "M_UNRECOGNIZED");
    check(&WireError::BadJson("x".into()), 400, "M_BAD_JSON");
    check(&WireError::InvalidParam { name: "ver", reason: "x".into() }, 400, "M_INVALID_PARAM");
    assert_eq!(ErrorReply::not_found("no such room").errcode, ErrorCode::NotFound); // R4
}

// ---- remote replies → OutboundFailure (R60) ----

fn body(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn remote_refusals_are_classified() {
    let f = |status, ra: Option<&str>, b: &[u8]| OutboundFailure::from_response(status, ra, b);
    let forbidden = body(json!({"errcode":"M_FORBIDDEN","error":"no"}));
    assert_eq!(f(403, None, &forbidden), OutboundFailure::Forbidden);
    assert_eq!(f(404, None, &body(json!({"errcode":"M_NOT_FOUND"}))), OutboundFailure::NotFound);
    assert_eq!(
        f(400, None, &body(json!({"errcode":"M_INCOMPATIBLE_ROOM_VERSION","room_version":"12"}))),
        OutboundFailure::IncompatibleRoomVersion
    );
    // A 400 with another errcode (e.g. the MSC's M_UNRECOGNIZED for a bad peek id) is Other(400).
    assert_eq!(
        f(400, None, &body(json!({"errcode":"M_UNRECOGNIZED"}))),
        OutboundFailure::Other(400)
    );
    // A 404 M_UNRECOGNIZED means "no such endpoint", not "no such peek".
    assert_eq!(
        f(404, None, &body(json!({"errcode":"M_UNRECOGNIZED"}))),
        OutboundFailure::Other(404)
    );
    assert_eq!(f(500, None, &body(json!({"errcode":"M_UNKNOWN"}))), OutboundFailure::Other(500));
    assert_eq!(f(502, None, b"<html>bad gateway</html>"), OutboundFailure::Other(502));
    assert_eq!(f(200, None, b"{}"), OutboundFailure::InvalidResponse);
    assert_eq!(f(1000, None, b""), OutboundFailure::InvalidResponse);
}

#[test]
fn rate_limits_read_retry_after_ms_then_the_header() {
    // R60
    let f = |ra: Option<&str>, b: &[u8]| OutboundFailure::from_response(429, ra, b);
    let with_ms = body(json!({"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1500}));
    assert_eq!(
        f(Some("99"), &with_ms),
        OutboundFailure::RateLimited { retry_after: Some(Duration::from_millis(1500)) }
    );
    let without = body(json!({"errcode":"M_LIMIT_EXCEEDED"}));
    assert_eq!(
        f(Some("7"), &without),
        OutboundFailure::RateLimited { retry_after: Some(Duration::from_secs(7)) }
    );
    assert_eq!(
        f(Some("Wed, 21 Oct 2015 07:28:00 GMT"), &without),
        OutboundFailure::RateLimited { retry_after: None }
    );
    assert_eq!(f(None, b"not json"), OutboundFailure::RateLimited { retry_after: None });
    assert_eq!(
        f(Some("3"), b"not json"),
        OutboundFailure::RateLimited { retry_after: Some(Duration::from_secs(3)) }
    );
    let huge = body(json!({"retry_after_ms": 18446744073709551615u64}));
    assert_eq!(
        f(None, &huge),
        OutboundFailure::RateLimited { retry_after: Some(Duration::from_millis(u64::MAX)) }
    );
}

#[test]
fn non_json_bodies_are_classified_by_status_alone() {
    assert_eq!(OutboundFailure::from_response(403, None, b""), OutboundFailure::Forbidden);
    assert_eq!(OutboundFailure::from_response(404, None, b"Not Found"), OutboundFailure::NotFound);
    assert_eq!(OutboundFailure::from_response(400, None, b"[1,2]"), OutboundFailure::Other(400));
    let big = vec![b' '; matrix_peek::wire::MAX_ERROR_BODY_BYTES + 1];
    assert_eq!(OutboundFailure::from_response(404, None, &big), OutboundFailure::NotFound);
}

#[test]
fn bodies_ruma_rejects_are_still_read() {
    // ruma wants `room_version` with this errcode, and `retry_after_ms` within 2^53 − 1.
    let f = |status, b: &[u8]| OutboundFailure::from_response(status, None, b);
    assert_eq!(
        f(400, &body(json!({"errcode":"M_INCOMPATIBLE_ROOM_VERSION"}))),
        OutboundFailure::IncompatibleRoomVersion
    );
    assert_eq!(
        f(429, &body(json!({"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":9007199254740993u64}))),
        OutboundFailure::RateLimited { retry_after: Some(Duration::from_millis(9007199254740993)) }
    );
}

#[test]
fn rumas_parsed_errors_classify_like_raw_replies() {
    // A ruma client gets `FromHttpResponseError::Server(Error)`; it classifies the same way.
    for (status, header, b) in [
        (403, None, body(json!({"errcode":"M_FORBIDDEN","error":"no"}))),
        (404, None, body(json!({"errcode":"M_UNRECOGNIZED","error":"no"}))),
        (404, None, b"Not Found".to_vec()),
        (400, None, body(json!({"errcode":"M_INCOMPATIBLE_ROOM_VERSION","room_version":"9"}))),
        (429, Some("7"), body(json!({"errcode":"M_LIMIT_EXCEEDED","error":"slow"}))),
        (429, None, body(json!({"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":1500}))),
        (502, None, Vec::new()),
    ] {
        let mut response = http::Response::builder().status(status);
        if let Some(h) = header {
            response = response.header(http::header::RETRY_AFTER, h);
        }
        let response = response.body(&b[..]).unwrap();
        let raw = OutboundFailure::from_http_response(&response);
        assert_eq!(raw, OutboundFailure::from_response(status, header, &b));
        assert_eq!(OutboundFailure::from(&Error::from_http_response(response)), raw);
    }
}

#[test]
fn a_classified_failure_maps_back_to_the_same_class() {
    // R27: what a remote said comes back out to the client unchanged in kind.
    for (status, errcode) in [(403, "M_FORBIDDEN"), (404, "M_NOT_FOUND"), (429, "M_LIMIT_EXCEEDED")]
    {
        let f = OutboundFailure::from_response(status, None, &body(json!({ "errcode": errcode })));
        check(&f, status, errcode);
    }
}
