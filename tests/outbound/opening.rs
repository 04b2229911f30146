//! How a federated peek is opened: one per room whatever the demand (R58), candidates from
//! `via` and never from the room id (R46, B-13), failover on refusal with the most specific
//! error (R60), deletion of a peek granted with a bad answer (R49, R55), a peek through A never
//! counting for B (B-9), and `max_rooms`.

use matrix_peek::{
    OutboundChange, OutboundConfig, OutboundFailure, OutboundKey, OutboundOutput,
    OutboundPeekError, OutboundRecord, OutboundRequestKind, OutboundState,
};
use ruma_common::RoomVersionId;

use crate::support::*;

#[test]
fn every_output_of_a_peek_opened_names_its_room_and_resident_by_one_shared_copy() {
    // The outputs carry the machine's own copies (docs/architecture.md §12): the two records,
    // the `PUT` and `Established` name the room and the resident without copying either.
    let mut h = H::new();
    let r = room("!r:remote.org");
    let mut out = h.demand(&r, &["remote.org"]);
    let put = sends(&out).remove(0);
    out.extend(h.respond(&put, established(HOUR)));
    let mut named = Vec::new();
    for o in &out {
        match o {
            OutboundOutput::Persist(OutboundChange::Upsert(OutboundRecord::Peek(p))) => {
                named.push((p.room_id.clone(), p.server.clone()));
            }
            OutboundOutput::Send(req) => named.push((req.room_id.clone(), req.server.clone())),
            OutboundOutput::Established { room_id, server, .. } => {
                named.push((room_id.clone(), server.clone()));
            }
            _ => {}
        }
    }
    assert_eq!(named.len(), 4, "Opening record, PUT, Live record, Established: {out:?}");
    let resident = server("remote.org");
    for (room_id, via) in &named {
        assert!(*room_id == r && *via == resident, "{room_id} via {via}");
        assert!(room_id.ptr_eq(&put.room_id) && via.ptr_eq(&put.server), "{room_id} copied");
    }
}

#[test]
fn five_devices_share_one_federated_peek() {
    // R58
    let mut h = H::new();
    let r = room("!r:remote.org");
    let mut sends = Vec::new();
    for _ in 0..5 {
        sends.extend(h.demand(&r, &["remote.org"]));
    }
    let put = only_send(sends);
    assert!(matches!(put.kind, OutboundRequestKind::Peek { .. }));
    assert_eq!(put.server, server("remote.org"));
    assert_eq!(h.m.len(), 1);
    assert_eq!(h.m.in_flight(), 1);
    let out = h.respond(&put, established(HOUR));
    assert!(out.iter().any(|o| matches!(o, OutboundOutput::Established { .. })));
    no_sends(&h.demand(&r, &["remote.org"]));
}

#[test]
fn v12_room_id_uses_via_and_never_a_domain() {
    // R46, B-13
    let mut h = H::new();
    let v12 = room(&format!("!{}", "a".repeat(43)));
    assert!(v12.server_name().is_none());
    let out = h.demand(&v12, &[]);
    assert_eq!(
        out,
        vec![OutboundOutput::Unavailable {
            room_id: v12.clone().into(),
            error: OutboundPeekError::NoCandidates
        }]
    );
    assert_eq!(h.m.len(), 0);
    let put = only_send(h.demand(&v12, &["b.org", "b.org", "c.org"]));
    assert_eq!(put.server, server("b.org"));
    let next = only_send(h.respond(&put, failed(OutboundFailure::NotFound)));
    assert_eq!(next.server, server("c.org"));
}

#[test]
fn refusal_fails_over_and_all_refusing_is_unavailable_with_the_most_specific_error() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org", "c.org"]));
    assert_eq!(put.server, server("a.org"));
    let next = only_send(h.respond(&put, failed(OutboundFailure::NotFound)));
    assert_eq!(next.server, server("b.org"));
    assert_ne!(next.peek_id, put.peek_id);
    let next2 = only_send(h.respond(&next, failed(OutboundFailure::Forbidden)));
    assert_eq!(next2.server, server("c.org"));
    let out = h.respond(&next2, failed(OutboundFailure::IncompatibleRoomVersion));
    assert_eq!(
        out.last(),
        Some(&OutboundOutput::Unavailable {
            room_id: r.clone().into(),
            error: OutboundPeekError::Remote(OutboundFailure::Forbidden)
        })
    );
    no_sends(&out);
    assert_eq!(h.m.len(), 0);
    assert!(h.store.keys().all(|k| !matches!(k, OutboundKey::Room(_))), "no leftover record");
}

#[test]
fn forbidden_from_the_first_candidate_peeks_the_second() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    let next = only_send(h.respond(&put, failed(OutboundFailure::Forbidden)));
    assert_eq!(next.server, server("b.org"));
    let out = h.respond(&next, established(HOUR));
    assert!(out.contains(&OutboundOutput::Established {
        room_id: r.clone().into(),
        server: server("b.org").into(),
        access: access(),
        missed_since: None,
    }));
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("b.org")));
}

#[test]
fn invalid_response_deletes_the_granted_peek_in_the_background_and_fails_over() {
    // R49, R55, R60: the next candidate is asked at once; the DELETE never delays it.
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    let out = h.respond(&put, failed(OutboundFailure::InvalidResponse));
    let sends: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            OutboundOutput::Send(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 2, "{sends:?}");
    let (next, del) = (&sends[0], &sends[1]);
    assert!(matches!(next.kind, OutboundRequestKind::Peek { .. }));
    assert_eq!(next.server, server("b.org"), "the new PUT goes first");
    assert_eq!(
        (del.kind.clone(), &del.server, &del.peek_id),
        (OutboundRequestKind::Unpeek, &put.server, &put.peek_id)
    );
    assert_eq!(h.m.state(&r), Some(OutboundState::Connecting));
    no_sends(&h.respond(del, failed(OutboundFailure::NotFound)));
    h.respond(next, established(HOUR));
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("b.org")));
    // An Established of an unsupported version counts as incompatible and is deleted too.
    let cfg = OutboundConfig {
        supported_versions: vec![RoomVersionId::V10],
        ..OutboundConfig::default()
    };
    let mut h = H::with(cfg);
    let put = only_send(h.demand(&r, &["a.org"]));
    let out = h.respond(&put, established(HOUR));
    assert!(out.contains(&OutboundOutput::Unavailable {
        room_id: r.clone().into(),
        error: OutboundPeekError::Remote(OutboundFailure::IncompatibleRoomVersion)
    }));
    assert_eq!(only_send(out).kind, OutboundRequestKind::Unpeek);
}

#[test]
fn a_peek_through_a_never_makes_a_demand_via_b_look_established() {
    // B-9
    let mut h = H::new();
    let r = room("!r:a.org");
    let other = room("!other:b.org");
    h.open(&r, "a.org", HOUR);
    let put_b = only_send(h.demand(&other, &["b.org"]));
    assert_eq!(h.m.established(&other), None);
    no_sends(&h.demand(&r, &["b.org"])); // merges b.org as a candidate, no second peek
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("a.org")));
    // A loses the peek; until B grants one, nothing is established.
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, "nope");
    assert!(h.drain().is_empty());
    let renew = only_send(h.fire());
    let reopen = only_send(h.respond(&renew, failed(OutboundFailure::Forbidden)));
    assert_eq!(reopen.server, server("b.org"));
    assert_eq!(h.m.established(&r), None);
    h.respond(&reopen, established(HOUR));
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("b.org")));
    h.respond(&put_b, failed(OutboundFailure::Forbidden));
    assert_eq!(h.m.established(&other), None);
}

#[test]
fn max_rooms_is_enforced() {
    let cfg = OutboundConfig { max_rooms: 2, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    h.demand(&room("!a:x.org"), &["x.org"]);
    h.demand(&room("!b:x.org"), &["x.org"]);
    let r = room("!c:x.org");
    assert_eq!(
        h.demand(&r, &["x.org"]),
        vec![OutboundOutput::Unavailable {
            room_id: r.into(),
            error: OutboundPeekError::LimitExceeded
        }]
    );
}
