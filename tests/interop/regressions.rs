//! Regression guards: every Dendrite defect B-1…B-13 (docs/regressions.md#dendrite-defects) and every palpo review
//! finding 1–13 (docs/regressions.md#palpo-review-findings) that applies to this crate, each a named test, at whatever
//! level proves it. Findings that do not apply say why in a comment.

use std::time::Duration;

use matrix_peek::wire::{AnyPeekResponse, Extremities};
use matrix_peek::{
    ClientPeekReply, InboundEndReason, InboundPeekError, LocalEndReason, OutboundFailure,
    OutboundOutcome, OutboundPeekError, Output, PeekError, RoomAccess,
};
use matrix_peek::{OutboundLostReason, OutboundState};
use ruma_common::{OwnedRoomId, RoomVersionId};

use crate::support::host::*;

/// Whether `out` expires an inbound peek for `reason`.
fn expired(out: &[Output], reason: InboundEndReason) -> bool {
    out.iter().any(|o| matches!(o, Output::Expired { reason: r, .. } if *r == reason))
}

fn done(
    out: &[Output],
    id: matrix_peek::RequestId,
) -> Option<Result<matrix_peek::LocalGrant, PeekError>> {
    out.iter().find_map(|o| match o {
        Output::ClientPeekDone { id: i, result } if *i == id => Some(result.clone()),
        _ => None,
    })
}

// ----- Dendrite -----

// B-1 (R49): a real Dendrite `/peek` response with `latest_event` decodes.
#[test]
fn b01_dendrite_peek_response_with_latest_event_decodes() {
    let any =
        AnyPeekResponse::from_slice(include_bytes!("../fixtures/dendrite_peek_response.json"))
            .unwrap();
    assert!(matches!(any.extremities, Extremities::Events(ref e) if e.len() == 1));
    assert_eq!(any.effective_room_version(), Some(RoomVersionId::V10));
}

// B-2 (R38): a repeated federation PUT with the same id is idempotent and never crashes.
#[test]
fn b02_repeated_federation_peek_does_not_crash() {
    let mut host = Host::new();
    let first = inbound(&mut host, T0, "!room:id.test").unwrap(); // Dendrite's peek id = room id
    assert!(!first.refreshed);
    for i in 1..5 {
        let again = inbound(&mut host, at(i * 1_000), "!room:id.test").unwrap();
        assert!(again.refreshed, "a re-PUT refreshes the lease");
        assert!(again.expires_at > first.expires_at);
    }
    assert_eq!(host.peeking.destinations(&local_room()).count(), 1, "no duplicate subscription");
    assert_eq!(host.peeking.inbound().len(), 1);
}

// B-3 (R42): DELETE ends the peek; it is not a PUT.
#[test]
fn b03_delete_removes_the_peek_instead_of_creating_it() {
    let mut host = Host::new();
    assert_eq!(
        host.peeking.handle_inbound_unpeek(T0, &peer(), &local_room(), "p1"),
        Err(InboundPeekError::UnknownPeek)
    );
    assert_eq!(host.peeking.inbound().len(), 0, "an unknown DELETE creates nothing");
    inbound(&mut host, T0, "p1").unwrap();
    host.peeking.handle_inbound_unpeek(at(1), &peer(), &local_room(), "p1").unwrap();
    assert_eq!(host.peeking.destinations(&local_room()).count(), 0, "fan-out stops");
    assert_eq!(
        host.peeking.handle_inbound_renew(at(2), &peer(), &local_room(), "p1"),
        Err(InboundPeekError::UnknownPeek)
    );
}

// B-4 (R35, R53): intervals are milliseconds and sane; a peer's 1000× interval is clamped.
#[test]
fn b04_renewal_interval_is_in_milliseconds_and_clamped() {
    let mut host = Host::new();
    let grant = inbound(&mut host, T0, "p1").unwrap();
    assert_eq!(grant.renewal_interval, Duration::from_millis(3_600_000));
    let (_, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    let put = only_send(&out, Kind::Peek);
    host.peeking.handle_response(
        T0,
        put.id,
        OutboundOutcome::Established {
            renewal_interval: Duration::from_millis(3_600_000_000),
            access: readable(),
        },
    );
    let _ = host.drain();
    assert!(
        host.peeking.outbound().poll_timeout() <= Some(at(30 * 60_000)),
        "renews within max_renew_after"
    );
}

// B-5 (R41, R43, R55): renewals go out, unrenewed inbound peeks are evicted, unpeek reaches
// the remote.
#[test]
fn b05_renewal_eviction_and_unpeek_propagation_happen() {
    let mut host = Host::new();
    host.establish_remote(T0);
    inbound(&mut host, T0, "p1").unwrap();
    host.peeking.handle_timeout(at(30 * 60_000));
    let renew = only_send(&host.drain(), Kind::Renew);
    host.peeking.handle_response(
        at(30 * 60_000),
        renew.id,
        OutboundOutcome::Renewed { renewal_interval: Some(secs(3600)) },
    );
    let _ = host.drain();
    host.peeking.handle_client_unpeek(at(40 * 60_000), &alice(), &phone(), &remote_room()).unwrap();
    let _ = host.drain();
    host.peeking.handle_timeout(at(40 * 60_000).saturating_add(host.config.outbound.linger));
    only_send(&host.drain(), Kind::Unpeek);
    host.peeking.handle_timeout(at(65 * 60_000 + 1));
    assert!(expired(&host.drain(), InboundEndReason::Lapsed));
    assert_eq!(host.peeking.destinations(&local_room()).count(), 0);
}

// B-6 (R31, R32, R33, R34): inbound peeks are access-controlled and capped.
#[test]
fn b06_inbound_peeks_are_access_controlled() {
    let mut host = Host::new();
    let p = &mut host.peeking;
    assert_eq!(
        p.handle_inbound_peek(T0, &peer(), &local_room(), "p", V10, None),
        Err(InboundPeekError::UnknownRoom)
    );
    assert_eq!(
        p.handle_inbound_peek(T0, &peer(), &local_room(), "p", V10, Some(&shared())),
        Err(InboundPeekError::NotPeekable)
    );
    let encrypted = RoomAccess::new(RoomVersionId::V10, true, true);
    assert_eq!(
        p.handle_inbound_peek(T0, &peer(), &local_room(), "p", V10, Some(&encrypted)),
        Err(InboundPeekError::NotPeekable)
    );
    assert!(matches!(
        p.handle_inbound_peek(
            T0,
            &peer(),
            &local_room(),
            "p",
            &[RoomVersionId::V9],
            Some(&readable())
        ),
        Err(InboundPeekError::IncompatibleRoomVersion { .. })
    ));
    let mut config = matrix_peek::PeekingConfig::default();
    config.inbound.max_peeks_per_server = 2;
    let mut host = Host::with_config(config);
    inbound(&mut host, T0, "a").unwrap();
    inbound(&mut host, T0, "b").unwrap();
    assert!(matches!(inbound(&mut host, T0, "c"), Err(InboundPeekError::LimitExceeded { .. })));
}

// B-7 (R39): fan-out is per room, whatever server authored the event: `destinations` takes no
// origin, so events from third servers reach peekers too. Palpo 1 is the same finding.
#[test]
fn b07_destinations_do_not_depend_on_event_origin() {
    let mut host = Host::new();
    inbound(&mut host, T0, "p1").unwrap();
    let dests: Vec<_> = host.peeking.destinations(&local_room()).map(|s| s.to_owned()).collect();
    assert_eq!(dests, vec![peer()]);
}

// B-8 (R53, R54): a stale federated peek is never counted as live.
#[test]
fn b08_stale_outbound_peek_is_not_treated_as_live() {
    let mut host = Host::new();
    let out = host.renewal_not_found();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Lost { reason: OutboundLostReason::RemoteExpired, .. }))
    );
    let put = only_send(&out, Kind::Peek);
    assert!(host.peeking.outbound().established(&remote_room()).is_none());
    let (reply, _) = host.peek(at(30 * 60_000), remote_peek(bob(), phone(), &[remote_server()]));
    assert!(matches!(reply, ClientPeekReply::Pending(_)), "not granted on a dead peek: {reply:?}");
    host.peeking.handle_response(at(30 * 60_000), put.id, established());
    assert!(host.drain().iter().any(|o| matches!(o, Output::ClientPeekDone { result: Ok(_), .. })));
}

// B-9 (R46, R60): a peek through server A does not count for server B; B is really contacted.
#[test]
fn b09_peek_via_second_server_contacts_it() {
    let mut host = Host::new();
    let (_, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server(), other_server()]));
    let a = only_send(&out, Kind::Peek);
    assert_eq!(a.server, remote_server());
    host.peeking.handle_response(at(1), a.id, OutboundOutcome::Failed(OutboundFailure::Forbidden));
    let b = only_send(&host.drain(), Kind::Peek);
    assert_eq!(b.server, other_server());
    assert_ne!(a.peek_id, b.peek_id, "R47: a fresh id per target");
    host.peeking.handle_response(at(2), b.id, established());
    let _ = host.drain();
    assert_eq!(
        host.peeking.outbound().established(&remote_room()).map(|(s, _)| s.to_owned()),
        Some(other_server())
    );
}

// B-10 (R15): stream positions are fresh for every change and survive a restart.
#[test]
fn b10_stream_positions_are_stable_across_repeek_and_restart() {
    let mut host = Host::new();
    let _ = host.peek(T0, resident_peek(alice(), phone(), readable()));
    let a = host.peeking.sync_delta(&alice(), &phone(), None).next;
    host.peeking.handle_client_unpeek(at(1), &alice(), &phone(), &local_room()).unwrap();
    let _ = host.drain();
    let b = host.peeking.sync_delta(&alice(), &phone(), None).next;
    assert!(b > a);
    host.restart(at(2));
    let _ = host.drain();
    assert_eq!(host.peeking.sync_delta(&alice(), &phone(), None).next, b, "the head survives");
    let _ = host.peek(at(3), resident_peek(alice(), phone(), readable()));
    let delta = host.peeking.sync_delta(&alice(), &phone(), Some(b));
    assert!(delta.next > b);
    assert_eq!(
        delta.started,
        vec![local_room()],
        "a re-peek after a restart is seen with full state"
    );
}

// B-11 (R14): a peek start wakes the device's long-poll.
#[test]
fn b11_peek_wakes_a_long_polling_sync() {
    let mut host = Host::new();
    let (_, out) = host.peek(T0, resident_peek(alice(), phone(), readable()));
    assert!(
        out.iter().any(|o| matches!(o, Output::Wake { device_id, .. } if *device_id == phone()))
    );
}

// B-12 (docs/architecture.md §13): a failed write is never acknowledged to the client.
#[test]
fn b12_store_failure_is_not_silently_acknowledged() {
    use matrix_peek::testing::{FlakyStore, ManualClock, MemoryStore, ScriptedTransport};
    let memory = MemoryStore::new();
    let flaky = FlakyStore::new(memory.clone());
    let clock = ManualClock::new(T0);
    let driver = futures::executor::block_on(matrix_peek::Driver::open(
        matrix_peek::DriverConfig::default(),
        flaky.clone(),
        ScriptedTransport::new(),
        clock,
    ))
    .unwrap();
    flaky.fail_saves(true);
    let r = futures::executor::block_on(driver.client_peek(resident_peek(
        alice(),
        phone(),
        readable(),
    )));
    assert!(matches!(r, Err(matrix_peek::DriverError::Store(_))));
    assert!(
        memory.snapshot().local.iter().all(|r| !matches!(r, matrix_peek::LocalRecord::Peek { .. }))
    );
}

// B-13 (R46): v12 room ids have no server part; nothing derives one or panics.
#[test]
fn b13_v12_room_id_without_server_name_works() {
    let v12: OwnedRoomId = "!7Xx0hjkdTTH6W8HXvjVQWqGdPnfVzPOAHGl6jTtnN0U".try_into().unwrap();
    let mut host = Host::new();
    let mut p = remote_peek(alice(), phone(), &[]);
    p.room_id = v12.clone();
    let (reply, out) = host.peek(T0, p.clone());
    assert_eq!(
        reply,
        ClientPeekReply::Done(Err(PeekError::Remote(OutboundPeekError::NoCandidates)))
    );
    assert!(sends(&out).is_empty(), "no server is derived from the room id");
    p.via = vec![remote_server()];
    let (_, out) = host.peek(at(1), p);
    let put = only_send(&out, Kind::Peek);
    assert_eq!((put.server.into_owned_id(), put.room_id.into_owned_id()), (remote_server(), v12));
}

// ----- palpo review (PR #218) -----

// palpo 1: relay from the single choke point, whatever the event's origin: see b07.
#[test]
fn palpo_01_fan_out_is_per_room_not_per_origin() {
    b07_destinations_do_not_depend_on_event_origin();
}

// palpo 2 (R40, R41): no relay once the room is not world-readable; renewal refused then.
#[test]
fn palpo_02_no_relay_and_no_renewal_after_access_lost() {
    let mut host = Host::new();
    inbound(&mut host, T0, "p1").unwrap();
    host.peeking.handle_access_changed(at(1), &local_room(), &shared());
    let _ = host.drain();
    assert_eq!(host.peeking.destinations(&local_room()).count(), 0);
    assert_eq!(
        host.peeking.handle_inbound_renew(at(2), &peer(), &local_room(), "p1"),
        Err(InboundPeekError::UnknownPeek)
    );
    assert_eq!(
        host.peeking.handle_inbound_peek(at(3), &peer(), &local_room(), "p1", V10, Some(&shared())),
        Err(InboundPeekError::NotPeekable)
    );
}

// palpo 3 (R45): a server newly denied by the ACL is expired and not relayed to.
#[test]
fn palpo_03_server_acl_is_reapplied_to_live_peeks() {
    let mut host = Host::new();
    inbound(&mut host, T0, "p1").unwrap();
    host.peeking.handle_server_denied(at(1), &local_room(), &peer());
    assert!(expired(&host.drain(), InboundEndReason::ServerDenied));
    assert_eq!(host.peeking.destinations(&local_room()).count(), 0);
}

// palpo 4 (R37, R38): the peeker is registered before the snapshot is taken (the PUT handler
// calls handle_inbound_peek first), and duplicates are idempotent.
#[test]
fn palpo_04_peeker_registered_before_snapshot_and_idempotent() {
    let mut host = Host::new();
    inbound(&mut host, T0, "p1").unwrap();
    // An event accepted now (while the host builds the snapshot) is already relayed to it.
    assert_eq!(host.peeking.destinations(&local_room()).count(), 1);
    assert!(inbound(&mut host, at(1), "p1").unwrap().refreshed);
    assert_eq!(host.peeking.destinations(&local_room()).count(), 1);
    // A failed snapshot rolls back.
    host.peeking.handle_inbound_unpeek(at(2), &peer(), &local_room(), "p1").unwrap();
    assert_eq!(host.peeking.destinations(&local_room()).count(), 0);
}

// palpo 5: no ownerless subscription: every federated peek hangs off a device lease; once the
// lease lapses, exactly one DELETE, then nothing.
#[test]
fn palpo_05_no_ownerless_forever_renewed_subscription() {
    let mut host = Host::new();
    host.establish_remote(T0);
    let mut deletes = 0;
    let mut renews = 0;
    while let Some(t) = host.peeking.poll_timeout() {
        host.peeking.handle_timeout(t);
        let out = host.drain();
        deletes += sends(&out).iter().filter(|r| kind(r) == Kind::Unpeek).count();
        renews += sends(&out).iter().filter(|r| kind(r) == Kind::Renew).count();
        let _ = answer_all(&mut host, t, out, granted);
        assert!(t < at(48 * 3_600_000), "the subscription must end");
    }
    assert_eq!(deletes, 1);
    assert!(renews <= 3, "renewed only while the lease lived: {renews}");
}

// palpo 6: not applicable — the crate builds no sync bodies and handles no EDUs, device lists
// or presence; `SyncDelta` only says which section a room goes in (joined rooms never appear
// as peeked, see sytest_local). The host keeps `ephemeral` empty (R26).

// palpo 7 (R51): the host's /send gate can tell a peeked-not-joined room and its resident.
#[test]
fn palpo_07_send_gate_knows_peeked_rooms() {
    let mut host = Host::new();
    host.establish_remote(T0);
    assert!(host.peeking.is_remote(&remote_room()));
    assert_eq!(
        host.peeking.outbound().established(&remote_room()).map(|(s, _)| s.to_owned()),
        Some(remote_server())
    );
}

// palpo 8 (R51, R59): the peek is recorded before the PUT goes out; a failed ingestion
// (InvalidResponse) rolls it back with a DELETE.
#[test]
fn palpo_08_peek_recorded_before_snapshot_and_rolled_back_on_failure() {
    let mut host = Host::new();
    let (_, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    let persist = out
        .iter()
        .position(|o| matches!(o, Output::Persist(matrix_peek::Change::Outbound(_))))
        .unwrap();
    let send = out.iter().position(|o| matches!(o, Output::Send(_))).unwrap();
    assert!(persist < send);
    let put = only_send(&out, Kind::Peek);
    host.peeking.handle_response(
        at(1),
        put.id,
        OutboundOutcome::Failed(OutboundFailure::InvalidResponse),
    );
    let delete = only_send(&host.drain(), Kind::Unpeek);
    assert_eq!(delete.peek_id, put.peek_id);
}

// palpo 9 (R10): peeks are per device.
#[test]
fn palpo_09_per_device_scoping() {
    let mut host = Host::new();
    let _ = host.peek(T0, resident_peek(alice(), phone(), readable()));
    assert!(host.peeking.sync_delta(&alice(), &tablet(), None).started.is_empty());
    assert_eq!(host.peeking.sync_delta(&alice(), &phone(), None).started, vec![local_room()]);
}

// palpo 10 (R24): revoked world-readability ends peeks (the host reports the state change;
// there is no per-sync re-check to forget).
#[test]
fn palpo_10_revoked_access_drops_peeks() {
    let mut host = Host::new();
    let _ = host.peek(T0, resident_peek(alice(), phone(), readable()));
    host.peeking.handle_access_changed(at(1), &local_room(), &shared());
    assert!(
        host.drain()
            .iter()
            .any(|o| matches!(o, Output::PeekEnded { reason: LocalEndReason::AccessLost, .. }))
    );
    assert!(!host.peeking.local().is_peeking(&alice(), &phone(), &local_room()));
}

// palpo 11 (R54, R27): renewal failure → full re-establish; if that fails, both the federated
// peek and the local peeks are dropped.
#[test]
fn palpo_11_renewal_failure_reestablishes_or_drops_everything() {
    let mut host = Host::new();
    let put = only_send(&host.renewal_not_found(), Kind::Peek);
    host.peeking.handle_response(
        at(30 * 60_000 + 1),
        put.id,
        OutboundOutcome::Failed(OutboundFailure::Forbidden),
    );
    let out = host.drain();
    assert!(out.iter().any(|o| matches!(o, Output::Unavailable { .. })), "{out:?}");
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::PeekEnded { reason: LocalEndReason::RemoteUnavailable, .. }
        ))
    );
    assert!(sends(&out).iter().all(|r| kind(r) != Kind::Renew));
    assert!(
        host.peeking.outbound().is_empty()
            || host.peeking.outbound().state(&remote_room()) == Some(OutboundState::Deleting)
    );
    assert!(!host.peeking.is_remote(&remote_room()));
}

// palpo 12 (R49): a snapshot that failed validation never grants the client and is deleted.
#[test]
fn palpo_12_invalid_snapshot_is_rejected() {
    let mut host = Host::new();
    let (reply, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    let ClientPeekReply::Pending(id) = reply else { panic!() };
    let put = only_send(&out, Kind::Peek);
    host.peeking.handle_response(
        at(1),
        put.id,
        OutboundOutcome::Failed(OutboundFailure::InvalidResponse),
    );
    let out = host.drain();
    only_send(&out, Kind::Unpeek);
    assert!(matches!(done(&out, id), Some(Err(_))), "{out:?}");
    assert!(!host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()));
}

// palpo 13 (R49, R32): world-readability is judged from the snapshot's own state: an
// Established whose state is not world-readable is refused and deleted, not granted.
#[test]
fn palpo_13_unreadable_snapshot_state_is_refused() {
    let mut host = Host::new();
    let (reply, out) = host.peek(T0, remote_peek(alice(), phone(), &[remote_server()]));
    let ClientPeekReply::Pending(id) = reply else { panic!() };
    let put = only_send(&out, Kind::Peek);
    host.peeking.handle_response(
        at(1),
        put.id,
        OutboundOutcome::Established { renewal_interval: secs(3600), access: shared() },
    );
    let out = host.drain();
    only_send(&out, Kind::Unpeek);
    let result = done(&out, id).expect("decided");
    assert!(result.is_err(), "{result:?}");
    assert!(!host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()));
}
