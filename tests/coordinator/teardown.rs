//! How peeks end through the coordinator: the last unpeek or lease leads, after the linger, to
//! exactly one `DELETE` (R55, R11); a join moves the room to `join` and deletes the federated
//! peek (R19, R56); access lost ends local peeks and deletes or expires the federated ones (R24,
//! R40).

use matrix_peek::{
    ClientPeek, ClientPeekReply, LocalEndReason, OutboundOutcome, OutboundState, Output,
};

use crate::support::host::*;

// R55, R58: the last unpeek (not the first) starts the linger; after it exactly one DELETE.
#[test]
fn last_unpeek_leads_after_linger_to_exactly_one_delete_r55() {
    let mut host = Host::new();
    host.establish_remote(T0);
    let _ = host.peek(at(10), remote_peek(alice(), tablet(), &[remote_server()]));
    host.peeking.handle_client_unpeek(at(20), &alice(), &phone(), &remote_room()).unwrap();
    assert!(sends(&host.drain()).is_empty(), "another device still peeks");
    host.peeking.handle_client_unpeek(at(30), &alice(), &tablet(), &remote_room()).unwrap();
    assert!(sends(&host.drain()).is_empty(), "the delete waits for the linger");
    assert_eq!(host.peeking.outbound().state(&remote_room()), Some(OutboundState::Lingering));
    let linger = host.config.outbound.linger;
    let deadline = host.peeking.poll_timeout().expect("linger deadline");
    assert_eq!(deadline, at(30).saturating_add(linger));
    host.peeking.handle_timeout(deadline);
    let delete = only_send(&host.drain(), Kind::Unpeek);
    assert_eq!(delete.server, remote_server());
    host.peeking.handle_response(deadline, delete.id, OutboundOutcome::Deleted);
    assert!(sends(&host.drain()).is_empty());
    assert!(host.peeking.outbound().is_empty());
    assert!(!host.peeking.is_remote(&remote_room()));
    // Nothing more, ever.
    for hours in 1..48 {
        host.peeking.handle_timeout(at(hours * 3_600_000));
        assert!(sends(&host.drain()).is_empty());
    }
    assert!(host.store.outbound.iter().all(|r| !matches!(r, matrix_peek::OutboundRecord::Peek(_))));
    assert!(host.store.remote_rooms.is_empty());
}

// R11, R55: the last lease lapsing (no unpeek) also winds the federated peek down.
#[test]
fn last_lease_expiry_deletes_the_federated_peek_after_linger_r11_r55() {
    let mut host = Host::new();
    let out = host.establish_remote(T0);
    let lease_end = out
        .iter()
        .find_map(|o| match o {
            Output::ClientPeekDone { result: Ok(g), .. } => Some(g.expires_at),
            _ => None,
        })
        .unwrap();
    // Answer renewals as they come until the lease has lapsed and the linger passed.
    let mut deletes = 0;
    let mut now = T0;
    let end = lease_end.saturating_add(host.config.outbound.linger).saturating_add(secs(3600));
    while let Some(t) = host.peeking.poll_timeout() {
        if t > end {
            break;
        }
        now = t;
        host.peeking.handle_timeout(now);
        let out = host.drain();
        deletes += sends(&out).iter().filter(|r| kind(r) == Kind::Unpeek).count();
        let _ = answer_all(&mut host, now, out, granted);
    }
    let _ = now;
    assert_eq!(deletes, 1, "exactly one DELETE after the lease lapsed");
    assert!(host.peeking.outbound().is_empty());
    assert!(!host.peeking.is_remote(&remote_room()));
}

// R19, R56: a join while peeking a remote room: `joined` in sync_delta, federated peek deleted.
#[test]
fn join_while_peeking_remote_room_moves_to_join_and_deletes_remote_peek_r19_r56() {
    let mut host = Host::new();
    host.establish_remote(T0);
    let seen = host.peeking.sync_delta(&alice(), &phone(), None);
    assert_eq!(seen.started, vec![remote_room()]);
    host.peeking.handle_joined(at(50), &alice(), &remote_room(), &readable());
    let out = host.drain();
    let delete = only_send(&out, Kind::Unpeek);
    assert_eq!(delete.server, remote_server());
    let delta = host.peeking.sync_delta(&alice(), &phone(), Some(seen.next));
    assert_eq!(delta.joined, vec![remote_room()], "R19: moves to join");
    assert!(delta.started.is_empty() && delta.peeking.is_empty() && delta.ended.is_empty());
    assert!(!host.peeking.is_remote(&remote_room()));
    host.peeking.handle_response(at(60), delete.id, OutboundOutcome::Deleted);
    assert!(sends(&host.drain()).is_empty());
    // R57: resident now; a new peek by someone else is local, granted at once, no traffic.
    let resident =
        ClientPeek { room_id: remote_room(), ..resident_peek(bob(), phone(), readable()) };
    let (reply, out) = host.peek(at(70), resident);
    assert!(matches!(reply, ClientPeekReply::Done(Ok(_))), "{reply:?}");
    assert!(sends(&out).is_empty(), "joined room is never peeked over federation: {out:?}");
    assert!(!host.peeking.is_remote(&remote_room()));
}

// R24, R40: access lost on a remote room ends local peeks and deletes the federated peek.
#[test]
fn access_lost_on_remote_room_ends_local_peeks_and_deletes_remote_peek_r24() {
    let mut host = Host::new();
    host.establish_remote(T0);
    let seen = host.peeking.sync_delta(&alice(), &phone(), None);
    host.peeking.handle_access_changed(at(10), &remote_room(), &shared());
    let out = host.drain();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PeekEnded { reason: LocalEndReason::AccessLost, .. }))
    );
    let delete = only_send(&out, Kind::Unpeek);
    host.peeking.handle_response(at(20), delete.id, OutboundOutcome::Deleted);
    let _ = host.drain();
    let delta = host.peeking.sync_delta(&alice(), &phone(), Some(seen.next));
    assert_eq!(delta.ended, vec![remote_room()], "R21: goes to leave");
    assert_eq!(host.peeking.peekers(&remote_room()).count(), 0);
    assert!(host.peeking.outbound().is_empty());
    assert!(!host.peeking.is_remote(&remote_room()));
    for h in 1..10 {
        host.peeking.handle_timeout(at(h * 3_600_000));
        assert!(sends(&host.drain()).is_empty());
    }
}

// R24, R40: on a resident room, access lost ends local peeks and expires inbound peeks.
#[test]
fn access_lost_on_resident_room_expires_inbound_peeks_too_r24_r40() {
    let mut host = Host::new();
    let _ = host.peek(T0, resident_peek(alice(), phone(), readable()));
    inbound(&mut host, T0, "p1").unwrap();
    assert_eq!(host.peeking.destinations(&local_room()).count(), 1);
    host.peeking.handle_access_changed(at(5), &local_room(), &shared());
    let out = host.drain();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::PeekEnded { reason: LocalEndReason::AccessLost, .. }))
    );
    assert!(out.iter().any(|o| matches!(o, Output::Expired { peek_id, .. } if peek_id == "p1")));
    assert!(sends(&out).is_empty());
    assert_eq!(host.peeking.destinations(&local_room()).count(), 0);
    assert_eq!(host.peeking.peekers(&local_room()).count(), 0);
}

#[test]
fn a_remote_room_only_a_waiting_client_peek_used_is_forgotten_across_a_restart() {
    // §7.3: a remote room is forgotten once nobody peeks it or waits on it. Waiting client
    // peeks are not persisted, so after a restart the room's record is unused.
    let mut h = Host::new();
    let (reply, _) = h.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    assert_eq!(h.store.remote_rooms.len(), 1, "remembered while the client waits");
    h.restart(T0);
    h.drain();
    assert!(h.store.remote_rooms.is_empty(), "forgotten in the store: {:?}", h.store.remote_rooms);
    // A room a restored local peek still uses is kept.
    let mut h = Host::new();
    h.establish_remote(T0);
    h.drain();
    h.restart(T0);
    h.drain();
    assert_eq!(h.store.remote_rooms.len(), 1, "kept for the restored peek");
}
