//! A tiny HTTP client for one shim's client and test APIs, used by the demo (`src/main.rs`) and
//! by `tests/http_pair.rs`.

use std::time::Duration;

use matrix_peek::wire::ClientPrefix;
use ruma_common::{RoomId, RoomOrAliasId};
use serde_json::{Value, json};

use crate::client::{DEVICE_HEADER, USER_HEADER};

/// One shim, by address (`127.0.0.1:port`, which is also its server name).
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    /// `127.0.0.1:port`.
    pub addr: String,
}

/// A reply: status and JSON body (`Null` when the body is not JSON).
pub type Answer = (u16, Value);

impl Api {
    /// A client for the shim at `addr`.
    pub fn new(addr: impl Into<String>) -> Self {
        // No idle pool: a test restarts servers on the same port, and a pooled connection to
        // the killed process would fail the next request.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(0)
            .build()
            .expect("a plain HTTP client builds");
        Api { client, addr: addr.into() }
    }

    /// Any request: `method` on `path`, extra headers, raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut request = self.client.request(method, format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body).send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// `GET /metrics`: the status, the content type and the Prometheus text.
    pub async fn metrics(&self) -> Result<(u16, String, String), String> {
        let url = format!("http://{}/metrics", self.addr);
        let response = self.client.get(url).send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.map_err(|e| e.to_string())?;
        Ok((status, content_type, text))
    }

    async fn post(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Answer, String> {
        self.raw("POST", path, headers, body.to_string().into_bytes()).await
    }

    /// `POST /_matrix/client/v3/peek/{roomIdOrAlias}` as `user`/`device`.
    pub async fn peek(
        &self,
        user: &str,
        device: &str,
        room: &RoomOrAliasId,
    ) -> Result<Answer, String> {
        let path = ClientPrefix::V3.peek_path(room);
        self.post(&path, &[(USER_HEADER, user), (DEVICE_HEADER, device)], &json!({})).await
    }

    /// `POST /_matrix/client/v3/rooms/{roomId}/unpeek` as `user`/`device`.
    pub async fn unpeek(&self, user: &str, device: &str, room: &RoomId) -> Result<Answer, String> {
        let path = ClientPrefix::V3.unpeek_path(room);
        self.post(&path, &[(USER_HEADER, user), (DEVICE_HEADER, device)], &json!({})).await
    }

    /// `POST /_test/rooms`: a room with an alias localpart.
    pub async fn create_room(&self, alias: &str, world_readable: bool) -> Result<Answer, String> {
        let body =
            json!({ "alias": alias, "world_readable": world_readable, "room_version": "10" });
        self.post("/_test/rooms", &[], &body).await
    }

    /// `POST /_test/rooms/{roomId}/send`: a message, relayed to the room's peekers.
    pub async fn send(&self, room: &RoomId, text: &str) -> Result<Answer, String> {
        let path = format!("/_test/rooms/{}/send", encode(room.as_str()));
        self.post(&path, &[], &json!({ "body": text })).await
    }

    /// `POST /_test/rooms/{roomId}/visibility`.
    pub async fn set_world_readable(&self, room: &RoomId, on: bool) -> Result<Answer, String> {
        let path = format!("/_test/rooms/{}/visibility", encode(room.as_str()));
        self.post(&path, &[], &json!({ "world_readable": on })).await
    }

    /// `POST /_test/rooms/{roomId}/acl`: deny the servers matching `deny`.
    pub async fn set_server_acl(&self, room: &RoomId, deny: &[&str]) -> Result<Answer, String> {
        let path = format!("/_test/rooms/{}/acl", encode(room.as_str()));
        self.post(&path, &[], &json!({ "deny": deny })).await
    }

    /// `GET /_test/state`.
    pub async fn state(&self) -> Result<Value, String> {
        let (status, body) = self.raw("GET", "/_test/state", &[], Vec::new()).await?;
        if status != 200 {
            return Err(format!("state: {status} {body}"));
        }
        Ok(body)
    }

    /// Polls [`state`](Self::state) every 25 ms until `done` holds, for at most `within`.
    pub async fn wait_for(
        &self,
        within: Duration,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        // A timer bounds the polling, so nothing here reads the clock (clippy.toml).
        let mut last = Value::Null;
        let poll = async {
            loop {
                let state = self.state().await?;
                if done(&state) {
                    return Ok(state);
                }
                last = state;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        };
        match tokio::time::timeout(within, poll).await {
            Ok(result) => result,
            Err(_) => Err(format!("{} never reached: {what}\nlast state: {last:#}", self.addr)),
        }
    }
}

/// Percent-encodes a path segment (everything but `A-Za-z0-9-._~`).
pub fn encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
