//! The collections of a peek response, kept compact: [`PduList`], [`EventIdList`] and
//! [`StateIdMap`] each hold the one JSON text they were read from (a copy of that slice of the
//! body), checked and counted while parsing, and read lazily.
//!
//! Why not `Vec<Box<RawValue>>` / `Vec<OwnedEventId>` / `BTreeMap`: those allocate per
//! element. A 16 MiB `state` array of `{}` held 8.7 × the body's size after parsing that way
//! (an allocation and a 16-byte pointer for every 3 bytes of input), a map of `"$n":[]`
//! 7.8 ×, a list of `"$a"` 4.4 ×. Kept as text, every collection together holds at most the
//! body's size, plus a copy of the extremity ids for [`Extremities::Ids`](super::Extremities).
//! `tests/wire/heap.rs` measures it.
//!
//! Reading walks the text again: [`PduList::iter`] yields each PDU as a `&RawValue` slice of it
//! without allocating, and the id collections yield `Cow<EventId>` (borrowed unless the id was
//! written with JSON escapes). Equality is equality of the JSON text, which a round trip
//! through `Serialize` keeps.

use std::borrow::{Borrow, Cow};
use std::fmt;

use ruma_common::{EventId, OwnedEventId};
use serde::de::{self, Deserialize, Deserializer};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::json::{event_id_too_long, too_many};
use super::{MAX_EVENT_ID_BYTES, MAX_EXTREMITIES, MAX_PDUS_PER_LIST, MAX_STATE_IDS};

/// The top-level items of the text of a JSON array or object that `serde_json` has already
/// validated: each element (array) or `"key": value` member (object), trimmed. Nothing is
/// allocated; strings and nesting are tracked so commas inside them do not split.
#[derive(Clone)]
struct Items<'a> {
    text: &'a str,
    pos: usize,
    done: bool,
}

fn items(text: &str) -> Items<'_> {
    // A raw value's text starts at the value: `[` or `{`.
    Items { text, pos: 1, done: text.len() < 2 }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Iterator for Items<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.done {
            return None;
        }
        let b = self.text.as_bytes();
        let mut i = self.pos;
        while i < b.len() && is_ws(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] == b']' || b[i] == b'}' {
            self.done = true;
            return None;
        }
        let start = i;
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        while i < b.len() {
            let c = b[i];
            if in_string {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    in_string = false;
                }
            } else {
                match c {
                    b'"' => in_string = true,
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' if depth == 0 => break,
                    b']' | b'}' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let mut end = i;
        while end > start && is_ws(b[end - 1]) {
            end -= 1;
        }
        if i < b.len() && b[i] == b',' {
            self.pos = i + 1;
        } else {
            self.done = true;
        }
        // `start` and `end` sit next to ASCII bytes, so they are char boundaries.
        self.text.get(start..end)
    }
}

/// Splits an object member's text (`"key" : value`) into the key's JSON string and the value.
fn member(text: &str) -> Option<(&str, &str)> {
    let b = text.as_bytes();
    let mut i = 1;
    let mut escaped = false;
    while i < b.len() {
        match b[i] {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => break,
            _ => {}
        }
        i += 1;
    }
    let key = text.get(..=i)?;
    let value = text.get(i + 1..)?.trim_start_matches([' ', '\t', '\n', '\r']);
    let value = value.strip_prefix(':')?.trim_start_matches([' ', '\t', '\n', '\r']);
    Some((key, value))
}

/// A JSON string as text, borrowed when it has no escapes.
fn string(text: &str) -> Result<Cow<'_, str>, serde_json::Error> {
    match serde_json::from_str::<&str>(text) {
        Ok(s) => Ok(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(text).map(Cow::Owned),
    }
}

/// Why an event id in a collection is not acceptable.
enum IdError {
    TooLong,
    Invalid(String),
}

/// An event id written as a JSON string: at most [`MAX_EVENT_ID_BYTES`] and valid for ruma
/// (which checks only the `$` sigil for the ids of room versions 3 and later).
fn event_id(text: &str) -> Result<Cow<'_, EventId>, IdError> {
    let s = string(text).map_err(|e| IdError::Invalid(e.to_string()))?;
    if s.len() > MAX_EVENT_ID_BYTES {
        return Err(IdError::TooLong);
    }
    match s {
        Cow::Borrowed(s) => <&EventId>::try_from(s).map(Cow::Borrowed),
        Cow::Owned(s) => OwnedEventId::try_from(s).map(Cow::Owned),
    }
    .map_err(|e| IdError::Invalid(format!("invalid event id: {e}")))
}

fn id_error<E: de::Error>(e: IdError) -> E {
    match e {
        IdError::TooLong => event_id_too_long(),
        IdError::Invalid(reason) => E::custom(reason),
    }
}

/// The ids of an array's text, skipping (never expected, since it was checked) invalid ones.
fn ids(text: &str) -> impl Iterator<Item = Cow<'_, EventId>> + Clone {
    items(text).filter_map(|t| event_id(t).ok())
}

fn expect_kind<E: de::Error>(text: &str, open: u8, expected: &str) -> Result<(), E> {
    if text.as_bytes().first() == Some(&open) {
        return Ok(());
    }
    let unexpected = match text.as_bytes().first() {
        Some(b'[') => de::Unexpected::Seq,
        Some(b'{') => de::Unexpected::Map,
        Some(b'"') => de::Unexpected::Other("a string"),
        Some(b'n') => de::Unexpected::Unit,
        Some(b't' | b'f') => de::Unexpected::Other("a boolean"),
        _ => de::Unexpected::Other("a number"),
    };
    Err(E::invalid_type(unexpected, &expected))
}

/// Checks an array of event ids; returns how many, failing when `before` plus them exceed
/// [`MAX_STATE_IDS`].
fn check_ids<E: de::Error>(text: &str, before: usize) -> Result<usize, E> {
    expect_kind(text, b'[', "an array of event ids")?;
    let mut n = 0usize;
    for item in items(text) {
        n += 1;
        if before + n > MAX_STATE_IDS {
            return Err(too_many("state event ids", MAX_STATE_IDS));
        }
        event_id(item).map_err(id_error)?;
    }
    Ok(n)
}

fn raw_from(text: String) -> Box<RawValue> {
    // Built only from valid JSON pieces joined by `,` inside brackets or braces.
    RawValue::from_string(text).unwrap_or_else(|_| empty_array())
}

fn empty_array() -> Box<RawValue> {
    serde_json::value::to_raw_value(&[(); 0]).unwrap_or_default()
}

fn debug_text(f: &mut fmt::Formatter<'_>, name: &str, len: usize, text: &str) -> fmt::Result {
    const SHOWN: usize = 200;
    let shown: String = text.chars().take(SHOWN).collect();
    let more = if shown.len() < text.len() { "…" } else { "" };
    write!(f, "{name}(len {len}: {shown}{more})")
}

/// A list of PDUs (a peek response's `events`, `state`, `auth_chain`, `messages`): the JSON
/// array as it came, at most [`MAX_PDUS_PER_LIST`] elements of any JSON value (a host validates
/// each like a `send_join` PDU, R49).
///
/// Kept as one text rather than a `Vec<Box<RawValue>>`, whose allocation per element made a
/// 16 MiB array of `{}` take 8.7 × its size: parsed, a response holds about its body's size.
/// [`iter`](Self::iter) reads the PDUs back as slices of the text; equality is equality of the
/// text.
#[derive(Clone)]
pub struct PduList {
    raw: Box<RawValue>,
    len: usize,
}

impl PduList {
    /// An empty list (`[]`).
    pub fn new() -> Self {
        PduList { raw: empty_array(), len: 0 }
    }

    /// A list of the given PDUs, in order (a resident building its answer; not capped).
    pub fn from_pdus<P: Borrow<RawValue>>(pdus: impl IntoIterator<Item = P>) -> Self {
        let mut text = String::from("[");
        let mut len = 0usize;
        for pdu in pdus {
            if len > 0 {
                text.push(',');
            }
            text.push_str(pdu.borrow().get());
            len += 1;
        }
        text.push(']');
        PduList { raw: raw_from(text), len }
    }

    /// How many PDUs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The PDUs in order, each a slice of the list's text (no allocation).
    pub fn iter(&self) -> impl Iterator<Item = &RawValue> + Clone + '_ {
        items(self.raw.get()).filter_map(|t| serde_json::from_str::<&RawValue>(t).ok())
    }

    /// The whole array's JSON text.
    pub fn as_raw(&self) -> &RawValue {
        &self.raw
    }

    /// Checks an array's text; returns its length.
    fn check<E: de::Error>(text: &str) -> Result<usize, E> {
        expect_kind(text, b'[', "an array of PDUs")?;
        let mut n = 0usize;
        for _ in items(text) {
            n += 1;
            if n > MAX_PDUS_PER_LIST {
                return Err(too_many("PDUs", MAX_PDUS_PER_LIST));
            }
        }
        Ok(n)
    }

    /// The list of checked PDUs borrowed from a body, copied once.
    pub(crate) fn from_checked(list: &CheckedPdus<'_>) -> Self {
        PduList { raw: list.raw.to_owned(), len: list.len }
    }

    /// This list as a piece of [`PduList::concat`].
    pub(crate) fn part(&self) -> PduPart<'_> {
        PduPart::List(&self.raw, self.len)
    }

    /// The PDUs of several checked lists (and lone PDUs), in order, copied once.
    pub(crate) fn concat<'a>(parts: impl IntoIterator<Item = PduPart<'a>> + Clone) -> Self {
        let size: usize = parts
            .clone()
            .into_iter()
            .map(|p| match p {
                PduPart::List(l, _) => l.get().len(),
                PduPart::One(r) => r.get().len() + 1,
            })
            .sum();
        let mut text = String::with_capacity(size + 2);
        text.push('[');
        let mut len = 0usize;
        for part in parts {
            let (inner, n) = match part {
                PduPart::List(l, n) => {
                    let t = l.get();
                    (t.get(1..t.len().saturating_sub(1)).unwrap_or("").trim(), n)
                }
                PduPart::One(r) => (r.get(), 1),
            };
            if n == 0 {
                continue;
            }
            if len > 0 {
                text.push(',');
            }
            text.push_str(inner);
            len += n;
        }
        text.push(']');
        PduList { raw: raw_from(text), len }
    }
}

/// A piece of [`PduList::concat`]: a checked array's text and length, or one PDU.
#[derive(Clone, Copy)]
pub(crate) enum PduPart<'a> {
    List(&'a RawValue, usize),
    One(&'a RawValue),
}

/// A PDU array checked in place, borrowed from the body (no copy yet).
pub(crate) struct CheckedPdus<'a> {
    pub(crate) raw: &'a RawValue,
    pub(crate) len: usize,
}

impl CheckedPdus<'_> {
    /// This list as a piece of [`PduList::concat`].
    pub(crate) fn part(&self) -> PduPart<'_> {
        PduPart::List(self.raw, self.len)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CheckedPdus<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'a RawValue>::deserialize(d)?;
        let len = PduList::check(raw.get())?;
        Ok(CheckedPdus { raw, len })
    }
}

impl Default for PduList {
    fn default() -> Self {
        PduList::new()
    }
}

impl PartialEq for PduList {
    fn eq(&self, other: &Self) -> bool {
        self.raw.get() == other.raw.get()
    }
}

impl Eq for PduList {}

impl fmt::Debug for PduList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_text(f, "PduList", self.len, self.raw.get())
    }
}

impl Serialize for PduList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for PduList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let len = PduList::check(raw.get())?;
        Ok(PduList { raw, len })
    }
}

/// A list of event ids (`common_state_ids`; the extremities): the JSON array as it came, at
/// most [`MAX_STATE_IDS`] ids, each a valid event id of at most [`MAX_EVENT_ID_BYTES`].
#[derive(Clone)]
pub struct EventIdList {
    raw: Box<RawValue>,
    len: usize,
}

impl EventIdList {
    /// An empty list.
    pub fn new() -> Self {
        EventIdList { raw: empty_array(), len: 0 }
    }

    /// A list of the given ids, in order (not capped).
    pub fn from_ids<I: Borrow<EventId>>(ids: impl IntoIterator<Item = I>) -> Self {
        let mut text = String::from("[");
        let mut len = 0usize;
        for id in ids {
            if len > 0 {
                text.push(',');
            }
            // A string always serialises.
            text.push_str(&serde_json::to_string(id.borrow().as_str()).unwrap_or_default());
            len += 1;
        }
        text.push(']');
        EventIdList { raw: raw_from(text), len }
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids in order; borrowed from the list's text unless written with JSON escapes.
    pub fn iter(&self) -> impl Iterator<Item = Cow<'_, EventId>> + Clone + '_ {
        ids(self.raw.get())
    }

    /// Whether `id` is in the list.
    pub fn contains(&self, id: &EventId) -> bool {
        self.iter().any(|i| *i == *id)
    }

    /// The whole array's JSON text.
    pub fn as_raw(&self) -> &RawValue {
        &self.raw
    }
}

impl Default for EventIdList {
    fn default() -> Self {
        EventIdList::new()
    }
}

impl PartialEq for EventIdList {
    fn eq(&self, other: &Self) -> bool {
        self.raw.get() == other.raw.get()
    }
}

impl Eq for EventIdList {}

impl fmt::Debug for EventIdList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_text(f, "EventIdList", self.len, self.raw.get())
    }
}

impl Serialize for EventIdList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for EventIdList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let len = check_ids(raw.get(), 0)?;
        Ok(EventIdList { raw, len })
    }
}

/// `latest_event_state_ids`: forward extremity → ids of the state after it (minus the common
/// ones). The JSON object as it came: at most [`MAX_EXTREMITIES`] keys and [`MAX_STATE_IDS`]
/// ids in all the lists together, every key and id a valid event id of at most
/// [`MAX_EVENT_ID_BYTES`]. Members are read in wire order; a key sent twice appears twice
/// ([`get`](Self::get) finds the last, as a map would keep it).
#[derive(Clone)]
pub struct StateIdMap {
    raw: Box<RawValue>,
    len: usize,
    ids: usize,
}

impl StateIdMap {
    /// An empty map (`{}`).
    pub fn new() -> Self {
        StateIdMap::from_entries(std::iter::empty::<(&EventId, [&EventId; 0])>())
    }

    /// A map of the given entries, in order (not capped).
    pub fn from_entries<K, V, I>(entries: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Borrow<EventId>,
        V: IntoIterator<Item = I>,
        I: Borrow<EventId>,
    {
        let mut text = String::from("{");
        let (mut len, mut ids) = (0usize, 0usize);
        for (key, values) in entries {
            if len > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(key.borrow().as_str()).unwrap_or_default());
            text.push(':');
            let list = EventIdList::from_ids(values);
            ids += list.len;
            text.push_str(list.raw.get());
            len += 1;
        }
        text.push('}');
        let raw = RawValue::from_string(text).unwrap_or_else(|_| raw_from_object_fallback());
        StateIdMap { raw, len, ids }
    }

    /// How many extremities (keys).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many state ids all the lists hold together.
    pub fn state_id_count(&self) -> usize {
        self.ids
    }

    /// The entries in wire order: each extremity and the ids of its list.
    pub fn iter(
        &self,
    ) -> impl Iterator<Item = (Cow<'_, EventId>, impl Iterator<Item = Cow<'_, EventId>> + Clone)>
    + Clone
    + '_ {
        items(self.raw.get()).filter_map(|m| {
            let (key, value) = member(m)?;
            Some((event_id(key).ok()?, ids(value)))
        })
    }

    /// The extremities, in wire order.
    pub fn keys(&self) -> impl Iterator<Item = Cow<'_, EventId>> + Clone + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The ids after extremity `id` (the last entry for it, if sent twice).
    pub fn get(&self, id: &EventId) -> Option<impl Iterator<Item = Cow<'_, EventId>> + Clone> {
        self.iter().filter(|(k, _)| **k == *id).last().map(|(_, v)| v)
    }

    /// The whole object's JSON text.
    pub fn as_raw(&self) -> &RawValue {
        &self.raw
    }

    /// Checks an object's text; returns `(keys, ids)`.
    fn check<E: de::Error>(text: &str) -> Result<(usize, usize), E> {
        expect_kind(text, b'{', "a map of event ids to arrays of event ids")?;
        let (mut len, mut ids) = (0usize, 0usize);
        for m in items(text) {
            len += 1;
            if len > MAX_EXTREMITIES {
                return Err(too_many("extremities", MAX_EXTREMITIES));
            }
            let (key, value) = member(m).ok_or_else(|| E::custom("malformed object member"))?;
            event_id(key).map_err(id_error)?;
            ids += check_ids::<E>(value, ids)?;
        }
        Ok((len, ids))
    }
}

fn raw_from_object_fallback() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| empty_array())
}

impl Default for StateIdMap {
    fn default() -> Self {
        StateIdMap::new()
    }
}

impl PartialEq for StateIdMap {
    fn eq(&self, other: &Self) -> bool {
        self.raw.get() == other.raw.get()
    }
}

impl Eq for StateIdMap {}

impl fmt::Debug for StateIdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_text(f, "StateIdMap", self.len, self.raw.get())
    }
}

impl Serialize for StateIdMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for StateIdMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        let (len, ids) = StateIdMap::check(raw.get())?;
        Ok(StateIdMap { raw, len, ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_split_at_top_level_commas_only() {
        let text = r#"[ {"a":[1,2],"b":"x,]}"} , "s\"," ,[[]],3 ,null]"#;
        let got: Vec<&str> = items(text).collect();
        assert_eq!(got, [r#"{"a":[1,2],"b":"x,]}"}"#, r#""s\",""#, "[[]]", "3", "null"]);
        assert_eq!(items("[]").count(), 0);
        assert_eq!(items("[ ]").count(), 0);
        assert_eq!(items("{}").count(), 0);
        let members: Vec<(&str, &str)> =
            items(r#"{ "k\"1" : [1] ,"k2":{"x":"}"}}"#).filter_map(member).collect();
        assert_eq!(members, [(r#""k\"1""#, "[1]"), (r#""k2""#, r#"{"x":"}"}"#)]);
    }

    #[test]
    fn lists_agree_with_serde_json_and_round_trip() {
        let text = r#"[{"type":"m.room.create"}, 1 ,"two", [3], {"a":{"b":[]}}]"#;
        let list: PduList = serde_json::from_str(text).unwrap();
        let expected: Vec<&RawValue> = serde_json::from_str(text).unwrap();
        assert_eq!(list.len(), 5);
        let got: Vec<&str> = list.iter().map(RawValue::get).collect();
        let want: Vec<&str> = expected.iter().map(|r| r.get()).collect();
        assert_eq!(got, want);
        let again: PduList = serde_json::from_str(&serde_json::to_string(&list).unwrap()).unwrap();
        assert_eq!(again, list);
        assert_eq!(PduList::from_pdus(list.iter()).len(), 5);
    }

    #[test]
    fn ids_are_checked_and_escapes_are_read() {
        let list: EventIdList = serde_json::from_str(r#"["$a", "$b\u0063:x.org"]"#).unwrap();
        let got: Vec<String> = list.iter().map(|i| i.to_string()).collect();
        assert_eq!(got, ["$a", "$bc:x.org"]);
        assert!(matches!(list.iter().next(), Some(Cow::Borrowed(_))));
        assert!(serde_json::from_str::<EventIdList>(r#"["a"]"#).is_err());
        assert!(serde_json::from_str::<EventIdList>(r#"[1]"#).is_err());
        assert!(serde_json::from_str::<EventIdList>(r#"{}"#).is_err());
        let long = format!(r#"["${}"]"#, "a".repeat(MAX_EVENT_ID_BYTES));
        let err = serde_json::from_str::<EventIdList>(&long).unwrap_err();
        assert!(err.to_string().starts_with(super::super::json::ID_TOO_LONG), "{err}");
    }

    #[test]
    fn map_reads_members_in_order_and_finds_the_last() {
        let map: StateIdMap =
            serde_json::from_str(r#"{"$x":["$a","$b"], "$y" : [], "$x":["$c"]}"#).unwrap();
        assert_eq!((map.len(), map.state_id_count()), (3, 3));
        let keys: Vec<String> = map.keys().map(|k| k.to_string()).collect();
        assert_eq!(keys, ["$x", "$y", "$x"]);
        let x = EventId::parse("$x").unwrap();
        let last: Vec<String> = map.get(&x).unwrap().map(|i| i.to_string()).collect();
        assert_eq!(last, ["$c"]);
        let built = StateIdMap::from_entries(map.iter());
        assert_eq!(built.state_id_count(), 3);
        assert!(serde_json::from_str::<StateIdMap>(r#"{"x":[]}"#).is_err());
        assert!(serde_json::from_str::<StateIdMap>(r#"{"$x":"$y"}"#).is_err());
    }
}
