//! Coordinator scenarios on a remote room (MSC2444 peeking side behind MSC2753 client peeks).

mod coordinator_support;

use coordinator_support::*;
use matrix_peek::Change;
use matrix_peek::{ClientPeek, ClientPeekReply, LocalEndReason, LocalPeekError, Output, PeekError};
use matrix_peek::{OutboundFailure, OutboundOutcome, OutboundPeekError, OutboundState};

// R27, R58: a client peek on a remote room waits for one federated PUT, and its Established
// completes it with a lease; the persisted grant comes before the acknowledgement.
#[test]
fn remote_client_peek_is_pending_until_the_one_put_is_established_r27() {
    let mut host = Host::new();
    let (reply, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    let ClientPeekReply::Pending(id) = reply else { panic!("expected Pending, got {reply:?}") };
    let put = only_send(&out, Kind::Peek);
    assert_eq!(put.server, remote_server());
    assert_eq!(put.room_id, remote_room());
    assert_eq!(host.peeking.pending_client_peeks(), 1);
    assert!(host.peeking.is_remote(&remote_room()));

    host.peeking.handle_response(at(100), put.id, established());
    let out = host.drain();
    assert!(sends(&out).is_empty(), "nothing more to send: {out:?}");
    let done = out
        .iter()
        .position(|o| matches!(o, Output::ClientPeekDone { .. }))
        .expect("ClientPeekDone");
    let Output::ClientPeekDone { id: done_id, result } = &out[done] else { unreachable!() };
    assert_eq!(*done_id, id);
    let grant = result.as_ref().expect("granted");
    assert_eq!(grant.room_id, remote_room());
    assert!(grant.expires_at > at(100), "peek_expiry_ts in the future (R9)");
    // Persist before what it justifies: the local peek record is written before the ack.
    let persisted = out
        .iter()
        .position(|o| matches!(o, Output::Persist(Change::Local(_))))
        .expect("local peek persisted");
    assert!(persisted < done, "Persist(Local) must precede ClientPeekDone: {out:?}");
    assert!(out.iter().any(|o| matches!(o, Output::Established { .. })));
    assert_eq!(host.peeking.pending_client_peeks(), 0);
    assert!(host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()));
}

// R58: a second device (or user) on an established room is granted at once, no traffic.
#[test]
fn second_device_on_an_established_room_is_granted_at_once_without_federation_r58() {
    let mut host = Host::new();
    host.establish_remote(T0);
    for (user, device) in [(alice(), tablet()), (bob(), phone())] {
        let (reply, out) = host.peek(at(1_000), remote_peek(user, device, &[remote_server()]));
        let ClientPeekReply::Done(Ok(grant)) = reply else {
            panic!("expected Done(Ok), got {reply:?}")
        };
        assert_eq!(grant.room_id, remote_room());
        assert!(sends(&out).is_empty(), "no new federation traffic: {out:?}");
    }
    assert_eq!(host.peeking.peekers(&remote_room()).count(), 3);
}

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

// R55: a peek coming back during the linger reuses the live federated peek: granted, no PUT.
#[test]
fn repeek_during_linger_is_granted_without_traffic_r55_r58() {
    let mut host = Host::new();
    host.establish_remote(T0);
    host.peeking.handle_client_unpeek(at(10), &alice(), &phone(), &remote_room()).unwrap();
    let _ = host.drain();
    assert_eq!(host.peeking.outbound().state(&remote_room()), Some(OutboundState::Lingering));
    let (reply, out) = host.peek(at(20), remote_peek(alice(), phone(), &[remote_server()]));
    assert!(sends(&out).is_empty(), "no traffic: {out:?}");
    let granted = match reply {
        ClientPeekReply::Done(r) => r,
        ClientPeekReply::Pending(id) => out
            .iter()
            .find_map(|o| match o {
                Output::ClientPeekDone { id: i, result } if *i == id => Some(result.clone()),
                _ => None,
            })
            .expect("a pending peek on a live federated peek must complete at once"),
    };
    assert!(granted.is_ok(), "{granted:?}");
    assert_eq!(host.peeking.outbound().state(&remote_room()), Some(OutboundState::Established));
    // Past the old linger nothing is deleted.
    host.peeking.handle_timeout(at(10 + 5 * 60_000));
    assert!(sends(&host.drain()).iter().all(|r| kind(r) != Kind::Unpeek));
}

// R57: a resident room never produces federation traffic.
#[test]
fn resident_room_never_uses_federation_r57() {
    let mut host = Host::new();
    let (reply, out) = host.peek(T0, resident_peek(alice(), phone(), readable()));
    assert!(matches!(reply, ClientPeekReply::Done(Ok(_))), "{reply:?}");
    assert!(sends(&out).is_empty());
    host.peeking.handle_client_unpeek(at(1), &alice(), &phone(), &local_room()).unwrap();
    let _ = host.drain();
    let _ = host.peek(at(2), resident_peek(alice(), phone(), readable()));
    for h in 0..30 {
        host.peeking.handle_timeout(at(h * 3_600_000));
        assert!(sends(&host.drain()).is_empty());
    }
    assert!(host.peeking.outbound().is_empty());
    assert!(!host.peeking.is_remote(&local_room()));
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

fn fail_all(
    host: &mut Host,
    via: &[ruma_common::OwnedServerName],
    answers: &[OutboundFailure],
) -> Result<matrix_peek::LocalGrant, PeekError> {
    let (reply, mut out) = host.peek(T0, remote_peek(alice(), phone(), via));
    let ClientPeekReply::Pending(id) = reply else { panic!("{reply:?}") };
    for failure in answers {
        let put = only_send(&out, Kind::Peek);
        host.peeking.handle_response(at(1), put.id, OutboundOutcome::Failed(failure.clone()));
        out = host.drain();
    }
    assert!(sends(&out).is_empty(), "nothing left to try: {out:?}");
    assert!(out.iter().any(|o| matches!(o, Output::Unavailable { .. })));
    out.iter()
        .find_map(|o| match o {
            Output::ClientPeekDone { id: i, result } if *i == id => Some(result.clone()),
            _ => None,
        })
        .expect("the pending peek is decided")
}

// R27, R60: every candidate refuses → the pending peek fails with the most specific error.
#[test]
fn every_candidate_refusing_fails_the_pending_peek_with_the_mapped_error_r27() {
    let mut host = Host::new();
    let result = fail_all(
        &mut host,
        &[remote_server(), other_server()],
        &[OutboundFailure::NotFound, OutboundFailure::Forbidden],
    );
    assert_eq!(
        result,
        Err(PeekError::Remote(OutboundPeekError::Remote(OutboundFailure::Forbidden)))
    );
    assert!(!host.peeking.is_remote(&remote_room()));
    assert!(host.peeking.outbound().is_empty());
    assert_eq!(host.peeking.pending_client_peeks(), 0);
    assert!(host.store.remote_rooms.is_empty(), "nothing left behind");

    let mut host = Host::new();
    let result = fail_all(&mut host, &[remote_server()], &[OutboundFailure::NotFound]);
    assert_eq!(
        result,
        Err(PeekError::Remote(OutboundPeekError::Remote(OutboundFailure::NotFound)))
    );
}

// R46, R27: no candidate at all → 404-mapped NoCandidates at once, no traffic.
#[test]
fn remote_peek_without_candidates_fails_at_once_r46() {
    let mut host = Host::new();
    let (reply, out) = host.peek(T0, remote_peek(alice(), phone(), &[]));
    assert_eq!(
        reply,
        ClientPeekReply::Done(Err(PeekError::Remote(OutboundPeekError::NoCandidates)))
    );
    assert!(sends(&out).is_empty());
    assert!(!host.peeking.is_remote(&remote_room()));
    assert!(host.store.remote_rooms.is_empty());
}

// R6: a joined user peeking a remote room is refused and leaves nothing behind.
#[test]
fn joined_user_remote_peek_is_refused_without_traces_r6() {
    let mut host = Host::new();
    let mut p = remote_peek(alice(), phone(), &[remote_server()]);
    p.joined = true;
    let (reply, out) = host.peek(T0, p);
    assert_eq!(reply, ClientPeekReply::Done(Err(PeekError::Local(LocalPeekError::AlreadyJoined))));
    assert!(sends(&out).is_empty());
    assert!(!host.peeking.is_remote(&remote_room()), "no remote-room memory for a refused peek");
    assert!(host.store.remote_rooms.is_empty());
}

// DESIGN §7: poll_timeout is the minimum of the three machines' deadlines.
#[test]
fn poll_timeout_is_the_min_of_the_children() {
    let mut host = Host::new();
    assert_eq!(host.peeking.poll_timeout(), None);
    host.establish_remote(T0);
    inbound(&mut host, at(1), "p1").unwrap();
    let p = &host.peeking;
    let children =
        [p.local().poll_timeout(), p.inbound().poll_timeout(), p.outbound().poll_timeout()];
    assert!(children.iter().all(Option::is_some), "{children:?}");
    assert_eq!(p.poll_timeout(), children.into_iter().flatten().min());
    // The outbound renewal (interval/2 capped at 30 min) is the earliest here.
    assert_eq!(p.poll_timeout(), p.outbound().poll_timeout());
    assert_eq!(p.poll_timeout(), Some(at(30 * 60_000)));
}

// R59: restore from the Persist stream re-declares demand; the federated peek keeps being
// renewed at the stored time and is not deleted.
#[test]
fn restore_redeclares_demand_and_keeps_the_federated_peek_renewed_r59() {
    let mut host = Host::new();
    host.establish_remote(T0);
    let _ = host.peek(at(5), resident_peek(bob(), tablet(), readable()));
    let before_timeout = host.peeking.poll_timeout();
    host.restart(at(60_000));
    let out = host.drain();
    assert!(sends(&out).is_empty(), "nothing to send right after restore: {out:?}");
    assert_eq!(host.peeking.poll_timeout(), before_timeout);
    assert!(host.peeking.is_remote(&remote_room()));
    assert!(host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()));
    assert_eq!(host.peeking.outbound().state(&remote_room()), Some(OutboundState::Established));
    // The renewal fires at the stored time: 30 min after establishment.
    host.peeking.handle_timeout(at(30 * 60_000 - 1));
    assert!(sends(&host.drain()).is_empty());
    host.peeking.handle_timeout(at(30 * 60_000));
    let renew = only_send(&host.drain(), Kind::Renew);
    host.peeking.handle_response(
        at(30 * 60_000 + 10),
        renew.id,
        OutboundOutcome::Renewed { renewal_interval: Some(secs(3600)) },
    );
    let _ = host.drain();
    // Past any linger: never deleted while the lease lives.
    host.peeking.handle_timeout(at(50 * 60_000));
    assert!(sends(&host.drain()).iter().all(|r| kind(r) != Kind::Unpeek));
    // A grant on another device is still immediate after restore (access remembered).
    let (reply, out) =
        host.peek(at(50 * 60_000), remote_peek(alice(), tablet(), &[remote_server()]));
    assert!(matches!(reply, ClientPeekReply::Done(Ok(_))), "{reply:?}");
    assert!(sends(&out).is_empty());
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
        let _ = answer_all(&mut host, now, out, |r| match kind(r) {
            Kind::Renew => OutboundOutcome::Renewed { renewal_interval: Some(secs(3600)) },
            Kind::Unpeek => OutboundOutcome::Deleted,
            Kind::Peek => established(),
        });
    }
    let _ = now;
    assert_eq!(deletes, 1, "exactly one DELETE after the lease lapsed");
    assert!(host.peeking.outbound().is_empty());
    assert!(!host.peeking.is_remote(&remote_room()));
}

/// R57 inverse: a `Remote` client peek on a room the server once joined (and the host forgot to
/// report leaving) still opens a federated peek instead of waiting forever.
#[test]
fn remote_peek_after_a_join_without_server_left_still_opens_a_federated_peek() {
    let mut host = Host::new();
    host.establish_remote(T0);
    // A local user joins: the federated peek is deleted and the room marked joined (R56).
    host.peeking.handle_joined(at(1_000), &bob(), &remote_room(), &readable());
    let delete = only_send(&host.drain(), Kind::Unpeek);
    host.peeking.handle_response(at(1_100), delete.id, OutboundOutcome::Deleted);
    let _ = host.drain();
    assert!(host.peeking.outbound().is_joined(&remote_room()));
    // Later the host reports the room as remote again without `handle_server_left`.
    let (reply, out) = host.peek(at(2_000), remote_peek(alice(), tablet(), &[remote_server()]));
    assert!(matches!(reply, ClientPeekReply::Pending(_)), "{reply:?}");
    let puts: Vec<_> = sends(&out).into_iter().filter(|r| kind(r) == Kind::Peek).collect();
    assert_eq!(puts.len(), 1, "one federated PUT goes out: {out:?}");
}

/// R12, R55: a device that unpeeks while its remote peek still waits on federation withdraws
/// it: the unpeek succeeds, the waiting `/peek` fails, and the answer arriving later grants
/// nothing (the federated peek winds down after the linger).
#[test]
fn unpeek_of_a_pending_remote_peek_withdraws_it_r12() {
    let mut host = Host::new();
    let (reply, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    let ClientPeekReply::Pending(id) = reply else { panic!("expected Pending, got {reply:?}") };
    let put = sends(&out).into_iter().find(|r| kind(r) == Kind::Peek).expect("one PUT");

    assert_eq!(
        host.peeking.handle_client_unpeek(at(10), &alice(), &phone(), &remote_room()),
        Ok(())
    );
    let out = host.drain();
    assert!(
        out.iter().any(
            |o| matches!(o, Output::ClientPeekDone { id: done, result: Err(_) } if *done == id)
        ),
        "the waiting peek fails: {out:?}"
    );
    assert_eq!(host.peeking.pending_client_peeks(), 0);

    host.peeking.handle_response(at(20), put.id, established());
    let out = host.drain();
    assert!(!out.iter().any(|o| matches!(o, Output::ClientPeekDone { .. })), "{out:?}");
    assert!(!host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()));
    // Nobody needs the peek: after the linger it is deleted.
    let mut deletes = 0;
    for minute in 1..=60 {
        host.peeking.handle_timeout(at(20 + minute * 60_000));
        deletes += sends(&host.drain()).iter().filter(|r| kind(r) == Kind::Unpeek).count();
    }
    assert_eq!(deletes, 1, "exactly one DELETE once the withdrawn peek's linger passes");
}
