//! [`KeyFloor`]: the floor of the inbound and local renewals and unpeeks, whose peeks are
//! keyed by their joined id strings ([`Floor`]), over a machine's side tables ([`Side`]:
//! [`InboundSide`](crate::inbound_floor::InboundSide) or
//! [`LocalSide`](crate::local_floor::LocalSide)).
//!
//! A renewal hashes the key once and touches nothing else ([`Floor::upsert`]); an unpeek
//! hashes it once and reaches the counts by its slot. A create numbers the names besides. A
//! side that keeps ended peeks ([`Side::RETAINS`]: the local one, as the machine keeps an
//! ended entry for `/sync`) has an unpeek mark the entry ended ([`Floor::end`]) and queue it
//! for collection, and a create of an ended key revive it.
//! Why renewals and unpeeks use this keying and creates the numbered one: `inbound_floor`
//! and `local_floor`.

use matrix_peek::Timestamp;

use crate::support::{ENDED, Floor, Upserted};

/// The counts and lists a floor keeps beside its peeks, by slot.
pub trait Side: Default + Clone {
    /// Whether an ended peek is kept (for `/sync`, until collected) rather than forgotten.
    const RETAINS: bool;
    /// Numbers the names of the new peek in `slot` (`[a, b, c]` as the key joins them) and
    /// counts it.
    fn add(&mut self, slot: u32, names: [&str; 3]);
    /// Takes the ended peek in `slot` out of the counts.
    fn end(&mut self, slot: u32);
    /// Takes the ended peek in `slot` out of the live counts and keeps it, queued for its
    /// collection (only when [`RETAINS`](Self::RETAINS)).
    fn retain_end(&mut self, slot: u32);
    /// The kept ended peek in `slot` peeked again: counted live again, with the names it had
    /// (only when [`RETAINS`](Self::RETAINS)).
    fn revive(&mut self, slot: u32);
    /// Checks every count against the `live` peeks' slots and the kept `ended` ones'.
    fn check_slots(
        &self,
        live: &mut dyn Iterator<Item = u32>,
        ended: &mut dyn Iterator<Item = u32>,
    );
}

/// Peeks keyed by their joined id strings, with a [`Side`]'s counts beside them.
#[derive(Default, Clone)]
pub struct KeyFloor<S> {
    side: S,
    keys: Floor,
}

impl<S: Side> KeyFloor<S> {
    /// The floor holding `items` (the last of a key wins), built as a restore would: the key
    /// map sized once, each new key counted as it is inserted, the deadline set built in bulk
    /// from the map (one sort and an O(n) tree build).
    pub fn bulk<'a>(n: usize, items: impl IntoIterator<Item = ([&'a str; 3], Timestamp)>) -> Self {
        let mut f = KeyFloor::<S> { keys: Floor::with_capacity(n), ..KeyFloor::default() };
        for ([a, b, c], at) in items {
            if let Some(slot) = f.keys.put(a, b, c, at) {
                f.side.add(slot, [a, b, c]);
            }
        }
        f.keys.by_time = f.keys.entries().collect();
        f
    }

    /// Starts the peek `(a, b, c)` due at `at` (reviving it if it ended and is kept), or
    /// renews it.
    #[inline(never)]
    pub fn upsert(&mut self, a: &str, b: &str, c: &str, at: Timestamp) {
        match self.keys.upsert(a, b, c, at) {
            Upserted::New(slot) => self.side.add(slot, [a, b, c]),
            Upserted::Revived(slot) => self.side.revive(slot),
            Upserted::Moved => {}
        }
    }

    /// Renews the live peek `(a, b, c)`: only its deadline moves.
    #[inline(never)]
    pub fn renew(&mut self, a: &str, b: &str, c: &str, at: Timestamp) {
        let done = self.keys.upsert(a, b, c, at);
        debug_assert_eq!(done, Upserted::Moved, "a renewal names a live peek");
    }

    /// Ends the peek `(a, b, c)`, keeping it when the side [retains](Side::RETAINS) ended
    /// peeks; returns whether it was live.
    #[inline(never)]
    pub fn remove(&mut self, a: &str, b: &str, c: &str) -> bool {
        if S::RETAINS {
            let Some(slot) = self.keys.end(a, b, c) else { return false };
            self.side.retain_end(slot);
        } else {
            let Some(slot) = self.keys.remove_slot(a, b, c) else { return false };
            self.side.end(slot);
        }
        true
    }

    /// Checks that the floor holds `n` live peeks and that every count is what its live peeks
    /// (and its kept ended ones) make it.
    pub fn check(&self, n: usize) {
        let entries = || self.keys.entries();
        let live = || entries().filter(|&(at, _)| at != ENDED);
        assert_eq!(live().count(), n, "key floor: live peeks");
        assert_eq!(self.keys.by_time.len(), n, "key floor: deadlines");
        for (at, slot) in live() {
            assert!(self.keys.by_time.contains(&(at, slot)), "key floor: slot {slot}'s deadline");
        }
        assert!(S::RETAINS || live().count() == entries().count(), "key floor: an end kept");
        let mut ended = entries().filter(|&(at, _)| at == ENDED).map(|(_, slot)| slot);
        self.side.check_slots(&mut live().map(|(_, slot)| slot), &mut ended);
    }
}
