//! Questions a test asks the simulator: how long a device went without its room's events
//! ([`Sim::event_gaps`]) and what happened to a server's federated peek of a room
//! ([`Sim::outbound_history`]), answered from the simulator's own bookkeeping.

use std::collections::BTreeMap;
use std::time::Duration;

use ruma_common::{
    DeviceId, OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, ServerName, UserId,
};

use super::{Sim, SimError};
use crate::{OutboundLostReason, OutboundPeekError, Output, Timestamp};

/// An interval during which a device's server was behind a room the device peeked: events
/// of the room had been created (at their origin) while the device peeked it, and neither
/// they nor any newer event of the room had reached the device's server. From
/// [`Sim::event_gaps`]; a snapshot that does not change once taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// The room.
    pub room_id: OwnedRoomId,
    /// When the first event the server lacked was created (or the window's start).
    pub start: Timestamp,
    /// When the server caught up (see `caught_up`), or when the device stopped peeking, or
    /// the window's end, whichever came first.
    pub end: Timestamp,
    /// Events of the gap that had not reached the server by `end`: with no fetching of
    /// missed events in the simulator, those of an outage never arrive.
    pub missed: u64,
    /// Whether the gap ended because an event at least as new as every one created so far
    /// reached the server (`false`: the peek or the window ended first).
    pub caught_up: bool,
}

impl Gap {
    /// `end - start`.
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// One host-facing outbound output of a server for a room, from [`Sim::outbound_history`]. A
/// snapshot: it does not change once taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboundEvent {
    /// When the server emitted it.
    pub at: Timestamp,
    /// What it said.
    pub kind: OutboundEventKind,
}

/// What an [`OutboundEvent`] said.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutboundEventKind {
    /// `Output::Established` through `resident`: the first peek of the room, a re-peek through
    /// the same resident after `Lost` (`missed_since` set), or one after the room was given up.
    Established {
        /// The resident that granted it.
        resident: OwnedServerName,
        /// Events after this time may be missing (`Output::Established::missed_since`).
        missed_since: Option<Timestamp>,
    },
    /// `Output::Established` right after `Lost`, through another resident than the lost
    /// peek's: a failover.
    FailedOver {
        /// The resident of the lost peek.
        from: OwnedServerName,
        /// The resident of the new one.
        to: OwnedServerName,
        /// Events after this time may be missing.
        missed_since: Option<Timestamp>,
    },
    /// `Output::Lost`: an established peek dropped; the server keeps trying.
    Lost {
        /// The resident of the lost peek (the last `Established` or `FailedOver` one).
        resident: Option<OwnedServerName>,
        /// Why.
        reason: OutboundLostReason,
    },
    /// `Output::Unavailable`: no peek could be had; waiting client peeks failed.
    Unavailable {
        /// Why.
        error: OutboundPeekError,
    },
}

type SpanKey = (OwnedServerName, OwnedUserId, OwnedDeviceId, OwnedRoomId);

/// When each device peeked each room: opened by a granted client peek, closed by
/// `Output::PeekEnded` (or a restart that lost the peek).
#[derive(Debug, Default)]
pub(super) struct Spans(BTreeMap<SpanKey, Vec<(Timestamp, Option<Timestamp>)>>);

impl Spans {
    /// The device peeks the room from `now` (nothing changes if it already does).
    pub(super) fn open(
        &mut self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
        now: Timestamp,
    ) {
        let key = (server.to_owned(), user.to_owned(), device.to_owned(), room.to_owned());
        let spans = self.0.entry(key).or_default();
        if !spans.last().is_some_and(|(_, end)| end.is_none()) {
            spans.push((now, None));
        }
    }

    /// The device's peek of the room ended at `now`.
    pub(super) fn close(
        &mut self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        room: &RoomId,
        now: Timestamp,
    ) {
        let key = (server.to_owned(), user.to_owned(), device.to_owned(), room.to_owned());
        if let Some((_, end @ None)) = self.0.get_mut(&key).and_then(|s| s.last_mut()) {
            *end = Some(now);
        }
    }
}

impl Sim {
    /// The intervals within `[from, to]` (`to` cut at [`now`](Self::now)) during which
    /// `user`'s `device` on `server` peeked a room and `server` was behind it, in order of
    /// start. Defined from the simulator's own records, for each room the device peeked:
    ///
    /// * a device peeks a room from the moment its client peek was granted (at once or when
    ///   the pending peek completed) until `Output::PeekEnded` (unpeek, lease, join, access
    ///   loss, …) or a crash-restart that lost it; it does not matter whether through a
    ///   federated peek or locally on a resident server;
    /// * event `k` was created at its origin at `c(k)` and first reached `server` at `a(k)`
    ///   (never, if it did not);
    /// * `server` is **behind** at `t` when some event `k` created while the device peeked (in
    ///   the same peek, `c(k) ≤ t`) has not reached it, nor has any newer event: `a(j) > t` for
    ///   every `j ≥ k`. A newer event arriving ends the gap even if older ones never come
    ///   (they are counted in [`Gap::missed`]); the simulated hosts do not fetch missed
    ///   events.
    ///
    /// So every relayed event makes a gap of its transit time (tens to hundreds of
    /// milliseconds with the default latency), and an outage a gap from the first event the
    /// server did not get until a newer one reached it. Refused with
    /// [`SimError::UnknownServer`]; a down server's record is answered. Changes as events are
    /// created and delivered and as the device's peeks start and end.
    pub fn event_gaps(
        &self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Gap>, SimError> {
        self.node(server)?;
        let to = to.min(self.now);
        let mut gaps = Vec::new();
        for ((s, u, d, room), spans) in &self.spans.0 {
            if s.as_str() != server.as_str() || *u != *user || *d != *device {
                continue;
            }
            let Some(created) = self.created.get(room) else { continue };
            let arrived = self.received.get(&(s.clone(), room.clone()));
            // covered[i]: when event i + 1, or a newer one, first reached the server.
            let mut covered = vec![Timestamp::MAX; created.len()];
            let mut earliest = Timestamp::MAX;
            for i in (0..created.len()).rev() {
                let event = i as u64 + 1;
                if let Some(&at) = arrived.and_then(|a| a.get(&event)) {
                    earliest = earliest.min(at);
                }
                covered[i] = earliest;
            }
            let arrival = |i: usize| {
                arrived.and_then(|a| a.get(&(i as u64 + 1))).copied().unwrap_or(Timestamp::MAX)
            };
            for &(start, end) in spans {
                let stop = end.unwrap_or(Timestamp::MAX).min(to);
                let mut open: Option<(Timestamp, Timestamp, Vec<usize>)> = None;
                let first = created.partition_point(|&c| c < start);
                for i in first..created.len() {
                    let c = created[i];
                    if c >= stop || c > to {
                        break;
                    }
                    match &mut open {
                        Some((_, latest, events)) if c <= *latest => {
                            *latest = (*latest).max(covered[i]);
                            events.push(i);
                        }
                        _ => {
                            if let Some(g) = open.take() {
                                push_gap(&mut gaps, room, g, from, stop, &arrival);
                            }
                            open = Some((c, covered[i], vec![i]));
                        }
                    }
                }
                if let Some(g) = open {
                    push_gap(&mut gaps, room, g, from, stop, &arrival);
                }
            }
        }
        gaps.sort_by(|a, b| (a.start, &a.room_id).cmp(&(b.start, &b.room_id)));
        Ok(gaps)
    }

    /// `server`'s host-facing outbound outputs for `room` (`Output::Established`, `Lost`,
    /// `Unavailable`), in order, with an `Established` right after a `Lost` through another
    /// resident reported as [`OutboundEventKind::FailedOver`]. Empty for a room the server
    /// never peeked over federation. Refused with [`SimError::UnknownServer`]. Grows as the
    /// server emits them; a crash-restart does not clear it.
    pub fn outbound_history(
        &self,
        server: &ServerName,
        room: &RoomId,
    ) -> Result<&[OutboundEvent], SimError> {
        self.node(server)?;
        Ok(self.history.get(&(server.to_owned(), room.to_owned())).map_or(&[], |h| h.as_slice()))
    }

    /// Records `out` in [`outbound_history`](Self::outbound_history) when it is an outbound
    /// host notification, and keeps the device peek spans of [`event_gaps`](Self::event_gaps).
    pub(super) fn record(&mut self, server: &ServerName, out: &Output) {
        if self.config.lean {
            return;
        }
        let now = self.now;
        let (room, kind) = match out {
            Output::PeekEnded { user_id, device_id, room_id, .. } => {
                self.spans.close(server, user_id, device_id, room_id, now);
                return;
            }
            Output::Established { room_id, server: resident, missed_since, .. } => {
                let resident = resident.to_owned_id();
                let history = self.history.get(&(server.to_owned(), room_id.to_owned_id()));
                let lost_from = match history.and_then(|h| h.last()).map(|e| &e.kind) {
                    Some(OutboundEventKind::Lost { resident: Some(from), .. })
                        if *from != resident =>
                    {
                        Some(from.clone())
                    }
                    _ => None,
                };
                let kind = match lost_from {
                    Some(from) => OutboundEventKind::FailedOver {
                        from,
                        to: resident,
                        missed_since: *missed_since,
                    },
                    None => {
                        OutboundEventKind::Established { resident, missed_since: *missed_since }
                    }
                };
                (room_id, kind)
            }
            Output::Lost { room_id, reason } => {
                let history = self.history.get(&(server.to_owned(), room_id.to_owned_id()));
                let resident = history.and_then(|h| {
                    h.iter().rev().find_map(|e| match &e.kind {
                        OutboundEventKind::Established { resident, .. }
                        | OutboundEventKind::FailedOver { to: resident, .. } => {
                            Some(resident.clone())
                        }
                        _ => None,
                    })
                });
                (room_id, OutboundEventKind::Lost { resident, reason: *reason })
            }
            Output::Unavailable { room_id, error } => {
                (room_id, OutboundEventKind::Unavailable { error: error.clone() })
            }
            _ => return,
        };
        let event = OutboundEvent { at: now, kind };
        self.history.entry((server.to_owned(), room.to_owned_id())).or_default().push(event);
    }

    /// After a restart: the device peeks the restored machine no longer has ended now.
    pub(super) fn close_lost_spans(&mut self, server: &ServerName) {
        let Some(node) = self.nodes.get(server) else { return };
        let now = self.now;
        for ((s, u, d, room), spans) in self.spans.0.iter_mut() {
            if s.as_str() == server.as_str()
                && let Some((_, end @ None)) = spans.last_mut()
                && !node.peeking.local().is_peeking(u, d, room)
            {
                *end = Some(now);
            }
        }
    }
}

/// Clips a run of events `(first created, when the server caught up, events)` to
/// `[from, stop]` and keeps it if it is not empty.
fn push_gap(
    gaps: &mut Vec<Gap>,
    room: &RoomId,
    (created, caught_up_at, events): (Timestamp, Timestamp, Vec<usize>),
    from: Timestamp,
    stop: Timestamp,
    arrival: &impl Fn(usize) -> Timestamp,
) {
    let (start, end) = (created.max(from), caught_up_at.min(stop));
    if end <= start {
        return;
    }
    gaps.push(Gap {
        room_id: room.to_owned(),
        start,
        end,
        missed: events.iter().filter(|&&i| arrival(i) > end).count() as u64,
        caught_up: caught_up_at <= stop,
    });
}
