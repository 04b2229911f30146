//! The MSC texts' example bodies, the Dendrite/palpo fixtures, `ver` parsing and paths.

use std::time::Duration;

use matrix_peek::Timestamp;
use matrix_peek::wire::federation::PeekResponse as FedPeekResponse;
use matrix_peek::wire::{
    AnyPeekResponse, AnyRenewResponse, ClientPrefix, ExpiredPeeks, Extremities, FederationPeekPath,
    FederationPrefix, LegacyPeekResponse, MAX_VER, PeekBody, PeekRequest, PeekResponseFormat,
    RenewResponse, SYNC_ROOMS_PEEK_KEY, UnpeekRequest, WireError, client, parse_ver,
};
use ruma_common::{RoomId, RoomOrAliasId, RoomVersionId, owned_room_id};
use serde_json::{Value, json};

fn value(s: impl AsRef<[u8]>) -> Value {
    serde_json::from_slice(s.as_ref()).unwrap()
}

// ---- MSC2753 examples (msc.md §2.2) ----

#[test]
fn msc2753_peek_request_example_parses_and_round_trips() {
    // R2
    let body = br#"{ "servers": ["server1", "server2"] }"#;
    let req = PeekRequest::from_slice(body).unwrap();
    assert_eq!(req.servers.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["server1", "server2"]);
    assert_eq!(value(serde_json::to_vec(&req).unwrap()), value(body));
    assert_eq!(PeekRequest::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap(), req);
}

#[test]
fn msc2753_peek_response_example_parses_and_round_trips() {
    // R9. The MSC writes "<resolved room id>" as a placeholder; a real id stands in for it.
    let body = br#"{ "room_id": "!resolved:example.org", "peek_expiry_ts": 1605534210000 }"#;
    let resp = client::PeekResponse::from_slice(body).unwrap();
    assert_eq!(resp.room_id, owned_room_id!("!resolved:example.org"));
    assert_eq!(resp.peek_expiry_ts, Timestamp::from_millis(1_605_534_210_000));
    assert_eq!(value(serde_json::to_vec(&resp).unwrap()), value(body));
    // Both fields are required (R9): Dendrite's `{room_id}` alone is not a valid reply.
    assert!(matches!(
        client::PeekResponse::from_slice(br#"{"room_id":"!r:e.org"}"#),
        Err(WireError::BadJson(_))
    ));
}

#[test]
fn msc2753_unpeek_body_is_an_object_and_sync_key_is_peek() {
    // R12, R14
    assert!(UnpeekRequest::from_slice(b"{}").is_ok());
    assert_eq!(UnpeekRequest::from_slice(b"[]"), Err(WireError::NotObject));
    assert_eq!(SYNC_ROOMS_PEEK_KEY, "peek");
    let sync = json!({"rooms": {"join": {}, "leave": {}, "peek": {"!r:e.org": {}}}});
    assert!(sync["rooms"][SYNC_ROOMS_PEEK_KEY].is_object());
}

// ---- MSC2444 examples (msc.md §3.2) ----

const MSC2444_PEEK_RESPONSE: &str = r#"{
    "latest_event_state_ids": {
      "$fwd_extremity_1": ["$state_event_3", "$state_event_4"],
      "$fwd_extremity_2": ["$state_event_5", "$state_event_6"]
    },
    "common_state_ids": ["$state_event_1", "$state_event_2"],
    "events": [ { "type": "m.room.member", "room_id": "!somewhere:example.org", "content": { } } ],
    "renewal_interval": 3600000
  }"#;

#[test]
fn msc2444_peek_response_example_parses_and_round_trips() {
    // R35
    let resp = FedPeekResponse::from_slice(MSC2444_PEEK_RESPONSE.as_bytes()).unwrap();
    assert_eq!(resp.latest_event_state_ids.len(), 2);
    assert_eq!(resp.common_state_ids.len(), 2);
    assert_eq!(resp.events.len(), 1);
    assert_eq!(resp.renewal_interval, Duration::from_secs(3600));
    assert_eq!(value(serde_json::to_vec(&resp).unwrap()), value(MSC2444_PEEK_RESPONSE));

    let any = AnyPeekResponse::from_slice(MSC2444_PEEK_RESPONSE.as_bytes()).unwrap();
    assert_eq!(any.format, PeekResponseFormat::Msc);
    assert_eq!(any.room_version, None); // R49: no room_version in the final shape
    assert!(matches!(any.extremities, Extremities::Ids(ref ids) if ids.len() == 2));
    assert_eq!(any.state_ids.unwrap().common_state_ids.len(), 2);
}

#[test]
fn msc2444_request_renew_and_expiry_examples_parse_and_round_trip() {
    // R36, R41, R43
    assert!(PeekBody::from_slice(b"{}").is_ok());
    assert_eq!(serde_json::to_string(&PeekBody::default()).unwrap(), "{}");

    let renew = br#"{ "renewal_interval": 3600000 }"#;
    let r = RenewResponse::from_slice(renew).unwrap();
    assert_eq!(r.renewal_interval, Duration::from_millis(3_600_000));
    assert_eq!(value(serde_json::to_vec(&r).unwrap()), value(renew));

    // The MSC writes "{roomId}" / "{peekId}"; real values stand in for the placeholders.
    let expiry = br#"{ "expired_peeks": [ { "room_id": "!somewhere:example.org", "peek_id": "abc=_-.9" } ] }"#;
    let e = ExpiredPeeks::from_transaction(expiry).unwrap();
    assert_eq!(e.expired_peeks[0].room_id.as_str(), "!somewhere:example.org");
    assert_eq!(e.expired_peeks[0].peek_id, "abc=_-.9");
    assert_eq!(value(serde_json::to_vec(&e).unwrap()), value(expiry));
}

// ---- peers' shapes (dendrite.md appendix, peers.md §6) ----

#[test]
fn dendrite_fixture_parses_with_version_counts_and_interval() {
    let body = include_bytes!("fixtures/dendrite_peek_response.json");
    let any = AnyPeekResponse::from_slice(body).unwrap();
    assert_eq!(any.format, PeekResponseFormat::Dendrite);
    assert_eq!(any.room_version, Some(RoomVersionId::V10));
    assert_eq!(any.effective_room_version(), Some(RoomVersionId::V10));
    assert_eq!(any.state.len(), 5);
    assert_eq!(any.auth_chain.len(), 3);
    assert!(matches!(any.extremities, Extremities::Events(ref e) if e.len() == 1));
    // Dendrite's 1000 h (a unit bug) parses unclamped; the outbound machine clamps (R53).
    assert_eq!(any.renewal_interval, Duration::from_millis(3_600_000_000));
    assert_eq!(any.pdus().count(), 9);

    let legacy = LegacyPeekResponse::from_slice(body).unwrap();
    assert!(legacy.latest_event.is_some() && legacy.messages.is_none());
    assert_eq!(value(serde_json::to_vec(&legacy).unwrap()), value(body));
    // A renewal by re-PUT (Sept draft) reads the interval out of a full response too.
    let renew = AnyRenewResponse::from_slice(body).unwrap();
    assert_eq!(renew.renewal_interval, Some(Duration::from_millis(3_600_000_000)));
}

#[test]
fn palpo_fixture_parses_with_version_counts_and_interval() {
    let body = include_bytes!("fixtures/palpo_peek_response.json");
    let any = AnyPeekResponse::from_slice(body).unwrap();
    assert_eq!(any.format, PeekResponseFormat::Palpo);
    assert_eq!(any.room_version, Some(RoomVersionId::V11));
    assert_eq!(any.room_version_from_create(), Some(RoomVersionId::V11));
    assert_eq!(any.state.len(), 4);
    assert_eq!(any.auth_chain.len(), 2);
    assert!(matches!(any.extremities, Extremities::Events(ref e) if e.len() == 3));
    assert_eq!(any.renewal_interval, Duration::from_secs(3600));

    let legacy = LegacyPeekResponse::from_slice(body).unwrap();
    assert_eq!(legacy.messages.as_ref().map(Vec::len), Some(3));
    assert_eq!(value(serde_json::to_vec(&legacy).unwrap()), value(body));
}

#[test]
fn dendrite_renewal_interval_and_empty_renewal_reply_parse() {
    // R53: up to u64::MAX without overflow; Sept-draft `{}` renewal reply.
    let r = RenewResponse::from_slice(br#"{"renewal_interval":3600000000}"#).unwrap();
    assert_eq!(r.renewal_interval.as_millis(), 3_600_000_000);
    let r = RenewResponse::from_slice(br#"{"renewal_interval":18446744073709551615}"#).unwrap();
    assert_eq!(r.renewal_interval, Duration::from_millis(u64::MAX));
    assert_eq!(AnyRenewResponse::from_slice(b"{}").unwrap().renewal_interval, None);
    assert!(RenewResponse::from_slice(br#"{"renewal_interval":-5}"#).is_err());
}

// ---- ver (R33, R48) ----

#[test]
fn ver_is_repeatable_decoded_defaulted_and_bounded() {
    // R33
    assert_eq!(parse_ver("ver=9&ver=10").unwrap(), [RoomVersionId::V9, RoomVersionId::V10]);
    assert_eq!(
        parse_ver("?ver=9&foo=bar&ver=10&ver=9").unwrap(),
        [RoomVersionId::V9, RoomVersionId::V10]
    );
    assert_eq!(parse_ver("ver=%31%32").unwrap(), [RoomVersionId::V12]);
    assert_eq!(parse_ver("ver=org.example%2Dv1").unwrap()[0].as_str(), "org.example-v1");
    // `+` is a space in form encoding, so it makes an invalid version; `%2B` is a real `+`,
    // which room versions may not contain either.
    assert!(matches!(parse_ver("ver=a+b"), Err(WireError::InvalidParam { name: "ver", .. })));
    assert!(matches!(parse_ver("ver=a%2Bb"), Err(WireError::InvalidParam { name: "ver", .. })));
    assert_eq!(parse_ver("").unwrap(), [RoomVersionId::V1]);
    assert_eq!(parse_ver("other=1").unwrap(), [RoomVersionId::V1]);
    assert!(matches!(parse_ver("ver=%FF"), Err(WireError::InvalidParam { .. })));

    let many = vec!["ver=10"; 10_000].join("&");
    assert_eq!(parse_ver(&many), Err(WireError::TooMany { what: "ver", limit: MAX_VER }));
    let at_cap = vec!["ver=10"; MAX_VER].join("&");
    assert_eq!(parse_ver(&at_cap).unwrap(), [RoomVersionId::V10]);
}

// ---- paths (R1, R12, R28, R41, R42) ----

#[test]
fn client_paths_cover_three_prefixes_and_encode_segments() {
    // R1, R12
    let alias = <&RoomOrAliasId>::try_from("#lobby:example.org").unwrap();
    assert_eq!(ClientPrefix::V3.peek_path(alias), "/_matrix/client/v3/peek/%23lobby%3Aexample.org");
    let room = <&RoomId>::try_from("!abc:example.org").unwrap();
    assert_eq!(
        ClientPrefix::Unstable.unpeek_path(room),
        "/_matrix/client/unstable/org.matrix.msc2753/rooms/%21abc%3Aexample.org/unpeek"
    );
    assert_eq!(
        ClientPrefix::R0.peek_path(room.into()),
        "/_matrix/client/r0/peek/%21abc%3Aexample.org"
    );
}

#[test]
fn federation_paths_round_trip_through_the_parser() {
    // R28, R41, R42, R48
    let room = <&RoomId>::try_from("!abc:example.org").unwrap();
    for prefix in [
        FederationPrefix::Stable,
        FederationPrefix::Unstable,
        FederationPrefix::Custom("/custom/fed/".into()),
    ] {
        for peek_id in ["abc=_-.", "!abc:example.org", "peek_01J0000000000000000000000"] {
            let put = prefix.peek_path(room, peek_id);
            let parsed = FederationPeekPath::parse(&prefix, &put).unwrap();
            assert_eq!(
                (parsed.room_id.as_str(), parsed.peek_id.as_str(), parsed.is_renew),
                ("!abc:example.org", peek_id, false)
            );
            let renew = prefix.renew_path(room, peek_id);
            assert!(FederationPeekPath::parse(&prefix, &renew).unwrap().is_renew);
            let with_ver = prefix.peek_path_with_ver(room, peek_id, &[RoomVersionId::V10]);
            let (path, query) = with_ver.split_once('?').unwrap();
            assert_eq!(path, put);
            assert_eq!(parse_ver(query).unwrap(), [RoomVersionId::V10]);
            assert!(!FederationPeekPath::parse(&prefix, &with_ver).unwrap().is_renew);
        }
    }
    assert_eq!(
        FederationPrefix::Stable.peek_path(room, "a1"),
        "/_matrix/federation/v1/peek/%21abc%3Aexample.org/a1"
    );
}

#[test]
fn federation_path_parser_rejects_other_paths_with_typed_errors() {
    let p = FederationPrefix::Stable;
    let bad = |s: &str| FederationPeekPath::parse(&p, s).unwrap_err();
    assert!(matches!(bad("/_matrix/federation/v1/send/1"), WireError::UnknownPath(_)));
    assert!(matches!(bad("/_matrix/federation/v1/peek/!a:b"), WireError::UnknownPath(_)));
    assert!(matches!(bad("/_matrix/federation/v1/peek/!a:b/x/other"), WireError::UnknownPath(_)));
    assert!(matches!(bad("/_matrix/federation/v1/peek/!a:b/x/renew/y"), WireError::UnknownPath(_)));
    assert!(matches!(bad("/_matrix/federation/v1/peek/nope/x"), WireError::InvalidParam { .. }));
    assert_eq!(bad("/_matrix/federation/v1/peek/!a:b/"), WireError::InvalidPeekId);
    let long = format!("/_matrix/federation/v1/peek/!a:b/{}", "x".repeat(256));
    assert_eq!(bad(&long), WireError::InvalidPeekId);
    // The unstable prefix does not match stable paths.
    assert!(matches!(
        FederationPeekPath::parse(
            &FederationPrefix::Unstable,
            "/_matrix/federation/v1/peek/!a:b/x"
        ),
        Err(WireError::UnknownPath(_))
    ));
}
