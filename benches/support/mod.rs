//! Shared workload generation for the benches and `examples/memory.rs`: deterministic ids,
//! key layouts, the floor / periodic-scan reference trackers (docs/architecture.md §12), and the timing
//! helpers of the benches (the scattered key cursor, chunked and per-iteration measurement).
#![allow(dead_code, missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use matrix_peek::LocalConfig;
use matrix_peek::Timestamp;
use matrix_peek::{InboundConfig, InboundRecord};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId};

/// Servers peeking our rooms (inbound) — also the largest fan-out.
pub const SERVERS: usize = 1_000;
/// Peeks per room (inbound) and per device (local) in the base population.
pub const PER: usize = 10;
/// A renewal interval so long that nothing lapses while a bench runs.
pub const LONG: Duration = Duration::from_secs(400 * 24 * 3600);
pub const T0: u64 = 1_700_000_000_000;

pub fn ts(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// The deadline of a peek started or renewed at `now`.
pub fn deadline(now: u64) -> Timestamp {
    ts(now).saturating_add(LONG)
}

/// A small deterministic PRNG (xorshift64*), so every tracker sees the same key sequence.
#[derive(Clone)]
pub struct Rng(u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mix(i: usize) -> usize {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_right(29) as usize
}

pub fn server(i: usize) -> OwnedServerName {
    OwnedServerName::try_from(format!("s{i:04}.example.org")).expect("valid server name")
}
pub fn room(i: usize) -> OwnedRoomId {
    OwnedRoomId::try_from(format!("!r{i:07}abcdefgh:example.org")).expect("valid room id")
}
pub fn user(i: usize) -> OwnedUserId {
    OwnedUserId::try_from(format!("@u{i:07}:example.org")).expect("valid user id")
}
pub fn device(i: usize) -> OwnedDeviceId {
    OwnedDeviceId::from(format!("DEV{i:07}").as_str())
}

/// The ids of an inbound population of `n` live peeks plus `extra` spare keys (for fresh
/// peeks). Key `i < n`: room `i / PER`, peek id `ids[i % PER]`, a scattered server. Spare key
/// `e`: a scattered existing room, peek id `extra_ids[e]`.
pub struct InboundIds {
    pub n: usize,
    pub servers: Vec<OwnedServerName>,
    pub rooms: Vec<OwnedRoomId>,
    pub ids: Vec<String>,
    pub extra_ids: Vec<String>,
}

impl InboundIds {
    pub fn new(n: usize, extra: usize) -> Self {
        let rooms = n.div_ceil(PER).max(1);
        InboundIds {
            n,
            servers: (0..SERVERS).map(server).collect(),
            rooms: (0..rooms).map(room).collect(),
            ids: (0..PER).map(|k| format!("p{k:07}")).collect(),
            extra_ids: (0..extra).map(|e| format!("x{e:07}")).collect(),
        }
    }
    /// (server, room, peek id) of live key `i`.
    pub fn key(&self, i: usize) -> (usize, usize, &str) {
        (mix(i) % SERVERS, i / PER, &self.ids[i % PER])
    }
    /// (server, room, peek id) of spare key `e`.
    pub fn extra(&self, e: usize) -> (usize, usize, &str) {
        (mix(e + 7) % SERVERS, mix(e) % self.rooms.len(), &self.extra_ids[e])
    }
    pub fn config() -> InboundConfig {
        InboundConfig {
            renewal_interval: LONG,
            max_peeks_per_server: usize::MAX,
            max_peeks_per_room: usize::MAX,
            max_peeks_total: 8_000_000,
            ..InboundConfig::default()
        }
    }
    /// The snapshot of the population: deadlines spread over a day so the timer order differs
    /// from the insertion order.
    pub fn records(&self) -> Vec<InboundRecord> {
        (0..self.n)
            .map(|i| {
                let (s, r, id) = self.key(i);
                InboundRecord {
                    server: self.servers[s].clone(),
                    room_id: self.rooms[r].clone(),
                    peek_id: id.to_owned(),
                    renewed_at: ts(T0),
                    expires_at: ts(T0)
                        .saturating_add(LONG)
                        .saturating_add(Duration::from_millis((mix(i) % 86_400_000) as u64)),
                }
            })
            .collect()
    }
}

/// The ids of a local population: device `d` (user `d / 2`) peeks `PER` rooms, room `(d + k·R/PER)
/// mod R`, so each room has about `PER` peekers. Spare key `e`: device `e mod D`, a spare room.
pub struct LocalIds {
    pub n: usize,
    pub users: Vec<OwnedUserId>,
    pub devices: Vec<OwnedDeviceId>,
    pub rooms: Vec<OwnedRoomId>,
    pub spare_rooms: Vec<OwnedRoomId>,
}

impl LocalIds {
    pub fn new(n: usize, extra: usize) -> Self {
        let d = n.div_ceil(PER).max(1);
        let r = n.div_ceil(PER).max(PER);
        let spare = extra.div_ceil(d) + 1;
        LocalIds {
            n,
            users: (0..d.div_ceil(2)).map(user).collect(),
            devices: (0..d).map(device).collect(),
            rooms: (0..r).map(room).collect(),
            spare_rooms: (0..spare).map(|i| room(10_000_000 + i)).collect(),
        }
    }
    pub fn dev_count(&self) -> usize {
        self.devices.len()
    }
    /// (user, device, room) indices of live key `i`.
    pub fn key(&self, i: usize) -> (usize, usize, &OwnedRoomId) {
        let d = i / PER;
        let k = i % PER;
        let r = self.rooms.len();
        (d / 2, d, &self.rooms[(d + k * (r / PER)) % r])
    }
    /// (user, device, room) of spare key `e`.
    pub fn extra(&self, e: usize) -> (usize, usize, &OwnedRoomId) {
        let d = e % self.devices.len();
        (d / 2, d, &self.spare_rooms[e / self.devices.len()])
    }
    pub fn config() -> LocalConfig {
        LocalConfig {
            lease: LONG,
            max_peeks_per_device: 1_000,
            max_peeks_total: 8_000_000,
            ..LocalConfig::default()
        }
    }
}

/// The floor of docs/architecture.md §12: the minimum a correct tracker does per operation — one `HashMap`
/// upsert (keyed by the peek's id strings) plus one `BTreeMap` deadline move.
#[derive(Default, Clone)]
pub struct Floor {
    pub map: HashMap<Box<str>, (Timestamp, u32)>,
    pub by_time: BTreeSet<(Timestamp, u32)>,
    next: u32,
    buf: String,
}

impl Floor {
    fn key(buf: &mut String, a: &str, b: &str, c: &str) {
        buf.clear();
        buf.push_str(a);
        buf.push('|');
        buf.push_str(b);
        buf.push('|');
        buf.push_str(c);
    }
    /// Upsert: a new key gets a deadline, an existing one has its deadline moved.
    pub fn upsert(&mut self, a: &str, b: &str, c: &str, at: Timestamp) {
        Self::key(&mut self.buf, a, b, c);
        if let Some((old, slot)) = self.map.get_mut(self.buf.as_str()) {
            self.by_time.remove(&(*old, *slot));
            *old = at;
            self.by_time.insert((at, *slot));
        } else {
            let slot = self.next;
            self.next += 1;
            self.map.insert(self.buf.as_str().into(), (at, slot));
            self.by_time.insert((at, slot));
        }
    }
    pub fn remove(&mut self, a: &str, b: &str, c: &str) -> bool {
        Self::key(&mut self.buf, a, b, c);
        match self.map.remove(self.buf.as_str()) {
            Some((at, slot)) => self.by_time.remove(&(at, slot)),
            None => false,
        }
    }
}

/// The periodic-scan reference (palpo purges every 60 s; Dendrite-style tables): a `HashMap`
/// of deadlines and nothing else; expiry sweeps every entry on each tick.
#[derive(Default, Clone)]
pub struct Scan {
    pub map: HashMap<Box<str>, Timestamp>,
    buf: String,
}

impl Scan {
    pub fn upsert(&mut self, a: &str, b: &str, c: &str, at: Timestamp) {
        Floor::key(&mut self.buf, a, b, c);
        if let Some(old) = self.map.get_mut(self.buf.as_str()) {
            *old = at;
        } else {
            self.map.insert(self.buf.as_str().into(), at);
        }
    }
    /// One tick: removes (and counts) every entry due at `now`.
    pub fn sweep(&mut self, now: Timestamp) -> usize {
        let before = self.map.len();
        self.map.retain(|_, at| *at > now);
        before - self.map.len()
    }
}

/// Large prime stride: walks 0..n without repeats within n steps (n is a power of ten).
pub const STRIDE: usize = 1_000_003;

/// A cursor over the live keys `0..n` in a scattered order (steps of [`STRIDE`] mod `n`), so
/// caches miss as they would in production. A group's benches share one cursor, so each one
/// carries on where the previous left off.
pub struct Scatter {
    at: usize,
    n: usize,
}

impl Scatter {
    pub fn new(n: usize) -> Self {
        Scatter { at: 0, n }
    }
    /// Steps once and returns the key stepped to.
    pub fn step(&mut self) -> usize {
        self.at = (self.at + STRIDE) % self.n;
        self.at
    }
    /// The `c` keys from the cursor on (the cursor's own key first); the cursor moves past them.
    pub fn take(&mut self, c: usize) -> Vec<usize> {
        let keys = (0..c).map(|k| (self.at + k * STRIDE) % self.n).collect();
        self.at = (self.at + c * STRIDE) % self.n;
        keys
    }
}

/// The time of `iters` operations run in chunks of at most `chunk` keys: for each chunk,
/// `keys(c)` picks the `c` keys (not measured), `measured(state, keys)` is timed, and
/// `undo(state, keys)` puts the population back as it was (not measured).
#[allow(clippy::disallowed_methods)] // benches measure wall time.
pub fn measure_in_chunks<S: ?Sized>(
    iters: u64,
    chunk: usize,
    state: &mut S,
    mut keys: impl FnMut(usize) -> Vec<usize>,
    mut measured: impl FnMut(&mut S, &[usize]),
    mut undo: impl FnMut(&mut S, &[usize]),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let c = left.min(chunk);
        let keys = keys(c);
        let start = Instant::now();
        measured(state, &keys);
        total += start.elapsed();
        undo(state, &keys);
        left -= c;
    }
    total
}

/// The time of `iters` runs of `op`, each on a fresh input from `setup`: building the input
/// and dropping what `op` returns are not measured.
#[allow(clippy::disallowed_methods)] // benches measure wall time.
pub fn measure_each<I, O>(
    iters: u64,
    mut setup: impl FnMut() -> I,
    mut op: impl FnMut(I) -> O,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let input = setup();
        let start = Instant::now();
        let output = op(input);
        total += start.elapsed();
        drop(black_box(output));
    }
    total
}
