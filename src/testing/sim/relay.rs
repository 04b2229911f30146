//! Lean mode's relays ([`SimConfig::lean`](super::SimConfig::lean)): one message per relayed
//! event carrying all its destinations, instead of one message per destination. A room peeked
//! by 5 000 servers then costs one queue entry per event, not 5 000, and no per-copy clone of
//! the event; each destination is still handled as its own copy on delivery.

use ruma_common::{OwnedServerName, RoomId, ServerName};

use super::Sim;
use super::net::Msg;
use super::types::BadRelay;
use crate::RoomAccess;

impl Sim {
    /// Relays event `event` of `room` from the resident `from` to `dests` as one batch: each
    /// destination is checked against the simulator's own record of live grants now (a relay to
    /// one without a live peek is a [`BadRelay`]), and the batch arrives after one latency
    /// draw, never before the previous batch of `from` (per-link order holds).
    pub(super) fn relay_batch(
        &mut self,
        from: &ServerName,
        room: &RoomId,
        event: u64,
        state: Option<&RoomAccess>,
        dests: Vec<OwnedServerName>,
    ) {
        if dests.is_empty() {
            return;
        }
        let now = self.now;
        let key = (from.to_owned(), room.to_owned());
        let origins = self.grants.get(&key);
        let live = |to: &OwnedServerName| {
            origins.and_then(|o| o.get(to)).is_some_and(|ids| ids.values().any(|&exp| exp > now))
        };
        let bad: Vec<BadRelay> = dests
            .iter()
            .filter(|to| !live(to))
            .map(|to| BadRelay {
                at: now,
                from: from.to_owned(),
                to: to.clone(),
                room_id: room.to_owned(),
                event,
            })
            .collect();
        self.bad_relays.extend(bad);
        let at = now.saturating_add(self.latency());
        let last = self.relay_links.entry(from.to_owned()).or_insert(at);
        *last = (*last).max(at);
        let at = *last;
        let msg = Msg::Relay { room: room.to_owned(), state: state.cloned(), to: dests };
        self.schedule(at, msg);
    }

    /// Delivers a lean relay batch: every destination that is up receives its copy, and its
    /// host reports it to its machine (`handle_remote_event`, and `handle_access_changed` for a
    /// state event), as `on_event` does for a single copy to a non-resident server.
    pub(super) fn deliver_relay(
        &mut self,
        room: &RoomId,
        state: Option<&RoomAccess>,
        dests: &[OwnedServerName],
    ) {
        let now = self.now;
        // Joined since the relay left: resident servers get the room's events directly.
        let joined: Vec<bool> = match self.rooms.get(room) {
            Some(model) => dests.iter().map(|to| model.is_resident(to)).collect(),
            None => vec![false; dests.len()],
        };
        for (to, joined) in dests.iter().zip(joined) {
            let Some(node) = self.nodes.get_mut(to).filter(|n| n.up && !joined) else { continue };
            node.peeking.handle_remote_event(now, room);
            if let Some(access) = state {
                node.peeking.handle_access_changed(now, room, access);
            }
            self.drain(to);
        }
    }
}
