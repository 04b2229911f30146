//! [`Shared`]: one immutable copy of an owned id, handed out by reference count.
//!
//! See [`Shared`]: why the outbound machine hands out shared ids, and what they do.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use ruma_common::{IdParseError, OwnedRoomId, OwnedServerName, RoomId, ServerName};
use serde::{Deserialize, Serialize};

/// One immutable copy of a `T`, shared by every clone.
///
/// The outbound machine names a room and its resident in four outputs per peek opened (the
/// `Persist` of the `PUT`, the `Send`, the `Persist` of the lease and `Established`), and in
/// every renewal, `DELETE` and record after that. With ruma's owned ids each of those names
/// was an allocation, a copy and a free: close to a third of the instructions of opening a
/// peek (BENCHMARKS.md, part 2, eleventh step). A [`Shared`] id is cloned by a reference count,
/// whatever storage the host built ruma with (docs/architecture.md §12).
///
/// A `Shared<T>` reads as a `&T` (`Deref`), and so as the borrowed id too (`&RoomId` from a
/// `Shared<OwnedRoomId>`). It compares with `T` and the borrowed id (both ways), converts from
/// them, parses from a `&str` as `T` does, and serialises exactly as `T` (a plain string for a
/// ruma id), so a stored record does not change shape. Where an API wants a `T`,
/// [`to_owned_id`](Shared::to_owned_id) copies it out (the machine keeps its own clone while
/// it knows the room, so converting an output's id is a copy). The value never changes once
/// made.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Shared<T>(Arc<T>);

/// A room id shared by reference count: the outbound machine's outputs and records name rooms
/// with it.
pub type SharedRoomId = Shared<OwnedRoomId>;

/// A server name shared by reference count: the outbound machine's outputs and records name
/// residents with it.
pub type SharedServerName = Shared<OwnedServerName>;

impl<T> Shared<T> {
    /// Shares `value`.
    pub fn new(value: T) -> Self {
        Shared(Arc::new(value))
    }

    /// Whether `self` and `other` are clones of one copy (then they are equal; equal values
    /// made apart are not clones).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// An owned `T`: the value itself when this is its last clone, else a copy.
    pub fn into_owned_id(self) -> T
    where
        T: Clone,
    {
        Arc::unwrap_or_clone(self.0)
    }

    /// A copy of the value, for an API that takes a `T`.
    pub fn to_owned_id(&self) -> T
    where
        T: Clone,
    {
        T::clone(&self.0)
    }

    /// How many clones of this copy exist (this one included): a set that hands the copy out
    /// forgets it when it holds the last one.
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> AsRef<T> for Shared<T> {
    fn as_ref(&self) -> &T {
        &self.0
    }
}

impl<T> Borrow<T> for Shared<T> {
    fn borrow(&self) -> &T {
        &self.0
    }
}

impl<T> From<T> for Shared<T> {
    fn from(value: T) -> Self {
        Shared::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl<T: fmt::Display> fmt::Display for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl<T: PartialEq> PartialEq<T> for Shared<T> {
    fn eq(&self, other: &T) -> bool {
        *self.0 == *other
    }
}

/// The borrowed-id conversions and comparisons of one ruma id type.
macro_rules! ruma_id {
    ($owned:ty, $borrowed:ty) => {
        impl From<&$borrowed> for Shared<$owned> {
            fn from(id: &$borrowed) -> Self {
                Shared::new(id.to_owned())
            }
        }

        impl TryFrom<&str> for Shared<$owned> {
            type Error = IdParseError;
            fn try_from(id: &str) -> Result<Self, IdParseError> {
                <$owned>::try_from(id).map(Shared::new)
            }
        }

        impl From<Shared<$owned>> for $owned {
            fn from(id: Shared<$owned>) -> Self {
                id.into_owned_id()
            }
        }

        impl Borrow<$borrowed> for Shared<$owned> {
            fn borrow(&self) -> &$borrowed {
                &self.0
            }
        }

        impl AsRef<$borrowed> for Shared<$owned> {
            fn as_ref(&self) -> &$borrowed {
                &self.0
            }
        }

        impl AsRef<str> for Shared<$owned> {
            fn as_ref(&self) -> &str {
                self.0.as_str()
            }
        }

        impl PartialEq<$borrowed> for Shared<$owned> {
            fn eq(&self, other: &$borrowed) -> bool {
                **self.0 == *other
            }
        }

        impl PartialEq<&$borrowed> for Shared<$owned> {
            fn eq(&self, other: &&$borrowed) -> bool {
                **self.0 == **other
            }
        }

        impl PartialEq<Shared<$owned>> for $owned {
            fn eq(&self, other: &Shared<$owned>) -> bool {
                *self == *other.0
            }
        }

        impl PartialEq<Shared<$owned>> for $borrowed {
            fn eq(&self, other: &Shared<$owned>) -> bool {
                *self == **other.0
            }
        }

        impl PartialEq<Shared<$owned>> for &$borrowed {
            fn eq(&self, other: &Shared<$owned>) -> bool {
                **self == **other.0
            }
        }
    };
}

ruma_id!(OwnedRoomId, RoomId);
ruma_id!(OwnedServerName, ServerName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_id_reads_compares_and_serialises_as_its_owned_id() {
        let owned: OwnedRoomId = "!r:a.org".try_into().unwrap();
        let id = SharedRoomId::from(owned.clone());
        let borrowed: &RoomId = &id;
        assert_eq!(borrowed, owned);
        assert_eq!(id, owned);
        assert_eq!(owned, id);
        assert_eq!(id, *borrowed);
        assert_eq!(id, borrowed);
        assert_eq!(borrowed, id);
        assert_eq!(SharedRoomId::from(borrowed), id);
        assert_eq!(format!("{id} {id:?}"), format!("{owned} {owned:?}"));
        assert_eq!(serde_json::to_string(&id).unwrap(), serde_json::to_string(&owned).unwrap());
        assert_eq!(serde_json::from_str::<SharedRoomId>("\"!r:a.org\"").unwrap(), id);
        assert!(serde_json::from_str::<SharedRoomId>("\"not a room\"").is_err(), "validated");
        assert_eq!(id.to_owned_id(), owned);
        assert_eq!(OwnedRoomId::from(id.clone()), owned);
        let server = SharedServerName::from(<&ServerName>::try_from("a.org").unwrap());
        assert_eq!(server, <&ServerName>::try_from("a.org").unwrap());
        assert_eq!(SharedServerName::try_from("a.org").unwrap(), server);
        assert!(SharedServerName::try_from("a.org/x").is_err(), "parsed as the owned id is");
        assert_eq!(AsRef::<str>::as_ref(&server), "a.org");
    }

    #[test]
    fn clones_share_one_copy_and_the_last_one_gives_it_back() {
        let id = SharedRoomId::from(OwnedRoomId::try_from("!r:a.org").unwrap());
        let copy = id.clone();
        assert!(copy.ptr_eq(&id));
        let apart = SharedRoomId::from(OwnedRoomId::try_from("!r:a.org").unwrap());
        assert!(!apart.ptr_eq(&id) && apart == id, "equal without being clones");
        let inner: *const RoomId = &**id;
        drop(copy);
        let owned = id.into_owned_id();
        assert!(std::ptr::eq(&*owned as *const RoomId, inner), "the last clone moves, not copies");
        let mut set = std::collections::HashSet::new();
        set.insert(apart);
        assert!(set.contains(<&RoomId>::try_from("!r:a.org").unwrap()), "found by the borrowed id");
    }
}
