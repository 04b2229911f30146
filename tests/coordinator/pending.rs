//! Client peeks waiting on federation (docs/architecture.md §7) and how the wait ends: every candidate
//! refusing (R27, R60), the device unpeeking (R12), its user joining (R6, R23), the device
//! removed (R25), or an outage of an established room (R27).

use matrix_peek::{
    ClientPeekReply, LocalPeekError, OutboundFailure, OutboundOutcome, OutboundPeekError,
    OutboundRequest, Output, PeekError, RequestId,
};

use crate::support::host::*;

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

fn pending_id(reply: &ClientPeekReply) -> RequestId {
    match reply {
        ClientPeekReply::Pending(id) => *id,
        other => panic!("expected Pending, got {other:?}"),
    }
}

fn done_for(out: &[Output], id: RequestId) -> Option<Result<(), PeekError>> {
    out.iter().find_map(|o| match o {
        Output::ClientPeekDone { id: done, result } if *done == id => {
            Some(result.clone().map(|_| ()))
        }
        _ => None,
    })
}

/// alice/PHONE asks for the remote room at 0 ms (one PUT goes out), bob/TABLET at 1 ms: both
/// wait. Returns alice's request id, the PUT and bob's request id.
fn alice_then_bob_pending(host: &mut Host) -> (RequestId, OutboundRequest, RequestId) {
    let (reply, out) = host.peek(at(0), remote_peek(alice(), phone(), &[remote_server()]));
    let id = pending_id(&reply);
    let put = only_send(&out, Kind::Peek);
    let (bob_reply, _) = host.peek(at(1), remote_peek(bob(), tablet(), &[remote_server()]));
    (id, put, pending_id(&bob_reply))
}

// R6, R19, R23: a user who joins the room while their own remote peek is still waiting on
// federation must not be granted a peek on it (the room would be in both `join` and `peek`);
// the waiting peek fails like any peek of a joined user (400 M_BAD_STATE).
#[test]
fn pending_peek_of_a_user_who_joined_meanwhile_is_refused_not_granted_r6_r23() {
    let mut host = Host::new();
    let (id, _put, bob_id) = alice_then_bob_pending(&mut host);
    // Alice joins (the host sent the join through the resident); bob's peek is not affected.
    host.peeking.handle_joined(at(2), &alice(), &remote_room(), &readable());
    let out = host.drain();
    assert_eq!(
        done_for(&out, id),
        Some(Err(PeekError::Local(LocalPeekError::AlreadyJoined))),
        "{out:?}"
    );
    assert!(!host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()));
    let delta = host.peeking.sync_delta(&alice(), &phone(), None);
    assert!(!delta.started.contains(&remote_room()), "R23: never both peek and join");
    // Bob is not joined: the server is resident now, so his peek is granted from the replica.
    assert_eq!(done_for(&out, bob_id), Some(Ok(())), "{out:?}");
    assert!(host.peeking.local().is_peeking(&bob(), &tablet(), &remote_room()));
}

// R25: a device removed (or a user deactivated) while its remote peek waits on federation must
// not get a peek when the federated peek comes up: nobody is left to sync it, yet it would keep
// the room demanded (and the remote peek renewed) for a whole lease.
#[test]
fn pending_peek_of_a_removed_device_is_not_granted_later_r25() {
    let mut host = Host::new();
    let (id, put, bob_id) = alice_then_bob_pending(&mut host);
    host.peeking.handle_device_removed(at(2), &alice(), &phone());
    host.peeking.handle_user_deactivated(at(3), &bob());
    let removed = host.drain();
    host.peeking.handle_response(at(4), put.id, established());
    let out: Vec<Output> = removed.into_iter().chain(host.drain()).collect();
    assert!(!host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()), "{out:?}");
    assert!(!host.peeking.local().is_peeking(&bob(), &tablet(), &remote_room()), "{out:?}");
    assert!(
        matches!(done_for(&out, id), Some(Err(_))),
        "the removed device's wait ends with an error: {out:?}"
    );
    assert!(matches!(done_for(&out, bob_id), Some(Err(_))), "{out:?}");
    assert_eq!(host.peeking.pending_client_peeks(), 0);
    // Nobody needs the room: after the linger the federated peek is deleted (R55).
    host.peeking.handle_timeout(at(4 + 121_000));
    let out = host.drain();
    assert_eq!(sends(&out).iter().filter(|r| kind(r) == Kind::Unpeek).count(), 1, "{out:?}");
}

// R27, docs/architecture.md §6 "Giving up": a client peek waiting on a room whose federated peek was
// established and is now lost to network trouble must not wait for the whole outage. The
// device already peeking keeps its peek (transient outage); a second device is answered too.
#[test]
fn second_device_is_not_kept_waiting_through_an_outage_of_an_established_room_r27() {
    use matrix_peek::{OutboundFailure, OutboundOutcome};
    let mut host = Host::new();
    // Established at 0; the renewal at 30 min finds the peek gone (404): Lost, re-open; the
    // network is down.
    let mut out = host.renewal_not_found();
    let (reply, more) =
        host.peek(at(30 * 60_000 + 1), remote_peek(alice(), tablet(), &[remote_server()]));
    out.extend(more);
    let id = match reply {
        ClientPeekReply::Done(result) => {
            assert!(result.is_ok(), "{result:?}");
            return;
        }
        ClientPeekReply::Pending(id) => id,
    };
    let mut now = 30 * 60_000 + 1;
    let mut answered = None;
    for _ in 0..50 {
        for r in sends(&out) {
            host.peeking.handle_response(
                at(now),
                r.id,
                OutboundOutcome::Failed(OutboundFailure::Unreachable),
            );
        }
        out = host.drain();
        if let Some(result) = done_for(&out, id) {
            answered = Some(result);
            break;
        }
        let Some(next) = host.peeking.poll_timeout() else { break };
        now = next.as_millis() - matrix_peek::Timestamp::as_millis(T0);
        host.peeking.handle_timeout(next);
        out.extend(host.drain());
        if let Some(result) = done_for(&out, id) {
            answered = Some(result);
            break;
        }
    }
    assert!(answered.is_some(), "the waiting client is answered within max_attempts");
    assert!(
        host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()),
        "the first device keeps its peek through a transient outage (docs/architecture.md §6)"
    );
}
