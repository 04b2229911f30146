//! Starting the cluster's processes for the tests: required servers, free ports, workers
//! that print `LISTENING` when ready and die with the test.

#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use http_pair::api::Api;
use http_pair::shim::{self, ShimConfig};
use ruma_common::OwnedRoomId;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn required(var: &str, what: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: this test needs {what}. Run it under .ci/services \
             (`.ci/services cargo test -p cluster`), which starts nats-server with JetStream and \
             a throwaway PostgreSQL on loopback and exports their URLs."
        )
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How to start one worker again after a kill.
#[derive(Clone)]
pub struct Spec {
    /// The arguments after the binary.
    pub args: Vec<String>,
    /// The prefix of its output lines.
    pub label: String,
}

pub async fn spawn(spec: &Spec) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cluster"))
        .args(&spec.args)
        .arg("--exit-on-eof")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the cluster binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let label = spec.label.clone();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            println!("[{label}] {line}");
            if line.starts_with("LISTENING") {
                return true;
            }
        }
        false
    })
    .await;
    assert!(matches!(ready, Ok(true)), "{} did not start", spec.label);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("[{label}] {line}");
        }
    });
    child
}

pub async fn kill(child: &mut Child) {
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
}

/// A running cluster: its name, the federation workers' and the sync worker's specs and
/// processes.
pub struct Cluster {
    /// The homeserver's name (the front's address).
    pub name: String,
    /// How to restart each federation worker.
    pub fed_specs: Vec<Spec>,
    /// The federation workers, shard by shard.
    pub feds: Vec<Child>,
    /// How to restart the sync worker.
    pub sync_spec: Spec,
    /// The sync worker.
    pub sync: Child,
}

impl Cluster {
    /// Starts `shards` federation workers and the sync worker, with streams and store
    /// namespaces named by `prefix`.
    pub async fn start(nats: &str, pg: &str, prefix: &str, shards: usize) -> Cluster {
        let front_port = free_port();
        let fed_ports: Vec<u16> = (0..shards).map(|_| free_port()).collect();
        let name = format!("127.0.0.1:{front_port}");
        let common = |port: u16| -> Vec<String> {
            vec![
                "--name".into(),
                name.clone(),
                "--port".into(),
                port.to_string(),
                "--nats".into(),
                nats.to_owned(),
                "--pg".into(),
                pg.to_owned(),
                "--prefix".into(),
                prefix.to_owned(),
                "--shards".into(),
                shards.to_string(),
            ]
        };
        let fed_specs: Vec<Spec> = (0..shards)
            .map(|shard| {
                let mut args = vec!["federation".to_owned(), "--shard".into(), shard.to_string()];
                args.extend(common(fed_ports[shard]));
                Spec { args, label: format!("fed-{shard}") }
            })
            .collect();
        let mut sync_args = vec!["sync".to_owned(), "--workers".into()];
        let workers: Vec<String> = fed_ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        sync_args.push(workers.join(","));
        sync_args.extend(common(front_port));
        let sync_spec = Spec { args: sync_args, label: "sync".into() };
        let mut feds = Vec::new();
        for spec in &fed_specs {
            feds.push(spawn(spec).await);
        }
        let sync = spawn(&sync_spec).await;
        Cluster { name, fed_specs, feds, sync_spec, sync }
    }

    /// Kills every process.
    pub async fn stop(mut self) {
        for child in self.feds.iter_mut().chain([&mut self.sync]) {
            kill(child).await;
        }
    }
}

/// A single-process server (`http-pair`'s shim, SQLite in `dir`) and a cluster of two
/// federation workers beside it, on fresh streams, store namespaces and files named by `tag`,
/// with an [`Api`] client for each. Needs the servers [`required`] names.
pub struct Pair {
    pub dir: std::path::PathBuf,
    pub single: shim::Running,
    pub single_api: Api,
    pub cluster: Cluster,
    pub cluster_api: Api,
}

impl Pair {
    pub async fn start(tag: &str) -> Pair {
        let nats = required("MATRIX_PEEK_NATS_URL", "a nats-server with JetStream");
        let pg = required("MATRIX_PEEK_PG_URL", "a PostgreSQL server");
        let dir = std::env::temp_dir().join(format!("matrix-peek-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = format!("{tag}{}x{}", std::process::id(), free_port());
        let config = ShimConfig { db: dir.join("single.db"), echo: false, ..ShimConfig::default() };
        let single = shim::start(config).await.expect("the http-pair shim starts");
        let single_api = Api::new(single.addr.to_string());
        let cluster = Cluster::start(&nats, &pg, &prefix, 2).await;
        let cluster_api = Api::new(cluster.name.clone());
        Pair { dir, single, single_api, cluster, cluster_api }
    }

    /// Stops both servers and removes the single server's files.
    pub async fn stop(self) {
        self.cluster.stop().await;
        self.single.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How long a test waits for a state to be reached.
pub const WAIT: Duration = Duration::from_secs(20);

/// An id from a JSON string.
pub fn id<T: TryFrom<String>>(value: &Value) -> T {
    T::try_from(value.as_str().expect("an id").to_owned()).ok().expect("a valid id")
}

/// Whether the state's local peeks include `user`'s of `room`.
pub fn peeks(state: &Value, user: &str, room: &OwnedRoomId) -> bool {
    state["local_peeks"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["user_id"] == user && p["room_id"] == room.as_str())
}

/// Whether the front reached every federation worker for `state` (an unreachable one is left
/// out of its lists, which would read as "no peeks").
pub fn workers_up(state: &Value) -> bool {
    let workers = state["workers"].as_array();
    workers.is_some_and(|w| !w.is_empty() && w.iter().all(|w| w["up"] == true))
}

/// How many inbound peeks of `room` the state lists.
pub fn inbound_on(state: &Value, room: &OwnedRoomId) -> usize {
    state["inbound"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["room_id"] == room.as_str())
        .count()
}
