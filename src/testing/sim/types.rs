//! The simulator's plain data: configuration, room model, records and the timeline.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId};

#[cfg(doc)]
use super::Sim;
use crate::outbound::OutboundRequest;
use crate::{LocalGrant, PeekError, PeekId, PeekingConfig, RequestId, RoomAccess, Timestamp};

/// The simulator's knobs. Everything random is drawn from `seed`.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of the simulator's PRNG (latency, loss, duplication).
    pub seed: u64,
    /// Virtual time at which the simulation starts.
    pub start: Timestamp,
    /// One-way network latency, drawn uniformly from `min..=max` per message (so messages
    /// reorder when the range is wide).
    pub latency: (Duration, Duration),
    /// Probability that a federation request, or its response, is lost (the sender then sees
    /// `Failed(Unreachable)` after `request_timeout`).
    pub loss: f64,
    /// Probability that a federation request is delivered twice.
    pub duplication: f64,
    /// How long a sender waits for an answer before reporting `Unreachable`; raised to at least
    /// twice the maximum latency.
    pub request_timeout: Duration,
    /// The coordinator configuration of every server added with
    /// [`Sim::add_server`](super::Sim::add_server).
    pub peeking: PeekingConfig,
    /// Whether to record the [`TimelineEntry`] log (turn off for long soaks).
    pub timeline: bool,
    /// Steps one `run_for` / `run_until_idle` call may take before it panics with
    /// [`Livelock`].
    pub step_budget: u64,
    /// **Scale mode** (off by default): keep no per-request or per-event records, so that a
    /// thousand servers can run for a simulated day in bounded memory
    /// ([`run_scale`](super::run_scale)). With it on:
    ///
    /// * [`Sim::sent_requests`], [`Sim::outbound_history`], [`Sim::event_gaps`],
    ///   [`Sim::events_received`], [`Sim::relays_to`] and [`Sim::event_wakes`] stay empty
    ///   (zero); [`Sim::relay_copies`] and [`Sim::watch`]'s [`ResidentLoad`](super::ResidentLoad)
    ///   count instead; [`Sim::client_peeks`] keeps only the client peeks that waited on
    ///   federation (so [`Sim::incomplete_client_peeks`] still sees every unanswered one);
    /// * an event relayed to a room's peeking servers travels as **one** message per event
    ///   carrying every destination, delivered to all of them after one latency draw (each
    ///   destination still gets its copy, is checked against the simulator's own record of
    ///   grants and its host reports it to its machine; only the latency is shared), and
    ///   batches from one resident arrive in the order they were sent;
    /// * every arrival of an event counts as its first (the simulator no longer remembers
    ///   which events reached which server; in the scale scenario each event reaches a
    ///   server by one path only).
    ///
    /// The machines, the wire (loss, duplication, timeouts), leak accounting and every
    /// invariant check are the same as without it.
    pub lean: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            // 2024-01-01T00:00:00Z.
            start: Timestamp::from_millis(1_704_067_200_000),
            latency: (Duration::from_millis(20), Duration::from_millis(200)),
            loss: 0.0,
            duplication: 0.0,
            request_timeout: Duration::from_secs(10),
            peeking: PeekingConfig::default(),
            timeline: true,
            step_budget: 10_000_000,
            lean: false,
        }
    }
}

/// One room in the simulated world: its current access, which users of which servers are
/// joined, and how many events it has. All resident servers share this state.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRoom {
    /// The room's current version, history visibility and encryption.
    pub access: RoomAccess,
    /// Joined users per server; a server with a joined user is resident.
    pub members: BTreeMap<OwnedServerName, BTreeSet<OwnedUserId>>,
    /// Servers denied by the room's server ACL (R30, R45).
    pub denied: BTreeSet<OwnedServerName>,
    /// Events created in the room so far (the create event is number 1).
    pub events: u64,
}

impl SimRoom {
    /// Whether `server` has a joined user.
    pub fn is_resident(&self, server: &OwnedServerName) -> bool {
        self.members.get(server).is_some_and(|m| !m.is_empty())
    }
}

/// One line of the simulator's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Virtual time.
    pub at: Timestamp,
    /// The server it happened on.
    pub server: OwnedServerName,
    /// What happened and why, in words.
    pub what: String,
}

impl TimelineEntry {
    /// `at` relative to `start`, as `+Dd HH:MM:SS.mmm`.
    pub fn elapsed(&self, start: Timestamp) -> String {
        fmt_elapsed(self.at.saturating_duration_since(start))
    }
}

/// `d` as `+Dd HH:MM:SS.mmm`.
pub fn fmt_elapsed(d: Duration) -> String {
    let ms = d.as_millis();
    let (s, ms) = (ms / 1000, ms % 1000);
    let (m, s) = (s / 60, s % 60);
    let (h, m) = (m / 60, m % 60);
    let (days, h) = (h / 24, h % 24);
    format!("+{days}d {h:02}:{m:02}:{s:02}.{ms:03}")
}

/// A client `/peek` the simulator was asked to make, and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientPeekRecord {
    /// The server the client talked to.
    pub server: OwnedServerName,
    /// The user.
    pub user_id: OwnedUserId,
    /// The device.
    pub device_id: OwnedDeviceId,
    /// The room.
    pub room_id: OwnedRoomId,
    /// When the client asked.
    pub asked_at: Timestamp,
    /// The coordinator's id while it was `Pending`.
    pub pending: Option<RequestId>,
    /// When it was answered (`None` while pending).
    pub answered_at: Option<Timestamp>,
    /// The answer (`None` while pending or when aborted).
    pub result: Option<Result<LocalGrant, PeekError>>,
    /// The server crashed while the request waited: the client saw its connection drop.
    pub aborted: bool,
}

impl ClientPeekRecord {
    /// Whether the client has its answer (or saw the connection drop).
    pub fn is_complete(&self) -> bool {
        self.result.is_some() || self.aborted
    }
}

/// A federation request as it left its sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRequest {
    /// When it was sent.
    pub at: Timestamp,
    /// The sender (the peeking server).
    pub from: OwnedServerName,
    /// The request (its `server` is the target).
    pub request: OutboundRequest,
}

/// An inbound peek on `resident` that its `origin` no longer accounts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakedPeek {
    /// The server holding the peek.
    pub resident: OwnedServerName,
    /// The peeking server.
    pub origin: OwnedServerName,
    /// The room.
    pub room_id: OwnedRoomId,
    /// The peek id.
    pub peek_id: PeekId,
}

/// An event relayed to a server whose peek had already expired or been deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRelay {
    /// When.
    pub at: Timestamp,
    /// The relaying resident.
    pub from: OwnedServerName,
    /// The destination without a live peek.
    pub to: OwnedServerName,
    /// The room.
    pub room_id: OwnedRoomId,
    /// The event number.
    pub event: u64,
}

/// `run_bounded` gave up: the simulation still had work after this many steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Livelock {
    /// Steps taken.
    pub steps: u64,
    /// Virtual time reached.
    pub at: Timestamp,
}

impl fmt::Display for Livelock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simulation still busy after {} steps (at {})", self.steps, self.at)
    }
}

impl std::error::Error for Livelock {}
