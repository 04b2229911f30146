//! The output queue of [`LocalPeeks`](super::LocalPeeks): compact records that name their
//! device and room by slot, turned into [`LocalOutput`]s (with owned ids) only when
//! `poll_output` hands them out.
//!
//! Why: one expiry sweep may end a hundred thousand peeks at once. Queued as finished
//! outputs, each end would copy six or seven ids into fresh allocations, all before the host
//! takes the first one, so none of them could reuse a freed block. Queued compact, each id is
//! copied as the host takes its output, into the block a host that handles each output before
//! taking the next has just freed; the queue holds about 40 bytes per output instead of about
//! 130. The coordinator (`Peeking`) takes every output of an input at once into its own queue,
//! so behind it the copies are made in one run as before, and only the smaller queue remains
//! (BENCHMARKS.md, "Part 2, seventh step").
//!
//! A queued record *pins* the slots it names (`queued` on the device and the room slot): a
//! pinned slot is not freed, so its names are still there when the output is taken, even if
//! its last entry went away in between. Taking the output unpins, and frees the slot if
//! nothing else holds it. A pinned slot with no entries is still found by its name, and a new
//! peek of the same device or room simply uses it again.
//!
//! ```text
//!   handle_* ──queue(Queued)──▶ [Queued …] ──poll_output──▶ LocalOutput (ids cloned)
//!                 pin d / r                     unpin d / r, free the slot if unheld
//! ```

use super::record::{LocalChange, LocalKey, LocalRecord};
use super::state::{DevIdx, RoomIdx};
use super::{LocalEndReason, LocalOutput, LocalPeeks};
use crate::ids::StreamPosition;
use crate::time::Timestamp;

/// One output waiting in the queue. Every field but the slots is the value at the time it was
/// queued (a later change of the entry queues its own record).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Queued {
    /// `Persist(Upsert(Peek))` of (d, r).
    UpsertPeek { d: DevIdx, r: RoomIdx, started: StreamPosition, expires_at: Timestamp },
    /// `Persist(Upsert(Ended))` of (d, r).
    UpsertEnded {
        d: DevIdx,
        r: RoomIdx,
        started: StreamPosition,
        position: StreamPosition,
        at: Timestamp,
        reason: LocalEndReason,
    },
    /// `Persist(Remove(Entry))` of (d, r).
    Remove { d: DevIdx, r: RoomIdx },
    /// `Persist(Upsert(Stream))`.
    Stream { position: StreamPosition, horizon: StreamPosition },
    /// `Wake` of d.
    Wake { d: DevIdx },
    /// `RoomDemand` of r.
    Demand { r: RoomIdx, demanded: bool },
    /// `PeekEnded` of (d, r).
    Ended { d: DevIdx, r: RoomIdx, reason: LocalEndReason },
}

impl Queued {
    /// The device and room slots this record names (and pins).
    pub(super) fn slots(self) -> (Option<DevIdx>, Option<RoomIdx>) {
        match self {
            Queued::UpsertPeek { d, r, .. }
            | Queued::UpsertEnded { d, r, .. }
            | Queued::Remove { d, r }
            | Queued::Ended { d, r, .. } => (Some(d), Some(r)),
            Queued::Wake { d } => (Some(d), None),
            Queued::Demand { r, .. } => (None, Some(r)),
            Queued::Stream { .. } => (None, None),
        }
    }
}

impl LocalPeeks {
    /// Queues `q` after every output queued before it, pinning the slots it names.
    pub(super) fn queue(&mut self, q: Queued) {
        let (d, r) = q.slots();
        if let Some(d) = d {
            self.dev_mut(d).queued += 1;
        }
        if let Some(r) = r {
            self.room_mut(r).queued += 1;
        }
        self.out.push_back(q);
    }

    /// The oldest queued output with its ids copied out of its slots, which it then unpins
    /// (freeing each if nothing else holds it).
    pub(super) fn take_output(&mut self) -> Option<LocalOutput> {
        let q = self.out.pop_front()?;
        let output = self.materialize(q);
        let (d, r) = q.slots();
        if let Some(d) = d {
            self.dev_mut(d).queued -= 1;
            self.release_device(d);
        }
        if let Some(r) = r {
            self.room_mut(r).queued -= 1;
            self.release_room(r);
        }
        Some(output)
    }

    /// The output `q` stands for; its slots are pinned, so they still hold its names.
    fn materialize(&self, q: Queued) -> LocalOutput {
        let user_id = |d: DevIdx| self.dev(d).user.clone();
        let device_id = |d: DevIdx| self.dev(d).device.clone();
        let room_id = |r: RoomIdx| self.room(r).id.clone();
        match q {
            Queued::UpsertPeek { d, r, started, expires_at } => {
                LocalOutput::Persist(LocalChange::Upsert(LocalRecord::Peek {
                    user_id: user_id(d),
                    device_id: device_id(d),
                    room_id: room_id(r),
                    started,
                    expires_at,
                }))
            }
            Queued::UpsertEnded { d, r, started, position, at, reason } => {
                LocalOutput::Persist(LocalChange::Upsert(LocalRecord::Ended {
                    user_id: user_id(d),
                    device_id: device_id(d),
                    room_id: room_id(r),
                    started,
                    position,
                    at,
                    reason,
                }))
            }
            Queued::Remove { d, r } => LocalOutput::Persist(LocalChange::Remove(LocalKey::Entry {
                user_id: user_id(d),
                device_id: device_id(d),
                room_id: room_id(r),
            })),
            Queued::Stream { position, horizon } => {
                LocalOutput::Persist(LocalChange::Upsert(LocalRecord::Stream { position, horizon }))
            }
            Queued::Wake { d } => {
                LocalOutput::Wake { user_id: user_id(d), device_id: device_id(d) }
            }
            Queued::Demand { r, demanded } => {
                LocalOutput::RoomDemand { room_id: room_id(r), demanded }
            }
            Queued::Ended { d, r, reason } => LocalOutput::PeekEnded {
                user_id: user_id(d),
                device_id: device_id(d),
                room_id: room_id(r),
                reason,
            },
        }
    }
}
