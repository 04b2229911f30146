//! Shared workload generation for the benches and `examples/memory.rs`: deterministic ids,
//! key layouts, the floor / periodic-scan reference trackers (docs/architecture.md §12), and the timing
//! helpers of the benches (the shuffled key order, chunked and per-iteration measurement).
#![allow(dead_code, missing_docs)]

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher, RandomState};

use hashbrown::HashTable;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use matrix_peek::LocalConfig;
use matrix_peek::Timestamp;
use matrix_peek::testing::SimRng;
use matrix_peek::{InboundConfig, InboundRecord};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId};

/// Servers peeking our rooms (inbound) — also the largest fan-out.
pub const SERVERS: usize = 1_000;
/// Peeks per room (inbound) and per device (local) in the base population.
pub const PER: usize = 10;
/// A renewal interval so long that nothing lapses while a bench runs.
pub const LONG: Duration = Duration::from_secs(400 * 24 * 3600);
pub const T0: u64 = 1_700_000_000_000;
/// A day in milliseconds: the snapshots spread their deadlines over one.
pub const DAY_MS: u64 = 86_400_000;
/// Seed of every shuffle, so each run (and each tracker) sees the same sequences.
pub const SEED: u64 = 0x5eed_0f9e_e4ed;

pub fn ts(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// The deadline of a peek started or renewed at `now`.
pub fn deadline(now: u64) -> Timestamp {
    ts(now).saturating_add(LONG)
}

/// A stateless 64-bit hash of `x` (one splitmix64 step): picks "random" rooms and servers for
/// key number `x` without storing anything.
pub fn hash64(x: u64) -> u64 {
    SimRng::new(x ^ SEED).next_u64()
}

fn mix(i: usize) -> usize {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_right(29) as usize
}

/// A uniformly random permutation of `0..n` (Fisher–Yates with the crate's seeded
/// [`SimRng`]): the same for a given `(n, seed)`.
pub fn permutation(n: usize, seed: u64) -> Vec<u32> {
    let mut p: Vec<u32> = (0..n as u32).collect();
    let mut rng = SimRng::new(seed);
    for i in (1..n).rev() {
        p.swap(i, rng.index(i + 1));
    }
    p
}

/// A cursor over the live keys `0..n` in a random order (a seeded [`permutation`], walked
/// cyclically), so every op lands on an unrelated slot, interner entry and hash bucket, as in
/// production. Within `n` consecutive steps no key repeats.
pub struct Order {
    perm: Vec<u32>,
    at: usize,
}

impl Order {
    pub fn new(n: usize) -> Self {
        Order { perm: permutation(n, SEED ^ n as u64), at: 0 }
    }
    /// The next key.
    pub fn step(&mut self) -> usize {
        let k = self.perm[self.at] as usize;
        self.at = (self.at + 1) % self.perm.len();
        k
    }
    /// The next `c` keys (distinct when `c <= n`).
    pub fn take(&mut self, c: usize) -> Vec<usize> {
        (0..c).map(|_| self.step()).collect()
    }
}

/// Reads every byte of `name` into `acc` (a byte sum: the cheapest read that touches each
/// byte, as a host that looks up a per-destination queue must; order-independent, so both
/// sides of a fan-out bench give the same total). Used identically by the machine and the
/// floor side of the fan-out benches.
#[inline(always)]
pub fn read_name(acc: u64, name: &str) -> u64 {
    read_bytes(acc, name.as_bytes())
}

/// [`read_name`] of bytes that are not a `str` (a peek id kept as an array).
pub fn read_bytes(acc: u64, bytes: &[u8]) -> u64 {
    acc.wrapping_add(bytes.iter().map(|&b| u64::from(b)).sum::<u64>())
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

/// The 64 characters of peek ids, as the outbound machine spells them (MSC2444 allows these and
/// `.` and `=`, R47).
pub const PEEK_ID_CHARS: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-";

/// An 8-character MSC2444 peek id that no other `c` gives: `c` then 7 base-62 digits.
pub fn cold_peek_id(c: u64) -> String {
    const DIGITS: &[u8] = PEEK_ID_CHARS.split_at(62).0;
    let mut s = String::with_capacity(8);
    s.push('c');
    let mut x = c;
    for _ in 0..7 {
        s.push(DIGITS[(x % 62) as usize] as char);
        x /= 62;
    }
    assert_eq!(x, 0, "cold key number beyond 62^7");
    s
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
    /// (server, room, peek id) of cold key `c`: a random server and live room, and a peek id no
    /// other key has, so the key was never seen before.
    pub fn cold_key(&self, c: u64) -> (usize, usize, String) {
        let h = hash64(c);
        ((h >> 40) as usize % SERVERS, (h as u32) as usize % self.rooms.len(), cold_peek_id(c))
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
    /// The deadline of live key `i` in the snapshot: spread over the last day of a lease
    /// (`LONG`) granted at `T0`, so the timer order differs from the insertion order. Within
    /// one lease of `T0`: a machine restored at `T0` clamps any later deadline to `T0 + LONG`
    /// (no grant outlives a lease from the restart), which would make every peek due at once.
    pub fn expires_at(i: usize) -> Timestamp {
        ts(T0)
            .saturating_add(LONG - Duration::from_millis(DAY_MS))
            .saturating_add(Duration::from_millis(mix(i) as u64 % DAY_MS))
    }
    /// The snapshot of the population.
    pub fn records(&self) -> Vec<InboundRecord> {
        (0..self.n)
            .map(|i| {
                let (s, r, id) = self.key(i);
                InboundRecord {
                    server: self.servers[s].clone(),
                    room_id: self.rooms[r].clone(),
                    peek_id: id.into(),
                    renewed_at: ts(T0),
                    expires_at: Self::expires_at(i),
                }
            })
            .collect()
    }
}

/// The ids of a local population: device `d` (user `d / 2`) peeks `PER` rooms, room `(d + k·R/PER)
/// mod R`, so each room has about `PER` peekers. Spare key `e`: device `e mod D` of a seeded
/// random order of the devices, a spare room.
pub struct LocalIds {
    pub n: usize,
    pub users: Vec<OwnedUserId>,
    pub devices: Vec<OwnedDeviceId>,
    pub rooms: Vec<OwnedRoomId>,
    pub spare_rooms: Vec<OwnedRoomId>,
    /// The devices in a random order (cold and spare keys walk it).
    dev_order: Vec<u32>,
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
            dev_order: permutation(d, SEED ^ 0x10ca1),
        }
    }
    pub fn dev_count(&self) -> usize {
        self.devices.len()
    }
    /// Distance between the rooms one device peeks.
    fn step(&self) -> usize {
        self.rooms.len() / PER
    }
    /// (user, device, room) indices of live key `i`.
    pub fn key(&self, i: usize) -> (usize, usize, &OwnedRoomId) {
        let d = i / PER;
        let k = i % PER;
        let r = self.rooms.len();
        (d / 2, d, &self.rooms[(d + k * self.step()) % r])
    }
    /// (user, device, room) of spare key `e`: the devices in their random order (as the cold
    /// keys walk them), each with a spare room.
    pub fn extra(&self, e: usize) -> (usize, usize, &OwnedRoomId) {
        let d = self.dev_order[e % self.devices.len()] as usize;
        (d / 2, d, &self.spare_rooms[e / self.devices.len()])
    }
    /// How many cold keys there are before they repeat: device `d` never peeks room
    /// `d + o` for `o` in `1..step`, so there are `D · (step − 1)`.
    pub fn cold_capacity(&self) -> u64 {
        (self.dev_count() * self.step().saturating_sub(1)) as u64
    }
    /// (user, device, room) of cold key `c`: a random existing device and a live room it has
    /// never peeked (`c` below [`cold_capacity`](Self::cold_capacity); beyond it the keys
    /// repeat, each long after its previous use was forgotten). Without such rooms (populations
    /// under 100 peeks), a room id nobody peeks.
    pub fn cold_key(&self, c: u64) -> (usize, usize, OwnedRoomId) {
        let dc = self.dev_count();
        let d = self.dev_order[c as usize % dc] as usize;
        let cap = self.cold_capacity();
        if cap == 0 {
            return (d / 2, d, room(40_000_000 + c as usize));
        }
        let pass = (c % cap) as usize / dc;
        let r = (d + 1 + pass % (self.step() - 1)) % self.rooms.len();
        (d / 2, d, self.rooms[r].clone())
    }
    /// The lease deadline of live key `i` in the snapshot, spread over a day.
    pub fn expires_at(i: usize) -> Timestamp {
        InboundIds::expires_at(i)
    }
    pub fn config() -> LocalConfig {
        LocalConfig {
            lease: LONG,
            max_peeks_per_device: 1_000,
            max_peeks_total: 8_000_000,
            // Ended entries are collected at the next `handle_timeout`: the cold-create bench
            // calls it after each unmeasured unpeek, so cold keys leave nothing behind. No
            // measured op calls it (only `handle_timeout` collects), so the measured costs are
            // those of the default retention.
            ended_retention: Duration::ZERO,
            ..LocalConfig::default()
        }
    }
}

/// Names numbered when first seen, each kept once: how the floors number servers, devices and
/// rooms. The map is keyed by the name (std's keyed SipHash: names come from remote servers
/// and clients) and a number reads its name back from the list; both share one allocation.
#[derive(Default, Clone)]
pub struct Names {
    /// hashbrown's map, as std's is, under std's keyed SipHash: its `entry_ref` finds or
    /// numbers a borrowed name with one probe.
    numbers: hashbrown::HashMap<Rc<str>, u32, std::hash::RandomState>,
    names: Vec<Rc<str>>,
}

impl Names {
    /// The number of `name`, and whether it was new (numbered now).
    pub fn number(&mut self, name: &str) -> (u32, bool) {
        let next = self.names.len() as u32;
        match self.numbers.entry_ref(name) {
            hashbrown::hash_map::EntryRef::Occupied(e) => (*e.get(), false),
            hashbrown::hash_map::EntryRef::Vacant(e) => {
                let name: Rc<str> = name.into();
                e.insert_with_key(name.clone(), next);
                self.names.push(name);
                (next, true)
            }
        }
    }
    /// The number of `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.numbers.get(name).copied()
    }
    /// The name numbered `n`.
    pub fn name(&self, n: u32) -> &str {
        &self.names[n as usize]
    }
}

/// Slot numbers for a floor's peeks: freed ones are taken again first, as the machines'
/// slabs do.
#[derive(Default, Clone)]
pub struct Slots {
    next: u32,
    free: Vec<u32>,
}

impl Slots {
    /// A slot for a new peek.
    pub fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }
    /// Frees `slot`.
    pub fn give(&mut self, slot: u32) {
        self.free.push(slot);
    }
    /// The freed slots not taken again (for checks).
    pub fn freed(&self) -> &[u32] {
        &self.free
    }
}

/// Files `slot`'s deadline `at` in `by_time`, moving it from `old` when it had one: the
/// deadline half of an upsert.
pub fn file_deadline(
    by_time: &mut BTreeSet<(Timestamp, u32)>,
    slot: u32,
    old: Option<Timestamp>,
    at: Timestamp,
) {
    if let Some(old) = old {
        by_time.remove(&(old, slot));
    }
    by_time.insert((at, slot));
}

/// The deadline of a floor entry whose peek ended and is kept for `/sync` (a local floor's
/// retained end): it has none, its side queues it for collection. The bench's deadlines are
/// all far later.
pub const ENDED: Timestamp = Timestamp::ZERO;

/// What [`Floor::upsert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upserted {
    /// A new key, in this slot.
    New(u32),
    /// A kept ended peek ([`Floor::end`]) peeked again, live again in its slot.
    Revived(u32),
    /// A live key: its deadline moved.
    Moved,
}

/// A map of peeks keyed by their joined id strings (keyed SipHash, the joined string in one
/// write, as the machines hash a name) plus a `BTreeSet` of deadlines: the base of the floors (docs/architecture.md §12). Alone it is the renew floor
/// (one upsert and one deadline move) and the memory example's; the inbound and local floors
/// keep their counts beside it or key by numbers instead (`inbound_floor`, `local_floor`).
/// An entry whose deadline is [`ENDED`] is a peek that ended and is kept ([`end`](Self::end)).
/// Its operations are `#[inline(never)]`, like the machine's calls into the library crate, so
/// neither side is inlined into the bench loop.
#[derive(Default, Clone)]
pub struct Floor {
    /// The entries, keyed by their joined names (keyed SipHash of `a|b|c`).
    map: HashTable<Keyed>,
    hasher: RandomState,
    pub by_time: BTreeSet<(Timestamp, u32)>,
    pub slots: Slots,
    /// Where [`key`](Self::key) writes.
    buf: String,
}

/// An entry of a [`Floor`]: its joined names, its deadline ([`ENDED`] for a kept end) and
/// its slot.
#[derive(Clone, Debug)]
struct Keyed {
    key: Box<str>,
    at: Timestamp,
    slot: u32,
}

impl Floor {
    /// An empty floor with room for `n` entries.
    pub fn with_capacity(n: usize) -> Self {
        Floor { map: HashTable::with_capacity(n), ..Floor::default() }
    }
    /// Entries (live and kept ended).
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Every entry's deadline ([`ENDED`] for a kept end) and slot.
    pub fn entries(&self) -> impl Iterator<Item = (Timestamp, u32)> + '_ {
        self.map.iter().map(|e| (e.at, e.slot))
    }
    /// The map key of (a, b, c), `a|b|c`, written into `buf`.
    pub fn key(buf: &mut String, a: &str, b: &str, c: &str) {
        buf.clear();
        buf.push_str(a);
        buf.push('|');
        buf.push_str(b);
        buf.push('|');
        buf.push_str(c);
    }
    /// The hash of `a|b|c`, which is left in `buf` for the comparison. Joining the names
    /// and hashing them in one write costs fewer instructions than hashing them in place, five
    /// writes (BENCHMARKS.md, part 2, eleventh step).
    fn hash_of(&mut self, a: &str, b: &str, c: &str) -> u64 {
        Self::key(&mut self.buf, a, b, c);
        one_write(&self.hasher, &self.buf)
    }
    /// The entry of `a|b|c`.
    fn find_mut(&mut self, a: &str, b: &str, c: &str) -> Option<&mut Keyed> {
        let hash = self.hash_of(a, b, c);
        let buf = self.buf.as_str();
        self.map.find_mut(hash, |e| &*e.key == buf)
    }
    /// Inserts the key left in `buf` by [`hash_of`](Self::hash_of), whose hash is `hash`
    /// (not in the map).
    fn insert(&mut self, hash: u64, at: Timestamp, slot: u32) {
        let hasher = &self.hasher;
        let e = Keyed { key: self.buf.as_str().into(), at, slot };
        self.map.insert_unique(hash, e, |e| one_write(hasher, &e.key));
    }
    /// Upsert: a new key gets a deadline, a live one has its deadline moved, a kept ended one
    /// gets a deadline again.
    #[inline(never)]
    pub fn upsert(&mut self, a: &str, b: &str, c: &str, at: Timestamp) -> Upserted {
        let hash = self.hash_of(a, b, c);
        let buf = self.buf.as_str();
        if let Some(e) = self.map.find_mut(hash, |e| &*e.key == buf) {
            let (old, slot) = (std::mem::replace(&mut e.at, at), e.slot);
            if old == ENDED {
                file_deadline(&mut self.by_time, slot, None, at);
                return Upserted::Revived(slot);
            }
            file_deadline(&mut self.by_time, slot, Some(old), at);
            Upserted::Moved
        } else {
            let slot = self.slots.take();
            self.insert(hash, at, slot);
            file_deadline(&mut self.by_time, slot, None, at);
            Upserted::New(slot)
        }
    }
    /// Sets `a|b|c`'s deadline (a restore's bulk build: the deadline set is the caller's);
    /// returns the new key's slot, `None` when the key was there.
    pub fn put(&mut self, a: &str, b: &str, c: &str, at: Timestamp) -> Option<u32> {
        let hash = self.hash_of(a, b, c);
        let buf = self.buf.as_str();
        if let Some(e) = self.map.find_mut(hash, |e| &*e.key == buf) {
            e.at = at;
            return None;
        }
        let slot = self.slots.take();
        self.insert(hash, at, slot);
        Some(slot)
    }
    /// Ends the live key and keeps its entry, marked [`ENDED`] (its collection is the
    /// caller's); returns its slot (`None` when the key was not live).
    #[inline(never)]
    pub fn end(&mut self, a: &str, b: &str, c: &str) -> Option<u32> {
        let e = self.find_mut(a, b, c)?;
        if e.at == ENDED {
            return None;
        }
        let (at, slot) = (std::mem::replace(&mut e.at, ENDED), e.slot);
        self.by_time.remove(&(at, slot));
        Some(slot)
    }
    /// Removes the key; returns its slot (`None` when it was not there).
    pub fn remove_slot(&mut self, a: &str, b: &str, c: &str) -> Option<u32> {
        let hash = self.hash_of(a, b, c);
        let buf = self.buf.as_str();
        let e = self.map.find_entry(hash, |e| &*e.key == buf).ok()?;
        let (Keyed { at, slot, .. }, _) = e.remove();
        self.by_time.remove(&(at, slot));
        self.slots.give(slot);
        Some(slot)
    }
    /// A timer-driven renewal (outbound): takes the earliest deadline, moves it `after` later
    /// in the set and in the entry of its slot, and reads the bytes of the entry's names (the
    /// room, server and peek id the renewal request is built from, `names[slot]`). No key
    /// string is hashed: the renewal is started by our own timer and its answer can be matched
    /// by a request id we chose, so the minimum is a slot-indexed update plus reading what the
    /// host needs to send. Returns the bytes read, summed.
    #[inline(never)]
    pub fn renew_first(
        &mut self,
        deadlines: &mut [Timestamp],
        names: &[Box<str>],
        after: Duration,
    ) -> Option<u64> {
        let (due, slot) = self.by_time.pop_first()?;
        let at = due.saturating_add(after);
        deadlines[slot as usize] = at;
        self.by_time.insert((at, slot));
        Some(read_name(0, &names[slot as usize]))
    }
}

/// `key`'s keyed SipHash in one write (the bytes alone, no terminator).
fn one_write(hasher: &RandomState, key: &str) -> u64 {
    let mut h = hasher.build_hasher();
    h.write(key.as_bytes());
    h.finish()
}

/// The periodic-scan reference (palpo purges every 60 s; Dendrite-style tables): a `HashMap`
/// of deadlines and nothing else; expiry sweeps every entry on each tick.
#[derive(Default, Clone)]
pub struct Scan {
    pub map: HashMap<Box<str>, Timestamp>,
    buf: String,
}

impl Scan {
    #[inline(never)]
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

/// The time of `iters` operations run in chunks of at most `chunk` keys: for each chunk,
/// `keys(c)` builds the `c` keys (not measured: owned copies of the id strings, fresh in cache
/// like a just-parsed request), `measured(state, keys)` is timed, and `undo(state, keys)` puts
/// the population back as it was (not measured).
#[allow(clippy::disallowed_methods)] // benches measure wall time.
pub fn measure_in_chunks<S: ?Sized, K>(
    iters: u64,
    chunk: usize,
    state: &mut S,
    mut keys: impl FnMut(usize) -> Vec<K>,
    mut measured: impl FnMut(&mut S, &[K]),
    mut undo: impl FnMut(&mut S, &[K]),
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
        drop(black_box(keys));
        left -= c;
    }
    total
}

/// The paired measurement of a machine and its floor (`PEEK_PAIRED=1`): rounds of one chunk of
/// `a` (the machine) and one of `b` (the floor), alternately first, for about 2 s after 0.5 s
/// of warm-up, so both see the same load, caches and allocator state within a few
/// milliseconds. `a()` and `b()` return the time of one chunk of `chunk` ops. Prints one line:
/// `paired LABEL N a-ns b-ns ratio q1 q3 rounds` — the medians over the rounds of the per-op
/// times, and the median and quartiles of the per-round ratio a/b.
#[allow(clippy::disallowed_methods)] // benches measure wall time.
pub fn paired(
    label: &str,
    n: usize,
    chunk: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) {
    let (warm_up, budget) = (Duration::from_millis(500), Duration::from_secs(2));
    let start = Instant::now();
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let mut round = 0usize;
    while round < 20 || start.elapsed() < warm_up + budget {
        let (x, y) = if round.is_multiple_of(2) {
            let x = a();
            (x, b())
        } else {
            let y = b();
            (a(), y)
        };
        if start.elapsed() > warm_up || (10..20).contains(&round) {
            ta.push(x.as_secs_f64() * 1e9 / chunk as f64);
            tb.push(y.as_secs_f64() * 1e9 / chunk as f64);
        }
        round += 1;
    }
    let mut ratios: Vec<f64> = ta.iter().zip(&tb).map(|(x, y)| x / y).collect();
    let med = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let (ma, mb) = (med(&mut ta, 0.5), med(&mut tb, 0.5));
    let (r, q1, q3) = (med(&mut ratios, 0.5), med(&mut ratios, 0.25), med(&mut ratios, 0.75));
    println!("paired\t{label}\t{n}\t{ma:.1}\t{mb:.1}\t{r:.3}\t{q1:.3}\t{q3:.3}\t{}", ratios.len());
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
