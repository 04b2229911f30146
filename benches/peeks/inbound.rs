//! Per-op inbound groups (`inbound_peek`, `inbound_renew`, `inbound_unpeek`) at one population
//! size, and the builders of the inbound machine and reference trackers.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::Criterion;
use matrix_peek::RoomAccess;
use matrix_peek::{InboundPeeks, InboundRecord, Timestamp};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

use crate::support::*;
use crate::{Churn, Keys, PerOp, Plan, Renew, access, spare};

/// An inbound peek's key: (origin, room, peek id).
pub type Key = (OwnedServerName, OwnedRoomId, String);

impl Keys for InboundIds {
    type Key = Key;
    fn live(&self, i: usize) -> Key {
        let (s, r, id) = self.key(i);
        (self.servers[s].clone(), self.rooms[r].clone(), id.to_owned())
    }
    fn warm(&self, e: usize) -> Key {
        let (s, r, id) = self.extra(e);
        (self.servers[s].clone(), self.rooms[r].clone(), id.to_owned())
    }
    /// A random server and live room, a peek id never used before.
    fn cold(&self, c: u64) -> Key {
        let (s, r, id) = self.cold_key(c);
        (self.servers[s].clone(), self.rooms[r].clone(), id)
    }
}

pub fn drain(m: &mut InboundPeeks) {
    while let Some(o) = m.poll_output() {
        black_box(o);
    }
}

pub fn machine(ids: &InboundIds) -> InboundPeeks {
    let mut m = InboundPeeks::restore(ts(T0), InboundIds::config(), ids.records());
    drain(&mut m);
    m
}

/// The floor of the inbound per-op workloads: [`Floor`]'s key map and deadline set, plus what
/// any correct inbound tracker keeps beside them and updates on every create and unpeek, as
/// the machine does: each server's and each room's count of live peeks (the caps
/// `max_peeks_per_server` and `max_peeks_per_room`, docs/architecture.md §5), and each room's
/// servers, with a count of peeks each (`destinations` in O(result), R39). Keyed SipHash
/// maps, as [`Floor`]. Servers and rooms are numbered when first seen: a room's server list
/// is a scan of 8-byte entries, and each peek keeps its (server, room) numbers by its slot,
/// so an unpeek reaches the counts without hashing a name again, as the machine's does
/// through its interned handles. Numbers are never freed (the machine frees a name when its
/// last peek ends: a little more work than the floor's, on a path the workloads rarely take).
/// A renewal touches only the key map and the deadlines ([`Floor::upsert`]). Expiry
/// ([`expire`](Self::expire)) takes each expired peek out of the counts as an unpeek does, and
/// a restore ([`new`](Self::new)) counts each peek as it inserts it.
#[derive(Default, Clone)]
pub struct InboundFloor {
    pub keys: Floor,
    servers: HashMap<Box<str>, u32>,
    rooms: HashMap<Box<str>, u32>,
    /// Live peeks per server number.
    server_live: Vec<u32>,
    /// Per room number.
    room_state: Vec<FloorRoom>,
    /// (server number, room number) by the key map's slot.
    of_slot: Vec<(u32, u32)>,
}

/// One room of the [`InboundFloor`].
#[derive(Default, Clone, PartialEq, Debug)]
struct FloorRoom {
    live: u32,
    /// (server number, live peeks of that server in the room).
    servers: Vec<(u32, u32)>,
}

impl FloorRoom {
    /// Counts a peek of server `s`.
    fn add(&mut self, s: u32) {
        self.live += 1;
        match self.servers.iter_mut().find(|(n, _)| *n == s) {
            Some((_, live)) => *live += 1,
            None => self.servers.push((s, 1)),
        }
    }
}

/// The number of `name` in `numbers`, numbered `next` (and `true`) when new.
fn number(numbers: &mut HashMap<Box<str>, u32>, name: &str, next: usize) -> (u32, bool) {
    match numbers.get(name) {
        Some(&n) => (n, false),
        None => {
            let n = next as u32;
            numbers.insert(name.into(), n);
            (n, true)
        }
    }
}

impl InboundFloor {
    /// The floor holding `records` (the last of a key wins), built as a restore would:
    /// [`Floor::bulk`]'s technique (the key map sized once, the deadline set built in bulk from
    /// it), each new key counted as it is inserted.
    pub fn new(records: &[InboundRecord]) -> Self {
        let mut f = InboundFloor::default();
        f.keys.map = HashMap::with_capacity(records.len());
        let mut key = String::new();
        for r in records {
            let (server, room) = (r.server.as_str(), r.room_id.as_str());
            Floor::key(&mut key, server, room, &r.peek_id);
            if let Some((old, _)) = f.keys.map.get_mut(key.as_str()) {
                *old = r.expires_at;
            } else {
                let slot = f.keys.next;
                f.keys.map.insert(key.as_str().into(), (r.expires_at, slot));
                f.keys.next += 1;
                f.count(slot, server, room);
            }
        }
        f.keys.by_time = f.keys.map.values().copied().collect();
        f
    }

    /// Starts (or refreshes) the peek `(server, room, id)`, due at `at`.
    #[inline(never)]
    pub fn create(&mut self, server: &str, room: &str, id: &str, at: Timestamp) {
        if let Some(slot) = self.keys.upsert(server, room, id, at) {
            self.count(slot, server, room);
        }
    }

    /// Counts the new peek in `slot`, of `server` in `room`.
    fn count(&mut self, slot: u32, server: &str, room: &str) {
        let (s, new) = number(&mut self.servers, server, self.server_live.len());
        if new {
            self.server_live.push(0);
        }
        self.server_live[s as usize] += 1;
        let (r, new) = number(&mut self.rooms, room, self.room_state.len());
        if new {
            self.room_state.push(FloorRoom::default());
        }
        self.room_state[r as usize].add(s);
        let i = slot as usize;
        if i >= self.of_slot.len() {
            self.of_slot.resize(i + 1, (u32::MAX, u32::MAX));
        }
        self.of_slot[i] = (s, r);
    }

    /// Ends the peek `(server, room, id)`; returns whether it was live.
    #[inline(never)]
    pub fn remove(&mut self, server: &str, room: &str, id: &str) -> bool {
        let Some(slot) = self.keys.remove_slot(server, room, id) else { return false };
        self.uncount(slot);
        true
    }

    /// Takes the ended peek in `slot` out of its server's and its room's counts.
    fn uncount(&mut self, slot: u32) {
        let (s, r) = self.of_slot[slot as usize];
        self.server_live[s as usize] -= 1;
        let state = &mut self.room_state[r as usize];
        state.live -= 1;
        let i = state.servers.iter().position(|(n, _)| *n == s).expect("the peek's server");
        state.servers[i].1 -= 1;
        if state.servers[i].1 == 0 {
            state.servers.swap_remove(i);
        }
    }

    /// Expires every peek due at `cutoff` (`keys` by slot: [`Floor::keys_by_slot`]); returns
    /// how many.
    #[inline(never)]
    pub fn expire(&mut self, keys: &[Box<str>], cutoff: Timestamp) -> usize {
        let mut due = 0;
        while let Some(&(at, slot)) = self.keys.by_time.first() {
            if at > cutoff {
                break;
            }
            self.keys.by_time.pop_first();
            black_box(self.keys.map.remove(&keys[slot as usize]));
            self.uncount(slot);
            due += 1;
        }
        due
    }

    /// Checks that the floor holds `n` live peeks and that every count is what its live keys
    /// make it (each workload puts the population back as it found it).
    pub fn check(&self, n: usize) {
        assert_eq!(self.keys.map.len(), n, "inbound floor: live peeks");
        assert_eq!(self.keys.by_time.len(), n, "inbound floor: deadlines");
        let mut server_live = vec![0; self.server_live.len()];
        let mut rooms = vec![FloorRoom::default(); self.room_state.len()];
        for (_, slot) in self.keys.map.values() {
            let (s, r) = self.of_slot[*slot as usize];
            server_live[s as usize] += 1;
            // Tallied here, not with `FloorRoom::add`, so that a slip there shows.
            let state = &mut rooms[r as usize];
            state.live += 1;
            match state.servers.iter_mut().find(|(n, _)| *n == s) {
                Some((_, live)) => *live += 1,
                None => state.servers.push((s, 1)),
            }
        }
        assert_eq!(server_live, self.server_live, "inbound floor: per-server counts");
        for (r, state) in self.room_state.iter().enumerate() {
            let mut kept = state.servers.clone();
            let mut rebuilt = std::mem::take(&mut rooms[r].servers);
            kept.sort_unstable();
            rebuilt.sort_unstable();
            assert_eq!((state.live, kept), (rooms[r].live, rebuilt), "inbound floor: room {r}");
        }
    }
}

pub fn scan(records: Vec<InboundRecord>) -> Scan {
    let mut f = Scan::default();
    for r in records {
        f.upsert(r.server.as_str(), r.room_id.as_str(), &r.peek_id, r.expires_at);
    }
    f
}

/// The machine as the per-op workloads drive it: every output drained.
pub struct Machine {
    pub m: InboundPeeks,
    ver: [RoomVersionId; 1],
    acc: RoomAccess,
}

impl Machine {
    pub fn new(m: InboundPeeks) -> Self {
        Machine { m, ver: [RoomVersionId::V10], acc: access() }
    }
}

impl Churn<Key> for Machine {
    fn create(&mut self, (s, r, id): &Key, now: u64) {
        let g = self.m.handle_peek(ts(now), s, r, id, &self.ver, Some(&self.acc));
        black_box(g.expect("peek granted"));
        drain(&mut self.m);
    }
    fn remove(&mut self, (s, r, id): &Key, now: u64) {
        self.m.handle_unpeek(ts(now), s, r, id).expect("live");
        drain(&mut self.m);
    }
}

impl Renew<Key> for Machine {
    fn renew(&mut self, (s, r, id): &Key, now: u64) {
        black_box(self.m.handle_renew(ts(now), s, r, id).expect("live"));
        drain(&mut self.m);
    }
}

impl Churn<Key> for InboundFloor {
    fn create(&mut self, (s, r, id): &Key, now: u64) {
        InboundFloor::create(self, s.as_str(), r.as_str(), id, deadline(now));
    }
    fn remove(&mut self, (s, r, id): &Key, _now: u64) {
        black_box(InboundFloor::remove(self, s.as_str(), r.as_str(), id));
    }
}

impl Renew<Key> for InboundFloor {
    fn renew(&mut self, (s, r, id): &Key, now: u64) {
        let new = self.keys.upsert(s.as_str(), r.as_str(), id, deadline(now));
        debug_assert!(new.is_none(), "a renewal names a live peek");
    }
}

impl Renew<Key> for Scan {
    fn renew(&mut self, (s, r, id): &Key, now: u64) {
        self.upsert(s.as_str(), r.as_str(), id, deadline(now));
    }
}

/// The inbound per-op groups at `n` live peeks; machine, floor and scan share one clock.
pub fn bench(c: &mut Criterion, plan: &Plan, n: usize) {
    let ops = ["inbound_peek", "inbound_renew", "inbound_unpeek"];
    if !ops.iter().any(|g| plan.wants(g)) {
        return;
    }
    let ids = InboundIds::new(n, spare(n));
    let records = ids.records();
    let mut f = InboundFloor::new(&records);
    let want_scan = plan.wants("inbound_renew") && !plan.paired;
    let mut sc = if want_scan { scan(records) } else { Scan::default() };
    let mut m = Machine::new(machine(&ids));
    let w = PerOp::new(n, &ids);

    if plan.paired {
        if plan.wants("inbound_peek") {
            w.paired_creates_cold("inbound_peek/cold", &mut m, &mut f);
            w.paired_creates_warm("inbound_peek/warm", &mut m, &mut f);
        }
        if plan.wants("inbound_renew") {
            w.paired_renews("inbound_renew", &mut m, &mut f);
        }
        if plan.wants("inbound_unpeek") {
            w.paired_removes("inbound_unpeek", &mut m, &mut f);
        }
        f.check(n);
        return;
    }
    if plan.wants("inbound_peek") {
        let mut g = c.benchmark_group("inbound_peek");
        w.creates_cold(&mut g, "cold_machine", &mut m);
        w.creates_cold(&mut g, "cold_floor", &mut f);
        w.creates_warm(&mut g, "warm_machine", &mut m);
        w.creates_warm(&mut g, "warm_floor", &mut f);
        g.finish();
    }
    if plan.wants("inbound_renew") {
        let mut g = c.benchmark_group("inbound_renew");
        w.renews(&mut g, "machine", &mut m);
        w.renews(&mut g, "floor", &mut f);
        w.renews(&mut g, "scan", &mut sc);
        g.finish();
    }
    if plan.wants("inbound_unpeek") {
        let mut g = c.benchmark_group("inbound_unpeek");
        w.removes(&mut g, "machine", &mut m);
        w.removes(&mut g, "floor", &mut f);
        g.finish();
    }
    f.check(n);
}
