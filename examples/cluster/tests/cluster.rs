//! End to end over real NATS JetStream and PostgreSQL on loopback: a clustered homeserver (a
//! sync worker and two federation workers, separate processes) and a single-process one (the
//! `http-pair` shim, in this process) peek into each other's rooms; a federation worker is
//! SIGKILLed and restarted, then the sync worker, then nats-server is stopped and started.
//!
//! Needs `MATRIX_PEEK_NATS_URL` and `MATRIX_PEEK_PG_URL` (and, for the outage,
//! `MATRIX_PEEK_NATS_CMD`/`MATRIX_PEEK_NATS_PID`): run it under `.ci/services`. Without them it
//! fails, naming what is missing.

use std::process::Stdio;
use std::time::Duration;

use cluster::shard::shard_of;
use http_pair::api::Api;
use ruma_common::{OwnedRoomAliasId, OwnedRoomId};
use serde_json::Value;
use tokio::process::Command;

mod support;
use support::{Cluster, Pair, WAIT, id, inbound_on, kill, peeks, required, spawn};

fn events(state: &Value, room: &OwnedRoomId) -> Vec<String> {
    state["received"][room.as_str()]
        .as_array()
        .map(|a| a.iter().map(|e| e.as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

fn established(state: &Value, room: &OwnedRoomId) -> bool {
    state["outbound"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["room_id"] == room.as_str() && o["state"] == "Established")
}

#[tokio::test(flavor = "current_thread")]
async fn a_cluster_and_a_single_process_server_peek_into_each_others_rooms_through_crashes_and_an_outage()
 {
    // The single-process homeserver (http-pair's shim, SQLite, in this process) and the
    // clustered one: two federation workers and the sync worker in front.
    let Pair { dir, single, single_api, cluster, cluster_api } = Pair::start("t").await;
    let Cluster { name, fed_specs, mut feds, sync_spec, mut sync } = cluster;

    // Each hosts a world-readable room; each peeks the other's by alias.
    let (_, lobby) = single_api.create_room("lobby", true).await.unwrap();
    let (lobby, lobby_alias): (OwnedRoomId, OwnedRoomAliasId) =
        (id(&lobby["room_id"]), id(&lobby["alias"]));
    let (_, hall) = cluster_api.create_room("hall", true).await.unwrap();
    let (hall, hall_alias): (OwnedRoomId, OwnedRoomAliasId) =
        (id(&hall["room_id"]), id(&hall["alias"]));
    let alice = format!("@alice:{name}");
    let bob = format!("@bob:{}", single.app.name);
    let (status, body) = cluster_api.peek(&alice, "PHONE", (&*lobby_alias).into()).await.unwrap();
    assert_eq!(status, 200, "the cluster's client peeks the single server's room: {body}");
    let (status, body) = single_api.peek(&bob, "LAPTOP", (&*hall_alias).into()).await.unwrap();
    assert_eq!(status, 200, "the single server's client peeks the cluster's room: {body}");

    // Events flow both ways, once each.
    for text in ["one", "two"] {
        single_api.send(&lobby, text).await.unwrap();
        cluster_api.send(&hall, text).await.unwrap();
    }
    cluster_api.wait_for(WAIT, "two lobby events", |s| events(s, &lobby).len() == 2).await.unwrap();
    // Each relayed transaction tells the lobby's shard its resident is alive (failover
    // liveness); the hall is resident here, so its events are never counted.
    cluster_api
        .wait_for(WAIT, "the lobby's shard told of both relays", |s| s["remote_events"] == 2)
        .await
        .unwrap();
    single_api.wait_for(WAIT, "two hall events", |s| events(s, &hall).len() == 2).await.unwrap();

    // SIGKILL the federation worker holding the lobby's outbound peek, and restart it.
    let shard = shard_of(&lobby, 2) as usize;
    println!("== SIGKILL fed-{shard} (the lobby's shard)");
    kill(&mut feds[shard]).await;
    single_api.send(&lobby, "three").await.unwrap();
    feds[shard] = spawn(&fed_specs[shard]).await;
    let state = cluster_api
        .wait_for(WAIT, "lobby peek up after the restart", |s| {
            established(s, &lobby) && events(s, &lobby).len() == 3
        })
        .await
        .unwrap();
    assert!(peeks(&state, &alice, &lobby), "alice still peeks the lobby: {state:#}");
    assert_eq!(
        inbound_on(&state, &hall),
        1,
        "the single server's peek on the hall is kept: {state:#}"
    );
    let single_state = single_api.state().await.unwrap();
    assert_eq!(
        inbound_on(&single_state, &lobby),
        1,
        "one peek of the cluster on the lobby, none leaked: {single_state:#}"
    );
    cluster_api.send(&hall, "three").await.unwrap();
    single_api.wait_for(WAIT, "three hall events", |s| events(s, &hall).len() == 3).await.unwrap();

    // SIGKILL the sync worker and restart it: every device keeps its peeks.
    println!("== SIGKILL the sync worker");
    kill(&mut sync).await;
    sync = spawn(&sync_spec).await;
    let state = cluster_api
        .wait_for(WAIT, "alice's peek restored", |s| peeks(s, &alice, &lobby))
        .await
        .unwrap();
    assert!(established(&state, &lobby), "{state:#}");
    single_api.send(&lobby, "four").await.unwrap();
    cluster_api
        .wait_for(WAIT, "event four", |s| events(s, &lobby).iter().any(|e| e.starts_with("$e5")))
        .await
        .unwrap();

    // A JetStream outage: a new peek waits, then completes once nats-server is back.
    let nats_cmd =
        required("MATRIX_PEEK_NATS_CMD", "the command line of the nats-server to restart");
    let nats_pid = required("MATRIX_PEEK_NATS_PID", "the pid of the nats-server to stop");
    let (_, annex) = single_api.create_room("annex", true).await.unwrap();
    let (annex, annex_alias): (OwnedRoomId, OwnedRoomAliasId) =
        (id(&annex["room_id"]), id(&annex["alias"]));
    println!("== stop nats-server");
    let stopped = std::process::Command::new("kill").arg(&nats_pid).status().unwrap();
    assert!(stopped.success(), "kill nats-server {nats_pid}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let carol = format!("@carol:{name}");
    let peek = {
        let api = Api::new(name.clone());
        let (carol, alias) = (carol.clone(), annex_alias.clone());
        tokio::spawn(async move { api.peek(&carol, "TABLET", (&*alias).into()).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!peek.is_finished(), "routing waits for JetStream");
    println!("== start nats-server again");
    let mut nats_again = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {nats_cmd}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nats-server restarts");
    let (status, body) = peek.await.unwrap().unwrap();
    assert_eq!(status, 200, "the peek completes after the outage: {body}");
    single_api.send(&annex, "after the outage").await.unwrap();
    let state = cluster_api
        .wait_for(WAIT, "the annex event", |s| events(s, &annex).len() == 1)
        .await
        .unwrap();

    // Every event reached each server once.
    assert_eq!(state["duplicates"], 0, "no event relayed twice to the cluster: {state:#}");
    let single_state = single_api.state().await.unwrap();
    let hall_events = events(&single_state, &hall);
    let mut unique = hall_events.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), hall_events.len(), "no event relayed twice to the single server");

    for child in feds.iter_mut().chain([&mut sync]) {
        kill(child).await;
    }
    let _ = nats_again.start_kill();
    single.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
