//! The repeatable `?ver=` query parameter of the federation peek `PUT` (R33, R48), parsed like
//! `/make_join`'s.

use ruma_common::RoomVersionId;

use super::percent::{percent_decode, percent_encode_into};
use super::{MAX_VER, WireError};

/// Parses the room versions from a raw query string (with or without the leading `?`).
///
/// * `ver` may repeat; values are percent-decoded and `+` means a space
///   (`application/x-www-form-urlencoded`), so `ver=org.example%2Bv1` is `org.example+v1`.
///   Invalid `%` escapes are kept literally (as the WHATWG URL standard does); decoded bytes
///   that are not UTF-8 are [`WireError::InvalidParam`].
/// * **Absent `ver` means `["1"]`** (the `/make_join` rule the MSC refers to, R33).
/// * Duplicates are dropped, keeping the first occurrence's order.
/// * Each value must be a valid [`RoomVersionId`] (1–32 of `[a-zA-Z0-9.-]`), else
///   [`WireError::InvalidParam`]; more than [`MAX_VER`] `ver` parameters is
///   [`WireError::TooMany`] (counted before decoding, so a huge query costs one scan).
/// * Every other parameter is ignored.
pub fn parse_ver(query: &str) -> Result<Vec<RoomVersionId>, WireError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut out: Vec<RoomVersionId> = Vec::new();
    let mut count = 0usize;
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode_component(key, "ver")? != "ver" {
            continue;
        }
        count += 1;
        if count > MAX_VER {
            return Err(WireError::TooMany { what: "ver", limit: MAX_VER });
        }
        let value = decode_component(value, "ver")?;
        let version = RoomVersionId::try_from(value.as_str())
            .map_err(|e| WireError::InvalidParam { name: "ver", reason: format!("{e}") })?;
        if !out.contains(&version) {
            out.push(version);
        }
    }
    if count == 0 {
        out.push(RoomVersionId::V1);
    }
    Ok(out)
}

/// Builds `ver=…&ver=…` (no leading `?`) for the versions a peeking server supports (R48).
/// An empty slice gives an empty string (which the resident reads as `["1"]`).
pub fn ver_query(versions: &[RoomVersionId]) -> String {
    let mut out = String::new();
    for v in versions {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str("ver=");
        percent_encode_into(v.as_str(), &mut out);
    }
    out
}

/// Form-decodes one key or value: `+` → space, then percent-decoding.
fn decode_component(raw: &str, name: &'static str) -> Result<String, WireError> {
    if !raw.contains(['+', '%']) {
        return Ok(raw.to_owned());
    }
    let spaced = raw.replace('+', " ");
    percent_decode(&spaced).ok_or_else(|| WireError::InvalidParam {
        name,
        reason: "percent-decoded value is not UTF-8".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ver_round_trips_through_ver_query() {
        let v = vec![RoomVersionId::V9, RoomVersionId::V10, RoomVersionId::V12];
        assert_eq!(parse_ver(&ver_query(&v)).unwrap(), v);
        assert_eq!(ver_query(&[]), "");
    }

    #[test]
    fn ver_key_may_be_encoded_and_other_params_ignored() {
        assert_eq!(
            parse_ver("v%65r=9&x=%FF&&ver").unwrap_err(),
            WireError::InvalidParam {
                name: "ver",
                reason: RoomVersionId::try_from("").unwrap_err().to_string(),
            }
        );
        assert_eq!(parse_ver("?v%65r=9&other=1").unwrap(), vec![RoomVersionId::V9]);
    }
}
