//! A federation worker: one shard's [`FederationSide`] (`InboundPeeks`, `OutboundPeeks`),
//! restored from its PostgreSQL namespace `{prefix}-fed-{shard}`, fed by its JetStream consumer
//! `fed-{shard}`, sending MSC2444 requests with `http-pair`'s transport as the homeserver's
//! name, and serving the front's [`internal`](crate::internal) calls.
//!
//! Every change goes through [`Worker::commit`] under one lock: store the batch, then publish
//! its messages, then act (send requests, `expired_peeks`). A consumed message is acked only
//! after that, so a crash at any point redelivers it or replays it from the store.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_pair::shim::Log;
use http_pair::transport::{Federation, HttpTransport};
use matrix_peek::wire::{ErrorReply, ExpiredPeek};
use matrix_peek::{Clock, FederationSide, Output, PeekTransport, SideOutput, SystemClock, ToSync};
use matrix_peek_postgres::PostgresStore;
use ruma_common::{OwnedRoomId, OwnedServerName};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::bus::Bus;
use crate::internal::{
    InboundAnswer, InboundCall, InboundOp, RemoteEvents, RemoteExpired, ToShard,
};
use crate::{Commits, Common, Opened};

/// One federation worker.
pub struct Worker {
    side: Mutex<FederationSide>,
    store: PostgresStore,
    bus: Bus,
    transport: HttpTransport,
    federation: Federation,
    clock: SystemClock,
    log: Log,
    name: OwnedServerName,
    /// Store batches, for `/metrics`.
    commits: Commits,
    /// How many times the front told of events relayed in a room peeked over federation.
    remote_events: std::sync::atomic::AtomicU64,
    /// Requests to send, taken by [`Worker::sender`] tasks.
    requests: tokio::sync::mpsc::UnboundedSender<matrix_peek::OutboundRequest>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("name", &self.name).finish()
    }
}

/// Restores the shard and serves until the process ends; prints `LISTENING addr` when ready.
pub async fn run(common: Common, shard: u32) -> Result<(), String> {
    let Opened { listener, store, snapshot, bus, name, clock, epoch, config } =
        common.open(&format!("fed-{shard}")).await?;
    let namespace = store.namespace().to_owned();
    let log = Log::new(&format!("{}/fed-{shard}", common.name), true);
    let federation = Federation::new(name.clone(), log.clone());
    let side = FederationSide::restore(clock.now(), config, snapshot, epoch);
    let (requests, mut to_send) = tokio::sync::mpsc::unbounded_channel();
    log.push(format!(
        "shard {shard}: restored {} inbound, {} outbound peek(s) from {namespace}",
        side.inbound().len(),
        side.outbound().len()
    ));
    let worker = Arc::new(Worker {
        side: Mutex::new(side),
        store,
        bus: bus.clone(),
        transport: HttpTransport::new(federation.clone()),
        federation,
        clock,
        log,
        name,
        remote_events: std::sync::atomic::AtomicU64::new(0),
        commits: Commits::default(),
        requests,
    });
    {
        // What the restore produced (`Restored` announcements) goes out first.
        let mut side = worker.side.lock().await;
        worker.commit(&mut side).await;
    }
    let consumer = Arc::clone(&worker);
    let subject = bus.subject_fed(shard);
    tokio::spawn(async move {
        let durable = format!("fed-{shard}");
        let worker = &consumer;
        bus.consume::<ToShard, _, _>(false, &durable, subject, |message| async move {
            let mut side = worker.side.lock().await;
            let now = worker.clock.now();
            match message {
                ToShard::Route(message) => side.handle_route(now, message),
                // A resident room's access changed: inbound peeks it no longer allows end, and
                // their servers hear of it in `expired_peeks` (R40).
                ToShard::AccessChanged(change) => {
                    side.handle_access_changed(now, &change.room_id, &change.access);
                }
                // The ACL now denies some peeking servers: their peeks end (R45).
                ToShard::ServerAcl(change) => {
                    let denied: Vec<OwnedServerName> = side
                        .destinations(&change.room_id)
                        .filter(|server| !change.acl.is_allowed(server))
                        .map(ToOwned::to_owned)
                        .collect();
                    for server in denied {
                        side.handle_server_denied(now, &change.room_id, &server);
                    }
                }
            }
            worker.commit(&mut side).await;
        })
        .await;
    });
    let sender = Arc::clone(&worker);
    tokio::spawn(async move {
        while let Some(request) = to_send.recv().await {
            let worker = Arc::clone(&sender);
            tokio::spawn(async move { worker.send(request).await });
        }
    });
    let timers = Arc::clone(&worker);
    tokio::spawn(async move { timers.timers().await });
    let router = Router::new()
        .route("/_internal/inbound", post(inbound))
        .route("/_internal/destinations/{room}", get(destinations))
        .route("/_internal/remote_expired", post(remote_expired))
        .route("/_internal/remote_events", post(remote_events))
        .route("/_internal/state", get(state))
        .route("/metrics", get(metrics))
        .with_state(Arc::clone(&worker));
    println!("LISTENING {}", listener.local_addr().map_err(|e| e.to_string())?);
    axum::serve(listener, router).await.map_err(|e| e.to_string())
}

impl Worker {
    /// Stores the side's changes, publishes its messages, then acts on its host outputs.
    pub async fn commit(self: &Arc<Self>, side: &mut FederationSide) {
        let mut changes = Vec::new();
        let mut routes: Vec<ToSync> = Vec::new();
        let mut actions = Vec::new();
        while let Some(out) = side.poll_output() {
            match out {
                SideOutput::Host(Output::Persist(change)) => changes.push(change),
                SideOutput::Host(output) => actions.push(output),
                SideOutput::Route(message) => routes.push(message),
            }
        }
        self.commits.save_until_stored(&self.store, &changes, &self.log).await;
        for message in routes {
            self.bus.publish(self.bus.subject_sync(), &message).await;
        }
        for output in actions {
            match output {
                Output::Send(request) => {
                    let _ = self.requests.send(request);
                }
                Output::Expired { server, room_id, peek_id, reason } => {
                    self.log.push(format!(
                        "inbound peek {peek_id} of {server} on {room_id} ended: {reason:?}"
                    ));
                    let worker = Arc::clone(self);
                    tokio::spawn(async move {
                        let body = json!({
                            "origin": worker.name, "origin_server_ts": worker.clock.now().as_millis(),
                            "pdus": [], "expired_peeks": [ExpiredPeek { room_id, peek_id: peek_id.into_string() }],
                        });
                        let txn = format!("exp.{}", worker.clock.now().as_millis());
                        let _ = worker.federation.send_transaction(&server, &txn, &body).await;
                    });
                }
                other => self.log.push(format!("{other:?}")),
            }
        }
    }

    /// Sends one request and hands the outcome to the side.
    async fn send(self: Arc<Self>, request: matrix_peek::OutboundRequest) {
        let id = request.id;
        let outcome = self.transport.send(request).await;
        let mut side = self.side.lock().await;
        side.handle_response(self.clock.now(), id, outcome);
        self.commit(&mut side).await;
    }

    /// Fires the side's deadlines (checked every 50 ms).
    async fn timers(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut side = self.side.lock().await;
            let now = self.clock.now();
            if side.poll_timeout().is_some_and(|at| at <= now) {
                side.handle_timeout(now);
                self.commit(&mut side).await;
            }
        }
    }
}

async fn inbound(
    State(worker): State<Arc<Worker>>,
    axum::Json(call): axum::Json<InboundCall>,
) -> Response {
    let mut side = worker.side.lock().await;
    let now = worker.clock.now();
    let InboundCall { op, origin, room_id, peek_id, ver, access } = call;
    let result = match op {
        InboundOp::Peek => side
            .handle_inbound_peek(now, &origin, &room_id, &peek_id, &ver, access.as_ref())
            .map(|g| g.renewal_interval),
        InboundOp::Renew => {
            side.handle_inbound_renew(now, &origin, &room_id, &peek_id).map(|g| g.renewal_interval)
        }
        InboundOp::Unpeek => {
            side.handle_inbound_unpeek(now, &origin, &room_id, &peek_id).map(|()| Duration::ZERO)
        }
    };
    // Stored before the answer: a granted peek survives a crash right after it.
    worker.commit(&mut side).await;
    match result {
        Ok(interval) => {
            let answer = InboundAnswer { renewal_interval_ms: interval.as_millis() as u64 };
            axum::Json(answer).into_response()
        }
        Err(e) => {
            let reply = ErrorReply::from(e).into_http_response();
            let (parts, body) = reply.into_parts();
            (parts.status, body).into_response()
        }
    }
}

async fn destinations(State(worker): State<Arc<Worker>>, Path(room): Path<String>) -> Response {
    let Ok(room_id) = OwnedRoomId::try_from(room) else {
        return (axum::http::StatusCode::BAD_REQUEST, "bad room id").into_response();
    };
    let side = worker.side.lock().await;
    let servers: Vec<String> = side.destinations(&room_id).map(|s| s.to_string()).collect();
    axum::Json(servers).into_response()
}

async fn remote_expired(
    State(worker): State<Arc<Worker>>,
    axum::Json(entry): axum::Json<RemoteExpired>,
) -> Response {
    let mut side = worker.side.lock().await;
    side.handle_remote_expired(worker.clock.now(), &entry.origin, &entry.room_id, &entry.peek_id);
    worker.commit(&mut side).await;
    axum::Json(json!({})).into_response()
}

/// Events of these rooms were relayed to us: their residents are alive.
async fn remote_events(
    State(worker): State<Arc<Worker>>,
    axum::Json(events): axum::Json<RemoteEvents>,
) -> Response {
    let mut side = worker.side.lock().await;
    let now = worker.clock.now();
    for room_id in &events.rooms {
        side.handle_remote_event(now, room_id);
    }
    worker.remote_events.fetch_add(events.rooms.len() as u64, std::sync::atomic::Ordering::Relaxed);
    worker.commit(&mut side).await;
    axum::Json(json!({})).into_response()
}

/// `GET /metrics`: this shard's `FederationSide` stats (see [`crate::metrics`]).
async fn metrics(State(worker): State<Arc<Worker>>) -> Response {
    let stats = worker.side.lock().await.stats();
    crate::metrics(stats, &worker.commits)
}

async fn state(State(worker): State<Arc<Worker>>) -> Response {
    let side = worker.side.lock().await;
    let outbound: Vec<Value> = side
        .outbound()
        .rooms()
        .map(|info| {
            json!({
                "room_id": info.room_id, "state": format!("{:?}", info.state),
                "server": info.resident, "peek_id": info.peek_id,
            })
        })
        .collect();
    let inbound: Vec<Value> = side
        .inbound()
        .records()
        .map(|r| json!({ "origin": r.server, "room_id": r.room_id, "peek_id": r.peek_id }))
        .collect();
    let remote_events = worker.remote_events.load(std::sync::atomic::Ordering::Relaxed);
    axum::Json(json!({
        "outbound": outbound, "inbound": inbound, "stale": side.stale_messages(),
        "confirms": side.confirmations_asked(), "remote_events": remote_events,
    }))
    .into_response()
}
