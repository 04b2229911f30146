//! The in-memory indexes behind [`InboundPeeks`](super::InboundPeeks).
//!
//! * [`Interner`]: one entry per room and per server (not per peek), addressed by a `u32`,
//!   with a count of live peeks; freed when the count drops to zero.
//! * [`Peeks`]: a slab of peeks (`u32` slot ids, used as timer keys), a hash table of bare slot
//!   ids hashed by (server name, room id, peek id) — one SipHash per lookup, no interner probe,
//!   and no key stored twice — and an intrusive list per (room, server) pair so that
//!   ending all of a room's or a pair's peeks is O(result). Each room keeps the list of servers
//!   with at least one peek, so `destinations` is O(result) (R39).
//!
//! Per peek this costs one 4-byte index entry, one 56-byte slot (the peek id inline in it, as a
//! [`PeekId`], when it has at most 24 bytes, as our own 8-character ids do; a longer one
//! goes to the heap) and one timer entry.

use std::borrow::Borrow;
use std::hash::{BuildHasher, RandomState};

use crate::ids::PeekId;
use crate::slab::Slab;
use crate::slot_index::{Hashed, SlotIndex, keyed_hash};
use crate::time::Timestamp;

/// "No slot" in the intrusive lists.
pub(super) const NIL: u32 = u32::MAX;

/// Interned names with a live-peek count each, addressed by `u32`. The index is a table of bare
/// `u32` entry numbers (each entry keeps its own hash), so every name is stored once.
#[derive(Debug, Clone)]
pub(super) struct Interner<O, E> {
    slots: Slab<Interned<O, E>>,
    index: SlotIndex,
    /// Keyed SipHash: names come from remote input.
    state: RandomState,
}

/// One interned name.
#[derive(Debug, Clone)]
pub(super) struct Interned<O, E> {
    pub(super) name: O,
    /// Live peeks referring to this entry.
    pub(super) live: u32,
    pub(super) extra: E,
    hash: u64,
}

impl<O, E> Default for Interner<O, E> {
    fn default() -> Self {
        Interner { slots: Slab::default(), index: SlotIndex::default(), state: RandomState::new() }
    }
}

impl<O, E: Default> Interner<O, E> {
    fn hash_of<Q: AsRef<str> + ?Sized>(&self, name: &Q) -> u64 {
        keyed_hash(&self.state, name.as_ref())
    }

    pub(super) fn find<Q>(&self, name: &Q) -> Option<u32>
    where
        O: Borrow<Q>,
        Q: AsRef<str> + Eq + ?Sized,
    {
        self.index.find(&self.slots, self.hash_of(name), |e| e.name.borrow() == name)
    }

    /// The index of `name`, interning it (with `live == 0`) if new.
    pub(super) fn intern<Q>(&mut self, name: &Q) -> u32
    where
        O: Borrow<Q>,
        Q: AsRef<str> + Eq + ToOwned<Owned = O> + ?Sized,
    {
        self.find(name).unwrap_or_else(|| self.insert_new(name))
    }

    /// Interns `name`, which must not be interned yet (checked by the caller's `find`).
    pub(super) fn insert_new<Q>(&mut self, name: &Q) -> u32
    where
        O: Borrow<Q>,
        Q: AsRef<str> + Eq + ToOwned<Owned = O> + ?Sized,
    {
        let hash = self.hash_of(name);
        let entry = Interned { name: name.to_owned(), live: 0, extra: E::default(), hash };
        let i = self.slots.insert(entry);
        self.index.insert(&self.slots, i);
        i
    }

    pub(super) fn get(&self, i: u32) -> &Interned<O, E> {
        // Indices come only from `intern`/`find` and are released only when `live` hits zero,
        // after which no peek refers to them.
        self.slots.get(i).expect("interned index is live")
    }

    pub(super) fn get_mut(&mut self, i: u32) -> &mut Interned<O, E> {
        self.slots.get_mut(i).expect("interned index is live")
    }

    /// Drops the entry when no peek refers to it any more.
    pub(super) fn release_if_unused(&mut self, i: u32) {
        if self.get(i).live == 0
            && let Some(entry) = self.slots.remove(i)
        {
            self.index.remove(entry.hash, i);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }
}

impl<O, E> Hashed for Interned<O, E> {
    fn stored_hash(&self) -> u64 {
        self.hash
    }
}

impl Hashed for Slot {
    fn stored_hash(&self) -> u64 {
        self.hash
    }
}

/// One live peek in the slab.
#[derive(Debug, Clone)]
pub(super) struct Slot {
    pub(super) server: u32,
    pub(super) room: u32,
    /// Neighbours in the (room, server) pair's list.
    pub(super) prev: u32,
    pub(super) next: u32,
    /// Hash of (server name, room id, peek id) under [`Peeks::hash`], kept so the index
    /// never re-hashes strings when it grows or removes.
    pub(super) hash: u64,
    pub(super) id: PeekId,
    pub(super) renewed_at: Timestamp,
}

/// A server with at least one live peek on a room: one entry of the room's server list, which
/// is also the head of the (room, server) pair's list of peeks. There is no separate pair map:
/// a pair is found by scanning its room's list (contiguous 8-byte entries, one per distinct
/// peeking server, bounded by `max_peeks_per_room`), only when a peek is created or a pair's
/// first peek ends — never on renew or lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RoomServer {
    /// The interned server.
    pub(super) server: u32,
    /// First slot of the pair's list.
    pub(super) head: u32,
}

/// Slab + index + per-pair lists (headed in the rooms' server lists).
#[derive(Debug, Clone, Default)]
pub(super) struct Peeks {
    slots: Slab<Slot>,
    /// Slot ids, hashed by [`Peeks::hash`] (each slot keeps its hash).
    index: SlotIndex,
    /// Keyed SipHash: peek ids and names come from remote input.
    state: RandomState,
}

impl Peeks {
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// The index hash of a peek key.
    pub(super) fn hash(&self, server: &str, room: &str, id: &str) -> u64 {
        self.state.hash_one((server, room, id))
    }

    /// Reserves room for `additional` more peeks (restore).
    pub(super) fn reserve(&mut self, additional: usize) {
        self.slots.reserve(additional);
        self.index.reserve(&self.slots, additional);
    }

    /// The slot whose hash is `hash` and for which `is_key` holds.
    pub(super) fn find(&self, hash: u64, is_key: impl FnMut(&Slot) -> bool) -> Option<u32> {
        self.index.find(&self.slots, hash, is_key)
    }

    pub(super) fn slot(&self, s: u32) -> &Slot {
        // Slot ids come from the index or the pair lists, which only name occupied slots.
        self.slots.get(s).expect("slot is occupied")
    }

    pub(super) fn slot_mut(&mut self, s: u32) -> &mut Slot {
        self.slots.get_mut(s).expect("slot is occupied")
    }

    /// Inserts a new peek (the key must be absent). `servers_of_room` is the room's server list,
    /// extended when this is the pair's first peek. Returns the slot id.
    pub(super) fn insert(
        &mut self,
        hash: u64,
        server: u32,
        room: u32,
        id: &str,
        renewed_at: Timestamp,
        servers_of_room: &mut Vec<RoomServer>,
    ) -> u32 {
        let id = PeekId::from(id);
        let s = self.slots.vacant_key();
        let next = match servers_of_room.iter_mut().find(|e| e.server == server) {
            Some(pair) => std::mem::replace(&mut pair.head, s),
            None => {
                servers_of_room.push(RoomServer { server, head: s });
                NIL
            }
        };
        if next != NIL {
            self.slot_mut(next).prev = s;
        }
        let inserted =
            self.slots.insert(Slot { server, room, prev: NIL, next, hash, id, renewed_at });
        debug_assert_eq!(inserted, s);
        self.index.insert(&self.slots, s);
        s
    }

    /// Removes slot `s`, returning it. When it was the pair's last peek, the server leaves
    /// `servers_of_room` (swap-remove, fixing the moved server's position).
    pub(super) fn remove(&mut self, s: u32, servers_of_room: &mut Vec<RoomServer>) -> Slot {
        let slot = self.slots.remove(s).expect("slot is occupied");
        self.index.remove(slot.hash, s);
        if slot.next != NIL {
            self.slot_mut(slot.next).prev = slot.prev;
        }
        if slot.prev != NIL {
            self.slot_mut(slot.prev).next = slot.next;
        } else if let Some(pos) = servers_of_room.iter().position(|e| e.server == slot.server) {
            if slot.next != NIL {
                servers_of_room[pos].head = slot.next;
            } else {
                servers_of_room.swap_remove(pos);
            }
        }
        slot
    }

    /// The slots of a (room, server) pair's peeks, from the pair's head (its entry in the
    /// room's server list).
    pub(super) fn pair_slots(&self, head: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut s = head;
        while s != NIL {
            out.push(s);
            s = self.slot(s).next;
        }
        out
    }

    /// Every occupied slot (for snapshots; O(capacity)).
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &Slot)> + '_ {
        self.slots.iter()
    }
}
