//! How a federated peek is given up: a join deletes it and keeps it from coming back (R56,
//! R57), the linger before exactly one `DELETE` (R55), bounded `DELETE` retries, and access
//! lost deleting at once (R40, R24).

use std::time::Duration;

use matrix_peek::{
    OutboundChange, OutboundFailure, OutboundKey, OutboundLostReason, OutboundOutcome,
    OutboundOutput, OutboundPeekError, OutboundRecord, OutboundRequestKind, OutboundState,
    RoomAccess,
};
use ruma_common::RoomVersionId;

use crate::support::*;

#[test]
fn joined_room_is_unpeeked_and_never_peeked_again_until_left() {
    // R56, R57
    let mut h = H::new();
    let r = room("!r:remote.org");
    h.open(&r, "remote.org", HOUR);
    h.m.handle_server_joined(h.t(), &r);
    let del = only_send(h.drain());
    assert_eq!(del.kind, OutboundRequestKind::Unpeek);
    h.respond(&del, OutboundOutcome::Deleted);
    assert_eq!(h.m.state(&r), None);
    no_sends(&h.demand(&r, &["remote.org"]));
    no_sends(&h.advance(Duration::from_secs(3600 * 10)));
    assert_eq!(h.m.len(), 0);
    assert!(h.m.is_joined(&r));
    // The marker survives a restart.
    h.restore();
    no_sends(&h.demand(&r, &["remote.org"]));
    h.m.handle_server_left(h.t(), &r);
    h.drain();
    let put = only_send(h.demand(&r, &["remote.org"]));
    assert!(matches!(put.kind, OutboundRequestKind::Peek { .. }));
}

#[test]
fn the_joined_marker_is_written_once_and_removed_under_its_own_key() {
    // R56, R57, R59: a join of a known room and of an unknown one each write one marker; a
    // repeated join writes nothing; leaving removes the marker under the key it was written
    // with, once.
    let mut h = H::new();
    let (known, unknown) = (room("!known:remote.org"), room("!unknown:remote.org"));
    let put = h.open(&known, "remote.org", HOUR);
    let markers = |out: &[OutboundOutput]| -> Vec<OutboundChange> {
        out.iter()
            .filter_map(|o| match o {
                OutboundOutput::Persist(
                    c @ (OutboundChange::Upsert(OutboundRecord::Joined { .. })
                    | OutboundChange::Remove(OutboundKey::Joined(_))),
                ) => Some(c.clone()),
                _ => None,
            })
            .collect()
    };
    for r in [&known, &unknown] {
        h.m.handle_server_joined(h.t(), r);
        let out = h.drain();
        let written = markers(&out);
        assert_eq!(
            written,
            [OutboundChange::Upsert(OutboundRecord::Joined { room_id: r.clone().into() })]
        );
        h.m.handle_server_joined(h.t(), r);
        assert!(markers(&h.drain()).is_empty(), "a repeated join writes nothing");
        if *r == known {
            // The known room's marker names the room by the copy its requests carry.
            let Some(OutboundChange::Upsert(OutboundRecord::Joined { room_id })) = written.first()
            else {
                unreachable!()
            };
            assert!(room_id.ptr_eq(&put.room_id), "one copy of the room id, shared");
            for o in &out {
                if let OutboundOutput::Send(del) = o {
                    h.respond(del, OutboundOutcome::Deleted);
                }
            }
        }
    }
    for r in [&known, &unknown] {
        h.m.handle_server_left(h.t(), r);
        let removed = markers(&h.drain());
        assert_eq!(removed, [OutboundChange::Remove(OutboundKey::Joined(r.clone().into()))]);
        h.m.handle_server_left(h.t(), r);
        assert!(markers(&h.drain()).is_empty(), "a repeated leave writes nothing");
        assert!(!h.m.is_joined(r));
    }
}

#[test]
fn joining_while_the_put_is_in_flight_deletes_once_granted() {
    // R56
    let mut h = H::new();
    let r = room("!r:remote.org");
    let put = only_send(h.demand(&r, &["remote.org"]));
    h.m.handle_server_joined(h.t(), &r);
    no_sends(&h.drain());
    let out = h.respond(&put, established(HOUR));
    assert!(!out.iter().any(|o| matches!(o, OutboundOutput::Established { .. })));
    let del = only_send(out);
    assert_eq!((del.kind, del.peek_id), (OutboundRequestKind::Unpeek, put.peek_id));
}

#[test]
fn linger_then_exactly_one_unpeek_and_returning_demand_cancels_it() {
    // R55
    let mut h = H::new();
    let r = room("!r:a.org");
    let linger = h.config.linger;
    let put = h.open(&r, "a.org", HOUR);
    h.m.handle_no_demand(h.t(), &r);
    no_sends(&h.drain());
    assert_eq!(h.m.state(&r), Some(OutboundState::Lingering));
    no_sends(&h.advance(linger / 2));
    no_sends(&h.demand(&r, &["a.org"]));
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    no_sends(&h.advance(linger));
    // Now really go away.
    h.m.handle_no_demand(h.t(), &r);
    h.drain();
    no_sends(&h.advance(linger - Duration::from_millis(1)));
    let del = only_send(h.advance(Duration::from_millis(1)));
    assert_eq!((del.kind.clone(), del.peek_id.clone()), (OutboundRequestKind::Unpeek, put.peek_id));
    no_sends(&h.advance(HOUR * 5));
    h.respond(&del, failed(OutboundFailure::NotFound)); // 404 counts as done
    assert_eq!(h.m.len(), 0);
    assert!(h.store.keys().all(|k| !matches!(k, OutboundKey::Room(_))));
    no_sends(&h.advance(HOUR * 5));
}

#[test]
fn unreachable_unpeek_is_retried_a_bounded_number_of_times() {
    // R55
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    h.m.handle_server_joined(h.t(), &r);
    let mut del = only_send(h.drain());
    let mut tries = 1;
    loop {
        let out = h.respond(&del, failed(OutboundFailure::Unreachable));
        no_sends(&out);
        if h.m.state(&r).is_none() {
            break;
        }
        del = only_send(h.fire());
        assert_eq!(del.kind, OutboundRequestKind::Unpeek);
        tries += 1;
    }
    assert_eq!(tries, h.config.max_delete_attempts);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn a_retired_peeks_record_is_written_once_however_many_deletes_it_takes() {
    // R59: the `Retired` record is stored when the peek is retired, before its first
    // `DELETE`; the retries find it there (`H` checks every `Send` against the store) and
    // write nothing again; the last answer removes it.
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    h.m.handle_server_joined(h.t(), &r);
    let mut out = h.drain();
    let mut del = only_send(out.clone());
    for _ in 1..h.config.max_delete_attempts {
        let answer = h.respond(&del, failed(OutboundFailure::Unreachable));
        out.extend(answer);
        let retry = h.fire();
        del = only_send(retry.clone());
        out.extend(retry);
    }
    out.extend(h.respond(&del, OutboundOutcome::Deleted));
    let writes = |remove: bool| {
        out.iter()
            .filter(|o| match o {
                OutboundOutput::Persist(OutboundChange::Upsert(OutboundRecord::Retired {
                    ..
                })) => !remove,
                OutboundOutput::Persist(OutboundChange::Remove(OutboundKey::Retired {
                    ..
                })) => remove,
                _ => false,
            })
            .count()
    };
    assert_eq!((writes(false), writes(true)), (1, 1), "{out:?}");
    assert!(h.store.keys().all(|k| !matches!(k, OutboundKey::Retired { .. })));
}

#[test]
fn access_lost_deletes_at_once_without_linger() {
    // R40, R24
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let closed = RoomAccess::new(RoomVersionId::V11, false, false);
    h.m.handle_access_changed(h.t(), &r, &closed);
    let out = h.drain();
    let lost =
        OutboundOutput::Lost { room_id: r.clone().into(), reason: OutboundLostReason::AccessLost };
    let lost_at = out.iter().position(|o| *o == lost).expect("Lost reported");
    let persisted_at = out
        .iter()
        .position(|o| matches!(o, OutboundOutput::Persist(_)))
        .expect("the room's change is persisted");
    assert!(persisted_at < lost_at, "Persist precedes the notification it justifies: {out:?}");
    let del = only_send(out);
    assert_eq!((del.kind, del.peek_id), (OutboundRequestKind::Unpeek, put.peek_id));
    // Waiting clients (no peek yet) get Unavailable instead.
    let r2 = room("!r2:a.org");
    let put = only_send(h.demand(&r2, &["a.org"]));
    h.m.handle_access_changed(h.t(), &r2, &closed);
    let out = h.drain();
    // The PUT in flight is retired (its record kept until its answer says whether it
    // created a peek), then the waiting clients are told.
    assert_eq!(
        out.last(),
        Some(&OutboundOutput::Unavailable {
            room_id: r2.clone().into(),
            error: OutboundPeekError::Remote(OutboundFailure::Forbidden)
        })
    );
    no_sends(&out);
    let del = only_send(h.respond(&put, established(HOUR)));
    assert_eq!(del.kind, OutboundRequestKind::Unpeek);
}
