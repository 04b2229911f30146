//! The shim's rooms: a small in-memory model (id, alias, version, `world_readable`, server ACL,
//! events), not a homeserver's event graph. Events are plain JSON with made-up ids and **no signatures, no
//! hashes, no auth events**: enough for the peek state machines, nothing more.

use std::collections::HashMap;

use matrix_peek::wire::{EventIdList, FederationPeekResponse, PduList, StateIdMap};
use matrix_peek::{RoomAccess, Timestamp};
use ruma_common::{
    OwnedEventId, OwnedRoomAliasId, OwnedRoomId, RoomAliasId, RoomId, RoomVersionId, ServerName,
    UserId,
};
use ruma_events::room::server_acl::RoomServerAclEventContent;
use serde_json::{Value, json};

/// Events kept per room; the oldest non-state events are dropped beyond it.
const MAX_EVENTS: usize = 1000;

/// One room this server is resident in.
#[derive(Debug)]
pub struct Room {
    /// The room id (`!…:this-server`).
    pub id: OwnedRoomId,
    /// Its alias, if one was asked for.
    pub alias: Option<OwnedRoomAliasId>,
    /// The room version (from the create event).
    pub version: RoomVersionId,
    /// State events (create, history visibility), then messages, in order.
    pub events: Vec<Value>,
    /// The next event number (event ids are `$e{n}-{room}`).
    next_event: u64,
}

impl Room {
    /// What the peek machines need to know about the room, from its current
    /// `m.room.history_visibility` and `m.room.encryption` events.
    pub fn access(&self) -> RoomAccess {
        let current = |kind: &str| {
            self.events
                .iter()
                .rev()
                .find(|e| e["type"] == kind && e["state_key"] == "")
                .map(Value::to_string)
        };
        let visibility = current("m.room.history_visibility");
        let encryption = current("m.room.encryption");
        RoomAccess::from_state(self.version.clone(), visibility.as_deref(), encryption.as_deref())
            .expect("the shim's own events are objects of the right type")
    }

    /// The room's current `m.room.server_acl`, if it has one.
    pub fn server_acl(&self) -> Option<RoomServerAclEventContent> {
        let event = self
            .events
            .iter()
            .rev()
            .find(|e| e["type"] == "m.room.server_acl" && e["state_key"] == "")?;
        serde_json::from_value(event["content"].clone()).ok()
    }

    /// Whether the room's server ACL lets `server` take part (no ACL: every server), by ruma's
    /// evaluation of the event (globs on the host, IP literals).
    pub fn allows(&self, server: &ServerName) -> bool {
        self.server_acl().is_none_or(|acl| acl.is_allowed(server))
    }

    /// The MSC2444 peek response (R35): every state event in `common_state_ids`, the latest
    /// event as the single forward extremity, and all of them as `events`.
    pub fn peek_response(&self, renewal_interval: std::time::Duration) -> FederationPeekResponse {
        let id_of = |e: &Value| -> Option<OwnedEventId> {
            e.get("event_id")?.as_str()?.to_owned().try_into().ok()
        };
        let state: Vec<OwnedEventId> =
            self.events.iter().filter(|e| e.get("state_key").is_some()).filter_map(id_of).collect();
        let latest = self.events.last().and_then(id_of);
        let mut events: Vec<&Value> =
            self.events.iter().filter(|e| e.get("state_key").is_some()).collect();
        if let Some(last) = self.events.last().filter(|e| e.get("state_key").is_none()) {
            events.push(last);
        }
        let events: Vec<Box<serde_json::value::RawValue>> = events
            .into_iter()
            // Cannot fail: a `Value` always serialises.
            .map(|e| serde_json::value::to_raw_value(e).expect("JSON value"))
            .collect();
        FederationPeekResponse::new(
            StateIdMap::from_entries(latest.into_iter().map(|id| (id, Vec::<OwnedEventId>::new()))),
            EventIdList::from_ids(state),
            PduList::from_pdus(events),
            renewal_interval,
        )
    }
}

/// Every room of this server, by id and by alias.
#[derive(Debug, Default)]
pub struct Rooms {
    by_id: HashMap<OwnedRoomId, Room>,
    by_alias: HashMap<OwnedRoomAliasId, OwnedRoomId>,
    counter: u64,
}

impl Rooms {
    /// Creates a room with a create event and a history-visibility event.
    pub fn create(
        &mut self,
        server: &ServerName,
        creator: &UserId,
        alias_localpart: Option<&str>,
        version: RoomVersionId,
        world_readable: bool,
        now: Timestamp,
    ) -> Result<&Room, String> {
        self.counter += 1;
        let id: OwnedRoomId =
            RoomId::parse(format!("!r{}n{}:{server}", now.as_millis(), self.counter))
                .map_err(|e| format!("room id: {e}"))?;
        let alias = match alias_localpart {
            Some(local) => {
                let alias = RoomAliasId::parse(format!("#{local}:{server}"))
                    .map_err(|e| format!("alias: {e}"))?;
                if self.by_alias.contains_key(&alias) {
                    return Err(format!("alias {alias} is taken"));
                }
                Some(alias)
            }
            None => None,
        };
        let mut room = Room {
            id: id.clone(),
            alias: alias.clone(),
            version: version.clone(),
            events: Vec::new(),
            next_event: 0,
        };
        push_event(
            &mut room,
            creator,
            "m.room.create",
            Some(""),
            json!({ "creator": creator, "room_version": version }),
            now,
        );
        push_event(
            &mut room,
            creator,
            "m.room.history_visibility",
            Some(""),
            visibility(world_readable),
            now,
        );
        if let Some(alias) = alias {
            self.by_alias.insert(alias, id.clone());
        }
        Ok(self.by_id.entry(id).or_insert(room))
    }

    /// The room, if this server is in it.
    pub fn get(&self, id: &RoomId) -> Option<&Room> {
        self.by_id.get(id)
    }

    /// The room an alias of this server names.
    pub fn resolve(&self, alias: &RoomAliasId) -> Option<&OwnedRoomId> {
        self.by_alias.get(alias)
    }

    /// Appends a message event and returns it; `None` for an unknown room.
    pub fn send(
        &mut self,
        id: &RoomId,
        sender: &UserId,
        kind: &str,
        content: Value,
        now: Timestamp,
    ) -> Option<Value> {
        let room = self.by_id.get_mut(id)?;
        Some(push_event(room, sender, kind, None, content, now))
    }

    /// Sets the room's `m.room.server_acl` to allow every server (IP literals too: the shims
    /// are named by address) but those matching `deny`; returns the event and the ACL.
    pub fn set_server_acl(
        &mut self,
        id: &RoomId,
        sender: &UserId,
        deny: Vec<String>,
        now: Timestamp,
    ) -> Option<(Value, RoomServerAclEventContent)> {
        let room = self.by_id.get_mut(id)?;
        let acl = RoomServerAclEventContent::new(true, vec!["*".to_owned()], deny);
        let content = serde_json::to_value(&acl).expect("an ACL serialises");
        let event = push_event(room, sender, "m.room.server_acl", Some(""), content, now);
        Some((event, acl))
    }

    /// Changes the history visibility (a state event) and returns the event and new access.
    pub fn set_world_readable(
        &mut self,
        id: &RoomId,
        sender: &UserId,
        world_readable: bool,
        now: Timestamp,
    ) -> Option<(Value, RoomAccess)> {
        let room = self.by_id.get_mut(id)?;
        let event = push_event(
            room,
            sender,
            "m.room.history_visibility",
            Some(""),
            visibility(world_readable),
            now,
        );
        Some((event, room.access()))
    }
}

fn visibility(world_readable: bool) -> Value {
    json!({ "history_visibility": if world_readable { "world_readable" } else { "shared" } })
}

/// Appends an event with a made-up id (`$e{n}-{room}`); drops the oldest message beyond
/// [`MAX_EVENTS`] (state events are kept: they form the peek snapshot).
fn push_event(
    room: &mut Room,
    sender: &UserId,
    kind: &str,
    state_key: Option<&str>,
    content: Value,
    now: Timestamp,
) -> Value {
    let local = room.id.as_str().trim_start_matches('!').split(':').next().unwrap_or("room");
    let mut event = json!({
        "event_id": format!("$e{}-{local}", room.next_event),
        "room_id": room.id,
        "sender": sender,
        "type": kind,
        "content": content,
        "origin_server_ts": now.as_millis(),
    });
    room.next_event += 1;
    if let Some(key) = state_key {
        event["state_key"] = json!(key);
        // A newer state event of the same type replaces the older one.
        room.events.retain(|e| !(e["type"] == kind && e.get("state_key").is_some()));
    }
    room.events.push(event.clone());
    if room.events.len() > MAX_EVENTS
        && let Some(oldest) = room.events.iter().position(|e| e.get("state_key").is_none())
    {
        room.events.remove(oldest);
    }
    event
}
