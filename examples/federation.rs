//! The main demo: three homeservers peeking over a simulated federation (MSC2444 + MSC2753).
//!
//! Story (all in virtual time, deterministic, instant): `@alice:hs1` peeks `#demo:hs2` — a
//! room on hs2 that hs3 is joined to as well — by alias (candidates: the alias's domain hs2,
//! then hs3). The federated peek opens, events flow and wake her phone, the peek is renewed for
//! hours, the room gets busy and hs2 dies, hs1 notices the silence and the peek fails over to hs3
//! in under two minutes, a second device shares the peek without
//! new federation traffic, and the room stops being `world_readable`, which ends everything
//! cleanly. The failover chapter measures how long alice's phone goes without events. In a second room, the last unpeek deletes the remote peek after the linger.
//!
//! Run: `cargo run --example federation --features testing`. The facts of the story are
//! asserted, so the demo cannot silently rot.

use std::time::Duration;

use matrix_peek::OutboundRequestKind;
use matrix_peek::testing::SimConfig;
use matrix_peek::testing::{OutboundEventKind, Sim};
use matrix_peek::{ClientPeekReply, RoomAccess};
use ruma_common::{
    OwnedDeviceId, OwnedServerName, RoomId, RoomVersionId, owned_room_alias_id, owned_room_id,
    owned_user_id,
};

const MINUTE: Duration = Duration::from_secs(60);

/// Prints the timeline entries not printed yet (simulated time, server, what happened).
fn flush(sim: &Sim, printed: &mut usize) {
    let start = sim.config().start;
    for entry in &sim.timeline()[*printed..] {
        println!("  {:>18}  {:<4} {}", entry.elapsed(start), entry.server.as_str(), entry.what);
    }
    *printed = sim.timeline().len();
}

/// Ends the previous chapter (its timeline) and starts the next.
fn chapter(sim: &Sim, printed: &mut usize, title: &str) {
    flush(sim, printed);
    println!(
        "\n=== {title}  (t = {})",
        matrix_peek::testing::fmt_elapsed(sim.now().saturating_duration_since(sim.config().start))
    );
}

fn requests(
    sim: &Sim,
    to: &OwnedServerName,
    room: &RoomId,
    kind: fn(&OutboundRequestKind) -> bool,
) -> usize {
    sim.sent_requests()
        .iter()
        .filter(|r| r.request.server == *to && r.request.room_id == room && kind(&r.request.kind))
        .count()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    #[allow(clippy::disallowed_methods)] // the demo reports its own wall-clock time
    let started = std::time::Instant::now();
    let mut sim = Sim::new(SimConfig { seed: 2444, ..SimConfig::default() });
    let hs1 = sim.add_server("hs1")?;
    let hs2 = sim.add_server("hs2")?;
    let hs3 = sim.add_server("hs3")?;
    let (alice, owner, bob) =
        (owned_user_id!("@alice:hs1"), owned_user_id!("@owner:hs2"), owned_user_id!("@bob:hs3"));
    let phone: OwnedDeviceId = "PHONE".into();
    let tablet: OwnedDeviceId = "TABLET".into();
    let mut printed = 0;

    chapter(&sim, &mut printed, "1. a world_readable room on hs2, hs3 joined too");
    let room = owned_room_id!("!demo:hs2");
    // The access the machines need, read from the room's state as a host stores it.
    let visibility = r#"{"type":"m.room.history_visibility","state_key":"",
                         "content":{"history_visibility":"world_readable"}}"#;
    let access = RoomAccess::from_state(RoomVersionId::V10, Some(visibility), None)
        .expect("a well-formed history visibility event");
    sim.create_room(&hs2, &owner, &room, access)?;
    sim.add_alias(&owned_room_alias_id!("#demo:hs2"), &room)?;
    sim.join(&hs3, &bob, &room)?;
    sim.run_for(Duration::from_secs(1));

    chapter(
        &sim,
        &mut printed,
        "2. alice peeks #demo:hs2 from hs1 (via the alias domain, then hs3)",
    );
    let (resolved, alias_domain) =
        sim.resolve_alias(&owned_room_alias_id!("#demo:hs2")).expect("published above");
    assert_eq!(resolved, room);
    let via = vec![alias_domain, hs3.clone()];
    let reply = sim.client_peek(&hs1, &alice, &phone, &room, &via)?;
    assert!(
        matches!(reply, ClientPeekReply::Pending(_)),
        "a remote room waits on federation (R27)"
    );
    sim.run_for(Duration::from_secs(2));
    sim.assert_client_peeks_completed();
    assert!(sim.client_peeks()[0].result.as_ref().is_some_and(|r| r.is_ok()), "granted");
    let (through, _) = sim.peeking(&hs1)?.outbound().established(&room).expect("peek established");
    assert_eq!(through, &*hs2, "the first candidate (the alias domain) is used (R46)");
    let delta = sim.sync_delta(&hs1, &alice, &phone, None)?;
    assert_eq!(delta.started, vec![room.clone()], "the room is in `peek` with full state (R15)");

    chapter(&sim, &mut printed, "3. events from hs2 and hs3 reach hs1 and wake alice's phone");
    sim.send_event(&hs2, &room)?;
    sim.send_event(&hs3, &room)?;
    sim.send_event(&hs2, &room)?;
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.event_wakes(&hs1, &alice, &phone)?, 3, "every event, whatever its origin (R39)");
    assert_eq!(sim.relays_to(&hs1, &room)?, 3, "one copy per event (R39)");

    chapter(
        &sim,
        &mut printed,
        "4. hours pass: alice's client renews its lease, hs1 renews the federated peek",
    );
    for _ in 0..6 {
        sim.run_for(30 * MINUTE);
        sim.device_synced(&hs1, &alice, &phone)?;
        let _ = sim.client_peek(&hs1, &alice, &phone, &room, &via)?; // R5: renew the lease
    }
    let renewals = requests(&sim, &hs2, &room, |k| matches!(k, OutboundRequestKind::Renew));
    assert!(renewals >= 5, "renewed every ~30 min (R53), got {renewals}");
    assert_eq!(sim.peeking(&hs2)?.inbound().len(), 1, "still exactly one peek at hs2 (R58)");

    chapter(
        &sim,
        &mut printed,
        "5. the room gets busy, then hs2 dies: hs1 notices the silence and fails over to hs3",
    );
    // Events every 5 s from hs3 (which hs2 relays to hs1). Ten minutes after the last renewal
    // hs2 goes down; hs1 hears nothing more, probes hs2, and moves to hs3 (R60).
    let mut outage_at = sim.now();
    for tick in 0..20 * 12 {
        sim.send_event(&hs3, &room)?;
        if tick == 10 * 12 {
            sim.down(&hs2)?;
            outage_at = sim.now();
        }
        sim.run_for(Duration::from_secs(5));
    }
    flush(&sim, &mut printed);
    // How long alice's phone went without the room's events: from the first event hs1 did not
    // get to the first one that reached it again (the events in between are missed).
    let gaps = sim.event_gaps(&hs1, &alice, &phone, outage_at, sim.now())?;
    let worst = gaps.iter().max_by_key(|g| g.duration()).expect("the outage left a gap");
    println!(
        "\n  measured: alice's phone went {} s without events across hs2's outage, {} events \
         missed (it was an hour before failover existed)",
        worst.duration().as_secs(),
        worst.missed,
    );
    assert!(worst.duration() <= 3 * MINUTE, "served again within 3 minutes, got {worst:?}");
    let history = sim.outbound_history(&hs1, &room)?;
    let failed_over = history.iter().any(|e| {
        matches!(&e.kind, OutboundEventKind::FailedOver { from, to, .. } if *from == hs2 && *to == hs3)
    });
    assert!(failed_over, "hs1's history shows the failover from hs2 to hs3: {history:?}");
    let (through, _) = sim.peeking(&hs1)?.outbound().established(&room).expect("re-established");
    assert_eq!(through, &*hs3, "failed over to the next candidate (R60)");
    let before = sim.event_wakes(&hs1, &alice, &phone)?;
    sim.send_event(&hs3, &room)?;
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.event_wakes(&hs1, &alice, &phone)?, before + 1, "events flow again via hs3");
    sim.up(&hs2)?;
    for _ in 0..4 {
        sim.run_for(30 * MINUTE);
        let _ = sim.client_peek(&hs1, &alice, &phone, &room, &via)?;
    }
    assert_eq!(
        sim.peeking(&hs1)?.outbound().established(&room).map(|(s, _)| s.to_owned()),
        Some(hs3.clone()),
        "hs2 being back changes nothing: the peek stays on hs3"
    );
    assert_eq!(sim.peeking(&hs2)?.inbound().len(), 0, "hs2 lapsed the abandoned peek itself (R43)");
    sim.assert_no_leaked_peeks();

    chapter(
        &sim,
        &mut printed,
        "6. a second device of alice peeks: shared, no new federation traffic (R58)",
    );
    let sent_before = sim.sent_requests().len();
    let reply = sim.client_peek(&hs1, &alice, &tablet, &room, &via)?;
    assert!(matches!(reply, ClientPeekReply::Done(Ok(_))), "granted at once: the peek is up");
    assert_eq!(sim.sent_requests().len(), sent_before, "no federation request for device two");
    sim.send_event(&hs3, &room)?;
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.event_wakes(&hs1, &alice, &tablet)?, 1);
    assert_eq!(sim.peeking(&hs3)?.inbound().len(), 1, "still one remote peek for both devices");

    chapter(
        &sim,
        &mut printed,
        "7. the room stops being world_readable: everything ends cleanly (R24, R40)",
    );
    let phone_pos = sim.sync_delta(&hs1, &alice, &phone, None)?.next;
    let tablet_pos = sim.sync_delta(&hs1, &alice, &tablet, None)?.next;
    sim.set_world_readable(&hs2, &room, false)?;
    sim.run_for(10 * MINUTE);
    assert_eq!(sim.sync_delta(&hs1, &alice, &phone, Some(phone_pos))?.ended, vec![room.clone()]);
    assert_eq!(sim.sync_delta(&hs1, &alice, &tablet, Some(tablet_pos))?.ended, vec![room.clone()]);
    assert!(sim.peeking(&hs1)?.outbound().is_empty(), "no outbound peek left on hs1");
    assert_eq!(sim.inbound_peek_count(), 0, "no inbound peek left anywhere");

    chapter(
        &sim,
        &mut printed,
        "8. a second room: the last unpeek deletes the remote peek after the linger (R55)",
    );
    let second = owned_room_id!("!second:hs3");
    sim.create_room(&hs3, &bob, &second, RoomAccess::new(RoomVersionId::V11, true, false))?;
    let _ = sim.client_peek(&hs1, &alice, &phone, &second, std::slice::from_ref(&hs3))?;
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.peeking(&hs3)?.inbound().len(), 1);
    sim.client_unpeek(&hs1, &alice, &phone, &second)??;
    sim.run_for(MINUTE);
    assert_eq!(sim.peeking(&hs3)?.inbound().len(), 1, "still lingering (a quick re-peek is free)");
    sim.run_for(2 * MINUTE);
    assert_eq!(requests(&sim, &hs3, &second, |k| matches!(k, OutboundRequestKind::Unpeek)), 1);
    assert_eq!(sim.peeking(&hs3)?.inbound().len(), 0, "deleted after the linger");

    sim.assert_no_leaked_peeks();
    sim.assert_no_relays_after_expiry();
    sim.assert_client_peeks_completed();

    flush(&sim, &mut printed);
    println!(
        "\n{} steps, {} federation requests, {} simulated, {:?} wall clock",
        sim.steps(),
        sim.sent_requests().len(),
        matrix_peek::testing::fmt_elapsed(sim.now().saturating_duration_since(sim.config().start)),
        started.elapsed()
    );
    Ok(())
}
