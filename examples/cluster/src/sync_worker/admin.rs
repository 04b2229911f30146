//! The front's test API (`/_test/rooms`, `…/send`, `…/visibility`, `/_test/state`) and its
//! `/metrics`: what the end-to-end tests drive and read, beside the Matrix routes of
//! [`super`].

use http_pair::admin::{CreateRoom, SendEvent, admin_user, json_body, room_and_body};

use super::*;

/// `POST /_test/rooms` `{"alias", "world_readable", "room_version"}` (as the pair's): a body
/// that is not such JSON is `M_BAD_JSON`.
pub(super) async fn create_room(
    State(front): State<Arc<Front>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request: CreateRoom = match json_body(&headers, body).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let creator = admin_user(&front.name);
    let created = front
        .rooms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .create(
            &front.name,
            &creator,
            request.alias.as_deref(),
            request.room_version.unwrap_or(RoomVersionId::V10),
            request.world_readable,
            front.clock.now(),
        )
        .map(|room| (room.id.clone(), room.alias.clone()));
    match created {
        Ok((room_id, alias)) => reply(200, &json!({ "room_id": room_id, "alias": alias })),
        Err(e) => error(ErrorReply::new(400, ErrorKind::InvalidParam, e)),
    }
}

/// `POST /_test/rooms/{roomId}/send` `{"body"}`: appends a message and relays it once to each
/// server the room's federation worker lists as peeking it, if the room is peekable now (fail
/// closed: an access change the shard has not applied yet never leaks an event). A bad room
/// id is `M_INVALID_PARAM` and a bad body `M_BAD_JSON` (both 400), an unknown room 404.
pub(super) async fn send_event(
    State(front): State<Arc<Front>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (room_id, request): (_, SendEvent) = match room_and_body(path, &headers, body).await {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let sender = admin_user(&front.name);
    let content = json!({ "msgtype": "m.text", "body": request.body });
    let event = front.rooms.lock().unwrap_or_else(|p| p.into_inner()).send(
        &room_id,
        &sender,
        "m.room.message",
        content,
        front.clock.now(),
    );
    let Some(event) = event else { return error(ErrorReply::not_found("no such room here")) };
    let peekable = front
        .rooms
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&room_id)
        .is_some_and(|r| r.access().is_peekable());
    if !peekable {
        return reply(200, &json!({ "event_id": event["event_id"], "relayed_to": [] }));
    }
    let path = format!("/_internal/destinations/{}", http_pair::api::encode(room_id.as_str()));
    let destinations: Vec<String> = match front.worker_get(front.worker_of(&room_id), &path).await {
        Ok(list) => serde_json::from_value(list).unwrap_or_default(),
        Err(e) => {
            return error(ErrorReply::new(
                503,
                ErrorKind::Unknown,
                format!("federation worker: {e}"),
            ));
        }
    };
    let mut relayed = Vec::new();
    for destination in destinations {
        let Ok(server) = OwnedServerName::try_from(destination.as_str()) else { continue };
        // Fail closed: a server the room's ACL denies gets nothing, even before the shard has
        // ended its peek.
        let allowed = front
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&room_id)
            .is_some_and(|r| r.allows(&server));
        if !allowed {
            continue;
        }
        let txn = format!(
            "{}.{}",
            front.clock.now().as_millis(),
            event["event_id"].as_str().unwrap_or_default()
        );
        let body = json!({ "origin": front.name, "origin_server_ts": front.clock.now().as_millis(), "pdus": [event] });
        let status = front.federation.send_transaction(&server, &txn, &body).await;
        relayed.push(json!([destination, format!("{status:?}")]));
    }
    reply(200, &json!({ "event_id": event["event_id"], "relayed_to": relayed }))
}

#[derive(serde::Deserialize)]
struct Visibility {
    world_readable: bool,
}

/// `POST /_test/rooms/{roomId}/visibility` `{"world_readable": false}`: changes the resident
/// room's history visibility. The sync side ends the local peeks it no longer allows (R24) and,
/// for a room peeked over federation, routes `AccessChanged`; the room's federation worker
/// ends the inbound peeks (R40), their servers hearing of it in `expired_peeks`. Answered once
/// the sync side stored its part and JetStream stored the shard's ([`ToShard`]), so a shard
/// that is down applies it when it is back; until it has, `/send` already relays nothing of
/// a room that is no longer peekable.
pub(super) async fn visibility(
    State(front): State<Arc<Front>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (room_id, request): (_, Visibility) = match room_and_body(path, &headers, body).await {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let sender = admin_user(&front.name);
    let changed = front.rooms.lock().unwrap_or_else(|p| p.into_inner()).set_world_readable(
        &room_id,
        &sender,
        request.world_readable,
        front.clock.now(),
    );
    let Some((_event, access)) = changed else {
        return error(ErrorReply::not_found("no such room here"));
    };
    {
        let mut core = front.core.lock().await;
        core.side.handle_access_changed(front.clock.now(), &room_id, &access);
        front.commit(core).await;
    }
    // Through JetStream, stored before the answer: a shard that is down applies it when it
    // is back, before anything published after it.
    let change =
        ToShard::AccessChanged(AccessChanged { room_id: room_id.clone(), access: access.clone() });
    let shard = shard_of(&room_id, front.shards);
    front.bus.publish(front.bus.subject_fed(shard), &change).await;
    front.log.push(format!("{room_id}: world_readable={}", access.world_readable));
    reply(200, &json!({ "world_readable": access.world_readable }))
}

/// `GET /metrics`: the `SyncSide`'s stats (see [`crate::metrics`]).
pub(super) async fn metrics(State(front): State<Arc<Front>>) -> Response {
    let stats = front.core.lock().await.side.stats();
    crate::metrics(stats, &front.commits)
}

/// `GET /_test/state`: local peeks, what was received (and how many duplicates), and every
/// federation worker's outbound and inbound peeks (and, summed, `remote_events`: how many
/// rooms' relayed events the workers were told of).
pub(super) async fn state(State(front): State<Arc<Front>>) -> Response {
    let local: Vec<Value> = {
        let core = front.core.lock().await;
        let local = core.side.local();
        let rooms: Vec<OwnedRoomId> = local.demanded_rooms().map(ToOwned::to_owned).collect();
        rooms
            .iter()
            .flat_map(|room| {
                core.side
                    .peekers(room)
                    .map(move |(u, d)| json!({ "user_id": u, "device_id": d, "room_id": room }))
            })
            .collect()
    };
    let (received, duplicates) = {
        let received = front.received.lock().unwrap_or_else(|p| p.into_inner());
        let map: serde_json::Map<String, Value> = received
            .timeline
            .iter()
            .map(|(room, events)| {
                (room.to_string(), events.iter().map(|e| e["event_id"].clone()).collect())
            })
            .collect();
        (map, received.duplicates)
    };
    let (mut outbound, mut inbound, mut workers) = (Vec::new(), Vec::new(), Vec::new());
    let mut remote_events = 0;
    for worker in &front.workers {
        match front.worker_get(worker, "/_internal/state").await {
            Ok(state) => {
                outbound.extend(state["outbound"].as_array().cloned().unwrap_or_default());
                inbound.extend(state["inbound"].as_array().cloned().unwrap_or_default());
                remote_events += state["remote_events"].as_u64().unwrap_or_default();
                workers.push(json!({ "addr": worker, "up": true }));
            }
            Err(_) => workers.push(json!({ "addr": worker, "up": false })),
        }
    }
    reply(
        200,
        &json!({
            "server_name": front.name, "local_peeks": local, "received": received,
            "duplicates": duplicates, "outbound": outbound, "inbound": inbound, "workers": workers,
            "remote_events": remote_events,
        }),
    )
}

#[derive(serde::Deserialize)]
struct ServerAclRequest {
    deny: Vec<String>,
}

/// `POST /_test/rooms/{roomId}/acl` `{"deny": ["evil.example"]}`: sets the resident room's
/// `m.room.server_acl` (every other server allowed). From now on the front refuses the denied
/// servers' peeks and renewals (403) and relays nothing to them; the room's federation worker
/// ends their inbound peeks (R45), which they hear of in `expired_peeks`. Answered once
/// JetStream stored the shard's part ([`ToShard::ServerAcl`]), so a shard that is down
/// applies it when it is back.
pub(super) async fn server_acl(
    State(front): State<Arc<Front>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (room_id, request): (_, ServerAclRequest) = match room_and_body(path, &headers, body).await
    {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let sender = admin_user(&front.name);
    let changed = front.rooms.lock().unwrap_or_else(|p| p.into_inner()).set_server_acl(
        &room_id,
        &sender,
        request.deny.clone(),
        front.clock.now(),
    );
    let Some((_event, acl)) = changed else {
        return error(ErrorReply::not_found("no such room here"));
    };
    let change = ToShard::ServerAcl(ServerAclChanged { room_id: room_id.clone(), acl });
    let shard = shard_of(&room_id, front.shards);
    front.bus.publish(front.bus.subject_fed(shard), &change).await;
    front.log.push(format!("{room_id}: server ACL denies {:?}", request.deny));
    reply(200, &json!({ "deny": request.deny }))
}
