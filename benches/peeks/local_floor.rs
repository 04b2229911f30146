//! The floors of the local workloads: [`LocalFloor`] (peeks keyed by device and room
//! numbers: creates, expiry, restore) and [`LocalKeyFloor`] (peeks keyed by their id strings:
//! renewals and unpeeks), over the same [`LocalSide`].
//!
//! Both keep what any correct local tracker keeps beside each peek's deadline and updates on
//! every peek, unpeek and expiry, as the machine does:
//!
//! * each device's count of live peeks (the cap `max_peeks_per_device`, docs/architecture.md
//!   §4);
//! * each room's live peekers, for `peekers(room)` in O(result), and so the room's demand:
//!   its first live peeker and its last (§4.4);
//! * a stream position per change, and each peek's start (and end) position, for `/sync`
//!   (§4.3);
//! * each device's count of kept ended peeks (the machine caps them per device too);
//! * slots freed by a removal, taken again first (as the machine's slab does).
//!
//! They differ in how a peek is found from its names, and each op is measured against the
//! keying that makes it cheaper (instructions per op at 100 k live peeks,
//! `PEEK_PROFILE_SIDES='number_floor key_floor' benches/profile.sh 100000 10000 …`): a create
//! must number the device and the room (for the counts) anyway, so keying the peek by those
//! numbers costs one short hash more (a warm create 1 747 against 2 587 with the joined
//! strings); a renewal or an unpeek that finds the peek by one hash of its joined id strings
//! hashes fewer bytes than one that looks up both names first (1 632 against 2 126, 1 233
//! against 1 496; measured at 1593007). An expiry uses the numbered floor: it reaches the
//! peek through its slot, which keeps its numbers and the hash its entry was filed under, so
//! it hashes nothing (as the machine removes by the hash it stored). No one tracker gets
//! both; the floor takes the cheaper of each.
//!
//! An unpeek keeps the ended entry for `/sync`, marked ended and queued for its collection, as
//! the machine does (with the per-op workloads' zero retention too: the machine collects it at
//! its next `handle_timeout`, which no per-op workload runs); a create of an ended key revives
//! the entry, keeping its numbers, as the machine revives its entry; a cold create's undo
//! (`forget`) collects it at once, as the machine's `handle_timeout` does. An expiry reads the
//! names an end's store write is keyed by and, with the default retention, keeps the ended
//! entry in the same way, or forgets it (zero retention: the machine's same call collects it).
//! What no floor does, though the machine does: write outputs (`Persist`, `Wake`,
//! `PeekEnded`, `RoomDemand`). Ratios against them are upper bounds, by that much.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;

use hashbrown::{HashTable, hash_table};

use matrix_peek::Timestamp;

use crate::key_floor::{KeyFloor, Side};
use crate::support::{ENDED, Names, Slots, file_deadline, read_name};

/// The local floor of renewals and unpeeks: peeks keyed by their joined id strings.
pub type LocalKeyFloor = KeyFloor<LocalSide>;

/// The device and room numbers, counts and peeker lists of a local floor. Devices (by user
/// and device id) and rooms are numbered when first seen, in keyed SipHash maps (their names
/// come from clients). Each peek keeps its (device, room, place in the room's peeker list) by
/// its slot, so an unpeek or an expiry reaches them without hashing a name (as the machine
/// follows its peek's handles), and leaving a peeker list is a swap that re-points the peeker
/// moved into the freed place. Numbers are never freed (the machine frees a name when nothing
/// refers to it: a little more work than the floor's).
#[derive(Default, Clone)]
pub struct LocalSide {
    /// Devices by `user|device`.
    devices: Names,
    /// Rooms by id.
    rooms: Names,
    /// Live peeks per device number.
    device_live: Vec<u32>,
    /// Kept ended peeks per device number.
    device_ended: Vec<u32>,
    /// Kept ended peeks in the order they ended, as (slot, end position), for a collection
    /// once the retention (the same for all) is over: no workload runs one. An entry whose
    /// slot has not kept that end (peeked again) is stale: it would be skipped,
    /// and stale entries are dropped once they outnumber the kept ends (a revival does not
    /// search the queue; the machine's cancels a listed deadline).
    collect: Vec<(u32, u64)>,
    /// Kept ended peeks.
    ended: usize,
    /// Per room number: the slots of its live peeks.
    peekers: Vec<Vec<u32>>,
    /// Each slot's peek.
    of_slot: Vec<SlotPeek>,
    /// The stream position of the last change.
    position: u64,
    /// How often a room gained its first live peeker or lost its last.
    demand_changes: u64,
    /// Where a device's name (`user|device`) is written for its lookup.
    name: String,
}

/// What a [`LocalSide`] keeps of the peek in a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SlotPeek {
    dev: u32,
    room: u32,
    /// Its place in the room's `peekers` while it is live.
    place: u32,
    /// The stream position of its start (`/sync` tells a peek that started after `since`
    /// from one the device knew).
    started: u64,
    /// The stream position of its end, 0 while it is live.
    ended: u64,
    /// The hash its entry in [`LocalFloor::peeks`] was filed under (0 in [`LocalKeyFloor`]),
    /// so an expiry removes the entry without hashing again, as the machine does.
    hash: u64,
}

impl LocalSide {
    /// Writes device `(u, d)`'s name, `u|d`, into `self.name`.
    fn device_name(&mut self, u: &str, d: &str) {
        self.name.clear();
        self.name.push_str(u);
        self.name.push('|');
        self.name.push_str(d);
    }

    /// The (device, room) numbers of a peek, numbering either name when new.
    fn number(&mut self, u: &str, d: &str, r: &str) -> (u32, u32) {
        self.device_name(u, d);
        let (dev, new) = self.devices.number(&self.name);
        if new {
            self.device_live.push(0);
            self.device_ended.push(0);
        }
        let (room, new) = self.rooms.number(r);
        if new {
            self.peekers.push(Vec::new());
        }
        (dev, room)
    }

    /// The (device, room) numbers of a peek whose names are known.
    fn find(&mut self, u: &str, d: &str, r: &str) -> Option<(u32, u32)> {
        self.device_name(u, d);
        Some((self.devices.get(&self.name)?, self.rooms.get(r)?))
    }

    /// Counts the new peek in `slot`, of device `dev` on room `room`.
    fn count(&mut self, slot: u32, dev: u32, room: u32, hash: u64) {
        self.device_live[dev as usize] += 1;
        let list = &mut self.peekers[room as usize];
        if list.is_empty() {
            self.demand_changes += 1;
        }
        let place = list.len() as u32;
        list.push(slot);
        self.position += 1;
        let peek = SlotPeek { dev, room, place, started: self.position, ended: 0, hash };
        let i = slot as usize;
        if i >= self.of_slot.len() {
            self.of_slot.resize(i + 1, SlotPeek { ended: u64::MAX, ..peek });
        }
        self.of_slot[i] = peek;
    }

    /// Takes the ended peek in `slot` out of its device's count and its room's peekers.
    /// Returns the stream position of the end.
    fn uncount(&mut self, slot: u32) -> u64 {
        let SlotPeek { dev, room, place, .. } = self.of_slot[slot as usize];
        self.device_live[dev as usize] -= 1;
        let list = &mut self.peekers[room as usize];
        list.swap_remove(place as usize);
        if let Some(&moved) = list.get(place as usize) {
            self.of_slot[moved as usize].place = place;
        }
        if list.is_empty() {
            self.demand_changes += 1;
        }
        self.position += 1;
        self.position
    }

    /// Ends the live peek in `slot` and keeps it: out of the live counts, its end position
    /// kept, counted among its device's ended peeks and queued for collection.
    fn retain_end(&mut self, slot: u32) {
        let position = self.uncount(slot);
        let peek = &mut self.of_slot[slot as usize];
        peek.ended = position;
        self.device_ended[peek.dev as usize] += 1;
        self.ended += 1;
        self.collect.push((slot, position));
        if self.collect.len() > 2 * self.ended + 64 {
            let of_slot = &self.of_slot;
            self.collect.retain(|&(s, at)| of_slot[s as usize].ended == at);
        }
    }

    /// The kept ended peek in `slot` peeked again: live again under the numbers it had.
    fn revive(&mut self, slot: u32, hash: u64) {
        let SlotPeek { dev, room, .. } = self.of_slot[slot as usize];
        self.device_ended[dev as usize] -= 1;
        self.ended -= 1;
        self.count(slot, dev, room, hash);
    }

    /// Reads the names of the peek in `slot` (a store write of its end is keyed by them);
    /// returns their bytes, summed.
    fn read_names(&self, slot: u32) -> u64 {
        let SlotPeek { dev, room, .. } = self.of_slot[slot as usize];
        read_name(read_name(0, self.devices.name(dev)), self.rooms.name(room))
    }

    /// Checks every count and list against the `live` peeks' slots and the kept `ended`
    /// ones' (each of those queued for collection).
    fn check(&self, live: impl Iterator<Item = u32>, ended: impl Iterator<Item = u32>) {
        let mut device_ended = vec![0; self.device_ended.len()];
        let mut kept = 0;
        let queued: std::collections::HashSet<(u32, u64)> = self.collect.iter().copied().collect();
        for slot in ended {
            let SlotPeek { dev, started, ended, .. } = self.of_slot[slot as usize];
            assert!(ended > started, "local floor: slot {slot}'s end");
            assert!(queued.contains(&(slot, ended)), "local floor: end in slot {slot} not queued");
            device_ended[dev as usize] += 1;
            kept += 1;
        }
        assert_eq!(device_ended, self.device_ended, "local floor: per-device ended counts");
        assert_eq!(kept, self.ended, "local floor: kept ends");
        // A queued end its slot still keeps is one of the kept ends (counted above), once.
        let current = self.collect.iter().filter(|&&(s, at)| self.of_slot[s as usize].ended == at);
        assert_eq!(current.count(), kept, "local floor: queued ends");
        let mut device_live = vec![0; self.device_live.len()];
        let mut peekers = vec![Vec::new(); self.peekers.len()];
        for slot in live {
            // Tallied here, not through `count`, so that a slip there shows.
            let SlotPeek { dev, room, started, ended, .. } = self.of_slot[slot as usize];
            assert!(started > 0 && started <= self.position, "local floor: slot {slot}'s start");
            assert_eq!(ended, 0, "local floor: live slot {slot} ended");
            device_live[dev as usize] += 1;
            peekers[room as usize].push(slot);
        }
        assert_eq!(device_live, self.device_live, "local floor: per-device counts");
        // Each room's demand alternates gained, lost: an odd number of changes for a room with
        // live peekers, even for one without.
        let demanded = self.peekers.iter().filter(|list| !list.is_empty()).count() as u64;
        assert_eq!(self.demand_changes % 2, demanded % 2, "local floor: demand changes");
        for (room, list) in self.peekers.iter().enumerate() {
            for (place, slot) in list.iter().enumerate() {
                assert_eq!(
                    self.of_slot[*slot as usize].place as usize, place,
                    "local floor: place"
                );
            }
            let mut kept = list.clone();
            kept.sort_unstable();
            peekers[room].sort_unstable();
            assert_eq!(kept, peekers[room], "local floor: room {room}'s peekers");
        }
    }
}

/// The local floor whose peeks are keyed by their (device, room) numbers: each name is hashed
/// once per operation, then the peek by two numbers (std's keyed SipHash). Each slot keeps the
/// hash its entry was filed under, so an expiry removes the entry without hashing, as the
/// machine's slot index does. It serves the creates, the expiry workloads and the restore.
#[derive(Default, Clone)]
pub struct LocalFloor {
    side: LocalSide,
    /// The peeks; a kept ended one has the deadline [`ENDED`] (its side queues it for
    /// collection).
    peeks: HashTable<FloorPeek>,
    hasher: RandomState,
    by_time: BTreeSet<(Timestamp, u32)>,
    slots: Slots,
}

/// A peek in [`LocalFloor::peeks`].
#[derive(Clone, Copy, Debug)]
struct FloorPeek {
    /// (device, room) numbers.
    key: (u32, u32),
    at: Timestamp,
    slot: u32,
}

/// Whether an expiry keeps the ended peeks for `/sync` (the default retention: the machine's
/// `timeout_local_retained`) or forgets them at once (zero retention: `timeout_local`).
#[derive(Clone, Copy, Debug)]
pub enum Ended {
    Retained,
    Forgotten,
}

impl LocalFloor {
    /// The floor holding `items` (the last of a key wins), built as a restore would: the peek
    /// table sized once, each new peek counted as it is inserted, the deadline set built in
    /// bulk from the table (one sort and an O(n) tree build).
    pub fn bulk<'a>(n: usize, items: impl IntoIterator<Item = ([&'a str; 3], Timestamp)>) -> Self {
        let mut f = LocalFloor { peeks: HashTable::with_capacity(n), ..LocalFloor::default() };
        for ([u, d, r], at) in items {
            f.put(u, d, r, at);
        }
        f.by_time = f.peeks.iter().map(|p| (p.at, p.slot)).collect();
        f
    }

    /// Sets the deadline of the peek of device `(u, d)` on room `r`, adding and counting it
    /// when new (or when it had ended); returns its slot and its previous deadline (`None`
    /// when new). The deadline set is the caller's.
    fn put(&mut self, u: &str, d: &str, r: &str, at: Timestamp) -> (u32, Option<Timestamp>) {
        let key = self.side.number(u, d, r);
        let hash = self.hasher.hash_one(key);
        let hasher = &self.hasher;
        match self.peeks.entry(hash, |p| p.key == key, |p| hasher.hash_one(p.key)) {
            hash_table::Entry::Occupied(mut e) => {
                let peek = e.get_mut();
                if peek.at == ENDED {
                    // A kept end peeked again: a new live peek in the same slot.
                    peek.at = at;
                    let slot = peek.slot;
                    self.side.revive(slot, hash);
                    return (slot, None);
                }
                (peek.slot, Some(std::mem::replace(&mut peek.at, at)))
            }
            hash_table::Entry::Vacant(e) => {
                let slot = self.slots.take();
                e.insert(FloorPeek { key, at, slot });
                self.side.count(slot, key.0, key.1, hash);
                (slot, None)
            }
        }
    }

    /// Starts the peek of device `(u, d)` on room `r` due at `at`, or renews it (moves its
    /// deadline) when it is live.
    #[inline(never)]
    pub fn upsert(&mut self, u: &str, d: &str, r: &str, at: Timestamp) {
        let (slot, old) = self.put(u, d, r, at);
        file_deadline(&mut self.by_time, slot, old, at);
    }

    /// Ends the peek of device `(u, d)` on room `r` and keeps it for `/sync`, queued for
    /// collection; returns whether it was live.
    #[inline(never)]
    pub fn remove(&mut self, u: &str, d: &str, r: &str) -> bool {
        let Some(key) = self.side.find(u, d, r) else { return false };
        let hash = self.hasher.hash_one(key);
        let Some(peek) = self.peeks.find_mut(hash, |p| p.key == key) else { return false };
        if peek.at == ENDED {
            return false;
        }
        let (at, slot) = (std::mem::replace(&mut peek.at, ENDED), peek.slot);
        self.by_time.remove(&(at, slot));
        self.side.retain_end(slot);
        true
    }

    /// Ends the peek of device `(u, d)` on room `r` and collects it at once (the undo of a cold
    /// create: the machine's unpeek, then its `handle_timeout` at zero retention); returns
    /// whether it was live.
    pub fn forget(&mut self, u: &str, d: &str, r: &str) -> bool {
        let Some(key) = self.side.find(u, d, r) else { return false };
        let hash = self.hasher.hash_one(key);
        let Ok(e) = self.peeks.find_entry(hash, |p| p.key == key) else { return false };
        if e.get().at == ENDED {
            return false;
        }
        let (FloorPeek { at, slot, .. }, _) = e.remove();
        self.by_time.remove(&(at, slot));
        // Ended and collected in one go: out of the live counts, never kept.
        self.side.uncount(slot);
        self.slots.give(slot);
        true
    }

    /// Expires every peek due at `cutoff`; returns how many. Each end reads the peek's names
    /// (the store write of the end is keyed by them) and takes it out of the counts; a
    /// retained end marks its entry ended in place (with its end position in its slot) and
    /// queues it for collection, a forgotten one removes it. The entry is found by the hash
    /// its slot keeps: no hashing.
    #[inline(never)]
    pub fn expire(&mut self, cutoff: Timestamp, ended: Ended) -> usize {
        let mut due = 0;
        let mut names = 0u64;
        while let Some(&(at, slot)) = self.by_time.first() {
            if at > cutoff {
                break;
            }
            self.by_time.pop_first();
            let hash = self.side.of_slot[slot as usize].hash;
            names = names.wrapping_add(self.side.read_names(slot));
            let entry = self.peeks.find_entry(hash, |p| p.slot == slot).expect("a live peek");
            match ended {
                Ended::Retained => {
                    entry.into_mut().at = ENDED;
                    self.side.retain_end(slot);
                }
                Ended::Forgotten => {
                    self.side.uncount(slot);
                    black_box(entry.remove());
                    self.slots.give(slot);
                }
            }
            due += 1;
        }
        black_box(names);
        due
    }

    /// Checks that the floor holds `n` live peeks and that every count and list is what its
    /// live peeks (and its kept ended ones) make it.
    pub fn check(&self, n: usize) {
        let live = || self.peeks.iter().filter(|p| p.at != ENDED);
        assert_eq!(live().count(), n, "local floor: live peeks");
        assert_eq!(self.by_time.len(), n, "local floor: deadlines");
        for p in self.peeks.iter() {
            let peek = self.side.of_slot[p.slot as usize];
            let slot = p.slot;
            assert_eq!((peek.dev, peek.room), p.key, "local floor: slot {slot}'s device and room");
            assert_eq!(peek.hash, self.hasher.hash_one(p.key), "local floor: slot {slot}'s hash");
            if p.at != ENDED {
                assert!(
                    self.by_time.contains(&(p.at, slot)),
                    "local floor: slot {slot}'s deadline"
                );
            }
        }
        let ended = self.peeks.iter().filter(|p| p.at == ENDED).map(|p| p.slot);
        self.side.check(live().map(|p| p.slot), ended);
    }
}

impl Side for LocalSide {
    /// The local machine keeps an ended entry for `/sync` until it is collected.
    const RETAINS: bool = true;
    fn add(&mut self, slot: u32, [u, d, r]: [&str; 3]) {
        let (dev, room) = self.number(u, d, r);
        self.count(slot, dev, room, 0);
    }
    fn end(&mut self, slot: u32) {
        self.uncount(slot);
    }
    fn retain_end(&mut self, slot: u32) {
        LocalSide::retain_end(self, slot);
    }
    fn revive(&mut self, slot: u32) {
        LocalSide::revive(self, slot, 0);
    }
    fn check_slots(
        &self,
        live: &mut dyn Iterator<Item = u32>,
        ended: &mut dyn Iterator<Item = u32>,
    ) {
        self.check(live, ended);
    }
}
