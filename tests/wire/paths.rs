//! `ver` (R33, R48) and the client and federation paths (R1, R12, R28, R41, R42): built by ruma,
//! parsed back by ruma and by `FederationPeekPath`, and peek ids that must not become dot
//! segments.

use matrix_peek::wire::{
    ClientPrefix, FederationPeekPath, FederationPeekRequest, FederationPrefix,
    FederationRenewRequest, FederationUnpeekRequest, MAX_VER, PeekIdSegment, WireError,
};
use ruma_common::api::Metadata;
use ruma_common::api::path_builder::PathBuilder;
use ruma_common::api::{IncomingRequestExt, OutgoingRequestExt};
use ruma_common::{RoomId, RoomOrAliasId, RoomVersionId, owned_room_id};

use crate::support::{put_with_query, request};

// ---- ver (R33, R48) ----

#[test]
fn ver_is_repeatable_decoded_defaulted_and_bounded() {
    // R33: parsed by ruma's query parser into `FederationPeekRequest::ver`.
    let ver = |q: &str| put_with_query(q).map(|r| r.ver);
    assert_eq!(ver("ver=9&ver=10").unwrap(), [RoomVersionId::V9, RoomVersionId::V10]);
    assert_eq!(ver("ver=9&foo=bar&ver=10&ver=9").unwrap(), [RoomVersionId::V9, RoomVersionId::V10]);
    assert_eq!(ver("ver=%31%32").unwrap(), [RoomVersionId::V12]);
    assert_eq!(ver("ver=org.example%2Dv1").unwrap()[0].as_str(), "org.example-v1");
    // `+` is a space in form encoding, so it makes an invalid version; `%2B` is a real `+`,
    // which room versions may not contain either.
    assert!(matches!(ver("ver=a+b"), Err(WireError::InvalidParam { .. })));
    assert!(matches!(ver("ver=a%2Bb"), Err(WireError::InvalidParam { .. })));
    assert!(matches!(ver("ver=%20"), Err(WireError::InvalidParam { .. })));
    // Absent `ver` means ["1"].
    assert_eq!(ver("").unwrap(), [RoomVersionId::V1]);
    assert_eq!(ver("other=1").unwrap(), [RoomVersionId::V1]);

    let many = vec!["ver=10"; MAX_VER + 1].join("&");
    assert_eq!(ver(&many), Err(WireError::TooMany { what: "ver", limit: MAX_VER }));
    let at_cap = vec!["ver=10"; MAX_VER].join("&");
    assert_eq!(ver(&at_cap).unwrap(), [RoomVersionId::V10]);
}

#[test]
fn ver_is_written_by_ruma_as_repeated_parameters() {
    // R48
    let room = owned_room_id!("!abc:example.org");
    let versions = vec![RoomVersionId::V9, RoomVersionId::V10, RoomVersionId::V12];
    let built = FederationPeekRequest::new(room.clone(), "p1", versions.clone())
        .try_into_http_request::<Vec<u8>>("https://resident.example", (), ())
        .unwrap();
    assert_eq!(built.uri().query(), Some("ver=9&ver=10&ver=12"));
    assert_eq!(put_with_query("ver=9&ver=10&ver=12").unwrap().ver, versions);
    let path = FederationPrefix::Stable.peek_path_with_ver(&room, "p1", &versions);
    assert_eq!(path, "/_matrix/federation/v1/peek/!abc:example.org/p1?ver=9&ver=10&ver=12");
}

// ---- paths (R1, R12, R28, R41, R42) ----

#[test]
fn client_paths_cover_three_prefixes_and_encode_segments() {
    // R1, R12: ruma encodes the segment (`#`; it leaves `!` and `:`, which are legal in a path).
    let alias = <&RoomOrAliasId>::try_from("#lobby:example.org").unwrap();
    assert_eq!(ClientPrefix::V3.peek_path(alias), "/_matrix/client/v3/peek/%23lobby:example.org");
    let room = <&RoomId>::try_from("!abc:example.org").unwrap();
    assert_eq!(
        ClientPrefix::Unstable.unpeek_path(room),
        "/_matrix/client/unstable/org.matrix.msc2753/rooms/!abc:example.org/unpeek"
    );
    assert_eq!(ClientPrefix::R0.peek_path(room.into()), "/_matrix/client/r0/peek/!abc:example.org");
    for prefix in ClientPrefix::ALL {
        assert!(prefix.peek_path(alias).starts_with(prefix.as_str()));
        assert!(prefix.unpeek_path(room).starts_with(prefix.as_str()));
    }
    // A router mounts ruma's templates: all three prefixes of each endpoint.
    let peek: Vec<&str> = matrix_peek::wire::ClientPeekRequest::PATH_BUILDER.all_paths().collect();
    assert_eq!(peek.len(), 3);
    for prefix in ClientPrefix::ALL {
        let template = format!("{}/peek/{{room_id_or_alias}}", prefix.as_str());
        assert!(peek.contains(&template.as_str()), "{peek:?}");
    }
}

#[test]
fn federation_paths_round_trip_through_the_parser() {
    // R28, R41, R42, R48
    let room = <&RoomId>::try_from("!abc:example.org").unwrap();
    for prefix in [
        FederationPrefix::Stable,
        FederationPrefix::Unstable,
        FederationPrefix::Custom("/custom/fed/".into()),
    ] {
        let [put_route, renew_route] = prefix.routes();
        assert_eq!(put_route, format!("{}/peek/{{room_id}}/{{peek_id}}", prefix.as_str()));
        assert_eq!(renew_route, format!("{put_route}/renew"));
        for peek_id in ["abc=_-.", "!abc:example.org", "peek_01J0000000000000000000000", "a%41"] {
            let put = prefix.peek_path(room, peek_id);
            let parsed = FederationPeekPath::parse(&prefix, &put).unwrap();
            assert_eq!(
                (parsed.room_id.as_str(), parsed.peek_id.as_str(), parsed.is_renew),
                ("!abc:example.org", peek_id, false)
            );
            let renew = prefix.renew_path(room, peek_id);
            assert!(FederationPeekPath::parse(&prefix, &renew).unwrap().is_renew);
            let with_ver = prefix.peek_path_with_ver(room, peek_id, &[RoomVersionId::V10]);
            let (path, query) = with_ver.split_once('?').unwrap();
            assert_eq!(path, put);
            assert_eq!(query, "ver=10");
            assert!(!FederationPeekPath::parse(&prefix, &with_ver).unwrap().is_renew);
        }
    }
    assert_eq!(
        FederationPrefix::Stable.peek_path(room, "a1"),
        "/_matrix/federation/v1/peek/!abc:example.org/a1"
    );
}

#[test]
fn a_prefix_moves_a_request_ruma_built() {
    // R28: ruma's federation endpoints have the stable path; `apply` moves them.
    let room = owned_room_id!("!abc:example.org");
    let mut request = FederationRenewRequest::new(room.clone(), "p1")
        .try_into_http_request::<Vec<u8>>("https://resident.example:8448", (), ())
        .unwrap();
    FederationPrefix::Unstable.apply(&mut request).unwrap();
    assert_eq!(
        request.uri().to_string(),
        "https://resident.example:8448/_matrix/federation/unstable/org.matrix.msc2444/peek/\
         !abc:example.org/p1/renew"
    );
    let parsed = FederationPeekPath::parse(&FederationPrefix::Unstable, request.uri().path());
    assert!(parsed.unwrap().is_renew);
    let mut fresh = FederationRenewRequest::new(room, "p1")
        .try_into_http_request::<Vec<u8>>("https://resident.example:8448", (), ())
        .unwrap();
    assert!(matches!(
        FederationPrefix::Custom("/bad\nprefix".into()).apply(&mut fresh),
        Err(WireError::InvalidParam { name: "prefix", .. })
    ));
}

#[test]
fn federation_path_parser_rejects_other_paths_with_typed_errors() {
    let p = FederationPrefix::Stable;
    let bad = |s: &str| FederationPeekPath::parse(&p, s).unwrap_err();
    assert!(matches!(bad("/_matrix/federation/v1/send/1"), WireError::UnknownPath(_)));
    assert!(matches!(bad("/_matrix/federation/v1/peek/!a:b"), WireError::UnknownPath(_)));
    assert!(matches!(bad("/_matrix/federation/v1/peek/!a:b/x/other"), WireError::UnknownPath(_)));
    assert!(matches!(bad("/_matrix/federation/v1/peek/!a:b/x/renew/y"), WireError::UnknownPath(_)));
    assert!(matches!(bad("/_matrix/federation/v1/peek/nope/x"), WireError::InvalidParam { .. }));
    assert_eq!(bad("/_matrix/federation/v1/peek/!a:b/"), WireError::InvalidPeekId);
    let long = format!("/_matrix/federation/v1/peek/!a:b/{}", "x".repeat(256));
    assert_eq!(bad(&long), WireError::InvalidPeekId);
    // The unstable prefix does not match stable paths.
    assert!(matches!(
        FederationPeekPath::parse(
            &FederationPrefix::Unstable,
            "/_matrix/federation/v1/peek/!a:b/x"
        ),
        Err(WireError::UnknownPath(_))
    ));
}

// ---- dot segments (wire bounds) ----

/// RFC 3986 §5.2.4 `remove_dot_segments` on a raw path (no decoding): what a normalising proxy
/// or client library does to `.` and `..` segments.
fn remove_dot_segments(path: &str) -> String {
    let (path, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *segment {
            "." if last => out.push(""),
            "." => {}
            ".." => {
                out.pop();
                if last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let path = format!("/{}", out.join("/"));
    query.map_or(path.clone(), |q| format!("{path}?{q}"))
}

/// What the `url` crate (WHATWG URL parsing, as reqwest uses) makes of `path`.
fn whatwg(path: &str) -> String {
    let url = url::Url::parse(&format!("https://resident.example{path}")).unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

#[test]
fn ruma_alone_would_send_a_dot_peek_id_as_a_dot_segment() {
    // Why `PeekIdSegment` exists: with a plain string, ruma writes `..` as is, and the URL
    // the client sends loses the peek id and the room.
    let room = owned_room_id!("!r:x");
    let raw = <FederationRenewRequest as Metadata>::make_endpoint_url((), "", &[&room, &".."], "");
    let raw = raw.unwrap();
    assert_eq!(raw, "/_matrix/federation/v1/peek/!r:x/../renew");
    assert_eq!(remove_dot_segments(&raw), "/_matrix/federation/v1/peek/renew");
    assert_eq!(whatwg(&raw), "/_matrix/federation/v1/peek/renew");
}

#[test]
fn dot_peek_ids_round_trip_and_survive_dot_segment_removal() {
    // `.` is in MSC2444's strict alphabet; `..` and `...` pass `PeekIdPolicy::Lenient`.
    let room = owned_room_id!("!r:x");
    for peek_id in [".", "..", "...", "%2E", "%2e%2e", "a%2Fb", "a.b", ".a"] {
        let put = FederationPeekRequest::new(room.clone(), peek_id, vec![RoomVersionId::V10]);
        let renew = FederationRenewRequest::new(room.clone(), peek_id);
        let delete = FederationUnpeekRequest::new(room.clone(), peek_id);
        let built = [
            put.try_into_http_request::<Vec<u8>>("https://resident.example", (), ()).unwrap(),
            renew.try_into_http_request("https://resident.example", (), ()).unwrap(),
            delete.try_into_http_request("https://resident.example", (), ()).unwrap(),
        ];
        for http_request in built {
            let path_and_query = http_request.uri().path_and_query().unwrap().as_str();
            assert_eq!(remove_dot_segments(path_and_query), path_and_query, "{peek_id:?}");
            if !matches!(peek_id, "." | "..") {
                assert_eq!(whatwg(path_and_query), path_and_query, "{peek_id:?}");
            }
            let target = FederationPeekPath::parse(&FederationPrefix::Stable, path_and_query);
            let target = target.unwrap();
            assert_eq!(target.peek_id, peek_id);
            assert_eq!(target.room_id, room);
            let incoming = request(&http_request);
            let args = target.path_args();
            let parsed = match (http_request.method().as_str(), target.is_renew) {
                ("PUT", false) => {
                    FederationPeekRequest::try_from_http_request(incoming, &args).unwrap().peek_id
                }
                ("POST", true) => {
                    FederationRenewRequest::try_from_http_request(incoming, &args).unwrap().peek_id
                }
                ("DELETE", false) => {
                    FederationUnpeekRequest::try_from_http_request(incoming, &args).unwrap().peek_id
                }
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(parsed.as_str(), peek_id);
        }
        // The string builders agree with ruma's requests.
        let path = FederationPrefix::Unstable.renew_path(&room, peek_id);
        assert_eq!(remove_dot_segments(&path), path);
        assert_eq!(
            FederationPeekPath::parse(&FederationPrefix::Unstable, &path).unwrap().peek_id,
            peek_id
        );
    }
    assert_eq!(PeekIdSegment::new("..").to_string(), "%2E%2E");
}

#[test]
fn whatwg_urls_cannot_carry_a_lone_dot_or_two_in_any_spelling() {
    // The WHATWG URL standard (the `url` crate, reqwest, browsers) reads `%2E` as `.` in a
    // path, so no spelling of the ids `.` and `..` survives a client built on it. The
    // outbound machine never makes such ids (8 characters of `[0-9a-zA-Z_-]`); a resident
    // receives them only from clients that do not normalise, and answers them like any id.
    let room = owned_room_id!("!r:x");
    let path = FederationPrefix::Stable.renew_path(&room, "..");
    assert_eq!(path, "/_matrix/federation/v1/peek/!r:x/%2E%2E/renew");
    assert_eq!(whatwg(&path), "/_matrix/federation/v1/peek/renew");
    let path = FederationPrefix::Stable.peek_path(&room, ".");
    assert_eq!(whatwg(&path), "/_matrix/federation/v1/peek/!r:x/");
}
