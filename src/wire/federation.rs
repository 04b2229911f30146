//! MSC2444's federation endpoints as ruma API types: the peek `PUT` (R28, R35, R48), `POST
//! …/renew` (R41) and `DELETE` (R42), plus the lenient renewal reply and the `expired_peeks`
//! transaction key (R43). Dendrite's and palpo's older response shapes are in [`super::compat`].
//!
//! Each endpoint is a module holding ruma's `Request`/`Response` pair; [`super`] re-exports
//! them under distinct names. Their path is MSC2444's `/_matrix/federation/v1/…` (ruma's
//! federation endpoints have a single path); [`FederationPrefix`](super::FederationPrefix)
//! moves an outgoing request under another prefix, and an incoming one parses under any
//! prefix (ruma takes the path arguments from the router). Authentication is
//! `NoAuthentication` in ruma's terms: X-Matrix signing and its check are the host's (ruma-common
//! has no server-signature scheme).
//!
//! PDUs stay raw; nothing here checks signatures, hashes or auth (see [`super`]).

use std::fmt;
use std::time::Duration;

use ruma_common::exports::http;
use ruma_common::{OwnedRoomId, RoomId, RoomVersionId};
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::json::{from_object, interval_ms, too_many};
use super::{
    MAX_EXPIRED_PEEKS, MAX_PEEK_ID_BYTES, MAX_PEEK_RESPONSE_BYTES, MAX_TRANSACTION_BYTES, MAX_VER,
    WireError,
};

/// `PUT /_matrix/federation/v1/peek/{roomId}/{peekId}?ver=…` (R28, R35, R36, R48).
pub(super) mod peek {
    use std::time::Duration;

    use ruma_common::api::auth_scheme::NoAuthentication;
    use ruma_common::api::{request, response};
    use ruma_common::{OwnedRoomId, RoomVersionId, metadata};
    use serde::{Deserialize, Serialize};

    use super::super::json::interval_ms;
    #[cfg_attr(not(feature = "server"), allow(unused_imports))]
    use super::{default_ver, ver};
    use crate::wire::{EventIdList, ObjectBody, PduList, PeekIdSegment, StateIdMap};

    metadata! {
        method: PUT,
        rate_limited: false,
        authentication: NoAuthentication,
        path: "/_matrix/federation/v1/peek/{room_id}/{peek_id}",
    }

    /// `PUT /_matrix/federation/v1/peek/{roomId}/{peekId}?ver=…` (R28, R48): start (or
    /// re-start) a peek. A ruma endpoint; its path is the stable one (see
    /// [`FederationPrefix`](crate::wire::FederationPrefix) for others). Cap the body at
    /// [`MAX_REQUEST_BODY_BYTES`](crate::wire::MAX_REQUEST_BODY_BYTES) before ruma parses it.
    #[request]
    pub struct Request {
        /// The room.
        #[ruma_api(path)]
        pub room_id: OwnedRoomId,
        /// The peek id the peeking server chose (the resident's `PeekIdPolicy` judges it, R29).
        #[ruma_api(path)]
        pub peek_id: PeekIdSegment,
        /// The room versions the peeking server supports (R33, R48): `ver` may repeat;
        /// **absent means `["1"]`** (the `/make_join` rule); duplicates are dropped keeping the
        /// first; more than [`MAX_VER`](crate::wire::MAX_VER) is an error, and so is an
        /// invalid version. An empty list sends no `ver` (read back as `["1"]`).
        #[ruma_api(query)]
        #[serde(default = "default_ver", deserialize_with = "ver")]
        pub ver: Vec<RoomVersionId>,
        /// The body: any JSON object (R36).
        #[ruma_api(body)]
        pub body: ObjectBody,
    }

    /// The 200 body of a peek `PUT` in the MSC-final shape (R35):
    ///
    /// ```json
    /// { "latest_event_state_ids": { "$extremity": ["$state", …] },
    ///   "common_state_ids": ["$state", …],
    ///   "events": [ { …PDU… } ],
    ///   "renewal_interval": 3600000 }
    /// ```
    ///
    /// The state after extremity X is `common_state_ids ∪ latest_event_state_ids[X]`; `events`
    /// holds every referenced PDU and its auth chain. There is **no `room_version`**: derive it
    /// from the create event
    /// ([`AnyPeekResponse::room_version_from_create`](crate::wire::AnyPeekResponse)). A host
    /// must validate all of it like a `send_join` response (R49); this crate does not. Peers
    /// that speak Dendrite's or palpo's shape are read by
    /// [`AnyPeekResponse`](crate::wire::AnyPeekResponse) instead of ruma's
    /// `IncomingResponse`, which wants this shape.
    #[response]
    #[derive(PartialEq, Eq, Serialize, Deserialize)]
    pub struct Response {
        /// Forward extremity → ids of the state after it, minus `common_state_ids`.
        pub latest_event_state_ids: StateIdMap,
        /// Ids of the state common to every extremity.
        pub common_state_ids: EventIdList,
        /// The PDUs: extremities, state, and their auth chains (format per room version).
        pub events: PduList,
        /// How long the peek lives without a renewal, in milliseconds on the wire. Any `u64`
        /// is accepted; the outbound machine clamps it (R53).
        #[serde(with = "interval_ms")]
        pub renewal_interval: Duration,
    }

    impl Request {
        /// A peek of `room_id` as `peek_id`, supporting the room versions `ver`.
        /// `room_id` is an owned id or anything that converts into one, such as the
        /// [`SharedRoomId`](crate::SharedRoomId) of an [`OutboundRequest`](crate::OutboundRequest).
        pub fn new(
            room_id: impl Into<OwnedRoomId>,
            peek_id: impl Into<PeekIdSegment>,
            ver: Vec<RoomVersionId>,
        ) -> Self {
            let room_id = room_id.into();
            Request { room_id, peek_id: peek_id.into(), ver, body: ObjectBody {} }
        }
    }

    impl Response {
        /// A peek response.
        pub fn new(
            latest_event_state_ids: StateIdMap,
            common_state_ids: EventIdList,
            events: PduList,
            renewal_interval: Duration,
        ) -> Self {
            Response { latest_event_state_ids, common_state_ids, events, renewal_interval }
        }

        /// Parses a response body (at most
        /// [`MAX_PEEK_RESPONSE_BYTES`](crate::wire::MAX_PEEK_RESPONSE_BYTES), a JSON object);
        /// unknown fields are ignored.
        pub fn from_slice(body: &[u8]) -> Result<Self, crate::wire::WireError> {
            super::from_object(body, crate::wire::MAX_PEEK_RESPONSE_BYTES)
        }
    }
}

/// `POST /_matrix/federation/v1/peek/{roomId}/{peekId}/renew` (R41).
pub(super) mod renew {
    use std::time::Duration;

    use ruma_common::api::auth_scheme::NoAuthentication;
    use ruma_common::api::{request, response};
    use ruma_common::{OwnedRoomId, metadata};
    use serde::{Deserialize, Serialize};

    use super::super::json::interval_ms;
    use crate::wire::{ObjectBody, PeekIdSegment};

    metadata! {
        method: POST,
        rate_limited: false,
        authentication: NoAuthentication,
        path: "/_matrix/federation/v1/peek/{room_id}/{peek_id}/renew",
    }

    /// `POST /_matrix/federation/v1/peek/{roomId}/{peekId}/renew` (R41): keep a peek alive.
    #[request]
    pub struct Request {
        /// The room.
        #[ruma_api(path)]
        pub room_id: OwnedRoomId,
        /// The peek id.
        #[ruma_api(path)]
        pub peek_id: PeekIdSegment,
        /// The body: any JSON object.
        #[ruma_api(body)]
        pub body: ObjectBody,
    }

    /// The 200 body of a renewal (R41): `{"renewal_interval": ms}`. Peers that answer `{}` or a
    /// whole peek response are read by [`AnyRenewResponse`](crate::wire::AnyRenewResponse).
    #[response]
    #[derive(Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Response {
        /// The new interval; any `u64` of milliseconds is accepted (the machine clamps, R53).
        #[serde(with = "interval_ms")]
        pub renewal_interval: Duration,
    }

    impl Request {
        /// A renewal of `peek_id` on `room_id`.
        /// `room_id` converts as in the peek request's `new`.
        pub fn new(room_id: impl Into<OwnedRoomId>, peek_id: impl Into<PeekIdSegment>) -> Self {
            let room_id = room_id.into();
            Request { room_id, peek_id: peek_id.into(), body: ObjectBody {} }
        }
    }

    impl Response {
        /// A renewal granting `renewal_interval`.
        pub fn new(renewal_interval: Duration) -> Self {
            Response { renewal_interval }
        }

        /// Parses a response body strictly (at most
        /// [`MAX_REQUEST_BODY_BYTES`](crate::wire::MAX_REQUEST_BODY_BYTES)).
        pub fn from_slice(body: &[u8]) -> Result<Self, crate::wire::WireError> {
            super::from_object(body, crate::wire::MAX_REQUEST_BODY_BYTES)
        }
    }
}

/// `DELETE /_matrix/federation/v1/peek/{roomId}/{peekId}` (R42).
pub(super) mod unpeek {
    use ruma_common::api::auth_scheme::NoAuthentication;
    use ruma_common::api::{request, response};
    use ruma_common::{OwnedRoomId, metadata};
    use serde::{Deserialize, Serialize};

    use crate::wire::PeekIdSegment;

    metadata! {
        method: DELETE,
        rate_limited: false,
        authentication: NoAuthentication,
        path: "/_matrix/federation/v1/peek/{room_id}/{peek_id}",
    }

    /// `DELETE /_matrix/federation/v1/peek/{roomId}/{peekId}` (R42, R55): end a peek.
    #[request]
    pub struct Request {
        /// The room.
        #[ruma_api(path)]
        pub room_id: OwnedRoomId,
        /// The peek id.
        #[ruma_api(path)]
        pub peek_id: PeekIdSegment,
    }

    /// The empty 200 body of the `DELETE` (R42): `{}`.
    #[response]
    #[derive(Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Response {}

    impl Request {
        /// The end of `peek_id` on `room_id`.
        /// `room_id` converts as in the peek request's `new`.
        pub fn new(room_id: impl Into<OwnedRoomId>, peek_id: impl Into<PeekIdSegment>) -> Self {
            let room_id = room_id.into();
            Request { room_id, peek_id: peek_id.into() }
        }
    }

    impl Response {
        /// `{}`.
        pub fn new() -> Self {
            Response {}
        }
    }
}

// Both are used by the `Deserialize` of the `server` feature's incoming request.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
fn default_ver() -> Vec<RoomVersionId> {
    vec![RoomVersionId::V1]
}

/// The `ver` query values, capped at [`MAX_VER`] and deduplicated (ruma's query parser,
/// `serde_html_form`, has collected them; the URL's length bounds that).
#[cfg_attr(not(feature = "server"), allow(dead_code))]
fn ver<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RoomVersionId>, D::Error> {
    struct VerVisitor;
    impl<'de> Visitor<'de> for VerVisitor {
        type Value = Vec<RoomVersionId>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("room versions")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<RoomVersionId> = Vec::new();
            let mut seen = 0usize;
            while let Some(v) = seq.next_element::<RoomVersionId>()? {
                seen += 1;
                if seen > MAX_VER {
                    return Err(too_many("ver", MAX_VER));
                }
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            if out.is_empty() {
                out.push(RoomVersionId::V1);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(VerVisitor)
}

/// A renewal reply from any peer, leniently: the MSC's `{"renewal_interval": ms}`, the
/// September-2020 draft's `{}` (a re-`PUT` of a peek that has not lapsed, as Dendrite's draft
/// describes), or a whole peek response (palpo renews by re-`PUT` and gets the full snapshot
/// back). Only `renewal_interval` is read; `None` means the peer did not say, so the caller
/// keeps its previous interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnyRenewResponse {
    /// The interval, when the peer sent one.
    #[serde(default, with = "interval_ms::option", skip_serializing_if = "Option::is_none")]
    pub renewal_interval: Option<Duration>,
}

impl AnyRenewResponse {
    /// Parses a renewal or re-`PUT` reply (at most [`MAX_PEEK_RESPONSE_BYTES`], since a re-`PUT`
    /// may carry the full state); every other field is skipped without being stored.
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object(body, MAX_PEEK_RESPONSE_BYTES)
    }

    /// Reads a peer's answer to a renewal (or re-`PUT`): a 2xx body of any of the shapes
    /// above, or the classified failure
    /// ([`OutboundFailure::from_response`](crate::OutboundFailure::from_response) for an error
    /// status, `InvalidResponse` for a 2xx body that does not parse).
    pub fn from_http_response<B: AsRef<[u8]>>(
        response: &http::Response<B>,
    ) -> Result<Self, crate::OutboundFailure> {
        if !response.status().is_success() {
            return Err(crate::OutboundFailure::from_http_response(response));
        }
        AnyRenewResponse::from_slice(response.body().as_ref())
            .map_err(|_| crate::OutboundFailure::InvalidResponse)
    }
}

/// One entry of `expired_peeks` in a `/send` transaction (R43, R54).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExpiredPeek {
    /// The room of the expired peek.
    pub room_id: OwnedRoomId,
    /// The peek id the peeking server chose.
    pub peek_id: String,
}

/// The `expired_peeks` fragment of `PUT /_matrix/federation/v1/send/{txnId}` (R43):
/// `{"expired_peeks": [{"room_id": …, "peek_id": …}]}`.
///
/// A resident server serialises it and merges the key into its transaction (for example with
/// `#[serde(flatten)]`), sending `"pdus": []` when it has no PDUs. A peeking server reads it
/// with [`ExpiredPeeks::from_transaction`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiredPeeks {
    /// The expired peeks; an absent key is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expired_peeks: Vec<ExpiredPeek>,
}

impl ExpiredPeeks {
    /// Reads `expired_peeks` from a whole raw `/send` body (at most
    /// [`MAX_TRANSACTION_BYTES`]), skipping every other key (`pdus`, `edus`, …) without
    /// storing it.
    ///
    /// Leniency: an entry that is not `{room_id: <valid room id>, peek_id: <string of 1–255
    /// bytes>}` is skipped, so one bad entry neither fails the transaction nor hides the others.
    /// A body that is not a JSON object, an `expired_peeks` that is not an array, or more than
    /// [`MAX_EXPIRED_PEEKS`] entries is an error.
    pub fn from_transaction(body: &[u8]) -> Result<Self, WireError> {
        from_object::<TxnProbe>(body, MAX_TRANSACTION_BYTES)
            .map(|p| ExpiredPeeks { expired_peeks: p.expired_peeks })
    }
}

#[derive(Deserialize)]
struct TxnProbe {
    #[serde(default, deserialize_with = "lenient_expired")]
    expired_peeks: Vec<ExpiredPeek>,
}

fn lenient_expired<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ExpiredPeek>, D::Error> {
    struct ListVisitor;
    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<ExpiredPeek>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of expired peeks")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            let mut seen = 0usize;
            while let Some(entry) = seq.next_element::<MaybeExpired>()? {
                seen += 1;
                if seen > MAX_EXPIRED_PEEKS {
                    return Err(too_many("expired_peeks", MAX_EXPIRED_PEEKS));
                }
                if let Some(e) = entry.0 {
                    out.push(e);
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(ListVisitor)
}

/// One entry, or `None` when it is malformed (skipped, never an error).
struct MaybeExpired(Option<ExpiredPeek>);

impl<'de> Deserialize<'de> for MaybeExpired {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = MaybeExpired;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an expired peek")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut room, mut peek) = (None, None);
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "room_id" => room = Some(map.next_value::<AnyValue>()?.0),
                        "peek_id" => peek = Some(map.next_value::<AnyValue>()?.0),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let room = room.flatten().and_then(|r| RoomId::parse(r).ok());
                let peek = peek.flatten().filter(|p| !p.is_empty() && p.len() <= MAX_PEEK_ID_BYTES);
                Ok(MaybeExpired(
                    room.zip(peek).map(|(room_id, peek_id)| ExpiredPeek { room_id, peek_id }),
                ))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeExpired(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeExpired(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeExpired(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeExpired(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeExpired(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MaybeExpired(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(MaybeExpired(None))
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

/// A string value, or `None` for any other JSON value (consumed without storing it).
struct AnyValue(Option<String>);

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<AnyValue, E> {
                Ok(AnyValue((v.len() <= MAX_PEEK_ID_BYTES).then(|| v.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyValue(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyValue(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<AnyValue, E> {
                Ok(AnyValue(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<AnyValue, E> {
                Ok(AnyValue(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<AnyValue, E> {
                Ok(AnyValue(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<AnyValue, E> {
                Ok(AnyValue(None))
            }
            fn visit_unit<E>(self) -> Result<AnyValue, E> {
                Ok(AnyValue(None))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_renew_response_reads_msc_empty_and_full_shapes() {
        // R41, R53
        let r = AnyRenewResponse::from_slice(br#"{"renewal_interval":3600000}"#).unwrap();
        assert_eq!(r.renewal_interval, Some(Duration::from_secs(3600)));
        assert_eq!(AnyRenewResponse::from_slice(b"{}").unwrap().renewal_interval, None);
        let r = AnyRenewResponse::from_slice(
            br#"{"room_version":"10","state":[{}],"auth_chain":[],"renewal_interval":3600000000}"#,
        )
        .unwrap();
        assert_eq!(r.renewal_interval, Some(Duration::from_millis(3_600_000_000)));
        assert!(renew::Response::from_slice(b"{}").is_err());
    }

    #[test]
    fn expired_peeks_are_read_from_a_send_body_skipping_bad_entries() {
        // R43, R54
        let body = br#"{"origin":"a.org","origin_server_ts":1,"pdus":[{"type":"x"}],"edus":[],
            "expired_peeks":[{"room_id":"!r:a.org","peek_id":"abc"},{"room_id":"bad","peek_id":"x"},
            {"room_id":"!r:a.org"},7,[1],{"room_id":"!s:a.org","peek_id":"d","extra":{"a":[1]}}]}"#;
        let got = ExpiredPeeks::from_transaction(body).unwrap().expired_peeks;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].peek_id, "abc");
        assert_eq!(got[1].room_id.as_str(), "!s:a.org");
        assert!(
            ExpiredPeeks::from_transaction(br#"{"pdus":[]}"#).unwrap().expired_peeks.is_empty()
        );
        assert!(matches!(
            ExpiredPeeks::from_transaction(br#"{"expired_peeks":{}}"#),
            Err(WireError::BadJson(_))
        ));
        let many: Vec<&str> = (0..=MAX_EXPIRED_PEEKS).map(|_| "1").collect();
        let body = format!(r#"{{"expired_peeks":[{}]}}"#, many.join(","));
        assert_eq!(
            ExpiredPeeks::from_transaction(body.as_bytes()),
            Err(WireError::TooMany { what: "expired_peeks", limit: MAX_EXPIRED_PEEKS })
        );
    }
}
