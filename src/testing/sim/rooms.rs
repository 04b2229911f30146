//! The rooms of the simulated world: creating them, aliases, events, state changes, ACLs,
//! joins and leaves. Every input is checked first and refused with a [`SimError`] that
//! changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use ruma_common::{OwnedRoomId, OwnedServerName, RoomAliasId, RoomId, ServerName, UserId};

use super::net::Msg;
use super::{Sim, SimError, SimRoom};
use crate::RoomAccess;

impl Sim {
    /// Creates `room_id` on `server` with `creator` (a user of `server`) joined and the given
    /// access; the create event is event number 1. Refused when the server is unknown or down,
    /// the creator is not its user, or the room exists ([`SimError::RoomExists`]).
    pub fn create_room(
        &mut self,
        server: &ServerName,
        creator: &UserId,
        room_id: &RoomId,
        access: RoomAccess,
    ) -> Result<(), SimError> {
        self.client_of(server, creator)?;
        if self.rooms.contains_key(room_id) {
            return Err(SimError::RoomExists(room_id.to_owned()));
        }
        let mut members = BTreeMap::new();
        members.insert(server.to_owned(), BTreeSet::from([creator.to_owned()]));
        let room = SimRoom { access, members, denied: BTreeSet::new(), events: 1 };
        self.rooms.insert(room_id.to_owned(), room);
        if !self.config.lean {
            self.created.insert(room_id.to_owned(), vec![self.now]);
            self.received
                .entry((server.to_owned(), room_id.to_owned()))
                .or_default()
                .insert(1, self.now);
        }
        self.log(server, || format!("{creator} created {room_id}"));
        Ok(())
    }

    /// Publishes an alias for a room (the alias's server need not exist: it is only the first
    /// candidate of [`resolve_alias`](Self::resolve_alias)). Refused for an unknown room, or an
    /// alias that already names another room ([`SimError::AliasTaken`]); publishing the same
    /// pair again does nothing.
    pub fn add_alias(&mut self, alias: &RoomAliasId, room_id: &RoomId) -> Result<(), SimError> {
        self.known_room(room_id)?;
        match self.aliases.get(alias) {
            Some(other) if other != room_id => {
                Err(SimError::AliasTaken { alias: alias.to_owned(), room_id: other.clone() })
            }
            _ => {
                self.aliases.insert(alias.to_owned(), room_id.to_owned());
                Ok(())
            }
        }
    }

    /// Resolves an alias (R4): the room and the alias's domain as the first candidate (R46).
    /// `None` for an alias never published (a 404). Changes with [`add_alias`](Self::add_alias).
    pub fn resolve_alias(&self, alias: &RoomAliasId) -> Option<(OwnedRoomId, OwnedServerName)> {
        Some((self.aliases.get(alias)?.clone(), alias.server_name().to_owned()))
    }

    /// The room model, `None` if the room was never created. Changes with every event, join,
    /// leave and ACL change of the room.
    pub fn room(&self, room_id: &RoomId) -> Option<&SimRoom> {
        self.rooms.get(room_id)
    }

    /// Creates an event in `room_id` on `server` and sends it to the other joined servers and
    /// to `server`'s peeking servers (R39). Returns its number. Refused when the server is
    /// unknown or down, the room unknown, or `server` not in it ([`SimError::NotResident`]).
    pub fn send_event(&mut self, server: &ServerName, room_id: &RoomId) -> Result<u64, SimError> {
        self.check_sender(server, room_id)?;
        Ok(self.emit(server, room_id, None))
    }

    /// Sets history visibility (`world_readable` or not) by a state event from `server`;
    /// returns its number. Refused as [`send_event`](Self::send_event) is.
    pub fn set_world_readable(
        &mut self,
        server: &ServerName,
        room_id: &RoomId,
        yes: bool,
    ) -> Result<u64, SimError> {
        let mut access = self.check_sender(server, room_id)?.access.clone();
        access.world_readable = yes;
        Ok(self.emit(server, room_id, Some(access)))
    }

    /// Enables or disables encryption by a state event from `server`; returns its number.
    /// Refused as [`send_event`](Self::send_event) is.
    pub fn set_encrypted(
        &mut self,
        server: &ServerName,
        room_id: &RoomId,
        yes: bool,
    ) -> Result<u64, SimError> {
        let mut access = self.check_sender(server, room_id)?.access.clone();
        access.encrypted = yes;
        Ok(self.emit(server, room_id, Some(access)))
    }

    /// `m.room.server_acl` now denies `denied` (any name, known or not): residents refuse its
    /// requests (R30) and expire its peeks (R45). A resident that is down misses the change
    /// (the simulated hosts do not catch up on state). Refused for an unknown room.
    pub fn deny_server(&mut self, room_id: &RoomId, denied: &ServerName) -> Result<(), SimError> {
        let room = self.rooms.get_mut(room_id).ok_or_else(|| unknown_room(room_id))?;
        room.denied.insert(denied.to_owned());
        let residents: Vec<_> =
            room.members.keys().filter(|s| room.is_resident(s)).cloned().collect();
        let now = self.now;
        for server in residents {
            if let Some(node) = self.nodes.get_mut(&server).filter(|n| n.up) {
                node.peeking.handle_server_denied(now, room_id, denied);
                self.log(&server, || format!("server ACL of {room_id} now denies {denied}"));
                self.drain(&server);
            }
        }
        Ok(())
    }

    /// `user` of `server` joins `room_id` (R19, R20, R56): the model gains the member, the
    /// server's coordinator hears `handle_joined`, and a membership event is sent. Joining
    /// again sends another membership event. Refused when the server is unknown or down, the
    /// user is not its user, or the room is unknown.
    pub fn join(
        &mut self,
        server: &ServerName,
        user: &UserId,
        room_id: &RoomId,
    ) -> Result<(), SimError> {
        self.client_of(server, user)?;
        let room = self.rooms.get_mut(room_id).ok_or_else(|| unknown_room(room_id))?;
        let access = room.access.clone();
        room.members.entry(server.to_owned()).or_default().insert(user.to_owned());
        self.log(server, || format!("{user} joins {room_id}"));
        let now = self.now;
        let node = self.nodes.get_mut(server).expect("checked by client_of");
        node.peeking.handle_joined(now, user, room_id, &access);
        self.drain(server);
        self.emit(server, room_id, None);
        Ok(())
    }

    /// `user` of `server` leaves `room_id` (a membership event is sent first); the server's
    /// last member leaving makes it non-resident (`handle_server_left`). Refused when the
    /// server is unknown or down, the user is not its user, the room is unknown, or the user
    /// is not joined ([`SimError::NotMember`]).
    pub fn leave(
        &mut self,
        server: &ServerName,
        user: &UserId,
        room_id: &RoomId,
    ) -> Result<(), SimError> {
        self.client_of(server, user)?;
        let room = self.known_room(room_id)?;
        if !room.members.get(server).is_some_and(|m| m.contains(user)) {
            return Err(SimError::NotMember {
                user_id: user.to_owned(),
                room_id: room_id.to_owned(),
            });
        }
        self.emit(server, room_id, None);
        let room = self.rooms.get_mut(room_id).expect("checked above");
        let members = room.members.entry(server.to_owned()).or_default();
        members.remove(user);
        let last = members.is_empty();
        if last {
            room.members.remove(server);
        }
        self.log(server, || format!("{user} leaves {room_id}"));
        if last {
            let now = self.now;
            let node = self.nodes.get_mut(server).expect("checked by client_of");
            node.peeking.handle_server_left(now, room_id);
            self.drain(server);
        }
        Ok(())
    }

    fn known_room(&self, room_id: &RoomId) -> Result<&SimRoom, SimError> {
        self.rooms.get(room_id).ok_or_else(|| unknown_room(room_id))
    }

    /// `server` may send an event into `room_id`: it exists, is up and is resident.
    fn check_sender(&self, server: &ServerName, room_id: &RoomId) -> Result<&SimRoom, SimError> {
        self.up_node(server)?;
        let room = self.known_room(room_id)?;
        if !room.is_resident(&server.to_owned()) {
            return Err(SimError::NotResident {
                server: server.to_owned(),
                room_id: room_id.to_owned(),
            });
        }
        Ok(room)
    }

    /// Creates event `room.events + 1` on `server` (checked: up and resident) and sends it.
    fn emit(&mut self, server: &ServerName, room_id: &RoomId, state: Option<RoomAccess>) -> u64 {
        let server_owned = server.to_owned();
        let now = self.now;
        let room = self.rooms.get_mut(room_id).expect("checked by the caller");
        room.events += 1;
        let event = room.events;
        if let Some(access) = &state {
            room.access = access.clone();
        }
        let joined: Vec<OwnedServerName> =
            room.members.keys().filter(|s| room.is_resident(s)).cloned().collect();
        if !self.config.lean {
            self.created.entry(room_id.to_owned()).or_default().push(now);
            self.received
                .entry((server_owned.clone(), room_id.to_owned()))
                .or_default()
                .insert(event, now);
        }
        self.log(server, || match &state {
            Some(a) => format!(
                "state event #{event} in {room_id}: world_readable={}, encrypted={}",
                a.world_readable, a.encrypted
            ),
            None => format!("event #{event} in {room_id}"),
        });
        for to in joined.iter().filter(|s| **s != server_owned) {
            let at = self.send_at(server, to);
            let msg = Msg::Event {
                from: server_owned.clone(),
                to: to.clone(),
                room: room_id.to_owned(),
                event,
                state: state.clone(),
                direct: true,
            };
            self.schedule(at, msg);
        }
        self.relay_to_peekers(server, room_id, event, state.as_ref(), &joined);
        self.wake_peekers(server, room_id, event, server);
        if let Some(access) = state {
            let node = self.nodes.get_mut(server).expect("checked by the caller");
            node.peeking.handle_access_changed(now, room_id, &access);
            self.drain(server);
        }
        event
    }
}

fn unknown_room(room_id: &RoomId) -> SimError {
    SimError::UnknownRoom(room_id.to_owned())
}
