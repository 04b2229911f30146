//! MSC2444 federation bodies in the final text's shape: the `PUT` body, the peek response
//! (R35), the renewal response (R41) and the `expired_peeks` transaction key (R43).
//! Dendrite's and palpo's older response shapes are in [`super::compat`].
//!
//! PDUs stay raw JSON; nothing here checks signatures, hashes or auth (see [`super`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ruma_common::{OwnedEventId, OwnedRoomId, RoomId};
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::json::{TOO_MANY, from_object, interval_ms, retype_too_many};
use super::{
    MAX_EXPIRED_PEEKS, MAX_PEEK_ID_BYTES, MAX_PEEK_RESPONSE_BYTES, MAX_REQUEST_BODY_BYTES,
    MAX_TRANSACTION_BYTES, WireError,
};

/// The body of `PUT /_matrix/federation/v1/peek/{roomId}/{peekId}` (and of `…/renew`): `{}`
/// (R36, R48). Unknown fields (future filters) are ignored; a non-object is rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PeekBody {}

impl PeekBody {
    /// Checks a request body (at most [`MAX_REQUEST_BODY_BYTES`]) is a JSON object.
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object::<IgnoredAny>(body, MAX_REQUEST_BODY_BYTES).map(|_| PeekBody {})
    }
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
/// holds every referenced PDU and its auth chain. There is **no `room_version`**: derive it from
/// the create event ([`AnyPeekResponse::room_version_from_create`](super::AnyPeekResponse)).
/// A host must validate all of it like a `send_join` response (R49); this crate does not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeekResponse {
    /// Forward extremity → ids of the state after it, minus `common_state_ids`.
    pub latest_event_state_ids: BTreeMap<OwnedEventId, Vec<OwnedEventId>>,
    /// Ids of the state common to every extremity.
    pub common_state_ids: Vec<OwnedEventId>,
    /// The PDUs: extremities, state, and their auth chains (format per room version).
    pub events: Vec<Box<RawValue>>,
    /// How long the peek lives without a renewal, in milliseconds on the wire. Any `u64`
    /// is accepted; the outbound machine clamps it (R53).
    #[serde(with = "interval_ms")]
    pub renewal_interval: Duration,
}

impl PeekResponse {
    /// Parses a response body (at most [`MAX_PEEK_RESPONSE_BYTES`]); unknown fields ignored.
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object(body, MAX_PEEK_RESPONSE_BYTES)
    }
}

/// The 200 body of `POST …/peek/{roomId}/{peekId}/renew` (R41): `{"renewal_interval": ms}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewResponse {
    /// The new interval; any `u64` of milliseconds is accepted (the machine clamps, R53).
    #[serde(with = "interval_ms")]
    pub renewal_interval: Duration,
}

impl RenewResponse {
    /// Parses a response body strictly (at most [`MAX_REQUEST_BODY_BYTES`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object(body, MAX_REQUEST_BODY_BYTES)
    }
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
            .map_err(|e| retype_too_many(e, "expired_peeks", MAX_EXPIRED_PEEKS))
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
                    return Err(serde::de::Error::custom(format_args!(
                        "{TOO_MANY}expired_peeks:{MAX_EXPIRED_PEEKS}"
                    )));
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
    fn peek_body_ignores_unknown_fields_and_rejects_non_objects() {
        // R36
        assert!(PeekBody::from_slice(b"{}").is_ok());
        assert!(PeekBody::from_slice(br#"{"filter":{"types":["m.room.message"]}}"#).is_ok());
        assert_eq!(PeekBody::from_slice(b"[]"), Err(WireError::NotObject));
        assert_eq!(PeekBody::from_slice(b"\"{}\""), Err(WireError::NotObject));
    }

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
        assert!(RenewResponse::from_slice(b"{}").is_err());
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
