//! [`LocalFloor`]: the floor of the local per-op workloads, of local expiry and of a local
//! restore.

use std::collections::HashMap;
use std::hint::black_box;

use matrix_peek::Timestamp;

use crate::support::Floor;

/// The least a correct local tracker keeps and does: [`Floor`]'s key map and deadline set,
/// plus what it must keep beside them and update on every peek, unpeek and expiry, as the
/// machine does:
///
/// * each device's count of live peeks (the cap `max_peeks_per_device`, docs/architecture.md
///   §4);
/// * each room's live peekers, for `peekers(room)` in O(result), and so the room's demand:
///   its first live peeker and its last (§4.4);
/// * a stream position per change, for `/sync` (§4.3).
///
/// Keyed SipHash maps, as [`Floor`]. Devices (by user and device id) and rooms are numbered
/// when first seen, and each peek keeps its (device, room, place in the room's peeker list)
/// by its slot, so an unpeek or an expiry reaches them without hashing a name (as the
/// machine follows its peek's handles), and leaving a peeker list is a swap that re-points
/// the peeker moved into the freed place. Numbers are never freed (the machine frees a name
/// when nothing refers to it: a little more work than the floor's). A renewal touches only the
/// key map and the deadlines ([`Floor::upsert`]), as the machine's moves only its lease.
///
/// What it does not do, though the machine does: keep an ended peek's entry for `/sync` until
/// it is collected, and write outputs (`Persist`, `Wake`, `PeekEnded`, `RoomDemand`). Ratios
/// against it are still upper bounds, by that much.
#[derive(Default, Clone)]
pub struct LocalFloor {
    pub keys: Floor,
    devices: HashMap<Box<str>, u32>,
    rooms: HashMap<Box<str>, u32>,
    /// Live peeks per device number.
    device_live: Vec<u32>,
    /// Per room number: the key slots of its live peeks.
    peekers: Vec<Vec<u32>>,
    /// (device, room, place in the room's `peekers`) by key slot.
    of_slot: Vec<(u32, u32, u32)>,
    /// The stream position of the last change.
    position: u64,
    /// How often a room gained its first live peeker or lost its last.
    demand_changes: u64,
    /// Where a device's name (`user|device`) is written for its lookup.
    name: String,
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

impl LocalFloor {
    /// The floor holding `items` (the last of a key wins), built as a restore would: the key
    /// map sized once, each new key counted as it is inserted, the deadline set built in
    /// bulk from the map ([`Floor::bulk`]'s technique).
    pub fn bulk<'a>(n: usize, items: impl IntoIterator<Item = ([&'a str; 3], Timestamp)>) -> Self {
        let mut f = LocalFloor::default();
        f.keys.map = HashMap::with_capacity(n);
        let mut buf = String::new();
        for ([u, d, r], at) in items {
            Floor::key(&mut buf, u, d, r);
            if let Some((old, _)) = f.keys.map.get_mut(buf.as_str()) {
                *old = at;
            } else {
                let slot = f.keys.next;
                f.keys.map.insert(buf.as_str().into(), (at, slot));
                f.keys.next += 1;
                f.count(slot, u, d, r);
            }
        }
        f.keys.by_time = f.keys.map.values().copied().collect();
        f
    }

    /// Starts (or renews) the peek of device `(u, d)` on room `r`, due at `at`.
    #[inline(never)]
    pub fn create(&mut self, u: &str, d: &str, r: &str, at: Timestamp) {
        if let Some(slot) = self.keys.upsert(u, d, r, at) {
            self.count(slot, u, d, r);
        }
    }

    /// Counts the new peek in `slot`.
    fn count(&mut self, slot: u32, u: &str, d: &str, r: &str) {
        self.name.clear();
        self.name.push_str(u);
        self.name.push('|');
        self.name.push_str(d);
        let (dev, new) = number(&mut self.devices, &self.name, self.device_live.len());
        if new {
            self.device_live.push(0);
        }
        self.device_live[dev as usize] += 1;
        let (room, new) = number(&mut self.rooms, r, self.peekers.len());
        if new {
            self.peekers.push(Vec::new());
        }
        let list = &mut self.peekers[room as usize];
        if list.is_empty() {
            self.demand_changes += 1;
        }
        let place = list.len() as u32;
        list.push(slot);
        let i = slot as usize;
        if i >= self.of_slot.len() {
            self.of_slot.resize(i + 1, (u32::MAX, u32::MAX, u32::MAX));
        }
        self.of_slot[i] = (dev, room, place);
        self.position += 1;
    }

    /// Ends the peek of device `(u, d)` on room `r`; returns whether it was live.
    #[inline(never)]
    pub fn remove(&mut self, u: &str, d: &str, r: &str) -> bool {
        let Some(slot) = self.keys.remove_slot(u, d, r) else { return false };
        self.uncount(slot);
        true
    }

    /// Takes the ended peek in `slot` out of its device's count and its room's peekers.
    fn uncount(&mut self, slot: u32) {
        let (dev, room, place) = self.of_slot[slot as usize];
        self.device_live[dev as usize] -= 1;
        let list = &mut self.peekers[room as usize];
        list.swap_remove(place as usize);
        if let Some(&moved) = list.get(place as usize) {
            self.of_slot[moved as usize].2 = place;
        }
        if list.is_empty() {
            self.demand_changes += 1;
        }
        self.position += 1;
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

    /// Checks that the floor holds `n` live peeks and that every count and list is what its
    /// live keys make it.
    pub fn check(&self, n: usize) {
        assert_eq!(self.keys.map.len(), n, "local floor: live peeks");
        assert_eq!(self.keys.by_time.len(), n, "local floor: deadlines");
        let mut device_live = vec![0; self.device_live.len()];
        let mut peekers = vec![Vec::new(); self.peekers.len()];
        for (_, slot) in self.keys.map.values() {
            // Tallied here, not through `count`, so that a slip there shows.
            let (dev, room, _) = self.of_slot[*slot as usize];
            device_live[dev as usize] += 1;
            peekers[room as usize].push(*slot);
        }
        assert_eq!(device_live, self.device_live, "local floor: per-device counts");
        for (room, list) in self.peekers.iter().enumerate() {
            for (place, slot) in list.iter().enumerate() {
                assert_eq!(self.of_slot[*slot as usize].2 as usize, place, "local floor: place");
            }
            let mut kept = list.clone();
            kept.sort_unstable();
            peekers[room].sort_unstable();
            assert_eq!(kept, peekers[room], "local floor: room {room}'s peekers");
        }
    }
}
