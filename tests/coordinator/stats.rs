//! `Peeking::stats`: each counter moves with the event it names, and the gauges match what the
//! machines hold.

use matrix_peek::{ClientPeekReply, OutboundFailure, OutboundOutcome, PeekingConfig, PeekingStats};

use crate::support::host::*;

fn stats(host: &Host) -> PeekingStats {
    host.peeking.stats()
}

/// A client peek that waits on federation and is granted on establishment counts as remote,
/// waited, granted after the wait; the PUT as sent and ok; the room as established.
#[test]
fn a_remote_peek_granted_after_a_wait_moves_the_client_and_outbound_counters() {
    let mut host = Host::new();
    let (reply, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    let s = stats(&host);
    assert_eq!(s.client_peeks.remote, 1);
    assert_eq!(s.client_peeks.waited, 1);
    assert_eq!(s.pending_client_peeks, 1);
    assert_eq!(s.outbound.puts.sent, 1);
    assert_eq!(s.outbound.in_flight, 1);
    assert_eq!(s.outbound.rooms.connecting, 1);

    let put = only_send(&out, Kind::Peek);
    host.peeking.handle_response(T0, put.id, established());
    host.drain();
    let s = stats(&host);
    assert_eq!(s.client_peeks.granted_after_wait, 1);
    assert_eq!(s.pending_client_peeks, 0);
    assert_eq!(s.remote_rooms, 1);
    assert_eq!(s.outbound.puts.ok, 1);
    assert_eq!(s.outbound.established, 1);
    assert_eq!(s.outbound.in_flight, 0);
    assert_eq!(s.outbound.rooms.connecting, 0);
    assert_eq!(s.outbound.rooms.established, 1);
    assert_eq!(s.local.started, 1);
    assert_eq!(s.local.live_peeks, 1);
    assert_eq!(s.local.demanded_rooms, 1);

    // A second device is answered at once: the federated peek is up.
    let (reply, _) = host.peek(at(1), remote_peek(alice(), tablet(), &[remote_server()]));
    assert!(matches!(reply, ClientPeekReply::Done(Ok(_))));
    let s = stats(&host);
    assert_eq!(s.client_peeks.remote, 2);
    assert_eq!(s.client_peeks.answered_at_once, 1);
    assert_eq!(s.client_peeks.waited, 1);
    assert_eq!(s.outbound.puts.sent, 1, "one federated peek per room");
    assert_eq!(s.local.live_peeks, 2);
    assert_eq!(s.local.devices, 2);
}

/// Every resident refusing counts a refused PUT, an `Unavailable`, and a refused waiting peek.
#[test]
fn a_refused_remote_peek_counts_the_refusal_on_both_sides() {
    let mut host = Host::new();
    host.answer_remote_put(T0, OutboundOutcome::Failed(OutboundFailure::Forbidden));
    let s = stats(&host);
    assert_eq!(s.client_peeks.refused_after_wait, 1);
    assert_eq!(s.client_peeks.granted_after_wait, 0);
    assert_eq!(s.outbound.puts.refused, 1);
    assert_eq!(s.outbound.unavailable, 1);
    assert_eq!(s.remote_rooms, 0);
    assert_eq!(s.local.live_peeks, 0);
}

/// A waiting peek withdrawn by its client, and one that outlives `max_pending_wait`, are
/// counted apart; over the cap of waiting peeks, the refusal is counted too.
#[test]
fn withdrawn_timed_out_and_over_capacity_waits_are_counted_apart() {
    let config = PeekingConfig { max_pending_client_peeks: 1, ..PeekingConfig::default() };
    let mut host = Host::with_config(config.clone());
    let (reply, _) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    let ClientPeekReply::Pending(id) = reply else { panic!("{reply:?}") };
    let (over, _) = host.peek(T0, remote_peek(bob(), phone(), &[remote_server()]));
    assert!(matches!(over, ClientPeekReply::Done(Err(_))), "{over:?}");
    host.peeking.handle_client_peek_withdrawn(at(1), id);
    host.drain();
    let s = stats(&host);
    assert_eq!(s.client_peeks.over_capacity, 1);
    assert_eq!(s.client_peeks.withdrawn, 1);
    assert_eq!(s.pending_client_peeks, 0);

    let mut host = Host::with_config(config.clone());
    let (reply, _) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    let late = T0.saturating_add(config.max_pending_wait);
    host.peeking.handle_timeout(late);
    host.drain();
    let s = stats(&host);
    assert_eq!(s.client_peeks.timed_out, 1);
    assert_eq!(s.client_peeks.withdrawn, 0);
    assert_eq!(s.pending_client_peeks, 0);
}

/// Local peeks: a grant, a renewal, a refusal by reason, an ending by reason.
#[test]
fn local_counters_follow_grants_renewals_refusals_and_endings() {
    let mut host = Host::new();
    assert!(matches!(
        host.peek(T0, resident_peek(alice(), phone(), readable())).0,
        ClientPeekReply::Done(Ok(_))
    ));
    assert!(matches!(
        host.peek(at(1), resident_peek(alice(), phone(), readable())).0,
        ClientPeekReply::Done(Ok(_))
    ));
    assert!(matches!(
        host.peek(at(2), resident_peek(bob(), phone(), shared())).0,
        ClientPeekReply::Done(Err(_))
    ));
    host.peeking.handle_client_unpeek(at(3), &alice(), &phone(), &local_room()).unwrap();
    assert!(host.peeking.handle_client_unpeek(at(4), &alice(), &phone(), &local_room()).is_err());
    host.drain();
    let s = stats(&host).local;
    assert_eq!(s.started, 1);
    assert_eq!(s.renewed, 1);
    assert_eq!(s.refused.not_peekable, 1);
    assert_eq!(s.refused.not_peeking, 1);
    assert_eq!(s.ended.unpeeked, 1);
    assert_eq!(s.live_peeks, 0);
    assert_eq!(s.demanded_rooms, 0);
}

/// Inbound peeks: a grant, a refresh (the same id again), a renewal, a refusal, a deletion.
#[test]
fn inbound_counters_follow_grants_renewals_refusals_and_endings() {
    let mut host = Host::new();
    inbound(&mut host, T0, "p1").unwrap();
    inbound(&mut host, at(1), "p1").unwrap();
    host.peeking.handle_inbound_renew(at(2), &peer(), &local_room(), "p1").unwrap();
    let unknown = host.peeking.handle_inbound_renew(at(3), &peer(), &local_room(), "nope");
    assert!(unknown.is_err());
    let s = stats(&host).inbound;
    assert_eq!((s.granted, s.refreshed, s.renewed), (1, 1, 1));
    assert_eq!(s.refused.unknown_peek, 1);
    assert_eq!((s.live_peeks, s.rooms, s.servers), (1, 1, 1));

    host.peeking.handle_inbound_unpeek(at(4), &peer(), &local_room(), "p1").unwrap();
    host.drain();
    let s = stats(&host).inbound;
    assert_eq!(s.ended.deleted, 1);
    assert_eq!((s.live_peeks, s.rooms, s.servers), (0, 0, 0));
}

/// A resident the host reports unreachable makes an established room fail over: one
/// failover, one `Lost`, a retired peek being deleted, and a new PUT to the other candidate.
#[test]
fn an_unreachable_resident_counts_a_failover_and_a_retired_peek() {
    let mut host = Host::new();
    let (_, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server(), other_server()]));
    let put = only_send(&out, Kind::Peek);
    host.peeking.handle_response(T0, put.id, established());
    host.drain();
    host.peeking.handle_server_unreachable(at(10), &put.server);
    host.drain();
    let s = stats(&host).outbound;
    assert_eq!(s.failovers, 1);
    assert_eq!(s.lost, 1);
    assert_eq!(s.puts.sent, 2);
    assert_eq!(s.retired_peeks, 1);
    assert_eq!(s.deletes.sent, 1);
    assert_eq!(s.rooms.connecting, 1);
}
