//! End to end over real NATS JetStream and PostgreSQL on loopback: a room of the clustered
//! homeserver stops being world-readable (`POST /_test/rooms/{roomId}/visibility`) while its
//! federation worker is down, and every peek of it ends, the local one on the sync worker at
//! once (R24) and, once the worker is back and takes the change from JetStream, the federated
//! one of a single-process server (the `http-pair` shim), told in `expired_peeks` (R40).
//! Meanwhile no event of the room is relayed.
//!
//! Needs `MATRIX_PEEK_NATS_URL` and `MATRIX_PEEK_PG_URL`: run it under `.ci/services`. Without
//! them it fails, naming what is missing.

use cluster::shard::shard_of;
use http_pair::api::Api;
use ruma_common::{OwnedRoomAliasId, OwnedRoomId};

mod support;
use support::{Pair, WAIT, id, inbound_on, peeks, workers_up};

/// The value of the sample `name` (its first, unlabelled line) in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A [`Pair`] of servers and a world-readable room "hall" on the cluster.
struct Servers {
    pair: Pair,
    hall: OwnedRoomId,
    hall_alias: OwnedRoomAliasId,
}

impl Servers {
    async fn start(tag: &str) -> Servers {
        let pair = Pair::start(tag).await;
        let (_, hall) = pair.cluster_api.create_room("hall", true).await.unwrap();
        let (hall, hall_alias) = (id(&hall["room_id"]), id(&hall["alias"]));
        Servers { pair, hall, hall_alias }
    }

    async fn stop(self) {
        self.pair.stop().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_cluster_room_that_stops_being_world_readable_ends_its_local_and_federated_peeks() {
    // (On the way, each worker's `/metrics` is checked to count the peeks its side holds.)
    let mut servers = Servers::start("a").await;
    let Servers { pair: Pair { single, single_api, cluster, cluster_api, .. }, hall, hall_alias } =
        &mut servers;
    let (hall, hall_alias) = (hall.clone(), hall_alias.clone());

    // The cluster hosts a world-readable room; a device of each server peeks it.
    let dave = format!("@dave:{}", cluster.name);
    let bob = format!("@bob:{}", single.app.name);
    let (status, body) = cluster_api.peek(&dave, "DESK", (&*hall_alias).into()).await.unwrap();
    assert_eq!(status, 200, "the cluster's own client peeks its room: {body}");
    let (status, body) = single_api.peek(&bob, "LAPTOP", (&*hall_alias).into()).await.unwrap();
    assert_eq!(status, 200, "the single server's client peeks the cluster's room: {body}");
    let state = cluster_api.state().await.unwrap();
    assert!(peeks(&state, &dave, &hall), "dave peeks the hall: {state:#}");
    assert_eq!(inbound_on(&state, &hall), 1, "the single server peeks the hall: {state:#}");
    let single_state = single_api.state().await.unwrap();
    assert!(peeks(&single_state, &bob, &hall), "bob peeks the hall: {single_state:#}");

    // Each worker's `/metrics` shows the side it holds: the front the local peek, the hall's
    // shard the inbound one.
    let (status, content_type, text) = cluster_api.metrics().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    assert_eq!(sample(&text, "matrix_peek_local_peeks_started_total"), Some(1.0), "{text}");
    let shard = &state["workers"][shard_of(&hall, 2) as usize]["addr"];
    let (status, _, text) = Api::new(shard.as_str().unwrap().to_owned()).metrics().await.unwrap();
    assert_eq!(status, 200, "{text}");
    assert_eq!(sample(&text, "matrix_peek_inbound_peeks_granted_total"), Some(1.0), "{text}");

    // The room stops being world-readable while its shard is down (SIGKILL): the change is
    // accepted all the same, since it waits in JetStream for the shard.
    let shard_index = shard_of(&hall, 2) as usize;
    support::kill(&mut cluster.feds[shard_index]).await;
    let (status, body) = cluster_api.set_world_readable(&hall, false).await.unwrap();
    assert_eq!(status, 200, "the visibility change is accepted: {body}");
    assert_eq!(body["world_readable"], false, "{body}");
    // The local peek ends at once...
    let state = cluster_api.state().await.unwrap();
    assert!(!peeks(&state, &dave, &hall), "dave's local peek ended: {state:#}");
    // ... and before the shard is back, an event of the room goes to nobody (fail closed).
    let (status, sent) = cluster_api.send(&hall, "private now").await.unwrap();
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["relayed_to"], serde_json::json!([]), "nothing relayed: {sent}");
    // The shard comes back, applies the change and ends the inbound peek.
    cluster.feds[shard_index] = support::spawn(&cluster.fed_specs[shard_index]).await;
    cluster_api
        .wait_for(WAIT, "the inbound peek ended", |s| workers_up(s) && inbound_on(s, &hall) == 0)
        .await
        .unwrap();
    // ... and the single server hears of it in `expired_peeks`: bob's peek is gone.
    let single_state = single_api
        .wait_for(WAIT, "bob's peek of the hall ended", |s| !peeks(s, &bob, &hall))
        .await
        .unwrap();
    assert!(
        single_state["log"].to_string().contains("expired_peeks"),
        "the single server was told in expired_peeks: {single_state:#}"
    );

    // A new peek of the room is refused on both servers.
    let (status, body) = cluster_api.peek(&dave, "DESK", (&*hall_alias).into()).await.unwrap();
    assert_eq!(status, 403, "the cluster refuses a peek of a room not world-readable: {body}");

    servers.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_server_the_room_acl_denies_loses_its_peek_and_gets_nothing_more() {
    let servers = Servers::start("l").await;
    let Servers { pair: Pair { single, single_api, cluster_api, .. }, hall, hall_alias } = &servers;
    let (hall, hall_alias) = (hall.clone(), hall_alias.clone());

    // The single server's device peeks a world-readable room of the cluster.
    let bob = format!("@bob:{}", single.app.name);
    let (status, body) = single_api.peek(&bob, "LAPTOP", (&*hall_alias).into()).await.unwrap();
    assert_eq!(status, 200, "the single server's client peeks the cluster's room: {body}");
    let state = cluster_api.state().await.unwrap();
    assert_eq!(inbound_on(&state, &hall), 1, "the single server peeks the hall: {state:#}");
    let (status, sent) = cluster_api.send(&hall, "before the ACL").await.unwrap();
    assert_eq!(status, 200, "{sent}");
    let first = sent["event_id"].as_str().expect("an event id").to_owned();
    single_api
        .wait_for(WAIT, "the first event relayed", |s| s["received"].to_string().contains(&first))
        .await
        .unwrap();

    // The room's ACL now denies the single server (by its host: the shims are all on
    // 127.0.0.1, and ACLs match hosts without ports).
    let (status, body) = cluster_api.set_server_acl(&hall, &["127.0.0.1"]).await.unwrap();
    assert_eq!(status, 200, "the ACL change is accepted: {body}");
    // Nothing is relayed to it from now on, even before its shard ended the peek...
    let (status, sent) = cluster_api.send(&hall, "not for you").await.unwrap();
    assert_eq!(status, 200, "{sent}");
    let hidden = sent["event_id"].as_str().expect("an event id").to_owned();
    assert_eq!(sent["relayed_to"], serde_json::json!([]), "nothing relayed: {sent}");
    // ... the shard ends its inbound peek (R45) and tells it in `expired_peeks`...
    cluster_api
        .wait_for(WAIT, "the denied server's inbound peek ended", |s| {
            workers_up(s) && inbound_on(s, &hall) == 0
        })
        .await
        .unwrap();
    single_api
        .wait_for(WAIT, "bob's peek of the hall ended", |s| !peeks(s, &bob, &hall))
        .await
        .unwrap();
    let single_state = single_api.state().await.unwrap();
    assert!(
        !single_state["received"].to_string().contains(&hidden),
        "the denied server never got the event: {single_state:#}"
    );
    // ... and a new peek from it is refused (403 at the front, so the single server's client
    // peek fails).
    let (status, body) = single_api.peek(&bob, "LAPTOP", (&*hall_alias).into()).await.unwrap();
    assert_eq!(status, 403, "a denied server cannot peek the room again: {body}");
    let state = cluster_api.state().await.unwrap();
    assert_eq!(inbound_on(&state, &hall), 0, "{state:#}");

    servers.stop().await;
}
