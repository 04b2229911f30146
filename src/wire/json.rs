//! Private JSON helpers: bounded parsing into objects, capped sequences, millisecond intervals.

use std::fmt;
use std::time::Duration;

use serde::de::{DeserializeOwned, IgnoredAny, Visitor};
use serde::{Deserializer, Serializer};

use super::WireError;

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
pub(crate) fn from_object<T: DeserializeOwned>(body: &[u8], limit: usize) -> Result<T, WireError> {
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

/// Maps a `serde_json` error to [`WireError::NotJson`] (syntax) or [`WireError::BadJson`]
/// (shape).
pub(crate) fn classify(e: &serde_json::Error) -> WireError {
    match e.classify() {
        serde_json::error::Category::Data => WireError::BadJson(detail(e)),
        _ => WireError::NotJson(detail(e)),
    }
}

fn detail(e: &serde_json::Error) -> String {
    let s = e.to_string();
    if s.chars().count() <= MAX_DETAIL_CHARS {
        return s;
    }
    let mut out: String = s.chars().take(MAX_DETAIL_CHARS).collect();
    out.push('…');
    out
}

/// Prefix of the custom error a capped sequence visitor raises.
pub(crate) const TOO_MANY: &str = "too many elements: ";

/// Turns a capped-sequence overflow back into [`WireError::TooMany`].
pub(crate) fn retype_too_many(err: WireError, what: &'static str, limit: usize) -> WireError {
    match &err {
        WireError::BadJson(msg) if msg.starts_with(TOO_MANY) => WireError::TooMany { what, limit },
        _ => err,
    }
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
}
