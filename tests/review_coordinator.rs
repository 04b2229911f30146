//! Adversarial review: the coordinator's pending client peeks (DESIGN §7).

mod coordinator_support;

use coordinator_support::*;
use matrix_peek::OutboundRequest;
use matrix_peek::{ClientPeekReply, LocalPeekError, Output, PeekError, RequestId};

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

// R27, DESIGN §6 "Giving up": a client peek waiting on a room whose federated peek was
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
        "the first device keeps its peek through a transient outage (DESIGN §6)"
    );
}

// R53, R60, DESIGN §11.4: remote-controlled numbers (renewal_interval 0 or absurdly large,
// retry_after huge) are clamped through the coordinator: no panic, renewals within bounds.
#[test]
fn remote_numbers_are_clamped_through_the_coordinator_r53_r60() {
    use matrix_peek::{OutboundFailure, OutboundOutcome};
    use std::time::Duration;
    for interval in [Duration::ZERO, Duration::from_millis(u64::MAX), Duration::MAX] {
        let mut host = Host::new();
        let _ = host.answer_remote_put(
            at(0),
            OutboundOutcome::Established { renewal_interval: interval, access: readable() },
        );
        let next = host.peeking.poll_timeout().expect("a renewal is scheduled");
        assert!(next >= at(60_000) && next <= at(1_800_000), "{interval:?}: renew at {next:?}");
        host.restart(at(1));
        let _ = host.drain();
        assert!(host.peeking.poll_timeout().is_some());
    }
    let mut host = Host::new();
    let _ = host.answer_remote_put(
        at(0),
        OutboundOutcome::Failed(OutboundFailure::RateLimited { retry_after: Some(Duration::MAX) }),
    );
    let next = host.peeking.poll_timeout().expect("a retry is scheduled");
    assert!(next <= at(600_000), "retry_after is capped by backoff_max: {next:?}");
}
