//! What [`OutboundPeeks`](super::OutboundPeeks) knows about one room: its demand, the phase of
//! its current peek, its candidates with their own backoff, the retired peeks still being
//! deleted, its recent event activity, and its request pacer.
//!
//! Every field is plain data; the decisions live in `step.rs` and `answer.rs`.

use std::num::NonZeroU32;
use std::time::Duration;

use smallvec::SmallVec;
use thin_vec::ThinVec;

use super::servers::Server;
use super::{OutboundFailure, OutboundPeekPhase, OutboundPeekRecord};
use crate::access::RoomAccess;
use crate::ids::{PeekId, RequestId};
use crate::shared::SharedRoomId;
use crate::time::Timestamp;

/// A peek at one resident: what every request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PeekRef {
    pub(super) server: Server,
    pub(super) peek_id: PeekId,
}

/// A granted peek's deadlines (R53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Lease {
    /// The last successful `PUT` or renewal.
    pub(super) renewed_at: Timestamp,
    /// The remote's `renewal_interval`, unclamped.
    pub(super) interval: Duration,
    /// When the next renewal is due.
    pub(super) renew_at: Timestamp,
    /// When the peek counts as lapsed on our side if not renewed.
    pub(super) expires_at: Timestamp,
}

/// Whether local devices need the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Demand {
    /// Some local device peeks it: keep a peek open.
    Demanded,
    /// Nobody does any more: keep the peek (and renew it) until `until`, then delete it (R55).
    Lingering { until: Timestamp },
    /// Nobody does and the peek goes at once: the linger ended, a local user joined (R56), or
    /// the room stopped being peekable.
    Gone,
}

/// A run of failed renewals of a granted peek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failing {
    /// The first failure of the run.
    pub(super) since: Timestamp,
    /// Failures in the run: the backoff exponent. Never zero, which lets
    /// `Option<Failing>` (in every granted [`Phase`]) take no more room than a `Failing`.
    pub(super) failures: NonZeroU32,
    /// Not before this: the next renewal attempt.
    pub(super) retry_at: Timestamp,
}

/// Where the room's current peek is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// No current peek: waiting for a candidate's backoff or for the pacer, or not demanded.
    Idle,
    /// A `PUT` for `peek` is in flight (`Some`), or owed (`None`: restored after a crash, or
    /// waiting for the pacer). Its answer decides.
    Opening { peek: PeekRef, request: Option<RequestId> },
    /// Granted. The next renewal is due at `lease.renew_at` (earlier as a probe when an active
    /// room falls silent); `failing` while renewals fail and are retried.
    Live { peek: PeekRef, lease: Lease, failing: Option<Failing> },
    /// Granted; a renewal (a `probe` when sent early because the room fell silent) is in flight.
    Renewing {
        peek: PeekRef,
        lease: Lease,
        request: RequestId,
        failing: Option<Failing>,
        probe: bool,
    },
}

impl Phase {
    /// The current peek, if any.
    pub(super) fn peek(&self) -> Option<&PeekRef> {
        match self {
            Phase::Idle => None,
            Phase::Opening { peek, .. }
            | Phase::Live { peek, .. }
            | Phase::Renewing { peek, .. } => Some(peek),
        }
    }

    /// The lease of a granted peek.
    pub(super) fn lease(&self) -> Option<&Lease> {
        match self {
            Phase::Live { lease, .. } | Phase::Renewing { lease, .. } => Some(lease),
            Phase::Idle | Phase::Opening { .. } => None,
        }
    }

    /// The request in flight for the current peek.
    pub(super) fn request(&self) -> Option<RequestId> {
        match self {
            Phase::Opening { request, .. } => *request,
            Phase::Renewing { request, .. } => Some(*request),
            Phase::Idle | Phase::Live { .. } => None,
        }
    }
}

/// How far a retired peek's deletion got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retire {
    /// A request of the peek's from before it was retired is still in flight: a `PUT`
    /// (`delete_always == false`: only a success means the peek exists) or a renewal (the peek
    /// existed: always deleted). Its answer decides.
    Awaiting { request: RequestId, delete_always: bool },
    /// The `DELETE` is due at `at` (the first right away, retries after a backoff).
    Due { at: Timestamp },
    /// The `DELETE` is in flight.
    Deleting { request: RequestId },
}

/// A peek that is no longer the room's current one and is being deleted in the background
/// (R55), never delaying a new peek.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Retired {
    pub(super) peek: PeekRef,
    pub(super) step: Retire,
    /// `DELETE`s that failed on the network or were rate limited.
    pub(super) attempts: u32,
}

impl Retired {
    /// The request in flight for this peek.
    pub(super) fn request(&self) -> Option<RequestId> {
        match self.step {
            Retire::Awaiting { request, .. } | Retire::Deleting { request } => Some(request),
            Retire::Due { .. } => None,
        }
    }
}

/// A server the room can be peeked through, with its own backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) server: Server,
    /// Failures since this server last served us: the backoff exponent and the ranking key.
    pub(super) failures: u32,
    /// Not before this (`Timestamp::ZERO`: at once).
    pub(super) retry_at: Timestamp,
}

/// Whether the room's peek was ever up, and whether events may have been missed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum History {
    /// Never established: `max_attempts` bounds the attempts.
    Never,
    /// Established, and no granted peek has been lost since.
    Up,
    /// A granted peek was lost; events after `since` may be missing until the next
    /// establishment, which reports it.
    Lost { since: Timestamp },
}

/// Recent event arrivals, to notice a resident that went silent (a dead resident in an active
/// room). 32 bytes per room: one timestamp, four gaps and three small counters.
///
/// ```text
///            record            record, …
///   None ────────────► Seen ◄──────────┐   (probed: false)
///                       │ └────────────┘
///            probed()   ▼
///                 Seen (probed: true) ── record ──► Seen (probed: false)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum Activity {
    /// No event of the room arrived yet.
    #[default]
    None,
    /// Events arrived.
    Seen {
        /// When the last one arrived.
        last: Timestamp,
        /// The latest gaps between events, in milliseconds (a ring).
        gaps: [u32; Activity::GAPS],
        /// How many of `gaps` are filled.
        filled: u8,
        /// The ring's next slot.
        next: u8,
        /// A probe succeeded since the last event: the room is quiet, not dead, and is not
        /// probed again until another event arrives.
        probed: bool,
    },
}

impl Activity {
    /// Gaps remembered; a room is active once all are filled with short gaps.
    pub(super) const GAPS: usize = 4;
    /// Silence longer than this many times the longest recent gap triggers a probe.
    pub(super) const FACTOR: u32 = 4;

    /// An event of the room arrived at `now`.
    pub(super) fn record(&mut self, now: Timestamp) {
        match self {
            Activity::None => {
                *self = Activity::Seen {
                    last: now,
                    gaps: [0; Self::GAPS],
                    filled: 0,
                    next: 0,
                    probed: false,
                };
            }
            Activity::Seen { last, gaps, filled, next, probed } => {
                let gap = now.saturating_duration_since(*last).as_millis();
                gaps[usize::from(*next)] = u32::try_from(gap).unwrap_or(u32::MAX);
                *next = (*next + 1) % Self::GAPS as u8;
                *filled = (*filled + 1).min(Self::GAPS as u8);
                *last = (*last).max(now);
                *probed = false;
            }
        }
    }

    /// A probe succeeded: the room is quiet, not dead, until its next event.
    pub(super) fn probed(&mut self) {
        if let Activity::Seen { probed, .. } = self {
            *probed = true;
        }
    }

    /// After a clock correction back to `now`: no event arrived later than `now`.
    pub(super) fn heal(&mut self, now: Timestamp) {
        if let Activity::Seen { last, .. } = self {
            *last = (*last).min(now);
        }
    }

    /// The last event's arrival and the recent gaps, if the room is active (all gaps filled)
    /// and was not probed since: only then can silence call for a probe.
    fn active(&self) -> Option<(Timestamp, &[u32; Self::GAPS])> {
        match self {
            Activity::Seen { last, gaps, filled, probed: false, .. }
                if usize::from(*filled) == Self::GAPS =>
            {
                Some((*last, gaps))
            }
            _ => None,
        }
    }

    /// When silence means the resident may be dead: `FACTOR ×` the longest recent gap after the
    /// last sign of life (the last event, or `alive_at`, the peek's last successful `PUT` or
    /// renewal), at least `min`; `None` for a room that is not active (too few events, or gaps
    /// so long that the next renewal comes first anyway), or that was already probed since its
    /// last event. `renew_after` (the delay of the peek's normal renewal) is worked out only
    /// for an active room: most rooms are not, and it costs float maths.
    pub(super) fn silence_deadline(
        &self,
        min: Duration,
        alive_at: Timestamp,
        renew_after: impl FnOnce() -> Duration,
    ) -> Option<Timestamp> {
        let (last, gaps) = self.active()?;
        let longest = Duration::from_millis(u64::from(*gaps.iter().max()?));
        let silence = longest.saturating_mul(Self::FACTOR).max(min);
        (silence < renew_after()).then(|| last.max(alive_at).saturating_add(silence))
    }
}

/// Paces a room's requests (generic cell rate): at most [`Pacer::BURST`] at once, then one per
/// [`Pacer::SPACING`], so no sequence of answers makes a room send more than
/// `BURST + 60 s / SPACING` requests in any minute. `DELETE`s of retired peeks only use the
/// upper half of the burst, so they never delay the current peek's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Pacer {
    /// The theoretical time of the next conforming request.
    tat: Timestamp,
}

impl Pacer {
    /// Requests a room may send at once.
    pub(super) const BURST: u64 = 16;
    /// Then one request per this.
    pub(super) const SPACING: Duration = Duration::from_secs(1);

    fn headroom(reserve: bool) -> Duration {
        let slots = if reserve { Self::BURST / 2 - 1 } else { Self::BURST - 1 };
        Self::SPACING.saturating_mul(u32::try_from(slots).unwrap_or(u32::MAX))
    }

    /// When a request may go: `now` if it conforms, else the earliest time it will. `reserve`
    /// keeps half of the burst back (for background `DELETE`s).
    pub(super) fn ready_at(&self, now: Timestamp, reserve: bool) -> Timestamp {
        self.tat.saturating_sub(Self::headroom(reserve)).max(now)
    }

    /// After a clock correction back to `now`: the budget refills from `now`, not from a
    /// wrong future.
    pub(super) fn heal(&mut self, now: Timestamp) {
        self.tat = self.tat.min(now);
    }

    /// Whether the pacer still holds anything back after `now` (a fresh one would allow more).
    pub(super) fn holds_back(&self, now: Timestamp) -> bool {
        self.tat > now
    }

    /// Counts a request sent at `now`.
    pub(super) fn spend(&mut self, now: Timestamp) {
        self.tat = self.tat.max(now).saturating_add(Self::SPACING);
    }
}

/// Everything known about one room.
///
/// Aligned to a cache line: at 320 bytes a room then takes exactly five lines of the slab,
/// where a room starting mid-line would touch six.
#[derive(Debug, Clone)]
#[repr(align(64))]
pub(super) struct Room {
    pub(super) id: SharedRoomId,
    /// `id`'s hash in the machine's [`RoomIndex`](super::index::RoomIndex), set when indexed.
    pub(super) hash: u64,
    pub(super) demand: Demand,
    pub(super) phase: Phase,
    /// Inline up to one: most rooms are peeked through one resident, and then opening one
    /// costs no allocation for its candidate list.
    pub(super) candidates: SmallVec<[Candidate; 1]>,
    /// Peeks being deleted in the background, oldest first, at most
    /// [`MAX_RETIRED`](super::OutboundPeeks::MAX_RETIRED). A thin vector (one pointer, the
    /// length and capacity behind it): most rooms have none, and the slot stays small.
    pub(super) retired: ThinVec<Retired>,
    pub(super) access: Option<RoomAccess>,
    pub(super) history: History,
    /// Failed `PUT`s (network, 429) since the last establishment: bounded by `max_attempts`
    /// while the room was never established.
    pub(super) attempts: u32,
    /// The most specific refusal seen since the last establishment.
    pub(super) worst: Option<OutboundFailure>,
    /// The last moment the current peek was known good (an event arrived, or a `PUT` or
    /// renewal succeeded): where a gap begins when it is lost.
    pub(super) last_good: Timestamp,
    pub(super) activity: Activity,
    pub(super) pacer: Pacer,
    /// The store holds a current-peek record for this room.
    pub(super) persisted: bool,
}

impl Room {
    /// A room with room for `candidates` candidates.
    pub(super) fn new(id: SharedRoomId, demand: Demand, candidates: usize) -> Self {
        Room {
            id,
            hash: 0,
            demand,
            phase: Phase::Idle,
            candidates: SmallVec::with_capacity(candidates),
            retired: ThinVec::new(),
            access: None,
            history: History::Never,
            attempts: 0,
            worst: None,
            last_good: Timestamp::ZERO,
            activity: Activity::default(),
            pacer: Pacer::default(),
            persisted: false,
        }
    }

    pub(super) fn is_demanded(&self) -> bool {
        self.demand == Demand::Demanded
    }

    pub(super) fn candidate_mut(&mut self, server: &Server) -> Option<&mut Candidate> {
        self.candidates.iter_mut().find(|c| c.server.is(server))
    }

    /// Remembers `failure` if it is the most specific seen (`Forbidden` > `NotFound` >
    /// `IncompatibleRoomVersion` > the rest).
    pub(super) fn note_failure(&mut self, failure: &OutboundFailure) {
        fn rank(f: &OutboundFailure) -> u8 {
            match f {
                OutboundFailure::Forbidden => 3,
                OutboundFailure::NotFound => 2,
                OutboundFailure::IncompatibleRoomVersion => 1,
                _ => 0,
            }
        }
        if self.worst.as_ref().is_none_or(|w| rank(failure) >= rank(w)) {
            self.worst = Some(failure.clone());
        }
    }

    /// Drops a candidate that refused us (R60).
    pub(super) fn drop_candidate(&mut self, server: &Server) {
        self.candidates.retain(|c| !c.server.is(server));
    }

    /// The current peek's record as the store keeps it.
    pub(super) fn record(&self) -> Option<OutboundPeekRecord> {
        let (peek, phase) = match &self.phase {
            Phase::Idle => return None,
            Phase::Opening { peek, .. } => (peek, OutboundPeekPhase::Opening),
            Phase::Live { peek, lease, .. } | Phase::Renewing { peek, lease, .. } => (
                peek,
                OutboundPeekPhase::Live {
                    renewed_at: lease.renewed_at,
                    interval: lease.interval,
                    renew_at: lease.renew_at,
                    expires_at: lease.expires_at,
                },
            ),
        };
        Some(OutboundPeekRecord {
            room_id: self.id.clone(),
            server: peek.server.shared(),
            peek_id: peek.peek_id.clone(),
            phase,
            access: self.access.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn a_room_is_active_after_four_short_gaps_and_quiet_once_probed() {
        let mut a = Activity::default();
        let min = Duration::from_secs(30);
        let renew = Duration::from_secs(1800);
        for i in 0..4 {
            a.record(t(i * 5_000));
            assert_eq!(
                a.silence_deadline(min, Timestamp::ZERO, || renew),
                None,
                "{i} events are not activity yet"
            );
        }
        a.record(t(20_000));
        // Gaps of 5 s: 4 × 5 s = 20 s, raised to the 30 s floor.
        assert_eq!(a.silence_deadline(min, Timestamp::ZERO, || renew), Some(t(50_000)));
        a.probed();
        assert_eq!(
            a.silence_deadline(min, Timestamp::ZERO, || renew),
            None,
            "probed: quiet, not dead"
        );
        a.record(t(600_000));
        assert_eq!(
            a.silence_deadline(min, Timestamp::ZERO, || renew),
            None,
            "a 580 s gap: 4 × that beats renewal"
        );
    }

    #[test]
    fn a_clock_correction_does_not_mark_an_unprobed_room_probed() {
        let mut a = Activity::default();
        let (min, renew) = (Duration::from_secs(30), Duration::from_secs(1800));
        for i in 0..5 {
            a.record(t(100_000 + i * 5_000));
        }
        a.probed();
        a.record(t(130_000));
        assert!(a.active().is_some(), "an event after the probe: probe-able again");
        // The clock is corrected back before both the probe and the last event.
        a.heal(t(50_000));
        assert_eq!(a.active().map(|(last, _)| last), Some(t(50_000)), "still active, not probed");
        assert!(a.silence_deadline(min, Timestamp::ZERO, || renew).is_some());
        // An event stamped before the last one (the clock went back) still ends the quiet.
        a.probed();
        a.record(t(40_000));
        assert_eq!(a.active().map(|(last, _)| last), Some(t(50_000)));
    }

    /// Every outbound room costs this much in the machine's slab, peeked or lingering: the
    /// retired list and the activity ring are kept small so the common room stays in five
    /// cache lines (BENCHMARKS.md, part 2, tenth step).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_room_takes_at_most_320_bytes() {
        assert_eq!(std::mem::size_of::<Activity>(), 32);
        assert_eq!(std::mem::size_of::<Option<Failing>>(), std::mem::size_of::<Failing>());
        assert!(std::mem::size_of::<Room>() <= 320, "{}", std::mem::size_of::<Room>());
    }

    #[test]
    fn the_pacer_allows_a_burst_then_one_request_per_second() {
        let mut p = Pacer::default();
        let now = t(1_000_000);
        for _ in 0..Pacer::BURST {
            assert_eq!(p.ready_at(now, false), now);
            p.spend(now);
        }
        assert_eq!(p.ready_at(now, false), t(1_001_000));
        // DELETEs keep half the burst back.
        let mut q = Pacer::default();
        for _ in 0..Pacer::BURST / 2 {
            assert_eq!(q.ready_at(now, true), now);
            q.spend(now);
        }
        assert!(q.ready_at(now, true) > now);
        assert_eq!(q.ready_at(now, false), now, "the current peek still has its half");
    }
}
