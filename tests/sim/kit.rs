//! The simulator as test authors meet it (docs/architecture.md §10): inputs a deployment would
//! refuse are typed errors, never panics; and the kit answers the questions a test asks —
//! how long a device went without its room's events, what happened to a federated peek,
//! whether the world has settled, and whether any inbound peek outlived its window.

use std::time::Duration;

use matrix_peek::testing::{OutboundEventKind, Pending, Sim, SimConfig, SimError};
use matrix_peek::{ClientPeekReply, OutboundLostReason, OutboundState, RoomAccess, Timestamp};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId, owned_room_alias_id,
    owned_room_id, owned_user_id, server_name,
};

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

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

    /// Alice's phone peeks the room from hs1 through `via`.
    fn peek(&mut self, via: &[OwnedServerName]) -> Result<ClientPeekReply, SimError> {
        self.sim.client_peek(&self.hs1, &self.alice, &self.phone, &self.room, via)
    }

    /// Milliseconds since `t0`.
    fn ms(&self, t0: Timestamp, t: Timestamp) -> u64 {
        u64::try_from(t.saturating_duration_since(t0).as_millis()).unwrap()
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
    let t = w.sim.now();
    refused!(w.sim.peeking(ghost), unknown.clone());
    refused!(w.sim.store(ghost), unknown.clone());
    refused!(w.sim.is_up(ghost), unknown.clone());
    refused!(w.sim.down(ghost), unknown.clone());
    refused!(w.sim.up(ghost), unknown.clone());
    refused!(w.sim.crash_restart(ghost), unknown.clone());
    refused!(w.sim.drop_store_writes(ghost, true), unknown.clone());
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
    refused!(w.sim.event_gaps(ghost, &casper, &phone, t, t), unknown.clone());
    refused!(w.sim.outbound_history(ghost, &room), unknown.clone());
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

// ----- event gaps -----

#[test]
fn event_gaps_measure_an_outage_from_the_first_missed_event_to_the_next_arrival()
-> Result<(), SimError> {
    // Latency fixed at 100 ms: an event of hs3 reaches hs2 after 100 ms and, relayed (R39),
    // hs1 after 200 ms. hs1 peeks through hs2 only, so nothing fails over. Events every 10 s
    // from t0; hs2 is down from t0+25 s to t0+75 s (a pause: hs1's peek survives it).
    let latency = (Duration::from_millis(100), Duration::from_millis(100));
    let mut w = World::new(SimConfig { latency, timeline: false, ..SimConfig::default() })?;
    let (hs1, hs2, hs3, room) = (w.hs1.clone(), w.hs2.clone(), w.hs3.clone(), w.room.clone());
    let _ = w.peek(std::slice::from_ref(&hs2))?;
    w.sim.run_for(SEC);
    assert!(w.sim.peeking(&hs1)?.outbound().established(&room).is_some());
    let t0 = w.sim.now();
    for tick in 0..26 {
        let second = tick * 5;
        if second % 10 == 0 {
            w.sim.send_event(&hs3, &room)?;
        }
        match second {
            25 => w.sim.down(&hs2)?,
            75 => w.sim.up(&hs2)?,
            _ => {}
        }
        w.sim.run_for(5 * SEC);
    }
    let gaps = w.sim.event_gaps(&hs1, &w.alice, &w.phone, t0, w.sim.now())?;
    let got: Vec<_> =
        gaps.iter().map(|g| (w.ms(t0, g.start), w.ms(t0, g.end), g.missed, g.caught_up)).collect();
    // By hand: each delivered event is behind for its 200 ms of transit; the events of 30, 40,
    // 50, 60 and 70 s never reach hs2, so hs1 is behind from 30 s until the event of 80 s
    // arrives at 80.2 s, with those five missed.
    let transit = |s: u64| (s * 1000, s * 1000 + 200, 0, true);
    let expected = vec![
        transit(0),
        transit(10),
        transit(20),
        (30_000, 80_200, 5, true),
        transit(90),
        transit(100),
        transit(110),
        transit(120),
    ];
    assert_eq!(got, expected);
    assert_eq!(gaps[3].duration(), Duration::from_millis(50_200));
    assert!(gaps.iter().all(|g| g.room_id == room));
    // A window that ends inside the outage cuts the gap: not caught up, the three events of
    // 30, 40 and 50 s missed so far.
    let (from, to) = (t0.saturating_add(50 * SEC), t0.saturating_add(60 * SEC));
    let cut = w.sim.event_gaps(&hs1, &w.alice, &w.phone, from, to)?;
    let got: Vec<_> =
        cut.iter().map(|g| (w.ms(t0, g.start), w.ms(t0, g.end), g.missed, g.caught_up)).collect();
    assert_eq!(got, vec![(50_000, 60_000, 3, false)]);
    Ok(())
}

#[test]
fn event_gaps_count_only_while_the_device_peeks() -> Result<(), SimError> {
    // Events before the peek, and after the unpeek, are no gap of the device's.
    let latency = (Duration::from_millis(100), Duration::from_millis(100));
    let mut w = World::new(SimConfig { latency, timeline: false, ..SimConfig::default() })?;
    let (hs2, hs3, room) = (w.hs2.clone(), w.hs3.clone(), w.room.clone());
    let start = w.sim.now();
    w.sim.send_event(&hs2, &room)?;
    w.sim.run_for(MIN);
    let _ = w.peek(std::slice::from_ref(&hs2))?;
    w.sim.run_for(SEC);
    w.sim.send_event(&hs2, &room)?; // reaches hs1 after 100 ms
    w.sim.run_for(SEC);
    let (hs1, alice, phone) = (w.hs1.clone(), w.alice.clone(), w.phone.clone());
    w.sim.client_unpeek(&hs1, &alice, &phone, &room)?.expect("alice peeks the room");
    // hs2 goes down: hs3's next event never reaches hs1, but alice no longer peeks.
    w.sim.down(&hs2)?;
    w.sim.send_event(&hs3, &room)?;
    w.sim.run_for(MIN);
    let gaps = w.sim.event_gaps(&hs1, &alice, &phone, start, w.sim.now())?;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].duration(), Duration::from_millis(100));
    assert!(gaps[0].caught_up && gaps[0].missed == 0);
    Ok(())
}

// ----- outbound history -----

#[test]
fn outbound_history_records_establishment_loss_and_failover() -> Result<(), SimError> {
    // hs1 peeks through [hs2, hs3]; the room is busy (an event every 5 s); hs2 dies. hs1
    // notices the silence, its probes fail for `failover_after`, and it moves to hs3 (R60).
    let mut w = World::new(SimConfig { timeline: false, ..SimConfig::default() })?;
    let (hs1, hs2, hs3, room) = (w.hs1.clone(), w.hs2.clone(), w.hs3.clone(), w.room.clone());
    let _ = w.peek(&[hs2.clone(), hs3.clone()])?;
    for _ in 0..12 {
        w.sim.send_event(&hs3, &room)?;
        w.sim.run_for(5 * SEC);
    }
    w.sim.down(&hs2)?;
    let outage = w.sim.now();
    for _ in 0..60 {
        w.sim.send_event(&hs3, &room)?;
        w.sim.run_for(5 * SEC);
    }
    let history = w.sim.outbound_history(&hs1, &room)?;
    let kinds: Vec<_> = history.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(kinds.len(), 3, "{history:#?}");
    assert_eq!(
        kinds[0],
        OutboundEventKind::Established { resident: hs2.clone(), missed_since: None }
    );
    assert_eq!(
        kinds[1],
        OutboundEventKind::Lost {
            resident: Some(hs2.clone()),
            reason: OutboundLostReason::Unreachable
        }
    );
    let OutboundEventKind::FailedOver { from, to, missed_since } = &kinds[2] else {
        panic!("a failover: {history:#?}")
    };
    assert_eq!((from, to), (&hs2, &hs3));
    assert!(missed_since.is_some_and(|t| t <= outage), "events since before the outage may miss");
    assert!(history[0].at < outage && outage < history[1].at && history[1].at <= history[2].at);
    assert!(history[2].at.saturating_duration_since(outage) < 3 * MIN);
    // A room hs1 never peeked has no history; one nobody serves ends in `Unavailable`.
    let closed = owned_room_id!("!closed:hs3");
    let bob = owned_user_id!("@bob:hs3");
    w.sim.create_room(&hs3, &bob, &closed, RoomAccess::new(RoomVersionId::V11, false, false))?;
    assert!(w.sim.outbound_history(&hs1, &closed)?.is_empty());
    let (alice, phone) = (w.alice.clone(), w.phone.clone());
    let _ = w.sim.client_peek(&hs1, &alice, &phone, &closed, std::slice::from_ref(&hs3))?;
    w.sim.run_for(5 * SEC);
    let history = w.sim.outbound_history(&hs1, &closed)?;
    assert!(
        matches!(history, [e] if matches!(e.kind, OutboundEventKind::Unavailable { .. })),
        "{history:#?}"
    );
    Ok(())
}

// ----- settling -----

#[test]
fn a_world_with_live_demand_does_not_settle_and_says_what_is_pending() -> Result<(), SimError> {
    let mut w = World::new(SimConfig { timeline: false, ..SimConfig::default() })?;
    let (hs1, hs2, room) = (w.hs1.clone(), w.hs2.clone(), w.room.clone());
    let _ = w.peek(std::slice::from_ref(&hs2))?;
    let asked = w.sim.now();
    let Err(SimError::NotSettled { at, within, pending }) = w.sim.run_until_settled(30 * MIN)
    else {
        panic!("a live peek keeps the world busy")
    };
    assert_eq!((at, within), (asked.saturating_add(30 * MIN), 30 * MIN));
    assert_eq!(w.sim.now(), at, "the clock stands at the bound");
    assert!(!w.sim.is_settled());
    let has = |f: &dyn Fn(&Pending) -> bool| pending.iter().any(f);
    assert!(has(&|p| matches!(p, Pending::LocalPeeks { server, live: 1, .. } if *server == hs1)));
    assert!(has(&|p| matches!(p, Pending::InboundPeeks { server, live: 1, .. } if *server == hs2)));
    assert!(has(&|p| matches!(p, Pending::OutboundPeeks { server, rooms, .. }
        if *server == hs1 && *rooms == vec![(room.clone(), OutboundState::Established)])));
    assert!(pending.iter().all(|p| p.due() > at), "everything due within the bound ran");
    let message = w.sim.run_until_settled(MIN).unwrap_err().to_string();
    assert!(message.contains("not settled within") && message.contains("hs2: 1 inbound peek"));
    Ok(())
}

#[test]
fn a_world_settles_once_demand_ends_and_every_deadline_has_fired() -> Result<(), SimError> {
    let mut w = World::new(SimConfig { timeline: false, ..SimConfig::default() })?;
    let (hs1, hs2, hs3, room) = (w.hs1.clone(), w.hs2.clone(), w.hs3.clone(), w.room.clone());
    let _ = w.peek(std::slice::from_ref(&hs2))?;
    w.sim.run_for(MIN);
    let (alice, phone) = (w.alice.clone(), w.phone.clone());
    w.sim.client_unpeek(&hs1, &alice, &phone, &room)?.expect("alice peeks the room");
    let unpeeked = w.sim.now();
    w.sim.run_until_settled(2 * 24 * HOUR)?;
    assert!(w.sim.is_settled() && w.sim.pending().is_empty());
    for s in [&hs1, &hs2, &hs3] {
        let p = w.sim.peeking(s)?;
        assert!(p.local().is_empty() && p.inbound().is_empty() && p.outbound().is_empty());
        assert_eq!(p.poll_timeout(), None);
    }
    // The linger, the DELETE, and the collection of alice's ended entry (24 h) all fired.
    let retention = w.sim.peeking(&hs1)?.local().config().ended_retention;
    let took = w.sim.now().saturating_duration_since(unpeeked);
    assert!(took >= retention && took < retention + HOUR, "settled after {took:?}");
    assert!(w.sim.leaked_peeks().is_empty());
    w.sim.run_until_settled(Duration::ZERO)?; // settled stays settled
    Ok(())
}

#[test]
fn a_down_server_with_deadlines_keeps_the_world_from_settling() -> Result<(), SimError> {
    let mut w = World::new(SimConfig { timeline: false, ..SimConfig::default() })?;
    let (hs1, hs2, room) = (w.hs1.clone(), w.hs2.clone(), w.room.clone());
    let _ = w.peek(std::slice::from_ref(&hs2))?;
    w.sim.run_for(MIN);
    w.sim.down(&hs2)?; // it holds hs1's peek, and its lapse cannot fire while it is down
    let (alice, phone) = (w.alice.clone(), w.phone.clone());
    w.sim.client_unpeek(&hs1, &alice, &phone, &room)?.expect("alice peeks the room");
    let Err(SimError::NotSettled { pending, .. }) = w.sim.run_until_settled(3 * 24 * HOUR) else {
        panic!("hs2's deadlines are still there")
    };
    assert!(matches!(pending.as_slice(), [Pending::DownServer { server, .. }] if *server == hs2));
    w.sim.up(&hs2)?;
    w.sim.run_until_settled(MIN)?;
    assert!(w.sim.peeking(&hs2)?.inbound().is_empty(), "it lapsed the peek as it came back");
    Ok(())
}

// ----- leaks -----

/// hs1 asks hs2 for a peek and is paused before the answer comes back: hs2 holds a peek hs1
/// then drops (a `PUT` that failed on the network is assumed not to have created one) and
/// re-opens under a new id. Returns when hs1 stopped accounting for the first peek.
fn lost_answer(w: &mut World) -> Result<Timestamp, SimError> {
    let (hs1, hs2) = (w.hs1.clone(), w.hs2.clone());
    let _ = w.peek(std::slice::from_ref(&hs2))?;
    w.sim.down(&hs1)?;
    w.sim.run_for(SEC); // the PUT is granted; its answer reaches hs1 while it is down
    w.sim.up(&hs1)?; // the PUT timed out: hs1 forgets that peek id
    Ok(w.sim.now())
}

#[test]
fn a_peek_left_behind_by_a_lost_answer_is_lapsing_until_its_window_ends() -> Result<(), SimError> {
    let mut w = World::new(SimConfig { timeline: false, ..SimConfig::default() })?;
    let (hs1, hs2) = (w.hs1.clone(), w.hs2.clone());
    let forgotten = lost_answer(&mut w)?;
    w.sim.run_for(5 * SEC);
    assert!(w.sim.peeking(&hs1)?.outbound().established(&w.room).is_some(), "re-opened");
    assert_eq!(w.sim.peeking(&hs2)?.inbound().len(), 2, "the old peek and the new one");
    // The raw view sees the old one; it is not a leak yet.
    assert_eq!(w.sim.leaked_peeks().len(), 1);
    let report = w.sim.leak_report();
    assert!(report.is_clean() && w.sim.leaks().is_empty(), "{report}");
    let [lapsing] = report.lapsing.as_slice() else { panic!("{report}") };
    assert_eq!((&lapsing.resident, &lapsing.origin), (&hs2, &hs1));
    assert_eq!(lapsing.since, forgotten);
    let inbound = w.sim.config().peeking.inbound.clone();
    let window = inbound.renewal_interval + inbound.grace + w.sim.config().latency.1;
    assert_eq!(lapsing.deadline, forgotten.saturating_add(window));
    assert!(report.to_string().contains("1 lapsing legitimately"), "{report}");
    // Through the whole window, alice renewing her lease: never a leak, and hs2 lapses the
    // old peek (R43) by the deadline.
    while w.sim.now() < lapsing.deadline {
        w.sim.run_for(10 * MIN);
        let _ = w.peek(std::slice::from_ref(&hs2))?;
        w.sim.assert_no_leaks();
    }
    assert!(w.sim.leak_report().lapsing.is_empty() && w.sim.leaked_peeks().is_empty());
    assert_eq!(w.sim.peeking(&hs2)?.inbound().len(), 1, "the live peek stays");
    Ok(())
}

/// hs1's store loses every write, so it renews a peek no record of its names; after the
/// window that is a leak. Returns when hs2 granted the peek.
fn peek_kept_alive_without_a_record(w: &mut World) -> Result<Timestamp, SimError> {
    let (hs1, hs2) = (w.hs1.clone(), w.hs2.clone());
    w.sim.drop_store_writes(&hs1, true)?;
    let _ = w.peek(std::slice::from_ref(&hs2))?;
    let granted = w.sim.now();
    for _ in 0..8 {
        w.sim.run_for(10 * MIN);
        let _ = w.peek(std::slice::from_ref(&hs2))?; // alice renews her lease
    }
    assert!(w.sim.store(&hs1)?.outbound.is_empty(), "nothing was written");
    assert!(w.sim.peeking(&hs1)?.outbound().established(&w.room).is_some());
    Ok(granted)
}

#[test]
fn a_peek_renewed_without_a_record_past_its_window_is_a_leak() -> Result<(), SimError> {
    let mut w = World::new(SimConfig { timeline: false, ..SimConfig::default() })?;
    let (hs1, hs2) = (w.hs1.clone(), w.hs2.clone());
    let granted = peek_kept_alive_without_a_record(&mut w)?;
    let leaks = w.sim.leaks();
    let [leak] = leaks.as_slice() else { panic!("{}", w.sim.leak_report()) };
    assert_eq!((&leak.resident, &leak.origin, &leak.room_id), (&hs2, &hs1, &w.room));
    assert!(leak.since >= granted && leak.since < granted.saturating_add(SEC));
    assert!(leak.deadline < w.sim.now());
    // Once the host writes again, the next renewal's record accounts for the peek.
    w.sim.drop_store_writes(&hs1, false)?;
    w.sim.run_for(HOUR);
    let _ = w.peek(std::slice::from_ref(&hs2))?;
    assert!(w.sim.leaks().is_empty() && w.sim.leaked_peeks().is_empty());
    Ok(())
}

#[test]
#[should_panic(expected = "1 leaked inbound peek(s):\n  hs2 holds hs1's peek")]
fn assert_no_leaks_reports_a_leak_readably() {
    let mut w = World::new(SimConfig { timeline: false, ..SimConfig::default() }).unwrap();
    peek_kept_alive_without_a_record(&mut w).unwrap();
    w.sim.assert_no_leaks();
}
