//! MSC2753's client endpoints as ruma API types: `POST /peek/{roomIdOrAlias}` (R1, R2, R9) and
//! `POST /rooms/{roomId}/unpeek` (R12), plus the key of `/sync`'s `peek` section (R14).
//!
//! Each endpoint is a module holding ruma's `Request`/`Response` pair (ruma's `#[request]`
//! macro ties a request to the `Response` in its own module); [`super`] re-exports them under
//! distinct names.

use std::fmt;

use ruma_common::{OwnedServerName, ServerName};
use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::json::{from_object, object_only, too_many};
use super::{MAX_REQUEST_BODY_BYTES, MAX_SERVERS, WireError};

/// The key of the `peek` section in `/sync`'s `rooms` object (R14). It has the shape of
/// `rooms.join`. The MSC defines no unstable name; Dendrite and SyTest use `peek` (palpo uses
/// `org.matrix.msc2753.peek`, which SyTest does not read).
pub const SYNC_ROOMS_PEEK_KEY: &str = "peek";

/// `POST /_matrix/client/{v3,r0,unstable/org.matrix.msc2753}/peek/{roomIdOrAlias}` (R1).
pub(super) mod peek {
    use ruma_common::api::auth_scheme::AccessToken;
    use ruma_common::api::{request, response};
    use ruma_common::{OwnedRoomId, OwnedRoomOrAliasId, OwnedServerName, metadata};
    use serde::{Deserialize, Serialize};

    use super::ClientPeekBody;
    use crate::Timestamp;

    // MSC2753 is not in any Matrix version. The history stands for the three prefixes the
    // crate serves (R1): a server advertising v1.1 or later gets `v3` (Dendrite, SyTest), one
    // advertising only r0.x gets the MSC text's `r0`, and one advertising neither the unstable
    // path. `ClientPrefix::supported_versions` picks one on purpose.
    metadata! {
        method: POST,
        rate_limited: true,
        authentication: AccessToken,
        history: {
            unstable => "/_matrix/client/unstable/org.matrix.msc2753/peek/{room_id_or_alias}",
            1.0 => "/_matrix/client/r0/peek/{room_id_or_alias}",
            1.1 => "/_matrix/client/v3/peek/{room_id_or_alias}",
        }
    }

    /// `POST /_matrix/client/v3/peek/{roomIdOrAlias}` (R1, R2): peek into a room by id or
    /// alias, through `servers`. A ruma endpoint: route it with `PATH_BUILDER.all_paths()`
    /// (the `v3`, `r0` and unstable paths), parse it with
    /// `IncomingRequest::try_from_http_request`, send it with
    /// `OutgoingRequest::try_into_http_request`. Cap the body at
    /// [`MAX_REQUEST_BODY_BYTES`](crate::wire::MAX_REQUEST_BODY_BYTES) first: ruma does not.
    #[request]
    pub struct Request {
        /// The room id or alias from the path (an alias is resolved by the host, R4).
        #[ruma_api(path)]
        pub room_id_or_alias: OwnedRoomOrAliasId,
        /// The body: `{"servers": [...]}`.
        #[ruma_api(body)]
        pub body: ClientPeekBody,
    }

    /// The 200 body of the client `/peek` (R9): both fields are required. `peek_expiry_ts` is
    /// when the server expires the peek unless the device renews it by calling `/peek` again
    /// (R5, R11).
    #[response]
    #[derive(PartialEq, Eq, Serialize, Deserialize)]
    pub struct Response {
        /// The resolved room id (an alias in the path is resolved, R4).
        pub room_id: OwnedRoomId,
        /// Epoch milliseconds at which the lease ends.
        pub peek_expiry_ts: Timestamp,
    }

    impl Request {
        /// A peek into `room_id_or_alias` through `servers`.
        pub fn new(room_id_or_alias: OwnedRoomOrAliasId, servers: Vec<OwnedServerName>) -> Self {
            Request { room_id_or_alias, body: ClientPeekBody { servers } }
        }
    }

    impl Response {
        /// The reply for a granted peek.
        pub fn new(room_id: OwnedRoomId, peek_expiry_ts: Timestamp) -> Self {
            Response { room_id, peek_expiry_ts }
        }

        /// Parses a response body (at most
        /// [`MAX_REQUEST_BODY_BYTES`](crate::wire::MAX_REQUEST_BODY_BYTES), a JSON object);
        /// unknown fields are ignored.
        pub fn from_slice(body: &[u8]) -> Result<Self, crate::wire::WireError> {
            super::from_object(body, crate::wire::MAX_REQUEST_BODY_BYTES)
        }
    }
}

/// `POST /_matrix/client/{v3,r0,unstable/org.matrix.msc2753}/rooms/{roomId}/unpeek` (R12).
pub(super) mod unpeek {
    use ruma_common::api::auth_scheme::AccessToken;
    use ruma_common::api::{request, response};
    use ruma_common::{OwnedRoomId, metadata};
    use serde::{Deserialize, Serialize};

    use crate::wire::ObjectBody;

    // As for `/peek`: the history stands for the crate's three prefixes.
    metadata! {
        method: POST,
        rate_limited: false,
        authentication: AccessToken,
        history: {
            unstable => "/_matrix/client/unstable/org.matrix.msc2753/rooms/{room_id}/unpeek",
            1.0 => "/_matrix/client/r0/rooms/{room_id}/unpeek",
            1.1 => "/_matrix/client/v3/rooms/{room_id}/unpeek",
        }
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/unpeek` (R12): stop peeking. The body must be a
    /// JSON object (400 `M_BAD_JSON` / `M_NOT_JSON` otherwise); its fields are ignored.
    #[request]
    pub struct Request {
        /// The room.
        #[ruma_api(path)]
        pub room_id: OwnedRoomId,
        /// The body (`{}`).
        #[ruma_api(body)]
        pub body: ObjectBody,
    }

    /// The empty 200 body of `/unpeek` (R12): `{}`.
    #[response]
    #[derive(Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Response {}

    impl Request {
        /// An unpeek of `room_id`.
        pub fn new(room_id: OwnedRoomId) -> Self {
            Request { room_id, body: ObjectBody {} }
        }
    }

    impl Response {
        /// `{}`.
        pub fn new() -> Self {
            Response {}
        }
    }
}

/// The body of the client `/peek` (R2): `{"servers": [...]}`.
///
/// * `servers` is optional; a missing (or `null`) list is empty.
/// * Unknown fields are ignored; a body that is not a JSON object is
///   [`WireError::NotObject`] (400 `M_BAD_JSON`, or `M_NOT_JSON` for [`WireError::NotJson`]).
/// * **Invalid server names are dropped, not rejected**: a name that does not parse as a
///   [`ServerName`] could never be peeked through, and the other names (or the alias's domain,
///   R46) may still work. Duplicates are dropped too, keeping the first occurrence's order.
///   A non-string entry, or a `servers` that is not an array, is [`WireError::BadJson`].
/// * More than [`MAX_SERVERS`] entries (valid or not) is [`WireError::TooMany`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientPeekBody {
    /// Servers to try to peek through (R27, R46), in the client's order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<OwnedServerName>,
}

impl ClientPeekBody {
    /// Parses a request body (at most [`MAX_REQUEST_BODY_BYTES`]), for a host that does not go
    /// through ruma's `IncomingRequest` (which reads the same type).
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object(body, MAX_REQUEST_BODY_BYTES)
    }
}

#[derive(Deserialize)]
struct ClientPeekFields {
    #[serde(default, deserialize_with = "servers")]
    servers: Vec<OwnedServerName>,
}

impl<'de> Deserialize<'de> for ClientPeekBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f: ClientPeekFields = object_only(d, "a JSON object")?;
        Ok(ClientPeekBody { servers: f.servers })
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
                    return Err(too_many("servers", MAX_SERVERS));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_body_servers_are_optional_and_invalid_names_dropped() {
        // R2
        assert!(ClientPeekBody::from_slice(b"{}").unwrap().servers.is_empty());
        assert!(ClientPeekBody::from_slice(br#"{"servers":null}"#).unwrap().servers.is_empty());
        let r = ClientPeekBody::from_slice(
            br#"{"servers":["a.org","not a server!","a.org","b.org:8448"],"x":1}"#,
        )
        .unwrap();
        let names: Vec<&str> = r.servers.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["a.org", "b.org:8448"]);
        assert!(matches!(
            ClientPeekBody::from_slice(br#"{"servers":[1]}"#),
            Err(WireError::BadJson(_))
        ));
        assert!(matches!(
            ClientPeekBody::from_slice(br#"{"servers":"a"}"#),
            Err(WireError::BadJson(_))
        ));
        assert_eq!(ClientPeekBody::from_slice(b"[]"), Err(WireError::NotObject));
    }

    #[test]
    fn peek_body_caps_servers() {
        let list: Vec<String> = (0..=MAX_SERVERS).map(|i| format!("\"s{i}.org\"")).collect();
        let body = format!(r#"{{"servers":[{}]}}"#, list.join(","));
        assert_eq!(
            ClientPeekBody::from_slice(body.as_bytes()),
            Err(WireError::TooMany { what: "servers", limit: MAX_SERVERS })
        );
    }
}
