//! The reference model of `LocalPeeks` (MSC2753 device leases): plain `BTreeMap`s over a few
//! users, devices and rooms named by small numbers, with the machine's configuration as
//! constants. `tests/local/model.rs` drives the machine and this model with the same random
//! operations and compares every query after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use matrix_peek::{LocalConfig, LocalPeekError, RoomAccess, StreamPosition, SyncDelta};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, UserId};

/// How many users, devices per user and rooms the operations name.
pub const USERS: u8 = 3;
pub const DEVICES: u8 = 2;
pub const ROOMS: u8 = 3;
/// The machine's configuration ([`config`]), in ms and counts.
pub const LEASE: u64 = 1_000;
pub const PER_DEVICE: usize = 2;
pub const TOTAL: usize = 6;
pub const RETENTION: u64 = 1_500;
pub const IDLE: u64 = 700;

pub fn user(n: u8) -> OwnedUserId {
    UserId::parse(format!("@u{n}:example.org")).unwrap()
}

pub fn dev(n: u8) -> OwnedDeviceId {
    format!("D{n}").as_str().into()
}

pub fn room(n: u8) -> OwnedRoomId {
    RoomId::parse(format!("!r{n}:example.org")).unwrap()
}

/// The machine's configuration matching the constants; devices go idle only when `idle`.
pub fn config(idle: bool) -> LocalConfig {
    LocalConfig {
        lease: Duration::from_millis(LEASE),
        max_peeks_per_device: PER_DEVICE,
        max_peeks_total: TOTAL,
        ended_retention: Duration::from_millis(RETENTION),
        device_idle_after: idle.then_some(Duration::from_millis(IDLE)),
    }
}

/// A device: (user, device).
pub type Dev = (u8, u8);
/// A peek: (user, device, room).
pub type Key = (u8, u8, u8);

/// A model entry: a live peek (its stream position and lease end), or an ended one kept for
/// `sync_delta` until collected.
#[derive(Debug, Clone, Copy)]
pub enum ME {
    Peeking { started: u64, expires: u64 },
    Ended { started: u64, pos: u64, at: u64, joined: bool },
}

/// The model's state; `clock` is the latest time seen, `ended_now` counts the peeks ended by the
/// current step.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub idle_after: Option<u64>,
    pub clock: u64,
    pub entries: BTreeMap<Key, ME>,
    pub last_active: BTreeMap<Dev, u64>,
    pub idle: BTreeSet<Dev>,
    pub pos: u64,
    pub horizon: u64,
    pub ended_now: usize,
}

impl Model {
    pub fn live(&self) -> impl Iterator<Item = (Key, u64)> + '_ {
        self.entries.iter().filter_map(|(k, e)| match e {
            ME::Peeking { expires, .. } => Some((*k, *expires)),
            ME::Ended { .. } => None,
        })
    }
    pub fn dev_live(&self, dv: Dev) -> usize {
        self.live().filter(|((u, d, _), _)| (*u, *d) == dv).count()
    }
    pub fn ended_of(&self, dv: Option<Dev>) -> Vec<(u64, Key)> {
        self.entries
            .iter()
            .filter_map(|(k, e)| match e {
                ME::Ended { pos, .. } if dv.is_none_or(|dv| (k.0, k.1) == dv) => Some((*pos, *k)),
                _ => None,
            })
            .collect()
    }
    pub fn touch(&mut self, dv: Dev) {
        self.last_active.insert(dv, self.clock);
        self.idle.remove(&dv);
    }
    pub fn evict(&mut self, k: Key, pos: u64) {
        self.entries.remove(&k);
        self.horizon = self.horizon.max(pos);
    }
    pub fn enforce(&mut self, dv: Dev) {
        loop {
            let mine = self.ended_of(Some(dv));
            if mine.len() <= PER_DEVICE {
                break;
            }
            let (pos, k) = *mine.iter().min().unwrap();
            self.evict(k, pos);
        }
        loop {
            let all = self.ended_of(None);
            if all.is_empty() || all.len() + self.live().count() <= TOTAL {
                break;
            }
            let (pos, k) = *all.iter().min().unwrap();
            self.evict(k, pos);
        }
    }
    pub fn limit(&self, earliest: Option<u64>) -> LocalPeekError {
        let ms = earliest.map_or(LEASE, |e| e.saturating_sub(self.clock)).max(1);
        LocalPeekError::LimitExceeded { retry_after: Duration::from_millis(ms) }
    }
    /// The host's clock reads `now`: later times move the model's clock; a step back of at
    /// most `CLOCK_STEP_LIMIT` is absorbed; a larger one is a correction, after which no lease
    /// ends later than `now + LEASE`, no ended entry is dated after `now`, and no device was
    /// last active after `now`.
    pub fn advance(&mut self, now: u64) {
        let limit = matrix_peek::CLOCK_STEP_LIMIT.as_millis() as u64;
        if now >= self.clock {
            self.clock = now;
        } else if self.clock - now > limit {
            self.heal(now);
        }
    }

    /// The correction (or a restore at `now`): the clock is `now` and nothing outlives its
    /// normal length from it.
    pub fn heal(&mut self, now: u64) {
        {
            self.clock = now;
            for e in self.entries.values_mut() {
                match e {
                    ME::Peeking { expires, .. } => *expires = (*expires).min(now + LEASE),
                    ME::Ended { at, .. } => *at = (*at).min(now),
                }
            }
            for active in self.last_active.values_mut() {
                *active = (*active).min(now);
            }
        }
    }

    /// A peek by the host at `host_now` (its lease runs from there, not from the model's
    /// possibly later clock).
    pub fn peek(
        &mut self,
        k: Key,
        joined: bool,
        access: &RoomAccess,
        host_now: u64,
    ) -> Result<u64, LocalPeekError> {
        let dv = (k.0, k.1);
        if let Some(ME::Peeking { expires, .. }) = self.entries.get_mut(&k) {
            *expires = host_now + LEASE;
            let e = *expires;
            self.touch(dv);
            return Ok(e);
        }
        if joined {
            return Err(LocalPeekError::AlreadyJoined);
        }
        if !access.world_readable {
            return Err(LocalPeekError::NotPeekable);
        }
        if access.encrypted {
            return Err(LocalPeekError::Encrypted);
        }
        if self.dev_live(dv) >= PER_DEVICE {
            let earliest =
                self.live().filter(|((u, d, _), _)| (*u, *d) == dv).map(|(_, e)| e).min();
            return Err(self.limit(earliest));
        }
        if self.live().count() >= TOTAL {
            return Err(self.limit(self.live().map(|(_, e)| e).min()));
        }
        self.touch(dv);
        self.pos += 1;
        self.entries.insert(k, ME::Peeking { started: self.pos, expires: host_now + LEASE });
        self.enforce(dv);
        Ok(host_now + LEASE)
    }
    pub fn end(&mut self, k: Key, removed: bool, joined: bool) {
        let Some(ME::Peeking { started, .. }) = self.entries.get(&k).copied() else { return };
        self.ended_now += 1;
        let dv = (k.0, k.1);
        if removed {
            self.entries.remove(&k);
        } else {
            self.pos += 1;
            self.entries.insert(k, ME::Ended { started, pos: self.pos, at: self.clock, joined });
        }
        if self.dev_live(dv) == 0 {
            self.idle.remove(&dv);
        }
        if !removed {
            self.enforce(dv);
        }
    }
    pub fn end_room(&mut self, r: u8) {
        let keys: Vec<Key> = self.live().map(|(k, _)| k).filter(|k| k.2 == r).collect();
        for k in keys {
            self.end(k, false, false);
        }
    }
    pub fn remove_device(&mut self, dv: Dev) {
        let keys: Vec<Key> = self.entries.keys().copied().filter(|k| (k.0, k.1) == dv).collect();
        for k in keys {
            if matches!(self.entries[&k], ME::Peeking { .. }) {
                self.end(k, true, false);
            } else {
                self.entries.remove(&k);
            }
        }
    }
    pub fn timeout(&mut self) {
        let now = self.clock;
        let mut due: Vec<(u64, Key)> =
            self.live().filter(|(_, e)| *e <= now).map(|(k, e)| (e, k)).collect();
        due.sort();
        for (_, k) in due {
            self.end(k, false, false);
        }
        if let Some(idle) = self.idle_after {
            let devs: BTreeSet<Dev> = self.live().map(|((u, d, _), _)| (u, d)).collect();
            for dv in devs {
                if !self.idle.contains(&dv) && self.last_active[&dv] + idle <= now {
                    self.idle.insert(dv);
                }
            }
        }
        let collect: Vec<(u64, Key)> = self
            .entries
            .iter()
            .filter_map(|(k, e)| match e {
                ME::Ended { pos, at, .. } if at + RETENTION <= now => Some((*pos, *k)),
                _ => None,
            })
            .collect();
        for (pos, k) in collect {
            self.evict(k, pos);
        }
    }
    pub fn restore(&mut self, now: u64) {
        self.heal(now);
        let devs: BTreeSet<Dev> = self.live().map(|((u, d, _), _)| (u, d)).collect();
        self.idle.clear();
        for dv in devs {
            self.last_active.insert(dv, self.clock);
        }
    }
    pub fn poll_timeout(&self) -> Option<u64> {
        let leases = self.live().map(|(_, e)| e);
        let idle = self.idle_after.into_iter().flat_map(|idle| {
            let devs: BTreeSet<Dev> = self.live().map(|((u, d, _), _)| (u, d)).collect();
            devs.into_iter()
                .filter(|dv| !self.idle.contains(dv))
                .map(move |dv| self.last_active[&dv] + idle)
        });
        let collect = self.entries.values().filter_map(|e| match e {
            ME::Ended { at, .. } => Some(at + RETENTION),
            ME::Peeking { .. } => None,
        });
        leases.chain(idle).chain(collect).min()
    }
    pub fn demanded(&self) -> BTreeSet<u8> {
        self.live()
            .filter(|((u, d, _), _)| !self.idle.contains(&(*u, *d)))
            .map(|((_, _, r), _)| r)
            .collect()
    }
    pub fn sync_delta(&self, dv: Dev, since: Option<u64>) -> SyncDelta {
        let since = since.filter(|s| *s >= self.horizon && *s <= self.pos);
        let mut delta = SyncDelta { next: StreamPosition(self.pos), ..SyncDelta::default() };
        for ((u, d, r), e) in &self.entries {
            if (*u, *d) != dv {
                continue;
            }
            match (e, since) {
                (ME::Peeking { .. }, None) => delta.started.push(room(*r)),
                (ME::Peeking { started, .. }, Some(s)) if *started > s => {
                    delta.started.push(room(*r))
                }
                (ME::Peeking { .. }, Some(_)) => delta.peeking.push(room(*r)),
                (ME::Ended { .. }, None) => {}
                (ME::Ended { started, pos, joined, .. }, Some(s)) => {
                    if *pos > s && *started <= s {
                        if *joined {
                            delta.joined.push(room(*r))
                        } else {
                            delta.ended.push(room(*r))
                        }
                    }
                }
            }
        }
        delta.started.sort();
        delta.peeking.sort();
        delta.ended.sort();
        delta.joined.sort();
        delta
    }
}
