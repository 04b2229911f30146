//! Adversarial review: the coordinator's pending client peeks (DESIGN §7).

mod coordinator_support;

use coordinator_support::*;
use matrix_peek::{ClientPeekReply, LocalPeekError, Output, PeekError};

fn pending_id(reply: &ClientPeekReply) -> matrix_peek::RequestId {
    match reply {
        ClientPeekReply::Pending(id) => *id,
        other => panic!("expected Pending, got {other:?}"),
    }
}

fn done_for(out: &[Output], id: matrix_peek::RequestId) -> Option<Result<(), PeekError>> {
    out.iter().find_map(|o| match o {
        Output::ClientPeekDone { id: done, result } if *done == id => {
            Some(result.clone().map(|_| ()))
        }
        _ => None,
    })
}

// R6, R19, R23: a user who joins the room while their own remote peek is still waiting on
// federation must not be granted a peek on it (the room would be in both `join` and `peek`);
// the waiting peek fails like any peek of a joined user (400 M_BAD_STATE).
#[test]
fn pending_peek_of_a_user_who_joined_meanwhile_is_refused_not_granted_r6_r23() {
    let mut host = Host::new();
    let (reply, out) = host.peek(at(0), remote_peek(alice(), phone(), &[remote_server()]));
    let id = pending_id(&reply);
    let _put = only_send(&out, Kind::Peek);
    // Alice joins (the host sent the join through the resident); bob's peek is not affected.
    let (bob_reply, _) = host.peek(at(1), remote_peek(bob(), tablet(), &[remote_server()]));
    let bob_id = pending_id(&bob_reply);
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
