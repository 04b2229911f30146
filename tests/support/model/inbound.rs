//! The reference model of `InboundPeeks` (MSC2444, resident side): a `BTreeMap` of live peeks
//! keyed by small numbers (server, room, peek id), each with its renewal and expiry time, and
//! the machine's configuration as constants. `tests/inbound/model.rs` drives the machine and
//! this model with the same random operations and compares after every step.

use std::collections::BTreeMap;
use std::time::Duration;

use matrix_peek::{InboundConfig, InboundEndReason, InboundPeekError, RoomAccess};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

/// The machine's configuration ([`config`]), in ms and counts.
pub const INTERVAL: u64 = 1_000;
pub const GRACE: u64 = 100;
pub const MAX_PER_SERVER: usize = 4;
pub const MAX_PER_ROOM: usize = 5;
pub const MAX_TOTAL: usize = 7;

/// The machine's configuration matching the constants.
pub fn config() -> InboundConfig {
    InboundConfig {
        renewal_interval: Duration::from_millis(INTERVAL),
        grace: Duration::from_millis(GRACE),
        max_peeks_per_server: MAX_PER_SERVER,
        max_peeks_per_room: MAX_PER_ROOM,
        max_peeks_total: MAX_TOTAL,
        ..InboundConfig::default()
    }
}

pub fn server(i: u8) -> OwnedServerName {
    format!("s{i}.org").try_into().unwrap()
}

pub fn room(i: u8) -> OwnedRoomId {
    format!("!r{i}:x.org").try_into().unwrap()
}

/// Peek ids: a short one, one longer than the 24 bytes a slot holds inline (kept on the heap),
/// and Dendrite's (the room id).
pub fn peek_id(i: u8) -> String {
    ["a", "peek-01HZX3K4M5N6P7Q8R9S0T1V2W3", "!r0:x.org"][i as usize % 3].to_owned()
}

/// A peek: (server, room, peek id).
pub type Key = (u8, u8, u8);

/// An `Expired` output as (server, room, peek id, reason).
pub type Expiry = (String, String, String, InboundEndReason);

pub fn expiry((s, r, p): Key, reason: InboundEndReason) -> Expiry {
    (server(s).to_string(), room(r).to_string(), peek_id(p), reason)
}

/// The obviously-right model.
#[derive(Default)]
pub struct Model {
    /// The latest time seen.
    pub last: u64,
    /// key → (renewed_at, expires_at)
    pub live: BTreeMap<Key, (u64, u64)>,
}

impl Model {
    /// The host's clock reads `now`: a later time moves the model's time, a step back within
    /// `CLOCK_STEP_LIMIT` is absorbed, a larger one is a correction (see [`heal`](Self::heal));
    /// then what is due lapses into `expired`. Returns the model's time.
    pub fn advance(&mut self, now: u64, expired: &mut Vec<Expiry>) -> u64 {
        let limit = matrix_peek::CLOCK_STEP_LIMIT.as_millis() as u64;
        if now >= self.last {
            self.last = now;
        } else if self.last - now > limit {
            self.heal(now);
        }
        let due: Vec<Key> =
            self.live.iter().filter(|(_, (_, e))| *e <= self.last).map(|(k, _)| *k).collect();
        for k in due {
            self.live.remove(&k);
            expired.push(expiry(k, InboundEndReason::Lapsed));
        }
        self.last
    }

    pub fn count(&self, f: impl Fn(&Key) -> bool) -> usize {
        self.live.keys().filter(|k| f(k)).count()
    }

    /// A `PUT` at the host's `now`: whether it refreshed a live peek, or why it is refused. A
    /// granted peek lives from `now`.
    pub fn peek(
        &mut self,
        now: u64,
        key: Key,
        access: Option<&RoomAccess>,
        versions: &[RoomVersionId],
    ) -> Result<bool, InboundPeekError> {
        let (s, r, _) = key;
        let expect = if let Some(acc) = access {
            if !acc.is_peekable() {
                Err(InboundPeekError::NotPeekable)
            } else if versions.is_empty() {
                Err(InboundPeekError::IncompatibleRoomVersion { room_version: RoomVersionId::V10 })
            } else if self.live.contains_key(&key) {
                Ok(true)
            } else if self.live.len() >= MAX_TOTAL
                || self.count(|k| k.0 == s) >= MAX_PER_SERVER
                || self.count(|k| k.1 == r) >= MAX_PER_ROOM
            {
                Err(InboundPeekError::LimitExceeded { retry_after: Duration::ZERO })
            } else {
                Ok(false)
            }
        } else {
            Err(InboundPeekError::UnknownRoom)
        };
        if expect.is_ok() {
            self.live.insert(key, (now, now + INTERVAL + GRACE));
        }
        expect
    }

    /// A renewal at the host's `now`: the new expiry, or `UnknownPeek`.
    pub fn renew(&mut self, now: u64, key: Key) -> Result<u64, InboundPeekError> {
        let e = self.live.get_mut(&key).ok_or(InboundPeekError::UnknownPeek)?;
        *e = (now, now + INTERVAL + GRACE);
        Ok(e.1)
    }

    /// A `DELETE`: no `Expired` follows it.
    pub fn unpeek(&mut self, key: Key) -> Result<(), InboundPeekError> {
        self.live.remove(&key).map(|_| ()).ok_or(InboundPeekError::UnknownPeek)
    }

    /// Room `r` is no longer peekable: every peek of it expires.
    pub fn access_lost(&mut self, r: u8, expired: &mut Vec<Expiry>) {
        let keys: Vec<Key> = self.live.keys().filter(|k| k.1 == r).copied().collect();
        for k in keys {
            self.live.remove(&k);
            expired.push(expiry(k, InboundEndReason::AccessLost));
        }
    }

    /// Server `s` is denied in room `r`: its peeks of `r` expire.
    pub fn denied(&mut self, s: u8, r: u8, expired: &mut Vec<Expiry>) {
        let keys: Vec<Key> = self.live.keys().filter(|k| k.0 == s && k.1 == r).copied().collect();
        for k in keys {
            self.live.remove(&k);
            expired.push(expiry(k, InboundEndReason::ServerDenied));
        }
    }

    /// A clock correction (or a restart) at `now`: the time is `now`, no peek was renewed after
    /// it, and none lives beyond `now + INTERVAL + GRACE`.
    pub fn heal(&mut self, now: u64) {
        self.last = now;
        for (renewed, expires) in self.live.values_mut() {
            *renewed = (*renewed).min(now);
            *expires = (*expires).min(now + INTERVAL + GRACE);
        }
    }

    /// A restart at `clock` from the store: stored times heal as for a correction.
    pub fn restart(&mut self, clock: u64) {
        self.heal(clock);
    }
}
