//! Peek operations per second through the cluster, with one federation worker and with two
//! (`#[ignore]`d: a measurement, not a check; run it under `.ci/services`):
//!
//! ```sh
//! .ci/services cargo test -p cluster --release --test throughput -- --ignored --nocapture
//! ```
//!
//! The load: `ROOMS` (200) rooms on an `http-pair` shim; `CONCURRENCY` (32) clients at once,
//! each peeking a room it has not peeked before through the cluster's front, with the room's
//! server in `servers`. One operation is one client peek of a remote room: the front's
//! `Demand` crosses JetStream to the room's shard, the shard `PUT`s the federated peek,
//! stores it in PostgreSQL, and its `Granted` crosses back before the client is answered.
//! Each configuration runs `RUNS` (3) times on fresh streams and namespaces; the minimum and
//! the median ops/s are printed.

use std::time::Duration;

use http_pair::api::Api;
use http_pair::shim::{self, ShimConfig};
use matrix_peek::wire::{ClientPrefix, FederationPrefix};
use serde_json::json;

mod support;
use support::{Cluster, free_port, required};

const ROOMS: usize = 200;
const CONCURRENCY: usize = 32;
const RUNS: usize = 3;

/// The resident side's load: `ROOMS` rooms on the cluster, each `PUT`-peeked by a peer through
/// the front (`CONCURRENCY` at once), as `http-pair` would. Each is registered by the room's
/// federation worker (stored in its PostgreSQL namespace) before the front answers with the
/// room's snapshot; the sync worker is not involved.
async fn inbound_peeks(front: &str, workers: usize, run: usize) -> f64 {
    let api = Api::new(front.to_owned());
    let mut rooms = Vec::new();
    for i in 0..ROOMS {
        let (_, room) = api.create_room(&format!("c{i}"), true).await.unwrap();
        rooms.push(room["room_id"].as_str().unwrap().to_owned());
    }
    #[allow(clippy::disallowed_methods)]
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for chunk in rooms.chunks(ROOMS / CONCURRENCY + 1).map(<[String]>::to_vec) {
        let api = Api::new(front.to_owned());
        tasks.push(tokio::spawn(async move {
            for room in chunk {
                let room_id = ruma_common::RoomId::parse(&room).unwrap();
                let path = format!("{}?ver=10", FederationPrefix::Stable.peek_path(&room_id, "p1"));
                let headers = [("x-peek-origin", "peer.invalid")];
                let (status, body) = api.raw("PUT", &path, &headers, b"{}".to_vec()).await.unwrap();
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let rate = ROOMS as f64 / elapsed.as_secs_f64();
    println!("workers={workers} run={run}: {ROOMS} inbound peeks in {elapsed:?}: {rate:.0} ops/s");
    rate
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "a measurement; run it under .ci/services with --ignored --nocapture"]
async fn peeks_per_second_with_one_and_two_federation_workers() {
    let nats = required("MATRIX_PEEK_NATS_URL", "a nats-server with JetStream");
    let pg = required("MATRIX_PEEK_PG_URL", "a PostgreSQL server");
    let dir = std::env::temp_dir().join(format!("matrix-peek-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for workers in [1usize, 2] {
        let (mut rates, mut inbound_rates) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            let config = ShimConfig {
                db: dir.join(format!("single-{workers}-{run}.db")),
                echo: false,
                ..ShimConfig::default()
            };
            let single = shim::start(config).await.unwrap();
            let single_api = Api::new(single.addr.to_string());
            let mut rooms = Vec::new();
            for i in 0..ROOMS {
                let (_, room) = single_api.create_room(&format!("r{i}"), true).await.unwrap();
                rooms.push(room["room_id"].as_str().unwrap().to_owned());
            }
            let prefix = format!("b{}x{}", std::process::id(), free_port());
            let cluster = Cluster::start(&nats, &pg, &prefix, workers).await;
            let server = single.app.name.to_string();
            let front = cluster.name.clone();
            // The clock is read through tokio's `Instant` (the workspace bans std's clock
            // reads outside `SystemClock`; a measurement is the exception the lint allows
            // here).
            #[allow(clippy::disallowed_methods)]
            let started = tokio::time::Instant::now();
            let chunks: Vec<Vec<String>> =
                rooms.chunks(ROOMS / CONCURRENCY + 1).map(<[String]>::to_vec).collect();
            let mut tasks = Vec::new();
            for (n, chunk) in chunks.into_iter().enumerate() {
                let (api, server) = (Api::new(front.clone()), server.clone());
                let user = format!("@u{n}:{front}");
                tasks.push(tokio::spawn(async move {
                    for room in chunk {
                        let room_id = ruma_common::RoomId::parse(&room).unwrap();
                        let path = ClientPrefix::V3.peek_path((&*room_id).into());
                        let headers = [("x-peek-user", user.as_str()), ("x-peek-device", "D")];
                        let body = json!({ "servers": [server] }).to_string().into_bytes();
                        let (status, body) = api.raw("POST", &path, &headers, body).await.unwrap();
                        assert_eq!(status, 200, "{body}");
                    }
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            let elapsed = started.elapsed();
            let rate = ROOMS as f64 / elapsed.as_secs_f64();
            println!(
                "workers={workers} run={run}: {ROOMS} client peeks in {elapsed:?}: {rate:.0} ops/s"
            );
            rates.push(rate);
            inbound_rates.push(inbound_peeks(&cluster.name, workers, run).await);
            cluster.stop().await;
            single.stop();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for (what, rates) in [("client peeks", &mut rates), ("inbound peeks", &mut inbound_rates)] {
            rates.sort_by(f64::total_cmp);
            println!(
                "RESULT workers={workers} {what}: min {:.0} ops/s, median {:.0} ops/s over {RUNS} runs",
                rates[0],
                rates[RUNS / 2]
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
