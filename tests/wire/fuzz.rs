//! Every wire parser fed arbitrary bytes, arbitrary JSON and arbitrary strings: a typed result,
//! never a panic (docs/architecture.md §13.3); whatever parses re-serialises and re-parses equal.

use matrix_peek::OutboundFailure;
use matrix_peek::wire::{
    AnyPeekResponse, AnyRenewResponse, ClientPeekBody, ClientPeekRequest, ClientPeekResponse,
    ExpiredPeeks, FederationPeekPath, FederationPeekResponse, FederationPrefix,
    FederationRenewResponse, LegacyPeekResponse, ObjectBody, ToMatrixError, WireError,
};
use proptest::prelude::*;
use ruma_common::api::{IncomingRequestExt, IncomingResponseExt};
use ruma_common::exports::http;
use serde_json::{Map, Number, Value};

use crate::support::prop::saved_beside_source;
use crate::support::put_with_query;

const KEYS: &[&str] = &[
    "servers",
    "room_id",
    "peek_id",
    "peek_expiry_ts",
    "latest_event_state_ids",
    "common_state_ids",
    "events",
    "renewal_interval",
    "room_version",
    "state",
    "auth_chain",
    "latest_event",
    "messages",
    "expired_peeks",
    "pdus",
    "errcode",
    "retry_after_ms",
    "type",
    "state_key",
    "content",
    "$ev:example.org",
    "$abc",
];

const STRINGS: &[&str] = &[
    "",
    "!room:example.org",
    "!hashonly",
    "#alias:example.org",
    "$event:example.org",
    "$hash",
    "example.org",
    "not a server",
    "10",
    "org.custom-1",
    "m.room.create",
    "M_LIMIT_EXCEEDED",
    "M_INCOMPATIBLE_ROOM_VERSION",
    "abc=_-.",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        prop::sample::select(STRINGS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![3 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => "[a-z_]{0,8}"]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Top-level objects with the interesting keys, so parsers get past the object check often.
fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((key(), json()), 0..10)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>()))
}

fn error_is_typed(e: &WireError) {
    // Every WireError maps to a 4xx reply.
    let m = e.to_matrix_error();
    assert!((400..500).contains(&m.status), "{m}");
}

fn feed(body: &[u8]) {
    match ClientPeekBody::from_slice(body) {
        Ok(r) => {
            assert!(r.servers.len() <= matrix_peek::wire::MAX_SERVERS);
            let again = ClientPeekBody::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            assert_eq!(again, r);
        }
        Err(e) => error_is_typed(&e),
    }
    // The same body through ruma's parser of the whole request.
    let incoming = http::Request::builder()
        .method("POST")
        .uri("/_matrix/client/v3/peek/!r:example.org")
        .body(body)
        .unwrap();
    match ClientPeekRequest::try_from_http_request(incoming, &["!r:example.org"]) {
        Ok(r) => assert!(r.body.servers.len() <= matrix_peek::wire::MAX_SERVERS),
        Err(e) => error_is_typed(&WireError::from(e)),
    }
    match ClientPeekResponse::from_slice(body) {
        Ok(r) => {
            let again = ClientPeekResponse::from_slice(&serde_json::to_vec(&r).unwrap());
            assert_eq!(again.unwrap(), r);
        }
        Err(e) => error_is_typed(&e),
    }
    if let Err(e) = ObjectBody::from_slice(body) {
        error_is_typed(&e);
    }
    match FederationPeekResponse::from_slice(body) {
        Ok(r) => {
            let again = FederationPeekResponse::from_slice(&serde_json::to_vec(&r).unwrap());
            assert_eq!(again.unwrap(), r);
            let any = AnyPeekResponse::from(r.clone());
            assert_eq!(any.renewal_interval, r.renewal_interval);
            let _ = any.effective_room_version();
        }
        Err(e) => error_is_typed(&e),
    }
    // ruma's reader of the MSC shape: the same caps, no panic.
    let _ = FederationPeekResponse::try_from_http_response(http::Response::new(body));
    match LegacyPeekResponse::from_slice(body) {
        Ok(r) => {
            let again = LegacyPeekResponse::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            assert_eq!(again, r);
        }
        Err(e) => error_is_typed(&e),
    }
    match AnyPeekResponse::from_slice(body) {
        Ok(r) => {
            let _ = r.pdus().count();
            let _ = r.room_version_from_create();
            let _ = r.effective_room_version();
            let again = AnyPeekResponse::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            assert_eq!(again, r);
        }
        Err(e) => error_is_typed(&e),
    }
    match FederationRenewResponse::from_slice(body) {
        Ok(r) => {
            let again =
                FederationRenewResponse::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            assert_eq!(again, r);
        }
        Err(e) => error_is_typed(&e),
    }
    if let Err(e) = AnyRenewResponse::from_slice(body) {
        error_is_typed(&e);
    }
    match ExpiredPeeks::from_transaction(body) {
        Ok(r) => {
            let again = ExpiredPeeks::from_transaction(&serde_json::to_vec(&r).unwrap()).unwrap();
            assert_eq!(again, r);
        }
        Err(e) => error_is_typed(&e),
    }
}

proptest! {
    #![proptest_config(saved_beside_source(ProptestConfig { cases: 512, ..ProptestConfig::default() }))]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        feed(&body);
        let _ = OutboundFailure::from_response(429, None, &body);
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_json(v in prop_oneof![json(), json_object()]) {
        let body = serde_json::to_vec(&v).unwrap();
        feed(&body);
        // Wrap as a /send body too, so expired_peeks entries get exercised.
        let txn = serde_json::json!({ "pdus": [], "expired_peeks": v });
        feed(&serde_json::to_vec(&txn).unwrap());
    }

    #[test]
    fn remote_replies_always_classify(
        status in any::<u16>(),
        header in prop::option::of(".{0,24}"),
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..128),
            json_object().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        ],
    ) {
        let f = OutboundFailure::from_response(status, header.as_deref(), &body);
        let m = f.to_matrix_error();
        prop_assert!((400..=599).contains(&m.status));
    }

    #[test]
    fn ver_parser_never_panics(
        parts in prop::collection::vec(
            (prop_oneof!["ver", "v%65r", "x", "[a-z%]{0,4}"], prop_oneof!["[0-9]{1,2}", "%[0-9A-Fa-f]{0,2}", "[a-zA-Z0-9.+%-]{0,6}"]),
            0..16,
        )
    ) {
        // ruma's query parser reads `ver` into `FederationPeekRequest`.
        let query: Vec<String> = parts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        match put_with_query(&query.join("&")) {
            Ok(r) => prop_assert!(!r.ver.is_empty() && r.ver.len() <= matrix_peek::wire::MAX_VER),
            Err(e) => error_is_typed(&e),
        }
    }

    #[test]
    fn path_parser_never_panics(tail in ".{0,64}", raw in ".{0,64}") {
        let prefix = FederationPrefix::Stable;
        for path in [format!("/_matrix/federation/v1/peek/{tail}"), raw] {
            match FederationPeekPath::parse(&prefix, &path) {
                Ok(p) => {
                    prop_assert!(!p.peek_id.is_empty());
                    let built = if p.is_renew {
                        prefix.renew_path(&p.room_id, &p.peek_id)
                    } else {
                        prefix.peek_path(&p.room_id, &p.peek_id)
                    };
                    prop_assert_eq!(FederationPeekPath::parse(&prefix, &built).unwrap(), p);
                }
                Err(e) => error_is_typed(&e),
            }
        }
    }
}

#[test]
fn deep_nesting_and_oversized_bodies_get_typed_errors() {
    // Nesting far beyond serde_json's recursion limit, in every position a parser reads.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for body in [
        deep.clone(),
        format!(r#"{{"events":{deep},"renewal_interval":1}}"#),
        format!(r#"{{"state":[{deep}],"renewal_interval":1}}"#),
        format!(r#"{{"expired_peeks":[{{"room_id":{deep}}}]}}"#),
        format!(r#"{{"servers":{deep}}}"#),
        format!(r#"{{"errcode":{deep}}}"#),
    ] {
        feed(body.as_bytes());
        let _ = OutboundFailure::from_response(404, None, body.as_bytes());
    }
    let got = AnyPeekResponse::from_slice(deep.as_bytes()).map(|_| ());
    // Valid JSON (serde_json skips it without recursing), just not an object.
    assert_eq!(got, Err(WireError::NotObject));

    let big = vec![b' '; matrix_peek::wire::MAX_REQUEST_BODY_BYTES + 1];
    assert!(matches!(ClientPeekBody::from_slice(&big), Err(WireError::TooLarge { .. })));
    assert!(matches!(ObjectBody::from_slice(&big), Err(WireError::TooLarge { .. })));
    assert_eq!(WireError::TooLarge { limit: 1, actual: 2 }.to_matrix_error().status, 413);
}

proptest! {
    #![proptest_config(saved_beside_source(ProptestConfig { cases: 256, ..ProptestConfig::default() }))]

    /// Well-formed bodies with arbitrary contents parse, with counts and interval intact
    /// (so the fuzzing above is not only exercising error paths).
    #[test]
    fn well_formed_peek_responses_keep_counts_and_interval(
        state in prop::collection::vec(json(), 0..6),
        auth in prop::collection::vec(json(), 0..6),
        messages in prop::option::of(prop::collection::vec(json(), 0..4)),
        interval in any::<u64>(),
        expired in prop::collection::vec(("[a-z]{1,8}", "[0-9a-zA-Z.=_-]{1,8}"), 0..5),
    ) {
        let mut body = serde_json::json!({
            "room_version": "10", "state": state, "auth_chain": auth,
            "latest_event": {"type": "m.room.message"}, "renewal_interval": interval,
        });
        if let Some(m) = &messages {
            body["messages"] = Value::from(m.clone());
        }
        let r = AnyPeekResponse::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap();
        prop_assert_eq!(r.state.len(), state.len());
        prop_assert_eq!(r.auth_chain.len(), auth.len());
        prop_assert_eq!(r.renewal_interval, std::time::Duration::from_millis(interval));
        prop_assert_eq!(r.pdus().count(), state.len() + auth.len() + 1 + messages.map_or(0, |m| m.len()));

        let entries: Vec<Value> = expired
            .iter()
            .map(|(room, peek)| serde_json::json!({"room_id": format!("!{room}:example.org"), "peek_id": peek}))
            .collect();
        let txn = serde_json::json!({"origin": "a.org", "pdus": [], "expired_peeks": entries});
        let got = ExpiredPeeks::from_transaction(&serde_json::to_vec(&txn).unwrap()).unwrap();
        prop_assert_eq!(got.expired_peeks.len(), expired.len());
    }
}
