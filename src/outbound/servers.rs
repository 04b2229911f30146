//! One shared copy of each resident server's name: [`Servers`] hands out [`Server`]s, cheap
//! clones of one interned name.
//!
//! Every room names its candidates and the resident of each of its peeks. Without interning,
//! each of those held its own heap copy of the name, so a renewal at a million rooms read a
//! name nobody had touched for half an hour (a cache miss), and comparing a peek's resident with
//! a candidate read two. Shared, the few thousand names a server peeks through stay in cache,
//! and two equal `Server`s compare by pointer before any byte is read.
//!
//! A name's copy goes with its last user (reference counting). The set forgets such names
//! each time it has doubled since the last pruning, so it never holds more than twice the most
//! names in use at once (at least 64). The machine's own users are bounded by `max_rooms`
//! times (`max_candidates`, plus the retired peeks, plus one). The host's are not: the
//! outputs and records hand the same copy out as a [`SharedServerName`], so a name the host
//! still holds (a record in its store's cache, an output not dropped yet) counts as in use
//! and stays in the set, one pointer per name the host keeps alive anyway. A clone of the
//! machine shares the copies with the original, so until one of them drops a name the
//! other's set cannot forget it either.
//!
//! Not the inbound machine's `Interner` (u32 handles, live counts kept by hand): a room's
//! names are dropped in many places (a candidate refused, a retired peek deleted or pushed
//! out, the room forgotten), and `Arc` counts them all without a release call at each.

use std::hash::RandomState;
use std::ops::Deref;

use hashbrown::HashTable;
use ruma_common::ServerName;

use crate::shared::SharedServerName;
use crate::slot_index::keyed_hash;

/// A resident server's name, shared with every other user of the same name in the machine.
/// Compares as the name (by pointer first: from one [`Servers`], equal names share one copy),
/// and reads as a `&ServerName`.
#[derive(Debug, Clone)]
pub(super) struct Server(SharedServerName);

impl Server {
    /// Whether `other` is the same name, by pointer alone: two `Server`s from one
    /// [`Servers`] name the same server exactly when they share the copy (a name is interned
    /// once, and forgotten only when nobody holds it).
    pub(super) fn is(&self, other: &Server) -> bool {
        self.0.ptr_eq(&other.0)
    }

    /// The name for an output: another reference to the same copy.
    pub(super) fn shared(&self) -> SharedServerName {
        self.0.clone()
    }
}

impl Deref for Server {
    type Target = ServerName;
    fn deref(&self) -> &ServerName {
        &self.0
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl PartialEq for Server {
    fn eq(&self, other: &Server) -> bool {
        // A `Shared`'s equality checks the pointer before the names (`Arc`'s, for `Eq`
        // contents).
        self.0 == other.0
    }
}

impl Eq for Server {}

impl PartialEq<ServerName> for Server {
    fn eq(&self, other: &ServerName) -> bool {
        **self.0 == *other
    }
}

impl PartialEq<&ServerName> for Server {
    fn eq(&self, other: &&ServerName) -> bool {
        **self.0 == **other
    }
}

/// The interned names (keyed SipHash: names come from clients and remote servers).
#[derive(Debug, Clone)]
pub(super) struct Servers {
    set: HashTable<SharedServerName>,
    hasher: RandomState,
    /// Dropped names are forgotten when the set reaches this size.
    prune_at: usize,
}

impl Default for Servers {
    fn default() -> Self {
        Servers { set: HashTable::new(), hasher: RandomState::new(), prune_at: Self::MIN_PRUNE }
    }
}

impl Servers {
    /// The set never prunes below this many names.
    const MIN_PRUNE: usize = 64;

    /// The shared copy of `name` if anything holds it besides the set (a room's candidate, a
    /// current or retired peek's resident, a clone of this machine, or the host, through an
    /// output or record): `None` means no room names it, `Some` does not promise that one
    /// does.
    pub(super) fn find(&self, name: &ServerName) -> Option<Server> {
        let e = self.set.find(keyed_hash(&self.hasher, name.as_str()), |e| ***e == *name)?;
        // Kept only by the set: nobody holds it, it is only waiting to be pruned.
        (e.holders() > 1).then(|| Server(e.clone()))
    }

    /// The shared copy of `name`, interned if new (its name hashed once either way).
    pub(super) fn intern(&mut self, name: &ServerName) -> Server {
        let hash = keyed_hash(&self.hasher, name.as_str());
        if let Some(e) = self.set.find(hash, |e| ***e == *name) {
            return Server(e.clone());
        }
        if self.set.len() >= self.prune_at {
            self.set.retain(|e| e.holders() > 1);
            self.prune_at = (2 * self.set.len()).max(Self::MIN_PRUNE);
        }
        let shared = SharedServerName::from(name);
        let hasher = &self.hasher;
        self.set.insert_unique(hash, shared.clone(), |e| keyed_hash(hasher, e.as_str()));
        Server(shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: usize) -> ruma_common::OwnedServerName {
        format!("s{i}.example.org").try_into().unwrap()
    }

    #[test]
    fn one_name_is_shared_and_compares_equal() {
        let mut s = Servers::default();
        let (a, b) = (s.intern(&name(1)), s.intern(&name(1)));
        assert!(a.is(&b), "one copy");
        assert_eq!(a, b);
        assert_ne!(a, s.intern(&name(2)));
        assert!(a == *name(1));
        assert_eq!(a.shared(), name(1));
        assert_eq!(s.set.len(), 2);
        assert!(s.find(&name(1)).is_some_and(|f| f.is(&a)));
        assert!(!a.is(&s.intern(&name(2))));
    }

    #[test]
    fn a_name_nobody_holds_is_not_found() {
        let mut s = Servers::default();
        assert!(s.find(&name(1)).is_none(), "never interned");
        let held = s.intern(&name(1));
        drop(s.intern(&name(2)));
        assert!(s.find(&name(1)).is_some_and(|f| f.is(&held)));
        assert!(s.find(&name(2)).is_none(), "interned, then dropped by every holder");
    }

    #[test]
    fn dropped_names_are_forgotten_so_the_set_stays_within_twice_the_names_in_use() {
        let mut s = Servers::default();
        let kept: Vec<Server> = (0..10).map(|i| s.intern(&name(i))).collect();
        for i in 10..10_000 {
            drop(s.intern(&name(i)));
            assert!(s.set.len() <= (2 * kept.len()).max(Servers::MIN_PRUNE) + 1, "{}", s.set.len());
        }
        // The kept names survived every pruning, still shared.
        for (i, k) in kept.iter().enumerate() {
            assert!(k.is(&s.intern(&name(i))));
        }
    }
}
