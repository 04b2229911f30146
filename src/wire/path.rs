//! Paths: which of the endpoints' prefixes to use, the peek id as a path segment, and a parser
//! for incoming federation paths. ruma builds and percent-encodes every path (through the
//! endpoints' `metadata!`); what is here is what ruma does not do:
//!
//! * [`ClientPrefix`] picks one of the client endpoints' three paths on purpose (ruma picks
//!   from a server's `/versions`, which says nothing about an unmerged MSC).
//! * [`FederationPrefix`] moves a federation request under another prefix: MSC2444 defines no
//!   unstable prefix and implementations differ (R28), while ruma's federation endpoints have
//!   a single path.
//! * [`PeekIdSegment`] writes a peek id so that ruma's encoder cannot make a dot segment of it
//!   (ruma leaves `.` and `%` as they are: the id `..` would be sent as `…/!r:x/../renew`, which
//!   URL libraries collapse to `…/peek/renew`).
//! * [`FederationPeekPath::parse`] gives the path arguments to a host whose router does not
//!   (ruma's `IncomingRequest` takes them from the router, decoded).

use std::borrow::Cow;
use std::fmt;

use ruma_common::api::path_builder::PathBuilder;
use ruma_common::api::{MatrixVersion, Metadata, SupportedVersions};
use ruma_common::exports::http;
use ruma_common::{OwnedRoomId, RoomId, RoomOrAliasId};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::client::{peek as client_peek, unpeek as client_unpeek};
use super::federation::{peek, renew};
use super::{MAX_PEEK_ID_BYTES, WireError};

/// The prefix every federation path of ruma's endpoints starts with.
const STABLE_FEDERATION: &str = "/_matrix/federation/v1";

/// The client API version prefix of an MSC2753 path (R1, R12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientPrefix {
    /// `/_matrix/client/v3` (what Dendrite and SyTest use).
    V3,
    /// `/_matrix/client/r0` (the MSC text).
    R0,
    /// `/_matrix/client/unstable/org.matrix.msc2753` (the MSC's unstable prefix).
    Unstable,
}

impl ClientPrefix {
    /// All three, for mounting every route.
    pub const ALL: [ClientPrefix; 3] = [ClientPrefix::V3, ClientPrefix::R0, ClientPrefix::Unstable];

    /// The prefix, without a trailing slash.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientPrefix::V3 => "/_matrix/client/v3",
            ClientPrefix::R0 => "/_matrix/client/r0",
            ClientPrefix::Unstable => "/_matrix/client/unstable/org.matrix.msc2753",
        }
    }

    /// The versions that make ruma's `try_into_http_request` pick this prefix for the client
    /// endpoints (`v1.1` → `v3`, `r0.x` → `r0`, none → unstable).
    pub fn supported_versions(self) -> SupportedVersions {
        let versions = match self {
            ClientPrefix::V3 => vec![MatrixVersion::V1_1],
            ClientPrefix::R0 => vec![MatrixVersion::V1_0],
            ClientPrefix::Unstable => Vec::new(),
        };
        SupportedVersions { versions: versions.into_iter().collect(), features: Default::default() }
    }

    /// `POST {prefix}/peek/{roomIdOrAlias}` (R1), encoded by ruma.
    pub fn peek_path(self, room: &RoomOrAliasId) -> String {
        client_peek::Request::make_endpoint_url(
            Cow::Owned(self.supported_versions()),
            "",
            &[&room],
            "",
        )
        .unwrap_or_default()
    }

    /// `POST {prefix}/rooms/{roomId}/unpeek` (R12), encoded by ruma.
    pub fn unpeek_path(self, room: &RoomId) -> String {
        client_unpeek::Request::make_endpoint_url(
            Cow::Owned(self.supported_versions()),
            "",
            &[&room],
            "",
        )
        .unwrap_or_default()
    }
}

/// Where the MSC2444 endpoints are mounted (R28; docs/architecture.md §11b).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum FederationPrefix {
    /// `/_matrix/federation/v1`, as the MSC, Dendrite and palpo use (and the path of the
    /// crate's ruma endpoints).
    #[default]
    Stable,
    /// `/_matrix/federation/unstable/org.matrix.msc2444` (the conventional unstable form; the
    /// MSC defines none).
    Unstable,
    /// Any other prefix, without a trailing slash (e.g. `/_matrix/federation/v2`).
    Custom(String),
}

impl FederationPrefix {
    /// The prefix, without a trailing slash.
    pub fn as_str(&self) -> &str {
        match self {
            FederationPrefix::Stable => STABLE_FEDERATION,
            FederationPrefix::Unstable => "/_matrix/federation/unstable/org.matrix.msc2444",
            FederationPrefix::Custom(p) => p.trim_end_matches('/'),
        }
    }

    /// A path ruma built under the stable prefix, under this one.
    fn reprefix(&self, path: &str) -> String {
        match path.strip_prefix(STABLE_FEDERATION) {
            Some(rest) => format!("{}{rest}", self.as_str()),
            None => path.to_owned(),
        }
    }

    /// The two route templates under this prefix, with ruma's parameter names:
    /// `{prefix}/peek/{room_id}/{peek_id}` (`PUT`, `DELETE`) and `…/renew` (`POST`).
    pub fn routes(&self) -> [String; 2] {
        let put = peek::Request::PATH_BUILDER.all_paths().next().unwrap_or_default();
        let renew = renew::Request::PATH_BUILDER.all_paths().next().unwrap_or_default();
        [self.reprefix(put), self.reprefix(renew)]
    }

    /// `{prefix}/peek/{roomId}/{peekId}`: the `PUT` (start, R48) and `DELETE` (stop, R55) path,
    /// encoded by ruma (the peek id as a [`PeekIdSegment`]).
    pub fn peek_path(&self, room: &RoomId, peek_id: &str) -> String {
        let path =
            peek::Request::make_endpoint_url((), "", &[&room, &PeekIdSegment::new(peek_id)], "");
        self.reprefix(&path.unwrap_or_default())
    }

    /// The `PUT` path with its query, `…?ver=…&ver=…` (R48), as ruma writes it. Needs the
    /// `client` feature (on by default): it is ruma's outgoing request that writes the query.
    #[cfg(feature = "client")]
    pub fn peek_path_with_ver(
        &self,
        room: &RoomId,
        peek_id: &str,
        ver: &[ruma_common::RoomVersionId],
    ) -> String {
        use ruma_common::api::OutgoingRequestExt;
        let request = peek::Request::new(room.to_owned(), peek_id, ver.to_vec());
        let built = request.try_into_http_request::<Vec<u8>>("", (), ());
        let path = built.ok().and_then(|r| r.uri().path_and_query().map(|p| p.as_str().to_owned()));
        self.reprefix(&path.unwrap_or_default())
    }

    /// `{prefix}/peek/{roomId}/{peekId}/renew`: the `POST` renewal path (R41, R53).
    pub fn renew_path(&self, room: &RoomId, peek_id: &str) -> String {
        let path =
            renew::Request::make_endpoint_url((), "", &[&room, &PeekIdSegment::new(peek_id)], "");
        self.reprefix(&path.unwrap_or_default())
    }

    /// Moves a request ruma built for one of the federation endpoints (under
    /// `/_matrix/federation/v1`) under this prefix, keeping the rest of its URI.
    pub fn apply<B>(&self, request: &mut http::Request<B>) -> Result<(), WireError> {
        let uri = request.uri();
        let Some(path_and_query) = uri.path_and_query() else { return Ok(()) };
        let moved = self.reprefix(path_and_query.as_str());
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(moved.parse().map_err(|e: http::uri::InvalidUri| {
            WireError::InvalidParam { name: "prefix", reason: e.to_string() }
        })?);
        *request.uri_mut() = http::Uri::from_parts(parts)
            .map_err(|e| WireError::InvalidParam { name: "prefix", reason: e.to_string() })?;
        Ok(())
    }
}

/// A peek id in a federation path (the `{peekId}` of the crate's ruma endpoints).
///
/// [`as_str`](Self::as_str) is the id. `Display` writes the id **as the path carries it** for
/// ruma's path builder, which escapes the rest: `%` as `%25` (ruma would send it raw, and the
/// resident would decode `a%41` as `aA`), and an id made only of dots (`.`, `..`, `...`) as
/// `%2E` each, so that no URL normaliser removes it as a dot segment (RFC 3986 §5.2.4). Both
/// `PeekIdPolicy`s accept `.`, the lenient one `..` and `%`. Deserialising takes the decoded
/// segment (routers decode path arguments) as it is; the inbound machine applies the policy
/// (R29).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeekIdSegment(String);

impl PeekIdSegment {
    /// The segment of `peek_id`.
    pub fn new(peek_id: impl Into<String>) -> Self {
        PeekIdSegment(peek_id.into())
    }

    /// The peek id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The peek id, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<String> for PeekIdSegment {
    fn from(s: String) -> Self {
        PeekIdSegment(s)
    }
}

impl From<&str> for PeekIdSegment {
    fn from(s: &str) -> Self {
        PeekIdSegment(s.to_owned())
    }
}

impl From<&String> for PeekIdSegment {
    fn from(s: &String) -> Self {
        PeekIdSegment(s.clone())
    }
}

impl fmt::Display for PeekIdSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let only_dots = !self.0.is_empty() && self.0.bytes().all(|b| b == b'.');
        for c in self.0.chars() {
            match c {
                '%' => f.write_str("%25")?,
                '.' if only_dots => f.write_str("%2E")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

impl Serialize for PeekIdSegment {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PeekIdSegment {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(PeekIdSegment)
    }
}

/// What an incoming federation peek path names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FederationPeekPath {
    /// The room.
    pub room_id: OwnedRoomId,
    /// The peek id, percent-decoded, 1–[`MAX_PEEK_ID_BYTES`] bytes; the inbound machine applies
    /// its `PeekIdPolicy` (R29).
    pub peek_id: String,
    /// `true` for `…/renew` (`POST`), `false` for the `PUT` / `DELETE` path.
    pub is_renew: bool,
}

impl FederationPeekPath {
    /// Parses a request path (a `?query` is ignored) under `prefix`: for a host whose router
    /// does not extract path arguments. Pass [`path_args`](Self::path_args) to ruma's
    /// `IncomingRequest::try_from_http_request`.
    ///
    /// Errors: not under `prefix/peek/`, wrong segment count or a trailing segment other than
    /// `renew` → [`WireError::UnknownPath`] (404 `M_UNRECOGNIZED`); a room id that does not
    /// parse → [`WireError::InvalidParam`]; an empty or over-long peek id →
    /// [`WireError::InvalidPeekId`] (400 `M_UNRECOGNIZED`, R29).
    pub fn parse(prefix: &FederationPrefix, path: &str) -> Result<Self, WireError> {
        let unknown = || {
            let shown: String = path.chars().take(100).collect();
            WireError::UnknownPath(shown)
        };
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        let rest = path
            .strip_prefix(prefix.as_str())
            .and_then(|r| r.strip_prefix("/peek/"))
            .ok_or_else(unknown)?;
        let mut segments = rest.split('/');
        let (Some(room), Some(peek)) = (segments.next(), segments.next()) else {
            return Err(unknown());
        };
        let is_renew = match (segments.next(), segments.next()) {
            (None, _) => false,
            (Some("renew"), None) => true,
            _ => return Err(unknown()),
        };
        let room = percent_decode(room).ok_or_else(|| WireError::InvalidParam {
            name: "roomId",
            reason: "not UTF-8".into(),
        })?;
        let room_id = RoomId::parse(&room)
            .map_err(|e| WireError::InvalidParam { name: "roomId", reason: e.to_string() })?;
        let peek_id = percent_decode(peek).ok_or(WireError::InvalidPeekId)?;
        if peek_id.is_empty() || peek_id.len() > MAX_PEEK_ID_BYTES {
            return Err(WireError::InvalidPeekId);
        }
        Ok(FederationPeekPath { room_id, peek_id, is_renew })
    }

    /// The decoded path arguments, `[room_id, peek_id]`, in the order ruma's endpoints take
    /// them.
    pub fn path_args(&self) -> [&str; 2] {
        [self.room_id.as_str(), &self.peek_id]
    }
}

/// Percent-decodes a path segment; an invalid escape is kept literally. `None` if the result
/// is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s).decode_utf8().ok().map(|cow| cow.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_id_segments_escape_percent_and_dot_segments_only() {
        let shown = |s: &str| PeekIdSegment::new(s).to_string();
        assert_eq!(shown("."), "%2E");
        assert_eq!(shown(".."), "%2E%2E");
        assert_eq!(shown("..."), "%2E%2E%2E");
        assert_eq!(shown("a.b"), "a.b");
        assert_eq!(shown("a%41"), "a%2541");
        assert_eq!(percent_decode("%2E%2E").as_deref(), Some(".."));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%FF"), None);
    }
}
