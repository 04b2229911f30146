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
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use matrix_peek::wire::{
    ClientPeekRequest, ClientPeekResponse, ClientUnpeekRequest, ClientUnpeekResponse, ErrorReply,
    MAX_REQUEST_BODY_BYTES, WireError,
};
use matrix_peek::{ClientPeek, Residency};
use ruma_common::api::IncomingRequestExt;
use ruma_common::api::error::ErrorKind;
use ruma_common::exports::http;
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId};

use crate::shim::{App, answer, driver_error, error, read_body, unauthorized};

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
            ErrorKind::MissingToken,
            "name the user and device in x-peek-user / x-peek-device",
        )),
    }
}

fn bad_path(name: &'static str, reason: impl ToString) -> Response {
    error(WireError::InvalidParam { name, reason: reason.to_string() })
}

/// The request as ruma's `IncomingRequest` takes it: method, URI and headers from axum, the
/// body already read (and capped).
fn incoming<'a>(uri: &Uri, headers: &HeaderMap, body: &'a [u8]) -> http::Request<&'a [u8]> {
    let mut request = http::Request::new(body);
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    request
}

/// `POST /_matrix/client/v3/peek/{roomIdOrAlias}` (R1–R9, R27, R46).
pub async fn peek(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (user_id, device_id) = match user(&headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(Path(target)) = path else { return bad_path("roomIdOrAlias", "not UTF-8") };
    let body = match read_body(&headers, body, MAX_REQUEST_BODY_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    // ruma parses the path argument and the body (`servers`, capped; invalid names dropped).
    let request = match ClientPeekRequest::try_from_http_request(
        incoming(&uri, &headers, &body),
        &[target.as_str()],
    ) {
        Ok(r) => r,
        Err(e) => return error(WireError::from(e)),
    };
    let target = request.room_id_or_alias;
    let mut via: Vec<OwnedServerName> = request.body.servers;
    // R4: resolve an alias, locally or through the alias's server's directory.
    let room_id: OwnedRoomId = match <&ruma_common::RoomAliasId>::try_from(target.as_str()) {
        Ok(alias) if alias.server_name() == app.name => {
            let found = app.rooms.lock().unwrap_or_else(|p| p.into_inner()).resolve(alias).cloned();
            match found {
                Some(id) => id,
                None => return error(ErrorReply::not_found(format!("no room alias {alias}"))),
            }
        }
        Ok(alias) => match app.federation.query_directory(alias).await {
            Ok(answer) => {
                let Some(id) =
                    answer["room_id"].as_str().and_then(|r| OwnedRoomId::try_from(r).ok())
                else {
                    return error(ErrorReply::new(502, ErrorKind::Unknown, "bad directory answer"));
                };
                let servers = answer["servers"].as_array().cloned().unwrap_or_default();
                via.extend(servers.iter().filter_map(|s| s.as_str()?.try_into().ok()));
                // R46: the alias's domain is a candidate too (never the room id's).
                via.push(alias.server_name().to_owned());
                id
            }
            Err(404) => return error(ErrorReply::not_found(format!("no room alias {alias}"))),
            Err(status) => {
                return error(ErrorReply::new(
                    502,
                    ErrorKind::Unknown,
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
            answer(ClientPeekResponse::new(grant.room_id, grant.expires_at))
        }
        Err(e) => driver_error(e),
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/unpeek` (R12, R13).
pub async fn unpeek(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (user_id, device_id) = match user(&headers) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Ok(Path(room)) = path else { return bad_path("roomId", "not UTF-8") };
    let body = match read_body(&headers, body, MAX_REQUEST_BODY_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    // The room id from the path, and a body that must be a JSON object (R12).
    let room_id = match ClientUnpeekRequest::try_from_http_request(
        incoming(&uri, &headers, &body),
        &[room.as_str()],
    ) {
        Ok(r) => r.room_id,
        Err(e) => return error(WireError::from(e)),
    };
    match app.driver.client_unpeek(&user_id, &device_id, &room_id).await {
        Ok(()) => {
            app.log.push(format!("{user_id}/{device_id} unpeeked {room_id}"));
            answer(ClientUnpeekResponse::new())
        }
        Err(e) => driver_error(e),
    }
}
