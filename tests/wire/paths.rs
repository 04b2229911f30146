//! `ver` parsing (R33, R48) and the client and federation paths (R1, R12, R28, R41, R42):
//! built, encoded and parsed back.

use matrix_peek::wire::{
    ClientPrefix, FederationPeekPath, FederationPrefix, MAX_VER, WireError, parse_ver,
};
use ruma_common::{RoomId, RoomOrAliasId, RoomVersionId};

// ---- ver (R33, R48) ----

#[test]
fn ver_is_repeatable_decoded_defaulted_and_bounded() {
    // R33
    assert_eq!(parse_ver("ver=9&ver=10").unwrap(), [RoomVersionId::V9, RoomVersionId::V10]);
    assert_eq!(
        parse_ver("?ver=9&foo=bar&ver=10&ver=9").unwrap(),
        [RoomVersionId::V9, RoomVersionId::V10]
    );
    assert_eq!(parse_ver("ver=%31%32").unwrap(), [RoomVersionId::V12]);
    assert_eq!(parse_ver("ver=org.example%2Dv1").unwrap()[0].as_str(), "org.example-v1");
    // `+` is a space in form encoding, so it makes an invalid version; `%2B` is a real `+`,
    // which room versions may not contain either.
    assert!(matches!(parse_ver("ver=a+b"), Err(WireError::InvalidParam { name: "ver", .. })));
    assert!(matches!(parse_ver("ver=a%2Bb"), Err(WireError::InvalidParam { name: "ver", .. })));
    assert_eq!(parse_ver("").unwrap(), [RoomVersionId::V1]);
    assert_eq!(parse_ver("other=1").unwrap(), [RoomVersionId::V1]);
    assert!(matches!(parse_ver("ver=%FF"), Err(WireError::InvalidParam { .. })));

    let many = vec!["ver=10"; 10_000].join("&");
    assert_eq!(parse_ver(&many), Err(WireError::TooMany { what: "ver", limit: MAX_VER }));
    let at_cap = vec!["ver=10"; MAX_VER].join("&");
    assert_eq!(parse_ver(&at_cap).unwrap(), [RoomVersionId::V10]);
}

// ---- paths (R1, R12, R28, R41, R42) ----

#[test]
fn client_paths_cover_three_prefixes_and_encode_segments() {
    // R1, R12
    let alias = <&RoomOrAliasId>::try_from("#lobby:example.org").unwrap();
    assert_eq!(ClientPrefix::V3.peek_path(alias), "/_matrix/client/v3/peek/%23lobby%3Aexample.org");
    let room = <&RoomId>::try_from("!abc:example.org").unwrap();
    assert_eq!(
        ClientPrefix::Unstable.unpeek_path(room),
        "/_matrix/client/unstable/org.matrix.msc2753/rooms/%21abc%3Aexample.org/unpeek"
    );
    assert_eq!(
        ClientPrefix::R0.peek_path(room.into()),
        "/_matrix/client/r0/peek/%21abc%3Aexample.org"
    );
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
        for peek_id in ["abc=_-.", "!abc:example.org", "peek_01J0000000000000000000000"] {
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
            assert_eq!(parse_ver(query).unwrap(), [RoomVersionId::V10]);
            assert!(!FederationPeekPath::parse(&prefix, &with_ver).unwrap().is_renew);
        }
    }
    assert_eq!(
        FederationPrefix::Stable.peek_path(room, "a1"),
        "/_matrix/federation/v1/peek/%21abc%3Aexample.org/a1"
    );
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
