//! The simulated federation: messages on the wire, their delivery, and every server's outputs.

use std::cmp::Ordering;
use std::time::Duration;

use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, ServerName};

use super::Sim;
use super::types::{BadRelay, SentRequest};
use crate::outbound::{OutboundFailure, OutboundOutcome, OutboundRequest, OutboundRequestKind};
use crate::wire::ToMatrixError;
use crate::{Output, PeekId, RequestId, RoomAccess, Timestamp};

/// What travels between servers.
#[derive(Debug, Clone)]
pub(super) enum Msg {
    /// A federation request from `from` (incarnation `epoch`) to `request.server`.
    OutboundRequest {
        from: OwnedServerName,
        epoch: u64,
        sent_at: Timestamp,
        request: OutboundRequest,
    },
    /// The answer to request `id`, back at `to`.
    Response { to: OwnedServerName, epoch: u64, id: RequestId, outcome: OutboundOutcome },
    /// An event of `room`, from `from` to `to`; `direct` when `from` created it (a resident
    /// receiving a direct event relays it to its own peekers, R39). `state` carries a new access.
    Event {
        from: OwnedServerName,
        to: OwnedServerName,
        room: OwnedRoomId,
        event: u64,
        state: Option<RoomAccess>,
        direct: bool,
    },
    /// An `expired_peeks` entry in a `/send` from `from` to `to` (R43).
    Expired { from: OwnedServerName, to: OwnedServerName, room: OwnedRoomId, peek_id: PeekId },
    /// Lean mode: one relayed event of `room` from the resident `from`, one copy for each of
    /// `to` (see `relay.rs`).
    Relay { room: OwnedRoomId, state: Option<RoomAccess>, to: Vec<OwnedServerName> },
}

#[derive(Debug)]
pub(super) struct Scheduled {
    pub at: Timestamp,
    pub seq: u64,
    pub msg: Msg,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so the `BinaryHeap` pops the earliest (then the first scheduled).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A short description of a request for the timeline.
pub(super) fn describe(request: &OutboundRequest) -> String {
    let what = match &request.kind {
        OutboundRequestKind::Peek { .. } => "PUT /peek",
        OutboundRequestKind::Renew => "POST /peek/…/renew",
        OutboundRequestKind::Unpeek => "DELETE /peek",
    };
    format!("{what} {} peek_id={} (request {})", request.room_id, request.peek_id, request.id.0)
}

fn describe_outcome(outcome: &OutboundOutcome) -> String {
    match outcome {
        OutboundOutcome::Established { renewal_interval, access } => format!(
            "200 peek granted, renewal_interval={}s, world_readable={}",
            renewal_interval.as_secs(),
            access.world_readable
        ),
        OutboundOutcome::Renewed { renewal_interval } => match renewal_interval {
            Some(i) => format!("200 renewed, renewal_interval={}s", i.as_secs()),
            None => "200 renewed, renewal_interval omitted".to_owned(),
        },
        OutboundOutcome::Deleted => "200 peek deleted".to_owned(),
        OutboundOutcome::Failed(f) => format!("failed: {f:?}"),
    }
}

/// An error answer as it crosses the wire: mapped to (status, body) through the error table
/// and classified back by the sender (`OutboundFailure::from_response`).
fn over_the_wire(error: &impl ToMatrixError) -> OutboundOutcome {
    let m = error.to_matrix_error();
    let header = m.retry_after_header().map(|s| s.to_string());
    OutboundOutcome::Failed(OutboundFailure::from_response(
        m.status,
        header.as_deref(),
        &m.to_body(),
    ))
}

impl Sim {
    pub(super) fn schedule(&mut self, at: Timestamp, msg: Msg) {
        self.seq += 1;
        self.queue.push(Scheduled { at, seq: self.seq, msg });
    }

    /// When a `/send` transaction from `from` to `to` sent now arrives: after a random latency,
    /// but never before the previous one on that link (transactions to one destination are
    /// sequential), so events and `expired_peeks` keep their order.
    pub(super) fn send_at(&mut self, from: &ServerName, to: &ServerName) -> Timestamp {
        let at = self.now.saturating_add(self.latency());
        let last = self.links.entry((from.to_owned(), to.to_owned())).or_insert(at);
        *last = (*last).max(at);
        *last
    }

    pub(super) fn latency(&mut self) -> Duration {
        let (lo, hi) = self.config.latency;
        let ms = self.rng.range(lo.as_millis() as u64, hi.as_millis() as u64);
        Duration::from_millis(ms)
    }

    /// Drains every output of `server`, applying `Persist`s to its store and putting messages
    /// on the wire.
    pub(super) fn drain(&mut self, server: &ServerName) {
        loop {
            let Some(node) = self.nodes.get_mut(server) else { return };
            let Some(out) = node.peeking.poll_output() else { break };
            self.on_output(server, out);
        }
        self.refresh_timer(server);
    }

    /// Puts the server's `poll_timeout` (if it is up) into [`Sim::timers`] in place of its old
    /// entry. Every input reaches a machine through a call followed by [`drain`](Self::drain),
    /// so the index is current whenever the simulator picks the next thing due.
    pub(super) fn refresh_timer(&mut self, server: &ServerName) {
        let Some(node) = self.nodes.get_mut(server) else { return };
        let due = if node.up { node.peeking.poll_timeout() } else { None };
        if due == node.due {
            return;
        }
        let old = std::mem::replace(&mut node.due, due);
        let idx = node.idx;
        if let Some(old) = old {
            self.timers.remove(&(old, idx));
        }
        if let Some(due) = due {
            self.timers.insert((due, idx));
        }
    }

    fn on_output(&mut self, server: &ServerName, out: Output) {
        self.record(server, &out);
        let now = self.now;
        let name = server.to_owned();
        match out {
            Output::Persist(change) => {
                let Some(node) = self.nodes.get_mut(server) else { return };
                if node.drop_writes {
                    return;
                }
                node.store.apply_one(&change);
                if let crate::Change::Outbound(change) = &change {
                    self.account(server, change);
                }
            }
            Output::Send(request) => {
                let epoch = self.nodes[server].epoch;
                self.log(server, || format!("→ {} {}", request.server, describe(&request)));
                if !self.config.lean {
                    self.sent.push(SentRequest {
                        at: now,
                        from: name.clone(),
                        request: request.clone(),
                    });
                }
                if self.rng.chance(self.config.loss) {
                    self.log(server, || format!("  (request {} lost on the wire)", request.id.0));
                    let at = now.saturating_add(self.timeout());
                    let id = request.id;
                    self.schedule(
                        at,
                        Msg::Response {
                            to: name,
                            epoch,
                            id,
                            outcome: OutboundOutcome::Failed(OutboundFailure::Unreachable),
                        },
                    );
                    return;
                }
                let copies = if self.rng.chance(self.config.duplication) { 2 } else { 1 };
                for _ in 0..copies {
                    let at = now.saturating_add(self.latency());
                    let msg = Msg::OutboundRequest {
                        from: name.clone(),
                        epoch,
                        sent_at: now,
                        request: request.clone(),
                    };
                    self.schedule(at, msg);
                }
            }
            Output::Wake { user_id, device_id } => {
                *self.sync_wakes.entry((name, user_id, device_id)).or_default() += 1;
            }
            Output::PeekEnded { user_id, device_id, room_id, reason } => {
                self.log(server, || {
                    format!("local peek of {user_id}/{device_id} on {room_id} ended: {reason:?}")
                });
            }
            Output::Expired { server: destination, room_id, peek_id, reason } => {
                self.forget_grant(server, &room_id, &destination, &peek_id);
                self.log(server, || {
                    format!("inbound peek {peek_id} from {destination} on {room_id} expired ({reason:?}); expired_peeks → {destination}")
                });
                // Never before an event relayed earlier in a lean batch from this resident.
                let at = self.send_at(server, &destination);
                let at = self.relay_links.get(server).map_or(at, |&batch| at.max(batch));
                self.schedule(
                    at,
                    Msg::Expired { from: name, to: destination, room: room_id, peek_id },
                );
            }
            Output::Established { room_id, server: via, access, missed_since } => {
                let now = self.now;
                self.log(server, || {
                    let gap = missed_since.map_or(String::new(), |since| {
                        let d = now.saturating_duration_since(since);
                        format!("; events since {} s ago may be missing", d.as_secs())
                    });
                    format!(
                        "federated peek on {room_id} established via {via} (world_readable={}){gap}",
                        access.world_readable
                    )
                });
            }
            Output::Lost { room_id, reason } => {
                self.log(server, || {
                    let next = if reason == crate::outbound::OutboundLostReason::AccessLost {
                        "deleted, not re-opened"
                    } else {
                        "re-opening"
                    };
                    format!("federated peek on {room_id} lost: {reason:?}; {next}")
                });
            }
            Output::Unavailable { room_id, error } => {
                self.log(server, || format!("federated peek on {room_id} unavailable: {error}"));
            }
            Output::ClientPeekDone { id, result } => {
                self.log(server, || match &result {
                    Ok(g) => format!(
                        "client peek {} on {} granted (pending id {})",
                        g.room_id, server, id.0
                    ),
                    Err(e) => format!("client peek (pending id {}) failed: {e}", id.0),
                });
                if let Some(i) = self.pending_peeks.remove(&(name, id)) {
                    let record = &mut self.client_peeks[i];
                    if result.is_ok() && !self.config.lean {
                        let (u, d, r) = (&record.user_id, &record.device_id, &record.room_id);
                        self.spans.open(server, u, d, r, now);
                    }
                    record.answered_at = Some(now);
                    record.result = Some(result);
                }
            }
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        let (_, hi) = self.config.latency;
        self.config.request_timeout.max(hi * 2 + Duration::from_millis(1))
    }

    /// Delivers one message at `self.now`.
    pub(super) fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::OutboundRequest { from, epoch, sent_at, request } => {
                self.on_request(from, epoch, sent_at, request)
            }
            Msg::Response { to, epoch, id, outcome } => {
                let Some(node) = self.nodes.get_mut(&to) else { return };
                if node.epoch != epoch {
                    return; // the connection died with the process
                }
                if !node.up {
                    // Paused or partitioned: the call times out; it learns so when back up.
                    node.missed.push(id);
                    return;
                }
                self.log(&to, || {
                    format!("← answer to request {}: {}", id.0, describe_outcome(&outcome))
                });
                let now = self.now;
                self.nodes
                    .get_mut(&to)
                    .expect("checked above")
                    .peeking
                    .handle_response(now, id, outcome);
                self.drain(&to);
            }
            Msg::Event { from, to, room, event, state, direct } => {
                self.on_event(from, to, room, event, state, direct)
            }
            Msg::Relay { room, state, to, .. } => self.deliver_relay(&room, state.as_ref(), &to),
            Msg::Expired { from, to, room, peek_id } => {
                if !self.alive(&to) {
                    return;
                }
                self.log(&to, || format!("← {from} expired_peeks {room} {peek_id}"));
                let now = self.now;
                self.nodes
                    .get_mut(&to)
                    .expect("is up")
                    .peeking
                    .handle_remote_expired(now, &from, &room, &peek_id);
                self.drain(&to);
            }
        }
    }

    fn on_request(
        &mut self,
        from: OwnedServerName,
        epoch: u64,
        sent_at: Timestamp,
        request: OutboundRequest,
    ) {
        let now = self.now;
        let target = request.server.to_owned_id();
        let timeout_at = sent_at.saturating_add(self.timeout()).max(now);
        if !self.alive(&target) {
            let id = request.id;
            self.schedule(
                timeout_at,
                Msg::Response {
                    to: from,
                    epoch,
                    id,
                    outcome: OutboundOutcome::Failed(OutboundFailure::Unreachable),
                },
            );
            return;
        }
        let room = request.room_id.to_owned_id();
        let model = self.rooms.get(&room);
        let access = model.filter(|r| r.is_resident(&target)).map(|r| r.access.clone());
        let denied = model.is_some_and(|r| r.denied.contains(&from));
        let peeking = &mut self.nodes.get_mut(&target).expect("is up").peeking;
        let peek_id = request.peek_id.as_str();
        let outcome = if denied && access.is_some() {
            // The host checks the ACL before calling in (R30).
            over_the_wire(&OutboundFailure::Forbidden)
        } else {
            let answer = match &request.kind {
                OutboundRequestKind::Peek { ver } => peeking
                    .handle_inbound_peek(now, &from, &room, peek_id, ver, access.as_ref())
                    .map(Some),
                OutboundRequestKind::Renew => {
                    peeking.handle_inbound_renew(now, &from, &room, peek_id).map(Some)
                }
                OutboundRequestKind::Unpeek => {
                    peeking.handle_inbound_unpeek(now, &from, &room, peek_id).map(|()| None)
                }
            };
            match (answer, &request.kind) {
                (Err(e), _) => over_the_wire(&e),
                (Ok(None), _) => {
                    self.forget_grant(&target, &room, &from, peek_id);
                    OutboundOutcome::Deleted
                }
                (Ok(Some(grant)), kind) => {
                    self.remember_grant(&target, &room, &from, peek_id, grant.expires_at);
                    match (kind, access.clone()) {
                        (OutboundRequestKind::Peek { .. }, Some(access)) => {
                            OutboundOutcome::Established {
                                renewal_interval: grant.renewal_interval,
                                access,
                            }
                        }
                        _ => OutboundOutcome::Renewed {
                            renewal_interval: Some(grant.renewal_interval),
                        },
                    }
                }
            }
        };
        self.note_request(&target, &from, &room, &request.kind, &outcome);
        self.log(&target, || {
            format!("← {from} {} → {}", describe(&request), describe_outcome(&outcome))
        });
        self.drain(&target);
        let id = request.id;
        if self.rng.chance(self.config.loss) {
            self.log(&target, || format!("  (answer to {from} request {} lost on the wire)", id.0));
            let outcome = OutboundOutcome::Failed(OutboundFailure::Unreachable);
            self.schedule(timeout_at, Msg::Response { to: from, epoch, id, outcome });
        } else {
            let at = now.saturating_add(self.latency());
            self.schedule(at, Msg::Response { to: from, epoch, id, outcome });
        }
    }

    fn remember_grant(
        &mut self,
        resident: &ServerName,
        room: &RoomId,
        origin: &ServerName,
        peek_id: &str,
        expires_at: Timestamp,
    ) {
        self.grants
            .entry((resident.to_owned(), room.to_owned()))
            .or_default()
            .entry(origin.to_owned())
            .or_default()
            .insert(peek_id.to_owned(), expires_at);
        self.accounting.granted(origin, resident, room, peek_id, self.now);
    }

    pub(super) fn forget_grant(
        &mut self,
        resident: &ServerName,
        room: &RoomId,
        origin: &ServerName,
        peek_id: &str,
    ) {
        let key = (resident.to_owned(), room.to_owned());
        if let Some(origins) = self.grants.get_mut(&key) {
            if let Some(ids) = origins.get_mut(origin) {
                ids.remove(peek_id);
                if ids.is_empty() {
                    origins.remove(origin);
                }
            }
            if origins.is_empty() {
                self.grants.remove(&key);
            }
        }
        self.accounting.ended(origin, resident, room, peek_id);
    }

    /// Whether the simulator's own record (independent of the machine) says `origin` holds a
    /// live peek on `room` at `resident`.
    pub(super) fn has_live_grant(
        &self,
        resident: &ServerName,
        room: &RoomId,
        origin: &ServerName,
    ) -> bool {
        let key = (resident.to_owned(), room.to_owned());
        self.grants
            .get(&key)
            .and_then(|origins| origins.get(origin))
            .is_some_and(|ids| ids.values().any(|&exp| exp > self.now))
    }

    /// Relays event `event` of `room` from `from` to its peeking servers (R39), checking each
    /// against the simulator's own record of live peeks.
    pub(super) fn relay_to_peekers(
        &mut self,
        from: &ServerName,
        room: &RoomId,
        event: u64,
        state: Option<&RoomAccess>,
        skip: &[OwnedServerName],
    ) {
        let now = self.now;
        let node = self.nodes.get_mut(from).expect("relaying server exists");
        // Fire anything due first, as a host's timer would have.
        node.peeking.handle_timeout(now);
        let dests: Vec<OwnedServerName> = node
            .peeking
            .destinations(room)
            .filter(|d| !skip.iter().any(|s| s == d))
            .map(|d| d.to_owned())
            .collect();
        self.drain(from);
        self.relay_copies += dests.len() as u64;
        self.note_relay(from, dests.len());
        if self.config.lean {
            self.relay_batch(from, room, event, state, dests);
            return;
        }
        for to in dests {
            if !self.has_live_grant(from, room, &to) {
                self.bad_relays.push(BadRelay {
                    at: now,
                    from: from.to_owned(),
                    to: to.clone(),
                    room_id: room.to_owned(),
                    event,
                });
            }
            *self.relays.entry((to.clone(), room.to_owned())).or_default() += 1;
            let at = self.send_at(from, &to);
            let msg = Msg::Event {
                from: from.to_owned(),
                to,
                room: room.to_owned(),
                event,
                state: state.cloned(),
                direct: false,
            };
            self.schedule(at, msg);
        }
    }

    fn on_event(
        &mut self,
        from: OwnedServerName,
        to: OwnedServerName,
        room: OwnedRoomId,
        event: u64,
        state: Option<RoomAccess>,
        direct: bool,
    ) {
        if !self.alive(&to) {
            return;
        }
        let now = self.now;
        let resident = self.rooms.get(&room).is_some_and(|r| r.is_resident(&to));
        let fresh = self.config.lean || {
            let arrivals = self.received.entry((to.clone(), room.clone())).or_default();
            match arrivals.entry(event) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(now);
                    true
                }
                std::collections::btree_map::Entry::Occupied(_) => false,
            }
        };
        if resident && direct {
            let skip: Vec<OwnedServerName> = self.rooms[&room].members.keys().cloned().collect();
            self.relay_to_peekers(&to, &room, event, state.as_ref(), &skip);
        }
        if fresh {
            if !resident {
                // An event that came through a federated peek: the peeking side's host reports
                // it, so a resident that falls silent is noticed (OutboundConfig::min_silence).
                let node = self.nodes.get_mut(&to).expect("is up");
                node.peeking.handle_remote_event(now, &room);
                self.drain(&to);
            }
            self.wake_peekers(&to, &room, event, &from);
        }
        if let Some(access) = state {
            self.log(&to, || {
                format!(
                    "← {from} state event #{event} in {room}: world_readable={}, encrypted={}",
                    access.world_readable, access.encrypted
                )
            });
            self.nodes
                .get_mut(&to)
                .expect("is up")
                .peeking
                .handle_access_changed(now, &room, &access);
            self.drain(&to);
        }
    }

    /// Counts a wake for every local device peeking `room` on `server`.
    pub(super) fn wake_peekers(
        &mut self,
        server: &ServerName,
        room: &RoomId,
        event: u64,
        from: &ServerName,
    ) {
        if self.config.lean {
            return;
        }
        let peekers: Vec<_> = self.nodes[server]
            .peeking
            .peekers(room)
            .map(|(u, d)| (u.to_owned(), d.to_owned()))
            .collect();
        if peekers.is_empty() {
            return;
        }
        self.log(server, || {
            format!(
                "event #{event} in {room} (from {from}) wakes {} peeking device(s)",
                peekers.len()
            )
        });
        for (u, d) in peekers {
            *self.event_wakes.entry((server.to_owned(), u, d)).or_default() += 1;
        }
    }
}
