//! The MSC texts' example bodies and the Dendrite/palpo fixtures: parsed, checked and
//! re-serialised.

use std::time::Duration;

use matrix_peek::Timestamp;
use matrix_peek::wire::{
    AnyPeekResponse, AnyRenewResponse, ClientPeekBody, ClientPeekResponse, ExpiredPeeks,
    Extremities, FederationPeekResponse, FederationRenewResponse, LegacyPeekResponse, ObjectBody,
    PduList, PeekResponseFormat, SYNC_ROOMS_PEEK_KEY, WireError,
};
use ruma_common::{RoomVersionId, owned_room_id};
use serde_json::{Value, json};

fn value(s: impl AsRef<[u8]>) -> Value {
    serde_json::from_slice(s.as_ref()).unwrap()
}

// ---- MSC2753 examples (docs/requirements.md#r9) ----

#[test]
fn msc2753_peek_request_example_parses_and_round_trips() {
    // R2
    let body = br#"{ "servers": ["server1", "server2"] }"#;
    let req = ClientPeekBody::from_slice(body).unwrap();
    assert_eq!(req.servers.iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["server1", "server2"]);
    assert_eq!(value(serde_json::to_vec(&req).unwrap()), value(body));
    assert_eq!(ClientPeekBody::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap(), req);
}

#[test]
fn msc2753_peek_response_example_parses_and_round_trips() {
    // R9. The MSC writes "<resolved room id>" as a placeholder; a real id stands in for it.
    let body = br#"{ "room_id": "!resolved:example.org", "peek_expiry_ts": 1605534210000 }"#;
    let resp = ClientPeekResponse::from_slice(body).unwrap();
    assert_eq!(resp.room_id, owned_room_id!("!resolved:example.org"));
    assert_eq!(resp.peek_expiry_ts, Timestamp::from_millis(1_605_534_210_000));
    assert_eq!(value(serde_json::to_vec(&resp).unwrap()), value(body));
    // Both fields are required (R9): Dendrite's `{room_id}` alone is not a valid reply.
    assert!(matches!(
        ClientPeekResponse::from_slice(br#"{"room_id":"!r:e.org"}"#),
        Err(WireError::BadJson(_))
    ));
}

#[test]
fn msc2753_unpeek_body_is_an_object_and_sync_key_is_peek() {
    // R12, R14
    assert!(ObjectBody::from_slice(b"{}").is_ok());
    assert_eq!(ObjectBody::from_slice(b"[]"), Err(WireError::NotObject));
    assert_eq!(SYNC_ROOMS_PEEK_KEY, "peek");
    let sync = json!({"rooms": {"join": {}, "leave": {}, "peek": {"!r:e.org": {}}}});
    assert!(sync["rooms"][SYNC_ROOMS_PEEK_KEY].is_object());
}

// ---- MSC2444 examples (docs/requirements.md#r35) ----

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
    let resp = FederationPeekResponse::from_slice(MSC2444_PEEK_RESPONSE.as_bytes()).unwrap();
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
    assert!(ObjectBody::from_slice(b"{}").is_ok());
    assert_eq!(serde_json::to_string(&ObjectBody::default()).unwrap(), "{}");

    let renew = br#"{ "renewal_interval": 3600000 }"#;
    let r = FederationRenewResponse::from_slice(renew).unwrap();
    assert_eq!(r.renewal_interval, Duration::from_millis(3_600_000));
    assert_eq!(value(serde_json::to_vec(&r).unwrap()), value(renew));

    // The MSC writes "{roomId}" / "{peekId}"; real values stand in for the placeholders.
    let expiry = br#"{ "expired_peeks": [ { "room_id": "!somewhere:example.org", "peek_id": "abc=_-.9" } ] }"#;
    let e = ExpiredPeeks::from_transaction(expiry).unwrap();
    assert_eq!(e.expired_peeks[0].room_id.as_str(), "!somewhere:example.org");
    assert_eq!(e.expired_peeks[0].peek_id, "abc=_-.9");
    assert_eq!(value(serde_json::to_vec(&e).unwrap()), value(expiry));
}

// ---- peers' shapes (docs/architecture.md §9.3) ----

#[test]
fn dendrite_fixture_parses_with_version_counts_and_interval() {
    let body = include_bytes!("../fixtures/dendrite_peek_response.json");
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
    let body = include_bytes!("../fixtures/palpo_peek_response.json");
    let any = AnyPeekResponse::from_slice(body).unwrap();
    assert_eq!(any.format, PeekResponseFormat::Palpo);
    assert_eq!(any.room_version, Some(RoomVersionId::V11));
    assert_eq!(any.room_version_from_create(), Some(RoomVersionId::V11));
    assert_eq!(any.state.len(), 4);
    assert_eq!(any.auth_chain.len(), 2);
    assert!(matches!(any.extremities, Extremities::Events(ref e) if e.len() == 3));
    assert_eq!(any.renewal_interval, Duration::from_secs(3600));

    let legacy = LegacyPeekResponse::from_slice(body).unwrap();
    assert_eq!(legacy.messages.as_ref().map(PduList::len), Some(3));
    assert_eq!(value(serde_json::to_vec(&legacy).unwrap()), value(body));
}

#[test]
fn dendrite_renewal_interval_and_empty_renewal_reply_parse() {
    // R53: up to u64::MAX without overflow; Sept-draft `{}` renewal reply.
    let r = FederationRenewResponse::from_slice(br#"{"renewal_interval":3600000000}"#).unwrap();
    assert_eq!(r.renewal_interval.as_millis(), 3_600_000_000);
    let r = FederationRenewResponse::from_slice(br#"{"renewal_interval":18446744073709551615}"#)
        .unwrap();
    assert_eq!(r.renewal_interval, Duration::from_millis(u64::MAX));
    assert_eq!(AnyRenewResponse::from_slice(b"{}").unwrap().renewal_interval, None);
    assert!(FederationRenewResponse::from_slice(br#"{"renewal_interval":-5}"#).is_err());
}
