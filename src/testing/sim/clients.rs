//! What clients ask their homeserver: `/peek`, `/unpeek`, `/sync`. A client reaches only its
//! own homeserver, and only while it is up; anything else is refused with a [`SimError`] that
//! changes nothing.

use ruma_common::{DeviceId, OwnedServerName, RoomId, ServerName, UserId};

use super::{ClientPeekRecord, Sim, SimError};
use crate::{ClientPeek, ClientPeekReply, PeekError, Residency, StreamPosition, SyncDelta};

impl Sim {
    /// A client's `/peek` on `server` (R1–R9, R27): residency and `joined` come from the room
    /// model (a room never created is remote, as a room id the server does not know is);
    /// `via` are the candidate servers. A `Pending` reply is completed later (see
    /// [`client_peeks`](Self::client_peeks)).
    ///
    /// The outer error is the simulator's: the server is unknown or down
    /// ([`SimError::ServerDown`]: the client's request never reached it), or `user` is not its
    /// user. The server's own answer, refusals included, is the [`ClientPeekReply`].
    pub fn client_peek(
        &mut self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        room_id: &RoomId,
        via: &[OwnedServerName],
    ) -> Result<ClientPeekReply, SimError> {
        self.client_of(server, user)?;
        let server_owned = server.to_owned();
        let model = self.rooms.get(room_id);
        let residency = match model {
            Some(r) if r.is_resident(&server_owned) => Residency::Resident(r.access.clone()),
            _ => Residency::Remote,
        };
        let joined = model.and_then(|r| r.members.get(server)).is_some_and(|m| m.contains(user));
        let now = self.now;
        let node = self.nodes.get_mut(server).expect("checked by client_of");
        let reply = node.peeking.handle_client_peek(
            now,
            ClientPeek {
                user_id: user.to_owned(),
                device_id: device.to_owned(),
                room_id: room_id.to_owned(),
                joined,
                residency,
                via: via.to_vec(),
            },
        );
        let mut record = ClientPeekRecord {
            server: server_owned.clone(),
            user_id: user.to_owned(),
            device_id: device.to_owned(),
            room_id: room_id.to_owned(),
            asked_at: now,
            pending: None,
            answered_at: None,
            result: None,
            aborted: false,
        };
        match &reply {
            ClientPeekReply::Done(result) => {
                record.answered_at = Some(now);
                record.result = Some(result.clone());
                if result.is_ok() && !self.config.lean {
                    self.spans.open(server, user, device, room_id, now);
                }
                self.log(server, || match result {
                    Ok(_) => format!("{user}/{device} /peek {room_id}: granted at once"),
                    Err(e) => format!("{user}/{device} /peek {room_id}: refused: {e}"),
                });
            }
            ClientPeekReply::Pending(id) => {
                record.pending = Some(*id);
                self.pending_peeks.insert((server_owned, *id), self.client_peeks.len());
                self.log(server, || {
                    format!(
                        "{user}/{device} /peek {room_id}: waits on federation (pending id {})",
                        id.0
                    )
                });
            }
        }
        // Lean mode keeps only the peeks that waited on federation (bounded by demand changes).
        if !self.config.lean || record.pending.is_some() {
            self.client_peeks.push(record);
        }
        self.drain(server);
        Ok(reply)
    }

    /// A client's `/unpeek` (R12, R13). The outer error is the simulator's, as for
    /// [`client_peek`](Self::client_peek); the inner result is the server's answer.
    pub fn client_unpeek(
        &mut self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        room_id: &RoomId,
    ) -> Result<Result<(), PeekError>, SimError> {
        self.client_of(server, user)?;
        let now = self.now;
        let node = self.nodes.get_mut(server).expect("checked by client_of");
        let result = node.peeking.handle_client_unpeek(now, user, device, room_id);
        self.log(server, || format!("{user}/{device} /unpeek {room_id}: {result:?}"));
        self.drain(server);
        Ok(result)
    }

    /// The device synced (docs/architecture.md §4.4). Refused when the server is unknown or
    /// down, or `user` is not its user.
    pub fn device_synced(
        &mut self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(), SimError> {
        self.client_of(server, user)?;
        let now = self.now;
        let node = self.nodes.get_mut(server).expect("checked by client_of");
        node.peeking.handle_device_synced(now, user, device);
        self.drain(server);
        Ok(())
    }

    /// What the device's `/sync` shows since `since` (docs/architecture.md §4.3). Refused when
    /// the server is unknown or down (a down server answers no `/sync`), or `user` is not its
    /// user. Changes with every peek, unpeek, join and end of the device's peeks.
    pub fn sync_delta(
        &self,
        server: &ServerName,
        user: &UserId,
        device: &DeviceId,
        since: Option<StreamPosition>,
    ) -> Result<SyncDelta, SimError> {
        Ok(self.client_of(server, user)?.peeking.sync_delta(user, device, since))
    }
}
