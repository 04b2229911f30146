//! The client and sync worker, also the HTTP front of the clustered homeserver: the
//! [`SyncSide`] (local peeks, client peeks waiting on federation) restored from the PostgreSQL
//! namespace `{prefix}-sync`, fed by the JetStream consumer `sync`, and the toy rooms this
//! server is resident in (`http-pair`'s [`Rooms`]).
//!
//! It serves the same routes as the `http-pair` shim (client `/peek` and `/unpeek`, the
//! federation peek endpoints, `/send`, the directory, the `/_test` API). Federation peek calls,
//! relay destinations, `expired_peeks`, access changes of resident rooms and the rooms whose
//! events were relayed to us go to the room's federation worker (see
//! [`internal`](crate::internal)); routing messages go through JetStream.

// Handlers' helpers return the early `Response` as their error (axum style).
#![allow(clippy::result_large_err)]

mod admin;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use http_pair::client::{client_request, parse_client_peek};
use http_pair::federation::{PeekCall, peek_call};
use http_pair::rooms::Rooms;
use http_pair::shim::{Log, answer, error, origin, read_body, reply};
use http_pair::transport::Federation;
use matrix_peek::wire::{
    ClientPeekRequest, ClientPeekResponse, ClientUnpeekRequest, ErrorReply, ExpiredPeeks,
    FederationPeekPath, FederationPeekRequest, FederationRenewResponse, FederationUnpeekResponse,
    MAX_REQUEST_BODY_BYTES, MAX_TRANSACTION_BYTES, WireError,
};
use matrix_peek::{
    Change, ClientPeekReply, Clock, LocalGrant, Output, PeekError, RequestId, SideOutput, SyncSide,
    SystemClock, ToFederation, ToSync,
};
use matrix_peek_postgres::PostgresStore;
use ruma_common::api::IncomingRequestExt;
use ruma_common::api::path_builder::PathBuilder;
use ruma_common::api::{Metadata, error::ErrorKind};
use ruma_common::exports::http;
use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, RoomVersionId};
use serde_json::{Value, json};
use tokio::sync::{Mutex, oneshot};

use crate::bus::Bus;
use crate::internal::{
    AccessChanged, InboundAnswer, InboundCall, InboundOp, RemoteEvents, RemoteExpired,
    ServerAclChanged, ToShard,
};
use crate::shard::shard_of;
use crate::{Commits, Common, Opened};

type Waiter = oneshot::Sender<Result<LocalGrant, PeekError>>;

/// One input's consequences, taken from the side under the core lock (so in the order the
/// inputs were applied) and committed by [`Front::committer`]: its changes stored, then its
/// messages published, then its client peeks answered, then `done`.
struct Staged {
    changes: Vec<Change>,
    routes: Vec<ToFederation>,
    answers: Vec<(Waiter, Result<LocalGrant, PeekError>)>,
    done: oneshot::Sender<()>,
}

/// The most inputs one group commit stores in one transaction.
const MAX_GROUP: usize = 256;

/// The sync side and the client requests waiting on it.
struct Core {
    side: SyncSide,
    waiters: HashMap<RequestId, Waiter>,
}

/// Events relayed to us, per room, each event id kept once; `duplicates` counts the repeats.
#[derive(Default)]
struct Received {
    timeline: BTreeMap<OwnedRoomId, Vec<Value>>,
    seen: BTreeSet<String>,
    duplicates: u64,
}

/// The front.
pub struct Front {
    core: Mutex<Core>,
    store: PostgresStore,
    bus: Bus,
    shards: u32,
    workers: Vec<String>,
    http: reqwest::Client,
    federation: Federation,
    rooms: std::sync::Mutex<Rooms>,
    /// Events relayed to us.
    received: std::sync::Mutex<Received>,
    clock: SystemClock,
    log: Log,
    name: OwnedServerName,
    /// Store batches, for `/metrics`.
    commits: Commits,
    /// Inputs staged for the committer, in the order they were applied.
    staged: tokio::sync::mpsc::UnboundedSender<Staged>,
}

/// Restores the sync side and serves until the process ends; prints `LISTENING addr` when
/// ready. `workers` are the federation workers' addresses, shard by shard.
pub async fn run(common: Common, workers: Vec<String>) -> Result<(), String> {
    let Opened { listener, store, snapshot, bus, name, clock, epoch, config } =
        common.open("sync").await?;
    let namespace = store.namespace().to_owned();
    let log = Log::new(&format!("{}/sync", common.name), true);
    let side = SyncSide::restore(clock.now(), config, snapshot, epoch);
    log.push(format!("restored {} local peek(s) from {namespace}", side.local().len()));
    let (staged, to_commit) = tokio::sync::mpsc::unbounded_channel();
    let front = Arc::new(Front {
        core: Mutex::new(Core { side, waiters: HashMap::new() }),
        store,
        bus: bus.clone(),
        shards: common.shards,
        workers,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?,
        federation: Federation::new(name.clone(), log.clone()),
        rooms: std::sync::Mutex::default(),
        received: std::sync::Mutex::default(),
        clock,
        log,
        name,
        commits: Commits::default(),
        staged,
    });
    tokio::spawn(Arc::clone(&front).committer(to_commit));
    {
        // The restored peeks' demand goes out first.
        let core = front.core.lock().await;
        front.commit(core).await;
    }
    let consumer = Arc::clone(&front);
    let subject = bus.subject_sync();
    tokio::spawn(async move {
        let front = &consumer;
        bus.consume::<ToSync, _, _>(true, "sync", subject, |message| async move {
            let mut core = front.core.lock().await;
            core.side.handle_route(front.clock.now(), message);
            front.commit(core).await;
        })
        .await;
    });
    let timers = Arc::clone(&front);
    tokio::spawn(async move { timers.timers().await });
    println!("LISTENING {}", listener.local_addr().map_err(|e| e.to_string())?);
    axum::serve(listener, router(front)).await.map_err(|e| e.to_string())
}

impl Front {
    /// Takes the side's outputs for the committer and releases the core lock, then waits
    /// until they are committed: changes stored, then messages published to their rooms'
    /// shards, then the decided client peeks answered. Inputs applied meanwhile by other
    /// tasks are committed in the same PostgreSQL transaction (group commit), so the lock is
    /// held only while the side works, never across a save or a publish.
    async fn commit(&self, mut core: tokio::sync::MutexGuard<'_, Core>) {
        let (done, committed) = oneshot::channel();
        let mut staged =
            Staged { changes: Vec::new(), routes: Vec::new(), answers: Vec::new(), done };
        while let Some(out) = core.side.poll_output() {
            match out {
                SideOutput::Host(Output::Persist(change)) => staged.changes.push(change),
                SideOutput::Host(Output::ClientPeekDone { id, result }) => {
                    if let Some(waiter) = core.waiters.remove(&id) {
                        staged.answers.push((waiter, result));
                    }
                }
                SideOutput::Host(_) => {}
                SideOutput::Route(message) => staged.routes.push(message),
            }
        }
        // Sent under the lock: the committer sees inputs in the order they were applied.
        if self.staged.send(staged).is_err() {
            return; // the committer is gone: the process is ending
        }
        drop(core);
        let _ = committed.await;
    }

    /// Commits staged inputs in order, as many as are waiting (up to [`MAX_GROUP`]) at once:
    /// one transaction for all their changes, then their messages, then their answers.
    async fn committer(self: Arc<Self>, mut staged: tokio::sync::mpsc::UnboundedReceiver<Staged>) {
        while let Some(first) = staged.recv().await {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match staged.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let changes: Vec<Change> =
                group.iter_mut().flat_map(|s| std::mem::take(&mut s.changes)).collect();
            self.commits.save_until_stored(&self.store, &changes, &self.log).await;
            for message in group.iter_mut().flat_map(|s| std::mem::take(&mut s.routes)) {
                let shard = shard_of(message.room_id(), self.shards);
                self.bus.publish(self.bus.subject_fed(shard), &message).await;
            }
            for input in group {
                for (waiter, result) in input.answers {
                    let _ = waiter.send(result);
                }
                let _ = input.done.send(());
            }
        }
    }

    async fn timers(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let mut core = self.core.lock().await;
            let now = self.clock.now();
            if core.side.poll_timeout().is_some_and(|at| at <= now) {
                core.side.handle_timeout(now);
                self.commit(core).await;
            }
        }
    }

    fn worker_of(&self, room_id: &RoomId) -> &str {
        &self.workers[shard_of(room_id, self.shards) as usize]
    }

    /// One inbound call on the room's federation worker: the answer, or the reply to pass on.
    async fn inbound(&self, call: InboundCall) -> Result<InboundAnswer, Response> {
        let url = format!("http://{}/_internal/inbound", self.worker_of(&call.room_id));
        let body = serde_json::to_vec(&call).expect("serialisable");
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                error(ErrorReply::new(503, ErrorKind::Unknown, format!("federation worker: {e}")))
            })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap_or_default();
        if status == 200 {
            serde_json::from_slice(&bytes)
                .map_err(|e| error(ErrorReply::new(500, ErrorKind::Unknown, e.to_string())))
        } else {
            let mut reply = (
                axum::http::StatusCode::from_u16(status)
                    .unwrap_or(axum::http::StatusCode::BAD_GATEWAY),
                bytes.to_vec(),
            )
                .into_response();
            reply
                .headers_mut()
                .insert("content-type", axum::http::HeaderValue::from_static("application/json"));
            Err(reply)
        }
    }

    /// `POST` of `body` as JSON to a federation worker's internal `path`; 200 or an error.
    async fn worker_post<T: serde::Serialize>(
        &self,
        worker: &str,
        path: &str,
        body: &T,
    ) -> Result<(), String> {
        let response = self
            .http
            .post(format!("http://{worker}{path}"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("serialisable"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200 => Ok(()),
            status => Err(format!("{path}: status {status}")),
        }
    }

    async fn worker_get(&self, worker: &str, path: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("http://{worker}{path}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }
}

fn router(front: Arc<Front>) -> Router {
    let mut router = Router::new();
    for route in ClientPeekRequest::PATH_BUILDER.all_paths() {
        router = router.route(route, post(client_peek));
    }
    for route in matrix_peek::wire::ClientUnpeekRequest::PATH_BUILDER.all_paths() {
        router = router.route(route, post(client_unpeek));
    }
    router
        .route("/_matrix/federation/v1/peek/{*rest}", any(federation_peek))
        .route("/_matrix/federation/v1/send/{txnId}", put(send))
        .route("/_matrix/federation/v1/query/directory", get(directory))
        .route("/_test/rooms", post(admin::create_room))
        .route("/_test/rooms/{roomId}/send", post(admin::send_event))
        .route("/_test/rooms/{roomId}/visibility", post(admin::visibility))
        .route("/_test/rooms/{roomId}/acl", post(admin::server_acl))
        .route("/_test/state", get(admin::state))
        .route("/metrics", get(admin::metrics))
        .with_state(front)
}

fn incoming<'a>(
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &'a [u8],
) -> http::Request<&'a [u8]> {
    let mut request = http::Request::new(body);
    *request.method_mut() = method;
    *request.uri_mut() = uri.clone();
    *request.headers_mut() = headers.clone();
    request
}

/// `POST /_matrix/client/v3/peek/{roomIdOrAlias}`: as `http-pair`'s, on the sync side. A peek
/// waiting on federation is answered when the federation worker's `Granted` or `Unavailable`
/// comes back through JetStream (or fails after 20 s).
async fn client_peek(
    State(front): State<Arc<Front>>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = (&headers, &uri, body);
    let peek = match parse_client_peek(&front.name, &front.rooms, &front.federation, path, request)
        .await
    {
        Ok(peek) => peek,
        Err(r) => return r,
    };
    let waiting = {
        let mut core = front.core.lock().await;
        let reply = core.side.handle_client_peek(front.clock.now(), peek);
        let waiting = match reply {
            ClientPeekReply::Done(result) => Err(result),
            ClientPeekReply::Pending(id) => {
                let (tx, rx) = oneshot::channel();
                core.waiters.insert(id, tx);
                Ok((id, rx))
            }
        };
        front.commit(core).await;
        waiting
    };
    let result = match waiting {
        Err(result) => result,
        Ok((id, rx)) => match tokio::time::timeout(Duration::from_secs(20), rx).await {
            Ok(Ok(result)) => result,
            _ => {
                let mut core = front.core.lock().await;
                core.waiters.remove(&id);
                core.side.handle_client_peek_withdrawn(front.clock.now(), id);
                front.commit(core).await;
                return error(ErrorReply::new(
                    504,
                    ErrorKind::Unknown,
                    "the federated peek did not come up in time",
                ));
            }
        },
    };
    match result {
        Ok(grant) => answer(ClientPeekResponse::new(grant.room_id, grant.expires_at)),
        Err(e) => error(e),
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/unpeek`.
async fn client_unpeek(
    State(front): State<Arc<Front>>,
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
    let mut core = front.core.lock().await;
    let result = core.side.handle_client_unpeek(front.clock.now(), &user_id, &device_id, &room_id);
    front.commit(core).await;
    match result {
        Ok(()) => reply(200, &json!({})),
        Err(e) => error(e),
    }
}

/// `/_matrix/federation/v1/peek/…`: parsed here, registered on the room's federation worker,
/// and for a `PUT` answered with the room's snapshot taken after the registration (R37).
async fn federation_peek(
    State(front): State<Arc<Front>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (origin, target, call) = match peek_call(&front.rooms, &method, &uri, &headers) {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let args = target.path_args();
    let FederationPeekPath { room_id, peek_id, .. } = target.clone();
    let op = match call {
        PeekCall::Put => InboundOp::Peek,
        PeekCall::Renew => InboundOp::Renew,
        PeekCall::Delete => InboundOp::Unpeek,
    };
    let mut ver = Vec::new();
    if op == InboundOp::Peek {
        let body = match read_body(&headers, body, MAX_REQUEST_BODY_BYTES).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        match FederationPeekRequest::try_from_http_request(
            incoming(method.clone(), &uri, &headers, &body),
            &args,
        ) {
            Ok(put) => ver = put.ver,
            Err(e) => return error(WireError::from(e)),
        }
    }
    let access =
        front.rooms.lock().unwrap_or_else(|p| p.into_inner()).get(&room_id).map(|r| r.access());
    let call = InboundCall {
        op,
        origin: origin.clone(),
        room_id: room_id.clone(),
        peek_id: peek_id.clone(),
        ver,
        access,
    };
    let granted = match front.inbound(call.clone()).await {
        Ok(granted) => granted,
        Err(reply) => return reply,
    };
    let interval = Duration::from_millis(granted.renewal_interval_ms);
    front.log.push(format!("inbound {op:?} {room_id} peek_id={peek_id} from {origin}: granted"));
    match op {
        InboundOp::Peek => {
            let snapshot = front
                .rooms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&room_id)
                .map(|r| r.peek_response(interval));
            match snapshot {
                Some(snapshot) => answer(snapshot),
                None => {
                    let _ = front.inbound(InboundCall { op: InboundOp::Unpeek, ..call }).await;
                    error(ErrorReply::not_found("the room went away"))
                }
            }
        }
        InboundOp::Renew => answer(FederationRenewResponse::new(interval)),
        InboundOp::Unpeek => answer(FederationUnpeekResponse::new()),
    }
}

#[derive(serde::Deserialize)]
struct Pdus {
    #[serde(default)]
    pdus: Vec<Value>,
}

/// `PUT /_matrix/federation/v1/send/{txnId}`: relayed events go to the timeline (each event
/// id once; a repeat is counted as a duplicate); `expired_peeks` go to the room's worker, and
/// so do the rooms peeked over federation that the events belong to (one call per shard: their
/// resident is alive, which feeds failover liveness).
async fn send(State(front): State<Arc<Front>>, headers: HeaderMap, body: Body) -> Response {
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
    let pdus = serde_json::from_slice::<Pdus>(&body).map(|p| p.pdus).unwrap_or_default();
    for entry in expired {
        let call = RemoteExpired {
            origin: origin.clone(),
            room_id: entry.room_id,
            peek_id: entry.peek_id,
        };
        let worker = front.worker_of(&call.room_id);
        if let Err(e) = front.worker_post(worker, "/_internal/remote_expired", &call).await {
            return error(ErrorReply::new(
                503,
                ErrorKind::Unknown,
                format!("federation worker unavailable: {e}"),
            ));
        }
    }
    let pdus: Vec<(OwnedRoomId, Value)> = pdus
        .into_iter()
        .take(50)
        .filter_map(|pdu| {
            let room_id = pdu["room_id"].as_str().and_then(|r| OwnedRoomId::try_from(r).ok())?;
            Some((room_id, pdu))
        })
        .collect();
    // The rooms peeked over federation that this transaction carried events of, by shard.
    let mut live: BTreeMap<u32, BTreeSet<OwnedRoomId>> = BTreeMap::new();
    {
        let core = front.core.lock().await;
        for (room_id, _) in &pdus {
            if core.side.is_remote(room_id) {
                live.entry(shard_of(room_id, front.shards)).or_default().insert(room_id.clone());
            }
        }
    }
    {
        let mut received = front.received.lock().unwrap_or_else(|p| p.into_inner());
        let Received { timeline, seen, duplicates } = &mut *received;
        for (room_id, pdu) in pdus {
            let event_id = pdu["event_id"].as_str().unwrap_or_default().to_owned();
            if !seen.insert(format!("{room_id} {event_id}")) {
                *duplicates += 1;
                continue;
            }
            front.log.push(format!("got event {event_id} in {room_id} from {origin}"));
            timeline.entry(room_id).or_default().push(pdu);
        }
    }
    // Liveness is a hint: a worker that misses it only probes its resident sooner.
    for (shard, rooms) in live {
        let call = RemoteEvents { rooms: rooms.into_iter().collect() };
        let worker = &front.workers[shard as usize];
        if let Err(e) = front.worker_post(worker, "/_internal/remote_events", &call).await {
            front.log.push(format!("remote events not told to shard {shard}: {e}"));
        }
    }
    reply(200, &json!({ "pdus": {} }))
}

/// `GET /_matrix/federation/v1/query/directory?room_alias=…`.
async fn directory(State(front): State<Arc<Front>>, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let alias = reqwest::Url::parse(&format!("http://x/?{query}"))
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "room_alias").map(|(_, v)| v.into_owned()))
        .and_then(|a| ruma_common::OwnedRoomAliasId::try_from(a).ok());
    let Some(alias) = alias else { return error(ErrorReply::not_found("bad alias")) };
    match front.rooms.lock().unwrap_or_else(|p| p.into_inner()).resolve(&alias).cloned() {
        Some(room_id) => reply(200, &json!({ "room_id": room_id, "servers": [front.name] })),
        None => error(ErrorReply::not_found(format!("no room alias {alias}"))),
    }
}
