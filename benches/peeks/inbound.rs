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

/// The floor holding `records`, bulk-built as a restore of the floor would be.
pub fn floor(records: &[InboundRecord]) -> Floor {
    Floor::bulk(
        records.len(),
        records
            .iter()
            .map(|r| ([r.server.as_str(), r.room_id.as_str(), r.peek_id.as_str()], r.expires_at)),
    )
}

/// The floor of the inbound per-op workloads: [`Floor`]'s key map and deadline set, plus what
/// any correct inbound tracker keeps beside them and updates on every create and unpeek, as
/// the machine does: each server's and each room's count of live peeks (the caps
/// `max_peeks_per_server` and `max_peeks_per_room`, docs/architecture.md §5), and each room's
/// servers, with a count of peeks each (`destinations` in O(result), R39). Keyed SipHash
/// throughout, as [`Floor`]. A server is numbered when first seen (its map entry holds the
/// number beside its count), so a room's server list is a scan of 8-byte entries, not of name
/// strings; a renewal touches only the key map and the deadlines ([`Floor::upsert`]).
#[derive(Default, Clone)]
pub struct InboundFloor {
    keys: Floor,
    /// Per server: (number, live peeks).
    servers: HashMap<Box<str>, (u32, u32)>,
    rooms: HashMap<Box<str>, FloorRoom>,
    next_server: u32,
}

/// One room of the [`InboundFloor`].
#[derive(Default, Clone)]
struct FloorRoom {
    live: u32,
    /// (server number, live peeks of that server in the room).
    servers: Vec<(u32, u32)>,
}

impl InboundFloor {
    /// The floor holding `records`: the key map bulk-built ([`floor`]), then the counts.
    pub fn new(records: &[InboundRecord]) -> Self {
        let mut f = InboundFloor { keys: floor(records), ..Default::default() };
        for r in records {
            f.count(r.server.as_str(), r.room_id.as_str());
        }
        f
    }

    /// Starts (or refreshes) the peek `(server, room, id)`, due at `at`.
    #[inline(never)]
    pub fn create(&mut self, server: &str, room: &str, id: &str, at: Timestamp) {
        if self.keys.upsert(server, room, id, at) {
            self.count(server, room);
        }
    }

    /// Counts a new peek of `server` in `room`.
    fn count(&mut self, server: &str, room: &str) {
        let number = match self.servers.get_mut(server) {
            Some((number, live)) => {
                *live += 1;
                *number
            }
            None => {
                let number = self.next_server;
                self.next_server += 1;
                self.servers.insert(server.into(), (number, 1));
                number
            }
        };
        let add = |r: &mut FloorRoom| {
            r.live += 1;
            match r.servers.iter_mut().find(|(s, _)| *s == number) {
                Some((_, n)) => *n += 1,
                None => r.servers.push((number, 1)),
            }
        };
        match self.rooms.get_mut(room) {
            Some(r) => add(r),
            None => {
                let mut r = FloorRoom::default();
                add(&mut r);
                self.rooms.insert(room.into(), r);
            }
        }
    }

    /// Ends the peek `(server, room, id)`; returns whether it was live.
    #[inline(never)]
    pub fn remove(&mut self, server: &str, room: &str, id: &str) -> bool {
        if !self.keys.remove(server, room, id) {
            return false;
        }
        let Some((number, live)) = self.servers.get_mut(server) else { return true };
        let number = *number;
        *live -= 1;
        if *live == 0 {
            self.servers.remove(server);
        }
        if let Some(r) = self.rooms.get_mut(room) {
            r.live -= 1;
            if let Some(i) = r.servers.iter().position(|(s, _)| *s == number) {
                r.servers[i].1 -= 1;
                if r.servers[i].1 == 0 {
                    r.servers.swap_remove(i);
                }
            }
            if r.live == 0 {
                self.rooms.remove(room);
            }
        }
        true
    }

    /// Checks that the floor holds `n` live peeks and that every count agrees with them (each
    /// workload puts the population back as it found it).
    pub fn check(&self, n: usize) {
        assert_eq!(self.keys.map.len(), n, "inbound floor: live peeks");
        let servers: u32 = self.servers.values().map(|(_, live)| live).sum();
        assert_eq!(servers as usize, n, "inbound floor: per-server counts");
        let mut rooms = 0;
        for r in self.rooms.values() {
            let pairs: u32 = r.servers.iter().map(|(_, live)| live).sum();
            assert_eq!(pairs, r.live, "inbound floor: a room's per-server counts");
            rooms += r.live as usize;
        }
        assert_eq!(rooms, n, "inbound floor: per-room counts");
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
        self.keys.upsert(s.as_str(), r.as_str(), id, deadline(now));
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
