//! [`KeyFloor`]: the floor of the inbound and local renewals and unpeeks, whose peeks are
//! keyed by their joined id strings ([`Floor`]), over a machine's side tables ([`Side`]:
//! [`InboundSide`](crate::inbound_floor::InboundSide) or
//! [`LocalSide`](crate::local_floor::LocalSide)).
//!
//! A renewal hashes the key once and touches nothing else ([`Floor::upsert`]); an unpeek
//! hashes it once and reaches the counts by its slot. A create numbers the names besides.
//! Why renewals and unpeeks use this keying and creates the numbered one: `inbound_floor`
//! and `local_floor`.

use std::collections::HashMap;

use matrix_peek::Timestamp;

use crate::support::Floor;

/// The counts and lists a floor keeps beside its peeks, by slot.
pub trait Side: Default + Clone {
    /// Numbers the names of the new peek in `slot` (`[a, b, c]` as the key joins them) and
    /// counts it.
    fn add(&mut self, slot: u32, names: [&str; 3]);
    /// Takes the ended peek in `slot` out of the counts.
    fn end(&mut self, slot: u32);
    /// Checks every count against the live peeks' `slots`.
    fn check_slots(&self, slots: &mut dyn Iterator<Item = u32>);
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
        let mut f = KeyFloor::<S>::default();
        f.keys.map = HashMap::with_capacity(n);
        let mut key = String::new();
        for ([a, b, c], at) in items {
            Floor::key(&mut key, a, b, c);
            if let Some((old, _)) = f.keys.map.get_mut(key.as_str()) {
                *old = at;
            } else {
                let slot = f.keys.slots.take();
                f.keys.map.insert(key.as_str().into(), (at, slot));
                f.side.add(slot, [a, b, c]);
            }
        }
        f.keys.by_time = f.keys.map.values().copied().collect();
        f
    }

    /// Starts the peek `(a, b, c)` due at `at`, or renews it.
    #[inline(never)]
    pub fn upsert(&mut self, a: &str, b: &str, c: &str, at: Timestamp) {
        if let Some(slot) = self.keys.upsert(a, b, c, at) {
            self.side.add(slot, [a, b, c]);
        }
    }

    /// Renews the live peek `(a, b, c)`: only its deadline moves.
    #[inline(never)]
    pub fn renew(&mut self, a: &str, b: &str, c: &str, at: Timestamp) {
        let new = self.keys.upsert(a, b, c, at);
        debug_assert!(new.is_none(), "a renewal names a live peek");
    }

    /// Ends the peek `(a, b, c)`; returns whether it was live.
    #[inline(never)]
    pub fn remove(&mut self, a: &str, b: &str, c: &str) -> bool {
        let Some(slot) = self.keys.remove_slot(a, b, c) else { return false };
        self.side.end(slot);
        true
    }

    /// Checks that the floor holds `n` live peeks and that every count is what its live peeks
    /// make it.
    pub fn check(&self, n: usize) {
        assert_eq!(self.keys.map.len(), n, "key floor: live peeks");
        assert_eq!(self.keys.by_time.len(), n, "key floor: deadlines");
        for &(at, slot) in self.keys.map.values() {
            assert!(self.keys.by_time.contains(&(at, slot)), "key floor: slot {slot}'s deadline");
        }
        self.side.check_slots(&mut self.keys.map.values().map(|&(_, slot)| slot));
    }
}
