//! The crate's small shared vocabulary of identifiers: [`RequestId`], [`StreamPosition`],
//! [`PeekId`], and the MSC2444 peek id syntax.
//!
//! They live on the ground floor, beside [`Timestamp`](crate::Timestamp), so that every machine
//! imports them downwards and none of them depends on the crate root.

use serde::{Deserialize, Serialize};

/// Names an IO request a machine asked for; the result comes back with the same id.
///
/// Allocated from a counter, never random. Unique within one machine's lifetime and, because
/// the counter is restored past every persisted request, across restarts too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// A monotonic position in the stream of local peek changes, for `/sync` `since` tokens
/// (docs/architecture.md §4.3). Every (user, device, room) change gets a fresh, larger
/// position.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StreamPosition(pub u64);

/// A peek id as the machines hand it out (outbound requests and records, inbound records, keys
/// and `Expired` outputs): a string, stored inline up to 24 bytes (12 on 32-bit targets), so
/// an id of that length (ours have 8 characters, R47) is copied into each output without an
/// allocation. Longer ids (a remote server may choose one, a restored record may name one)
/// live on the heap.
///
/// It reads as a `&str` (`Deref`, `AsRef`, `Borrow`, with `Hash` and `Eq` those of the
/// string), compares with `str` and `String`, converts from `&str` and `String` (also by
/// `parse`, or collected from `char`s) and into `String`, and serialises as a plain JSON string. A value never changes
/// once made. Requests hand peek ids in as `&str` (the inbound machine, the coordinator, the
/// driver).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeekId(compact_str::CompactString);

impl PeekId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a `String`.
    pub fn into_string(self) -> String {
        self.0.into_string()
    }
}

impl FromIterator<char> for PeekId {
    fn from_iter<I: IntoIterator<Item = char>>(chars: I) -> Self {
        PeekId(chars.into_iter().collect())
    }
}

impl std::str::FromStr for PeekId {
    type Err = std::convert::Infallible;
    fn from_str(id: &str) -> Result<Self, Self::Err> {
        Ok(PeekId::from(id))
    }
}

impl std::ops::Deref for PeekId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for PeekId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for PeekId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PeekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for PeekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl From<&str> for PeekId {
    fn from(id: &str) -> Self {
        PeekId(id.into())
    }
}

impl From<String> for PeekId {
    fn from(id: String) -> Self {
        PeekId(id.into())
    }
}

impl From<PeekId> for String {
    fn from(id: PeekId) -> Self {
        id.0.into_string()
    }
}

impl PartialEq<str> for PeekId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for PeekId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for PeekId {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<PeekId> for str {
    fn eq(&self, other: &PeekId) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<PeekId> for &str {
    fn eq(&self, other: &PeekId) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<PeekId> for String {
    fn eq(&self, other: &PeekId) -> bool {
        self == other.as_str()
    }
}

/// Whether `id` is a peek id as MSC2444 defines it: 1–8 characters of `[0-9a-zA-Z.=_-]` (R29,
/// R47). `PeekIdPolicy::Strict` accepts exactly these; the outbound machine only makes these.
pub(crate) fn is_msc_peek_id(id: &str) -> bool {
    (1..=8).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'=' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peek_id_reads_compares_and_serialises_as_a_plain_string() {
        let id = PeekId::from("a1B2c3_-");
        assert_eq!(&*id, "a1B2c3_-");
        assert_eq!(id, "a1B2c3_-");
        assert_eq!("a1B2c3_-", id);
        assert_eq!(id, String::from("a1B2c3_-"));
        assert_eq!(format!("{id} {id:?}"), "a1B2c3_- \"a1B2c3_-\"");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"a1B2c3_-\"");
        assert_eq!(serde_json::from_str::<PeekId>("\"a1B2c3_-\"").unwrap(), id);
        assert_eq!(String::from(id.clone()), "a1B2c3_-");
        assert_eq!(id.clone().into_string(), "a1B2c3_-");
        assert_eq!("a1B2c3_-".parse::<PeekId>().unwrap(), id);
        assert_eq!("a1B2c3_-".chars().collect::<PeekId>(), id);
        let (a, b) = (PeekId::from("a"), PeekId::from("b"));
        assert!(a < b, "ordered as strings");
    }

    #[test]
    fn a_peek_id_longer_than_its_inline_room_survives_on_the_heap() {
        let long = "x".repeat(40);
        let id = PeekId::from(long.clone());
        assert!(id.0.is_heap_allocated());
        assert_eq!(id.clone(), long);
        assert!(!PeekId::from("00000001").0.is_heap_allocated(), "the machine's ids are inline");
    }
}
