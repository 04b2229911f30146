//! Read-only queries on [`OutboundPeeks`]: one room, or a listing of every room for an
//! operator's status page. Answers change only after a `handle_*` call.

use ruma_common::{RoomId, ServerName};

use super::room::{Phase, Room};
use super::{OutboundConfig, OutboundPeeks, OutboundState};
use crate::access::RoomAccess;
use crate::time::Timestamp;

/// One room's outbound peek as an operator sees it, from [`OutboundPeeks::rooms`] or
/// [`OutboundPeeks::room_info`]. A snapshot: it does not change once taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboundRoomInfo<'a> {
    /// The room.
    pub room_id: &'a RoomId,
    /// Where its peek is.
    pub state: OutboundState,
    /// The resident its current peek is with (opening, granted or being renewed), if any.
    pub resident: Option<&'a ServerName>,
    /// The current peek's id, if any.
    pub peek_id: Option<&'a str>,
    /// When the current peek lapses on our side unless renewed, while it is granted.
    pub expires_at: Option<Timestamp>,
    /// When a failing renewal run started (the peek is still granted), if one is under way.
    pub failing_since: Option<Timestamp>,
    /// Candidate servers known for the room, in order of preference.
    pub candidates: usize,
    /// Old peeks of the room still being deleted in the background.
    pub retired_peeks: usize,
    /// Whether some local device needs the room now (not lingering or going).
    pub demanded: bool,
}

impl OutboundPeeks {
    /// The server and access of `room`'s peek while it is granted **and** demanded
    /// (`Established` or `Renewing`): only the server that granted the current peek (never
    /// another candidate, B-9). See [`granted`](Self::granted) for any demand.
    pub fn established(&self, room: &RoomId) -> Option<(&ServerName, &RoomAccess)> {
        let r = self.room(self.index.get(&self.rooms, room)?);
        if !r.is_demanded() {
            return None;
        }
        self.granted(room)
    }

    /// The server and access of `room`'s peek while the resident has granted it, whatever the
    /// demand (lingering included). Changes after every `handle_*`.
    pub fn granted(&self, room: &RoomId) -> Option<(&ServerName, &RoomAccess)> {
        let r = self.room(self.index.get(&self.rooms, room)?);
        match &r.phase {
            Phase::Live { peek, .. } | Phase::Renewing { peek, .. } => {
                Some((&peek.server, r.access.as_ref()?))
            }
            Phase::Idle | Phase::Opening { .. } => None,
        }
    }

    /// The state of `room`'s outbound peek, `None` when it has none.
    pub fn state(&self, room: &RoomId) -> Option<OutboundState> {
        Some(self.state_of(self.room(self.index.get(&self.rooms, room)?)))
    }

    pub(super) fn state_of(&self, r: &Room) -> OutboundState {
        let demanded = r.is_demanded();
        match &r.phase {
            Phase::Opening { request: None, .. } if !demanded => OutboundState::Lingering,
            Phase::Opening { .. } => OutboundState::Connecting,
            Phase::Renewing { .. } | Phase::Live { failing: Some(_), .. } => {
                OutboundState::Renewing
            }
            Phase::Live { .. } if demanded => OutboundState::Established,
            Phase::Live { .. } => OutboundState::Lingering,
            Phase::Idle if demanded => OutboundState::Backoff,
            Phase::Idle => OutboundState::Deleting,
        }
    }

    /// Requests sent and not yet answered (answers to forgotten requests are ignored).
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Rooms tracked, in any state.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no room is tracked.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether a local user is joined to `room` (as far as this machine was told).
    pub fn is_joined(&self, room: &RoomId) -> bool {
        self.joined.contains(room)
    }

    /// The configuration.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Every tracked room with its state and resident, unordered. O(rooms) to walk; the
    /// listing for a status page or an admin API. Changes after every `handle_*`.
    pub fn rooms(&self) -> impl Iterator<Item = OutboundRoomInfo<'_>> + '_ {
        self.rooms.iter().map(move |(_, r)| self.info_of(r))
    }

    /// [`rooms`](Self::rooms) for one room; `None` when it is not tracked.
    pub fn room_info(&self, room: &RoomId) -> Option<OutboundRoomInfo<'_>> {
        Some(self.info_of(self.room(self.index.get(&self.rooms, room)?)))
    }

    fn info_of<'a>(&'a self, r: &'a Room) -> OutboundRoomInfo<'a> {
        let peek = r.phase.peek();
        let failing_since = match &r.phase {
            Phase::Live { failing, .. } | Phase::Renewing { failing, .. } => {
                failing.map(|failing| failing.since)
            }
            Phase::Idle | Phase::Opening { .. } => None,
        };
        OutboundRoomInfo {
            room_id: &r.id,
            state: self.state_of(r),
            resident: peek.map(|p| &*p.server),
            peek_id: peek.map(|p| p.peek_id.as_str()),
            expires_at: r.phase.lease().map(|lease| lease.expires_at),
            failing_since,
            candidates: r.candidates.len(),
            retired_peeks: r.retired.len(),
            demanded: r.is_demanded(),
        }
    }
}
