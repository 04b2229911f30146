//! Failover end to end in the simulator, with default configuration: a resident dies ten minutes
//! after a renewal while another candidate stays up and events come every 5 s. The device's
//! gap is measured ([`Sim::event_gaps`]), the old resident's peek does not survive it coming
//! back, and quiet rooms cost no more requests than before.

use std::time::Duration;

use matrix_peek::RoomAccess;
use matrix_peek::testing::{Sim, SimConfig, SimError};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId, owned_room_id,
    owned_user_id,
};

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
    /// hs2 holds the room, hs3 joins it, alice on hs1 peeks it via [hs2, hs3].
    fn new(seed: u64) -> Result<World, SimError> {
        let mut sim = Sim::new(SimConfig { seed, timeline: false, ..SimConfig::default() });
        let (hs1, hs2, hs3) =
            (sim.add_server("hs1")?, sim.add_server("hs2")?, sim.add_server("hs3")?);
        let room = owned_room_id!("!lobby:hs2");
        let access = RoomAccess::new(RoomVersionId::V11, true, false);
        sim.create_room(&hs2, &owned_user_id!("@owner:hs2"), &room, access)?;
        sim.join(&hs3, &owned_user_id!("@bob:hs3"), &room)?;
        let (alice, phone) = (owned_user_id!("@alice:hs1"), "PHONE".into());
        let mut w = World { sim, hs1, hs2, hs3, room, alice, phone };
        w.peek()?;
        w.sim.run_for(Duration::from_secs(5));
        Ok(w)
    }

    /// Alice (re)peeks: her device renews its lease every 20 minutes, as a client would.
    fn peek(&mut self) -> Result<(), SimError> {
        let via = [self.hs2.clone(), self.hs3.clone()];
        let _ = self.sim.client_peek(&self.hs1, &self.alice, &self.phone, &self.room, &via)?;
        Ok(())
    }

    /// Runs for `d`, sending an event from hs3 every `every` (if any) and renewing alice's
    /// lease; returns the longest time hs1 was behind the room meanwhile.
    fn run(&mut self, d: Duration, every: Option<Duration>) -> Result<Duration, SimError> {
        let start = self.sim.now();
        let end = start.saturating_add(d);
        let tick = every.unwrap_or(Duration::from_secs(60));
        let mut next_peek = start.saturating_add(Duration::from_secs(20 * 60));
        while self.sim.now() < end {
            if every.is_some() {
                self.sim.send_event(&self.hs3, &self.room)?;
            }
            if self.sim.now() >= next_peek {
                self.peek()?;
                next_peek = next_peek.saturating_add(Duration::from_secs(20 * 60));
            }
            self.sim.run_for(tick);
        }
        let gaps = self.sim.event_gaps(&self.hs1, &self.alice, &self.phone, start, end)?;
        Ok(gaps.iter().map(|g| g.duration()).max().unwrap_or_default())
    }

    fn requests_from_hs1(&self) -> usize {
        self.sim.sent_requests().iter().filter(|r| r.from == self.hs1).count()
    }

    /// hs1's inbound-side peeks on the room, across both residents.
    fn peeks_held_for_hs1(&self) -> Result<usize, SimError> {
        let mut held = 0;
        for s in [&self.hs2, &self.hs3] {
            held +=
                self.sim.peeking(s)?.inbound().records().filter(|r| r.server == self.hs1).count();
        }
        Ok(held)
    }
}

#[test]
fn a_dead_resident_costs_an_active_room_under_three_minutes_of_events() -> Result<(), SimError> {
    for seed in 0..4 {
        let mut w = World::new(seed)?;
        // Forty minutes of events: the peek is renewed at 30 min; the resident dies ten
        // minutes after that renewal.
        let healthy = w.run(Duration::from_secs(40 * 60), Some(Duration::from_secs(5)))?;
        assert!(healthy < Duration::from_secs(1), "seed {seed}: only transit, got {healthy:?}");
        w.sim.down(&w.hs2.clone())?;
        let gap = w.run(Duration::from_secs(30 * 60), Some(Duration::from_secs(5)))?;
        assert!(gap <= Duration::from_secs(180), "seed {seed}: {} s without events", gap.as_secs());
        let state =
            w.sim.peeking(&w.hs1)?.outbound().established(&w.room).map(|(s, _)| s.to_owned());
        assert_eq!(state.as_ref(), Some(&w.hs3), "seed {seed}: served by the other candidate");
    }
    Ok(())
}

#[test]
fn the_old_residents_peek_does_not_survive_its_return() -> Result<(), SimError> {
    let mut w = World::new(7)?;
    w.run(Duration::from_secs(40 * 60), Some(Duration::from_secs(5)))?;
    let hs2 = w.hs2.clone();
    w.sim.down(&hs2)?;
    w.run(Duration::from_secs(20 * 60), Some(Duration::from_secs(5)))?;
    w.sim.up(&hs2)?;
    w.sim.assert_no_leaks();
    // One renewal interval (and the resident's grace) after it is back, one peek is left.
    w.run(Duration::from_secs(65 * 60), Some(Duration::from_secs(5)))?;
    assert_eq!(w.peeks_held_for_hs1()?, 1, "at most one peek survives");
    w.sim.assert_no_leaks();
    w.sim.assert_no_leaked_peeks();
    w.sim.assert_no_relays_after_expiry();
    Ok(())
}

#[test]
fn quiet_and_active_rooms_send_two_requests_an_hour() -> Result<(), SimError> {
    // Before the failover work: 1.96 requests per hour in a quiet room and 2.00 in an active
    // one (renewals at half the 1 h interval). Healthy rooms send no more now.
    let mut quiet = World::new(1)?;
    let before = quiet.requests_from_hs1();
    quiet.run(Duration::from_secs(24 * 3600), None)?;
    let quiet_per_hour = (quiet.requests_from_hs1() - before) as f64 / 24.0;
    let mut active = World::new(2)?;
    let before = active.requests_from_hs1();
    active.run(Duration::from_secs(6 * 3600), Some(Duration::from_secs(5)))?;
    let active_per_hour = (active.requests_from_hs1() - before) as f64 / 6.0;
    println!("requests per room per hour: quiet {quiet_per_hour:.2}, active {active_per_hour:.2}");
    assert!(quiet_per_hour <= 2.0, "quiet room: {quiet_per_hour:.2}/h");
    assert!(active_per_hour <= 2.0, "active room: {active_per_hour:.2}/h");
    Ok(())
}
