//! The floors of an outbound create and unpeek: the least a host that peeks rooms over
//! federation keeps and does, in two layouts ([`RoomKeyed`], [`SlotKeyed`]); the bench measures
//! each op against the cheaper (BENCHMARKS.md, part 2, eighth step, has the counts).
//!
//! Both keep, per room under its id (keyed SipHash, as [`Floor`](crate::support::Floor)),
//! what the peek is renewed and deleted through, the resident's name (an owned copy) and the
//! peek id (8 bytes inline), and the renewal deadline once the resident granted the peek (also
//! in a `BTreeSet`).
//!
//! A create is two steps, as the machine's is: [`open`](OutboundFloor::open) names a fresh peek
//! id from a counter and reads every byte of the names its `PUT` is built from (room,
//! resident, peek id); [`answer`](OutboundFloor::answer) takes the resident's grant, finds the
//! room again, checks what the answer says of the room (peekable, in a room version the
//! machine's defaults support: a host must not serve a peek of a room it cannot read), turns the
//! granted interval into a renewal deadline (half of it, clamped as the machine's defaults
//! clamp it) and files it; a room that fails the check is forgotten. A host learns the lease
//! only from the answer, so no floor can file the deadline in the first step. A remove forgets
//! the room and reads the names of its `DELETE`, whose answer changes nothing a floor keeps.
//!
//! The two layouts differ in how an answer finds its room:
//! * [`RoomKeyed`] keeps the entries in the map; the answer looks the room id up again (the
//!   request's context is the room id, which the request was built from anyway);
//! * [`SlotKeyed`] keeps them in a slab, the map holding slot numbers; the request's context is
//!   the slot, so the answer reaches its entry without hashing, and a create writes the slab
//!   besides the map.
//!
//! A create hashes the room id twice on [`RoomKeyed`] (to open, and in the answer's lookup) and
//! once on [`SlotKeyed`] (the map's entry API), as the machine's create does. An answer for a
//! peek its room or slot no longer holds is ignored, as the machine ignores one whose request
//! its room no longer names.

use std::collections::{BTreeSet, HashMap, hash_map};
use std::time::Duration;

use matrix_peek::{RoomAccess, Timestamp};
use ruma_common::RoomVersionId;

use crate::Churn;
use crate::outbound::Key;
use crate::support::*;

/// What a request's answer is matched to its room by: the room id ([`RoomKeyed`]) or the slot
/// ([`SlotKeyed`]).
pub trait OutboundFloor: Churn<Key> + Default {
    /// What [`open`](Self::open) hands the request, for its answer (besides the room id).
    type Token;
    /// Opens (or re-opens) `room`'s peek at `resident`: its `PUT` is in flight. Returns what
    /// the answer needs and the bytes of the `PUT`'s names, summed.
    fn open(&mut self, room: &str, resident: &str) -> (Self::Token, u64);
    /// The resident granted `room`'s peek, opened as `token`, for `interval` at `now`, and
    /// told `access`: files the renewal deadline, or forgets the room when `access` does not
    /// [admit](admits) a peek.
    #[inline(never)]
    fn answer(
        &mut self,
        room: &str,
        token: Self::Token,
        now: u64,
        interval: Duration,
        access: &RoomAccess,
    ) {
        if admits(access) {
            self.grant(room, token, renew_at(now, interval));
        } else {
            std::hint::black_box(self.close(room));
        }
    }
    /// Files `room`'s renewal deadline `at` for its peek opened as `token`. An answer for a
    /// peek the room (or slot) no longer holds is ignored, as the machine ignores one whose
    /// request its room no longer names.
    fn grant(&mut self, room: &str, token: Self::Token, at: Timestamp);
    /// Forgets `room`'s peek; returns the bytes of the names its `DELETE` is built from (room,
    /// resident, peek id), summed, or `None` when the room had no peek.
    fn close(&mut self, room: &str) -> Option<u64>;
    /// Checks that the floor holds `n` rooms, each with its deadline filed once.
    fn check(&self, n: usize);
}

/// The machine's defaults as the bench configures them: renew after half the granted interval,
/// at least 1 ms, at most [`LONG`].
fn renew_at(now: u64, interval: Duration) -> Timestamp {
    let half = u64::try_from(interval.as_millis() / 2).unwrap_or(u64::MAX);
    ts(now).saturating_add(Duration::from_millis(half.clamp(1, LONG.as_millis() as u64)))
}

/// Whether a granted peek of a room with `access` can serve: the room is peekable and its
/// version one the machine's defaults support (every stable version), as the machine checks
/// every `PUT`'s answer. The versions are spelt out (one match, as cheap as the machine's
/// bit set); [`bench_access`] checks them against `OutboundConfig::default()`.
fn admits(access: &RoomAccess) -> bool {
    use RoomVersionId::*;
    access.is_peekable()
        && matches!(
            access.room_version,
            V1 | V2 | V3 | V4 | V5 | V6 | V7 | V8 | V9 | V10 | V11 | V12
        )
}

/// What the resident's answers tell of every room (the bench's), once [`admits`] is checked
/// to admit exactly the versions the machine's defaults support, so the two cannot drift.
fn bench_access() -> RoomAccess {
    let access = crate::access();
    let supported = matrix_peek::OutboundConfig::default().supported_versions;
    let with = |room_version: RoomVersionId| RoomAccess { room_version, ..access.clone() };
    for v in &supported {
        assert!(admits(&with(v.clone())), "outbound floor: {v} supported but not admitted");
    }
    let unknown = RoomVersionId::try_from("org.example.unstable").expect("a version id");
    assert!(!admits(&with(unknown)), "outbound floor: an unsupported version admitted");
    assert_eq!(supported.len(), 12, "outbound floor: the machine's default versions changed");
    access
}

/// Peek id number `n` (8 characters of [`PEEK_ID_CHARS`], as the machine spells its ids) and
/// the bytes of the `PUT`'s names, summed ([`read_request`]).
fn name_put(n: u32, room: &str, resident: &str) -> ([u8; 8], u64) {
    let mut peek_id = [0u8; 8];
    for (i, b) in peek_id.iter_mut().rev().enumerate() {
        *b = PEEK_ID_CHARS[((u64::from(n) >> (6 * i)) & 63) as usize];
    }
    (peek_id, read_request(room, resident, &peek_id))
}

/// The bytes of the names a request is built from (room, resident, peek id), summed.
fn read_request(room: &str, resident: &str, peek_id: &[u8; 8]) -> u64 {
    read_bytes(read_name(read_name(0, room), resident), peek_id)
}

/// Where a room's peek stands: its `PUT` unanswered, or granted with a renewal deadline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lease {
    Asked,
    Due(Timestamp),
}

/// One room of a floor.
struct Entry {
    lease: Lease,
    /// Which peek of the room this is (the counter its id is named from): an answer for an
    /// earlier peek of the room, or of the slot's earlier room, is told apart by it.
    serial: u32,
    resident: Box<str>,
    peek_id: [u8; 8],
}

/// Deadlines, each with what tells equal ones apart and finds the room when it falls due: the
/// peek's serial ([`RoomKeyed`]) or its slot ([`SlotKeyed`]).
type ByTime = BTreeSet<(Timestamp, u32)>;

impl Entry {
    fn new(serial: u32, resident: &str, peek_id: [u8; 8]) -> Self {
        Entry { lease: Lease::Asked, serial, resident: resident.into(), peek_id }
    }

    /// Takes the entry's deadline, filed under `tie`, out of `by_time`.
    fn unfile(&self, tie: u32, by_time: &mut ByTime) {
        if let Lease::Due(at) = self.lease {
            by_time.remove(&(at, tie));
        }
    }

    /// Grants the entry until `at`, filed in `by_time` under `tie`.
    fn grant(&mut self, at: Timestamp, tie: u32, by_time: &mut ByTime) {
        self.unfile(tie, by_time);
        self.lease = Lease::Due(at);
        by_time.insert((at, tie));
    }
}

/// Checks `n` entries, each (with the tie it is filed under) granted and its deadline in
/// `by_time`, and nothing else there.
fn check_entries<'a>(entries: impl Iterator<Item = (u32, &'a Entry)>, by_time: &ByTime, n: usize) {
    let mut seen = 0;
    for (tie, e) in entries {
        let Lease::Due(at) = e.lease else { panic!("outbound floor: a room left unanswered") };
        assert!(by_time.contains(&(at, tie)), "outbound floor: a deadline not filed");
        seen += 1;
    }
    assert_eq!(seen, n, "outbound floor: rooms");
    assert_eq!(by_time.len(), n, "outbound floor: deadlines");
}

/// Entries in the map under the room id; an answer looks the room up again. Deadlines are
/// filed under the peek's serial (finding the room of a due deadline is not part of a create
/// or an unpeek, so this layout keeps no serial → room map: a little less than a host keeps).
pub struct RoomKeyed {
    map: HashMap<Box<str>, Entry>,
    by_time: ByTime,
    next: u32,
    /// What the resident's answers tell of every room (the bench's).
    access: RoomAccess,
}

impl Default for RoomKeyed {
    fn default() -> Self {
        RoomKeyed {
            map: HashMap::default(),
            by_time: ByTime::new(),
            next: 0,
            access: bench_access(),
        }
    }
}

impl OutboundFloor for RoomKeyed {
    /// The peek's serial.
    type Token = u32;

    #[inline(never)]
    fn open(&mut self, room: &str, resident: &str) -> (u32, u64) {
        let serial = self.next;
        self.next += 1;
        let (peek_id, read) = name_put(serial, room, resident);
        if let Some(old) = self.map.insert(room.into(), Entry::new(serial, resident, peek_id)) {
            old.unfile(old.serial, &mut self.by_time);
        }
        (serial, read)
    }

    fn grant(&mut self, room: &str, serial: u32, at: Timestamp) {
        if let Some(e) = self.map.get_mut(room).filter(|e| e.serial == serial) {
            e.grant(at, serial, &mut self.by_time);
        }
    }

    #[inline(never)]
    fn close(&mut self, room: &str) -> Option<u64> {
        let e = self.map.remove(room)?;
        e.unfile(e.serial, &mut self.by_time);
        Some(read_request(room, &e.resident, &e.peek_id))
    }

    fn check(&self, n: usize) {
        check_entries(self.map.values().map(|e| (e.serial, e)), &self.by_time, n);
    }
}

/// Entries in a slab, the map holding their slots; an answer reaches its entry by slot, and a
/// due deadline (filed under the slot) its room.
pub struct SlotKeyed {
    map: HashMap<Box<str>, u32>,
    slots: Vec<Option<Entry>>,
    /// Slot numbers: freed ones are taken again first (as the machine's slab does).
    numbers: Slots,
    by_time: ByTime,
    next: u32,
    /// What the resident's answers tell of every room (the bench's).
    access: RoomAccess,
}

impl Default for SlotKeyed {
    fn default() -> Self {
        SlotKeyed {
            map: HashMap::default(),
            slots: Vec::new(),
            numbers: Slots::default(),
            by_time: ByTime::new(),
            next: 0,
            access: bench_access(),
        }
    }
}

impl OutboundFloor for SlotKeyed {
    /// The slot and the peek's serial.
    type Token = (u32, u32);

    #[inline(never)]
    fn open(&mut self, room: &str, resident: &str) -> ((u32, u32), u64) {
        let serial = self.next;
        self.next += 1;
        let (peek_id, read) = name_put(serial, room, resident);
        let entry = Entry::new(serial, resident, peek_id);
        // One hash of the room: the key is copied before the lookup, as a new room needs it.
        let slot = match self.map.entry(room.into()) {
            hash_map::Entry::Occupied(o) => {
                let slot = *o.get();
                let old = self.slots[slot as usize].replace(entry).expect("a live slot");
                old.unfile(slot, &mut self.by_time);
                slot
            }
            hash_map::Entry::Vacant(v) => {
                let slot = self.numbers.take();
                match self.slots.get_mut(slot as usize) {
                    Some(free) => *free = Some(entry),
                    None => {
                        debug_assert_eq!(slot as usize, self.slots.len(), "slots taken in order");
                        self.slots.push(Some(entry));
                    }
                }
                *v.insert(slot)
            }
        };
        ((slot, serial), read)
    }

    fn grant(&mut self, _room: &str, (slot, serial): (u32, u32), at: Timestamp) {
        let live = self.slots.get_mut(slot as usize).and_then(Option::as_mut);
        if let Some(e) = live.filter(|e| e.serial == serial) {
            e.grant(at, slot, &mut self.by_time);
        }
    }

    #[inline(never)]
    fn close(&mut self, room: &str) -> Option<u64> {
        let slot = self.map.remove(room)?;
        let e = self.slots[slot as usize].take().expect("a live slot");
        self.numbers.give(slot);
        e.unfile(slot, &mut self.by_time);
        Some(read_request(room, &e.resident, &e.peek_id))
    }

    fn check(&self, n: usize) {
        assert_eq!(self.map.len(), n, "outbound floor: indexed rooms");
        let mut indexed = vec![false; self.slots.len()];
        for &slot in self.map.values() {
            assert!(self.slots[slot as usize].is_some(), "outbound floor: an indexed slot empty");
            assert!(!std::mem::replace(&mut indexed[slot as usize], true), "a slot indexed twice");
        }
        for &slot in self.numbers.freed() {
            assert!(self.slots[slot as usize].is_none(), "outbound floor: a free slot in use");
        }
        let live = self.slots.iter().enumerate().filter_map(|(i, e)| Some((i as u32, e.as_ref()?)));
        check_entries(live, &self.by_time, n);
    }
}

/// A create on either floor: the `PUT`, then its answer granting `2 × LONG` and telling
/// `access`, both at `now` (as the machine's bench answers at once). The ids are the bench's.
fn create<F: OutboundFloor>(f: &mut F, (r, [via]): &Key, now: u64, access: &RoomAccess) {
    let (token, read) = f.open(r.as_str(), via.as_str());
    std::hint::black_box(read);
    f.answer(r.as_str(), token, now, 2 * LONG, access);
}

impl Churn<Key> for RoomKeyed {
    fn create(&mut self, key: &Key, now: u64) {
        // An owned copy, as the machine's host hands one to `handle_response` per answer.
        let access = self.access.clone();
        create(self, key, now, &access);
    }
    fn remove(&mut self, (r, _): &Key, _now: u64) {
        std::hint::black_box(self.close(r.as_str()));
    }
}

impl Churn<Key> for SlotKeyed {
    fn create(&mut self, key: &Key, now: u64) {
        // An owned copy, as the machine's host hands one to `handle_response` per answer.
        let access = self.access.clone();
        create(self, key, now, &access);
    }
    fn remove(&mut self, (r, _): &Key, _now: u64) {
        std::hint::black_box(self.close(r.as_str()));
    }
}
