//! Building the scale world and running its day: the scenario's own action queue (devices,
//! events, outages, the restart) interleaved with the simulator's.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId};

use super::ScaleConfig;
use super::report::ScaleReport;
use crate::RoomAccess;
use crate::Timestamp;
use crate::testing::sim::{Sim, SimConfig, SimError, SimRng};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
/// Devices arrive during this warm-up before the measured day starts.
pub(super) const WARM_UP: Duration = HOUR;
/// A present device renews its peek this often (its lease is an hour).
const DEVICE_RENEW: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Start(u32),
    Renew(u32, u32),
    End(u32, u32),
    Event(u32),
    Hour,
    RestartDown,
    RestartUp,
}

pub(super) struct Room {
    pub id: OwnedRoomId,
    pub resident: u32,
    /// Mean gap between events, in milliseconds.
    gap_ms: u64,
}

struct Slot {
    room: u32,
    server: u32,
    stayer: bool,
    user: OwnedUserId,
    session: u32,
    present: bool,
}

pub(super) struct World {
    pub sim: Sim,
    pub cfg: ScaleConfig,
    rng: SimRng,
    pub names: Vec<OwnedServerName>,
    pub rooms: Vec<Room>,
    slots: Vec<Slot>,
    actions: BinaryHeap<Reverse<(Timestamp, u64, Action)>>,
    seq: u64,
    down_now: Vec<u32>,
    pub day_start: Timestamp,
    pub restart_up: Timestamp,
    pub day_end: Timestamp,
    /// Servers down at some moment between the restart and one renewal interval after it.
    pub down_in_herd: std::collections::BTreeSet<u32>,
}

/// FNV-1a of a name.
fn fnv(name: &str) -> u64 {
    name.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn exp(rng: &mut SimRng, mean: Duration) -> Duration {
    let u = rng.unit();
    Duration::from_secs_f64(-(1.0 - u).ln() * mean.as_secs_f64())
}

impl World {
    pub(super) fn build(cfg: &ScaleConfig) -> Result<World, SimError> {
        let sim_config = SimConfig {
            seed: cfg.seed,
            latency: (Duration::from_millis(20), Duration::from_millis(300)),
            loss: cfg.loss,
            duplication: 0.0,
            request_timeout: Duration::from_secs(10),
            peeking: cfg.peeking.clone(),
            timeline: false,
            step_budget: u64::MAX / 2,
            lean: true,
            ..SimConfig::default()
        };
        let mut sim = Sim::new(sim_config);
        let mut rng = SimRng::new(cfg.seed ^ 0x5ca1_e000);
        let main = cfg.servers.max(2);
        let small = cfg.popular_peekers.saturating_sub(main - 1);
        let mut names = Vec::with_capacity(main + small);
        let labels = (0..main).map(|i| format!("s{i:04}.test"));
        for name in labels.chain((0..small).map(|i| format!("p{i:04}.test"))) {
            let mut peeking = cfg.peeking.clone();
            if cfg.per_host_jitter {
                // What a host does with OutboundConfig::jitter_seed: a hash of its own name.
                peeking.outbound.jitter_seed = SimRng::new(fnv(&name)).next_u64();
            }
            names.push(sim.add_server_with(&name, peeking)?);
        }
        // Zipf server sizes: server i has weight 1/(i+1).
        let mut cumulative = Vec::with_capacity(main);
        let mut total = 0.0;
        for i in 0..main {
            total += 1.0 / (i as f64 + 1.0);
            cumulative.push(total);
        }
        let access = RoomAccess::new(RoomVersionId::V10, true, false);
        let mut rooms = Vec::with_capacity(cfg.rooms);
        let mut slots = Vec::new();
        let mut order: Vec<u32> = (0..main as u32).collect();
        for k in 1..=cfg.rooms.max(1) {
            let resident = if k == 1 {
                0
            } else {
                let x = rng.unit() * total;
                cumulative.partition_point(|&c| c < x).min(main - 1) as u32
            };
            let host = names[resident as usize].clone();
            let id = OwnedRoomId::try_from(format!("!r{k:05}:{host}")).expect("valid room id");
            let creator = OwnedUserId::try_from(format!("@host{k}:{host}")).expect("valid user");
            sim.create_room(&host, &creator, &id, access.clone())?;
            let state = (cfg.state_bytes_top as f64 / (k as f64).sqrt()) as u64;
            sim.set_state_bytes(&id, state.max(2000));
            let gap_ms = if k == 1 {
                cfg.popular_event_every.as_millis() as u64
            } else {
                let u = rng.unit().max(1e-12);
                let gap = cfg.quietest_event_every.as_secs_f64() * u.powf(1.0 / cfg.rate_shape);
                (gap.max(cfg.busiest_event_every.as_secs_f64()) * 1000.0) as u64
            };
            let room = rooms.len() as u32;
            rooms.push(Room { id, resident, gap_ms: gap_ms.max(1) });
            // Peekers: every other server for room 1, else a uniform sample of main servers.
            let peekers: Vec<u32> = if k == 1 {
                (1..names.len() as u32).take(cfg.popular_peekers).collect()
            } else {
                let n = (cfg.popular_peekers / k).clamp(1, main - 1);
                for i in 0..=n.min(main - 1) {
                    let j = i + rng.index(main - i);
                    order.swap(i, j);
                }
                order[..=n.min(main - 1)]
                    .iter()
                    .copied()
                    .filter(|&s| s != resident)
                    .take(n)
                    .collect()
            };
            for server in peekers {
                let stayer = k == 1 || rng.chance(cfg.stayers);
                let host = &names[server as usize];
                let user = OwnedUserId::try_from(format!("@u{}:{host}", slots.len()))
                    .expect("valid user id");
                slots.push(Slot { room, server, stayer, user, session: 0, present: false });
            }
        }
        let start = sim.now();
        let day_start = start.saturating_add(WARM_UP);
        let mut world = World {
            sim,
            cfg: cfg.clone(),
            rng,
            names,
            rooms,
            slots,
            actions: BinaryHeap::new(),
            seq: 0,
            down_now: Vec::new(),
            day_start,
            restart_up: day_start.saturating_add(cfg.restart_at + cfg.restart_downtime),
            day_end: day_start.saturating_add(cfg.day),
            down_in_herd: std::collections::BTreeSet::new(),
        };
        world.sim.watch(&world.names[0].clone(), MINUTE)?;
        for slot in 0..world.slots.len() {
            let mut at = Duration::from_millis(world.rng.range(0, WARM_UP.as_millis() as u64));
            if !world.slots[slot].stayer {
                at += exp(&mut world.rng, 2 * HOUR) / 2;
            }
            world.push(start.saturating_add(at), Action::Start(slot as u32));
        }
        for room in 0..world.rooms.len() {
            let gap = Duration::from_millis(world.rooms[room].gap_ms);
            let at = start.saturating_add(exp(&mut world.rng, gap));
            world.push(at, Action::Event(room as u32));
        }
        world.push(start, Action::Hour);
        world.push(day_start.saturating_add(cfg.restart_at), Action::RestartDown);
        world.push(world.restart_up, Action::RestartUp);
        Ok(world)
    }

    fn push(&mut self, at: Timestamp, action: Action) {
        self.seq += 1;
        self.actions.push(Reverse((at, self.seq, action)));
    }

    /// Runs the warm-up and the day: every action due before the day's end.
    pub(super) fn run_day(&mut self) -> Result<(), SimError> {
        while let Some(Reverse((at, _, action))) = self.actions.pop() {
            if at >= self.day_end {
                break;
            }
            if self.cfg.progress && action == Action::Hour && at >= self.day_start {
                let hours = at.saturating_duration_since(self.day_start).as_secs() / 3600;
                eprintln!("  hour {hours}: {} steps", self.sim.steps());
            }
            let d = at.saturating_duration_since(self.sim.now());
            self.sim.run_for(d);
            self.act(at, action)?;
        }
        let d = self.day_end.saturating_duration_since(self.sim.now());
        self.sim.run_for(d);
        Ok(())
    }

    /// An input refused because the server is down is what the scenario expects (a client
    /// cannot reach it); anything else is a bug of the scenario.
    fn tolerate_down<T>(r: Result<T, SimError>) -> Result<(), SimError> {
        match r {
            Ok(_) | Err(SimError::ServerDown(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn act(&mut self, now: Timestamp, action: Action) -> Result<(), SimError> {
        match action {
            Action::Start(slot) => {
                let s = &mut self.slots[slot as usize];
                s.session += 1;
                s.present = true;
                let session = s.session;
                self.peek(slot)?;
                self.push(now.saturating_add(DEVICE_RENEW), Action::Renew(slot, session));
                if !self.slots[slot as usize].stayer {
                    let stay = exp(&mut self.rng, HOUR);
                    self.push(now.saturating_add(stay), Action::End(slot, session));
                }
            }
            Action::Renew(slot, session) => {
                let s = &self.slots[slot as usize];
                if s.present && s.session == session {
                    self.peek(slot)?;
                    self.push(now.saturating_add(DEVICE_RENEW), Action::Renew(slot, session));
                }
            }
            Action::End(slot, session) => {
                let s = &self.slots[slot as usize];
                if s.present && s.session == session {
                    self.unpeek(slot)?;
                    self.slots[slot as usize].present = false;
                    let away = exp(&mut self.rng, 2 * HOUR);
                    self.push(now.saturating_add(away), Action::Start(slot));
                }
            }
            Action::Event(room) => {
                let r = &self.rooms[room as usize];
                let (host, id) = (self.names[r.resident as usize].clone(), r.id.clone());
                Self::tolerate_down(self.sim.send_event(&host, &id))?;
                let gap = Duration::from_millis(self.rooms[room as usize].gap_ms);
                let next = exp(&mut self.rng, gap).max(Duration::from_millis(1));
                self.push(now.saturating_add(next), Action::Event(room));
            }
            Action::Hour => {
                for s in std::mem::take(&mut self.down_now) {
                    self.sim.up(&self.names[s as usize].clone())?;
                }
                let n = self.names.len();
                let k = ((n as f64) * self.cfg.down_per_hour).round() as usize;
                while self.down_now.len() < k.min(n - 1) {
                    let s = 1 + self.rng.index(n - 1) as u32;
                    if !self.down_now.contains(&s) {
                        self.down_now.push(s);
                        if self.in_herd_window(now) {
                            self.down_in_herd.insert(s);
                        }
                        self.sim.down(&self.names[s as usize].clone())?;
                    }
                }
                self.push(now.saturating_add(HOUR), Action::Hour);
            }
            Action::RestartDown => {
                self.down_in_herd.extend(self.down_now.iter().copied());
                self.sim.down(&self.names[0].clone())?;
            }
            Action::RestartUp => {
                let host = self.names[0].clone();
                if self.cfg.restart_loses_peeks {
                    self.sim.crash_restart_losing_inbound(&host)?;
                } else {
                    self.sim.crash_restart(&host)?;
                }
                self.sim.mark_load(&host);
            }
        }
        Ok(())
    }

    /// From the restart until one renewal interval after the resident came back.
    fn in_herd_window(&self, at: Timestamp) -> bool {
        let from = self.day_start.saturating_add(self.cfg.restart_at);
        let to = self.restart_up.saturating_add(self.cfg.peeking.inbound.renewal_interval);
        (from..to).contains(&at)
    }

    fn peek(&mut self, slot: u32) -> Result<(), SimError> {
        let s = &self.slots[slot as usize];
        let room = &self.rooms[s.room as usize];
        let device = OwnedDeviceId::from(format!("D{}", s.session));
        let host = self.names[s.server as usize].clone();
        let via = [self.names[room.resident as usize].clone()];
        let r = self.sim.client_peek(&host, &s.user.clone(), &device, &room.id.clone(), &via);
        Self::tolerate_down(r)
    }

    fn unpeek(&mut self, slot: u32) -> Result<(), SimError> {
        let s = &self.slots[slot as usize];
        let device = OwnedDeviceId::from(format!("D{}", s.session));
        let host = self.names[s.server as usize].clone();
        let (user, room) = (s.user.clone(), self.rooms[s.room as usize].id.clone());
        Self::tolerate_down(self.sim.client_unpeek(&host, &user, &device, &room))
    }

    /// The end of the day: every server comes back up and every present device unpeeks.
    pub(super) fn end_demand(&mut self) -> Result<(), SimError> {
        for s in std::mem::take(&mut self.down_now) {
            self.sim.up(&self.names[s as usize].clone())?;
        }
        for slot in 0..self.slots.len() {
            if self.slots[slot].present {
                self.unpeek(slot as u32)?;
                self.slots[slot].present = false;
            }
        }
        Ok(())
    }

    /// What the biggest resident saw.
    pub(super) fn report(&self) -> ScaleReport {
        ScaleReport::from_world(self)
    }
}
