//! The soak run of `soak.rs` (docs/architecture.md §13): four homeservers with loss, duplication,
//! reordering and crash-restarts; many rooms and devices; random peeks, unpeeks, joins,
//! visibility changes and outages. After local demand ends (leases + linger + a renewal
//! interval + grace), no remote peek may be left anywhere; no event may ever be relayed to a
//! server whose peek had expired or been deleted; every client peek must have completed.

use std::time::Duration;

use matrix_peek::testing::Sim;
use matrix_peek::testing::{SimConfig, SimError, SimRng};
use matrix_peek::{PeekingConfig, RoomAccess};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId};

pub const HOUR: Duration = Duration::from_secs(3600);

/// The knobs of one soak run. Everything random is drawn from `seed`.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Seeds both the simulator and the scenario's own PRNG (`seed ^ 0x5eed`).
    pub seed: u64,
    /// Simulated days of random activity before local demand ends.
    pub days: u64,
    /// One-way network latency range (wide: messages reorder).
    pub latency: (Duration, Duration),
    /// Probability that a federation request or its response is lost.
    pub loss: f64,
    /// Probability that a federation request is delivered twice.
    pub duplication: f64,
    /// `local.device_idle_after` of every server; `None` keeps the default (devices never idle).
    pub device_idle_after: Option<Duration>,
    /// Whether one roll in a hundred makes a member of the peeking server leave the room
    /// (when it is not the last resident server); otherwise that roll is a join too.
    pub leaves: bool,
}

impl SoakConfig {
    /// The standard soak: latency 5–800 ms, 5 % loss and duplication, no idle devices, no
    /// leaves.
    pub fn standard(seed: u64, days: u64) -> Self {
        SoakConfig {
            seed,
            days,
            latency: (Duration::from_millis(5), Duration::from_millis(800)),
            loss: 0.05,
            duplication: 0.05,
            device_idle_after: None,
            leaves: false,
        }
    }

    /// The harsh soak: latency 5–3000 ms, the given loss and duplication, leaves on, devices
    /// idle after 20 min when `idle`.
    pub fn harsh(seed: u64, days: u64, loss: f64, duplication: f64, idle: bool) -> Self {
        SoakConfig {
            seed,
            days,
            latency: (Duration::from_millis(5), Duration::from_millis(3000)),
            loss,
            duplication,
            device_idle_after: idle.then_some(Duration::from_secs(20 * 60)),
            leaves: true,
        }
    }
}

/// What a soak run did (to check that it did work).
pub struct Outcome {
    pub client_peeks: usize,
    pub requests: usize,
    pub steps: u64,
}

/// Runs one soak and asserts its invariants: no relay after expiry and no leak past its
/// window at any step; after demand ends no remote peek left, no leaked peek, every client
/// peek completed. An input the simulator refuses is a bug of the soak: its error is returned.
pub fn soak(cfg: &SoakConfig) -> Result<Outcome, SimError> {
    let seed = cfg.seed;
    let config = SimConfig {
        seed,
        latency: cfg.latency,
        loss: cfg.loss,
        duplication: cfg.duplication,
        timeline: false,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config);
    let mut rng = SimRng::new(seed ^ 0x5eed);
    let mut peeking = PeekingConfig::default();
    if let Some(idle) = cfg.device_idle_after {
        peeking.local.device_idle_after = Some(idle);
    }
    let servers: Vec<OwnedServerName> = (0..4)
        .map(|i| sim.add_server_with(&format!("hs{i}.test"), peeking.clone()))
        .collect::<Result<_, _>>()?;

    // Rooms: 6 per server, most world_readable, some with a second resident server.
    let mut rooms: Vec<(OwnedRoomId, OwnedServerName)> = Vec::new();
    for (si, s) in servers.iter().enumerate() {
        for r in 0..6 {
            let room: OwnedRoomId = format!("!r{r}:{s}").try_into().unwrap();
            let creator: OwnedUserId = format!("@owner:{s}").try_into().unwrap();
            let access = RoomAccess::new(RoomVersionId::V10, rng.chance(0.85), false);
            sim.create_room(s, &creator, &room, access)?;
            if rng.chance(0.4) {
                let other = &servers[(si + 1 + rng.index(3)) % 4];
                let user: OwnedUserId = format!("@member:{other}").try_into().unwrap();
                sim.join(other, &user, &room)?;
            }
            rooms.push((room, s.clone()));
        }
    }
    // Devices: 3 users × 2 devices per server.
    let devices: Vec<(OwnedServerName, OwnedUserId, OwnedDeviceId)> = servers
        .iter()
        .flat_map(|s| {
            (0..3).flat_map(move |u| {
                (0..2).map(move |d| {
                    let user: OwnedUserId = format!("@u{u}:{s}").try_into().unwrap();
                    (s.clone(), user, OwnedDeviceId::from(format!("D{d}")))
                })
            })
        })
        .collect();

    let end = sim.now().saturating_add(Duration::from_secs(cfg.days * 24 * 3600));
    while sim.now() < end {
        sim.run_for(Duration::from_secs(rng.range(10, 900)));
        let (server, user, device) = devices[rng.index(devices.len())].clone();
        let (room, home) = rooms[rng.index(rooms.len())].clone();
        let roll = rng.range(0, 99);
        if !sim.is_up(&server)? && roll < 90 {
            continue;
        }
        match roll {
            0..=39 => {
                let mut via = vec![home.clone()];
                via.push(servers[rng.index(4)].clone());
                let _ = sim.client_peek(&server, &user, &device, &room, &via)?;
            }
            40..=54 => {
                let _ = sim.client_unpeek(&server, &user, &device, &room)?;
            }
            55..=59 => sim.device_synced(&server, &user, &device)?,
            60..=79 => {
                let resident = sim.room(&room).unwrap().members.keys().cloned().collect::<Vec<_>>();
                let from = resident[rng.index(resident.len())].clone();
                if sim.is_up(&from)? {
                    sim.send_event(&from, &room)?;
                }
            }
            80..=84 => {
                let resident = sim.room(&room).unwrap().members.keys().cloned().collect::<Vec<_>>();
                let from = resident[rng.index(resident.len())].clone();
                let readable = sim.room(&room).unwrap().access.world_readable;
                if sim.is_up(&from)? {
                    sim.set_world_readable(&from, &room, !readable)?;
                }
            }
            86 if cfg.leaves => {
                let members = sim.room(&room).unwrap().members.get(&server).cloned();
                if let Some(user) = members.and_then(|m| m.into_iter().next())
                    && sim.room(&room).unwrap().members.len() > 1
                {
                    sim.leave(&server, &user, &room)?;
                }
            }
            85..=86 => sim.join(&server, &user, &room)?,
            87..=91 => {
                let s = &servers[rng.index(4)];
                if sim.is_up(s)? {
                    sim.crash_restart(s)?;
                }
            }
            92..=94 => {
                let s = servers[rng.index(4)].clone();
                if sim.is_up(&s)? {
                    sim.down(&s)?;
                } else {
                    sim.up(&s)?;
                }
            }
            _ => {
                for s in &servers {
                    sim.up(s)?;
                }
            }
        }
        assert_eq!(sim.relays_after_expiry(), 0, "seed {seed}: {:?}", sim.bad_relays());
        sim.assert_no_leaks();
    }
    // Local demand ends: everything comes back up, no new peeks; leases (1 h) lapse, then
    // linger, one renewal interval and grace pass.
    for s in &servers {
        sim.up(s)?;
    }
    sim.run_for(4 * HOUR);
    let mut left = Vec::new();
    for s in &servers {
        let p = sim.peeking(s)?;
        if !p.inbound().is_empty() || !p.outbound().is_empty() {
            left.push((s.clone(), p.inbound().len(), p.outbound().len()));
        }
    }
    for (s, _, _) in &left {
        let p = sim.peeking(s)?;
        eprintln!("{s}: outbound {:?}", p.outbound());
        eprintln!("next_due {:?} now {:?} poll {:?}", sim.next_due(), sim.now(), p.poll_timeout());
        eprintln!("local live {} pending {}", p.local().len(), p.pending_client_peeks());
    }
    assert!(left.is_empty(), "seed {seed}: remote peeks left after demand ended: {left:?}");
    sim.assert_no_leaked_peeks();
    sim.assert_no_relays_after_expiry();
    sim.assert_client_peeks_completed();
    // Nothing is demanded any more: every deadline left (collections of ended local peeks
    // included) fires within a day, and the world settles.
    sim.run_until_settled(25 * HOUR)?;
    sim.assert_no_leaks();
    Ok(Outcome {
        client_peeks: sim.client_peeks().len(),
        requests: sim.sent_requests().len(),
        steps: sim.steps(),
    })
}
