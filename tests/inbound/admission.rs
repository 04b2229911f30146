//! Which federated peeks a resident accepts: peek ids under both policies (R29), unknown rooms
//! (R31), rooms that are not peekable (R32, B-6) and room versions (R33).

use matrix_peek::{InboundConfig, InboundPeekError, InboundPeeks, PeekIdPolicy, RoomAccess};
use ruma_common::RoomVersionId;

use crate::support::*;

#[test]
fn strict_policy_checks_peek_ids_first() {
    // R29
    let mut m = InboundPeeks::new(InboundConfig {
        peek_id_policy: PeekIdPolicy::Strict,
        ..InboundConfig::default()
    });
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    for ok in ["a", "Zz09.=_-"] {
        assert!(m.handle_peek(t(1), &s, &r, ok, &v10(), Some(&open())).is_ok(), "{ok}");
    }
    for bad in ["", "123456789", "a/b", "!room:server", "é"] {
        // Even with an unknown room: the id check comes first.
        assert_eq!(
            m.handle_peek(t(1), &s, &r, bad, &v10(), None),
            Err(InboundPeekError::InvalidPeekId),
            "{bad:?}"
        );
    }
    assert_eq!(m.len(), 2);
}

#[test]
fn lenient_policy_accepts_dendrite_and_palpo_ids() {
    // R29 relaxed for deployed peers (docs/requirements.md#r29: Dendrite uses the room id, palpo peek_<ULID>)
    let mut m = machine();
    assert_eq!(InboundConfig::default().peek_id_policy, PeekIdPolicy::Lenient);
    let palpo = "peek_01HZX3K4M5N6P7Q8R9S0T1V2W3";
    assert_eq!(palpo.len(), 31);
    assert_eq!(peek(&mut m, 1, "dendrite.org", "!abc:example.org", "!abc:example.org"), Ok(false));
    assert_eq!(peek(&mut m, 1, "palpo.org", "!abc:example.org", palpo), Ok(false));
    for bad in ["a/b".to_owned(), "a\u{1}b".to_owned(), "a\tb".to_owned(), "x".repeat(256)] {
        assert_eq!(
            peek(&mut m, 1, "a.org", "!abc:example.org", &bad),
            Err(InboundPeekError::InvalidPeekId)
        );
    }
    assert_eq!(peek(&mut m, 1, "a.org", "!abc:example.org", &"x".repeat(255)), Ok(false));
}

#[test]
fn unknown_room_is_not_found() {
    // R31
    let mut m = machine();
    let r = m.handle_peek(t(1), &srv("a.org"), &room("!r:x.org"), "p", &v10(), None);
    assert_eq!(r, Err(InboundPeekError::UnknownRoom));
    assert!(m.is_empty());
    assert!(m.poll_output().is_none());
}

#[test]
fn shared_or_encrypted_rooms_are_not_peekable() {
    // R32, B-6
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    let shared = RoomAccess::new(RoomVersionId::V10, false, false);
    let encrypted = RoomAccess::new(RoomVersionId::V10, true, true);
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p", &v10(), Some(&shared)),
        Err(InboundPeekError::NotPeekable)
    );
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p", &v10(), Some(&encrypted)),
        Err(InboundPeekError::NotPeekable)
    );
    // Not peekable is checked before the version.
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p", &[], Some(&shared)),
        Err(InboundPeekError::NotPeekable)
    );
    assert!(m.is_empty());
}

#[test]
fn empty_ver_means_version_one() {
    // R33
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    let v1 = RoomAccess::new(RoomVersionId::V1, true, false);
    assert!(m.handle_peek(t(1), &s, &r, "p1", &[], Some(&v1)).is_ok());
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p2", &[], Some(&open())),
        Err(InboundPeekError::IncompatibleRoomVersion { room_version: RoomVersionId::V10 })
    );
    let both = [RoomVersionId::V9, RoomVersionId::V10];
    assert!(m.handle_peek(t(1), &s, &r, "p3", &both, Some(&open())).is_ok());
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p4", &[RoomVersionId::V9], Some(&open())),
        Err(InboundPeekError::IncompatibleRoomVersion { room_version: RoomVersionId::V10 })
    );
    assert_eq!(m.len(), 2);
}
