//! [`DeadlineList`]: deadlines that mostly arrive in order (a constant lease or retention added
//! to a clock that only moves forward), kept in a linked list of slab nodes, with an ordered
//! set for the few that arrive out of order.
//!
//! A key added at or after the latest deadline is appended to the list (O(1), no allocation
//! once the node vector has grown: freed nodes are reused through a free list threaded through
//! them, so a node costs its key, its deadline and two links, and no slab tag), and the caller keeps the returned [`Handle`], with which it is
//! unlinked in O(1) — no search from the root of a tree whose nodes, at a million keys, are
//! cache misses, and no tree node allocated and freed as keys come and go. A key that
//! arrives earlier than the latest deadline (the host's clock stepped back a little, a heal
//! after a clock correction, a restore) goes to an ordered `BTreeSet` instead, as every key
//! did before; the earliest of both is the next deadline. One deadline per key, which the
//! caller keeps (with its handle) and names to cancel it; deadlines come out in time order,
//! ties in the order chosen by [`Ties`] (key order, as a `BTreeSet<(Timestamp, K)>` would, or
//! any order).

use std::collections::BTreeSet;
use std::fmt;

use crate::time::Timestamp;

/// Where a key's deadline is kept: a list node, or [`Handle::LATE`] (the ordered set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Handle(u32);

impl Handle {
    /// The key's deadline is in the ordered set of late arrivals.
    pub(crate) const LATE: Handle = Handle(u32::MAX);
    /// No deadline at all: never returned by [`DeadlineList::insert`], for callers' tables.
    pub(crate) const NONE: Handle = Handle(u32::MAX - 1);

    /// The `i`-th handle.
    pub(crate) fn nth(i: usize) -> Handle {
        Handle(u32::try_from(i).expect("fewer than u32::MAX deadlines"))
    }
}

/// How keys due at the same millisecond come out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ties {
    /// In key order (like a `BTreeSet<(Timestamp, K)>`): a key due at the latest deadline is
    /// appended only when it is not smaller than the last key.
    ByKey,
    /// In no particular order (the caller sorts what it pops): every key due at or after the
    /// latest deadline is appended.
    Any,
}

/// "No node" in the links.
const NIL: u32 = u32::MAX;
/// The `prev` of a free node (its `next` links the free list).
const FREE: u32 = u32::MAX - 1;

#[derive(Debug, Clone, Copy)]
struct Node<K> {
    at: Timestamp,
    key: K,
    prev: u32,
    next: u32,
}

/// Deadlines in arrival order plus an ordered set of late arrivals; see the module docs.
///
/// `Debug` prints the `(deadline, key)` pairs in deadline order and nothing of the nodes: node
/// numbers and free nodes depend on the history, and equal states must print alike (the
/// exhaustive exploration hashes `Debug` output).
#[derive(Clone)]
pub(crate) struct DeadlineList<K> {
    /// Linked nodes and free ones (`prev == FREE`).
    nodes: Vec<Node<K>>,
    /// First free node, or `NIL`.
    free: u32,
    head: u32,
    tail: u32,
    late: BTreeSet<(Timestamp, K)>,
    ties: Ties,
}

impl<K: Ord + Copy> DeadlineList<K> {
    /// An empty list.
    pub(crate) fn new(ties: Ties) -> Self {
        DeadlineList {
            nodes: Vec::new(),
            free: NIL,
            head: NIL,
            tail: NIL,
            late: BTreeSet::new(),
            ties,
        }
    }

    fn node(&self, i: u32) -> &Node<K> {
        &self.nodes[i as usize]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<K> {
        &mut self.nodes[i as usize]
    }

    /// The linked node `i`, if it is one.
    fn linked(&self, i: u32) -> Option<&Node<K>> {
        self.nodes.get(i as usize).filter(|n| n.prev != FREE)
    }

    /// Stores `node` in a free node (or a new one) and returns its index.
    fn alloc(&mut self, node: Node<K>) -> u32 {
        if self.free == NIL {
            let i = u32::try_from(self.nodes.len()).expect("fewer than u32::MAX - 1 deadlines");
            assert!(i < FREE, "fewer than u32::MAX - 1 deadlines");
            self.nodes.push(node);
            return i;
        }
        let i = self.free;
        self.free = self.node(i).next;
        *self.node_mut(i) = node;
        i
    }

    /// The deadline kept under `handle` for `key`, when `handle` names a list node (`None` for
    /// [`Handle::LATE`] and for a node no longer holding `key`).
    pub(crate) fn listed_at(&self, handle: Handle, key: K) -> Option<Timestamp> {
        self.linked(handle.0).filter(|n| n.key == key).map(|n| n.at)
    }

    /// Whether `(at, key)` may go after the list's last deadline.
    fn fits_at_tail(&self, at: Timestamp, key: &K) -> bool {
        if self.tail == NIL {
            return true;
        }
        let last = self.node(self.tail);
        match self.ties {
            Ties::ByKey => (at, key) >= (last.at, &last.key),
            Ties::Any => at >= last.at,
        }
    }

    /// Adds `key`, which has no deadline here, due at `at`. Keep the handle for
    /// [`cancel`](Self::cancel).
    pub(crate) fn insert(&mut self, key: K, at: Timestamp) -> Handle {
        if !self.fits_at_tail(at, &key) {
            let added = self.late.insert((at, key));
            debug_assert!(added, "DeadlineList::insert of a key already due at that time");
            return Handle::LATE;
        }
        let i = self.alloc(Node { at, key, prev: self.tail, next: NIL });
        if self.tail == NIL {
            self.head = i;
        } else {
            self.node_mut(self.tail).next = i;
        }
        self.tail = i;
        Handle(i)
    }

    /// Removes `key`'s deadline `at`, kept under `handle`. Returns whether it was there (a key
    /// already taken by [`pop_due`](Self::pop_due) is not).
    pub(crate) fn cancel(&mut self, handle: Handle, key: K, at: Timestamp) -> bool {
        if handle == Handle::LATE {
            return self.late.remove(&(at, key));
        }
        let i = handle.0;
        // A popped key's node is free (or reused by a later insert): leave it alone.
        if !self.linked(i).is_some_and(|n| n.at == at && n.key == key) {
            return false;
        }
        self.unlink(i);
        true
    }

    /// Moves `key`'s deadline from `old` (kept under `handle`) to `at`; returns the new handle.
    pub(crate) fn reschedule(
        &mut self,
        handle: Handle,
        key: K,
        old: Timestamp,
        at: Timestamp,
    ) -> Handle {
        if old == at {
            return handle;
        }
        let removed = self.cancel(handle, key, old);
        debug_assert!(removed, "DeadlineList::reschedule from a deadline the key did not have");
        self.insert(key, at)
    }

    /// Takes node `i` out of the list and onto the free list.
    fn unlink(&mut self, i: u32) {
        let Node { prev, next, .. } = *self.node(i);
        debug_assert_ne!(prev, FREE, "unlink of a free node");
        match prev {
            NIL => self.head = next,
            p => self.node_mut(p).next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.node_mut(n).prev = prev,
        }
        let free = self.free;
        let node = self.node_mut(i);
        node.prev = FREE;
        node.next = free;
        self.free = i;
    }

    /// The earliest `(deadline, key)`: the list's first or the late set's, whichever is
    /// earlier (ties by [`Ties`]); the third field says whether it is the list's.
    fn first(&self) -> Option<(Timestamp, K, bool)> {
        let listed = (self.head != NIL).then(|| {
            let n = self.node(self.head);
            (n.at, n.key)
        });
        let late = self.late.first().copied();
        match (listed, late) {
            (None, None) => None,
            (Some((at, key)), None) => Some((at, key, true)),
            (None, Some((at, key))) => Some((at, key, false)),
            (Some(l), Some(s)) => {
                let list_first = match self.ties {
                    Ties::ByKey => l <= s,
                    Ties::Any => l.0 <= s.0,
                };
                Some(if list_first { (l.0, l.1, true) } else { (s.0, s.1, false) })
            }
        }
    }

    /// The earliest deadline, or `None` when there is none.
    pub(crate) fn next(&self) -> Option<Timestamp> {
        self.first().map(|(at, _, _)| at)
    }

    /// The earliest `(deadline, key)`, or `None` when there is none.
    pub(crate) fn peek(&self) -> Option<(Timestamp, K)> {
        self.first().map(|(at, key, _)| (at, key))
    }

    /// Removes and returns the earliest key due at or before `now`, with its deadline.
    pub(crate) fn pop_due(&mut self, now: Timestamp) -> Option<(K, Timestamp)> {
        let (at, key, from_list) = self.first()?;
        if at > now {
            return None;
        }
        if from_list {
            let head = self.head;
            self.unlink(head);
        } else {
            self.late.pop_first();
        }
        Some((key, at))
    }

    /// Whether `key` is due at `at` here, kept under `handle` (a list node or the late set).
    /// For checks: tests, and debug assertions that a popped deadline is gone.
    pub(crate) fn holds(&self, handle: Handle, key: K, at: Timestamp) -> bool {
        match handle {
            Handle::LATE => self.late.contains(&(at, key)),
            _ => self.listed_at(handle, key) == Some(at),
        }
    }

    /// Number of deadlines.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let linked = std::iter::successors((self.head != NIL).then_some(self.head), |&i| {
            let next = self.node(i).next;
            (next != NIL).then_some(next)
        });
        linked.count() + self.late.len()
    }

    /// Builds the list from `(deadline, key)` pairs of distinct keys (restore); returns it with
    /// each pair's handle, in the order of `items`. One sort; the nodes are laid out in
    /// deadline order (handle `h` is the `h`-th earliest), so `pop_due` walks them front to
    /// back through memory instead of jumping at every deadline.
    pub(crate) fn build(ties: Ties, items: Vec<(Timestamp, K)>) -> (Self, Vec<Handle>) {
        let n = items.len();
        // Each pair carries its place in `items` while it is sorted.
        let mut sorted: Vec<(Timestamp, K, usize)> =
            items.into_iter().enumerate().map(|(i, (at, key))| (at, key, i)).collect();
        sorted.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut this = DeadlineList::new(ties);
        this.nodes.reserve_exact(n);
        let mut handles = vec![Handle::NONE; n];
        for (rank, &(at, key, i)) in sorted.iter().enumerate() {
            let prev = rank.checked_sub(1).map_or(NIL, |p| Handle::nth(p).0);
            let next = if rank + 1 < n { Handle::nth(rank + 1).0 } else { NIL };
            let h = this.alloc(Node { at, key, prev, next });
            debug_assert_eq!(h as usize, rank, "a fresh list fills its nodes in order");
            handles[i] = Handle(h);
        }
        if n > 0 {
            this.head = 0;
            this.tail = Handle::nth(n - 1).0;
        }
        (this, handles)
    }
}

impl<K: Ord + Copy + fmt::Debug> fmt::Debug for DeadlineList<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut all: Vec<(Timestamp, K)> = self.late.iter().copied().collect();
        let mut i = self.head;
        while i != NIL {
            let n = self.node(i);
            all.push((n.at, n.key));
            i = n.next;
        }
        all.sort_unstable();
        f.debug_list().entries(all).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn in_order_keys_are_listed_and_late_ones_merge_in_order() {
        let mut l = DeadlineList::new(Ties::ByKey);
        let a = l.insert(1u32, ts(10));
        let b = l.insert(2, ts(20));
        let late = l.insert(0, ts(15));
        assert_eq!(late, Handle::LATE);
        let tie = l.insert(1, ts(20));
        assert_eq!(tie, Handle::LATE, "a smaller key at the last deadline is late by key");
        assert_eq!(l.len(), 4);
        assert_eq!(l.next(), Some(ts(10)));
        assert!(l.cancel(a, 1, ts(10)));
        assert!(!l.cancel(a, 1, ts(10)), "a second cancel finds nothing");
        assert_eq!(l.peek(), Some((ts(15), 0)));
        assert_eq!(l.pop_due(ts(14)), None);
        assert_eq!(l.pop_due(ts(30)), Some((0, ts(15))));
        assert_eq!(l.pop_due(ts(30)), Some((1, ts(20))));
        assert_eq!(l.pop_due(ts(30)), Some((2, ts(20))));
        assert!(!l.cancel(b, 2, ts(20)), "popped");
        assert_eq!(l.pop_due(ts(30)), None);
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn any_ties_append_and_reschedule_moves_to_the_tail() {
        let mut l = DeadlineList::new(Ties::Any);
        let h5 = l.insert(5u32, ts(10));
        let h1 = l.insert(1, ts(10));
        assert_ne!(h1, Handle::LATE);
        let h1 = l.reschedule(h1, 1, ts(10), ts(30));
        let h5 = l.reschedule(h5, 5, ts(10), ts(20));
        assert_eq!(l.pop_due(ts(100)), Some((5, ts(20))));
        assert!(l.cancel(h1, 1, ts(30)));
        assert!(!l.cancel(h5, 5, ts(20)));
        assert_eq!(l.next(), None);
    }

    #[test]
    fn built_lists_pop_in_deadline_order_from_nodes_laid_out_in_that_order() {
        let items = vec![(ts(30), 7u32), (ts(10), 9), (ts(20), 8), (ts(20), 6)];
        let (mut l, handles) = DeadlineList::build(Ties::ByKey, items);
        // Handle `h` is the `h`-th earliest (ties by key), returned in the order of the items.
        assert_eq!(handles, [Handle(3), Handle(0), Handle(2), Handle(1)]);
        assert!(l.cancel(Handle(2), 8, ts(20)));
        assert_eq!(l.insert(1, ts(40)), Handle(2), "a freed node is reused");
        let popped: Vec<_> = std::iter::from_fn(|| l.pop_due(ts(100))).collect();
        assert_eq!(popped, [(9, ts(10)), (6, ts(20)), (7, ts(30)), (1, ts(40))]);
        let (mut empty, none) = DeadlineList::<u32>::build(Ties::Any, Vec::new());
        assert!(none.is_empty());
        assert_eq!(empty.pop_due(ts(100)), None);
        assert_eq!(empty.insert(3, ts(5)), Handle(0));
    }
}
