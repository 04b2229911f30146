//! Restart tests of `OutboundPeeks` (R59, R47): what a crash and `restore` keep and redo.

use std::collections::HashSet;
use std::time::Duration;

use matrix_peek::{
    OutboundFailure, OutboundKey, OutboundOutcome, OutboundRecord, OutboundRequestKind,
    OutboundState, PeekIdPolicy,
};

use crate::support::*;

#[test]
fn ten_thousand_peek_ids_in_one_room_are_distinct_valid_and_survive_restore() {
    // R47
    let mut h = H::new();
    let r = room("!r:a.org");
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        // Two requests per round (PUT, DELETE): two seconds keep within the room's pacer.
        h.now += 2_000;
        let put = only_send(h.demand(&r, &["a.org"]));
        assert!(
            PeekIdPolicy::Strict.accepts(&put.peek_id) && put.peek_id.len() == 8,
            "{}",
            put.peek_id
        );
        assert!(seen.insert(put.peek_id.clone()), "reused {}", put.peek_id);
        h.respond(&put, established(HOUR));
        h.m.handle_server_joined(h.t(), &r);
        let del = only_send(h.drain());
        h.respond(&del, OutboundOutcome::Deleted);
        h.m.handle_server_left(h.t(), &r);
        h.drain();
    }
    h.restore();
    let put = only_send(h.demand(&r, &["a.org"]));
    assert!(!seen.contains(&put.peek_id), "id reused after restore");
    assert!(PeekIdPolicy::Strict.accepts(&put.peek_id));
}

#[test]
fn restore_mid_renewal_renews_at_the_stored_time() {
    // R59, R53
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let due = h.m.poll_timeout().unwrap();
    h.advance(Duration::from_secs(60));
    h.restore();
    assert!(h.drain().is_empty(), "nothing to send at once");
    // The host re-declares demand (as LocalPeeks does after its own restore).
    no_sends(&h.demand(&r, &["a.org"]));
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    assert_eq!(
        h.m.established(&r).map(|(s, a)| (s.to_owned(), a.clone())),
        Some((server("a.org"), access()))
    );
    assert_eq!(h.m.poll_timeout(), Some(due));
    let renew = only_send(h.fire());
    assert_eq!(h.t(), due);
    assert_eq!((renew.kind, renew.peek_id), (OutboundRequestKind::Renew, put.peek_id));
}

#[test]
fn restore_with_a_renewal_in_flight_resends_it_when_due() {
    // R59
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    let renew = only_send(h.fire());
    h.restore();
    // The renewal was due before the crash: re-sent at once, also while lingering.
    let again = only_send(h.drain());
    assert_eq!((&again.kind, &again.peek_id), (&OutboundRequestKind::Renew, &renew.peek_id));
    h.m.handle_response(h.t(), renew.id, OutboundOutcome::Renewed { renewal_interval: Some(HOUR) });
    assert!(h.drain().is_empty(), "a pre-crash answer is an unknown id");
    assert_eq!(h.m.state(&r), Some(OutboundState::Renewing));
    no_sends(&h.demand(&r, &["a.org"]));
    h.respond(&again, OutboundOutcome::Renewed { renewal_interval: Some(HOUR) });
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    assert_ne!(again.id, renew.id, "request ids are not reused across restarts");
}

#[test]
fn restored_peek_without_demand_is_deleted_after_linger() {
    // R59, R55
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    h.restore();
    assert_eq!(h.m.state(&r), Some(OutboundState::Lingering));
    no_sends(&h.advance(h.config.linger - Duration::from_millis(1)));
    let del = only_send(h.advance(Duration::from_millis(1)));
    assert_eq!((del.kind.clone(), del.peek_id.clone()), (OutboundRequestKind::Unpeek, put.peek_id));
    h.respond(&del, OutboundOutcome::Deleted);
    assert_eq!(h.m.len(), 0);
}

#[test]
fn restore_resends_pending_deletes_and_settles_unanswered_puts() {
    // R59
    let mut h = H::new();
    let (a, b) = (room("!a:x.org"), room("!b:x.org"));
    h.open(&a, "x.org", HOUR);
    h.m.handle_server_joined(h.t(), &a);
    let _lost_delete = only_send(h.drain());
    let lost_put = only_send(h.demand(&b, &["x.org"]));
    h.restore();
    let del = only_send(h.drain());
    assert_eq!((del.kind, del.room_id), (OutboundRequestKind::Unpeek, a.clone().into()));
    // The unanswered PUT is re-sent with the same id once demand returns (idempotent).
    let put = only_send(h.demand(&b, &["x.org"]));
    assert_eq!((&put.peek_id, &put.server), (&lost_put.peek_id, &lost_put.server));
}

#[test]
fn restored_machine_answers_queries_like_the_original() {
    // R59, docs/architecture.md §8.2
    let mut h = H::new();
    let rooms: Vec<_> = (0..5).map(|i| room(&format!("!r{i}:a.org"))).collect();
    for (i, r) in rooms.iter().enumerate() {
        h.open(r, "a.org", HOUR * (i as u32 + 1));
        h.advance(Duration::from_secs(7));
    }
    h.m.handle_no_demand(h.t(), &rooms[4]);
    h.drain();
    let before: Vec<_> = rooms
        .iter()
        .map(|r| (h.m.state(r), h.m.established(r).map(|(s, a)| (s.to_owned(), a.clone()))))
        .collect();
    let (timeout, len) = (h.m.poll_timeout(), h.m.len());
    let original = h.m.clone();
    h.restore();
    for r in &rooms[..4] {
        no_sends(&h.demand(r, &["a.org"]));
    }
    let after: Vec<_> = rooms
        .iter()
        .map(|r| (h.m.state(r), h.m.established(r).map(|(s, a)| (s.to_owned(), a.clone()))))
        .collect();
    assert_eq!(before, after);
    assert_eq!((h.m.poll_timeout(), h.m.len()), (timeout, len));
    assert_eq!(original.in_flight(), h.m.in_flight());
}

#[test]
fn a_changed_access_of_a_granted_peek_survives_a_restart() {
    // R59: the stored record carries the access, and no later write is owed to it.
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    let newer = matrix_peek::RoomAccess::new(ruma_common::RoomVersionId::V12, true, false);
    h.m.handle_access_changed(h.t(), &r, &newer);
    h.drain();
    h.restore();
    let (server, access) = h.m.granted(&r).expect("the peek is restored as granted");
    assert_eq!((server.as_str(), access), ("a.org", &newer));
}

/// Stores a `Retired` record of `put`'s peek beside the room's current record (a crash between
/// `retire`'s `Retired` write and the room's own update), restores, and checks that the peek
/// is deleted once and the stale room record dropped. Returns that `DELETE` and the record's
/// key.
fn restore_with_a_retired_twin(
    h: &mut H,
    r: &ruma_common::RoomId,
    put: &matrix_peek::OutboundRequest,
) -> (matrix_peek::OutboundRequest, OutboundKey) {
    let retired = OutboundRecord::Retired {
        room_id: r.to_owned().into(),
        server: put.server.clone(),
        peek_id: put.peek_id.clone(),
    };
    let key = retired.key();
    h.store.insert(key.clone(), retired);
    assert!(h.store.contains_key(&OutboundKey::Room(r.to_owned().into())));
    h.restore();
    let out = h.drain();
    let deletes: Vec<_> = sends(&out);
    assert_eq!(deletes.len(), 1, "{out:?}");
    assert_eq!(
        (deletes[0].kind.clone(), &deletes[0].peek_id),
        (OutboundRequestKind::Unpeek, &put.peek_id)
    );
    assert!(
        !h.store.contains_key(&OutboundKey::Room(r.to_owned().into())),
        "the stale room record goes"
    );
    (deletes.into_iter().next().expect("one DELETE"), key)
}

#[test]
fn a_stored_current_peek_that_is_also_retired_is_retired_once_and_its_room_record_dropped() {
    // R59: the restored machine deletes the peek once (`H` checks that every `DELETE` finds
    // its `Retired` record stored), drops the stale room record, and a later join or answer
    // cannot send a `DELETE` whose record is gone.
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let (delete, key) = restore_with_a_retired_twin(&mut h, &r, &put);
    // A join now has no current peek to retire: no second DELETE of the same peek.
    h.m.handle_server_joined(h.t(), &r);
    no_sends(&h.drain());
    // A failed DELETE is retried against the stored record, then answered.
    no_sends(&h.respond(&delete, failed(OutboundFailure::Unreachable)));
    let retry = only_send(h.fire());
    assert_eq!(retry.peek_id, put.peek_id);
    h.respond(&retry, OutboundOutcome::Deleted);
    assert!(!h.store.contains_key(&key));
}

#[test]
fn a_stored_opening_peek_that_is_also_retired_is_deleted_once_and_never_put_again() {
    // R59, R47: the twin of an unanswered `PUT` is deleted like a granted one, and demanding
    // the room again opens a new peek id instead of re-`PUT`ting the retired one.
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org"]));
    assert!(matches!(put.kind, OutboundRequestKind::Peek { .. }), "{put:?}");
    let (delete, key) = restore_with_a_retired_twin(&mut h, &r, &put);
    let again = sends(&h.demand(&r, &["a.org"]));
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(matches!(again[0].kind, OutboundRequestKind::Peek { .. }), "{again:?}");
    assert_ne!(again[0].peek_id, put.peek_id, "a retired peek id is never current again");
    h.respond(&delete, OutboundOutcome::Deleted);
    assert!(!h.store.contains_key(&key));
    h.respond(&again[0], established(HOUR));
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}
