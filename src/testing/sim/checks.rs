//! The simulator's records and invariant checks.

use std::collections::BTreeSet;

use ruma_common::{DeviceId, OwnedRoomId, OwnedServerName, RoomId, ServerName, UserId};

use super::types::{BadRelay, ClientPeekRecord, LeakedPeek, SentRequest, TimelineEntry};
use super::{Sim, SimError};
use crate::PeekId;
use crate::outbound::OutboundRecord;

impl Sim {
    // ----- records and invariants -----

    /// The timeline (empty when [`SimConfig::timeline`](super::SimConfig::timeline) is off).
    pub fn timeline(&self) -> &[TimelineEntry] {
        &self.timeline
    }

    /// The timeline as text, one line per entry, times relative to the start.
    pub fn timeline_text(&self) -> String {
        let mut out = String::new();
        for e in &self.timeline {
            out.push_str(&format!(
                "{:>18}  {:<6} {}\n",
                e.elapsed(self.config.start),
                e.server.as_str(),
                e.what
            ));
        }
        out
    }

    /// Every federation request sent so far.
    pub fn sent_requests(&self) -> &[SentRequest] {
        &self.sent
    }

    /// Every client peek asked so far, in order.
    pub fn client_peeks(&self) -> &[ClientPeekRecord] {
        &self.client_peeks
    }

    /// Client peeks still waiting for their answer.
    pub fn incomplete_client_peeks(&self) -> Vec<&ClientPeekRecord> {
        self.client_peeks.iter().filter(|c| !c.is_complete()).collect()
    }

    /// Panics unless every client peek has its answer (or was aborted by a crash).
    pub fn assert_client_peeks_completed(&self) {
        let open = self.incomplete_client_peeks();
        assert!(open.is_empty(), "client peeks never answered: {open:#?}");
    }

    /// Events of `room` relayed to `server` because it peeks the room (copies, not distinct).
    /// Grows as relays are sent. [`SimError::UnknownServer`] for a server never added.
    pub fn relays_to(&self, server: &ServerName, room_id: &RoomId) -> Result<u64, SimError> {
        self.node(server)?;
        Ok(self.relays.get(&(server.to_owned(), room_id.to_owned())).copied().unwrap_or(0))
    }

    /// Distinct events of `room` that reached `server` (or were created there). Grows as
    /// events arrive. [`SimError::UnknownServer`] for a server never added.
    pub fn events_received(
        &self,
        server: &ServerName,
        room_id: &RoomId,
    ) -> Result<usize, SimError> {
        self.node(server)?;
        Ok(self.received.get(&(server.to_owned(), room_id.to_owned())).map_or(0, |s| s.len()))
    }

    /// Times a new event woke `user`/`device` on `server` (a `peekers(room)` fan-out). Grows
    /// as events arrive. [`SimError::UnknownServer`] for a server never added.
    pub fn event_wakes(
        &self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<u64, SimError> {
        self.node(server)?;
        let key = (server.to_owned(), user.to_owned(), device.to_owned());
        Ok(self.event_wakes.get(&key).copied().unwrap_or(0))
    }

    /// `Output::Wake`s (peek started/ended/joined) for `user`/`device` on `server`. Grows as
    /// the server emits them. [`SimError::UnknownServer`] for a server never added.
    pub fn sync_wakes(
        &self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<u64, SimError> {
        self.node(server)?;
        let key = (server.to_owned(), user.to_owned(), device.to_owned());
        Ok(self.sync_wakes.get(&key).copied().unwrap_or(0))
    }

    /// Events relayed to a server whose peek had expired or been deleted, by the simulator's
    /// own record of grants (must stay empty, R39, R42, R43).
    pub fn bad_relays(&self) -> &[BadRelay] {
        &self.bad_relays
    }

    /// `bad_relays().len()`.
    pub fn relays_after_expiry(&self) -> usize {
        self.bad_relays.len()
    }

    /// The raw view of [`leak_report`](Self::leak_report): inbound peeks that their origin no
    /// longer accounts for, held on `resident` from `origin` while `origin`'s store has no
    /// outbound peek (nor retired one) with that room, server and peek id, whether or not they
    /// are still within the window in which they may legitimately exist. Transiently non-empty
    /// after lost answers (the resident lapses them, R43); empty once demand has ended for
    /// `linger` + a renewal interval + grace. Use [`leaks`](Self::leaks) at any other moment.
    pub fn leaked_peeks(&self) -> Vec<LeakedPeek> {
        let mut wanted: BTreeSet<(OwnedServerName, OwnedServerName, OwnedRoomId, PeekId)> =
            BTreeSet::new();
        for (origin, node) in &self.nodes {
            for record in node.store.to_snapshot().outbound {
                match record {
                    OutboundRecord::Peek(p) => {
                        wanted.insert((
                            origin.clone(),
                            p.server.into(),
                            p.room_id.into(),
                            p.peek_id,
                        ));
                    }
                    // A retired peek is owed a DELETE: it is accounted for until it goes.
                    OutboundRecord::Retired { room_id, server, peek_id } => {
                        wanted.insert((origin.clone(), server.into(), room_id.into(), peek_id));
                    }
                    _ => {}
                }
            }
        }
        let mut leaked = Vec::new();
        for (resident, node) in &self.nodes {
            for r in node.peeking.inbound().records() {
                let key =
                    (r.server.clone(), resident.clone(), r.room_id.clone(), r.peek_id.clone());
                if !wanted.contains(&key) {
                    leaked.push(LeakedPeek {
                        resident: resident.clone(),
                        origin: r.server,
                        room_id: r.room_id,
                        peek_id: r.peek_id,
                    });
                }
            }
        }
        leaked
    }

    /// Panics if [`leaked_peeks`](Self::leaked_peeks) is not empty: only meaningful once
    /// demand has ended for long enough; [`assert_no_leaks`](Self::assert_no_leaks) is
    /// meaningful at any moment.
    pub fn assert_no_leaked_peeks(&self) {
        let leaked = self.leaked_peeks();
        assert!(leaked.is_empty(), "leaked remote peeks: {leaked:#?}");
    }

    /// Panics if [`bad_relays`](Self::bad_relays) is not empty.
    pub fn assert_no_relays_after_expiry(&self) {
        assert!(self.bad_relays.is_empty(), "relayed after expiry: {:#?}", self.bad_relays);
    }

    /// Inbound peeks held on every server, in total.
    pub fn inbound_peek_count(&self) -> usize {
        self.nodes.values().map(|n| n.peeking.inbound().len()).sum()
    }
}
