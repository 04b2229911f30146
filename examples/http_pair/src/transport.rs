//! The shim's federation client: a [`PeekTransport`] doing real HTTP (reqwest) to the other
//! shim, with the crate's ruma endpoints (built by ruma, answers read by the lenient readers
//! and classifiers), plus the `/send` sender used to relay events and `expired_peeks`.
//!
//! **No signatures.** A real homeserver signs every federation request (`Authorization:
//! X-Matrix origin=…,key=…,sig=…`) and checks the signatures, hashes and auth of every PDU it
//! receives, and validates a peek response like a `send_join` response (R49). This shim does
//! none of it: it names its origin in a plain [`ORIGIN_HEADER`] and believes what it is told.

use std::time::Duration;

use async_trait::async_trait;
use matrix_peek::wire::{
    AnyPeekResponse, AnyRenewResponse, FederationPeekRequest, FederationPrefix,
    FederationRenewRequest, FederationUnpeekRequest, MAX_PEEK_RESPONSE_BYTES,
};
use matrix_peek::{OutboundFailure, OutboundOutcome, OutboundRequest, OutboundRequestKind};
use matrix_peek::{PeekTransport, RoomAccess};
use ruma_common::api::OutgoingRequestExt;
use ruma_common::exports::http;
use ruma_common::{OwnedServerName, ServerName};
use serde_json::Value;

use crate::shim::Log;

/// The header naming the requesting server on federation requests (in place of a signed
/// `Authorization: X-Matrix` header: **unauthenticated**, for a loopback demo only).
pub const ORIGIN_HEADER: &str = "x-peek-origin";

/// How long one federation request may take (the driver has its own, longer, timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A reqwest client for federation calls. Server names in this demo are `127.0.0.1:port`, so
/// the server name *is* the address (a real server resolves it with `.well-known` / SRV).
#[derive(Debug, Clone)]
pub struct Federation {
    client: reqwest::Client,
    me: OwnedServerName,
    log: Log,
}

impl Federation {
    /// A client sending as `me`.
    pub fn new(me: OwnedServerName, log: Log) -> Self {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            // Cannot fail: no TLS backend or proxy settings to load.
            .expect("a plain HTTP client builds");
        Federation { client, me, log }
    }

    /// Sends one `PUT /_matrix/federation/v1/send/{txnId}` with `body` (which must carry
    /// `pdus`, and may carry `expired_peeks`). Returns the HTTP status.
    pub async fn send_transaction(
        &self,
        destination: &ServerName,
        txn_id: &str,
        body: &Value,
    ) -> Result<u16, String> {
        let url = format!("http://{destination}/_matrix/federation/v1/send/{txn_id}");
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let put = || {
            self.client
                .put(&url)
                .header(ORIGIN_HEADER, self.me.as_str())
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
        };
        // One retry: a pooled connection to a peer that restarted fails once. Safe, since a
        // transaction is idempotent by its id. A real server's federation queue retries with
        // backoff for as long as it takes.
        let response = match put().await {
            Ok(response) => response,
            Err(_) => put().await.map_err(|e| e.to_string())?,
        };
        Ok(response.status().as_u16())
    }

    /// `GET /_matrix/federation/v1/query/directory?room_alias=…` on the alias's server:
    /// `(room_id, servers)`.
    pub async fn query_directory(&self, alias: &ruma_common::RoomAliasId) -> Result<Value, u16> {
        let encoded = crate::api::encode(alias.as_str());
        let url = format!(
            "http://{}/_matrix/federation/v1/query/directory?room_alias={encoded}",
            alias.server_name()
        );
        let response = self
            .client
            .get(url)
            .header(ORIGIN_HEADER, self.me.as_str())
            .send()
            .await
            .map_err(|_| 502u16)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(status);
        }
        // Parsed with serde_json directly: reqwest's `json` feature is not needed.
        let bytes = response.bytes().await.map_err(|_| 502u16)?;
        serde_json::from_slice(&bytes).map_err(|_| 502)
    }
}

/// The [`PeekTransport`]: MSC2444's three calls over HTTP.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    federation: Federation,
    prefix: FederationPrefix,
}

impl HttpTransport {
    /// A transport sending through `federation` under the stable `/_matrix/federation/v1`.
    pub fn new(federation: Federation) -> Self {
        HttpTransport { federation, prefix: FederationPrefix::Stable }
    }

    /// One request; on a connection error, once more (a pooled connection to a peer that
    /// restarted fails once; all three calls are idempotent). The driver backs off beyond that.
    async fn call(&self, request: &OutboundRequest) -> Result<http::Response<Vec<u8>>, ()> {
        match self.call_once(request).await {
            Ok(answer) => Ok(answer),
            Err(()) => self.call_once(request).await,
        }
    }

    /// The request as ruma builds it, under this transport's prefix.
    fn build(&self, request: &OutboundRequest) -> Result<http::Request<Vec<u8>>, ()> {
        let base = format!("http://{}", request.server);
        let (room, peek_id) = (request.room_id.clone(), request.peek_id.as_str());
        let built = match &request.kind {
            OutboundRequestKind::Peek { ver } => FederationPeekRequest::new(
                room,
                peek_id,
                ver.to_vec(),
            )
            .try_into_http_request(&base, (), ()),
            OutboundRequestKind::Renew => {
                FederationRenewRequest::new(room, peek_id).try_into_http_request(&base, (), ())
            }
            OutboundRequestKind::Unpeek => {
                FederationUnpeekRequest::new(room, peek_id).try_into_http_request(&base, (), ())
            }
        };
        let mut built = built.map_err(|_| ())?;
        self.prefix.apply(&mut built).map_err(|_| ())?;
        Ok(built)
    }

    async fn call_once(&self, request: &OutboundRequest) -> Result<http::Response<Vec<u8>>, ()> {
        let Federation { client, me, .. } = &self.federation;
        let mut built = self.build(request)?;
        // Signing goes here in a real server (`Authorization: X-Matrix …`).
        let origin = http::HeaderValue::from_str(me.as_str()).map_err(|_| ())?;
        built.headers_mut().insert(ORIGIN_HEADER, origin);
        let built = reqwest::Request::try_from(built).map_err(|_| ())?;
        let response = client.execute(built).await.map_err(|_| ())?;
        let mut answer = http::Response::new(Vec::new());
        *answer.status_mut() = response.status();
        if let Some(retry_after) = response.headers().get(http::header::RETRY_AFTER) {
            answer.headers_mut().insert(http::header::RETRY_AFTER, retry_after.clone());
        }
        if response.content_length().is_some_and(|n| n > MAX_PEEK_RESPONSE_BYTES as u64) {
            return Ok(answer);
        }
        *answer.body_mut() = response.bytes().await.map_err(|_| ())?.to_vec();
        Ok(answer)
    }
}

#[async_trait]
impl PeekTransport for HttpTransport {
    async fn send(&self, request: OutboundRequest) -> OutboundOutcome {
        let what = match &request.kind {
            OutboundRequestKind::Peek { .. } => "PUT",
            OutboundRequestKind::Renew => "POST renew",
            OutboundRequestKind::Unpeek => "DELETE",
        };
        let outcome = match self.call(&request).await {
            Err(()) => OutboundOutcome::Failed(OutboundFailure::Unreachable),
            Ok(answer) => match &request.kind {
                // Any peer's shape, or the classified refusal.
                OutboundRequestKind::Peek { .. } => {
                    match AnyPeekResponse::from_http_response(&answer) {
                        // A real host validates the response like `send_join` here (R49, R50).
                        Ok(response) => match access_of(&response) {
                            Some(access) => OutboundOutcome::Established {
                                renewal_interval: response.renewal_interval,
                                access,
                            },
                            None => OutboundOutcome::Failed(OutboundFailure::InvalidResponse),
                        },
                        Err(failure) => OutboundOutcome::Failed(failure),
                    }
                }
                OutboundRequestKind::Renew => match AnyRenewResponse::from_http_response(&answer) {
                    // A peer that does not say: the machine keeps the last known interval.
                    Ok(r) => OutboundOutcome::Renewed { renewal_interval: r.renewal_interval },
                    Err(failure) => OutboundOutcome::Failed(failure),
                },
                OutboundRequestKind::Unpeek if answer.status().is_success() => {
                    OutboundOutcome::Deleted
                }
                OutboundRequestKind::Unpeek => {
                    OutboundOutcome::Failed(OutboundFailure::from_http_response(&answer))
                }
            },
        };
        self.federation.log.push(format!(
            "sent {what} {} peek_id={} to {} -> {outcome:?}",
            request.room_id, request.peek_id, request.server
        ));
        outcome
    }
}

/// The room's access as the peek response's state says: the version from the create event,
/// `world_readable` from `m.room.history_visibility`, encryption from `m.room.encryption`.
fn access_of(response: &AnyPeekResponse) -> Option<RoomAccess> {
    let version = response.effective_room_version()?;
    let mut world_readable = false;
    let mut encrypted = false;
    for pdu in response.pdus() {
        let Ok(event) = serde_json::from_str::<Value>(pdu.get()) else { continue };
        if event.get("state_key").and_then(Value::as_str) != Some("") {
            continue;
        }
        match event.get("type").and_then(Value::as_str) {
            Some("m.room.history_visibility") => {
                world_readable = event["content"]["history_visibility"] == "world_readable";
            }
            Some("m.room.encryption") => encrypted = true,
            _ => {}
        }
    }
    Some(RoomAccess::new(version, world_readable, encrypted))
}
