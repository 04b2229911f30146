//! Read-only queries on [`LocalPeeks`] for operators and admin APIs: a device's or a user's
//! live peeks, and why a peek ended. Answers change only after a `handle_*` call.

use ruma_common::{DeviceId, RoomId, UserId};

use super::state::{DevIdx, Entry};
use super::{LocalEndReason, LocalPeeks};
use crate::time::Timestamp;

/// One live local peek, from [`LocalPeeks::peeks_of_device`] or [`LocalPeeks::peeks_of_user`].
/// A snapshot: it does not change once taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalPeekInfo<'a> {
    /// The peeking user.
    pub user_id: &'a UserId,
    /// The peeking device.
    pub device_id: &'a DeviceId,
    /// The peeked room.
    pub room_id: &'a RoomId,
    /// When the lease ends unless the device peeks again (R11).
    pub expires_at: Timestamp,
}

/// Why and when a (user, device, room) peek ended, from [`LocalPeeks::end_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalEnding {
    /// Why it ended (`Joined` when the user joined the room).
    pub reason: LocalEndReason,
    /// When it ended.
    pub ended_at: Timestamp,
}

impl LocalPeeks {
    /// The device's live peeks, unordered. O(rooms the device peeks or recently peeked).
    pub fn peeks_of_device<'a>(
        &'a self,
        user: &UserId,
        device: &DeviceId,
    ) -> impl Iterator<Item = LocalPeekInfo<'a>> + 'a {
        self.find_device(user, device).into_iter().flat_map(move |d| self.live_of(d))
    }

    /// Every live peek of the user's devices, unordered. O(entries of the user's devices).
    pub fn peeks_of_user<'a>(
        &'a self,
        user: &UserId,
    ) -> impl Iterator<Item = LocalPeekInfo<'a>> + 'a {
        let devices = self.names.devices_of(&self.devices, user);
        devices.iter().flat_map(move |d| self.live_of(*d))
    }

    /// Why the device's last peek on the room ended, while the ended entry is retained: for
    /// [`LocalConfig::ended_retention`](super::LocalConfig::ended_retention) (24 h by default),
    /// less when `max_peeks_total` forces early collection, and not after a restart that came
    /// later than the retention. `None` when the device peeks the room now, never did, or the
    /// entry was collected. Changes when the device peeks the room again, when its peek ends,
    /// and when the entry is collected.
    pub fn end_reason(
        &self,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
    ) -> Option<LocalEnding> {
        let d = self.find_device(user, device)?;
        let r = self.find_room(room)?;
        match self.state_of(d, r)? {
            Entry::Ended { at, reason, .. } => Some(LocalEnding { reason, ended_at: at }),
            Entry::Peeking { .. } => None,
        }
    }

    fn live_of(&self, d: DevIdx) -> impl Iterator<Item = LocalPeekInfo<'_>> + '_ {
        let dev = self.dev(d);
        dev.entries.iter().filter_map(move |(r, &e)| match self.entry(e).state {
            Entry::Peeking { expires_at, .. } => Some(LocalPeekInfo {
                user_id: &dev.user,
                device_id: &dev.device,
                room_id: &self.room(*r).id,
                expires_at,
            }),
            Entry::Ended { .. } => None,
        })
    }
}
