//! Unit tests of the simulator itself.

use std::time::Duration;

use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId, owned_room_id, owned_user_id};

use super::{Sim, SimConfig, SimError};
use crate::{ClientPeekReply, RoomAccess};

fn two_servers(seed: u64) -> Result<(Sim, OwnedServerName, OwnedServerName), SimError> {
    let mut sim = Sim::new(SimConfig { seed, ..SimConfig::default() });
    let a = sim.add_server("a.test")?;
    let b = sim.add_server("b.test")?;
    Ok((sim, a, b))
}

/// Creates the world-readable room `!r:b.test` at `b` (owner `@o:b.test`).
fn readable_room_at(sim: &mut Sim, b: &OwnedServerName) -> Result<OwnedRoomId, SimError> {
    let room = owned_room_id!("!r:b.test");
    sim.create_room(
        b,
        &owned_user_id!("@o:b.test"),
        &room,
        RoomAccess::new(RoomVersionId::V10, true, false),
    )?;
    Ok(room)
}

/// `@p:a.test`'s device `D` at `a` peeks `room` via `b`.
fn peek_via(
    sim: &mut Sim,
    a: &OwnedServerName,
    b: &OwnedServerName,
    room: &OwnedRoomId,
) -> Result<ClientPeekReply, SimError> {
    sim.client_peek(a, &owned_user_id!("@p:a.test"), "D".into(), room, std::slice::from_ref(b))
}

#[test]
fn remote_peek_opens_relays_and_wakes_then_winds_down() -> Result<(), SimError> {
    // R27, R39, R55
    let (mut sim, a, b) = two_servers(1)?;
    let room = readable_room_at(&mut sim, &b)?;
    let peeker = owned_user_id!("@p:a.test");
    let reply = peek_via(&mut sim, &a, &b, &room)?;
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    sim.run_for(Duration::from_secs(5));
    sim.assert_client_peeks_completed();
    assert!(sim.client_peeks()[0].result.as_ref().unwrap().is_ok());
    assert!(sim.peeking(&a)?.outbound().established(&room).is_some());
    sim.send_event(&b, &room)?;
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.event_wakes(&a, &peeker, "D".into())?, 1);
    assert_eq!(sim.relays_to(&a, &room)?, 1);
    sim.client_unpeek(&a, &peeker, "D".into(), &room)?.unwrap();
    sim.run_for(Duration::from_secs(600));
    assert_eq!(sim.peeking(&b)?.inbound().len(), 0);
    assert!(sim.peeking(&a)?.outbound().is_empty());
    sim.assert_no_leaked_peeks();
    sim.assert_no_relays_after_expiry();
    Ok(())
}

#[test]
fn same_seed_same_timeline_and_time_jumps() -> Result<(), SimError> {
    let run = |seed| -> Result<String, SimError> {
        let (mut sim, a, b) = two_servers(seed)?;
        let room = readable_room_at(&mut sim, &b)?;
        let _ = peek_via(&mut sim, &a, &b, &room)?;
        sim.run_for(Duration::from_secs(7 * 24 * 3600));
        Ok(sim.timeline_text())
    };
    #[allow(clippy::disallowed_methods)] // wall-clock speed check of the test itself
    let started = std::time::Instant::now();
    let one = run(3)?;
    assert!(started.elapsed() < Duration::from_secs(5), "a simulated week must be fast");
    assert_eq!(one, run(3)?);
    assert!(one.contains("renewed"));
    Ok(())
}

#[test]
fn lost_requests_time_out_as_unreachable_and_crash_restart_restores() -> Result<(), SimError> {
    // R59
    let (mut sim, a, b) = two_servers(9)?;
    let room = readable_room_at(&mut sim, &b)?;
    sim.down(&b)?;
    let _ = peek_via(&mut sim, &a, &b, &room)?;
    sim.run_for(Duration::from_secs(11));
    assert!(sim.timeline_text().contains("Unreachable"));
    sim.up(&b)?;
    sim.run_for(Duration::from_secs(120));
    assert!(sim.peeking(&a)?.outbound().established(&room).is_some());
    sim.crash_restart(&a)?;
    sim.run_for(Duration::from_secs(1800));
    // The device renews its lease (R5); the restored outbound peek keeps being renewed (R59).
    let _ = peek_via(&mut sim, &a, &b, &room)?;
    sim.run_for(Duration::from_secs(1800));
    assert!(sim.peeking(&a)?.outbound().established(&room).is_some());
    assert_eq!(sim.peeking(&b)?.inbound().len(), 1);
    sim.assert_no_leaked_peeks();
    // The lease lapses (R11): linger, DELETE, nothing left at the resident (R55).
    sim.run_for(Duration::from_secs(3600));
    assert_eq!(sim.peeking(&b)?.inbound().len(), 0);
    sim.assert_client_peeks_completed();
    Ok(())
}

#[test]
fn a_resident_that_loses_its_inbound_peeks_is_peeked_afresh_at_the_next_renewal()
-> Result<(), SimError> {
    // R54
    let (mut sim, a, b) = two_servers(11)?;
    let room = readable_room_at(&mut sim, &b)?;
    let _ = peek_via(&mut sim, &a, &b, &room)?;
    sim.run_for(Duration::from_secs(5));
    let peek_id = |sim: &Sim| -> Result<Option<String>, SimError> {
        let out = sim.peeking(&a)?.outbound();
        Ok(out.rooms().find(|r| r.room_id == room).and_then(|r| r.peek_id.map(str::to_owned)))
    };
    let first = peek_id(&sim)?;
    assert!(first.is_some());
    sim.crash_restart_losing_inbound(&b)?;
    assert_eq!(sim.peeking(&b)?.inbound().len(), 0);
    assert!(sim.store(&b)?.inbound.is_empty());
    sim.assert_no_leaks();
    // The next renewal (half the hour) is answered 404: a new peek under a new id.
    sim.run_for(Duration::from_secs(31 * 60));
    let again = peek_id(&sim)?;
    assert!(sim.peeking(&a)?.outbound().established(&room).is_some());
    assert!(again.is_some() && again != first, "{first:?} then {again:?}");
    assert_eq!(sim.peeking(&b)?.inbound().len(), 1);
    sim.assert_no_leaks();
    Ok(())
}

#[test]
fn lean_mode_batches_relays_and_watch_counts_what_the_resident_sees() -> Result<(), SimError> {
    let mut sim = Sim::new(SimConfig { seed: 5, lean: true, ..SimConfig::default() });
    let a = sim.add_server("a.test")?;
    let b = sim.add_server("b.test")?;
    sim.watch(&b, Duration::from_secs(60))?;
    let room = readable_room_at(&mut sim, &b)?;
    sim.set_state_bytes(&room, 1000);
    let _ = peek_via(&mut sim, &a, &b, &room)?;
    sim.run_for(Duration::from_secs(5));
    sim.send_event(&b, &room)?;
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.relay_copies(), 1);
    assert!(sim.sent_requests().is_empty(), "lean mode keeps no request log");
    let load = sim.load(&b).expect("watched");
    let first = load.buckets[0];
    assert_eq!((first.put, first.granted, first.state_bytes), (1, 1, 1000));
    assert_eq!((first.events, first.relay_copies), (1, 1));
    sim.assert_no_relays_after_expiry();
    Ok(())
}
