//! [`ScaleReport`]: what the biggest resident saw over the day, and the figures of issue #20.

use std::fmt;
use std::time::Duration;

use ruma_common::OwnedRoomId;

use super::world::{WARM_UP, World};
use crate::Timestamp;
use crate::testing::sim::LoadBucket;

/// What the biggest resident (`s0000`) saw during a [`run_scale`](super::run_scale) day. A
/// snapshot.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ScaleReport {
    /// The seed.
    pub seed: u64,
    /// Servers in the world (homeservers plus single-user peekers of room 1).
    pub servers: usize,
    /// Rooms.
    pub rooms: usize,
    /// One bucket per minute from the start of the warm-up (an hour before the day).
    pub minutes: Vec<LoadBucket>,
    /// Index in `minutes` of the day's first minute.
    pub day_start: usize,
    /// Index in `minutes` of the day's end (exclusive).
    pub day_end: usize,
    /// Index in `minutes` of the minute the resident went down for its restart.
    pub restart_down: usize,
    /// Index in `minutes` of the minute it came back.
    pub restart_up: usize,
    /// The figures.
    pub figures: ScaleFigures,
    /// Virtual time at which the world had settled after demand ended.
    pub settled_at: Timestamp,
    /// Simulator steps over the whole run.
    pub steps: u64,
}

/// The figures of a [`ScaleReport`] (issue #20).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScaleFigures {
    /// Mean requests per second over the day: `PUT`, renew, `DELETE`.
    pub mean_rps: [f64; 3],
    /// Requests per second in the busiest minute outside the restart's hour, for each kind
    /// on its own (`PUT`, renew, `DELETE`) and for all together: each its own busiest minute.
    pub peak_rps: [f64; 4],
    /// Steady-state requests per minute: the mean over the six hours before the restart.
    pub steady_per_minute: f64,
    /// Requests in the first minute after the resident came back.
    pub herd_first_minute: u64,
    /// Requests in the first ten minutes after it came back.
    pub herd_first_ten_minutes: u64,
    /// The busiest minute from the restart to one renewal interval after it.
    pub herd_peak_minute: u64,
    /// `herd_peak_minute / steady_per_minute` (goal: at most 2).
    pub herd_ratio: f64,
    /// Peekers of room 1 whose peek was renewed or re-granted after the restart.
    pub popular_back: usize,
    /// Peekers of room 1.
    pub popular_peekers: usize,
    /// Peekers of room 1 that were themselves down (the hourly 1 %) at some moment between
    /// the restart and one renewal interval after it: they cannot be back while down.
    pub popular_down_in_herd: usize,
    /// How long after the resident came back the last peek of room 1 was back, among the
    /// peekers that stayed up (`None` if one of them never was).
    pub all_back_after: Option<Duration>,
    /// The same over every peeker of room 1, those that were down included.
    pub all_back_after_with_down: Option<Duration>,
    /// The renewal interval the resident grants.
    pub renewal_interval: Duration,
    /// Relay copies per relayed event over the day, at the resident.
    pub relay_copies_per_event: f64,
    /// Events the resident relayed over the day.
    pub events: u64,
    /// The five largest state answers by modelled size: (room, bytes, how many were sent).
    pub largest_state: Vec<(OwnedRoomId, u64, u64)>,
    /// Modelled state bytes sent in the hour after the restart, and in the busiest minute of
    /// that hour.
    pub herd_state_bytes: (u64, u64),
    /// Requests answered 429 over the day.
    pub rate_limited: u64,
}

impl ScaleReport {
    pub(super) fn from_world(w: &World) -> ScaleReport {
        let host = &w.names[0];
        let load = w.sim.load(host).expect("s0000 is watched from the start");
        let minute =
            |t: Timestamp| (t.saturating_duration_since(load.start).as_millis() / 60_000) as usize;
        let mut minutes = load.buckets.clone();
        let day_start = (WARM_UP.as_secs() / 60) as usize;
        let day_end = minute(w.day_end);
        minutes.resize(minutes.len().max(day_end), LoadBucket::default());
        let restart_down = minute(w.day_start.saturating_add(w.cfg.restart_at));
        let restart_up = minute(w.restart_up);
        let interval = w.cfg.peeking.inbound.renewal_interval;
        let herd_end = (restart_up + (interval.as_secs() / 60) as usize).min(day_end);
        let day = &minutes[day_start..day_end];
        let n = day.len().max(1) as f64;
        let sum = |f: fn(&LoadBucket) -> u64, b: &[LoadBucket]| b.iter().map(f).sum::<u64>();
        let mean_rps = [
            sum(|b| b.put, day) as f64 / n / 60.0,
            sum(|b| b.renew, day) as f64 / n / 60.0,
            sum(|b| b.delete, day) as f64 / n / 60.0,
        ];
        let outside = minutes[day_start..day_end]
            .iter()
            .enumerate()
            .filter(|(i, _)| !(restart_down..herd_end).contains(&(i + day_start)));
        let mut peak_rps = [0.0f64; 4];
        for (_, b) in outside {
            for (i, v) in [b.put, b.renew, b.delete, b.requests()].into_iter().enumerate() {
                peak_rps[i] = peak_rps[i].max(v as f64 / 60.0);
            }
        }
        let steady_from = restart_down.saturating_sub(6 * 60).max(day_start);
        let steady = &minutes[steady_from..restart_down];
        let steady_per_minute =
            sum(LoadBucket::requests, steady) as f64 / steady.len().max(1) as f64;
        let herd = &minutes[restart_up.min(herd_end)..herd_end];
        let herd_first_minute = herd.first().map_or(0, LoadBucket::requests);
        let herd_first_ten_minutes = sum(LoadBucket::requests, &herd[..herd.len().min(10)]);
        let herd_peak_minute = herd.iter().map(LoadBucket::requests).max().unwrap_or(0);
        let popular = &w.rooms[0].id;
        let up_at = load.mark.unwrap_or(w.restart_up);
        let down: std::collections::BTreeSet<&ruma_common::ServerName> =
            w.down_in_herd.iter().map(|&s| w.names[s as usize].as_ref()).collect();
        let back: Vec<(bool, Timestamp)> = load
            .back_since_mark
            .iter()
            .filter(|((room, _), _)| room == popular)
            .map(|((_, origin), &t)| {
                (down.contains(origin.as_ref() as &ruma_common::ServerName), t)
            })
            .collect();
        let popular_peekers = w.cfg.popular_peekers.min(w.names.len() - 1);
        let popular_down_in_herd = w.down_in_herd.iter().filter(|&&s| s != 0).count();
        let latest = |with_down: bool| {
            let times: Vec<Timestamp> =
                back.iter().filter(|(d, _)| with_down || !d).map(|&(_, t)| t).collect();
            let wanted = if with_down {
                popular_peekers
            } else {
                popular_peekers.saturating_sub(popular_down_in_herd)
            };
            (times.len() >= wanted)
                .then(|| times.iter().max().map(|t| t.saturating_duration_since(up_at)))
                .flatten()
        };
        let (all_back_after, all_back_after_with_down) = (latest(false), latest(true));
        let (events, copies) = (sum(|b| b.events, day), sum(|b| b.relay_copies, day));
        let mut largest: Vec<(OwnedRoomId, u64, u64)> = load
            .granted_per_room
            .iter()
            .map(|(room, &count)| {
                let k = w.rooms.iter().position(|r| r.id == *room).unwrap_or(usize::MAX);
                let bytes = (w.cfg.state_bytes_top as f64 / ((k + 1) as f64).sqrt()) as u64;
                (room.clone(), bytes.max(2000), count)
            })
            .collect();
        largest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        largest.truncate(5);
        let herd_state = sum(|b| b.state_bytes, herd);
        let herd_state_peak = herd.iter().map(|b| b.state_bytes).max().unwrap_or(0);
        let figures = ScaleFigures {
            mean_rps,
            peak_rps,
            steady_per_minute,
            herd_first_minute,
            herd_first_ten_minutes,
            herd_peak_minute,
            herd_ratio: herd_peak_minute as f64 / steady_per_minute.max(1.0),
            popular_back: back.len(),
            popular_peekers,
            popular_down_in_herd,
            all_back_after,
            all_back_after_with_down,
            renewal_interval: interval,
            relay_copies_per_event: copies as f64 / events.max(1) as f64,
            events,
            largest_state: largest,
            herd_state_bytes: (herd_state, herd_state_peak),
            rate_limited: sum(|b| b.rate_limited, day),
        };
        ScaleReport {
            seed: w.cfg.seed,
            servers: w.names.len(),
            rooms: w.rooms.len(),
            minutes,
            day_start,
            day_end,
            restart_down,
            restart_up,
            figures,
            settled_at: w.sim.now(),
            steps: w.sim.steps(),
        }
    }
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.figures;
        let mins = |d: Duration| format!("{:.1} min", d.as_secs_f64() / 60.0);
        writeln!(f, "seed {}: {} servers, {} rooms", self.seed, self.servers, self.rooms)?;
        writeln!(
            f,
            "resident requests/s over the day: mean PUT {:.2}, renew {:.2}, DELETE {:.2} \
             (all {:.2}); busiest minute of each outside the herd: PUT {:.2}, renew {:.2}, \
             DELETE {:.2}, all {:.2}",
            g.mean_rps[0],
            g.mean_rps[1],
            g.mean_rps[2],
            g.mean_rps.iter().sum::<f64>(),
            g.peak_rps[0],
            g.peak_rps[1],
            g.peak_rps[2],
            g.peak_rps[3]
        )?;
        writeln!(
            f,
            "steady state: {:.0} requests/min; after the restart: {} in the first minute, {} in \
             the first ten, busiest minute {} ({:.2}x steady, goal <= 2x)",
            g.steady_per_minute,
            g.herd_first_minute,
            g.herd_first_ten_minutes,
            g.herd_peak_minute,
            g.herd_ratio
        )?;
        let back = g.all_back_after.map_or("never".to_owned(), mins);
        let with_down = g.all_back_after_with_down.map_or("never".to_owned(), mins);
        writeln!(
            f,
            "room 1: {}/{} peeks back after the restart; every peeker that stayed up back after \
             {back} (goal <= {}); with the {} that were down themselves in that hour: {with_down}",
            g.popular_back,
            g.popular_peekers,
            mins(g.renewal_interval),
            g.popular_down_in_herd,
        )?;
        writeln!(
            f,
            "relays: {} events, {:.1} copies per event; 429s: {}",
            g.events, g.relay_copies_per_event, g.rate_limited
        )?;
        writeln!(
            f,
            "state: {:.1} MB sent in the hour after the restart ({:.1} MB in its busiest minute)",
            g.herd_state_bytes.0 as f64 / 1e6,
            g.herd_state_bytes.1 as f64 / 1e6
        )?;
        for (room, bytes, count) in &g.largest_state {
            writeln!(f, "  largest state: {room} {:.2} MB x {count}", *bytes as f64 / 1e6)?;
        }
        write!(f, "steps: {}", self.steps)
    }
}
