//! MSC2753 client bodies: `POST /peek/{roomIdOrAlias}`, `POST /rooms/{roomId}/unpeek` and the
//! `peek` section of `/sync` (R1, R2, R9, R12, R14). Paths are in [`super::path`].

use std::fmt;

use ruma_common::{OwnedRoomId, OwnedServerName, ServerName};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::json::{TOO_MANY, from_object, retype_too_many};
use super::{MAX_REQUEST_BODY_BYTES, MAX_SERVERS, WireError};
use crate::Timestamp;

/// The key of the `peek` section in `/sync`'s `rooms` object (R14). It has the shape of
/// `rooms.join`. The MSC defines no unstable name; Dendrite and SyTest use `peek` (palpo uses
/// `org.matrix.msc2753.peek`, which SyTest does not read).
pub const SYNC_ROOMS_PEEK_KEY: &str = "peek";

/// The body of `POST /_matrix/client/v3/peek/{roomIdOrAlias}` (R2): `{"servers": [...]}`.
///
/// * `servers` is optional; a missing (or `null`) list is empty.
/// * Unknown fields are ignored; a body that is not a JSON object is
///   [`WireError::NotObject`] (map it to 400 `M_BAD_JSON`, or `M_NOT_JSON` for
///   [`WireError::NotJson`]).
/// * **Invalid server names are dropped, not rejected**: a name that does not parse as a
///   [`ServerName`] could never be peeked through, and the other names (or the alias's domain,
///   R46) may still work. Duplicates are dropped too, keeping the first occurrence's order.
///   A non-string entry, or a `servers` that is not an array, is [`WireError::BadJson`].
/// * More than [`MAX_SERVERS`] entries (valid or not) is [`WireError::TooMany`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeekRequest {
    /// Servers to try to peek through (R27, R46), in the client's order.
    #[serde(default, deserialize_with = "servers", skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<OwnedServerName>,
}

impl PeekRequest {
    /// Parses a request body (at most [`MAX_REQUEST_BODY_BYTES`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object(body, MAX_REQUEST_BODY_BYTES)
            .map_err(|e| retype_too_many(e, "servers", MAX_SERVERS))
    }
}

fn servers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OwnedServerName>, D::Error> {
    struct ServersVisitor;
    impl<'de> Visitor<'de> for ServersVisitor {
        type Value = Vec<OwnedServerName>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of server names, or null")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<OwnedServerName> = Vec::new();
            let mut seen = 0usize;
            while let Some(name) = seq.next_element::<std::borrow::Cow<'de, str>>()? {
                seen += 1;
                if seen > MAX_SERVERS {
                    return Err(serde::de::Error::custom(format_args!(
                        "{TOO_MANY}servers:{MAX_SERVERS}"
                    )));
                }
                if let Ok(name) = <&ServerName>::try_from(name.as_ref())
                    && !out.iter().any(|s| s == name)
                {
                    out.push(name.to_owned());
                }
            }
            Ok(out)
        }
    }
    d.deserialize_any(ServersVisitor)
}

/// The 200 body of `POST /peek/{roomIdOrAlias}` (R9): both fields are required.
/// `peek_expiry_ts` is when the server expires the peek unless the device renews it by calling
/// `/peek` again (R5, R11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeekResponse {
    /// The resolved room id (an alias in the path is resolved, R4).
    pub room_id: OwnedRoomId,
    /// Epoch milliseconds at which the lease ends.
    pub peek_expiry_ts: Timestamp,
}

impl PeekResponse {
    /// Parses a response body (at most [`MAX_REQUEST_BODY_BYTES`]); unknown fields are ignored.
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object(body, MAX_REQUEST_BODY_BYTES)
    }
}

/// The body of `POST /rooms/{roomId}/unpeek` (R12): any JSON object (`{}`); fields are ignored.
/// A non-object is [`WireError::NotObject`] / [`WireError::NotJson`] (400 `M_BAD_JSON` /
/// `M_NOT_JSON`). The 200 reply is `{}`: serialise `UnpeekRequest` (or [`UnpeekResponse`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnpeekRequest {}

impl UnpeekRequest {
    /// Checks a request body (at most [`MAX_REQUEST_BODY_BYTES`]) is a JSON object.
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object::<IgnoredAny>(body, MAX_REQUEST_BODY_BYTES).map(|_| UnpeekRequest {})
    }
}

/// The empty 200 body of `/unpeek` (R12), serialised as `{}`.
pub type UnpeekResponse = UnpeekRequest;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_request_servers_are_optional_and_invalid_names_dropped() {
        // R2
        assert_eq!(PeekRequest::from_slice(b"{}").unwrap().servers, Vec::<OwnedServerName>::new());
        assert!(PeekRequest::from_slice(br#"{"servers":null}"#).unwrap().servers.is_empty());
        let r = PeekRequest::from_slice(
            br#"{"servers":["a.org","not a server!","a.org","b.org:8448"],"x":1}"#,
        )
        .unwrap();
        let names: Vec<&str> = r.servers.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["a.org", "b.org:8448"]);
        assert!(matches!(
            PeekRequest::from_slice(br#"{"servers":[1]}"#),
            Err(WireError::BadJson(_))
        ));
        assert!(matches!(
            PeekRequest::from_slice(br#"{"servers":"a"}"#),
            Err(WireError::BadJson(_))
        ));
        assert_eq!(PeekRequest::from_slice(b"[]"), Err(WireError::NotObject));
    }

    #[test]
    fn peek_request_caps_servers() {
        let list: Vec<String> = (0..=MAX_SERVERS).map(|i| format!("\"s{i}.org\"")).collect();
        let body = format!(r#"{{"servers":[{}]}}"#, list.join(","));
        assert_eq!(
            PeekRequest::from_slice(body.as_bytes()),
            Err(WireError::TooMany { what: "servers", limit: MAX_SERVERS })
        );
    }

    #[test]
    fn unpeek_body_must_be_an_object() {
        // R12
        assert!(UnpeekRequest::from_slice(b"{}").is_ok());
        assert!(UnpeekRequest::from_slice(br#"{"future":[1,2]}"#).is_ok());
        assert_eq!(UnpeekRequest::from_slice(b"null"), Err(WireError::NotObject));
        assert!(matches!(UnpeekRequest::from_slice(b""), Err(WireError::NotJson(_))));
        assert_eq!(serde_json::to_string(&UnpeekResponse::default()).unwrap(), "{}");
    }
}
