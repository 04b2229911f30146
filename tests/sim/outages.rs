//! The simulator's network when a server is down (docs/architecture.md §10, §13).

#![cfg(feature = "testing")]

use std::time::Duration;

use matrix_peek::RoomAccess;
use matrix_peek::testing::{Sim, SimConfig, SimError};
use ruma_common::RoomVersionId;

// docs/architecture.md §10, §13: a server that is down (memory kept: a pause or partition) when the answer to
// its request arrives must still see that request fail (its HTTP client times out), or its
// machine waits forever on a request nobody will answer: the room is wedged, never renewed nor
// deleted (found by `harsh_soak_of_a_week_leaks_nothing_across_many_seeds`, seed 221: a renewal in flight for 34 h).
#[test]
fn sim_request_answered_while_sender_is_down_is_not_lost_forever() -> Result<(), SimError> {
    use matrix_peek::ClientPeekReply;
    use ruma_common::{owned_room_id, owned_user_id};
    let mut sim =
        Sim::new(SimConfig { seed: 7, loss: 0.0, duplication: 0.0, ..SimConfig::default() });
    let a = sim.add_server("a.test")?;
    let b = sim.add_server("b.test")?;
    let room = owned_room_id!("!r:b.test");
    sim.create_room(
        &b,
        &owned_user_id!("@o:b.test"),
        &room,
        RoomAccess::new(RoomVersionId::V10, true, false),
    )?;
    let reply = sim.client_peek(
        &a,
        &owned_user_id!("@p:a.test"),
        "D".into(),
        &room,
        std::slice::from_ref(&b),
    )?;
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    assert_eq!(sim.peeking(&a)?.outbound().in_flight(), 1);
    sim.down(&a)?;
    sim.run_for(Duration::from_secs(60));
    sim.up(&a)?;
    sim.run_for(Duration::from_secs(600));
    assert_eq!(sim.peeking(&a)?.outbound().in_flight(), 0, "the PUT was answered or timed out");
    assert!(sim.peeking(&a)?.outbound().established(&room).is_some(), "re-opened after the pause");
    Ok(())
}
