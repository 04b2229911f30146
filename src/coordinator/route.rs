//! Routing inside [`Peeking`]: draining the children's outputs to the host queue or to the
//! machine they are for, and the coordinator's memory of remote rooms.

use ruma_common::{OwnedServerName, RoomId};

use super::{
    Change, Output, PeekError, Peeking, PendingPeek, RemoteRoom, RemoteRoomChange, RemoteRoomRecord,
};
use crate::access::RoomAccess;
use crate::ids::RequestId;
use crate::inbound::InboundOutput;
use crate::local::{LocalOutput, LocalPeekError};
use crate::outbound::{OutboundOutput, OutboundPeekError};
use crate::time::Timestamp;

impl Peeking {
    pub(super) fn via_of(&self, room_id: &RoomId) -> Vec<OwnedServerName> {
        self.remote_rooms.get(room_id).map(|r| r.via.clone()).unwrap_or_default()
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
    pub(super) fn learn_access(&mut self, room_id: &RoomId, access: &RoomAccess) {
        if let Some(remote) = self.remote_rooms.get_mut(room_id)
            && remote.access.as_ref() != Some(access)
        {
            remote.access = Some(access.clone());
            let record = self.remote_record(room_id);
            self.outputs.push_back(Output::Persist(Change::RemoteRoom(record)));
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
            self.outputs.push_back(Output::Persist(Change::RemoteRoom(record)));
        }
    }

    pub(super) fn forget_remote_if_unused(&mut self, room_id: &RoomId) {
        if self.pending_by_room.contains_key(room_id)
            || self.local.peekers(room_id).next().is_some()
        {
            return;
        }
        if self.remote_rooms.remove(room_id).is_some() {
            self.outputs.push_back(Output::Persist(Change::RemoteRoom(RemoteRoomChange::Remove(
                room_id.to_owned(),
            ))));
        }
    }

    /// This server became resident in a room it peeked over federation.
    pub(super) fn server_joined(&mut self, now: Timestamp, room_id: &RoomId, access: &RoomAccess) {
        self.outbound.handle_server_joined(now, room_id);
        if self.remote_rooms.remove(room_id).is_some() {
            self.outputs.push_back(Output::Persist(Change::RemoteRoom(RemoteRoomChange::Remove(
                room_id.to_owned(),
            ))));
        }
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
    pub(super) fn fail_pending(&mut self, now: Timestamp, ids: Vec<RequestId>, error: &PeekError) {
        for id in ids {
            let Some(p) = self.pending.remove(&id) else { continue };
            self.pending_deadlines.cancel(&id);
            if let Some(waiting) = self.pending_by_room.get_mut(&p.room_id) {
                waiting.retain(|w| *w != id);
                if waiting.is_empty() {
                    self.pending_by_room.remove(&p.room_id);
                    if !self.local.is_demanded(&p.room_id) {
                        self.outbound.handle_no_demand(now, &p.room_id);
                    }
                    self.forget_remote_if_unused(&p.room_id);
                }
            }
            let result = Err(error.clone());
            self.outputs.push_back(Output::ClientPeekDone { id, result });
        }
    }

    /// Decides every client peek waiting on `room_id`: against `access`, or with `error`.
    pub(super) fn complete_pending(
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
                    while let Some(out) = self.local.poll_output() {
                        self.route_local(now, out);
                    }
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
                    self.outputs.push_back(Output::ClientPeekDone { id, result });
                }
            }
        }
    }

    /// Moves every child output to the host queue or to the machine it is for, until all three
    /// machines are quiet.
    pub(super) fn drain(&mut self, now: Timestamp) {
        loop {
            let mut progressed = false;
            while let Some(out) = self.local.poll_output() {
                progressed = true;
                self.route_local(now, out);
            }
            while let Some(out) = self.inbound.poll_output() {
                progressed = true;
                self.route_inbound(out);
            }
            while let Some(out) = self.outbound.poll_output() {
                progressed = true;
                self.route_outbound(now, out);
            }
            if !progressed {
                break;
            }
        }
    }

    fn route_local(&mut self, now: Timestamp, out: LocalOutput) {
        match out {
            LocalOutput::Persist(change) => {
                self.outputs.push_back(Output::Persist(Change::Local(change)))
            }
            LocalOutput::Wake { user_id, device_id } => {
                self.outputs.push_back(Output::Wake { user_id, device_id })
            }
            LocalOutput::PeekEnded { user_id, device_id, room_id, reason } => {
                self.outputs.push_back(Output::PeekEnded {
                    user_id,
                    device_id,
                    room_id: room_id.clone(),
                    reason,
                });
                self.forget_remote_if_unused(&room_id);
            }
            LocalOutput::RoomDemand { room_id, demanded: false } => {
                // The room's `PeekEnded` came first and may already have forgotten the remote
                // room: wind the outbound peek down whatever `remote_rooms` says (the outbound
                // machine ignores rooms it does not track). Waiting client peeks keep it.
                if !self.pending_by_room.contains_key(&room_id) {
                    self.outbound.handle_no_demand(now, &room_id);
                }
            }
            LocalOutput::RoomDemand { room_id, demanded: true } => {
                if !self.remote_rooms.contains_key(&room_id) {
                    return; // resident: no federation (R57)
                }
                let via = self.via_of(&room_id);
                self.outbound.handle_demand(now, &room_id, &via);
            }
        }
    }

    fn route_inbound(&mut self, out: InboundOutput) {
        match out {
            InboundOutput::Persist(change) => {
                self.outputs.push_back(Output::Persist(Change::Inbound(change)))
            }
            InboundOutput::Expired { server, room_id, peek_id, reason } => {
                self.outputs.push_back(Output::Expired { server, room_id, peek_id, reason })
            }
        }
    }

    fn route_outbound(&mut self, now: Timestamp, out: OutboundOutput) {
        match out {
            OutboundOutput::Persist(change) => {
                self.outputs.push_back(Output::Persist(Change::Outbound(change)))
            }
            OutboundOutput::Send(request) => self.outputs.push_back(Output::Send(request)),
            OutboundOutput::Established { room_id, server, access, missed_since } => {
                self.learn_access(&room_id, &access);
                self.complete_pending(now, &room_id, Ok(&access));
                if !self.local.is_demanded(&room_id) {
                    // Every waiting client was refused locally: nobody needs the peek.
                    self.outbound.handle_no_demand(now, &room_id);
                }
                self.outputs.push_back(Output::Established {
                    room_id,
                    server,
                    access,
                    missed_since,
                });
            }
            OutboundOutput::Unavailable { room_id, error } => {
                self.complete_pending(now, &room_id, Err(&error));
                self.local.handle_room_unavailable(now, &room_id);
                self.outputs.push_back(Output::Unavailable { room_id: room_id.clone(), error });
                self.forget_remote_if_unused(&room_id);
            }
            OutboundOutput::Lost { room_id, reason } => {
                self.outputs.push_back(Output::Lost { room_id, reason })
            }
        }
    }
}
