//! [`Slab`]: reusable slots addressed by a `u32`, the one slot store every machine uses.
//!
//! A thin wrapper over the `slab` crate that hands out `u32` keys instead of `usize`, because
//! the machines keep slot keys in their indexes, timers and intrusive lists, where 4 bytes per
//! key instead of 8 is what keeps memory per live peek low. A freed key is reused by the next
//! insert (the crate's free list lives inside the vacant entries, so it costs nothing extra).

/// Slots of `T`, each addressed by a `u32` key that stays valid until the slot is removed.
#[derive(Debug, Clone)]
pub(crate) struct Slab<T> {
    inner: slab::Slab<T>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab { inner: slab::Slab::new() }
    }
}

/// Converts a slab key to the `u32` the machines store.
fn key(k: usize) -> u32 {
    // Cannot fail: every machine caps its live entries far below u32::MAX (the caps are
    // `usize` configs, but a slab only grows by one entry per live peek, room or device).
    u32::try_from(k).expect("fewer than u32::MAX live slots")
}

impl<T> Slab<T> {
    /// Stores `value` in a free slot and returns its key.
    pub(crate) fn insert(&mut self, value: T) -> u32 {
        key(self.inner.insert(value))
    }

    /// The key the next [`insert`](Self::insert) will return.
    pub(crate) fn vacant_key(&self) -> u32 {
        key(self.inner.vacant_key())
    }

    /// Removes and returns the value at `k`, or `None` when the slot is free.
    pub(crate) fn remove(&mut self, k: u32) -> Option<T> {
        self.inner.try_remove(k as usize)
    }

    /// The value at `k`.
    pub(crate) fn get(&self, k: u32) -> Option<&T> {
        self.inner.get(k as usize)
    }

    /// The value at `k`, mutably.
    pub(crate) fn get_mut(&mut self, k: u32) -> Option<&mut T> {
        self.inner.get_mut(k as usize)
    }

    /// Every occupied slot with its key, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.inner.iter().map(|(k, v)| (key(k), v))
    }

    /// Every occupied slot with its key, mutably, in key order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.inner.iter_mut().map(|(k, v)| (key(k), v))
    }

    /// Every occupied value, mutably, in key order.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.inner.iter_mut().map(|(_, v)| v)
    }

    /// Number of occupied slots.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    /// How many values it holds room for without reallocating.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.inner.capacity()
    }

    /// Makes room for `additional` more values without reallocating.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.inner.reserve(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_keys_are_reused_and_values_stay_put() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!(s.vacant_key(), 2);
        assert_eq!(s.remove(a), Some("a"));
        assert_eq!(s.remove(a), None, "a second remove finds a free slot");
        assert_eq!(s.vacant_key(), a);
        assert_eq!(s.insert("c"), a);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.iter().collect::<Vec<_>>(), [(a, &"c"), (b, &"b")]);
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(99), None);
    }
}
