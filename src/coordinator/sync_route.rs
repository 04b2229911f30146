//! Routing inside [`SyncSide`]: the local machine's outputs to the host or to the federation
//! side, the federation side's messages to the waiting client peeks and the local machine, and
//! the memory of remote rooms.

use ruma_common::{OwnedServerName, RoomId};

use super::message::{SideOutput, ToFederation, ToSync};
use super::sync_side::{FederatedPeek, PendingPeek, RemoteRoom, SyncSide, Wanted};
use super::{Change, Output, PeekError, RemoteRoomChange, RemoteRoomRecord};
use crate::access::RoomAccess;
use crate::ids::RequestId;
use crate::local::{LocalOutput, LocalPeekError};
use crate::outbound::OutboundPeekError;
use crate::time::Timestamp;

impl SyncSide {
    pub(super) fn host(&mut self, output: Output) {
        self.outputs.push_back(SideOutput::Host(output));
    }

    pub(super) fn route(&mut self, message: ToFederation) {
        self.outputs.push_back(SideOutput::Route(message));
    }

    pub(super) fn via_of(&self, room_id: &RoomId) -> Vec<OwnedServerName> {
        self.remote_rooms.get(room_id).map(|r| r.via.clone()).unwrap_or_default()
    }

    /// Whether anyone here needs the room's federated peek: local peeks or waiting clients.
    fn demanded(&self, room_id: &RoomId) -> bool {
        self.local.is_demanded(room_id) || self.pending_by_room.contains_key(room_id)
    }

    /// States (again) that the room is wanted: a `Demand` with a fresh `Seq`, after which
    /// answers to earlier ones are stale. A known grant is kept until the answer says
    /// otherwise. The next restatement is due `resync_interval` from `now`.
    pub(super) fn send_demand(&mut self, now: Timestamp, room_id: &RoomId, not_resident: bool) {
        self.state_demand(now, room_id, not_resident, false);
    }

    /// Sends the room's `Demand` (creating its `Wanted` entry if new) and arms its
    /// restatement. A new wish (not `restated`) becomes the
    /// entry's `asked`; a restatement leaves `asked` alone.
    fn state_demand(
        &mut self,
        now: Timestamp,
        room_id: &RoomId,
        not_resident: bool,
        restated: bool,
    ) {
        let seq = self.seq.next();
        let via = self.via_of(room_id);
        let wanted = self.wanted.entry(room_id.to_owned()).or_insert(Wanted {
            asked: seq,
            heard: None,
            not_resident: false,
            peek: FederatedPeek::Down,
        });
        if !restated {
            wanted.asked = seq;
        }
        wanted.not_resident |= not_resident;
        let not_resident = wanted.not_resident;
        self.resync.arm(now, room_id);
        let room_id = room_id.to_owned();
        self.route(ToFederation::Demand { room_id, seq, via, not_resident, restated });
    }

    /// Restates the demand for every wanted room whose restatement is due (anti-entropy,
    /// docs/architecture.md §7.5): a federation side that lost it (a restart with no record of
    /// the room) takes it up again. A restatement wants nothing new, so answers to the
    /// `Demand` it repeats stay valid (`asked` is unchanged); the answer to the restatement
    /// itself is newer and is applied too.
    pub(super) fn restate_due(&mut self, now: Timestamp) {
        for room_id in self.resync.due(now) {
            if self.wanted.contains_key(&room_id) {
                self.restated += 1;
                self.state_demand(now, &room_id, false, true);
            }
        }
    }

    /// Forgets that the room is wanted; whether it was.
    fn unwant(&mut self, room_id: &RoomId) -> bool {
        self.resync.disarm(room_id);
        self.wanted.remove(room_id).is_some()
    }

    /// States that the room is no longer wanted, if it was.
    fn send_no_demand(&mut self, room_id: &RoomId) {
        if self.unwant(room_id) {
            let seq = self.seq.next();
            self.route(ToFederation::NoDemand { room_id: room_id.to_owned(), seq });
        }
    }

    pub(super) fn remote_record(&self, room_id: &RoomId) -> RemoteRoomChange {
        match self.remote_rooms.get(room_id) {
            Some(r) => RemoteRoomChange::Upsert(RemoteRoomRecord {
                room_id: room_id.to_owned(),
                via: r.via.clone(),
                access: r.access.clone(),
            }),
            None => RemoteRoomChange::Remove(room_id.to_owned()),
        }
    }

    /// Remembers (and persists) the access a federated peek reported for a remote room.
    fn learn_access(&mut self, room_id: &RoomId, access: &RoomAccess) {
        if let Some(remote) = self.remote_rooms.get_mut(room_id)
            && remote.access.as_ref() != Some(access)
        {
            remote.access = Some(access.clone());
            let record = self.remote_record(room_id);
            self.host(Output::Persist(Change::RemoteRoom(record)));
        }
    }

    /// Records that the room is peeked over federation, merging `via` (capped).
    pub(super) fn remember_remote(&mut self, room_id: &RoomId, via: &[OwnedServerName]) {
        let max_via = self.max_via;
        let entry = self
            .remote_rooms
            .entry(room_id.to_owned())
            .or_insert_with(|| RemoteRoom { via: Vec::new(), access: None });
        let before = entry.via.len();
        let mut fresh = before == 0 && via.is_empty();
        for server in via {
            if entry.via.len() >= max_via {
                break;
            }
            if !entry.via.contains(server) {
                entry.via.push(server.clone());
            }
        }
        fresh |= entry.via.len() != before;
        if fresh {
            let record = self.remote_record(room_id);
            self.host(Output::Persist(Change::RemoteRoom(record)));
        }
    }

    pub(super) fn forget_remote_if_unused(&mut self, room_id: &RoomId) {
        if self.pending_by_room.contains_key(room_id)
            || self.local.peekers(room_id).next().is_some()
        {
            return;
        }
        if self.remote_rooms.remove(room_id).is_some() {
            let change = RemoteRoomChange::Remove(room_id.to_owned());
            self.host(Output::Persist(Change::RemoteRoom(change)));
        }
    }

    /// This server became resident in a room it peeked over federation.
    pub(super) fn server_joined(&mut self, now: Timestamp, room_id: &RoomId, access: &RoomAccess) {
        self.unwant(room_id);
        // Persist before the message it justifies: a host that publishes outputs in order has
        // forgotten the remote room before the federation side deletes its peek.
        if self.remote_rooms.remove(room_id).is_some() {
            let change = RemoteRoomChange::Remove(room_id.to_owned());
            self.host(Output::Persist(Change::RemoteRoom(change)));
        }
        let seq = self.seq.next();
        self.route(ToFederation::ServerJoined { room_id: room_id.to_owned(), seq });
        self.complete_pending(now, room_id, Ok(access));
    }

    /// Fails every waiting client peek `cancelled` selects (its device or user is gone, R25):
    /// `ClientPeekDone(NotPeeking)`, and a room nobody waits on or peeks any more loses its
    /// demand. O(waiting peeks), bounded by `max_pending_client_peeks`.
    pub(super) fn cancel_pending(
        &mut self,
        now: Timestamp,
        cancelled: impl Fn(&PendingPeek) -> bool,
    ) {
        let mut ids: Vec<RequestId> =
            self.pending.iter().filter(|(_, p)| cancelled(p)).map(|(id, _)| *id).collect();
        ids.sort_unstable();
        self.counts.withdrawn += ids.len() as u64;
        self.fail_pending(now, ids, &PeekError::Local(LocalPeekError::NotPeeking));
    }

    /// Fails the waiting client peeks `ids` with `error`; a room nobody waits on or peeks any
    /// more loses its demand.
    pub(super) fn fail_pending(&mut self, _now: Timestamp, ids: Vec<RequestId>, error: &PeekError) {
        for id in ids {
            let Some(p) = self.pending.remove(&id) else { continue };
            self.pending_deadlines.cancel(&id);
            if let Some(waiting) = self.pending_by_room.get_mut(&p.room_id) {
                waiting.retain(|w| *w != id);
                if waiting.is_empty() {
                    self.pending_by_room.remove(&p.room_id);
                    if !self.local.is_demanded(&p.room_id) {
                        self.send_no_demand(&p.room_id);
                    }
                    self.forget_remote_if_unused(&p.room_id);
                }
            }
            let result = Err(error.clone());
            self.host(Output::ClientPeekDone { id, result });
        }
    }

    /// Decides every client peek waiting on `room_id`: against `access`, or with `error`.
    fn complete_pending(
        &mut self,
        now: Timestamp,
        room_id: &RoomId,
        outcome: Result<&RoomAccess, &OutboundPeekError>,
    ) {
        let Some(ids) = self.pending_by_room.remove(room_id) else { return };
        for id in ids {
            let Some(p) = self.pending.remove(&id) else { continue };
            self.pending_deadlines.cancel(&id);
            let result = match outcome {
                Ok(access) => {
                    let result = self
                        .local
                        .handle_peek(now, &p.user_id, &p.device_id, &p.room_id, p.joined, access)
                        .map_err(PeekError::from);
                    // Persist before the acknowledgement: route the grant's own outputs (its
                    // `Persist`) ahead of `ClientPeekDone`.
                    self.drain(now);
                    result
                }
                Err(error) => Err(PeekError::Remote(error.clone())),
            };
            match &mut self.answering {
                Some((answering, slot @ None)) if *answering == id => *slot = Some(result),
                _ => {
                    match &result {
                        Ok(_) => self.counts.granted_after_wait += 1,
                        Err(_) => self.counts.refused_after_wait += 1,
                    }
                    self.host(Output::ClientPeekDone { id, result });
                }
            }
        }
    }

    /// Moves every local output to the host queue or, as a message, to the federation side.
    pub(super) fn drain(&mut self, now: Timestamp) {
        while let Some(out) = self.local.poll_output() {
            self.route_local(now, out);
        }
    }

    fn route_local(&mut self, now: Timestamp, out: LocalOutput) {
        match out {
            LocalOutput::Persist(change) => self.host(Output::Persist(Change::Local(change))),
            LocalOutput::Wake { user_id, device_id } => {
                self.host(Output::Wake { user_id, device_id })
            }
            LocalOutput::PeekEnded { user_id, device_id, room_id, reason } => {
                self.host(Output::PeekEnded {
                    user_id,
                    device_id,
                    room_id: room_id.clone(),
                    reason,
                });
                self.forget_remote_if_unused(&room_id);
            }
            LocalOutput::RoomDemand { room_id, demanded: false } => {
                // The room's `PeekEnded` came first and may already have forgotten the remote
                // room: wind the federated peek down whatever `remote_rooms` says. Waiting
                // client peeks keep it.
                if !self.pending_by_room.contains_key(&room_id) {
                    self.send_no_demand(&room_id);
                }
            }
            LocalOutput::RoomDemand { room_id, demanded: true } => {
                if self.remote_rooms.contains_key(&room_id) {
                    self.send_demand(now, &room_id, false);
                } // else resident: no federation (R57)
            }
        }
    }

    /// Applies a federation-side message if it is for a room still wanted, answers the latest
    /// `Demand`, and is newer than the last one applied (docs/architecture.md §7.5).
    pub(super) fn apply_route(&mut self, now: Timestamp, message: ToSync) {
        let room_id = message.room_id().to_owned();
        let Some(wanted) = self.wanted.get_mut(&room_id) else {
            self.stale += 1;
            if matches!(
                message,
                ToSync::Granted { .. }
                    | ToSync::NotGranted { .. }
                    | ToSync::Restored { .. }
                    | ToSync::Confirm { .. }
            ) {
                // The federation side holds demand (or a restored peek) nobody here wants:
                // say so again, with a fresh `Seq`. For `Confirm` this is the anti-entropy
                // answer to a `NoDemand` lost in a crash.
                let seq = self.seq.next();
                self.route(ToFederation::NoDemand { room_id, seq });
            }
            return;
        };
        match message.after() {
            // The federation side restarted and has not heard our demand since: state it again.
            None => {
                self.stale += 1;
                return self.send_demand(now, &room_id, false);
            }
            // An answer to a demand replaced since; the answer to the newest is on its way.
            Some(after) if after < wanted.asked => {
                self.stale += 1;
                return;
            }
            Some(_) => {}
        }
        if wanted.heard.is_some_and(|heard| message.seq() <= heard) {
            self.stale += 1;
            return;
        }
        wanted.heard = Some(message.seq());
        match message {
            ToSync::Granted { access, .. } => {
                wanted.peek = FederatedPeek::Granted(access.clone());
                self.learn_access(&room_id, &access);
                self.complete_pending(now, &room_id, Ok(&access));
                if !self.demanded(&room_id) {
                    // Every waiting client was refused locally: nobody needs the peek.
                    self.send_no_demand(&room_id);
                }
            }
            ToSync::NotGranted { .. } | ToSync::Lost { .. } => wanted.peek = FederatedPeek::Down,
            ToSync::Unavailable { error, .. } => {
                wanted.peek = FederatedPeek::Down;
                self.complete_pending(now, &room_id, Err(&error));
                self.local.handle_room_unavailable(now, &room_id);
                self.forget_remote_if_unused(&room_id);
                if !self.demanded(&room_id) {
                    // The federation side dropped the room: nothing to wind down there.
                    self.unwant(&room_id);
                }
            }
            ToSync::Restored { .. } => {} // `after` is always `None`: handled above
            // The federation side holds the demand we last stated: both agree.
            ToSync::Confirm { .. } => {}
        }
    }
}
