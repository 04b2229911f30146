//! The test/admin API: create rooms, add events, change a room's visibility, and read the
//! peek state (`/_test/…`). Not part of Matrix; unauthenticated, for the loopback demo only.

// Handlers' helpers return the early `Response` as their error (axum style); it is 128 bytes.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use matrix_peek::wire::{ErrorReply, MAX_REQUEST_BODY_BYTES, WireError};
use matrix_peek::{Clock, RoomAccess};
use ruma_common::api::error::ErrorKind;
use ruma_common::{OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomVersionId, ServerName};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::shim::{App, driver_error, error, read_body, reply};

/// The JSON body (`M_BAD_JSON` when it is not, `M_TOO_LARGE` past the request body cap).
pub async fn json_body<T: for<'de> Deserialize<'de>>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, Response> {
    let body = read_body(headers, body, MAX_REQUEST_BODY_BYTES).await?;
    serde_json::from_slice(&body).map_err(|e| error(WireError::BadJson(e.to_string())))
}

fn room_param(path: Result<Path<String>, PathRejection>) -> Result<OwnedRoomId, Response> {
    let Ok(Path(room)) = path else {
        return Err(error(WireError::InvalidParam { name: "roomId", reason: "not UTF-8".into() }));
    };
    RoomId::parse(&room)
        .map_err(|e| error(WireError::InvalidParam { name: "roomId", reason: e.to_string() }))
}

/// The `{roomId}` path parameter, then the JSON body (in that order: a bad room id wins).
pub async fn room_and_body<T: for<'de> Deserialize<'de>>(
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(OwnedRoomId, T), Response> {
    let room_id = room_param(path)?;
    Ok((room_id, json_body(headers, body).await?))
}

/// The user the test API's room changes are sent as: `@admin` on the server `name`.
pub fn admin_user(name: &ServerName) -> OwnedUserId {
    OwnedUserId::try_from(format!("@admin:{name}")).expect("a valid user id on our name")
}

/// The body of `POST /_test/rooms`.
#[derive(Deserialize)]
pub struct CreateRoom {
    /// Alias localpart (`lobby` → `#lobby:this-server`).
    pub alias: Option<String>,
    /// Whether the room's history is `world_readable` (peekable); default `true`.
    #[serde(default = "yes")]
    pub world_readable: bool,
    /// The room version (default 10).
    pub room_version: Option<RoomVersionId>,
}

fn yes() -> bool {
    true
}

/// `POST /_test/rooms` `{"alias": "lobby", "world_readable": true, "room_version": "10"}` →
/// `{"room_id", "alias"}`.
pub async fn create_room(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let request: CreateRoom = match json_body(&headers, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = app.clock.now();
    let creator = admin_user(&app.name);
    let created = app
        .rooms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .create(
            &app.name,
            &creator,
            request.alias.as_deref(),
            request.room_version.unwrap_or(RoomVersionId::V10),
            request.world_readable,
            now,
        )
        .map(|room| (room.id.clone(), room.alias.clone()));
    match created {
        Ok((room_id, alias)) => {
            app.log.push(format!("created room {room_id} {alias:?}"));
            reply(200, &json!({ "room_id": room_id, "alias": alias }))
        }
        Err(e) => error(ErrorReply::new(400, ErrorKind::InvalidParam, e)),
    }
}

/// The body of `POST /_test/rooms/{roomId}/send`.
#[derive(Deserialize)]
pub struct SendEvent {
    /// The message's text.
    pub body: String,
}

/// `POST /_test/rooms/{roomId}/send` `{"body": "hello"}`: appends an `m.room.message` and relays
/// it to every server peeking the room → `{"event_id", "relayed_to": [[server, status]]}`.
pub async fn send(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (room_id, request): (_, SendEvent) = match room_and_body(path, &headers, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = app.clock.now();
    let content = json!({ "msgtype": "m.text", "body": request.body });
    let sender = admin_user(&app.name);
    let event = app.rooms.lock().unwrap_or_else(|p| p.into_inner()).send(
        &room_id,
        &sender,
        "m.room.message",
        content,
        now,
    );
    let Some(event) = event else { return error(ErrorReply::not_found("no such room here")) };
    let relayed = app.relay(&room_id, &event).await;
    reply(200, &json!({ "event_id": event["event_id"], "relayed_to": relayed }))
}

#[derive(Deserialize)]
struct Visibility {
    world_readable: bool,
}

/// `POST /_test/rooms/{roomId}/visibility` `{"world_readable": false}`: changes the room's
/// history visibility; peeks end (R24, R40) and peeking servers hear of it in `expired_peeks`.
pub async fn visibility(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (room_id, request): (_, Visibility) = match room_and_body(path, &headers, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = app.clock.now();
    let sender = admin_user(&app.name);
    let changed = app.rooms.lock().unwrap_or_else(|p| p.into_inner()).set_world_readable(
        &room_id,
        &sender,
        request.world_readable,
        now,
    );
    let Some((_event, access)) = changed else {
        return error(ErrorReply::not_found("no such room here"));
    };
    let access: RoomAccess = access;
    match app.driver.access_changed(&room_id, &access).await {
        Ok(()) => reply(200, &json!({ "world_readable": access.world_readable })),
        Err(e) => driver_error(e),
    }
}

#[derive(Deserialize)]
struct ServerAcl {
    deny: Vec<String>,
}

/// `POST /_test/rooms/{roomId}/acl` `{"deny": ["evil.example", "*.bad"]}`: sets the room's
/// `m.room.server_acl` (every other server allowed). Every peeking server it now denies loses
/// its peeks (R45, `Driver::server_denied`) and hears of it in `expired_peeks`; its new peeks
/// and renewals are refused (403), and nothing more is relayed to it. Answers with the servers
/// whose peeks ended.
pub async fn server_acl(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (room_id, request): (_, ServerAcl) = match room_and_body(path, &headers, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now = app.clock.now();
    let sender = admin_user(&app.name);
    let changed = app.rooms.lock().unwrap_or_else(|p| p.into_inner()).set_server_acl(
        &room_id,
        &sender,
        request.deny,
        now,
    );
    let Some((_event, acl)) = changed else {
        return error(ErrorReply::not_found("no such room here"));
    };
    let peeking: Vec<OwnedServerName> =
        app.driver.read(|p| p.destinations(&room_id).map(ToOwned::to_owned).collect()).await;
    let mut denied = Vec::new();
    for server in peeking.into_iter().filter(|s| !acl.is_allowed(s)) {
        if let Err(e) = app.driver.server_denied(&room_id, &server).await {
            return driver_error(e);
        }
        denied.push(server);
    }
    reply(200, &json!({ "denied": denied }))
}

/// `GET /_test/state`: this server's peeks as [`Driver::read`](matrix_peek::Driver::read) sees
/// them, the events relayed to it, its rooms and its log.
pub async fn state(State(app): State<Arc<App>>) -> Response {
    let known: Vec<OwnedRoomId> =
        app.remote_rooms.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
    let peeks = app
        .driver
        .read(|p| {
            let mut rooms: Vec<OwnedRoomId> = p.local().demanded_rooms().map(ToOwned::to_owned).collect();
            rooms.extend(known);
            rooms.sort();
            rooms.dedup();
            let mut local = Vec::new();
            // Every outbound room with its state and current resident (the machine's listing).
            let outbound: Vec<Value> = p
                .outbound()
                .rooms()
                .map(|info| {
                    json!({
                        "room_id": info.room_id, "state": format!("{:?}", info.state),
                        "server": info.resident, "peek_id": info.peek_id,
                        "retired_peeks": info.retired_peeks,
                    })
                })
                .collect();
            for room in &rooms {
                for (user, device) in p.peekers(room) {
                    let expires = p.local().lease(user, device, room).map(|t| t.as_millis());
                    local.push(json!({
                        "user_id": user, "device_id": device, "room_id": room, "expires_at": expires,
                    }));
                }
            }
            let inbound: Vec<Value> = p
                .inbound()
                .records()
                .map(|r| {
                    json!({
                        "origin": r.server, "room_id": r.room_id, "peek_id": r.peek_id,
                        "expires_at": r.expires_at.as_millis(),
                    })
                })
                .collect();
            json!({ "local_peeks": local, "outbound": outbound, "inbound": inbound })
        })
        .await;
    let received: serde_json::Map<String, Value> = app
        .received
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(room, events)| {
            let ids: Vec<Value> = events.iter().map(|e| e["event_id"].clone()).collect();
            (room.to_string(), Value::Array(ids))
        })
        .collect();
    let mut body = peeks;
    body["server_name"] = json!(app.name);
    body["received"] = Value::Object(received);
    body["log"] = json!(app.log.lines());
    reply(200, &body)
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    /// The status and the `errcode` of an error reply.
    async fn refusal(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        (status, body["errcode"].as_str().unwrap_or_default().to_owned())
    }

    async fn parse(room: &str, body: &str) -> Result<(OwnedRoomId, SendEvent), Response> {
        room_and_body(Ok(Path(room.to_owned())), &HeaderMap::new(), Body::from(body.to_owned()))
            .await
    }

    #[tokio::test]
    async fn the_test_api_refuses_a_bad_room_id_or_body_with_400_and_reads_a_good_one() {
        let (room, request) = parse("!r:example.org", r#"{"body": "hi"}"#).await.ok().unwrap();
        assert_eq!((room.as_str(), request.body.as_str()), ("!r:example.org", "hi"));
        let bad_room = parse("not-a-room", r#"{"body": "hi"}"#).await.err().unwrap();
        assert_eq!(refusal(bad_room).await, (StatusCode::BAD_REQUEST, "M_INVALID_PARAM".into()));
        let bad_body = parse("!r:example.org", r#"{"text": "hi"}"#).await.err().unwrap();
        assert_eq!(refusal(bad_body).await, (StatusCode::BAD_REQUEST, "M_BAD_JSON".into()));
        // The room id is checked first.
        let both = parse("not-a-room", "{").await.err().unwrap();
        assert_eq!(refusal(both).await.1, "M_INVALID_PARAM");
        let created: CreateRoom =
            json_body(&HeaderMap::new(), Body::from(r#"{"alias": "lobby"}"#)).await.ok().unwrap();
        assert!(created.world_readable && created.room_version.is_none());
    }
}
