//! The seed's component split as separate processes: matrix-peek's [`SyncSide`] in a client
//! and sync worker, its [`FederationSide`] in federation workers that share the rooms by a
//! stable hash of the room id, all connected by NATS JetStream, each with its state in its own
//! PostgreSQL namespace.
//!
//! ```text
//!   clients, peers ──HTTP──► sync worker (the front: one server name, 127.0.0.1:port)
//!                              SyncSide (LocalPeeks, waiting client peeks) + the toy rooms
//!                              │  ToFederation ──► JetStream {prefix}.fed.{shard} ──┐
//!                              │  ◄── JetStream {prefix}.sync ◄── ToSync ───────────┤
//!                              │  inbound PUT/renew/DELETE, destinations,           │
//!                              └─ expired_peeks: internal HTTP to the room's shard ─┤
//!                                                                                   ▼
//!                            federation worker 0..n: FederationSide (InboundPeeks, OutboundPeeks)
//!                              outbound PUT/renew/DELETE and expired_peeks /send ──HTTP──► peers
//! ```
//!
//! * [`shard`]: which worker owns a room.
//! * [`bus`]: the streams, their consumers, at-least-once.
//! * [`sync_worker`] and [`fed_worker`]: the two kinds of process; [`internal`] is what the
//!   front asks a federation worker over HTTP.
//! * Each process serves `GET /metrics` (Prometheus text, `http-pair`'s encoding) of the side
//!   it holds: see [`metrics`].
//!
//! It speaks the same federation HTTP as the `http-pair` shim (whose transport, toy rooms and
//! client it reuses), so the two can peek into each other's rooms. **A demo, not a
//! homeserver**: no signatures, no real auth, as in `http-pair`.
//!
//! [`SyncSide`]: matrix_peek::SyncSide
//! [`FederationSide`]: matrix_peek::FederationSide

pub mod bus;
pub mod fed_worker;
pub mod internal;
pub mod shard;
pub mod sync_worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use matrix_peek::{Clock, DriverStats, PeekingConfig, PeekingStats, SystemClock};

/// What both kinds of worker are started with (`--flag value` on the command line).
#[derive(Debug, Clone)]
pub struct Common {
    /// The homeserver's name: the front's `127.0.0.1:port`.
    pub name: String,
    /// The port this process listens on.
    pub port: u16,
    /// nats-server's URL.
    pub nats: String,
    /// PostgreSQL's connection string or URL.
    pub pg: String,
    /// Names the streams and the store namespaces, so clusters can share servers.
    pub prefix: String,
    /// How many federation workers share the rooms.
    pub shards: u32,
}

/// The peeking configuration of every worker of the server `name`: the library's defaults
/// with a short linger, so a demo shows the `DELETE`, and the server's own jitter salt (the
/// FNV-1a-64 hash of its name: the workers drive the sides without a `Driver`, which would
/// draw one), so servers peeking one room do not retry in lockstep.
pub fn peeking_config(name: &str) -> PeekingConfig {
    use std::hash::Hasher;
    let mut config = PeekingConfig::default();
    config.outbound.linger = Duration::from_millis(500);
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(name.as_bytes());
    config.outbound.jitter_seed = hasher.finish().max(1);
    config
}

/// `SystemClock` sleeping on tokio's timer.
pub fn clock() -> SystemClock {
    SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))
}

/// This incarnation's epoch for the routing messages' `Seq`: the namespace's counter in
/// PostgreSQL, raised past every earlier run's and to at least the start time in
/// milliseconds, so it grows even when the clock stepped back across the restart.
pub async fn epoch(store: &matrix_peek_postgres::PostgresStore) -> Result<u64, String> {
    store
        .next_epoch(clock().now().as_millis())
        .await
        .map_err(|e| format!("epoch of {}: {e}", store.namespace()))
}

/// Parses `--key value` pairs.
pub fn parse_flags(args: &[String]) -> Result<std::collections::HashMap<String, String>, String> {
    let mut flags = std::collections::HashMap::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let Some(key) = flag.strip_prefix("--") else { return Err(format!("unexpected {flag}")) };
        if key == "exit-on-eof" {
            flags.insert(key.to_owned(), String::new());
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        flags.insert(key.to_owned(), value.clone());
    }
    Ok(flags)
}

/// What a worker starts from: its listener, its store and what the store held, the log, and
/// the restart's time and routing epoch.
pub struct Opened {
    /// Bound to `--port`.
    pub listener: tokio::net::TcpListener,
    /// The worker's namespace in PostgreSQL.
    pub store: matrix_peek_postgres::PostgresStore,
    /// Everything the namespace held.
    pub snapshot: matrix_peek::Snapshot,
    /// The JetStream connection, streams created.
    pub bus: bus::Bus,
    /// The homeserver's name.
    pub name: ruma_common::OwnedServerName,
    /// The worker's clock.
    pub clock: SystemClock,
    /// This incarnation's routing epoch ([`epoch`]).
    pub epoch: u64,
    /// The worker's peeking configuration ([`peeking_config`]).
    pub config: PeekingConfig,
}

impl Common {
    /// Binds the port, opens the namespace `{prefix}-{role}` and loads it, connects to
    /// JetStream, and draws this incarnation's epoch: the start both kinds of worker share.
    pub async fn open(&self, role: &str) -> Result<Opened, String> {
        use matrix_peek::PeekStore;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .map_err(|e| format!("bind port {}: {e}", self.port))?;
        let namespace = format!("{}-{role}", self.prefix);
        let store = matrix_peek_postgres::PostgresStore::connect(&self.pg, namespace.clone())
            .await
            .map_err(|e| format!("PostgreSQL at {}: {e}", self.pg))?;
        let snapshot = store.load().await.map_err(|e| format!("load {namespace}: {e}"))?;
        let bus = bus::Bus::connect(&self.nats, &self.prefix).await?;
        let name = self.name.clone().try_into().map_err(|e| format!("--name: {e}"))?;
        let epoch = epoch(&store).await?;
        let config = peeking_config(&self.name);
        Ok(Opened { listener, store, snapshot, bus, name, clock: clock(), epoch, config })
    }

    /// Reads the common flags.
    pub fn from_flags(flags: &std::collections::HashMap<String, String>) -> Result<Common, String> {
        let get = |k: &str| flags.get(k).cloned().ok_or_else(|| format!("--{k} is required"));
        Ok(Common {
            name: get("name")?,
            port: get("port")?.parse().map_err(|e| format!("--port: {e}"))?,
            nats: get("nats")?,
            pg: get("pg")?,
            prefix: get("prefix")?,
            shards: get("shards")?.parse().map_err(|e| format!("--shards: {e}"))?,
        })
    }
}

/// A worker's store batches, for the `matrix_peek_driver_*` metrics: the workers have no
/// `Driver`, so these count their own commits.
#[derive(Debug, Default)]
pub struct Commits {
    batches: AtomicU64,
    save_failures: AtomicU64,
}

impl Commits {
    /// One batch of changes saved.
    pub fn saved(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
    }

    /// One save that failed (and is retried).
    pub fn failed(&self) {
        self.save_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Saves `changes` to `store`, retrying a failed save with a backoff from 50 ms up to 1 s
    /// until it is stored (a worker never publishes or answers what it has not saved), and
    /// counts each attempt. Nothing to save is a no-op.
    pub async fn save_until_stored<S: matrix_peek::PeekStore>(
        &self,
        store: &S,
        changes: &[matrix_peek::Change],
        log: &http_pair::shim::Log,
    ) {
        if changes.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(50);
        while let Err(e) = store.save(changes).await {
            self.failed();
            log.push(format!("store save failed ({e}); retrying"));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
        self.saved();
    }

    /// As [`DriverStats`]: `batches` and `save_failures` counted here, every other field 0.
    pub fn stats(&self) -> DriverStats {
        let mut stats = DriverStats::default();
        stats.batches = self.batches.load(Ordering::Relaxed);
        stats.batched_calls = stats.batches;
        stats.save_failures = self.save_failures.load(Ordering::Relaxed);
        stats
    }
}

/// `GET /metrics` of a worker: its side's stats and its commits in the Prometheus text format
/// (`http-pair`'s [`render`](http_pair::metrics::render)). A sync worker's inbound and outbound
/// families read 0, as do a federation worker's local ones: each side holds only its machines.
pub fn metrics(peeking: PeekingStats, commits: &Commits) -> Response {
    match http_pair::metrics::render(peeking, commits.stats()) {
        Ok(text) => {
            let mut response = (StatusCode::OK, text).into_response();
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static(http_pair::metrics::CONTENT_TYPE));
            response
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
