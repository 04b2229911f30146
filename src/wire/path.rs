//! Endpoint paths: MSC2753 client paths under `v3`, `r0` and the unstable prefix (R1, R12), and
//! MSC2444 federation paths under a configurable prefix (R28; the MSC has no unstable prefix,
//! implementations differ), plus a parser for incoming federation paths.
//!
//! Builders percent-encode every path segment (everything but `A-Za-z0-9-._~`), so `#alias`,
//! `!room:server` and odd peek ids are safe.

use ruma_common::{OwnedRoomId, RoomId, RoomOrAliasId, RoomVersionId};

use super::percent::{percent_decode, percent_encode_into};
use super::query::ver_query;
use super::{MAX_PEEK_ID_BYTES, WireError};

/// Client route templates for `POST /peek/{roomIdOrAlias}` (R1), for a router.
pub const CLIENT_PEEK_ROUTES: [&str; 3] = [
    "/_matrix/client/v3/peek/{roomIdOrAlias}",
    "/_matrix/client/r0/peek/{roomIdOrAlias}",
    "/_matrix/client/unstable/org.matrix.msc2753/peek/{roomIdOrAlias}",
];

/// Client route templates for `POST /rooms/{roomId}/unpeek` (R12), for a router.
pub const CLIENT_UNPEEK_ROUTES: [&str; 3] = [
    "/_matrix/client/v3/rooms/{roomId}/unpeek",
    "/_matrix/client/r0/rooms/{roomId}/unpeek",
    "/_matrix/client/unstable/org.matrix.msc2753/rooms/{roomId}/unpeek",
];

/// Federation route templates under the stable prefix (R28, R41, R42): `PUT`/`DELETE` on the
/// first, `POST` on the second.
pub const FEDERATION_PEEK_ROUTES: [&str; 2] = [
    "/_matrix/federation/v1/peek/{roomId}/{peekId}",
    "/_matrix/federation/v1/peek/{roomId}/{peekId}/renew",
];

/// The client API version prefix of an MSC2753 path.
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

    /// `POST {prefix}/peek/{roomIdOrAlias}` (R1), the room id or alias percent-encoded.
    pub fn peek_path(self, room: &RoomOrAliasId) -> String {
        let mut out = format!("{}/peek/", self.as_str());
        percent_encode_into(room.as_str(), &mut out);
        out
    }

    /// `POST {prefix}/rooms/{roomId}/unpeek` (R12), the room id percent-encoded.
    pub fn unpeek_path(self, room: &RoomId) -> String {
        let mut out = format!("{}/rooms/", self.as_str());
        percent_encode_into(room.as_str(), &mut out);
        out.push_str("/unpeek");
        out
    }
}

/// Where the MSC2444 endpoints are mounted (R28; docs/architecture.md §11b).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum FederationPrefix {
    /// `/_matrix/federation/v1`, as the MSC, Dendrite and palpo use.
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
            FederationPrefix::Stable => "/_matrix/federation/v1",
            FederationPrefix::Unstable => "/_matrix/federation/unstable/org.matrix.msc2444",
            FederationPrefix::Custom(p) => p.trim_end_matches('/'),
        }
    }

    /// `{prefix}/peek/{roomId}/{peekId}`: the `PUT` (start, R48) and `DELETE` (stop, R55) path.
    pub fn peek_path(&self, room: &RoomId, peek_id: &str) -> String {
        let mut out = format!("{}/peek/", self.as_str());
        percent_encode_into(room.as_str(), &mut out);
        out.push('/');
        percent_encode_into(peek_id, &mut out);
        out
    }

    /// The `PUT` path with its query: `{prefix}/peek/{roomId}/{peekId}?ver=…&ver=…` (R48).
    pub fn peek_path_with_ver(
        &self,
        room: &RoomId,
        peek_id: &str,
        ver: &[RoomVersionId],
    ) -> String {
        let mut out = self.peek_path(room, peek_id);
        if !ver.is_empty() {
            out.push('?');
            out.push_str(&ver_query(ver));
        }
        out
    }

    /// `{prefix}/peek/{roomId}/{peekId}/renew`: the `POST` renewal path (R41, R53).
    pub fn renew_path(&self, room: &RoomId, peek_id: &str) -> String {
        let mut out = self.peek_path(room, peek_id);
        out.push_str("/renew");
        out
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
    /// Parses a request path (a `?query` is ignored) under `prefix`.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_coding_round_trips() {
        for s in ["!a:b.org", "#alias:b.org", "a/b?c=d&e", "ünï", "%zz", ""] {
            let mut enc = String::new();
            percent_encode_into(s, &mut enc);
            assert!(!enc.contains(['/', '#', '?', '!', ':']));
            assert_eq!(percent_decode(&enc).as_deref(), Some(s));
        }
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%FF"), None);
    }
}
