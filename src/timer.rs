//! [`TimerQueue`]: one deadline per key, for keys of any kind (the local machine's idle devices,
//! the sync side's waiting client peeks); keys that are dense slot numbers use [`SlotTimers`]
//! (docs/architecture.md §11.7).
//!
//! * Scheduling a key that already has a deadline **replaces** it: the old deadline is gone and
//!   never fires ("re-scheduling later does not fire at the old deadline").
//! * Many keys may share one millisecond; they come out in key order, so expiry is
//!   deterministic.
//! * [`TimerQueue::pop_due`] / [`TimerQueue::expire`] take every key due **at or before** `now`.
//!
//! Costs: `schedule`, `cancel` and `pop_due` are O(log n); `next` is O(log n); `deadline` is
//! O(1). Keys should be small (`Copy` indices or interned ids) since each is stored twice.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use crate::Timestamp;
use crate::deadlines::{DeadlineList, Handle, Ties};

/// A set of deadlines, at most one per key.
#[derive(Debug, Clone)]
pub(crate) struct TimerQueue<K> {
    by_key: HashMap<K, Timestamp, FxBuild>,
    by_time: BTreeSet<(Timestamp, K)>,
}

impl<K> Default for TimerQueue<K> {
    fn default() -> Self {
        TimerQueue { by_key: HashMap::default(), by_time: BTreeSet::new() }
    }
}

impl<K: Ord + Hash + Clone> TimerQueue<K> {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Sets `key`'s deadline to `at`, replacing (and so cancelling) any earlier one.
    /// Returns the deadline it replaced.
    pub(crate) fn schedule(&mut self, key: K, at: Timestamp) -> Option<Timestamp> {
        let old = self.by_key.insert(key.clone(), at);
        if let Some(old_at) = old {
            if old_at == at {
                return old;
            }
            self.by_time.remove(&(old_at, key.clone()));
        }
        self.by_time.insert((at, key));
        old
    }

    /// Removes `key`'s deadline. Returns it, or `None` when the key had none.
    pub(crate) fn cancel(&mut self, key: &K) -> Option<Timestamp> {
        let at = self.by_key.remove(key)?;
        self.by_time.remove(&(at, key.clone()));
        Some(at)
    }

    /// The deadline of `key`, if it has one.
    #[cfg(test)]
    pub(crate) fn deadline(&self, key: &K) -> Option<Timestamp> {
        self.by_key.get(key).copied()
    }

    /// The earliest deadline, or `None` when the queue is empty. Changes only through
    /// `schedule`, `cancel`, `pop_due`, `expire` and `clear`.
    pub(crate) fn next(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest key due at or before `now`, with its deadline.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<(K, Timestamp)> {
        let (at, _) = self.by_time.first()?;
        if *at > now {
            return None;
        }
        let (at, key) = self.by_time.pop_first()?;
        self.by_key.remove(&key);
        Some((key, at))
    }

    /// Removes and returns every key due at or before `now`, earliest first (ties in key order).
    pub(crate) fn expire(&mut self, now: Timestamp) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((key, _)) = self.pop_due(now) {
            due.push(key);
        }
        due
    }

    /// Number of keys with a deadline.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key has a deadline.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Removes every deadline.
    #[cfg(test)]
    pub(crate) fn clear(&mut self) {
        self.by_key.clear();
        self.by_time.clear();
    }

    /// Every `(deadline, key)`, earliest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Timestamp, &K)> + '_ {
        self.by_time.iter().map(|(at, key)| (*at, key))
    }

    /// Builds a queue from `(key, deadline)` pairs in one go (bulk loading, e.g. `restore`):
    /// the same queue as scheduling each pair in order (a repeated key keeps its last
    /// deadline), but with one sort and an O(n) bulk build of the ordered tree instead of n
    /// ordered inserts.
    pub(crate) fn from_deadlines(deadlines: impl IntoIterator<Item = (K, Timestamp)>) -> Self {
        let deadlines = deadlines.into_iter();
        let hint = deadlines.size_hint().0;
        let mut by_key: HashMap<K, Timestamp, FxBuild> =
            HashMap::with_capacity_and_hasher(hint, FxBuild::default());
        let mut order: Vec<(Timestamp, K)> = Vec::with_capacity(hint);
        let mut repeated = false;
        for (key, at) in deadlines {
            repeated |= by_key.insert(key.clone(), at).is_some();
            order.push((at, key));
        }
        if repeated {
            // Keep only each key's last deadline (identical pairs are deduplicated below).
            order.retain(|(at, key)| by_key.get(key) == Some(at));
        }
        order.sort_unstable();
        order.dedup();
        // `FromIterator` re-checks the order (linear on sorted input) and builds the tree
        // bottom-up.
        TimerQueue { by_key, by_time: order.into_iter().collect() }
    }
}

/// The hasher for maps keyed by the crate's own small integer indices (slot ids, interned
/// indices), which a remote cannot choose: rustc's FxHash. String keys that come from remote
/// input keep a keyed hash (SipHash) that resists flooding.
pub(crate) type FxBuild = rustc_hash::FxBuildHasher;

/// A [`TimerQueue`] for dense `u32` keys (slab slot ids): the deadlines are kept in a
/// [`DeadlineList`] (ties in key order) and key `k`'s handle there at index `k` of a vector,
/// so `schedule`/`cancel`/`deadline` need no hashing, and a deadline that arrives at or after
/// the latest one (a constant interval after a clock that moves forward: the common case) is
/// appended and later unlinked in O(1), with no tree search and no tree node allocated. Same
/// semantics as [`TimerQueue`] (one deadline per key, ties in key order). `Debug` prints the
/// deadlines only (the handles depend on the history).
#[derive(Clone)]
pub(crate) struct SlotTimers {
    /// Per key: where its deadline is kept, or [`Handle::NONE`].
    handles: Vec<Handle>,
    /// Per key, its deadline while it is kept in the list's late set ([`Handle::LATE`]: out of
    /// order); meaningless for other keys. Dense like `handles` (no hashing, no entry to remove
    /// when a late deadline is popped), and only as long as the largest key that was ever late.
    late_at: Vec<Timestamp>,
    list: DeadlineList<u32>,
    /// Deadlines set by [`Self::set_unordered`], ordered by [`Self::rebuild_order`].
    unordered: Vec<(u32, Timestamp)>,
}

impl std::fmt::Debug for SlotTimers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotTimers").field("deadlines", &self.list).finish()
    }
}

impl Default for SlotTimers {
    fn default() -> Self {
        SlotTimers {
            handles: Vec::new(),
            late_at: Vec::new(),
            list: DeadlineList::new(Ties::ByKey),
            unordered: Vec::new(),
        }
    }
}

impl SlotTimers {
    /// Sets `key`'s deadline to `at`, replacing any earlier one; returns the replaced one.
    pub(crate) fn schedule(&mut self, key: u32, at: Timestamp) -> Option<Timestamp> {
        let old = self.deadline(key);
        let i = key as usize;
        if i >= self.handles.len() {
            self.handles.resize(i + 1, Handle::NONE);
        }
        let handle = match old {
            Some(old) => self.list.reschedule(self.handles[i], key, old, at),
            None => self.list.insert(key, at),
        };
        if handle == Handle::LATE {
            if i >= self.late_at.len() {
                self.late_at.resize(i + 1, Timestamp::ZERO);
            }
            self.late_at[i] = at;
        }
        self.handles[i] = handle;
        old
    }

    /// Removes `key`'s deadline and returns it.
    pub(crate) fn cancel(&mut self, key: u32) -> Option<Timestamp> {
        let at = self.deadline(key)?;
        let handle = std::mem::replace(&mut self.handles[key as usize], Handle::NONE);
        self.list.cancel(handle, key, at);
        Some(at)
    }

    /// The deadline of `key`, if it has one.
    pub(crate) fn deadline(&self, key: u32) -> Option<Timestamp> {
        match *self.handles.get(key as usize)? {
            Handle::NONE => None,
            Handle::LATE => self.late_at.get(key as usize).copied(),
            handle => self.list.listed_at(handle, key),
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Timestamp> {
        self.list.next()
    }

    /// Removes and returns the earliest key due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<(u32, Timestamp)> {
        let (key, at) = self.list.pop_due(now)?;
        self.handles[key as usize] = Handle::NONE;
        Some((key, at))
    }

    /// Whether no key has a deadline.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.list.next().is_none()
    }

    /// Sets `key`'s deadline without ordering it (bulk loading, e.g. restore; a key set twice
    /// keeps the last): call [`Self::rebuild_order`] before any other method.
    pub(crate) fn set_unordered(&mut self, key: u32, at: Timestamp) {
        self.unordered.push((key, at));
    }

    /// Orders the deadlines given to [`Self::set_unordered`] (replacing any others): one sort
    /// and the list linked in order, instead of n ordered inserts.
    pub(crate) fn rebuild_order(&mut self) {
        let unordered = std::mem::take(&mut self.unordered);
        let keys = unordered.iter().map(|&(k, _)| k as usize + 1).max().unwrap_or(0);
        let mut at: Vec<Option<Timestamp>> = vec![None; keys];
        for (k, t) in unordered {
            at[k as usize] = Some(t);
        }
        self.handles = vec![Handle::NONE; keys];
        self.late_at.clear();
        let set = || at.iter().enumerate().filter_map(|(k, t)| Some((k, (*t)?)));
        let items = set().map(|(k, t)| (t, u32::try_from(k).expect("keys are u32"))).collect();
        // `build` returns the handles in the order of the items: the keys in order again.
        let (list, handles) = DeadlineList::build(Ties::ByKey, items);
        for ((k, _), handle) in set().zip(handles) {
            self.handles[k] = handle;
        }
        self.list = list;
    }

    /// Reserves room for `additional` more keys set by [`Self::set_unordered`].
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.unordered.reserve(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn one_deadline_per_key() {
        let mut q = TimerQueue::new();
        assert_eq!(q.schedule("a", t(10)), None);
        assert_eq!(q.schedule("a", t(20)), Some(t(10)));
        assert_eq!(q.len(), 1);
        assert_eq!(q.deadline(&"a"), Some(t(20)));
        assert_eq!(q.iter().count(), 1);
    }

    #[test]
    fn rescheduling_later_does_not_fire_at_the_old_deadline() {
        let mut q = TimerQueue::new();
        q.schedule(1u32, t(10));
        q.schedule(1u32, t(50));
        assert_eq!(q.next(), Some(t(50)));
        assert!(q.expire(t(10)).is_empty());
        assert!(q.expire(t(49)).is_empty());
        assert_eq!(q.expire(t(50)), vec![1]);
        assert!(q.is_empty());
    }

    #[test]
    fn rescheduling_earlier_fires_at_the_new_deadline_only_once() {
        let mut q = TimerQueue::new();
        q.schedule(1u32, t(50));
        q.schedule(1u32, t(10));
        assert_eq!(q.expire(t(10)), vec![1]);
        assert!(q.expire(t(100)).is_empty());
    }

    #[test]
    fn rescheduling_to_the_same_deadline_keeps_one_entry() {
        let mut q = TimerQueue::new();
        q.schedule(7u32, t(5));
        assert_eq!(q.schedule(7u32, t(5)), Some(t(5)));
        assert_eq!(q.iter().count(), 1);
        assert_eq!(q.expire(t(5)), vec![7]);
    }

    #[test]
    fn many_keys_on_one_millisecond_come_out_in_key_order() {
        let mut q = TimerQueue::new();
        for k in (0..1_000u32).rev() {
            q.schedule(k, t(42));
        }
        assert_eq!(q.len(), 1_000);
        assert_eq!(q.next(), Some(t(42)));
        assert!(q.expire(t(41)).is_empty());
        let due = q.expire(t(42));
        assert_eq!(due, (0..1_000).collect::<Vec<_>>());
        assert!(q.is_empty());
        assert_eq!(q.next(), None);
    }

    #[test]
    fn expire_takes_everything_at_or_before_now_earliest_first() {
        let mut q = TimerQueue::new();
        q.schedule('c', t(30));
        q.schedule('a', t(10));
        q.schedule('b', t(20));
        q.schedule('d', t(40));
        assert_eq!(q.expire(t(30)), vec!['a', 'b', 'c']);
        assert_eq!(q.next(), Some(t(40)));
        assert_eq!(q.pop_due(t(39)), None);
        assert_eq!(q.pop_due(t(40)), Some(('d', t(40))));
    }

    #[test]
    fn cancel_removes_the_deadline() {
        let mut q = TimerQueue::new();
        q.schedule(1u8, t(10));
        q.schedule(2u8, t(20));
        assert_eq!(q.cancel(&1), Some(t(10)));
        assert_eq!(q.cancel(&1), None);
        assert_eq!(q.deadline(&1), None);
        assert_eq!(q.next(), Some(t(20)));
        assert_eq!(q.expire(t(100)), vec![2]);
    }

    #[test]
    fn next_is_none_when_empty_and_clear_empties() {
        let mut q: TimerQueue<u8> = TimerQueue::new();
        assert_eq!(q.next(), None);
        q.schedule(1, t(1));
        q.clear();
        assert_eq!(q.next(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn bulk_build_matches_scheduling_in_order() {
        let pairs: [(u32, u64); 9] =
            [(3, 50), (1, 10), (3, 20), (7, 20), (1, 10), (2, 5), (7, 90), (0, 20), (3, 50)];
        let mut a = TimerQueue::new();
        for (k, at) in pairs {
            a.schedule(k, t(at));
        }
        let b = TimerQueue::from_deadlines(pairs.iter().map(|&(k, at)| (k, t(at))));
        assert_eq!(a.len(), b.len());
        assert_eq!(a.iter().collect::<Vec<_>>(), b.iter().collect::<Vec<_>>());
        for k in 0..10 {
            assert_eq!(a.deadline(&k), b.deadline(&k));
        }
        let mut b = b;
        assert_eq!(a.expire(t(100)), b.expire(t(100)));
        assert!(b.is_empty());
        assert!(TimerQueue::<u32>::from_deadlines([]).is_empty());
    }

    #[test]
    fn slot_timers_match_the_timer_queue() {
        let mut a = TimerQueue::new();
        let mut b = SlotTimers::default();
        let ops: [(u32, u64); 8] =
            [(3, 50), (1, 10), (3, 20), (7, 20), (1, 10), (2, 5), (7, 90), (0, 20)];
        for (k, at) in ops {
            assert_eq!(a.schedule(k, t(at)), b.schedule(k, t(at)));
        }
        assert_eq!(a.cancel(&2), b.cancel(2));
        assert_eq!(a.cancel(&2), b.cancel(2));
        assert_eq!(b.cancel(99), None);
        for k in 0..10 {
            assert_eq!(a.deadline(&k), b.deadline(k));
        }
        assert_eq!(a.next(), b.next());
        for now in [5, 10, 20, 50, 100] {
            loop {
                let (x, y) = (a.pop_due(t(now)), b.pop_due(t(now)));
                assert_eq!(x, y);
                if x.is_none() {
                    break;
                }
            }
        }
        assert_eq!(b.next(), None);
    }
}
