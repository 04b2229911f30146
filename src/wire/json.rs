//! Private JSON helpers: bounded parsing into objects, the markers that carry a cap or an
//! over-long id out of `serde_json` as a typed [`WireError`], millisecond intervals.

use std::fmt;
use std::time::Duration;

use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, IgnoredAny, MapAccess, Visitor};
use serde::{Deserializer, Serialize, Serializer};

use super::{MAX_EVENT_ID_BYTES, MAX_REQUEST_BODY_BYTES, WireError};

/// A request body that must be a JSON object and whose fields are ignored: the client
/// `/unpeek` (R12) and the federation `PUT` and `renew` bodies (R36, where future filters may
/// go). Anything else (an array, `null`, a string) is 400 `M_BAD_JSON`; it serialises as `{}`.
/// Through ruma's `IncomingRequest` an empty body reads as `{}` (ruma's rule);
/// [`from_slice`](Self::from_slice) wants JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ObjectBody {}

impl ObjectBody {
    /// Checks a request body (at most [`MAX_REQUEST_BODY_BYTES`]) is a JSON object.
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object(body, MAX_REQUEST_BODY_BYTES)
    }
}

impl<'de> Deserialize<'de> for ObjectBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object_only::<D, IgnoredAny>(d, "a JSON object").map(|_| ObjectBody {})
    }
}

/// Deserialises `T` from a JSON object only. A derived struct would also take an array (its
/// fields in order), which the MSCs' bodies must not be (R12, R36).
pub(crate) fn object_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    expecting: &'static str,
) -> Result<T, D::Error> {
    struct ObjectVisitor<T>(PhantomData<T>, &'static str);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.1)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_map(ObjectVisitor(PhantomData, expecting))
}

/// Longest error detail kept from `serde_json` (its messages can quote the input).
const MAX_DETAIL_CHARS: usize = 200;

/// Rejects a body longer than `limit`.
pub(crate) fn check_size(body: &[u8], limit: usize) -> Result<(), WireError> {
    if body.len() > limit {
        return Err(WireError::TooLarge { limit, actual: body.len() });
    }
    Ok(())
}

/// Parses `body` (at most `limit` bytes) as `T`, which must come from a JSON **object**:
/// serde would otherwise accept a struct written as an array.
pub(crate) fn from_object<'a, T: Deserialize<'a>>(
    body: &'a [u8],
    limit: usize,
) -> Result<T, WireError> {
    check_size(body, limit)?;
    let first = body.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        // Tell "not JSON at all" from "JSON, but not an object".
        return match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => Err(WireError::NotObject),
            Err(e) => Err(WireError::NotJson(detail(&e))),
        };
    }
    serde_json::from_slice(body).map_err(|e| classify(&e))
}

/// Maps a `serde_json` error to [`WireError::NotJson`] (syntax), a typed cap or id error (the
/// markers below), or [`WireError::BadJson`] (shape).
pub(crate) fn classify(e: &serde_json::Error) -> WireError {
    match e.classify() {
        serde_json::error::Category::Data => retype(detail(e)),
        _ => WireError::NotJson(detail(e)),
    }
}

fn detail(e: &impl fmt::Display) -> String {
    let s = e.to_string();
    if s.chars().count() <= MAX_DETAIL_CHARS {
        return s;
    }
    let mut out: String = s.chars().take(MAX_DETAIL_CHARS).collect();
    out.push('…');
    out
}

// serde errors are strings: a capped visitor says which cap it hit in a marked message, and
// `retype` turns the message back into the typed error.

/// Prefix of the error a capped visitor raises: `too many elements: {what}:{limit}`.
pub(crate) const TOO_MANY: &str = "too many elements: ";

/// The error an event id over [`MAX_EVENT_ID_BYTES`] raises.
pub(crate) const ID_TOO_LONG: &str = "event id too long";

/// What a cap counts; `TooMany::what` is one of these.
const COUNTED: [&str; 6] =
    ["servers", "ver", "expired_peeks", "PDUs", "state event ids", "extremities"];

/// The error of a collection over its cap (`what` is one of [`COUNTED`]).
pub(crate) fn too_many<E: serde::de::Error>(what: &'static str, limit: usize) -> E {
    E::custom(format_args!("{TOO_MANY}{what}:{limit}"))
}

/// The error of an event id over [`MAX_EVENT_ID_BYTES`].
pub(crate) fn event_id_too_long<E: serde::de::Error>() -> E {
    E::custom(format_args!("{ID_TOO_LONG} (over {MAX_EVENT_ID_BYTES} bytes)"))
}

/// A shape error's message, as [`WireError::TooMany`] or [`WireError::EventIdTooLong`] when it
/// carries their marker, else [`WireError::BadJson`].
pub(crate) fn retype(msg: String) -> WireError {
    if let Some(rest) = msg.strip_prefix(TOO_MANY) {
        let counted = COUNTED.iter().find_map(|what| {
            let limit = rest.strip_prefix(what)?.strip_prefix(':')?;
            let digits = limit.split(|c: char| !c.is_ascii_digit()).next()?;
            Some(WireError::TooMany { what, limit: digits.parse().ok()? })
        });
        if let Some(e) = counted {
            return e;
        }
    }
    if msg.starts_with(ID_TOO_LONG) {
        return WireError::EventIdTooLong { limit: MAX_EVENT_ID_BYTES };
    }
    WireError::BadJson(msg)
}

/// A non-negative JSON number of milliseconds as a [`Duration`], never overflowing.
///
/// Accepts any unsigned integer up to `u64::MAX` (Dendrite sends 3 600 000 000, R53: the
/// machine clamps) and, leniently, a non-negative float (saturating). Rejects negatives and
/// non-numbers.
pub(crate) mod interval_ms {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(MillisVisitor)
    }

    pub(crate) struct MillisVisitor;

    impl Visitor<'_> for MillisVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative number of milliseconds")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_millis)
                .map_err(|_| E::custom("a duration in milliseconds must not be negative"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
            if v.is_nan() || v < 0.0 {
                return Err(E::custom("a duration in milliseconds must not be negative"));
            }
            // `as` saturates for floats above u64::MAX.
            Ok(Duration::from_millis(v as u64))
        }
    }

    /// The same, for an optional field.
    pub(crate) mod option {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            d.deserialize_any(MillisVisitor).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(with = "interval_ms")]
        ms: Duration,
    }

    #[test]
    fn interval_accepts_up_to_u64_max_and_floats_without_overflow() {
        let p: Probe = serde_json::from_str(r#"{"ms":18446744073709551615}"#).unwrap();
        assert_eq!(p.ms, Duration::from_millis(u64::MAX));
        let p: Probe = serde_json::from_str(r#"{"ms":1e300}"#).unwrap();
        assert_eq!(p.ms, Duration::from_millis(u64::MAX));
        let p: Probe = serde_json::from_str(r#"{"ms":3600000000}"#).unwrap();
        assert_eq!(p.ms, Duration::from_secs(3_600_000));
        assert!(serde_json::from_str::<Probe>(r#"{"ms":-1}"#).is_err());
        assert!(serde_json::from_str::<Probe>(r#"{"ms":"1"}"#).is_err());
    }

    #[test]
    fn from_object_tells_non_json_from_non_object() {
        assert!(matches!(from_object::<Probe>(b"[1]", 10), Err(WireError::NotObject)));
        assert!(matches!(from_object::<Probe>(b"nope", 10), Err(WireError::NotJson(_))));
        assert!(matches!(from_object::<Probe>(b"{}", 10), Err(WireError::BadJson(_))));
        assert!(matches!(from_object::<Probe>(b"{}   ", 3), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn markers_come_back_typed() {
        let e: serde_json::Error = too_many("PDUs", 7);
        assert_eq!(
            retype(format!("{e} at line 1 column 9")),
            WireError::TooMany { what: "PDUs", limit: 7 }
        );
        let e: serde_json::Error = event_id_too_long();
        assert_eq!(retype(e.to_string()), WireError::EventIdTooLong { limit: MAX_EVENT_ID_BYTES });
        assert!(matches!(retype(format!("{TOO_MANY}other:1")), WireError::BadJson(_)));
    }
}
