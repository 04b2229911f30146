//! Where a client peek goes (MSC2753 in front of MSC2444): a remote room waits for one
//! federated `PUT` (R27, R58) and later devices are granted at once, a peek in the linger reuses
//! the federated peek (R55), a resident room never uses federation (R57), no candidates or a
//! joined user are refused at once (R46, R6), and a room reported remote again is peeked again.

use matrix_peek::{
    Change, ClientPeekReply, LocalPeekError, OutboundOutcome, OutboundPeekError, OutboundState,
    Output, PeekError,
};

use crate::support::host::*;

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
