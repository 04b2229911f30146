//! Two homeservers peeking over real HTTP on loopback: matrix-peek's [`Driver`] with the
//! `matrix-peek-sqlite` store, axum on tokio, and reqwest between the servers.
//!
//! ```sh
//! cargo run -p http-pair                                   # the whole story in one process, ~3 s
//! cargo run -p http-pair -- serve --db a.db --port 8001    # one server, until Ctrl-C
//! ```
//!
//! The story: `hs2` creates a `world_readable` room `#lobby`; alice on `hs1` peeks it by alias
//! (`hs1` resolves the alias through `hs2`'s directory and `PUT`s a federated peek); `hs2`'s
//! new events are relayed to `hs1` by `/send`; `hs1` restarts and restores the peek from SQLite;
//! alice unpeeks and, after the 200 ms linger, `hs1` `DELETE`s the federated peek; alice peeks
//! again, `hs2` makes the room private and tells `hs1` in `expired_peeks`, and her peek ends.
//!
//! **A demo, not a homeserver**: no signatures anywhere (the origin is a plain header), no real
//! auth (the user is a plain header), rooms are an in-memory toy. See the library's `shim`
//! module (`src/shim.rs`), which this binary and `tests/http_pair.rs` share.
//!
//! [`Driver`]: matrix_peek::Driver

use std::path::PathBuf;
use std::time::Duration;

use http_pair::api::Api;
use http_pair::shim::{self, Running, ShimConfig};
use ruma_common::{OwnedRoomAliasId, OwnedRoomId};
use serde_json::Value;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        if let Err(e) = shim::serve_main(&args[1..]) {
            eprintln!("http_pair serve: {e}");
            std::process::exit(2);
        }
        return;
    }
    let dir = std::env::temp_dir().join(format!("matrix-peek-http-pair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let result = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), story(&dir)).await });
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(Ok(())) => println!("\ndone: every step behaved as described"),
        Ok(Err(e)) => {
            eprintln!("\nfailed: {e}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("\nfailed: the story did not finish within 30 s");
            std::process::exit(1);
        }
    }
}

/// Both homeservers run with `hs.toml` (next to this crate's `Cargo.toml`), on their own
/// database and port.
fn config(db: PathBuf, port: u16) -> ShimConfig {
    let mut config = ShimConfig::from_toml(include_str!("../hs.toml")).expect("hs.toml parses");
    config.db = db;
    config.port = port;
    config
}

fn step(text: &str) {
    println!("\n== {text}");
}

async fn story(dir: &std::path::Path) -> Result<(), String> {
    let boxed = |e: Box<dyn std::error::Error + Send + Sync>| e.to_string();
    step("start two homeservers on 127.0.0.1 (ports picked by the OS)");
    let hs1 = shim::start(config(dir.join("hs1.db"), 0)).await.map_err(boxed)?;
    let hs2 = shim::start(config(dir.join("hs2.db"), 0)).await.map_err(boxed)?;
    let (api1, api2) = (Api::new(hs1.addr.to_string()), Api::new(hs2.addr.to_string()));
    let alice = format!("@alice:{}", hs1.app.name);

    step("hs2 creates a world_readable room #lobby");
    let (_, created) = api2.create_room("lobby", true).await?;
    let room_id: OwnedRoomId = json_id(&created["room_id"])?;
    let alias: OwnedRoomAliasId = json_id(&created["alias"])?;
    println!("room {room_id}, alias {alias}");

    step(
        "alice on hs1 peeks #lobby by alias: hs1 asks hs2's directory, then PUTs a federated peek",
    );
    let (status, body) = api1.peek(&alice, "PHONE", (&*alias).into()).await?;
    println!("POST /peek -> {status} {body}");
    expect(status == 200, "the peek is granted")?;

    step("hs2 sends two events; each is relayed to hs1 by /send");
    for text in ["hello, peekers", "second message"] {
        let (_, sent) = api2.send(&room_id, text).await?;
        println!("sent {} -> relayed to {}", sent["event_id"], sent["relayed_to"]);
    }
    let room_key = room_id.to_string();
    let state1 = api1
        .wait_for(Duration::from_secs(5), "two events relayed", |s| {
            s["received"][&room_key].as_array().is_some_and(|e| e.len() == 2)
        })
        .await?;
    println!("hs1 received {}", state1["received"][&room_key]);
    println!("hs1 outbound {}", state1["outbound"]);
    println!("hs2 inbound {}", api2.state().await?["inbound"]);

    step("hs1 restarts on the same port and restores alice's peek from SQLite");
    let port = hs1.addr.port();
    hs1.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let hs1 = restart(dir, port).await?;
    let state1 = api1
        .wait_for(Duration::from_secs(5), "peek restored", |s| {
            s["local_peeks"].as_array().is_some_and(|p| p.len() == 1)
                && s["outbound"][0]["state"] == "Established"
        })
        .await?;
    println!("hs1 local peeks after restart {}", state1["local_peeks"]);

    step("alice unpeeks; after the 200 ms linger hs1 DELETEs the federated peek on hs2");
    let (status, _) = api1.unpeek(&alice, "PHONE", &room_id).await?;
    expect(status == 200, "the unpeek is accepted")?;
    api2.wait_for(Duration::from_secs(5), "inbound peek deleted", |s| {
        s["inbound"].as_array().is_some_and(Vec::is_empty)
    })
    .await?;
    let log = api2.state().await?["log"].clone();
    let deletes: Vec<&Value> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l.as_str().is_some_and(|l| l.contains("got DELETE")))
        .collect();
    println!("hs2 saw {deletes:?}");

    step(
        "alice peeks again; hs2 makes the room private: hs2 expires the peek and tells hs1 in expired_peeks",
    );
    let (status, _) = api1.peek(&alice, "PHONE", (&*alias).into()).await?;
    expect(status == 200, "the second peek is granted")?;
    let (status, _) = api2.set_world_readable(&room_id, false).await?;
    expect(status == 200, "the visibility change is accepted")?;
    api1.wait_for(Duration::from_secs(5), "hs1 ended alice's peek", |s| {
        s["local_peeks"].as_array().is_some_and(Vec::is_empty)
    })
    .await?;

    hs1.stop();
    hs2.stop();
    Ok(())
}

async fn restart(dir: &std::path::Path, port: u16) -> Result<Running, String> {
    // The old listener is closed once its task is aborted; retry briefly while it goes away.
    for _ in 0..40 {
        match shim::start(config(dir.join("hs1.db"), port)).await {
            Ok(running) => return Ok(running),
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    Err(format!("could not rebind port {port}"))
}

fn json_id<T: TryFrom<String>>(value: &Value) -> Result<T, String> {
    value
        .as_str()
        .map(str::to_owned)
        .and_then(|s| T::try_from(s).ok())
        .ok_or_else(|| format!("not an id: {value}"))
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(format!("expected: {what}")) }
}
