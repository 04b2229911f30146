//! Races with the residents: stale and duplicate answers, a `RePut` renewal still in flight
//! when the peek expires, a peek lapsed on our side while the resident still holds it, and
//! late `expired_peeks` entries for a peek a re-`PUT` re-created (R54, R55, R58). A peek that
//! stops being current is retired: its `DELETE` goes out in the background, beside (never
//! before) the new `PUT`, and nothing is left behind once the answers are in.

use std::collections::BTreeSet;
use std::time::Duration;

use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundOutcome, OutboundOutput, OutboundRenewStyle,
    OutboundRequestKind, OutboundState,
};

use crate::support::*;

#[test]
fn unknown_stale_and_duplicate_responses_are_ignored() {
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    for outcome in [
        established(HOUR),
        OutboundOutcome::Deleted,
        failed(OutboundFailure::Forbidden),
        OutboundOutcome::Renewed { renewal_interval: Some(Duration::ZERO) },
    ] {
        h.m.handle_response(h.t(), put.id, outcome.clone());
        h.m.handle_response(h.t(), matrix_peek::RequestId(u64::MAX), outcome);
    }
    assert!(h.drain().is_empty());
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}

/// Every peek the resident holds is the machine's current one or a retired one it still
/// deletes (named by the store).
fn accounted_for(
    h: &H,
    r: &ruma_common::RoomId,
    resident: &BTreeSet<(String, matrix_peek::PeekId)>,
) {
    for (server, id) in resident {
        let named = h.store.values().any(|rec| match rec {
            matrix_peek::OutboundRecord::Peek(p) => {
                p.room_id == r && p.server.as_str() == server && &p.peek_id == id
            }
            matrix_peek::OutboundRecord::Retired { room_id, server: s, peek_id } => {
                room_id == r && s.as_str() == server && peek_id == id
            }
            _ => false,
        });
        assert!(named, "the resident holds {server}/{id}, which the machine forgot");
    }
}

#[test]
fn reput_renewal_in_flight_when_the_peek_expires_does_not_leak_the_recreated_peek() {
    // R54, R58, R55 with OutboundRenewStyle::RePut: the renewal is a PUT, which re-creates the peek at
    // the resident if it arrives after the resident expired it. The machine must not forget
    // that PUT and open a second peek beside it.
    let cfg =
        OutboundConfig { renew_style: OutboundRenewStyle::RePut, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:x.org");
    let put = h.open(&r, "a.org", HOUR);
    // The resident's live peeks (server, id).
    let mut resident: BTreeSet<(String, matrix_peek::PeekId)> = BTreeSet::new();
    resident.insert((put.server.to_string(), put.peek_id.clone()));

    let out = h.fire();
    let reput = only_send(out);
    assert!(matches!(reput.kind, OutboundRequestKind::Peek { .. }));
    assert_eq!(reput.peek_id, put.peek_id, "RePut keeps the id");

    // The resident expired the peek (our renewal was late) and says so; the re-PUT is still on
    // its way and will re-create the peek.
    resident.clear();
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put.peek_id);
    let out = h.drain();
    let mut in_flight = vec![reput.clone()];
    in_flight.extend(sends(&out));

    // The resident handles every request in flight, in order: PUTs create, DELETEs remove.
    let mut answers = Vec::new();
    for req in &in_flight {
        let key = (req.server.to_string(), req.peek_id.clone());
        match req.kind {
            OutboundRequestKind::Peek { .. } => {
                resident.insert(key);
                answers.push((req.clone(), established(HOUR)));
            }
            OutboundRequestKind::Renew => answers.push((
                req.clone(),
                OutboundOutcome::Failed(matrix_peek::OutboundFailure::NotFound),
            )),
            OutboundRequestKind::Unpeek => {
                resident.remove(&key);
                answers.push((req.clone(), OutboundOutcome::Deleted));
            }
        }
    }
    accounted_for(&h, &r, &resident);
    // Keep answering whatever follows until the machine is quiet.
    let mut queue = answers;
    for _ in 0..20 {
        let Some((req, outcome)) = queue.pop() else { break };
        let out = h.respond(&req, outcome);
        for next in sends(&out) {
            let key = (next.server.to_string(), next.peek_id.clone());
            match next.kind {
                OutboundRequestKind::Peek { .. } => {
                    resident.insert(key);
                    queue.push((next, established(HOUR)));
                }
                OutboundRequestKind::Renew => {
                    queue.push((next, OutboundOutcome::Renewed { renewal_interval: Some(HOUR) }))
                }
                OutboundRequestKind::Unpeek => {
                    resident.remove(&key);
                    queue.push((next, OutboundOutcome::Deleted));
                }
            }
        }
        accounted_for(&h, &r, &resident);
    }
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    assert_eq!(h.m.in_flight(), 0, "quiet");
    // The peek the machine holds is the one the resident holds: the re-created one is gone.
    let held: Vec<_> = h
        .store
        .values()
        .filter_map(|rec| match rec {
            matrix_peek::OutboundRecord::Peek(p) => Some((p.server.to_string(), p.peek_id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        held.into_iter().collect::<BTreeSet<_>>(),
        resident,
        "machine and resident disagree"
    );
}

#[test]
fn a_peek_lapsed_on_our_side_is_deleted_while_a_new_one_opens() {
    // R55, R58: our lapse time is `renewed_at + interval`; the resident keeps the peek until its
    // own deadline (plus its grace, R43), and a renewal that timed out may even have reached it.
    // Forgetting the peek at our lapse and opening a fresh one would leave two live peeks for
    // the room, the old one never deleted: it is deleted in the background.
    let mut h = H::new();
    let r = room("!r:x.org");
    let interval = std::time::Duration::from_secs(600);
    let grace = std::time::Duration::from_secs(300);
    let put = h.open(&r, "a.org", interval);
    let opened_at = h.now;
    // The resident: (server, id) -> its expiry in ms.
    let mut resident: std::collections::BTreeMap<(String, matrix_peek::PeekId), u64> =
        std::collections::BTreeMap::new();
    let life = (interval + grace).as_millis() as u64;
    resident.insert((put.server.to_string(), put.peek_id.clone()), opened_at + life);
    let mut queue = vec![only_send(h.fire())];
    let mut deleted_old = false;
    for _ in 0..60 {
        resident.retain(|_, exp| *exp > h.now);
        let Some(req) = queue.pop() else {
            let out = h.fire();
            queue.extend(sends(&out));
            continue;
        };
        let key = (req.server.to_string(), req.peek_id.clone());
        let outcome = match req.kind {
            // The resident is reachable again only for the DELETE and the new PUT.
            OutboundRequestKind::Renew => {
                OutboundOutcome::Failed(matrix_peek::OutboundFailure::Unreachable)
            }
            OutboundRequestKind::Unpeek => {
                assert_eq!(req.peek_id, put.peek_id, "only the lapsed peek is deleted");
                deleted_old = true;
                if resident.remove(&key).is_some() {
                    OutboundOutcome::Deleted
                } else {
                    OutboundOutcome::Failed(matrix_peek::OutboundFailure::NotFound)
                }
            }
            OutboundRequestKind::Peek { .. } => {
                resident.insert(key, h.now + life);
                established(HOUR)
            }
        };
        let held: BTreeSet<(String, matrix_peek::PeekId)> = resident.keys().cloned().collect();
        accounted_for(&h, &r, &held);
        let out = h.respond(&req, outcome);
        queue.extend(sends(&out));
        if deleted_old && h.m.state(&r) == Some(OutboundState::Established) && queue.is_empty() {
            break;
        }
    }
    assert!(deleted_old, "the lapsed peek was deleted");
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    assert_eq!(resident.len(), 1, "only the new peek is left: {resident:?}");
}

/// RePut renewals re-create a peek under the same id, so an `expired_peeks` entry may be older
/// than the peek the resident now holds under that id (R43's `/send` can arrive late).
fn reput_peek_recreated_after_a_stale_expiry()
-> (H, ruma_common::OwnedRoomId, matrix_peek::OutboundRequest) {
    let cfg =
        OutboundConfig { renew_style: OutboundRenewStyle::RePut, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:x.org");
    let put = h.open(&r, "a.org", HOUR);
    // The resident expired the peek (its `/send` with `expired_peeks` is still on its way), then
    // our re-PUT arrived and created it again under the same id.
    let reput = only_send(h.fire());
    assert_eq!(reput.peek_id, put.peek_id);
    no_sends(&h.respond(&reput, established(HOUR)));
    (h, r, put)
}

#[test]
fn a_late_expiry_of_a_reput_peek_deletes_it_beside_a_new_one() {
    // R54, R55, R58
    let (mut h, r, put) = reput_peek_recreated_after_a_stale_expiry();
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put.peek_id);
    let out = h.drain();
    assert!(out.iter().any(|o| matches!(o, OutboundOutput::Lost { .. })), "Lost reported: {out:?}");
    // The resident holds the re-created peek: it must be deleted, not forgotten; the new peek
    // does not wait for that DELETE.
    let s = sends(&out);
    assert_eq!(s.len(), 2, "{s:?}");
    let (reopen, delete) = (&s[0], &s[1]);
    assert!(matches!(reopen.kind, OutboundRequestKind::Peek { .. }));
    assert_ne!(reopen.peek_id, put.peek_id, "R54: fresh id");
    assert_eq!((&delete.kind, &delete.peek_id), (&OutboundRequestKind::Unpeek, &put.peek_id));
    no_sends(&h.respond(delete, OutboundOutcome::Deleted));
    h.respond(reopen, established(HOUR));
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    assert!(!h.store.keys().any(|k| matches!(k, matrix_peek::OutboundKey::Retired { .. })));
}

#[test]
fn a_late_expiry_while_a_reput_peek_is_being_deleted_keeps_the_delete() {
    // R55: the DELETE in flight is the only thing that removes the re-created peek.
    let (mut h, r, put) = reput_peek_recreated_after_a_stale_expiry();
    h.m.handle_no_demand(h.t(), &r);
    no_sends(&h.drain());
    let del = only_send(h.fire());
    assert_eq!(del.kind, OutboundRequestKind::Unpeek);
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put.peek_id);
    h.drain();
    assert_eq!(h.m.in_flight(), 1, "the DELETE is still awaited");
    let key = matrix_peek::OutboundKey::Retired {
        room_id: r.clone().into(),
        server: server("a.org").into(),
        peek_id: put.peek_id.clone(),
    };
    assert!(h.store.contains_key(&key), "the retired peek's record is kept");
    h.respond(&del, OutboundOutcome::Deleted);
    assert!(h.m.is_empty());
    assert!(!h.store.contains_key(&key));
    assert!(!h.store.contains_key(&matrix_peek::OutboundKey::Room(r.clone().into())));
}

#[test]
fn a_late_expiry_during_a_reput_that_fails_still_deletes_the_peek() {
    // R55, R58: the expiry may be stale (the resident still holds the peek from an earlier
    // re-PUT), so a re-PUT that then fails on the network or 429 must not make the machine
    // forget the peek.
    let (mut h, r, put) = reput_peek_recreated_after_a_stale_expiry();
    let reput = only_send(h.fire());
    assert_eq!(reput.peek_id, put.peek_id);
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put.peek_id);
    h.drain();
    let rate_limited = matrix_peek::OutboundFailure::RateLimited { retry_after: None };
    let mut out = h.respond(&reput, OutboundOutcome::Failed(rate_limited));
    let key = matrix_peek::OutboundKey::Retired {
        room_id: r.clone().into(),
        server: server("a.org").into(),
        peek_id: put.peek_id.clone(),
    };
    assert!(h.store.contains_key(&key), "the peek the resident may hold is still on record");
    while sends(&out).is_empty() {
        out = h.fire();
    }
    let next = only_send(out);
    assert_eq!(next.kind, OutboundRequestKind::Unpeek, "deleted, not forgotten: {next:?}");
    assert_eq!(next.peek_id, put.peek_id);
}
