//! SyTest `tests/31sync/17peeking.pl` ported to the coordinator: the six passing tests and the
//! eight stubs nobody wrote (docs/regressions.md#sytest-ports). What the host's `/sync`
//! would show is read from `sync_delta` (which section, full state or not) and `peekers` (who
//! gets the room's new events and is woken).

use matrix_peek::wire::{ErrorCode, ToMatrixError};
use matrix_peek::{ClientPeekReply, LocalPeekError, Output, PeekError, RoomAccess};
use ruma_common::{OwnedDeviceId, OwnedUserId, RoomVersionId};

use crate::support::host::*;

fn peek_local(
    host: &mut Host,
    user: OwnedUserId,
    device: OwnedDeviceId,
    access: RoomAccess,
) -> ClientPeekReply {
    host.peek(T0, resident_peek(user, device, access)).0
}

fn peekers(host: &Host) -> Vec<(String, String)> {
    host.peeking.peekers(&local_room()).map(|(u, d)| (u.to_string(), d.to_string())).collect()
}

// 1. "Local users can peek into world_readable rooms by room ID" (R9, R14, R15, R16, R23).
#[test]
fn sytest_local_users_can_peek_into_world_readable_rooms_by_room_id() {
    let mut host = Host::new();
    let reply = peek_local(&mut host, bob(), phone(), readable());
    let ClientPeekReply::Done(Ok(grant)) = reply else { panic!("{reply:?}") };
    assert_eq!(grant.room_id, local_room());
    assert!(grant.expires_at > T0, "R9");
    // First sync: rooms.peek[room] with full state (timeline starting at m.room.create); join empty.
    let first = host.peeking.sync_delta(&bob(), &phone(), None);
    assert_eq!(first.started, vec![local_room()], "R15: full state on the first peek sync");
    assert!(first.joined.is_empty(), "R23: rooms.join is empty");
    // The owner sends a message: the peeker is the one to get it and be woken.
    assert_eq!(peekers(&host), vec![(bob().to_string(), phone().to_string())]);
    // Next sync with no change: not in `started` again; only listed with new events (R16).
    let second = host.peeking.sync_delta(&bob(), &phone(), Some(first.next));
    assert!(second.started.is_empty(), "R16: an unchanged room is not re-sent with full state");
    assert_eq!(
        second.peeking,
        vec![local_room()],
        "still peeked: shown only when it has new events"
    );
    assert_eq!(second.next, first.next, "nothing changed in the peek stream");
}

fn refused_with_visibility(world_readable: bool) {
    let mut host = Host::new();
    let access = RoomAccess::new(RoomVersionId::V10, world_readable, false);
    let reply = peek_local(&mut host, bob(), phone(), access);
    let ClientPeekReply::Done(Err(error)) = reply else { panic!("{reply:?}") };
    assert_eq!(error, PeekError::Local(LocalPeekError::NotPeekable));
    let http = error.to_matrix_error();
    assert_eq!((http.status, http.errcode), (403, ErrorCode::Forbidden));
    assert!(host.peeking.local().is_empty());
    assert!(sends(&host.drain()).is_empty());
}

// 2. "We can't peek into rooms with shared history_visibility" (R7): 403 M_FORBIDDEN.
#[test]
fn sytest_cant_peek_into_rooms_with_shared_history_visibility() {
    refused_with_visibility(false);
}

// 3. "We can't peek into rooms with invited history_visibility" (R7).
#[test]
fn sytest_cant_peek_into_rooms_with_invited_history_visibility() {
    // `invited` is not world_readable: the host passes world_readable = false.
    refused_with_visibility(false);
}

// 4. "We can't peek into rooms with joined history_visibility" (R7).
#[test]
fn sytest_cant_peek_into_rooms_with_joined_history_visibility() {
    refused_with_visibility(false);
}

// 5. "Local users can peek by room alias" (R4): the host resolves the alias; the room id is
// the key of rooms.peek.
#[test]
fn sytest_local_users_can_peek_by_room_alias() {
    let mut host = Host::new();
    let alias: ruma_common::OwnedRoomAliasId = "#peektest:local.test".try_into().unwrap();
    let resolved = local_room(); // the host's alias directory
    assert_ne!(alias.as_str(), resolved.as_str());
    let reply = peek_local(&mut host, bob(), phone(), readable());
    let ClientPeekReply::Done(Ok(grant)) = reply else { panic!("{reply:?}") };
    assert_eq!(grant.room_id, resolved, "the response carries the resolved room id (R9)");
    assert_eq!(host.peeking.sync_delta(&bob(), &phone(), None).started, vec![resolved]);
}

// 6. "Peeked rooms only turn up in the sync for the device who peeked them" (R10, R14).
#[test]
fn sytest_peeked_rooms_only_turn_up_in_the_sync_for_the_device_who_peeked_them() {
    let mut host = Host::new();
    let _ = peek_local(&mut host, bob(), phone(), readable());
    let out = host.drain();
    let _ = out;
    let d2 = host.peeking.sync_delta(&bob(), &tablet(), None);
    assert!(d2.started.is_empty() && d2.peeking.is_empty(), "device 2 sees an empty peek");
    assert_eq!(
        peekers(&host),
        vec![(bob().to_string(), phone().to_string())],
        "a second message reaches device 1 only"
    );
    let d2 = host.peeking.sync_delta(&bob(), &tablet(), Some(d2.next));
    assert!(d2.started.is_empty() && d2.peeking.is_empty(), "still empty the second time");
}

// Stub 1. "Users can unpeek from rooms" (R12, R21).
#[test]
fn sytest_users_can_unpeek_from_rooms() {
    let mut host = Host::new();
    let _ = peek_local(&mut host, bob(), phone(), readable());
    let seen = host.peeking.sync_delta(&bob(), &phone(), None);
    host.peeking.handle_client_unpeek(at(10), &bob(), &phone(), &local_room()).unwrap();
    let out = host.drain();
    assert!(out.iter().any(|o| matches!(o, Output::Wake { .. })), "R21: the device is woken");
    let delta = host.peeking.sync_delta(&bob(), &phone(), Some(seen.next));
    assert_eq!(delta.ended, vec![local_room()], "R21: rooms.leave");
    assert!(delta.started.is_empty() && delta.peeking.is_empty());
    assert!(peekers(&host).is_empty(), "no more events for it");
    // R13: a second unpeek is M_BAD_STATE.
    let again = host.peeking.handle_client_unpeek(at(11), &bob(), &phone(), &local_room());
    assert_eq!(again, Err(PeekError::Local(LocalPeekError::NotPeeking)));
    assert_eq!(again.unwrap_err().to_matrix_error().errcode, ErrorCode::BadState);
}

// Stub 2. "Users can peek, unpeek and peek again" (R15; Dendrite-on-Postgres fails, B-10).
#[test]
fn sytest_users_can_peek_unpeek_and_peek_again() {
    let mut host = Host::new();
    let _ = peek_local(&mut host, bob(), phone(), readable());
    let first = host.peeking.sync_delta(&bob(), &phone(), None);
    host.peeking.handle_client_unpeek(at(10), &bob(), &phone(), &local_room()).unwrap();
    let left = host.peeking.sync_delta(&bob(), &phone(), Some(first.next));
    assert_eq!(left.ended, vec![local_room()]);
    let reply = host.peek(at(20), resident_peek(bob(), phone(), readable())).0;
    assert!(matches!(reply, ClientPeekReply::Done(Ok(_))));
    let again = host.peeking.sync_delta(&bob(), &phone(), Some(left.next));
    assert_eq!(again.started, vec![local_room()], "the re-peek gets full state again");
    assert!(again.ended.is_empty());
    assert!(again.next > left.next, "a fresh stream position (B-10)");
}

// Stub 3. "Peeking with full_state=true does the right thing" (R15, R22).
#[test]
fn sytest_peeking_with_full_state_true_does_the_right_thing() {
    let mut host = Host::new();
    let _ = peek_local(&mut host, bob(), phone(), readable());
    let first = host.peeking.sync_delta(&bob(), &phone(), None);
    // full_state=true (or no since) answers like an initial sync: every live peek with full
    // state, and it cancels nothing (R22).
    let full = host.peeking.sync_delta(&bob(), &phone(), None);
    assert_eq!(full.started, vec![local_room()]);
    assert!(full.ended.is_empty());
    assert!(host.peeking.local().is_peeking(&bob(), &phone(), &local_room()), "R22");
    let incremental = host.peeking.sync_delta(&bob(), &phone(), Some(first.next));
    assert_eq!(incremental.peeking, vec![local_room()]);
}

// Stub 4. "Joining a peeked room moves it atomically from peeked to joined rooms and stops
// peeking" (R19, R20, R23).
#[test]
fn sytest_joining_a_peeked_room_moves_it_atomically_from_peeked_to_joined_rooms() {
    let mut host = Host::new();
    let _ = peek_local(&mut host, bob(), phone(), readable());
    let _ = peek_local(&mut host, bob(), tablet(), readable());
    let seen = host.peeking.sync_delta(&bob(), &phone(), None);
    host.peeking.handle_joined(at(10), &bob(), &local_room(), &readable());
    let _ = host.drain();
    let delta = host.peeking.sync_delta(&bob(), &phone(), Some(seen.next));
    assert_eq!(delta.joined, vec![local_room()], "R19: join, without full state");
    assert!(
        delta.started.is_empty() && delta.peeking.is_empty() && delta.ended.is_empty(),
        "never both (R23)"
    );
    assert!(peekers(&host).is_empty(), "R20: all of the user's devices stop peeking");
}

// Stub 5. "Parting a room which was joined after being peeked doesn't go back to being
// peeked" (R20).
#[test]
fn sytest_parting_a_room_joined_after_being_peeked_does_not_go_back_to_peeked() {
    let mut host = Host::new();
    let _ = peek_local(&mut host, bob(), phone(), readable());
    let seen = host.peeking.sync_delta(&bob(), &phone(), None);
    host.peeking.handle_joined(at(10), &bob(), &local_room(), &readable());
    let _ = host.drain();
    let joined = host.peeking.sync_delta(&bob(), &phone(), Some(seen.next));
    // The user leaves (plain membership; the library only hears of the server leaving).
    host.peeking.handle_server_left(at(20), &local_room());
    host.peeking.handle_timeout(at(2 * 3_600_000));
    let _ = host.drain();
    let after = host.peeking.sync_delta(&bob(), &phone(), Some(joined.next));
    assert!(after.started.is_empty() && after.peeking.is_empty(), "no peek comes back: {after:?}");
    assert!(!host.peeking.local().is_peeking(&bob(), &phone(), &local_room()));
    assert!(peekers(&host).is_empty());
}

// Stub 6. "Changing history visibility to non-world_readable terminates peeks" (R24; Dendrite
// fails).
#[test]
fn sytest_changing_history_visibility_to_non_world_readable_terminates_peeks() {
    let mut host = Host::new();
    let _ = peek_local(&mut host, bob(), phone(), readable());
    let seen = host.peeking.sync_delta(&bob(), &phone(), None);
    host.peeking.handle_access_changed(at(10), &local_room(), &shared());
    let out = host.drain();
    assert!(out.iter().any(|o| matches!(o, Output::Wake { .. })));
    let delta = host.peeking.sync_delta(&bob(), &phone(), Some(seen.next));
    assert_eq!(delta.ended, vec![local_room()]);
    assert!(peekers(&host).is_empty(), "no further events are shown to the peeker");
    // And a new peek is refused (R7).
    let reply = host.peek(at(11), resident_peek(bob(), phone(), shared())).0;
    assert_eq!(reply, ClientPeekReply::Done(Err(PeekError::Local(LocalPeekError::NotPeekable))));
}

// Stub 7 (fed branch). "Peeking into an unknown room returns the right error" (R4, R27):
// 404 M_NOT_FOUND, whether no server is known or every server says 404.
#[test]
fn sytest_peeking_into_an_unknown_room_returns_the_right_error() {
    let mut host = Host::new();
    let reply = host.peek(T0, remote_peek(bob(), phone(), &[])).0;
    let ClientPeekReply::Done(Err(error)) = reply else { panic!("{reply:?}") };
    let http = error.to_matrix_error();
    assert_eq!((http.status, http.errcode), (404, ErrorCode::NotFound));

    let mut host = Host::new();
    let (reply, out) = host.peek(T0, remote_peek(bob(), phone(), &[remote_server()]));
    let ClientPeekReply::Pending(id) = reply else { panic!("{reply:?}") };
    let put = only_send(&out, Kind::Peek);
    host.peeking.handle_response(
        at(1),
        put.id,
        matrix_peek::OutboundOutcome::Failed(matrix_peek::OutboundFailure::NotFound),
    );
    let result = host
        .drain()
        .into_iter()
        .find_map(|o| match o {
            Output::ClientPeekDone { id: i, result } if i == id => Some(result),
            _ => None,
        })
        .unwrap();
    let http = result.unwrap_err().to_matrix_error();
    assert_eq!((http.status, http.errcode), (404, ErrorCode::NotFound));
}

// Stub 8 (fed branch). "Users can peek local EDUs" (R26): the crate decides who the room's
// EDUs could go to (`peekers`, per device); it never adds EDUs itself, so `ephemeral` stays
// empty unless the host deliberately sends them to exactly these devices.
#[test]
fn sytest_users_can_peek_local_edus() {
    let mut host = Host::new();
    let _ = peek_local(&mut host, bob(), phone(), readable());
    let _ = host.drain();
    // A typing notification in the room: the host fans it out to `peekers` only.
    assert_eq!(peekers(&host), vec![(bob().to_string(), phone().to_string())]);
    assert!(!host.peeking.peekers(&local_room()).any(|(_, d)| d == tablet()), "R10");
    // After unpeek nobody receives the room's EDUs.
    host.peeking.handle_client_unpeek(at(1), &bob(), &phone(), &local_room()).unwrap();
    assert!(peekers(&host).is_empty());
}
