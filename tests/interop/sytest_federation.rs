//! The federated sytest `tests/50federation/44peeking.pl` (unmerged branch
//! `matthew/peeking-over-fed`, docs/regressions.md#sytest-ports): the one written test and its
//! eleven stubs, each on the simulator (`testing::Sim`) with real assertions.

#![cfg(feature = "testing")]

use std::time::Duration;

use matrix_peek::testing::SimConfig;
use matrix_peek::testing::{Sim, SimError};
use matrix_peek::wire::{ErrorCode, ToMatrixError};
use matrix_peek::{ClientPeekReply, PeekError, PeekingConfig, RoomAccess};
use matrix_peek::{OutboundConfig, OutboundRequestKind, PeekIdPolicy};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomVersionId,
    owned_room_alias_id, owned_room_id, owned_user_id,
};

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);

struct TwoServers {
    sim: Sim,
    hs1: OwnedServerName,
    hs2: OwnedServerName,
    room: OwnedRoomId,
    alice: OwnedUserId,
    dev: OwnedDeviceId,
}

/// Two homeservers on the simulator: hs2 holds a room (`world_readable` as asked; alias
/// `#peektest:hs2`); `@alice:hs1` (device `DEV`) is the remote peeker.
fn two_servers(world_readable: bool, config: SimConfig) -> Result<TwoServers, SimError> {
    let mut sim = Sim::new(config);
    let hs1 = sim.add_server("hs1")?;
    let hs2 = sim.add_server("hs2")?;
    let room = owned_room_id!("!peektest:hs2");
    let access = RoomAccess::new(RoomVersionId::V10, world_readable, false);
    sim.create_room(&hs2, &owned_user_id!("@owner:hs2"), &room, access)?;
    sim.add_alias(&owned_room_alias_id!("#peektest:hs2"), &room)?;
    Ok(TwoServers { sim, hs1, hs2, room, alice: owned_user_id!("@alice:hs1"), dev: "DEV".into() })
}

impl TwoServers {
    fn peek(&mut self) -> Result<ClientPeekReply, SimError> {
        let (sim, hs2) = (&mut self.sim, self.hs2.clone());
        sim.client_peek(&self.hs1, &self.alice, &self.dev, &self.room, &[hs2])
    }

    /// Peeks and lets federation answer; returns the final result.
    /// The outer error is the simulator's, the inner the server's answer.
    fn peek_and_wait(&mut self) -> Result<Result<(), PeekError>, SimError> {
        let _ = self.peek()?;
        self.sim.run_for(5 * SEC);
        self.sim.assert_client_peeks_completed();
        Ok(self.sim.client_peeks().last().unwrap().result.clone().unwrap().map(|_| ()))
    }

    fn requests(
        &self,
        room: &RoomId,
        kind: fn(&OutboundRequestKind) -> bool,
    ) -> Vec<matrix_peek::PeekId> {
        self.sim
            .sent_requests()
            .iter()
            .filter(|r| r.request.room_id == room && kind(&r.request.kind))
            .map(|r| r.request.peek_id.clone())
            .collect()
    }

    fn clean(&self) {
        self.sim.assert_no_leaked_peeks();
        self.sim.assert_no_relays_after_expiry();
        self.sim.assert_client_peeks_completed();
    }
}

fn is_put(k: &OutboundRequestKind) -> bool {
    matches!(k, OutboundRequestKind::Peek { .. })
}
fn is_delete(k: &OutboundRequestKind) -> bool {
    matches!(k, OutboundRequestKind::Unpeek)
}

#[test]
fn users_can_peek_into_world_readable_remote_rooms() -> Result<(), SimError> {
    // The written test. R27, R46 (alias domain), R15, R23, R39.
    let mut w = two_servers(true, SimConfig::default())?;
    w.sim.send_event(&w.hs2, &w.room)?; // "something to peek"
    let (room, via) = w.sim.resolve_alias(&owned_room_alias_id!("#peektest:hs2")).unwrap();
    assert_eq!(room, w.room);
    let reply = w.sim.client_peek(&w.hs1, &w.alice, &w.dev, &room, &[via])?;
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    w.sim.run_for(5 * SEC);
    let delta = w.sim.sync_delta(&w.hs1, &w.alice, &w.dev, None)?;
    assert_eq!(delta.started, vec![w.room.clone()], "rooms.peek with full state (R15)");
    assert!(delta.joined.is_empty(), "rooms.join is empty (R23)");
    // A second message shows up in a later sync: relayed to hs1 and wakes the device (R39).
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(SEC);
    assert_eq!(w.sim.relays_to(&w.hs1, &w.room)?, 1);
    assert_eq!(w.sim.event_wakes(&w.hs1, &w.alice, &w.dev)?, 1);
    assert_eq!(w.sim.events_received(&w.hs1, &w.room)?, 1);
    w.clean();
    Ok(())
}

#[test]
fn users_can_re_peek_into_world_readable_remote_rooms() -> Result<(), SimError> {
    // R15 (full state again), R47 (fresh peek id), R55.
    let mut w = two_servers(true, SimConfig::default())?;
    w.peek_and_wait()?.unwrap();
    let first = w.sim.sync_delta(&w.hs1, &w.alice, &w.dev, None)?.next;
    w.sim.client_unpeek(&w.hs1, &w.alice, &w.dev, &w.room)?.unwrap();
    w.sim.run_for(5 * MIN); // linger, then DELETE
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 0);
    w.peek_and_wait()?.unwrap();
    let delta = w.sim.sync_delta(&w.hs1, &w.alice, &w.dev, Some(first))?;
    assert_eq!(delta.started, vec![w.room.clone()], "the re-peek brings full state again (R15)");
    let puts = w.requests(&w.room, is_put);
    assert_eq!(puts.len(), 2);
    assert_ne!(puts[0], puts[1], "a new peek never reuses an id (R47)");
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 1);
    w.clean();
    Ok(())
}

#[test]
fn users_cannot_peek_into_remote_rooms_with_non_world_readable_history_visibility()
-> Result<(), SimError> {
    // R32 at the resident, R27 passed through to the client: 403 M_FORBIDDEN.
    let mut w = two_servers(false, SimConfig::default())?;
    let err = w.peek_and_wait()?.unwrap_err();
    let m = err.to_matrix_error();
    assert_eq!((m.status, m.errcode), (403, ErrorCode::Forbidden));
    assert_eq!(w.sim.inbound_peek_count(), 0);
    assert!(w.sim.peeking(&w.hs1)?.outbound().is_empty());
    assert!(!w.sim.peeking(&w.hs1)?.local().is_peeking(&w.alice, &w.dev, &w.room));
    w.clean();
    Ok(())
}

#[test]
fn remote_peeks_are_cancelled_if_a_rooms_history_visibility_changes_to_non_world_readable()
-> Result<(), SimError> {
    // R24 (local peeks end, room in `leave`), R40 (resident expires the peek, no more relays).
    let mut w = two_servers(true, SimConfig::default())?;
    w.peek_and_wait()?.unwrap();
    let pos = w.sim.sync_delta(&w.hs1, &w.alice, &w.dev, None)?.next;
    w.sim.set_world_readable(&w.hs2, &w.room, false)?;
    w.sim.run_for(MIN);
    assert_eq!(w.sim.sync_delta(&w.hs1, &w.alice, &w.dev, Some(pos))?.ended, vec![w.room.clone()]);
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 0);
    assert!(w.sim.peeking(&w.hs1)?.outbound().is_empty());
    let relayed = w.sim.relays_to(&w.hs1, &w.room)?;
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(MIN);
    assert_eq!(w.sim.relays_to(&w.hs1, &w.room)?, relayed, "nothing relayed any more (R40)");
    w.clean();
    Ok(())
}

#[test]
fn joining_a_peeked_remote_room_moves_it_atomically_from_peeked_to_joined_rooms()
-> Result<(), SimError> {
    // R19 (join without full state), R20, R23, R56 (DELETE at once), R57 (no re-peek).
    let mut w = two_servers(true, SimConfig::default())?;
    w.peek_and_wait()?.unwrap();
    let pos = w.sim.sync_delta(&w.hs1, &w.alice, &w.dev, None)?.next;
    let (sim, hs1, alice, room) = (&mut w.sim, w.hs1.clone(), w.alice.clone(), w.room.clone());
    sim.join(&hs1, &alice, &room)?;
    let delta = sim.sync_delta(&hs1, &alice, &w.dev, Some(pos))?;
    assert_eq!(delta.joined, vec![room.clone()]);
    assert!(delta.started.is_empty() && delta.peeking.is_empty() && delta.ended.is_empty());
    sim.run_for(MIN);
    assert_eq!(w.requests(&room, is_delete).len(), 1, "the federated peek is deleted (R56)");
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 0);
    // Events now reach hs1 as a joined server, not through a peek; a later peek is refused
    // locally (R6) and opens no federated peek (R57).
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(MIN);
    assert_eq!(w.sim.relays_to(&w.hs1, &w.room)?, 0);
    assert!(w.sim.events_received(&w.hs1, &w.room)? >= 1);
    assert!(matches!(w.peek()?, ClientPeekReply::Done(Err(_))));
    assert_eq!(w.requests(&w.room, is_put).len(), 1);
    w.clean();
    Ok(())
}

#[test]
fn peeking_uses_server_name_to_specify_the_peeking_server() -> Result<(), SimError> {
    // R46: the target comes from `servers`/via, never from the room id's domain (B-13).
    let mut w = two_servers(true, SimConfig::default())?;
    let hs3 = w.sim.add_server("hs3")?;
    w.sim.join(&hs3, &owned_user_id!("@bob:hs3"), &w.room)?;
    w.sim.run_for(SEC);
    let _ = w.sim.client_peek(&w.hs1, &w.alice, &w.dev, &w.room, std::slice::from_ref(&hs3))?;
    w.sim.run_for(5 * SEC);
    let targets: Vec<_> = w.sim.sent_requests().iter().map(|r| r.request.server.clone()).collect();
    assert_eq!(targets, vec![hs3.clone()], "only the named server is contacted");
    assert_eq!(w.sim.peeking(&hs3)?.inbound().len(), 1);
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 0);
    // Events from hs2 reach hs1 through hs3's relay (R39, whatever the origin).
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(SEC);
    assert_eq!(w.sim.event_wakes(&w.hs1, &w.alice, &w.dev)?, 1);
    // No via at all: nothing is guessed from the room id.
    let other = owned_room_id!("!other:hs2");
    let reply = w.sim.client_peek(&w.hs1, &w.alice, &w.dev, &other, &[])?;
    let ClientPeekReply::Done(Err(e)) = reply else { panic!("no candidates: {reply:?}") };
    assert_eq!(e.to_matrix_error().status, 404);
    assert_eq!(w.sim.sent_requests().len(), 1);
    w.clean();
    Ok(())
}

#[test]
fn peeking_into_an_unknown_room_returns_the_right_error() -> Result<(), SimError> {
    // R31 at the resident (404 M_NOT_FOUND), passed through (R27).
    let mut w = two_servers(true, SimConfig::default())?;
    w.room = owned_room_id!("!nosuchroom:hs2");
    let m = w.peek_and_wait()?.unwrap_err().to_matrix_error();
    assert_eq!((m.status, m.errcode), (404, ErrorCode::NotFound));
    assert_eq!(w.sim.inbound_peek_count(), 0);
    w.clean();
    Ok(())
}

#[test]
fn server_implements_put_peek_over_federation_correctly() -> Result<(), SimError> {
    // R28 (origin), R35 (renewal_interval), R38 (a repeated PUT is idempotent), R47, R48.
    let config = SimConfig { duplication: 1.0, ..SimConfig::default() }; // every PUT twice
    let mut w = two_servers(true, config)?;
    w.peek_and_wait()?.unwrap();
    let puts: Vec<_> = w.sim.sent_requests().iter().filter(|r| is_put(&r.request.kind)).collect();
    assert_eq!(puts.len(), 1);
    let OutboundRequestKind::Peek { ver } = &puts[0].request.kind else { unreachable!() };
    assert_eq!(
        &ver[..],
        &OutboundConfig::default().supported_versions[..],
        "one ver per version (R48)"
    );
    assert!(PeekIdPolicy::Strict.accepts(&puts[0].request.peek_id), "R47");
    let inbound = w.sim.peeking(&w.hs2)?.inbound();
    assert_eq!(inbound.len(), 1, "the duplicate PUT refreshed, no second subscription (R38)");
    let record = inbound.records().next().unwrap();
    assert_eq!(record.server, w.hs1, "keyed by the request origin (R28)");
    let interval = record.expires_at.saturating_duration_since(record.renewed_at);
    assert!(interval >= Duration::from_secs(3600), "a sane interval in ms (R35, B-4)");
    // Events are relayed once per event even with two PUTs seen (R39).
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(SEC);
    assert_eq!(w.sim.relays_to(&w.hs1, &w.room)?, 1);
    w.clean();
    Ok(())
}

#[test]
fn server_implements_delete_peek_over_federation_correctly() -> Result<(), SimError> {
    // R42 (DELETE stops relaying; unknown → 404), R55 (404 on DELETE counts as gone).
    let config = SimConfig { duplication: 1.0, ..SimConfig::default() }; // DELETE arrives twice
    let mut w = two_servers(true, config)?;
    w.peek_and_wait()?.unwrap();
    w.sim.client_unpeek(&w.hs1, &w.alice, &w.dev, &w.room)?.unwrap();
    w.sim.run_for(5 * MIN);
    assert_eq!(w.requests(&w.room, is_delete).len(), 1);
    assert!(
        w.sim
            .timeline_text()
            .contains("DELETE /peek !peektest:hs2 peek_id=00000000 (request 1) → failed: NotFound"),
        "the duplicate DELETE got 404 (R42)"
    );
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 0);
    assert!(w.sim.peeking(&w.hs1)?.outbound().is_empty());
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(MIN);
    assert_eq!(w.sim.relays_to(&w.hs1, &w.room)?, 0, "no relay after DELETE");
    w.clean();
    Ok(())
}

#[test]
fn if_a_peek_is_not_renewed_the_peeked_server_stops_sending_events() -> Result<(), SimError> {
    // R43 (lapse + expired_peeks), R54 (renewal 404 → fresh peek id), relays never follow expiry.
    let mut w = two_servers(true, SimConfig::default())?;
    w.peek_and_wait()?.unwrap();
    w.sim.down(&w.hs1)?; // hs1 cannot renew
    w.sim.run_for(2 * Duration::from_secs(3600));
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 0, "lapsed after interval + grace");
    let relayed = w.sim.relays_to(&w.hs1, &w.room)?;
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(MIN);
    assert_eq!(w.sim.relays_to(&w.hs1, &w.room)?, relayed, "no events after expiry");
    assert_eq!(w.sim.relays_after_expiry(), 0);
    // hs1 returns (its device renews its lease): the renewal gets 404, a fresh peek opens (R54).
    w.sim.up(&w.hs1)?;
    let _ = w.peek()?;
    w.sim.run_for(5 * MIN);
    let puts = w.requests(&w.room, is_put);
    assert_eq!(puts.len(), 2);
    assert_ne!(puts[0], puts[1]);
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 1);
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(SEC);
    assert_eq!(w.sim.relays_to(&w.hs1, &w.room)?, relayed + 1);
    w.clean();
    Ok(())
}

#[test]
fn server_cant_peek_into_unknown_room_versions() -> Result<(), SimError> {
    // R33 (400 M_INCOMPATIBLE_ROOM_VERSION), R60 (no other candidate → the client gets it).
    let mut sim = Sim::new(SimConfig::default());
    let mut old = PeekingConfig::default();
    old.outbound.supported_versions = vec![RoomVersionId::V9, RoomVersionId::V10];
    let hs1 = sim.add_server_with("hs1", old)?;
    let hs2 = sim.add_server("hs2")?;
    let room = owned_room_id!("!v11:hs2");
    sim.create_room(
        &hs2,
        &owned_user_id!("@o:hs2"),
        &room,
        RoomAccess::new(RoomVersionId::V11, true, false),
    )?;
    let alice = owned_user_id!("@alice:hs1");
    let _ = sim.client_peek(&hs1, &alice, "DEV".into(), &room, std::slice::from_ref(&hs2))?;
    sim.run_for(5 * SEC);
    let result = sim.client_peeks()[0].result.clone().unwrap();
    let m = result.unwrap_err().to_matrix_error();
    assert_eq!((m.status, m.errcode), (400, ErrorCode::IncompatibleRoomVersion));
    assert_eq!(sim.inbound_peek_count(), 0);
    sim.assert_no_leaked_peeks();
    Ok(())
}

#[test]
fn cant_peek_if_server_acld() -> Result<(), SimError> {
    // R30 (403 before the machine), R45 (a new ACL expires the peek and stops relays).
    let mut w = two_servers(true, SimConfig::default())?;
    w.sim.deny_server(&w.room, &w.hs1)?;
    let m = w.peek_and_wait()?.unwrap_err().to_matrix_error();
    assert_eq!((m.status, m.errcode), (403, ErrorCode::Forbidden));

    let mut w = two_servers(true, SimConfig::default())?;
    w.peek_and_wait()?.unwrap();
    w.sim.deny_server(&w.room, &w.hs1)?;
    w.sim.run_for(MIN);
    assert_eq!(w.sim.peeking(&w.hs2)?.inbound().len(), 0, "expired on the ACL change (R45)");
    w.sim.send_event(&w.hs2, &w.room)?;
    w.sim.run_for(MIN);
    assert_eq!(w.sim.relays_to(&w.hs1, &w.room)?, 0);
    assert!(w.sim.peeking(&w.hs1)?.outbound().state(&w.room).is_none(), "re-peek refused (403)");
    w.clean();
    Ok(())
}
