//! The scale mode of the simulator ([`run_scale`]): a simulated day of federation at internet
//! scale, and what the biggest resident sees (issue #20).
//!
//! ```text
//!  1 000 homeservers (s0000 … s0999, Zipf sizes: s0000 is the biggest resident)
//!    └─ 10 000 rooms, room k resident on one server drawn by size; s0000 holds room 1
//!       peeked by max(1, P·k^-1) servers (Zipf popularity; P = 5 000, capped at the others)
//!  + 4 001 single-user servers (p0000 …) whose user peeks room 1: 5 000 peekers in all
//!
//!  devices ── /peek, /peek every 30 min (lease 1 h), /unpeek ──▶ their homeserver
//!     stayers: from the warm-up to the end of the day (every peeker of room 1, half the rest)
//!     the others come and go: present ~Exp(1 h), away ~Exp(2 h)
//!  events: Poisson per room, rates heavy-tailed (Pareto), room 1 one every `popular_event_every`
//!  outages: each hour a fresh 1 % of servers (never s0000) is down for the hour
//!  midday: s0000 goes down for `restart_downtime`, then restarts from its store
//!  end of day: every device unpeeks; the world must settle with nothing left behind
//! ```
//!
//! Everything is drawn from [`ScaleConfig::seed`]. The [`Sim`] runs in lean mode
//! ([`SimConfig::lean`](super::SimConfig::lean)): no per-request or per-event records, relays
//! batched per event (one latency draw per event for all its destinations), and what s0000
//! sees is recorded per minute by [`Sim::watch`]. Those are the only modelling shortcuts: every
//! peek, renewal, `DELETE`, relay copy and timeout goes through the real machines and the
//! simulated wire (with loss), and the leak and relay invariants are checked as in any soak.
//! State sizes are a model: room `k` has `state_bytes_top · k^-0.5` bytes of state (at least 2 KB).

mod report;
mod world;

use std::time::Duration;

pub use report::{ScaleFigures, ScaleReport};

use super::{Sim, SimError};
use crate::PeekingConfig;

/// The knobs of a [`run_scale`] run. [`ScaleConfig::day`] is issue #20's day;
/// [`ScaleConfig::smoke`] a reduced one for CI.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    /// Seeds the simulator and the scenario.
    pub seed: u64,
    /// Homeservers with users (residents of the rooms, and their peekers).
    pub servers: usize,
    /// Rooms (Zipf popularity: room `k` is peeked by `popular_peekers / k` servers).
    pub rooms: usize,
    /// Peekers of room 1, resident on the biggest server; single-user servers are added
    /// so that there are this many.
    pub popular_peekers: usize,
    /// Length of the measured day (after a warm-up of one hour in which devices arrive).
    pub day: Duration,
    /// When in the day the biggest resident restarts.
    pub restart_at: Duration,
    /// How long it is down before it restarts from its store.
    pub restart_downtime: Duration,
    /// Whether the restart loses the resident's inbound peeks
    /// ([`Sim::crash_restart_losing_inbound`]: a host that keeps them in memory only). Off:
    /// it restarts from its store, as this crate's persistence contract has it.
    pub restart_loses_peeks: bool,
    /// Fraction of servers down in any hour (each hour a fresh draw, never the biggest
    /// resident).
    pub down_per_hour: f64,
    /// Mean gap between events of room 1.
    pub popular_event_every: Duration,
    /// The shortest mean gap between events of any other room (the Pareto tail's cap).
    pub busiest_event_every: Duration,
    /// The longest mean gap between events of a room (the Pareto scale).
    pub quietest_event_every: Duration,
    /// Pareto shape of the per-room event rates (smaller: heavier tail).
    pub rate_shape: f64,
    /// Fraction of the (room, server) peeks, other than room 1's, held by one device all day.
    pub stayers: f64,
    /// Modelled state size of room 1, in bytes.
    pub state_bytes_top: u64,
    /// Probability that a federation request or its answer is lost.
    pub loss: f64,
    /// Every server's coordinator configuration (see [`ScaleConfig::peeking_default`]).
    pub peeking: PeekingConfig,
    /// Whether each server salts its jitter with a hash of its name
    /// (`OutboundConfig::jitter_seed`), as a host should; off, every server retries in lockstep.
    pub per_host_jitter: bool,
    /// Print the simulated hour and the steps so far to stderr as the day goes.
    pub progress: bool,
}

impl ScaleConfig {
    /// Issue #20's day: 1 000 servers, 10 000 rooms, room 1 peeked by 5 000 servers, a
    /// 24 h day, the restart at midday (down 3 min), 1 % of servers down in any hour.
    pub fn day(seed: u64) -> Self {
        ScaleConfig {
            seed,
            servers: 1000,
            rooms: 10_000,
            popular_peekers: 5000,
            day: Duration::from_secs(24 * 3600),
            restart_at: Duration::from_secs(12 * 3600),
            restart_downtime: Duration::from_secs(180),
            down_per_hour: 0.01,
            popular_event_every: Duration::from_secs(10),
            busiest_event_every: Duration::from_secs(30),
            quietest_event_every: Duration::from_secs(4 * 3600),
            rate_shape: 1.0,
            stayers: 0.5,
            state_bytes_top: 5_000_000,
            loss: 0.001,
            peeking: Self::peeking_default(),
            per_host_jitter: true,
            restart_loses_peeks: false,
            progress: false,
        }
    }

    /// A reduced day for CI and tests: 100 servers, 500 rooms, room 1 peeked by 400 servers,
    /// 8 hours with the restart after 4, the same rules otherwise.
    pub fn smoke(seed: u64) -> Self {
        ScaleConfig {
            servers: 100,
            rooms: 500,
            popular_peekers: 400,
            day: Duration::from_secs(8 * 3600),
            restart_at: Duration::from_secs(4 * 3600),
            ..Self::day(seed)
        }
    }

    /// The coordinator configuration of the scale runs: the library's defaults, except
    ///
    /// * a room may hold 10 000 peeks (`InboundConfig::max_peeks_per_room`, 1 000 by default:
    ///   an operator hosting a room peeked by 5 000 servers raises it);
    /// * ended local peeks are retained for an hour (`LocalConfig::ended_retention`, 24 h by
    ///   default), to bound memory;
    /// * the peeking side's herd settings of BENCHMARKS.md ("Federation at scale"):
    ///   failing renewals spread over 80 % of the time their peek has left
    ///   (`OutboundConfig::renew_retry_spread = 0.8`), and active rooms probe their resident
    ///   after two minutes of silence at the soonest (`min_silence`, 30 s by default), so that
    ///   ordinary lulls in a busy room do not make every peeking server probe at once.
    ///
    /// [`per_host_jitter`](Self::per_host_jitter) salts each server's jitter on top.
    pub fn peeking_default() -> PeekingConfig {
        let mut c = PeekingConfig::default();
        c.inbound.max_peeks_per_room = 10_000;
        c.local.ended_retention = Duration::from_secs(3600);
        c.outbound.renew_retry_spread = 0.8;
        c.outbound.min_silence = Duration::from_secs(120);
        c
    }

    /// The library's own defaults on the peeking side (no retry spread, 30 s silence floor)
    /// and no per-host jitter: the baseline the herd settings are measured against.
    pub fn with_library_defaults(mut self) -> Self {
        self.peeking.outbound = crate::OutboundConfig::default();
        self.per_host_jitter = false;
        self
    }
}

/// Runs the day of `config` and returns what the biggest resident saw, after checking that
/// nothing is left behind: once the day ends and every device has unpeeked, the world settles
/// within two days of virtual time with no leak ([`Sim::assert_no_leaks`], and no inbound peek
/// held anywhere), no relay after expiry and every client peek answered.
///
/// An input the simulator refuses (other than to a server that is down, which the scenario
/// expects) is returned as its [`SimError`]; a broken invariant panics with its report.
pub fn run_scale(config: &ScaleConfig) -> Result<ScaleReport, SimError> {
    let mut world = world::World::build(config)?;
    world.run_day()?;
    let report = world.report();
    world.end_demand()?;
    let sim: &mut Sim = &mut world.sim;
    sim.run_until_settled(Duration::from_secs(48 * 3600))?;
    sim.assert_no_leaks();
    sim.assert_no_leaked_peeks();
    sim.assert_no_relays_after_expiry();
    sim.assert_client_peeks_completed();
    assert_eq!(sim.inbound_peek_count(), 0, "inbound peeks left once demand ended");
    Ok(ScaleReport { settled_at: sim.now(), steps: sim.steps(), ..report })
}
