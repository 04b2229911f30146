//! The inputs of [`LocalPeeks`]: `handle_*`.

use std::time::Duration;

use ruma_common::{DeviceId, RoomId, UserId};

use super::state::{DevIdx, Entry, RoomIdx};
use super::{LocalEndReason, LocalGrant, LocalPeekError, LocalPeeks};
use crate::{RoomAccess, Timestamp};

impl LocalPeeks {
    /// `POST /peek`: starts or renews the lease of (user, device, room).
    ///
    /// Checks, in order (DESIGN §4.1): already peeking → renew (new expiry, no new stream
    /// entry, no `Wake`, R5); `joined` → [`LocalPeekError::AlreadyJoined`] (R6); not
    /// `world_readable` → [`LocalPeekError::NotPeekable`] (R7); encrypted →
    /// [`LocalPeekError::Encrypted`] (R8); a cap → [`LocalPeekError::LimitExceeded`] (R3).
    /// A peek (start or renew) also counts as device activity (DESIGN §4.4).
    pub fn handle_peek(
        &mut self,
        now: Timestamp,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
        joined: bool,
        access: &RoomAccess,
    ) -> Result<LocalGrant, LocalPeekError> {
        let now = self.clock.advance(now);
        let lease = self.config.effective_lease();
        let existing = self.find_device(user, device).zip(self.room_ids.get(room).copied());
        if let Some((d, r)) = existing
            && let Some(Entry::Peeking { expires_at, .. }) = self.dev_mut(d).entries.get_mut(&r)
        {
            // R5: renew.
            let new_expiry = now.saturating_add(lease).max(*expires_at);
            *expires_at = new_expiry;
            self.leases.schedule((d, r), new_expiry);
            self.persist_entry(d, r);
            self.touch(now, d);
            return Ok(LocalGrant { room_id: room.to_owned(), expires_at: new_expiry });
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
        let device_peeks =
            self.find_device(user, device).map_or(0, |d| self.dev(d).live_peeks as usize);
        if device_peeks >= self.config.max_peeks_per_device {
            let d = self.find_device(user, device);
            let earliest = d.and_then(|d| {
                self.dev(d)
                    .entries
                    .values()
                    .filter_map(|e| match e {
                        Entry::Peeking { expires_at, .. } => Some(*expires_at),
                        Entry::Ended { .. } => None,
                    })
                    .min()
            });
            return Err(self.limit(now, earliest));
        }
        if self.live_total >= self.config.max_peeks_total {
            return Err(self.limit(now, self.leases.next()));
        }
        let d = self.intern_device(user, device);
        let r = self.intern_room(room);
        self.touch(now, d);
        let expires_at = self.start_peek(now, d, r);
        // The first `touch` revived an idle device; this one starts the idle clock now that
        // the device has a live peek.
        self.touch(now, d);
        Ok(LocalGrant { room_id: room.to_owned(), expires_at })
    }

    /// Orders two (device, room) entries by (user, device, room) ids.
    fn cmp_entries(&self, a: (DevIdx, RoomIdx), b: (DevIdx, RoomIdx)) -> std::cmp::Ordering {
        let (da, db) = (self.dev(a.0), self.dev(b.0));
        (&da.user, &da.device, &self.room(a.1).id).cmp(&(&db.user, &db.device, &self.room(b.1).id))
    }

    fn limit(&self, now: Timestamp, earliest: Option<Timestamp>) -> LocalPeekError {
        let retry_after = earliest
            .map_or(self.config.effective_lease(), |at| at.saturating_duration_since(now))
            .max(Duration::from_millis(1));
        LocalPeekError::LimitExceeded { retry_after }
    }

    /// `POST /unpeek` (R12): ends the peek; the room goes to `leave` in the device's next sync
    /// (R21). Unknown → [`LocalPeekError::NotPeeking`] (R13).
    pub fn handle_unpeek(
        &mut self,
        now: Timestamp,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
    ) -> Result<(), LocalPeekError> {
        let now = self.clock.advance(now);
        let (d, r) = self.live_peek(user, device, room).ok_or(LocalPeekError::NotPeeking)?;
        self.end_peek(now, d, r, LocalEndReason::Unpeeked);
        Ok(())
    }

    fn live_peek(
        &self,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
    ) -> Option<(DevIdx, RoomIdx)> {
        let d = self.find_device(user, device)?;
        let r = *self.room_ids.get(room)?;
        matches!(self.dev(d).entries.get(&r), Some(Entry::Peeking { .. })).then_some((d, r))
    }

    /// The user joined the room (R19, R20): every device of theirs peeking it moves to `join`
    /// without full state, the peeks end with [`LocalEndReason::Joined`], and a later leave does
    /// not bring `peek` back.
    pub fn handle_joined(&mut self, now: Timestamp, user: &UserId, room: &RoomId) {
        let now = self.clock.advance(now);
        let Some(&r) = self.room_ids.get(room) else { return };
        let mut devices: Vec<DevIdx> = self
            .users
            .get(user)
            .into_iter()
            .flat_map(|devices| devices.values().copied())
            .filter(|d| matches!(self.dev(*d).entries.get(&r), Some(Entry::Peeking { .. })))
            .collect();
        devices.sort_by(|a, b| self.cmp_entries((*a, r), (*b, r)));
        for d in devices {
            self.end_peek(now, d, r, LocalEndReason::Joined);
        }
    }

    /// The room's access changed (R24): when it is no longer peekable (not `world_readable`, or
    /// encrypted) every peek on it ends with [`LocalEndReason::AccessLost`] and goes to
    /// `leave`. A peekable `access` changes nothing.
    pub fn handle_access_changed(&mut self, now: Timestamp, room: &RoomId, access: &RoomAccess) {
        let now = self.clock.advance(now);
        if !access.is_peekable() {
            self.end_room(now, room, LocalEndReason::AccessLost);
        }
    }

    /// The remote room can no longer be peeked (R27; the coordinator calls this when the
    /// federated peek is lost for good): every peek on it ends with
    /// [`LocalEndReason::RemoteUnavailable`] and goes to `leave`.
    pub fn handle_room_unavailable(&mut self, now: Timestamp, room: &RoomId) {
        let now = self.clock.advance(now);
        self.end_room(now, room, LocalEndReason::RemoteUnavailable);
    }

    fn end_room(&mut self, now: Timestamp, room: &RoomId, reason: LocalEndReason) {
        let Some(&r) = self.room_ids.get(room) else { return };
        let mut devices = self.room(r).peekers.clone();
        devices.sort_by(|a, b| self.cmp_entries((*a, r), (*b, r)));
        for d in devices {
            self.end_peek(now, d, r, reason);
        }
    }

    /// The device was deleted or logged out (R25): its peeks and retained entries are dropped,
    /// with no `leave` entry and no `Wake` (nobody is left to sync).
    pub fn handle_device_removed(&mut self, now: Timestamp, user: &UserId, device: &DeviceId) {
        self.clock.advance(now);
        if let Some(d) = self.find_device(user, device) {
            self.remove_device(d, LocalEndReason::DeviceRemoved);
        }
    }

    /// The account was deactivated (R25): like [`LocalPeeks::handle_device_removed`] for each of
    /// its devices.
    pub fn handle_user_deactivated(&mut self, now: Timestamp, user: &UserId) {
        self.clock.advance(now);
        let mut devices: Vec<DevIdx> = self
            .users
            .get(user)
            .into_iter()
            .flat_map(|devices| devices.values().copied())
            .collect();
        devices.sort_unstable();
        for d in devices {
            self.remove_device(d, LocalEndReason::UserDeactivated);
        }
    }

    fn remove_device(&mut self, d: DevIdx, reason: LocalEndReason) {
        let now = self.clock.now();
        for r in self.peeking_rooms(d) {
            self.end_peek(now, d, r, reason);
        }
        let mut retained: Vec<RoomIdx> = self.dev(d).entries.keys().copied().collect();
        retained.sort_unstable();
        for r in retained {
            // Dropping a retained entry does not move the horizon: the device is gone.
            let Some(Entry::Ended { position, .. }) = self.dev_mut(d).entries.remove(&r) else {
                continue;
            };
            self.collect.cancel(&(position.0, d, r));
            self.dev_mut(d).ended -= 1;
            self.ended_total -= 1;
            self.persist_stream();
            let key = self.entry_key(d, r);
            self.out.push_back(super::LocalOutput::Persist(super::LocalChange::Remove(key)));
            self.room_mut(r).refs -= 1;
            self.release_room(r);
        }
        self.release_device(d);
    }

    /// The device synced (DESIGN §4.4): it counts as live for `device_idle_after` from `now`;
    /// if it was idle, its rooms are demanded again. Unknown devices are ignored.
    pub fn handle_device_synced(&mut self, now: Timestamp, user: &UserId, device: &DeviceId) {
        let now = self.clock.advance(now);
        if let Some(d) = self.find_device(user, device) {
            self.touch(now, d);
        }
    }

    /// Processes every deadline at or before `now`: leases end exactly at `expires_at` (R11,
    /// reason [`LocalEndReason::Expired`]), devices go idle, retained entries are collected.
    /// A no-op when nothing is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.clock.advance(now);
        let mut due = Vec::new();
        while let Some((key, at)) = self.leases.pop_due(now) {
            due.push((at, key));
        }
        // Canonical order (deadline, user, device, room), so positions and cap evictions do
        // not depend on slot numbering (which differs after a restore).
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| self.cmp_entries(a.1, b.1)));
        for (_, (d, r)) in due {
            self.end_peek(now, d, r, LocalEndReason::Expired);
        }
        while let Some((d, _)) = self.idle.pop_due(now) {
            self.go_idle(d);
        }
        while let Some(((_, d, r), _)) = self.collect.pop_due(now) {
            self.collect_entry(d, r);
        }
    }
}
