//! The floors of the inbound workloads: [`InboundFloor`] (peeks keyed by server and room
//! numbers and the peek id: creates, expiry, restore) and [`InboundKeyFloor`] (peeks keyed by
//! their joined id strings: renewals and unpeeks), over the same [`InboundSide`].
//!
//! Both keep what any correct inbound tracker keeps beside each peek's deadline and updates on
//! every create, unpeek and expiry, as the machine does:
//!
//! * each server's and each room's count of live peeks (the caps `max_peeks_per_server` and
//!   `max_peeks_per_room`, docs/architecture.md §5);
//! * each room's servers, with a count of peeks each (`destinations` in O(result), R39);
//! * slots freed by a removal, taken again first (as the machine's slab does).
//!
//! They differ in how a peek is found from its names, and each op is measured against the
//! keying that makes it cheaper (instructions per op at 100 k live peeks,
//! `PEEK_PROFILE_SIDES='number_floor key_floor' benches/profile.sh 100000 10000 …`): a create
//! must number the server and the room (for the counts) anyway, so keying the peek by those
//! numbers and its id costs one short hash more (a warm create 2 023 against 2 520 with the
//! joined strings); a renewal or an unpeek that finds the peek by one hash of its joined id
//! strings hashes fewer bytes than one that looks up both names first (1 624 against 2 168,
//! 1 246 against 1 646; measured at 1593007). An expiry uses the numbered floor: it reaches
//! the peek through its slot, which keeps the hash its entry was filed under, so it hashes
//! nothing (as the machine removes by the hash it stored), and reads the names the store
//! removal and the `Expired` notification are keyed by. No one tracker gets both keyings; the
//! floor takes the cheaper of each. No floor writes outputs.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;

use hashbrown::{HashTable, hash_table};

use matrix_peek::{InboundRecord, Timestamp};

use crate::key_floor::{KeyFloor, Side};
use crate::support::{Names, Slots, file_deadline, read_bytes, read_name};

/// The inbound floor of renewals and unpeeks: peeks keyed by their joined id strings.
pub type InboundKeyFloor = KeyFloor<InboundSide>;

/// The server and room numbers and counts of an inbound floor. Servers and rooms are numbered
/// when first seen, in keyed SipHash maps (their names come from remote servers). A room's
/// server list is a scan of 8-byte entries, and each peek keeps its (server, room) numbers by
/// its slot, so an unpeek or an expiry reaches the counts without hashing a name (as the
/// machine's does through its interned handles). Numbers are never freed (the machine frees
/// a name when its last peek ends: a little more work than the floor's, on a path the
/// workloads rarely take).
#[derive(Default, Clone)]
pub struct InboundSide {
    servers: Names,
    rooms: Names,
    /// Live peeks per server number.
    server_live: Vec<u32>,
    /// Per room number.
    room_state: Vec<FloorRoom>,
    /// By slot: (server number, room number, the hash its entry in [`InboundFloor::peeks`] was
    /// filed under: 0 in [`InboundKeyFloor`]), so an expiry reaches the counts and removes the
    /// entry without hashing, as the machine does.
    of_slot: Vec<(u32, u32, u64)>,
}

/// One room of an [`InboundSide`].
#[derive(Default, Clone)]
struct FloorRoom {
    live: u32,
    /// (server number, live peeks of that server in the room).
    servers: Vec<(u32, u32)>,
}

impl InboundSide {
    /// The (server, room) numbers of a peek, numbering either name when new.
    fn number(&mut self, server: &str, room: &str) -> (u32, u32) {
        let (s, new) = self.servers.number(server);
        if new {
            self.server_live.push(0);
        }
        let (r, new) = self.rooms.number(room);
        if new {
            self.room_state.push(FloorRoom::default());
        }
        (s, r)
    }

    /// Counts the new peek in `slot`, of server `s` in room `r`.
    fn count(&mut self, slot: u32, s: u32, r: u32, hash: u64) {
        self.server_live[s as usize] += 1;
        let state = &mut self.room_state[r as usize];
        state.live += 1;
        match state.servers.iter_mut().find(|(n, _)| *n == s) {
            Some((_, live)) => *live += 1,
            None => state.servers.push((s, 1)),
        }
        let i = slot as usize;
        if i >= self.of_slot.len() {
            self.of_slot.resize(i + 1, (u32::MAX, u32::MAX, 0));
        }
        self.of_slot[i] = (s, r, hash);
    }

    /// Takes the ended peek in `slot` out of its server's and its room's counts.
    fn uncount(&mut self, slot: u32) {
        let (s, r, _) = self.of_slot[slot as usize];
        self.server_live[s as usize] -= 1;
        let state = &mut self.room_state[r as usize];
        state.live -= 1;
        let i = state.servers.iter().position(|(n, _)| *n == s).expect("the peek's server");
        state.servers[i].1 -= 1;
        if state.servers[i].1 == 0 {
            state.servers.swap_remove(i);
        }
    }

    /// Checks every count against the live peeks' `slots`.
    fn check(&self, slots: impl Iterator<Item = u32>) {
        let mut server_live = vec![0; self.server_live.len()];
        let mut rooms = vec![FloorRoom::default(); self.room_state.len()];
        for slot in slots {
            let (s, r, _) = self.of_slot[slot as usize];
            server_live[s as usize] += 1;
            // Tallied here, not with `count`, so that a slip there shows.
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

/// Writes the key of peek `id` of server `s` in room `r` into `key`.
fn peek_key(key: &mut Vec<u8>, s: u32, r: u32, id: &str) {
    key.clear();
    key.extend_from_slice(&s.to_le_bytes());
    key.extend_from_slice(&r.to_le_bytes());
    key.extend_from_slice(id.as_bytes());
}

/// The inbound floor whose peeks are keyed by their (server, room) numbers and peek id: each
/// name is hashed once per operation, then the short key (std's keyed SipHash). Each slot
/// keeps the hash its entry was filed under, so an expiry removes the entry without hashing,
/// as the machine's slot index does. It serves the creates, the expiry workloads and the
/// restore.
#[derive(Default, Clone)]
pub struct InboundFloor {
    side: InboundSide,
    peeks: HashTable<FloorPeek>,
    hasher: RandomState,
    by_time: BTreeSet<(Timestamp, u32)>,
    slots: Slots,
    /// Where a peek's key is written for its lookup.
    key: Vec<u8>,
}

/// A peek in [`InboundFloor::peeks`].
#[derive(Clone, Debug)]
struct FloorPeek {
    /// (server number, room number, peek id) as bytes ([`peek_key`]).
    key: Box<[u8]>,
    at: Timestamp,
    slot: u32,
}

impl InboundFloor {
    /// The floor holding `records` (the last of a key wins), built as a restore would: the
    /// peek table sized once, each new peek counted as it is inserted, the deadline set built
    /// in bulk from the table (one sort and an O(n) tree build).
    pub fn new(records: &[InboundRecord]) -> Self {
        let peeks = HashTable::with_capacity(records.len());
        let mut f = InboundFloor { peeks, ..Default::default() };
        for r in records {
            f.put(r.server.as_str(), r.room_id.as_str(), &r.peek_id, r.expires_at);
        }
        f.by_time = f.peeks.iter().map(|p| (p.at, p.slot)).collect();
        f
    }

    /// Sets the deadline of the peek `(server, room, id)`, adding and counting it when new;
    /// returns its slot and its previous deadline (`None` when new). The deadline set is the
    /// caller's.
    fn put(
        &mut self,
        server: &str,
        room: &str,
        id: &str,
        at: Timestamp,
    ) -> (u32, Option<Timestamp>) {
        let (s, r) = self.side.number(server, room);
        peek_key(&mut self.key, s, r, id);
        let hash = self.hasher.hash_one(self.key.as_slice());
        let (hasher, key) = (&self.hasher, &self.key);
        let entry = self.peeks.entry(hash, |p| *p.key == **key, |p| hasher.hash_one(&*p.key));
        match entry {
            hash_table::Entry::Occupied(mut e) => {
                let peek = e.get_mut();
                (peek.slot, Some(std::mem::replace(&mut peek.at, at)))
            }
            hash_table::Entry::Vacant(e) => {
                let slot = self.slots.take();
                e.insert(FloorPeek { key: key.as_slice().into(), at, slot });
                self.side.count(slot, s, r, hash);
                (slot, None)
            }
        }
    }

    /// Starts the peek `(server, room, id)` due at `at`, or renews it (moves its deadline)
    /// when it is live.
    #[inline(never)]
    pub fn upsert(&mut self, server: &str, room: &str, id: &str, at: Timestamp) {
        let (slot, old) = self.put(server, room, id, at);
        file_deadline(&mut self.by_time, slot, old, at);
    }

    /// Ends the peek `(server, room, id)`; returns whether it was live.
    #[inline(never)]
    pub fn remove(&mut self, server: &str, room: &str, id: &str) -> bool {
        let side = &self.side;
        let (Some(s), Some(r)) = (side.servers.get(server), side.rooms.get(room)) else {
            return false;
        };
        peek_key(&mut self.key, s, r, id);
        let hash = self.hasher.hash_one(self.key.as_slice());
        let key = &self.key;
        let Ok(e) = self.peeks.find_entry(hash, |p| *p.key == **key) else { return false };
        let (FloorPeek { at, slot, .. }, _) = e.remove();
        self.by_time.remove(&(at, slot));
        self.side.uncount(slot);
        self.slots.give(slot);
        true
    }

    /// Expires every peek due at `cutoff`; returns how many. Each expiry reads the peek's
    /// names (its server, room and id: the store removal and the `Expired` notification name
    /// them), takes it out of the counts, and removes its entry, found by the hash its slot
    /// keeps: no hashing.
    #[inline(never)]
    pub fn expire(&mut self, cutoff: Timestamp) -> usize {
        let mut due = 0;
        let mut names = 0u64;
        while let Some(&(at, slot)) = self.by_time.first() {
            if at > cutoff {
                break;
            }
            self.by_time.pop_first();
            let (s, r, hash) = self.side.of_slot[slot as usize];
            let entry = self.peeks.find_entry(hash, |p| p.slot == slot).expect("a live peek");
            names = read_name(names, self.side.servers.name(s));
            names = read_name(names, self.side.rooms.name(r));
            let id = &entry.get().key[8..];
            names = read_bytes(names, id);
            black_box(entry.remove());
            self.side.uncount(slot);
            self.slots.give(slot);
            due += 1;
        }
        black_box(names);
        due
    }

    /// Checks that the floor holds `n` live peeks and that every count is what its live peeks
    /// make it (each workload puts the population back as it found it).
    pub fn check(&self, n: usize) {
        assert_eq!(self.peeks.len(), n, "inbound floor: live peeks");
        assert_eq!(self.by_time.len(), n, "inbound floor: deadlines");
        for p in self.peeks.iter() {
            let slot = p.slot;
            let (s, r, hash) = self.side.of_slot[slot as usize];
            assert_eq!(p.key[..4], s.to_le_bytes(), "inbound floor: slot {slot}'s server");
            assert_eq!(p.key[4..8], r.to_le_bytes(), "inbound floor: slot {slot}'s room");
            assert_eq!(hash, self.hasher.hash_one(&*p.key), "inbound floor: slot {slot}'s hash");
            assert!(self.by_time.contains(&(p.at, slot)), "inbound floor: slot {slot}'s deadline");
        }
        self.side.check(self.peeks.iter().map(|p| p.slot));
    }
}

impl Side for InboundSide {
    /// The inbound machine forgets an ended peek (its `Persist` removes the record).
    const RETAINS: bool = false;
    fn add(&mut self, slot: u32, [server, room, _id]: [&str; 3]) {
        let (s, r) = self.number(server, room);
        self.count(slot, s, r, 0);
    }
    fn end(&mut self, slot: u32) {
        self.uncount(slot);
    }
    fn retain_end(&mut self, _slot: u32) {
        unreachable!("the inbound floor keeps no ended peek");
    }
    fn revive(&mut self, _slot: u32) {
        unreachable!("the inbound floor keeps no ended peek");
    }
    fn check_slots(
        &self,
        live: &mut dyn Iterator<Item = u32>,
        ended: &mut dyn Iterator<Item = u32>,
    ) {
        assert_eq!(ended.count(), 0, "inbound floor: an ended peek kept");
        self.check(live);
    }
}
