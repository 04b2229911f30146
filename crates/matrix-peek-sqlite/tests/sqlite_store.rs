//! [`SqliteStore`] against the storage contract: matrix-peek's store conformance checks, the
//! table layout, all-or-nothing batches, and a crash test that `SIGKILL`s a writer process
//! between (and during) saves. The schema's versions and migrations are in `tests/schema.rs`.
//!
//! The crash test re-executes this test binary as the writer: `current_exe()` with
//! `--exact batches_written_by_the_crash_writer_load_whole` and the environment variable
//! `SQLITE_CRASH_CHILD_DB` set. Without that variable the same test writes a few batches
//! in-process and checks them, so it is a real test either way.

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use futures::executor::block_on;
use matrix_peek::{
    Change, InboundChange, InboundKey, InboundRecord, LocalChange, LocalRecord, OutboundChange,
    OutboundPeekPhase, OutboundPeekRecord, OutboundRecord, PeekStore, RemoteRoomChange,
    RemoteRoomRecord, Snapshot, StreamPosition, Timestamp,
};
use matrix_peek_sqlite::{RECORD_VERSION, SqliteStore};
use ruma_common::{OwnedRoomId, owned_device_id, owned_server_name, owned_user_id};

const CHILD_ENV: &str = "SQLITE_CRASH_CHILD_DB";
/// Filler records per batch, so a batch is a transaction of real size (~50 statements).
const FILLER: usize = 40;

/// A fresh database path under cargo's per-target temp dir (removed first if left over).
fn fresh_db(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sqlite_store");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path =
        dir.join(format!("{name}-{}-{}.db", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

#[test]
fn sqlite_store_passes_the_store_conformance_checks() {
    // R59: what the driver persists comes back after a reopen and restores the same machine.
    let path = fresh_db("conformance");
    block_on(matrix_peek::testing::store_conformance(|| {
        let path = path.clone();
        async move { SqliteStore::open(&path).expect("open the same file each time") }
    }));
}

#[test]
fn rows_are_keyed_by_the_records_key_as_json_and_upserts_replace() {
    let path = fresh_db("layout");
    let store = SqliteStore::open(&path).unwrap();
    let record = inbound("!layout:crash.test", "p1", 1);
    block_on(store.save(&[Change::Inbound(InboundChange::Upsert(record.clone()))])).unwrap();
    let later = InboundRecord { expires_at: Timestamp::from_millis(99), ..record.clone() };
    block_on(store.save(&[Change::Inbound(InboundChange::Upsert(later.clone()))])).unwrap();
    block_on(store.close()).unwrap();

    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let rows: Vec<(String, String, i64)> = conn
        .prepare("SELECT key, record, version FROM inbound_peeks")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 1, "the second upsert replaced the first");
    let key: InboundKey = serde_json::from_str(&rows[0].0).unwrap();
    assert_eq!(key, record.key());
    let stored: InboundRecord = serde_json::from_str(&rows[0].1).unwrap();
    assert_eq!(stored, later);
    assert_eq!(rows[0].2, i64::from(RECORD_VERSION), "each row carries its record format");
    for table in ["local_peeks", "outbound_peeks", "remote_rooms"] {
        let n: i64 =
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0, "{table} exists and is empty");
    }
}

#[test]
fn a_failed_batch_leaves_nothing_behind_and_the_store_goes_on() {
    // The storage contract: a batch is all or nothing. Make a batch fail half-way with a
    // trigger (added through a second connection) that aborts the write of its last change.
    let path = fresh_db("failed");
    let store = SqliteStore::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER refuse BEFORE INSERT ON remote_rooms
         BEGIN SELECT RAISE(ABORT, 'injected fault'); END;",
    )
    .unwrap();
    let batch = [
        Change::Inbound(InboundChange::Upsert(inbound("!a:crash.test", "p1", 1))),
        Change::RemoteRoom(RemoteRoomChange::Upsert(remote_room("!a:crash.test"))),
    ];
    let err = block_on(store.save(&batch)).expect_err("the second statement fails");
    assert!(err.to_string().contains("injected fault"), "{err}");
    let n: i64 = conn.query_row("SELECT count(*) FROM inbound_peeks", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "the first change of the failed batch was rolled back");
    assert_eq!(block_on(store.load()).unwrap(), Snapshot::default(), "and loads as nothing");

    // The worker survived the error: once the fault is gone, the same batch goes through.
    conn.execute_batch("DROP TRIGGER refuse").unwrap();
    block_on(store.save(&batch)).unwrap();
    let loaded = block_on(store.load()).unwrap();
    assert_eq!((loaded.inbound.len(), loaded.remote_rooms.len()), (1, 1));
}

#[test]
fn a_save_waiting_for_the_write_lock_leaves_the_caller_free() {
    // Another connection holds the write lock: the store's worker waits for it (busy timeout),
    // but the caller's future is merely pending, so its thread can do other work.
    let path = fresh_db("lock");
    let store = SqliteStore::open(&path).unwrap();
    let mut other = rusqlite::Connection::open(&path).unwrap();
    let held = other.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();

    let batch = [Change::Inbound(InboundChange::Upsert(inbound("!lock:crash.test", "p1", 1)))];
    let mut save = Box::pin(store.save(&batch));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..5 {
        assert!(save.as_mut().poll(&mut cx).is_pending(), "the lock is held: still pending");
        std::thread::sleep(Duration::from_millis(20));
    }
    held.rollback().unwrap();
    block_on(save).expect("the save goes through once the lock is released");
    assert_eq!(block_on(store.load()).unwrap().inbound.len(), 1);
}

#[test]
fn calls_from_many_threads_are_applied_one_at_a_time() {
    // `SqliteStore` is `Send + Sync`: eight threads share one store and each saves its own
    // records; every batch lands whole.
    let store = Arc::new(SqliteStore::open(fresh_db("threads")).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..10 {
                    let room = format!("!t{t}:crash.test");
                    let batch: Vec<Change> = (0..3)
                        .map(|j| {
                            Change::Inbound(InboundChange::Upsert(inbound(
                                &room,
                                &format!("p{i}-{j}"),
                                i,
                            )))
                        })
                        .collect();
                    block_on(store.save(&batch)).expect("save");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a writer thread");
    }
    assert_eq!(block_on(store.load()).unwrap().inbound.len(), 8 * 10 * 3);
}

#[test]
fn an_in_memory_store_keeps_the_contract_until_dropped() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(store.schema_version(), matrix_peek_sqlite::SCHEMA_VERSION);
    assert_eq!(store.migrated_from(), Some(0));
    block_on(store.save(&batch(0))).unwrap();
    block_on(store.save(&batch(1))).unwrap();
    assert_eq!(check_whole_batches(&block_on(store.load()).unwrap(), Some(1)), Some(1));
    block_on(store.close()).unwrap();
    let fresh = SqliteStore::open_in_memory().unwrap();
    assert_eq!(block_on(fresh.load()).unwrap(), Snapshot::default(), "each one is private");
}

/// The crash writer's entry point (see the module docs), and an in-process check of the
/// checker when run normally.
#[test]
fn batches_written_by_the_crash_writer_load_whole() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        crash_writer(Path::new(&db));
        return;
    }
    let path = fresh_db("inprocess");
    let store = SqliteStore::open(&path).unwrap();
    for i in 0..10 {
        block_on(store.save(&batch(i))).unwrap();
    }
    let snapshot = block_on(store.load()).unwrap();
    assert_eq!(check_whole_batches(&snapshot, Some(9)), Some(9));
}

#[test]
fn a_killed_writer_loses_no_acknowledged_batch_and_leaves_no_half_batch() {
    // docs/architecture.md §13.4: kill -9 the writer three times at arbitrary points; every
    // batch it acknowledged (printed after `save` returned) is there, nothing half-written is.
    let path = fresh_db("crash");
    let exe = std::env::current_exe().expect("the test binary");
    let mut last_committed: Option<u64> = None;
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args(["--exact", "batches_written_by_the_crash_writer_load_whole", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read acknowledgements on a thread, so a silent child cannot hang the test.
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.trim().parse().ok())
                    && tx.send(n).is_err()
                {
                    break;
                }
            }
        });
        let start = last_committed.map_or(0, |m| m + 1);
        // Kill at a different depth each round: after 5, 20 and 40 acknowledged batches.
        let kill_after = [5, 20, 40][round];
        let mut acked = None;
        while let Ok(n) = rx.recv_timeout(Duration::from_secs(30)) {
            acked = Some(n);
            if n >= start + kill_after {
                break;
            }
        }
        child.kill().expect("SIGKILL the writer");
        let _ = child.wait();
        let _ = reader.join();
        let acked = acked.expect("the writer acknowledged batches");
        assert!(acked >= start + kill_after, "round {round}: the writer stopped early at {acked}");

        let store = SqliteStore::open(&path).expect("reopen after the crash");
        let snapshot = block_on(store.load()).expect("load after the crash");
        let committed = check_whole_batches(&snapshot, Some(acked))
            .unwrap_or_else(|| panic!("round {round}: no batch survived"));
        assert!(committed >= acked, "round {round}: acknowledged batch {acked} lost");
        last_committed = Some(committed);
    }
}

/// The child: saves batch after batch, printing `ACK i` after each `save` returns, until it is
/// killed (or, as a safety net should the parent be gone, after 5 000 batches).
fn crash_writer(path: &Path) {
    let store = SqliteStore::open(path).expect("open");
    let snapshot = block_on(store.load()).expect("load");
    let first = stream_position(&snapshot).map_or(0, |m| m + 1);
    for next in first..first + 5_000 {
        block_on(store.save(&batch(next))).expect("save");
        println!("ACK {next}");
    }
}

fn room(i: u64) -> OwnedRoomId {
    format!("!b{i}:crash.test").try_into().expect("valid room id")
}

fn inbound(room_id: &str, peek_id: &str, at: u64) -> InboundRecord {
    InboundRecord {
        server: owned_server_name!("peer.test"),
        room_id: room_id.try_into().expect("valid room id"),
        peek_id: peek_id.into(),
        renewed_at: Timestamp::from_millis(at),
        expires_at: Timestamp::from_millis(at + 1000),
    }
}

fn remote_room(room_id: &str) -> RemoteRoomRecord {
    RemoteRoomRecord {
        room_id: room_id.try_into().expect("valid room id"),
        via: vec![owned_server_name!("peer.test")],
        access: None,
    }
}

/// Batch `i`: one marker record of every kind for room `!b{i}`, `FILLER` filler records, the
/// removal of batch `i - 1`'s fillers, and the stream record set to `i`.
fn batch(i: u64) -> Vec<Change> {
    let room_id = room(i);
    let mut changes = vec![
        Change::Local(LocalChange::Upsert(LocalRecord::Peek {
            user_id: owned_user_id!("@writer:crash.test"),
            device_id: owned_device_id!("DISK"),
            room_id: room_id.clone(),
            started: StreamPosition(i),
            expires_at: Timestamp::from_millis(i + 1000),
        })),
        Change::Inbound(InboundChange::Upsert(inbound(room_id.as_str(), "marker", i))),
        Change::Outbound(OutboundChange::Upsert(OutboundRecord::Peek(OutboundPeekRecord {
            room_id: room_id.clone().into(),
            server: owned_server_name!("peer.test").into(),
            peek_id: format!("o{i}").into(),
            phase: OutboundPeekPhase::Opening,
            access: None,
        }))),
        Change::RemoteRoom(RemoteRoomChange::Upsert(remote_room(room_id.as_str()))),
    ];
    for j in 0..FILLER {
        changes.push(Change::Inbound(InboundChange::Upsert(inbound(
            "!filler:crash.test",
            &format!("f{i}-{j}"),
            i,
        ))));
        if let Some(prev) = i.checked_sub(1) {
            changes.push(Change::Inbound(InboundChange::Remove(
                inbound("!filler:crash.test", &format!("f{prev}-{j}"), prev).key(),
            )));
        }
    }
    changes.push(Change::Local(LocalChange::Upsert(LocalRecord::Stream {
        position: StreamPosition(i),
        horizon: StreamPosition(0),
    })));
    changes
}

fn stream_position(snapshot: &Snapshot) -> Option<u64> {
    snapshot.local.iter().find_map(|r| match r {
        LocalRecord::Stream { position, .. } => Some(position.0),
        _ => None,
    })
}

/// Checks that the stored batches are exactly `0..=m` for the stream position `m`, each whole
/// (its four markers), with only batch `m`'s fillers. Returns `m`; panics naming what is
/// half-written. `acked` bounds the batches that may legitimately exist beyond it by a few.
fn check_whole_batches(snapshot: &Snapshot, acked: Option<u64>) -> Option<u64> {
    let m = stream_position(snapshot)?;
    if let Some(acked) = acked {
        assert!(m >= acked, "acknowledged batch {acked} is missing: stream position {m}");
    }
    let count = |pred: &dyn Fn(&OwnedRoomId) -> bool| {
        let local = snapshot.local.iter().filter(|r| match r {
            LocalRecord::Peek { room_id, .. } => pred(room_id),
            _ => false,
        });
        let inbound = snapshot.inbound.iter().filter(|r| r.peek_id == "marker" && pred(&r.room_id));
        let outbound = snapshot.outbound.iter().filter(|r| match r {
            OutboundRecord::Peek(p) => pred(&p.room_id),
            _ => false,
        });
        let remote = snapshot.remote_rooms.iter().filter(|r| pred(&r.room_id));
        [local.count(), inbound.count(), outbound.count(), remote.count()]
    };
    for i in 0..=m {
        let r = room(i);
        assert_eq!(count(&|id| *id == r), [1, 1, 1, 1], "batch {i} is not whole");
    }
    let total = usize::try_from(m + 1).expect("small");
    assert_eq!(count(&|_| true), [total; 4], "records of a batch beyond {m} were stored");
    let mut fillers: Vec<&str> = snapshot
        .inbound
        .iter()
        .filter(|r| r.peek_id != "marker")
        .map(|r| r.peek_id.as_str())
        .collect();
    fillers.sort_unstable();
    let mut expected: Vec<String> = (0..FILLER).map(|j| format!("f{m}-{j}")).collect();
    expected.sort_unstable();
    assert_eq!(fillers, expected, "fillers of batch {m} only (earlier ones were removed)");
    Some(m)
}
