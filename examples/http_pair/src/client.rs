//! The MSC2753 client endpoints: `POST /peek/{roomIdOrAlias}` and `POST /rooms/{roomId}/unpeek`.
//!
//! **Auth is a stand-in**: the user and device are named in the [`USER_HEADER`] and
//! [`DEVICE_HEADER`] headers, believed as sent. A real server maps an access token to them.

// Handlers' helpers return the early `Response` as their error (axum style); it is 128 bytes.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};

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
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, RoomOrAliasId, ServerName,
};

use crate::rooms::Rooms;
use crate::shim::{App, answer, driver_error, error, read_body, unauthorized};
use crate::transport::Federation;

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

/// The requesting user and device (from the stand-in headers) and the client request `R` as
/// ruma parses it from the URI, the headers, the body (read and capped at
/// `MAX_REQUEST_BODY_BYTES`) and `path`, the request's one path argument, named `param`. The
/// error is the reply to send: 400 `M_INVALID_PARAM` for a path that is not UTF-8, 401 without
/// a user and device, the body's or ruma's error otherwise.
pub async fn client_request<R: IncomingRequestExt>(
    path: Result<Path<String>, PathRejection>,
    param: &'static str,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
) -> Result<(OwnedUserId, OwnedDeviceId, R), Response> {
    let Ok(Path(path_arg)) = path else { return Err(bad_path(param, "not UTF-8")) };
    let (user_id, device_id) = user(headers)?;
    let body = read_body(headers, body, MAX_REQUEST_BODY_BYTES).await?;
    match R::try_from_http_request(incoming(uri, headers, &body), &[path_arg.as_str()]) {
        Ok(request) => Ok((user_id, device_id, request)),
        Err(e) => Err(error(WireError::from(e))),
    }
}

/// Resolves a client `/peek` target to the room and its candidate servers (R4, R46): a room
/// id as it is; an alias of this server (`name`) through `rooms`; any other alias through its
/// server's directory, whose `servers` and the alias's own domain (never the room id's) join
/// `via`. `via` comes back without repeats, in first-seen order. The error is the reply to send:
/// 404 for an unknown alias, 502 when the directory query fails.
pub async fn resolve_target(
    name: &ServerName,
    rooms: &Mutex<Rooms>,
    federation: &Federation,
    target: &RoomOrAliasId,
    mut via: Vec<OwnedServerName>,
) -> Result<(OwnedRoomId, Vec<OwnedServerName>), Response> {
    let room_id: OwnedRoomId = match <&ruma_common::RoomAliasId>::try_from(target.as_str()) {
        Ok(alias) if alias.server_name() == name => {
            let found = rooms.lock().unwrap_or_else(|p| p.into_inner()).resolve(alias).cloned();
            match found {
                Some(id) => id,
                None => return Err(error(ErrorReply::not_found(format!("no room alias {alias}")))),
            }
        }
        Ok(alias) => match federation.query_directory(alias).await {
            Ok(answer) => {
                let Some(id) =
                    answer["room_id"].as_str().and_then(|r| OwnedRoomId::try_from(r).ok())
                else {
                    let reply = ErrorReply::new(502, ErrorKind::Unknown, "bad directory answer");
                    return Err(error(reply));
                };
                let servers = answer["servers"].as_array().cloned().unwrap_or_default();
                via.extend(servers.iter().filter_map(|s| s.as_str()?.try_into().ok()));
                via.push(alias.server_name().to_owned());
                id
            }
            Err(404) => {
                return Err(error(ErrorReply::not_found(format!("no room alias {alias}"))));
            }
            Err(status) => {
                let reason = format!("directory query failed: {status}");
                return Err(error(ErrorReply::new(502, ErrorKind::Unknown, reason)));
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
    Ok((room_id, via))
}

/// Parses `POST /_matrix/client/v3/peek/{target}` ([`client_request`]) into the library's
/// [`ClientPeek`]: the target resolved ([`resolve_target`]), resident when `rooms` has the room
/// (with its access), remote otherwise; the servers' users never join. The error is the reply
/// to send.
pub async fn parse_client_peek(
    name: &ServerName,
    rooms: &Mutex<Rooms>,
    federation: &Federation,
    path: Result<Path<String>, PathRejection>,
    (headers, uri, body): (&HeaderMap, &Uri, Body),
) -> Result<ClientPeek, Response> {
    // ruma parses the path argument and the body (`servers`, capped; invalid names dropped).
    let (user_id, device_id, request) =
        client_request::<ClientPeekRequest>(path, "roomIdOrAlias", headers, uri, body).await?;
    let (room_id, via) =
        resolve_target(name, rooms, federation, &request.room_id_or_alias, request.body.servers)
            .await?;
    let access = rooms.lock().unwrap_or_else(|p| p.into_inner()).get(&room_id).map(|r| r.access());
    let residency = access.map_or(Residency::Remote, Residency::Resident);
    Ok(ClientPeek { user_id, device_id, room_id, joined: false, residency, via })
}

/// `POST /_matrix/client/v3/peek/{roomIdOrAlias}` (R1–R9, R27, R46).
pub async fn peek(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = (&headers, &uri, body);
    let peek = match parse_client_peek(&app.name, &app.rooms, &app.federation, path, request).await
    {
        Ok(peek) => peek,
        Err(r) => return r,
    };
    if peek.residency == Residency::Remote {
        app.remote_rooms.lock().unwrap_or_else(|p| p.into_inner()).insert(peek.room_id.clone());
    }
    let (user_id, device_id, room_id) =
        (peek.user_id.clone(), peek.device_id.clone(), peek.room_id.clone());
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
    // The room id from the path, and a body that must be a JSON object (R12).
    let (user_id, device_id, room_id) =
        match client_request::<ClientUnpeekRequest>(path, "roomId", &headers, &uri, body).await {
            Ok((user_id, device_id, request)) => (user_id, device_id, request.room_id),
            Err(r) => return r,
        };
    match app.driver.client_unpeek(&user_id, &device_id, &room_id).await {
        Ok(()) => {
            app.log.push(format!("{user_id}/{device_id} unpeeked {room_id}"));
            answer(ClientUnpeekResponse::new())
        }
        Err(e) => driver_error(e),
    }
}
