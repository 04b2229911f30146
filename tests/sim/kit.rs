//! The simulator as test authors meet it (docs/architecture.md §10): inputs a deployment would
//! refuse are typed errors, never panics.

use std::time::Duration;

use matrix_peek::testing::{Sim, SimConfig, SimError};
use matrix_peek::{ClientPeekReply, RoomAccess};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId, owned_room_alias_id,
    owned_room_id, owned_user_id, server_name,
};

const SEC: Duration = Duration::from_secs(1);

/// `expr` is refused with exactly `error` (its `Ok` value need not be comparable).
macro_rules! refused {
    ($expr:expr, $error:expr) => {
        assert_eq!($expr.err(), Some($error), "{}", stringify!($expr))
    };
}

/// hs2 holds `!r:hs2` (world-readable, created by `@owner:hs2`), hs3 is joined to it, and
/// `@alice:hs1` has a device `PHONE`.
struct World {
    sim: Sim,
    hs1: OwnedServerName,
    hs2: OwnedServerName,
    hs3: OwnedServerName,
    room: OwnedRoomId,
    alice: OwnedUserId,
    phone: OwnedDeviceId,
}

impl World {
    fn new(config: SimConfig) -> Result<World, SimError> {
        let mut sim = Sim::new(config);
        let (hs1, hs2, hs3) =
            (sim.add_server("hs1")?, sim.add_server("hs2")?, sim.add_server("hs3")?);
        let room = owned_room_id!("!r:hs2");
        let access = RoomAccess::new(RoomVersionId::V11, true, false);
        sim.create_room(&hs2, &owned_user_id!("@owner:hs2"), &room, access)?;
        sim.join(&hs3, &owned_user_id!("@bob:hs3"), &room)?;
        let (alice, phone) = (owned_user_id!("@alice:hs1"), "PHONE".into());
        Ok(World { sim, hs1, hs2, hs3, room, alice, phone })
    }
}

// ----- typed errors -----

#[test]
fn inputs_to_a_down_server_are_refused_as_server_down_and_change_nothing() -> Result<(), SimError> {
    let mut w = World::new(SimConfig::default())?;
    let (hs1, hs2, room, alice, phone) =
        (w.hs1.clone(), w.hs2.clone(), w.room.clone(), w.alice.clone(), w.phone.clone());
    w.sim.down(&hs1)?;
    w.sim.down(&hs1)?; // already down: stays so
    let down = SimError::ServerDown(hs1.clone());
    refused!(
        w.sim.client_peek(&hs1, &alice, &phone, &room, std::slice::from_ref(&hs2)),
        down.clone()
    );
    refused!(w.sim.client_unpeek(&hs1, &alice, &phone, &room), down.clone());
    refused!(w.sim.device_synced(&hs1, &alice, &phone), down.clone());
    refused!(w.sim.sync_delta(&hs1, &alice, &phone, None), down.clone());
    refused!(w.sim.join(&hs1, &alice, &room), down.clone());
    let other = owned_room_id!("!other:hs1");
    let access = RoomAccess::new(RoomVersionId::V11, true, false);
    refused!(w.sim.create_room(&hs1, &alice, &other, access), down.clone());
    // A resident that is down sends nothing and loses no member.
    let owner = owned_user_id!("@owner:hs2");
    w.sim.down(&hs2)?;
    let down = SimError::ServerDown(hs2.clone());
    refused!(w.sim.send_event(&hs2, &room), down.clone());
    refused!(w.sim.set_world_readable(&hs2, &room, false), down.clone());
    refused!(w.sim.set_encrypted(&hs2, &room, true), down.clone());
    refused!(w.sim.leave(&hs2, &owner, &room), down.clone());
    assert!(down.to_string().contains("hs2 is down"), "a readable message: {down}");
    // Nothing changed: no client peek, no request, no event, the owner still a member.
    assert!(w.sim.client_peeks().is_empty() && w.sim.sent_requests().is_empty());
    let model = w.sim.room(&room).expect("created");
    assert_eq!(model.events, 2, "the create and hs3's join");
    assert!(model.members[&hs2].contains(&owner));
    assert!(w.sim.room(&other).is_none());
    // Its memory can still be inspected while it is down.
    assert!(!w.sim.is_up(&hs1)?);
    assert!(w.sim.peeking(&hs1)?.local().is_empty());
    assert!(w.sim.store(&hs1)?.local.is_empty());
    Ok(())
}

#[test]
fn anything_naming_an_unknown_server_is_refused_as_unknown_server() -> Result<(), SimError> {
    let mut w = World::new(SimConfig::default())?;
    let ghost = server_name!("ghost.test");
    let unknown = SimError::UnknownServer(ghost.to_owned());
    let (room, phone) = (w.room.clone(), w.phone.clone());
    let casper = owned_user_id!("@casper:ghost.test");
    refused!(w.sim.peeking(ghost), unknown.clone());
    refused!(w.sim.store(ghost), unknown.clone());
    refused!(w.sim.is_up(ghost), unknown.clone());
    refused!(w.sim.down(ghost), unknown.clone());
    refused!(w.sim.up(ghost), unknown.clone());
    refused!(w.sim.crash_restart(ghost), unknown.clone());
    refused!(w.sim.client_peek(ghost, &casper, &phone, &room, &[]), unknown.clone());
    refused!(w.sim.client_unpeek(ghost, &casper, &phone, &room), unknown.clone());
    refused!(w.sim.device_synced(ghost, &casper, &phone), unknown.clone());
    refused!(w.sim.sync_delta(ghost, &casper, &phone, None), unknown.clone());
    let access = RoomAccess::new(RoomVersionId::V11, true, false);
    refused!(
        w.sim.create_room(ghost, &casper, &owned_room_id!("!g:ghost.test"), access),
        unknown.clone()
    );
    refused!(w.sim.send_event(ghost, &room), unknown.clone());
    refused!(w.sim.set_world_readable(ghost, &room, false), unknown.clone());
    refused!(w.sim.set_encrypted(ghost, &room, true), unknown.clone());
    refused!(w.sim.join(ghost, &casper, &room), unknown.clone());
    refused!(w.sim.leave(ghost, &casper, &room), unknown.clone());
    refused!(w.sim.relays_to(ghost, &room), unknown.clone());
    refused!(w.sim.events_received(ghost, &room), unknown.clone());
    refused!(w.sim.event_wakes(ghost, &casper, &phone), unknown.clone());
    refused!(w.sim.sync_wakes(ghost, &casper, &phone), unknown.clone());
    assert_eq!(w.sim.servers().count(), 3, "no server was made up");
    Ok(())
}

#[test]
fn rooms_members_users_and_names_that_do_not_fit_are_refused_with_what_is_wrong()
-> Result<(), SimError> {
    let mut w = World::new(SimConfig::default())?;
    let (hs1, hs2, room, alice) = (w.hs1.clone(), w.hs2.clone(), w.room.clone(), w.alice.clone());
    let nowhere = owned_room_id!("!nowhere:hs2");
    let unknown = SimError::UnknownRoom(nowhere.clone());
    let alias = owned_room_alias_id!("#lobby:hs2");
    refused!(w.sim.add_alias(&alias, &nowhere), unknown.clone());
    refused!(w.sim.deny_server(&nowhere, &hs1), unknown.clone());
    refused!(w.sim.send_event(&w.hs3.clone(), &nowhere), unknown.clone());
    refused!(w.sim.join(&hs1, &alice, &nowhere), unknown.clone());
    refused!(w.sim.leave(&hs2, &owned_user_id!("@owner:hs2"), &nowhere), unknown.clone());
    // Only a resident sends the room's events.
    let not_in = SimError::NotResident { server: hs1.clone(), room_id: room.clone() };
    refused!(w.sim.send_event(&hs1, &room), not_in.clone());
    refused!(w.sim.set_world_readable(&hs1, &room, false), not_in.clone());
    refused!(w.sim.set_encrypted(&hs1, &room, true), not_in);
    // Only a member leaves; a client talks to its own homeserver.
    let carol = owned_user_id!("@carol:hs2");
    let not_member = SimError::NotMember { user_id: carol.clone(), room_id: room.clone() };
    refused!(w.sim.leave(&hs2, &carol, &room), not_member);
    let foreign = SimError::ForeignUser { user_id: alice.clone(), server: hs2.clone() };
    refused!(w.sim.client_peek(&hs2, &alice, &w.phone.clone(), &room, &[]), foreign.clone());
    refused!(w.sim.join(&hs2, &alice, &room), foreign);
    // Names and ids already taken, or invalid.
    let access = RoomAccess::new(RoomVersionId::V11, true, false);
    let owner = owned_user_id!("@owner:hs2");
    refused!(w.sim.create_room(&hs2, &owner, &room, access), SimError::RoomExists(room.clone()));
    refused!(w.sim.add_server("hs1"), SimError::DuplicateServer(hs1.clone()));
    refused!(w.sim.add_server("not a name!"), SimError::InvalidServerName("not a name!".into()));
    w.sim.add_alias(&alias, &room)?;
    w.sim.add_alias(&alias, &room)?; // the same pair again: nothing changes
    w.sim.create_room(&hs2, &owner, &nowhere, RoomAccess::new(RoomVersionId::V11, true, false))?;
    let taken = SimError::AliasTaken { alias: alias.clone(), room_id: room.clone() };
    refused!(w.sim.add_alias(&alias, &nowhere), taken);
    // A room id no server knows is an ordinary remote peek: the server answers it (R31).
    let reply =
        w.sim.client_peek(&hs1, &alice, &w.phone.clone(), &owned_room_id!("!x:hs2"), &[hs2])?;
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    w.sim.run_for(5 * SEC);
    let answer = w.sim.client_peeks()[0].result.clone().expect("answered within 5 s");
    assert!(answer.is_err(), "404 from the resident, passed to the client");
    Ok(())
}
