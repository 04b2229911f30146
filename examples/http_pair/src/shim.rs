//! A minimal homeserver around [`Driver`]: axum on tokio, [`SqliteStore`] from
//! `matrix-peek-sqlite`, [`SystemClock`] on `tokio::time::sleep`, and [`HttpTransport`]
//! (reqwest) to the other shim.
//!
//! | route | handler |
//! |---|---|
//! | `POST /_matrix/client/{v3,r0,unstable/…}/peek/{roomIdOrAlias}` | [`crate::client::peek`] |
//! | `POST /_matrix/client/{v3,r0,unstable/…}/rooms/{roomId}/unpeek` | [`crate::client::unpeek`] |
//! | `PUT`/`DELETE /_matrix/federation/v1/peek/{roomId}/{peekId}`, `POST …/renew` | [`crate::federation::peek`] |
//! | `PUT /_matrix/federation/v1/send/{txnId}` | [`crate::federation::send`] |
//! | `GET /_matrix/federation/v1/query/directory?room_alias=` | [`crate::federation::directory`] |
//! | `POST /_test/rooms`, `POST /_test/rooms/{roomId}/send`, `POST /_test/rooms/{roomId}/visibility`, `GET /_test/state` | [`crate::admin`] |
//! | `GET /metrics` (Prometheus text) | [`crate::metrics`] |
//!
//! What it is not: **no signatures** (federation requests name their origin in a plain header,
//! PDUs are unsigned JSON and nothing is verified), **no real auth** (a client names its user and
//! device in two headers), rooms are an in-memory toy (see [`crate::rooms`]). The server name is
//! `127.0.0.1:{port}`, so a server name is also its address.

// Handlers' helpers return the early `Response` as their error (axum style); it is 128 bytes.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use futures::StreamExt;
use matrix_peek::wire::{
    ClientPeekRequest, ClientUnpeekRequest, ErrorReply, ExpiredPeek, ExpiredPeeks, WireError,
};
use matrix_peek::{Clock, Driver, DriverConfig, DriverError, Output, SystemClock};
use matrix_peek_sqlite::{SqliteStore, SqliteStoreError};
use ruma_common::api::error::ErrorKind;
use ruma_common::api::path_builder::PathBuilder;
use ruma_common::api::{Metadata, OutgoingResponseExt};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, ServerName};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::rooms::Rooms;
use crate::transport::{Federation, HttpTransport, ORIGIN_HEADER};
use crate::{admin, client, federation};

/// The driver as the shim instantiates it.
pub type ShimDriver = Driver<SqliteStore, HttpTransport, SystemClock>;

/// How to run one shim, loadable from TOML ([`ShimConfig::from_toml`]; the demo's file is
/// `examples/http_pair/hs.toml`). Every field may be left out:
///
/// ```toml
/// db = "hs1.db"          # default "http_pair.db"
/// port = 8448            # default 0: any free port
/// echo = true            # default true
/// [driver]               # matrix_peek::DriverConfig; every field has the library's default
/// request_timeout = "15s"
/// [driver.peeking.outbound]
/// linger = "200ms"
/// ```
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShimConfig {
    /// The SQLite file (created if missing).
    pub db: PathBuf,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Print every log line to stdout as `[server] line`.
    pub echo: bool,
    /// The driver's configuration (the linger before a `DELETE` is
    /// `driver.peeking.outbound.linger`, R55). Without a `[driver]` table: the library's
    /// defaults with a 15 s request timeout and a 200 ms linger (a demo's patience); a
    /// `[driver]` table starts from the library's defaults.
    pub driver: DriverConfig,
}

impl Default for ShimConfig {
    fn default() -> Self {
        let mut driver =
            DriverConfig { request_timeout: Duration::from_secs(15), ..DriverConfig::default() };
        driver.peeking.outbound.linger = Duration::from_millis(200);
        ShimConfig { db: PathBuf::from("http_pair.db"), port: 0, echo: true, driver }
    }
}

impl ShimConfig {
    /// Parses a TOML configuration; missing fields take their defaults, unknown ones are an
    /// error (a typo should not be silently ignored).
    pub fn from_toml(text: &str) -> Result<ShimConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// The last lines of what the shim did (federation sent and received, notifications), kept
/// for `GET /_test/state` and optionally echoed to stdout.
#[derive(Debug, Clone)]
pub struct Log {
    lines: Arc<Mutex<VecDeque<String>>>,
    name: String,
    echo: bool,
}

impl Log {
    const KEEP: usize = 500;

    /// A log for server `name`, echoed to stdout when `echo`.
    pub fn new(name: &str, echo: bool) -> Self {
        Log { lines: Arc::default(), name: name.to_owned(), echo }
    }

    /// Records (and maybe prints) one line.
    pub fn push(&self, line: String) {
        if self.echo {
            println!("[{}] {line}", self.name);
        }
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == Self::KEEP {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// A copy of the kept lines.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

/// Everything a handler needs. The std mutexes are never held across an `.await`.
#[derive(Debug)]
pub struct App {
    /// This server's name (`127.0.0.1:port`).
    pub name: OwnedServerName,
    /// The peek driver.
    pub driver: ShimDriver,
    /// The rooms this server is resident in.
    pub rooms: Mutex<Rooms>,
    /// Events relayed to us for rooms we peek over federation (the peekers' timeline).
    pub received: Mutex<BTreeMap<OwnedRoomId, Vec<Value>>>,
    /// Remote rooms a client asked to peek since start (for `/_test/state`).
    pub remote_rooms: Mutex<BTreeSet<OwnedRoomId>>,
    /// The federation client.
    pub federation: Federation,
    /// The wall clock, for event timestamps.
    pub clock: SystemClock,
    /// What happened.
    pub log: Log,
    txn: AtomicU64,
}

impl App {
    /// Sends `pdus` and `expired_peeks` to `destination` in one `/send` transaction.
    pub async fn send_transaction(
        &self,
        destination: &ServerName,
        pdus: Vec<Value>,
        expired: Vec<ExpiredPeek>,
    ) -> Result<u16, String> {
        let now = self.clock.now().as_millis();
        let txn_id = format!("{now}.{}", self.txn.fetch_add(1, Ordering::Relaxed));
        let mut body = json!({ "origin": self.name, "origin_server_ts": now, "pdus": pdus });
        let expired = ExpiredPeeks { expired_peeks: expired };
        if let Value::Object(extra) = serde_json::to_value(&expired).map_err(|e| e.to_string())? {
            body.as_object_mut().expect("built as an object").extend(extra);
        }
        self.federation.send_transaction(destination, &txn_id, &body).await
    }

    /// Relays a new event of a resident room to every server peeking it (R39), and wakes the
    /// local devices peeking it. Returns `(server, status or error)` per destination.
    pub async fn relay(&self, room_id: &RoomId, event: &Value) -> Vec<(OwnedServerName, String)> {
        let (destinations, peekers) = self
            .driver
            .read(|p| {
                let d: Vec<OwnedServerName> =
                    p.destinations(room_id).map(ToOwned::to_owned).collect();
                let w: Vec<String> = p.peekers(room_id).map(|(u, d)| format!("{u}/{d}")).collect();
                (d, w)
            })
            .await;
        if !peekers.is_empty() {
            self.log.push(format!("new event in {room_id}: wake local peekers {peekers:?}"));
        }
        // Fail closed: a server the room's ACL denies gets nothing, even before its peek ended.
        let allowed: Vec<OwnedServerName> = {
            let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            let room = rooms.get(room_id);
            destinations.into_iter().filter(|d| room.is_some_and(|r| r.allows(d))).collect()
        };
        let mut results = Vec::new();
        for destination in allowed {
            let result = self.send_transaction(&destination, vec![event.clone()], Vec::new()).await;
            let shown = match &result {
                Ok(status) => status.to_string(),
                Err(e) => format!("error: {e}"),
            };
            self.log.push(format!("relayed {} to {destination}: {shown}", event["event_id"]));
            results.push((destination, shown));
        }
        results
    }
}

/// A started shim; [`Running::stop`] ends it.
#[derive(Debug)]
pub struct Running {
    /// The shared state.
    pub app: Arc<App>,
    /// Where it listens.
    pub addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the driver loop and the HTTP server (everything acknowledged is already stored).
    pub fn stop(self) {
        self.app.driver.close();
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Binds, opens the store, restores the driver and serves. The server name is
/// `127.0.0.1:{port}` of the bound port.
pub async fn start(config: ShimConfig) -> Result<Running, Box<dyn Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    let addr = listener.local_addr()?;
    let name: OwnedServerName = format!("127.0.0.1:{}", addr.port()).try_into()?;
    let log = Log::new(name.as_str(), config.echo);
    // Blocks briefly (open, migrations) before the server accepts anything: fine at startup.
    let store = SqliteStore::open(&config.db)?;
    if let Some(from) = store.migrated_from() {
        log.push(format!(
            "{}: schema version {from} -> {} (0: a new database)",
            config.db.display(),
            store.schema_version()
        ));
    }
    let federation = Federation::new(name.clone(), log.clone());
    let transport = HttpTransport::new(federation.clone());
    let driver = Driver::open(config.driver.clone(), store, transport, tokio_clock()).await?;
    let notifications = driver.notifications().await.expect("the first and only consumer");
    let app = Arc::new(App {
        name,
        driver: driver.clone(),
        rooms: Mutex::default(),
        received: Mutex::default(),
        remote_rooms: Mutex::default(),
        federation,
        clock: tokio_clock(),
        log,
        txn: AtomicU64::new(0),
    });
    let restored =
        app.driver.read(|p| (p.local().len(), p.inbound().len(), p.outbound().len())).await;
    app.log.push(format!(
        "listening on {addr}; restored {} local, {} inbound, {} outbound peek(s) from {}",
        restored.0,
        restored.1,
        restored.2,
        config.db.display()
    ));
    let runner = driver.clone();
    let mut tasks = vec![tokio::spawn(async move { runner.run().await })];
    let notes_app = Arc::clone(&app);
    tasks.push(tokio::spawn(async move {
        futures::pin_mut!(notifications);
        while let Some(note) = notifications.next().await {
            on_notification(&notes_app, note).await;
        }
    }));
    let router = router(Arc::clone(&app));
    tasks.push(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("server error: {e}");
        }
    }));
    Ok(Running { app, addr, tasks })
}

/// `SystemClock` sleeping on tokio's timer.
pub fn tokio_clock() -> SystemClock {
    SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// What the host does with the driver's notifications.
async fn on_notification(app: &App, note: Output) {
    match note {
        Output::Expired { server: destination, room_id, peek_id, reason } => {
            // R43: tell the peeking server in a `/send`. A real server queues this in its
            // federation sender and retries; the shim tries once and logs.
            app.log.push(format!(
                "inbound peek {peek_id} of {destination} on {room_id} ended: {reason:?}"
            ));
            let entry = ExpiredPeek { room_id, peek_id: peek_id.into_string() };
            let result = app.send_transaction(&destination, Vec::new(), vec![entry]).await;
            app.log.push(format!("sent expired_peeks to {destination}: {result:?}"));
        }
        Output::Wake { user_id, device_id } => {
            app.log.push(format!("wake /sync of {user_id}/{device_id}"));
        }
        other => app.log.push(format!("notification: {other:?}")),
    }
}

fn router(app: Arc<App>) -> Router {
    let mut router = Router::new();
    // ruma's templates (`{room_id_or_alias}`) are axum's syntax: every prefix of each endpoint.
    for route in ClientPeekRequest::PATH_BUILDER.all_paths() {
        router = router.route(route, post(client::peek));
    }
    for route in ClientUnpeekRequest::PATH_BUILDER.all_paths() {
        router = router.route(route, post(client::unpeek));
    }
    // One catch-all for the federation peek paths: `FederationPeekPath` parses them, so that a
    // wrong method on a known path is 405 and an extra segment 404.
    router
        .route("/_matrix/federation/v1/peek/{*rest}", any(federation::peek))
        .route("/_matrix/federation/v1/send/{txnId}", put(federation::send))
        .route("/_matrix/federation/v1/query/directory", get(federation::directory))
        .route("/_test/rooms", post(admin::create_room))
        .route("/_test/rooms/{roomId}/send", post(admin::send))
        .route("/_test/rooms/{roomId}/visibility", post(admin::visibility))
        .route("/_test/rooms/{roomId}/acl", post(admin::server_acl))
        .route("/_test/state", get(admin::state))
        .route("/metrics", get(crate::metrics::metrics))
        .fallback(|| async {
            error(ErrorReply::new(404, ErrorKind::Unrecognized, "unrecognized request"))
        })
        .method_not_allowed_fallback(|| async { method_not_allowed() })
        .with_state(app)
}

// ----- helpers for the handlers -----

/// A JSON reply.
pub fn reply(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// A ruma response (an endpoint's `Response`) as axum's.
pub fn answer(response: impl OutgoingResponseExt) -> Response {
    match response.try_into_http_response::<Vec<u8>>() {
        Ok(response) => response.map(Body::from),
        Err(e) => error(ErrorReply::new(500, ErrorKind::Unknown, e.to_string())),
    }
}

/// A Matrix error reply from the wire table (ruma's error, with `Retry-After` when it has a
/// hint).
pub fn error(e: impl Into<ErrorReply>) -> Response {
    e.into().into_http_response().map(Body::from)
}

/// 405 `M_UNRECOGNIZED`: a known endpoint, the wrong method.
pub fn method_not_allowed() -> Response {
    error(ErrorReply::new(405, ErrorKind::Unrecognized, "method not allowed on this endpoint"))
}

/// 401: auth is the host's business (`M_MISSING_TOKEN` for a client without its headers,
/// `M_UNAUTHORIZED` for a server without its origin).
pub fn unauthorized(kind: ErrorKind, message: &str) -> Response {
    error(ErrorReply::new(401, kind, message))
}

/// A driver failure as an HTTP reply, through the wire table (store failures are 500,
/// interruptions 503).
pub fn driver_error(e: DriverError<SqliteStoreError>) -> Response {
    error(e)
}

/// Reads a body of at most `limit` bytes; longer is 413 `M_TOO_LARGE`.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(actual) = declared.filter(|n| *n > limit) {
        return Err(error(WireError::TooLarge { limit, actual }));
    }
    // A chunked body over the limit (or a broken connection) fails here.
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| error(WireError::TooLarge { limit, actual: limit.saturating_add(1) }))
}

/// The origin of a federation request: the plain [`ORIGIN_HEADER`] (no signature!).
pub fn origin(headers: &HeaderMap) -> Result<OwnedServerName, Response> {
    headers
        .get(ORIGIN_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| OwnedServerName::try_from(v).ok())
        .ok_or_else(|| {
            unauthorized(ErrorKind::Unauthorized, "missing or invalid x-peek-origin header")
        })
}

/// Runs one shim until the process is killed: `serve [--config FILE.toml] [--db PATH]
/// [--port N] [--linger-ms N] [--exit-on-eof]` (flags override the file's fields). Prints `LISTENING 127.0.0.1:{port}` once it accepts connections (what the
/// end-to-end test waits for), then every log line. With `--exit-on-eof` it exits when its
/// standard input closes, so a child never outlives the test that started it.
pub fn serve_main(args: &[String]) -> Result<(), String> {
    let mut config = ShimConfig::default();
    let mut exit_on_eof = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            // Loads the whole configuration; flags after it override its fields.
            "--config" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                config = ShimConfig::from_toml(&text).map_err(|e| format!("{path}: {e}"))?;
            }
            "--db" => config.db = PathBuf::from(value()?),
            "--port" => config.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--linger-ms" => {
                config.driver.peeking.outbound.linger = Duration::from_millis(
                    value()?.parse().map_err(|e| format!("--linger-ms: {e}"))?,
                )
            }
            "--exit-on-eof" => exit_on_eof = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if exit_on_eof {
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let running = start(config).await.map_err(|e| e.to_string())?;
        println!("LISTENING {}", running.addr);
        std::future::pending::<()>().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_config_file_parses_with_its_values_and_defaults() {
        let config = ShimConfig::from_toml(include_str!("../hs.toml")).unwrap();
        assert_eq!(config.driver.request_timeout, Duration::from_secs(15));
        assert_eq!(config.driver.peeking.outbound.linger, Duration::from_millis(200));
        assert_eq!(config.driver.peeking.local.lease, Duration::from_secs(3600));
        let library = DriverConfig::default();
        assert_eq!(config.driver.notification_capacity, library.notification_capacity);
        assert_eq!(config.driver.peeking.inbound, library.peeking.inbound, "left out: defaults");
        assert_eq!(config.db, PathBuf::from("http_pair.db"));
    }

    #[test]
    fn an_empty_file_is_the_default_and_a_typo_is_an_error() {
        let empty = ShimConfig::from_toml("").unwrap();
        assert_eq!(empty.driver, ShimConfig::default().driver);
        let typo = ShimConfig::from_toml("prot = 8448").unwrap_err();
        assert!(typo.contains("prot"), "{typo}");
        let bad = ShimConfig::from_toml("[driver]\nrequest_timeout = \"soon\"").unwrap_err();
        assert!(bad.contains("request_timeout") || bad.contains("soon"), "{bad}");
    }
}
