//! [`SlotIndex`]: a hash index of the values of a [`Slab`], keyed by something each value
//! holds (a name) and hashed by the caller.
//!
//! The table holds bare slot numbers. Each value keeps its own hash ([`Hashed`]), so a key is
//! stored once, in its slot; a probe compares the stored hash before the key; and a growing
//! table re-hashes nothing (it reads the slots' hashes). Removing needs only the hash and the
//! slot number, so it also works once the slot is gone. Used by the name indexes of the machines
//! (local devices and rooms, inbound peeks and interned names, outbound rooms); the local
//! user → devices index, whose entries are lists, is a plain table. The hash function is the caller's: a
//! keyed one (std's SipHash with per-machine keys) wherever the key comes from remote input:
//! [`keyed_hash`] for a key of one name, `hash_one` of a tuple for a key of several.

use std::hash::{BuildHasher, Hasher, RandomState};

use hashbrown::HashTable;
use hashbrown::hash_table::{Entry, VacantEntry};

use crate::slab::Slab;

/// The keyed SipHash of one string key under `state` (per-machine random keys): its bytes in
/// one write. `hash_one` of a `str` adds a separator byte in a second write, which matters only
/// when several fields are hashed together (keys of several names keep `hash_one` of a tuple);
/// for one name alone it only cost about 65 instructions per hash.
#[inline]
pub(crate) fn keyed_hash(state: &RandomState, key: &str) -> u64 {
    let mut h = state.build_hasher();
    h.write(key.as_bytes());
    h.finish()
}

/// A value that keeps the hash it is indexed under.
pub(crate) trait Hashed {
    /// The hash this value was indexed under (set before [`SlotIndex::insert`]).
    fn stored_hash(&self) -> u64;
}

/// Slot numbers of a [`Slab`], by the hash their values keep.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotIndex {
    table: HashTable<u32>,
}

fn stored<T: Hashed>(slots: &Slab<T>, slot: u32) -> u64 {
    slots.get(slot).map_or(0, Hashed::stored_hash)
}

impl SlotIndex {
    /// The slot whose value has hash `hash` and for which `is_key` holds.
    pub(crate) fn find<T: Hashed>(
        &self,
        slots: &Slab<T>,
        hash: u64,
        mut is_key: impl FnMut(&T) -> bool,
    ) -> Option<u32> {
        let matches = |&s: &u32| slots.get(s).is_some_and(|v| v.stored_hash() == hash && is_key(v));
        self.table.find(hash, matches).copied()
    }

    /// The slot whose value has hash `hash` and for which `is_key` holds, or where such a value
    /// goes: one probe of the table for both, where [`find`](Self::find) and then
    /// [`insert`](Self::insert) probe twice. The table makes room for one more slot first.
    pub(crate) fn entry<T: Hashed>(
        &mut self,
        slots: &Slab<T>,
        hash: u64,
        mut is_key: impl FnMut(&T) -> bool,
    ) -> Result<u32, Vacant<'_>> {
        let matches = |&s: &u32| slots.get(s).is_some_and(|v| v.stored_hash() == hash && is_key(v));
        match self.table.entry(hash, matches, |&s| stored(slots, s)) {
            Entry::Occupied(e) => Ok(*e.get()),
            Entry::Vacant(entry) => Err(Vacant { entry }),
        }
    }

    /// Indexes `slot`, whose value (already in `slots`, its hash stored) is not indexed yet.
    pub(crate) fn insert<T: Hashed>(&mut self, slots: &Slab<T>, slot: u32) {
        self.table.insert_unique(stored(slots, slot), slot, |&s| stored(slots, s));
    }

    /// Makes room for `additional` more slots (bulk loading).
    pub(crate) fn reserve<T: Hashed>(&mut self, slots: &Slab<T>, additional: usize) {
        self.table.reserve(additional, |&s| stored(slots, s));
    }

    /// Forgets `slot`, whose value was indexed under `hash` (the slot may be gone already).
    pub(crate) fn remove(&mut self, hash: u64, slot: u32) {
        if let Ok(entry) = self.table.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
    }

    /// Slots indexed.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// No slot is indexed.
    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// Where a key that [`SlotIndex::entry`] did not find goes. Dropping it indexes nothing.
pub(crate) struct Vacant<'a> {
    entry: VacantEntry<'a, u32>,
}

impl Vacant<'_> {
    /// Indexes `slot`, whose value holds the key and hash this entry was looked up with.
    pub(crate) fn insert(self, slot: u32) {
        self.entry.insert(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashes_agree_for_one_key_and_differ_between_keys() {
        let (a, b) = (RandomState::new(), RandomState::new());
        assert_eq!(keyed_hash(&a, "!r:example.org"), keyed_hash(&a, "!r:example.org"));
        assert_ne!(keyed_hash(&a, "!r:example.org"), keyed_hash(&a, "!s:example.org"));
        // Per-machine keys: another machine's hash of the same name is another value (a
        // collision of two random 64-bit values would fail this once in 2^64 runs).
        assert_ne!(keyed_hash(&a, "!r:example.org"), keyed_hash(&b, "!r:example.org"));
    }

    /// A name indexed under a hash the test picks, so that names can share one.
    struct Named {
        name: &'static str,
        hash: u64,
    }

    impl Hashed for Named {
        fn stored_hash(&self) -> u64 {
            self.hash
        }
    }

    fn add(slots: &mut Slab<Named>, index: &mut SlotIndex, name: &'static str, hash: u64) -> u32 {
        let slot = slots.insert(Named { name, hash });
        index.insert(slots, slot);
        slot
    }

    #[test]
    fn names_sharing_a_hash_are_told_apart_by_their_key_and_survive_growth_and_removal() {
        let (mut slots, mut index) = (Slab::default(), SlotIndex::default());
        let a = add(&mut slots, &mut index, "a", 7);
        let b = add(&mut slots, &mut index, "b", 7);
        // Enough others that the table grows (re-hashing from the stored hashes).
        let others: Vec<u32> =
            (0..200).map(|i| add(&mut slots, &mut index, "x", 1000 + i)).collect();
        let find = |slots: &Slab<Named>, index: &SlotIndex, name: &str, hash: u64| {
            index.find(slots, hash, |n| n.name == name)
        };
        assert_eq!(find(&slots, &index, "a", 7), Some(a));
        assert_eq!(find(&slots, &index, "b", 7), Some(b));
        assert_eq!(find(&slots, &index, "c", 7), None, "same hash, other name");
        assert_eq!(find(&slots, &index, "a", 8), None, "same name, other hash");
        assert_eq!(find(&slots, &index, "x", 1000 + 150), Some(others[150]));
        assert_eq!(index.len(), 202);

        // Removing needs only the hash and slot, also once the slot is gone.
        slots.remove(a);
        index.remove(7, a);
        assert_eq!(find(&slots, &index, "a", 7), None);
        assert_eq!(find(&slots, &index, "b", 7), Some(b));
        index.remove(7, a); // twice: nothing left to remove
        assert_eq!(index.len(), 201);
    }

    #[test]
    fn an_entry_finds_an_indexed_name_or_indexes_a_new_one_where_it_was_not_found() {
        let (mut slots, mut index) = (Slab::default(), SlotIndex::default());
        let a = add(&mut slots, &mut index, "a", 7);
        let is = |name: &'static str| move |n: &Named| n.name == name;
        assert_eq!(index.entry(&slots, 7, is("a")).ok(), Some(a));
        // Same hash, another name: vacant. Dropped, it indexes nothing.
        assert!(index.entry(&slots, 7, is("b")).is_err());
        assert_eq!(index.len(), 1);
        // Grown past its first capacity while new names go in through entries.
        for i in 0..200u64 {
            let Err(vacant) = index.entry(&slots, 1000 + i, is("x")) else { panic!("new") };
            let slot = slots.insert(Named { name: "x", hash: 1000 + i });
            vacant.insert(slot);
        }
        let Err(vacant) = index.entry(&slots, 7, is("b")) else { panic!("b is new") };
        let b = slots.insert(Named { name: "b", hash: 7 });
        vacant.insert(b);
        assert_eq!(index.len(), 202);
        assert_eq!(index.find(&slots, 7, is("a")), Some(a));
        assert_eq!(index.find(&slots, 7, is("b")), Some(b));
        assert_eq!(
            index.entry(&slots, 1000 + 150, is("x")).ok(),
            index.find(&slots, 1150, is("x"))
        );
        assert!(index.find(&slots, 1150, is("x")).is_some());
    }
}
