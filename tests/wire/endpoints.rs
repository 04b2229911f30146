//! The endpoints as ruma API types: each request through `http::Request` and each response
//! through `http::Response`, both ways (a client sends, a server parses; a server answers, a
//! client reads), and the ruma parsers' errors as `WireError`s.

use std::borrow::Cow;
use std::time::Duration;

use matrix_peek::OutboundFailure;
use matrix_peek::Timestamp;
use matrix_peek::wire::{
    AnyPeekResponse, AnyRenewResponse, ClientPeekRequest, ClientPeekResponse, ClientPrefix,
    ClientUnpeekRequest, ClientUnpeekResponse, EventIdList, FederationPeekPath,
    FederationPeekRequest, FederationPeekResponse, FederationPrefix, FederationRenewRequest,
    FederationRenewResponse, FederationUnpeekRequest, FederationUnpeekResponse, PduList,
    PeekResponseFormat, StateIdMap, WireError,
};
use ruma_common::api::auth_scheme::SendAccessToken;
use ruma_common::api::{
    IncomingRequestExt, IncomingResponseExt, OutgoingRequestExt, OutgoingResponseExt,
};
use ruma_common::exports::http;
use ruma_common::{OwnedRoomOrAliasId, RoomVersionId, event_id, owned_room_id, owned_server_name};
use serde_json::value::to_raw_value;

use crate::support::request;

const CLIENT_BASE: &str = "https://matrix.example.org";
const RESIDENT: &str = "https://resident.example:8448";

fn response<B: AsRef<[u8]>>(built: &http::Response<B>) -> http::Response<&[u8]> {
    let mut incoming = http::Response::new(built.body().as_ref());
    *incoming.status_mut() = built.status();
    *incoming.headers_mut() = built.headers().clone();
    incoming
}

/// The path arguments a router takes from `path` (a template of ruma's), decoded.
fn client_args(path: &str, prefix: ClientPrefix) -> Vec<String> {
    let rest = path.strip_prefix(prefix.as_str()).unwrap();
    let arg = rest.split('/').nth(2).unwrap();
    vec![percent_encoding::percent_decode_str(arg).decode_utf8().unwrap().into_owned()]
}

#[test]
fn client_peek_goes_through_http_both_ways() {
    // R1, R2, R9
    let alias: OwnedRoomOrAliasId = "#lobby:example.org".try_into().unwrap();
    let servers = vec![owned_server_name!("a.org"), owned_server_name!("b.org:8448")];
    for prefix in ClientPrefix::ALL {
        let built = ClientPeekRequest::new(alias.clone(), servers.clone())
            .try_into_http_request::<Vec<u8>>(
                CLIENT_BASE,
                SendAccessToken::IfRequired("token"),
                Cow::Owned(prefix.supported_versions()),
            )
            .unwrap();
        assert_eq!(built.method(), http::Method::POST);
        let path = built.uri().path();
        assert_eq!(path, prefix.peek_path(&alias));
        assert_eq!(built.headers()[http::header::AUTHORIZATION], "Bearer token");
        let body: serde_json::Value = serde_json::from_slice(built.body()).unwrap();
        assert_eq!(body, serde_json::json!({"servers": ["a.org", "b.org:8448"]}));

        let args = client_args(path, prefix);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let parsed = ClientPeekRequest::try_from_http_request(request(&built), &args).unwrap();
        assert_eq!(parsed.room_id_or_alias, alias);
        assert_eq!(parsed.body.servers, servers);
    }

    let answer = ClientPeekResponse::new(
        owned_room_id!("!resolved:example.org"),
        Timestamp::from_millis(1_605_534_210_000),
    );
    let sent = answer.clone().try_into_http_response::<Vec<u8>>().unwrap();
    assert_eq!(sent.status(), http::StatusCode::OK);
    assert_eq!(ClientPeekResponse::try_from_http_response(response(&sent)).unwrap(), answer);
    assert_eq!(ClientPeekResponse::from_slice(sent.body()).unwrap(), answer);
}

#[test]
fn client_peek_bodies_are_checked_by_rumas_parser_too() {
    // R2, R12: what the shim's bad-input test sends, through ruma.
    let parse = |body: &'static [u8]| {
        let incoming = http::Request::builder()
            .method("POST")
            .uri("/_matrix/client/v3/peek/!r:example.org")
            .body(body)
            .unwrap();
        ClientPeekRequest::try_from_http_request(incoming, &["!r:example.org"])
            .map_err(WireError::from)
    };
    assert!(parse(b"").unwrap().body.servers.is_empty()); // ruma reads no body as `{}`
    assert!(matches!(parse(b"{not json"), Err(WireError::NotJson(_))));
    assert!(matches!(parse(b"[]"), Err(WireError::BadJson(_))));
    assert!(matches!(parse(br#"{"servers":"x"}"#), Err(WireError::BadJson(_))));
    let many: Vec<String> =
        (0..=matrix_peek::wire::MAX_SERVERS).map(|i| format!("\"s{i}\"")).collect();
    let body = format!(r#"{{"servers":[{}]}}"#, many.join(","));
    let incoming = http::Request::builder()
        .method("POST")
        .uri("/_matrix/client/v3/peek/!r:example.org")
        .body(body.as_bytes())
        .unwrap();
    assert_eq!(
        ClientPeekRequest::try_from_http_request(incoming, &["!r:example.org"])
            .map_err(WireError::from)
            .unwrap_err(),
        WireError::TooMany { what: "servers", limit: matrix_peek::wire::MAX_SERVERS }
    );
    let bad_room = http::Request::builder()
        .method("POST")
        .uri("/_matrix/client/v3/peek/not-a-room")
        .body(&b"{}"[..])
        .unwrap();
    assert!(matches!(
        ClientPeekRequest::try_from_http_request(bad_room, &["not-a-room"])
            .map_err(WireError::from),
        Err(WireError::InvalidParam { .. })
    ));
}

#[test]
fn client_unpeek_goes_through_http_both_ways() {
    // R12
    let room = owned_room_id!("!abc:example.org");
    let built = ClientUnpeekRequest::new(room.clone())
        .try_into_http_request::<Vec<u8>>(
            CLIENT_BASE,
            SendAccessToken::IfRequired("token"),
            Cow::Owned(ClientPrefix::R0.supported_versions()),
        )
        .unwrap();
    assert_eq!(built.uri().path(), ClientPrefix::R0.unpeek_path(&room));
    assert_eq!(built.body(), b"{}");
    let parsed = ClientUnpeekRequest::try_from_http_request(request(&built), &[room.as_str()]);
    assert_eq!(parsed.unwrap().room_id, room);
    let not_object = http::Request::builder()
        .method("POST")
        .uri(built.uri().clone())
        .body(&b"null"[..])
        .unwrap();
    assert!(matches!(
        ClientUnpeekRequest::try_from_http_request(not_object, &[room.as_str()])
            .map_err(WireError::from),
        Err(WireError::BadJson(_))
    ));

    let sent = ClientUnpeekResponse::new().try_into_http_response::<Vec<u8>>().unwrap();
    assert_eq!(sent.body(), b"{}");
    assert_eq!(
        ClientUnpeekResponse::try_from_http_response(response(&sent)).unwrap(),
        ClientUnpeekResponse::new()
    );
}

fn msc_response() -> FederationPeekResponse {
    let create = to_raw_value(&serde_json::json!({
        "type": "m.room.create", "state_key": "", "content": {"room_version": "10"},
        "event_id": "$create"
    }))
    .unwrap();
    let message =
        to_raw_value(&serde_json::json!({"type": "m.room.message", "event_id": "$m"})).unwrap();
    FederationPeekResponse::new(
        StateIdMap::from_entries([(event_id!("$m"), [event_id!("$create")])]),
        EventIdList::from_ids([event_id!("$create")]),
        PduList::from_pdus([&*create, &*message]),
        Duration::from_secs(3600),
    )
}

#[test]
fn federation_peek_goes_through_http_both_ways() {
    // R28, R35, R36, R48
    let room = owned_room_id!("!abc:example.org");
    let ver = vec![RoomVersionId::V10, RoomVersionId::V11];
    let built = FederationPeekRequest::new(room.clone(), "p1", ver.clone())
        .try_into_http_request::<Vec<u8>>(RESIDENT, (), ())
        .unwrap();
    assert_eq!(built.method(), http::Method::PUT);
    assert_eq!(
        built.uri().to_string(),
        format!("{RESIDENT}/_matrix/federation/v1/peek/!abc:example.org/p1?ver=10&ver=11")
    );
    assert_eq!(built.body(), b"{}");
    let target = FederationPeekPath::parse(&FederationPrefix::Stable, built.uri().path()).unwrap();
    let parsed =
        FederationPeekRequest::try_from_http_request(request(&built), &target.path_args()).unwrap();
    assert_eq!((parsed.room_id, parsed.peek_id.as_str(), parsed.ver), (room, "p1", ver));

    let answer = msc_response();
    let sent = answer.clone().try_into_http_response::<Vec<u8>>().unwrap();
    assert_eq!(FederationPeekResponse::try_from_http_response(response(&sent)).unwrap(), answer);
    // The lenient reader takes the same answer, and classifies a refusal.
    let any = AnyPeekResponse::from_http_response(&sent).unwrap();
    assert_eq!(any, AnyPeekResponse::from(answer));
    assert_eq!(any.effective_room_version(), Some(RoomVersionId::V10));
    let refused = http::Response::builder()
        .status(403)
        .body(br#"{"errcode":"M_FORBIDDEN","error":"no"}"#.to_vec())
        .unwrap();
    assert_eq!(AnyPeekResponse::from_http_response(&refused), Err(OutboundFailure::Forbidden));
    let garbage = http::Response::new(b"[1]".to_vec());
    assert_eq!(
        AnyPeekResponse::from_http_response(&garbage),
        Err(OutboundFailure::InvalidResponse)
    );
    // A ruma client reading a refusal gets ruma's error, which classifies the same way.
    let err = FederationPeekResponse::try_from_http_response(response(&refused)).unwrap_err();
    let ruma_common::api::error::FromHttpResponseError::Server(e) = err else { panic!("{err}") };
    assert_eq!(OutboundFailure::from(&e), OutboundFailure::Forbidden);
}

#[test]
fn dendrite_and_palpo_answers_are_read_by_the_lenient_reader() {
    for (body, format) in [
        (
            &include_bytes!("../fixtures/dendrite_peek_response.json")[..],
            PeekResponseFormat::Dendrite,
        ),
        (&include_bytes!("../fixtures/palpo_peek_response.json")[..], PeekResponseFormat::Palpo),
    ] {
        let answer = http::Response::new(body);
        assert_eq!(AnyPeekResponse::from_http_response(&answer).unwrap().format, format);
        // ruma's own reader wants the MSC shape.
        assert!(FederationPeekResponse::try_from_http_response(answer).is_err());
    }
}

#[test]
fn federation_renew_and_delete_go_through_http_both_ways() {
    // R41, R42
    let room = owned_room_id!("!abc:example.org");
    let built = FederationRenewRequest::new(room.clone(), "p1")
        .try_into_http_request::<Vec<u8>>(RESIDENT, (), ())
        .unwrap();
    assert_eq!(built.method(), http::Method::POST);
    assert_eq!(built.uri().path(), FederationPrefix::Stable.renew_path(&room, "p1"));
    let target = FederationPeekPath::parse(&FederationPrefix::Stable, built.uri().path()).unwrap();
    assert!(target.is_renew);
    let parsed =
        FederationRenewRequest::try_from_http_request(request(&built), &target.path_args());
    assert_eq!(parsed.unwrap().peek_id.as_str(), "p1");
    let answer = FederationRenewResponse::new(Duration::from_millis(3_600_000));
    let sent = answer.try_into_http_response::<Vec<u8>>().unwrap();
    assert_eq!(FederationRenewResponse::try_from_http_response(response(&sent)).unwrap(), answer);
    assert_eq!(
        AnyRenewResponse::from_http_response(&sent).unwrap().renewal_interval,
        Some(Duration::from_secs(3600))
    );

    let built = FederationUnpeekRequest::new(room.clone(), "p1")
        .try_into_http_request::<Vec<u8>>(RESIDENT, (), ())
        .unwrap();
    assert_eq!(built.method(), http::Method::DELETE);
    assert_eq!(built.uri().path(), FederationPrefix::Stable.peek_path(&room, "p1"));
    let parsed =
        FederationUnpeekRequest::try_from_http_request(request(&built), &[room.as_str(), "p1"]);
    assert_eq!(parsed.unwrap().room_id, room);
    let sent = FederationUnpeekResponse::new().try_into_http_response::<Vec<u8>>().unwrap();
    assert_eq!(sent.body(), b"{}");
    assert!(FederationUnpeekResponse::try_from_http_response(response(&sent)).is_ok());
    // The wrong method is ruma's error, and ours: not this endpoint.
    assert!(matches!(
        FederationRenewRequest::try_from_http_request(request(&built), &[room.as_str(), "p1"])
            .map_err(WireError::from),
        Err(WireError::UnknownPath(_))
    ));
}

#[test]
fn response_types_round_trip_through_serde() {
    // Serialise → parse gives an equal value, for every response a test compares.
    fn again<T: serde::Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }
    let msc = msc_response();
    assert_eq!(FederationPeekResponse::from_slice(&again(&msc)).unwrap(), msc);
    let any = AnyPeekResponse::from(msc);
    assert_eq!(AnyPeekResponse::from_slice(&again(&any)).unwrap(), any);
    for body in [
        &include_bytes!("../fixtures/dendrite_peek_response.json")[..],
        &include_bytes!("../fixtures/palpo_peek_response.json")[..],
    ] {
        let any = AnyPeekResponse::from_slice(body).unwrap();
        assert_eq!(AnyPeekResponse::from_slice(&again(&any)).unwrap(), any);
        let legacy = matrix_peek::wire::LegacyPeekResponse::from_slice(body).unwrap();
        assert_eq!(
            matrix_peek::wire::LegacyPeekResponse::from_slice(&again(&legacy)).unwrap(),
            legacy
        );
        assert_eq!(AnyPeekResponse::from(legacy), any);
    }
    let client = ClientPeekResponse::new(owned_room_id!("!r:e.org"), Timestamp::from_millis(5));
    assert_eq!(ClientPeekResponse::from_slice(&again(&client)).unwrap(), client);
    let renew = FederationRenewResponse::new(Duration::from_millis(u64::MAX));
    assert_eq!(FederationRenewResponse::from_slice(&again(&renew)).unwrap(), renew);
    let lenient = AnyRenewResponse { renewal_interval: Some(Duration::from_secs(1)) };
    assert_eq!(AnyRenewResponse::from_slice(&again(&lenient)).unwrap(), lenient);
}
