//! End to end over real HTTP: two homeserver **processes** on 127.0.0.1 (the `http_pair` shim
//! with `matrix-peek-sqlite`'s store), driven through their client, federation and `/_test`
//! APIs.
//!
//! # How the processes are started
//!
//! This file has its own `main` (`harness = false` in Cargo.toml) and links the shim library.
//! Run with `HTTP_PAIR_SHIM_CHILD=1` and `serve --db … --port …` it *is* one homeserver; the
//! tests re-execute `std::env::current_exe()` that way. So the servers are always built from
//! the current sources with the test, with no dependency on the demo binary having been built
//! first (`cargo test -p http-pair --test http_pair` works alone). Each child prints
//! `LISTENING 127.0.0.1:{port}` (port 0: the OS picks a free one), is killed when its handle
//! drops, and exits by itself when the test's end of its stdin closes (`--exit-on-eof`), so no
//! server outlives the test. The whole run is bounded by [`OVERALL`].
//!
//! The shim has **no signatures** and trivial header auth: see `src/shim.rs`.

/// The bad-input test (its table of cases is long).
#[path = "http_pair_support/bad_input.rs"]
mod bad_input;

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_pair::api::Api;
use http_pair::{client, shim, transport};
use ruma_common::{OwnedRoomAliasId, OwnedRoomId, RoomOrAliasId};
use serde_json::Value;

const CHILD_ENV: &str = "HTTP_PAIR_SHIM_CHILD";
/// Every test together, processes included, must finish within this.
const OVERALL: Duration = Duration::from_secs(100);
/// One wait for a state to be reached.
const WAIT: Duration = Duration::from_secs(10);
const LINGER_MS: u64 = 200;

type TestFn = for<'a> fn(&'a mut Pair) -> Pin<Box<dyn Future<Output = Result<(), String>> + 'a>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if std::env::var_os(CHILD_ENV).is_some() {
        let args = args.strip_prefix(&["serve".to_owned()]).unwrap_or(&args);
        if let Err(e) = shim::serve_main(args) {
            eprintln!("shim: {e}");
            std::process::exit(2);
        }
        return;
    }
    let tests: [(&str, TestFn); 3] = [
        ("peek_relay_restart_and_delete_across_two_processes", |p| Box::pin(story(p))),
        ("expired_peeks_reach_the_peeking_server", |p| Box::pin(expiry(p))),
        ("bad_input_gets_matrix_errors_and_never_crashes_a_shim", |p| {
            Box::pin(bad_input::bad_input(p))
        }),
    ];
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &tests {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&(&str, TestFn)> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    if selected.is_empty() {
        println!(
            "\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; {} filtered out\n",
            tests.len()
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let (passed, failed) = runtime.block_on(async {
        let run = async {
            let mut pair = Pair::start().await?;
            let mut passed = 0;
            let mut failed = Vec::new();
            for (name, test) in &selected {
                match test(&mut pair).await {
                    Ok(()) => {
                        println!("test {name} ... ok");
                        passed += 1;
                    }
                    Err(e) => {
                        println!("test {name} ... FAILED");
                        failed.push(format!("---- {name} ----\n{e}\n{}", pair.output()));
                    }
                }
            }
            Ok::<_, String>((passed, failed))
        };
        match tokio::time::timeout(OVERALL, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => (0, vec![format!("could not start the servers: {e}")]),
            Err(_) => (0, vec![format!("the tests did not finish within {OVERALL:?}")]),
        }
    });
    // Every child was killed when `pair` dropped inside the block above.
    for failure in &failed {
        println!("\n{failure}");
    }
    let verdict = if failed.is_empty() { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered out\n",
        failed.len(),
        tests.len() - selected.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

// ----- the processes -----

/// One shim process. Dropping it kills the process (and closes its stdin).
struct Shim {
    child: Child,
    _stdin: ChildStdin,
    addr: String,
    name: &'static str,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Shim {
    /// Starts `current_exe` as a shim on `port` (0: any) and waits for its `LISTENING` line.
    fn spawn(name: &'static str, db: &Path, port: u16) -> Result<Shim, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        // The configuration comes from a TOML file, like a deployment's; flags override it.
        let config = db.with_extension("toml");
        let toml = format!(
            "echo = false\n[driver]\nrequest_timeout = \"15s\"\n\
             [driver.peeking.outbound]\nlinger = \"{LINGER_MS}ms\"\n"
        );
        std::fs::write(&config, toml).map_err(|e| format!("{}: {e}", config.display()))?;
        let mut child = Command::new(exe)
            .env(CHILD_ENV, "1")
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--db")
            .arg(db)
            .args(["--port", &port.to_string()])
            .arg("--exit-on-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {name}: {e}"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = Arc::clone(&lines);
        // Keep reading all output, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(addr.trim().to_owned());
                }
                kept.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let mut shim = Shim { child, _stdin: stdin, addr: String::new(), name, lines };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => {
                shim.addr = addr;
                Ok(shim)
            }
            Err(_) => Err(format!("{name} did not start:\n{}", shim.output())),
        }
    }

    fn output(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        let tail = &lines[lines.len().saturating_sub(60)..];
        format!("-- last output of {} ({}):\n{}", self.name, self.addr, tail.join("\n"))
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The two servers: `hs1` peeks, `hs2` is resident.
struct Pair {
    dir: PathBuf,
    hs1: Shim,
    hs2: Shim,
    api1: Api,
    api2: Api,
}

impl Pair {
    async fn start() -> Result<Pair, String> {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("http_pair-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let hs1 = Shim::spawn("hs1", &dir.join("hs1.db"), 0)?;
        let hs2 = Shim::spawn("hs2", &dir.join("hs2.db"), 0)?;
        let (api1, api2) = (Api::new(hs1.addr.clone()), Api::new(hs2.addr.clone()));
        Ok(Pair { dir, hs1, hs2, api1, api2 })
    }

    /// `SIGKILL`s hs1 and starts it again on the same port and database.
    async fn kill_and_restart_hs1(&mut self) -> Result<(), String> {
        let port: u16 =
            self.hs1.addr.rsplit(':').next().and_then(|p| p.parse().ok()).ok_or("port")?;
        self.hs1.child.kill().map_err(|e| e.to_string())?;
        let _ = self.hs1.child.wait();
        let mut last = String::new();
        for _ in 0..20 {
            match Shim::spawn("hs1", &self.dir.join("hs1.db"), port) {
                Ok(shim) => {
                    self.hs1 = shim;
                    return Ok(());
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("hs1 could not restart on port {port}: {last}"))
    }

    fn output(&self) -> String {
        format!("{}\n{}", self.hs1.output(), self.hs2.output())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ----- helpers -----

fn ensure(ok: bool, what: impl std::fmt::Display) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("expected: {what}")) }
}

fn id<T: TryFrom<String>>(value: &Value) -> Result<T, String> {
    value
        .as_str()
        .and_then(|s| T::try_from(s.to_owned()).ok())
        .ok_or_else(|| format!("not an id: {value}"))
}

fn log_has(state: &Value, needle: &str) -> bool {
    state["log"]
        .as_array()
        .is_some_and(|l| l.iter().any(|line| line.as_str().is_some_and(|s| s.contains(needle))))
}

fn peeks_of(state: &Value, key: &str, room: &OwnedRoomId) -> Vec<Value> {
    state[key]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["room_id"] == room.as_str())
        .cloned()
        .collect()
}

async fn create_room(
    api: &Api,
    alias: &str,
    world_readable: bool,
) -> Result<(OwnedRoomId, OwnedRoomAliasId), String> {
    let (status, body) = api.create_room(alias, world_readable).await?;
    ensure(status == 200, format!("room created: {status} {body}"))?;
    Ok((id(&body["room_id"])?, id(&body["alias"])?))
}

const ALICE_DEVICE: &str = "PHONE";

fn alice(pair: &Pair) -> String {
    format!("@alice:{}", pair.hs1.addr)
}

// ----- the tests -----

/// R1, R4, R27, R28, R35, R39, R46, R55, R59: peek by alias across processes, relay, restart
/// from SQLite, unpeek and the `DELETE` after the linger.
async fn story(pair: &mut Pair) -> Result<(), String> {
    let (room, alias) = create_room(&pair.api2, "lobby", true).await?;
    let alice = alice(pair);
    let (status, body) = pair.api1.peek(&alice, ALICE_DEVICE, (&*alias).into()).await?;
    ensure(status == 200, format!("peek by alias granted: {status} {body}"))?;
    ensure(body["room_id"] == room.as_str(), "the alias resolved to hs2's room (R4)")?;
    ensure(body["peek_expiry_ts"].as_u64().is_some_and(|t| t > 0), "peek_expiry_ts (R9)")?;

    // The federated peek, seen from both processes.
    let s1 = pair.api1.state().await?;
    let local = peeks_of(&s1, "local_peeks", &room);
    ensure(
        local.len() == 1 && local[0]["user_id"] == alice.as_str(),
        format!("hs1 local peek: {s1:#}"),
    )?;
    let outbound = peeks_of(&s1, "outbound", &room);
    ensure(
        outbound.len() == 1
            && outbound[0]["state"] == "Established"
            && outbound[0]["server"] == pair.hs2.addr.as_str(),
        format!("hs1 outbound peek established through hs2: {outbound:?}"),
    )?;
    let s2 = pair.api2.state().await?;
    let inbound = peeks_of(&s2, "inbound", &room);
    ensure(
        inbound.len() == 1 && inbound[0]["origin"] == pair.hs1.addr.as_str(),
        format!("hs2 inbound peek from hs1: {s2:#}"),
    )?;
    let peek_id = inbound[0]["peek_id"].as_str().ok_or("peek id")?.to_owned();

    // Both processes serve their stats to a Prometheus scrape.
    let (status, content_type, text) = pair.api1.metrics().await?;
    ensure(status == 200 && content_type.starts_with("application/openmetrics-text"), "scraped")?;
    for line in [
        "matrix_peek_local_live_peeks 1",
        "matrix_peek_local_peeks_started_total 1",
        "matrix_peek_outbound_requests_total{kind=\"put\",outcome=\"ok\"} 1",
        "matrix_peek_outbound_rooms{state=\"established\"} 1",
        "matrix_peek_client_peeks_total{outcome=\"granted_after_wait\"} 1",
        "matrix_peek_pending_client_peeks 0",
    ] {
        ensure(text.lines().any(|l| l == line), format!("hs1 /metrics has {line:?}:\n{text}"))?;
    }
    ensure(text.contains("# TYPE matrix_peek_driver_batches counter"), "driver stats too")?;
    let (_, _, text) = pair.api2.metrics().await?;
    for line in ["matrix_peek_inbound_live_peeks 1", "matrix_peek_inbound_peeks_granted_total 1"] {
        ensure(text.lines().any(|l| l == line), format!("hs2 /metrics has {line:?}:\n{text}"))?;
    }
    ensure(
        log_has(&s1, &format!("sent PUT {room} peek_id={peek_id} to {}", pair.hs2.addr)),
        "hs1 sent that PUT",
    )?;

    // Events on hs2 are relayed to hs1 (R39).
    let mut sent = Vec::new();
    for text in ["one", "two"] {
        let (status, body) = pair.api2.send(&room, text).await?;
        ensure(status == 200, format!("event sent: {body}"))?;
        ensure(
            body["relayed_to"] == serde_json::json!([[pair.hs1.addr, "200"]]),
            format!("relayed to hs1 only: {body}"),
        )?;
        sent.push(body["event_id"].clone());
    }
    let key = room.to_string();
    pair.api1
        .wait_for(WAIT, "hs1 holds both events", |s| {
            s["received"][&key] == Value::Array(sent.clone())
        })
        .await?;

    // kill -9 hs1; the restarted process restores the peek from SQLite (R59).
    pair.kill_and_restart_hs1().await?;
    let s1 = pair
        .api1
        .wait_for(WAIT, "peek restored", |s| {
            peeks_of(s, "local_peeks", &room).len() == 1
                && peeks_of(s, "outbound", &room)
                    .first()
                    .is_some_and(|p| p["state"] == "Established")
        })
        .await?;
    ensure(log_has(&s1, "restored 1 local"), "the restart loaded the stored peek")?;
    ensure(peeks_of(&s1, "local_peeks", &room)[0]["user_id"] == alice.as_str(), "alice's peek")?;
    let (_, body) = pair.api2.send(&room, "after the restart").await?;
    let third = body["event_id"].clone();
    pair.api1
        .wait_for(WAIT, "relays reach the restarted hs1", |s| {
            s["received"][&key] == Value::Array(vec![third.clone()])
        })
        .await?;

    // Unpeek: the federated peek lingers 200 ms, then hs1 DELETEs it on hs2 (R55).
    #[allow(clippy::disallowed_methods)] // the test measures the linger; no machine sees it
    let unpeeked_at = tokio::time::Instant::now();
    let (status, body) = pair.api1.unpeek(&alice, ALICE_DEVICE, &room).await?;
    ensure(status == 200 && body == serde_json::json!({}), format!("unpeek: {status} {body}"))?;
    let s2 = pair
        .api2
        .wait_for(WAIT, "hs2's inbound peek deleted", |s| peeks_of(s, "inbound", &room).is_empty())
        .await?;
    ensure(
        unpeeked_at.elapsed() >= Duration::from_millis(LINGER_MS * 3 / 4),
        format!("the DELETE waited for the linger ({:?})", unpeeked_at.elapsed()),
    )?;
    ensure(
        log_has(&s2, &format!("got DELETE {room} peek_id={peek_id} from {} -> 200", pair.hs1.addr)),
        "hs2 got the DELETE",
    )?;
    pair.api1
        .wait_for(WAIT, "hs1 forgot the outbound peek", |s| {
            peeks_of(s, "outbound", &room).is_empty()
        })
        .await?;
    let (_, body) = pair.api2.send(&room, "nobody peeks").await?;
    ensure(
        body["relayed_to"] == serde_json::json!([]),
        format!("no relay after the DELETE: {body}"),
    )
}

/// R40, R43, R54: the room stops being world_readable; hs2 expires the inbound peek and tells
/// hs1 in `expired_peeks`; hs1's peek on the room ends.
async fn expiry(pair: &mut Pair) -> Result<(), String> {
    let (room, _) = create_room(&pair.api2, "gallery", true).await?;
    let alice = alice(pair);
    let (status, body) =
        pair.api1.peek(&alice, ALICE_DEVICE, <&RoomOrAliasId>::from(&*room)).await?;
    ensure(
        status == 404,
        format!("a room id alone gives no server to peek through (R46): {status} {body}"),
    )?;
    ensure(body["errcode"] == "M_NOT_FOUND", format!("{body}"))?;
    // With `servers` the peek works.
    let path = matrix_peek::wire::ClientPrefix::V3.peek_path((&*room).into());
    let servers = serde_json::json!({ "servers": [pair.hs2.addr] }).to_string();
    let headers = [(client::USER_HEADER, alice.as_str()), (client::DEVICE_HEADER, ALICE_DEVICE)];
    let (status, body) = pair.api1.raw("POST", &path, &headers, servers.into_bytes()).await?;
    ensure(status == 200, format!("peek via servers: {status} {body}"))?;
    let s2 = pair.api2.state().await?;
    ensure(peeks_of(&s2, "inbound", &room).len() == 1, "hs2 has the peek")?;

    let (status, _) = pair.api2.set_world_readable(&room, false).await?;
    ensure(status == 200, "visibility changed")?;
    let s2 = pair.api2.state().await?;
    ensure(peeks_of(&s2, "inbound", &room).is_empty(), "hs2 expired the peek at once (R40)")?;
    let s1 = pair
        .api1
        .wait_for(WAIT, "hs1 got expired_peeks and ended the peek", |s| {
            log_has(s, &format!("got expired_peeks {room}"))
                && peeks_of(s, "local_peeks", &room).is_empty()
        })
        .await?;
    ensure(log_has(&s1, "got expired_peeks"), "expired_peeks arrived (R54)")?;
    let s2 = pair.api2.state().await?;
    ensure(
        log_has(&s2, &format!("sent expired_peeks to {}", pair.hs1.addr)),
        "hs2 sent expired_peeks (R43)",
    )
}
