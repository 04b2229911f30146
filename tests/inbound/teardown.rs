//! How inbound peeks end and who is relayed to meanwhile: `DELETE` (R42, B-3), one destination
//! per server (R39, B-9), access lost (R40) and a server denied by the ACL (R45).

use matrix_peek::{
    InboundChange, InboundEndReason, InboundKey, InboundOutput, InboundPeekError, RoomAccess,
};
use ruma_common::RoomVersionId;

use crate::support::*;

#[test]
fn delete_of_unknown_peek_is_not_found_and_never_creates_one() {
    // B-3, R42
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    assert_eq!(m.handle_unpeek(t(1), &s, &r, "p"), Err(InboundPeekError::UnknownPeek));
    assert_eq!(m.handle_renew(t(1), &s, &r, "p"), Err(InboundPeekError::UnknownPeek));
    assert!(m.is_empty());
    assert!(m.poll_output().is_none());
    peek(&mut m, 2, "a.org", "!r:x.org", "p").unwrap();
    drain(&mut m);
    assert_eq!(m.handle_unpeek(t(3), &s, &r, "p"), Ok(()));
    assert_eq!(dests(&m, &r), Vec::<String>::new());
    assert!(!m.is_peeking(&s, &r, "p"));
    let key = InboundKey { server: s.clone(), room_id: r.clone(), peek_id: "p".into() };
    // A delete by the remote: Persist, no Expired.
    assert_eq!(drain(&mut m), [InboundOutput::Persist(InboundChange::Remove(key))]);
    assert_eq!(m.handle_unpeek(t(4), &s, &r, "p"), Err(InboundPeekError::UnknownPeek));
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn one_destination_per_server_however_many_peeks() {
    // R39, B-9
    let mut m = machine();
    let r = room("!r:x.org");
    for id in ["p1", "p2", "p3"] {
        assert_eq!(peek(&mut m, 1, "a.org", "!r:x.org", id), Ok(false));
    }
    peek(&mut m, 1, "b.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "c.org", "!other:x.org", "p1").unwrap();
    assert_eq!(dests(&m, &r), ["a.org", "b.org"]);
    assert_eq!(m.destinations(&r).count(), 2);
    let a = srv("a.org");
    m.handle_unpeek(t(2), &a, &r, "p2").unwrap();
    m.handle_unpeek(t(2), &a, &r, "p1").unwrap();
    assert_eq!(dests(&m, &r), ["a.org", "b.org"]);
    assert!(m.is_peeking(&a, &r, "p3"));
    m.handle_unpeek(t(3), &a, &r, "p3").unwrap();
    assert_eq!(dests(&m, &r), ["b.org"]);
    // Same peek id from another server or room is a different peek (B-9).
    assert!(m.is_peeking(&srv("b.org"), &r, "p1"));
    assert!(m.is_peeking(&srv("c.org"), &room("!other:x.org"), "p1"));
    assert!(!m.is_peeking(&srv("c.org"), &r, "p1"));
}

#[test]
fn access_lost_expires_every_peek_of_the_room() {
    // R40
    let mut m = machine();
    let r = room("!r:x.org");
    peek(&mut m, 1, "a.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "a.org", "!r:x.org", "p2").unwrap();
    peek(&mut m, 1, "b.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "b.org", "!s:x.org", "p1").unwrap();
    drain(&mut m);
    m.handle_access_changed(t(2), &r, &open());
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.len(), 4);
    m.handle_access_changed(t(3), &r, &RoomAccess::new(RoomVersionId::V10, true, true));
    let mut e = expired(&drain(&mut m));
    e.sort_by(|x, y| (&x.0, &x.1, &x.2).cmp(&(&y.0, &y.1, &y.2)));
    let reason = InboundEndReason::AccessLost;
    assert_eq!(
        e,
        [
            ("a.org".into(), "!r:x.org".into(), "p1".into(), reason),
            ("a.org".into(), "!r:x.org".into(), "p2".into(), reason),
            ("b.org".into(), "!r:x.org".into(), "p1".into(), reason),
        ]
    );
    assert_eq!(m.destinations(&r).count(), 0);
    assert_eq!(m.len(), 1);
    assert_eq!(m.room_count(), 1);
}

#[test]
fn server_denied_expires_only_that_servers_peeks() {
    // R45
    let mut m = machine();
    let r = room("!r:x.org");
    peek(&mut m, 1, "a.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "a.org", "!r:x.org", "p2").unwrap();
    peek(&mut m, 1, "a.org", "!s:x.org", "p1").unwrap();
    peek(&mut m, 1, "b.org", "!r:x.org", "p1").unwrap();
    drain(&mut m);
    m.handle_server_denied(t(2), &r, &srv("a.org"));
    let e = expired(&drain(&mut m));
    assert_eq!(e.len(), 2);
    assert!(
        e.iter()
            .all(|x| x.0 == "a.org" && x.1 == "!r:x.org" && x.3 == InboundEndReason::ServerDenied)
    );
    assert_eq!(dests(&m, &r), ["b.org"]);
    assert!(m.is_peeking(&srv("a.org"), &room("!s:x.org"), "p1"));
    m.handle_server_denied(t(3), &r, &srv("unknown.org"));
    assert!(drain(&mut m).is_empty());
}
