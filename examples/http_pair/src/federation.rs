//! The federation endpoints: MSC2444's `PUT`/`POST …/renew`/`DELETE` on
//! `/_matrix/federation/v1/peek/{roomId}/{peekId}`, the `/send/{txnId}` receiver (relayed events
//! and `expired_peeks`), and the directory query the client `/peek` uses to resolve an alias.
//!
//! **No signatures**: the origin comes from a plain header and PDUs are believed as sent.

// Handlers' helpers return the early `Response` as their error (axum style); it is 128 bytes.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use matrix_peek::wire::{
    ErrorReply, ExpiredPeeks, FederationPeekPath, FederationPeekRequest, FederationPrefix,
    FederationRenewRequest, FederationRenewResponse, FederationUnpeekRequest,
    FederationUnpeekResponse, MAX_REQUEST_BODY_BYTES, MAX_TRANSACTION_BYTES, WireError,
};
use ruma_common::api::IncomingRequestExt;
use ruma_common::api::error::ErrorKind;
use ruma_common::exports::http;
use ruma_common::{OwnedRoomId, OwnedServerName, RoomAliasId, RoomId, ServerName};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::rooms::Rooms;
use crate::shim::{App, answer, driver_error, error, method_not_allowed, origin, read_body, reply};

/// The request as ruma's `IncomingRequest` takes it: method, URI and headers from axum, the
/// body already read (and capped).
fn incoming<'a>(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &'a [u8],
) -> http::Request<&'a [u8]> {
    let mut request = http::Request::new(body);
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    request
}

/// PDUs read from one `/send` (the spec's limit).
const MAX_PDUS: usize = 50;
/// Events kept per peeked room in the shim's timeline.
const MAX_RECEIVED: usize = 1000;

/// Which call on `/_matrix/federation/v1/peek/…` a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeekCall {
    /// `PUT …/peek/{roomId}/{peekId}` (R28–R38).
    Put,
    /// `POST …/peek/{roomId}/{peekId}/renew` (R41).
    Renew,
    /// `DELETE …/peek/{roomId}/{peekId}` (R42).
    Delete,
}

/// What every resident's peek handler does first: the signed origin, the path parsed with
/// [`FederationPeekPath`], and the call the method names (405 for any other). A peek or
/// renewal from a server the room's ACL denies is refused here (403); a `DELETE`
/// always goes through. The error is the reply to send.
pub fn peek_call(
    rooms: &std::sync::Mutex<Rooms>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(OwnedServerName, FederationPeekPath, PeekCall), Response> {
    let origin = origin(headers)?;
    let target = FederationPeekPath::parse(&FederationPrefix::Stable, uri.path()).map_err(error)?;
    let call = match (target.is_renew, method) {
        (true, &Method::POST) => PeekCall::Renew,
        (false, &Method::PUT) => PeekCall::Put,
        (false, &Method::DELETE) => PeekCall::Delete,
        _ => return Err(method_not_allowed()),
    };
    if call != PeekCall::Delete
        && let Some(refusal) = acl_refusal(rooms, &target.room_id, &origin)
    {
        return Err(refusal);
    }
    Ok((origin, target, call))
}

/// The 403 for a peek or renewal from a server the room's `m.room.server_acl` denies (R45:
/// a denied server gets no new peek and keeps none), or `None` when it may peek.
fn acl_refusal(
    rooms: &std::sync::Mutex<Rooms>,
    room_id: &RoomId,
    origin: &ServerName,
) -> Option<Response> {
    let rooms = rooms.lock().unwrap_or_else(|p| p.into_inner());
    let denied = rooms.get(room_id).is_some_and(|room| !room.allows(origin));
    denied.then(|| {
        let reason = format!("{origin} is denied by the room's server ACL");
        error(ErrorReply::new(403, ErrorKind::Forbidden, reason))
    })
}

/// Every method on `/_matrix/federation/v1/peek/…`: the path parsed with
/// [`FederationPeekPath`], then the request with ruma's `IncomingRequest` for `PUT` (R28–R38),
/// `POST …/renew` (R41) or `DELETE` (R42); anything else is 405.
pub async fn peek(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (origin, target, call) = match peek_call(&app.rooms, &method, &uri, &headers) {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let FederationPeekPath { room_id, peek_id, is_renew } = target.clone();
    let args = target.path_args();
    let response = match call {
        PeekCall::Put => {
            let body = match read_body(&headers, body, MAX_REQUEST_BODY_BYTES).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            // `ver` (absent means ["1"], R33) and the body (a JSON object, R36) by ruma.
            let put = match FederationPeekRequest::try_from_http_request(
                incoming(&method, &uri, &headers, &body),
                &args,
            ) {
                Ok(r) => r,
                Err(e) => return error(WireError::from(e)),
            };
            let access = app
                .rooms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&room_id)
                .map(|r| r.access());
            // R37: register the peek before taking the snapshot, so no event falls between.
            match app
                .driver
                .inbound_peek(&origin, &room_id, &peek_id, &put.ver, access.as_ref())
                .await
            {
                Ok(grant) => {
                    let snapshot = app
                        .rooms
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&room_id)
                        .map(|r| r.peek_response(grant.renewal_interval));
                    match snapshot {
                        Some(snapshot) => answer(snapshot),
                        None => {
                            // R37: no snapshot, no peek.
                            let _ = app.driver.inbound_unpeek(&origin, &room_id, &peek_id).await;
                            error(ErrorReply::not_found("the room went away"))
                        }
                    }
                }
                Err(e) => driver_error(e),
            }
        }
        PeekCall::Renew => {
            let body = match read_body(&headers, body, MAX_REQUEST_BODY_BYTES).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let renew = FederationRenewRequest::try_from_http_request(
                incoming(&method, &uri, &headers, &body),
                &args,
            );
            if let Err(e) = renew {
                return error(WireError::from(e));
            }
            match app.driver.inbound_renew(&origin, &room_id, &peek_id).await {
                Ok(grant) => answer(FederationRenewResponse::new(grant.renewal_interval)),
                Err(e) => driver_error(e),
            }
        }
        PeekCall::Delete => {
            let delete = FederationUnpeekRequest::try_from_http_request(
                incoming(&method, &uri, &headers, &[]),
                &args,
            );
            if let Err(e) = delete {
                return error(WireError::from(e));
            }
            match app.driver.inbound_unpeek(&origin, &room_id, &peek_id).await {
                Ok(()) => answer(FederationUnpeekResponse::new()),
                Err(e) => driver_error(e),
            }
        }
    };
    let what = if is_renew { "POST renew" } else { method.as_str() };
    app.log.push(format!(
        "got {what} {room_id} peek_id={peek_id} from {origin} -> {}",
        response.status().as_u16()
    ));
    response
}

#[derive(Deserialize)]
struct Pdus {
    #[serde(default)]
    pdus: Vec<Value>,
}

/// `PUT /_matrix/federation/v1/send/{txnId}`: relayed PDUs go to the timeline of rooms we peek
/// (waking their local peekers) and to [`Driver::remote_event`] (the peek's liveness);
/// `expired_peeks` go to [`Driver::remote_expired`] (R54).
///
/// [`Driver::remote_event`]: matrix_peek::Driver::remote_event
/// [`Driver::remote_expired`]: matrix_peek::Driver::remote_expired
pub async fn send(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let origin = match origin(&headers) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let body = match read_body(&headers, body, MAX_TRANSACTION_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let expired = match ExpiredPeeks::from_transaction(&body) {
        Ok(e) => e.expired_peeks,
        Err(e) => return error(e),
    };
    let pdus = match serde_json::from_slice::<Pdus>(&body) {
        Ok(p) => p.pdus,
        Err(e) => return error(WireError::BadJson(e.to_string())),
    };
    for entry in expired {
        app.log.push(format!(
            "got expired_peeks {} peek_id={} from {origin}",
            entry.room_id, entry.peek_id
        ));
        if let Err(e) = app.driver.remote_expired(&origin, &entry.room_id, &entry.peek_id).await {
            return driver_error(e);
        }
    }
    for pdu in pdus.into_iter().take(MAX_PDUS) {
        let Some(room_id) = pdu["room_id"].as_str().and_then(|r| OwnedRoomId::try_from(r).ok())
        else {
            continue;
        };
        let peekers: Option<Vec<String>> = app
            .driver
            .read(|p| {
                p.is_remote(&room_id)
                    .then(|| p.peekers(&room_id).map(|(u, d)| format!("{u}/{d}")).collect())
            })
            .await;
        let Some(peekers) = peekers else {
            app.log.push(format!("ignored event for {room_id}: not peeked from here"));
            continue;
        };
        // Liveness of the federated peek: a resident that falls silent is probed, and failed
        // over if it stays silent (docs/architecture.md §6.2).
        if let Err(e) = app.driver.remote_event(&room_id).await {
            return driver_error(e);
        }
        app.log.push(format!(
            "got event {} in {room_id} from {origin}: wake {peekers:?}",
            pdu["event_id"]
        ));
        let mut received = app.received.lock().unwrap_or_else(|p| p.into_inner());
        let timeline = received.entry(room_id).or_default();
        if timeline.len() == MAX_RECEIVED {
            timeline.remove(0);
        }
        timeline.push(pdu);
    }
    reply(200, &json!({ "pdus": {} }))
}

/// `GET /_matrix/federation/v1/query/directory?room_alias=…`: `{room_id, servers}`.
pub async fn directory(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let Ok(url) = reqwest::Url::parse(&format!("http://x/?{query}")) else {
        return error(WireError::InvalidParam { name: "room_alias", reason: "bad query".into() });
    };
    let alias = url.query_pairs().find(|(k, _)| k == "room_alias").map(|(_, v)| v.into_owned());
    let Some(alias) = alias.and_then(|a| RoomAliasId::parse(a).ok()) else {
        return error(WireError::InvalidParam {
            name: "room_alias",
            reason: "missing or invalid".into(),
        });
    };
    let found = app.rooms.lock().unwrap_or_else(|p| p.into_inner()).resolve(&alias).cloned();
    match found {
        Some(room_id) => reply(200, &json!({ "room_id": room_id, "servers": [app.name] })),
        None => error(ErrorReply::not_found(format!("no room alias {alias}"))),
    }
}
