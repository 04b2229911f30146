//! The MSC2753 client endpoints: `POST /peek/{roomIdOrAlias}` and `POST /rooms/{roomId}/unpeek`.
//!
//! **Auth is a stand-in**: the user and device are named in the [`USER_HEADER`] and
//! [`DEVICE_HEADER`] headers, believed as sent. A real server maps an access token to them.

// Handlers' helpers return the early `Response` as their error (axum style); it is 128 bytes.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use matrix_peek::wire::client::PeekResponse;
use matrix_peek::wire::{
    MAX_REQUEST_BODY_BYTES, MatrixError, PeekRequest, UnpeekRequest, WireError,
};
use matrix_peek::{ClientPeek, Residency};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomOrAliasId,
};
use serde_json::{Value, json};

use crate::shim::{App, driver_error, error, read_body, reply, unauthorized};

/// The header naming the requesting user (in place of an access token).
pub const USER_HEADER: &str = "x-peek-user";
/// The header naming the requesting device.
pub const DEVICE_HEADER: &str = "x-peek-device";

fn user(headers: &HeaderMap) -> Result<(OwnedUserId, OwnedDeviceId), Response> {
    let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let user = get(USER_HEADER).and_then(|u| OwnedUserId::try_from(u).ok());
    let device = get(DEVICE_HEADER).filter(|d| !d.is_empty() && d.len() <= 255);
    match (user, device) {
        (Some(user), Some(device)) => Ok((user, device.into())),
        _ => Err(unauthorized(
            "M_MISSING_TOKEN",
            "name the user and device in x-peek-user / x-peek-device",
        )),
    }
}

fn bad_path(name: &'static str, reason: impl ToString) -> Response {
    error(WireError::InvalidParam { name, reason: reason.to_string() })
}

/// `POST /_matrix/client/v3/peek/{roomIdOrAlias}` (R1–R9, R27, R46).
pub async fn peek(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (user_id, device_id) = match user(&headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(Path(target)) = path else { return bad_path("roomIdOrAlias", "not UTF-8") };
    let target = match <&RoomOrAliasId>::try_from(target.as_str()) {
        Ok(t) => t.to_owned(),
        Err(e) => return bad_path("roomIdOrAlias", e),
    };
    let body = match read_body(&headers, body, MAX_REQUEST_BODY_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let request = match PeekRequest::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let mut via: Vec<OwnedServerName> = request.servers;
    // R4: resolve an alias, locally or through the alias's server's directory.
    let room_id: OwnedRoomId = match <&ruma_common::RoomAliasId>::try_from(target.as_str()) {
        Ok(alias) if alias.server_name() == app.name => {
            let found = app.rooms.lock().unwrap_or_else(|p| p.into_inner()).resolve(alias).cloned();
            match found {
                Some(id) => id,
                None => return error(MatrixError::not_found(format!("no room alias {alias}"))),
            }
        }
        Ok(alias) => match app.federation.query_directory(alias).await {
            Ok(answer) => {
                let Some(id) =
                    answer["room_id"].as_str().and_then(|r| OwnedRoomId::try_from(r).ok())
                else {
                    return error(MatrixError::new(
                        502,
                        matrix_peek::wire::ErrorCode::Unknown,
                        "bad directory answer",
                    ));
                };
                let servers = answer["servers"].as_array().cloned().unwrap_or_default();
                via.extend(servers.iter().filter_map(|s| s.as_str()?.try_into().ok()));
                // R46: the alias's domain is a candidate too (never the room id's).
                via.push(alias.server_name().to_owned());
                id
            }
            Err(404) => return error(MatrixError::not_found(format!("no room alias {alias}"))),
            Err(status) => {
                return error(MatrixError::new(
                    502,
                    matrix_peek::wire::ErrorCode::Unknown,
                    format!("directory query failed: {status}"),
                ));
            }
        },
        Err(_) => RoomId::parse(target.as_str()).expect("a RoomOrAliasId that is not an alias"),
    };
    let mut seen = Vec::new();
    via.retain(|s| {
        !seen.contains(s) && {
            seen.push(s.clone());
            true
        }
    });
    let access =
        app.rooms.lock().unwrap_or_else(|p| p.into_inner()).get(&room_id).map(|r| r.access());
    let residency = match access {
        Some(access) => Residency::Resident(access),
        None => {
            app.remote_rooms.lock().unwrap_or_else(|p| p.into_inner()).insert(room_id.clone());
            Residency::Remote
        }
    };
    let peek = ClientPeek {
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        room_id: room_id.clone(),
        joined: false, // the shim's users never join rooms
        residency,
        via,
    };
    match app.driver.client_peek(peek).await {
        Ok(grant) => {
            app.log.push(format!(
                "{user_id}/{device_id} peeks {room_id} until {}",
                grant.expires_at.as_millis()
            ));
            let body = PeekResponse { room_id: grant.room_id, peek_expiry_ts: grant.expires_at };
            reply(200, &serde_json::to_value(body).unwrap_or(Value::Null))
        }
        Err(e) => driver_error(e),
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/unpeek` (R12, R13).
pub async fn unpeek(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (user_id, device_id) = match user(&headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(Path(room)) = path else { return bad_path("roomId", "not UTF-8") };
    let room_id = match RoomId::parse(&room) {
        Ok(r) => r,
        Err(e) => return bad_path("roomId", e),
    };
    let body = match read_body(&headers, body, MAX_REQUEST_BODY_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(e) = UnpeekRequest::from_slice(&body) {
        return error(e);
    }
    match app.driver.client_unpeek(&user_id, &device_id, &room_id).await {
        Ok(()) => {
            app.log.push(format!("{user_id}/{device_id} unpeeked {room_id}"));
            reply(200, &json!({}))
        }
        Err(e) => driver_error(e),
    }
}
