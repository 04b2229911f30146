//! A [`PeekStore`] on SQLite (rusqlite, bundled SQLite): a template for a real host.
//!
//! Shared by `examples/http_pair.rs` (a plain `mod sqlite_store;`) and `tests/sqlite_store.rs`
//! (`#[path = "../examples/http_pair/sqlite_store.rs"] mod sqlite_store;`), so the store the
//! example runs is exactly the one the conformance and crash tests check.
//!
//! # Schema
//!
//! One table per record kind, each `(key TEXT PRIMARY KEY, record TEXT NOT NULL)`:
//!
//! | table | key (JSON) | record (JSON) |
//! |---|---|---|
//! | `local_peeks` | [`LocalKey`](matrix_peek::LocalKey) | [`LocalRecord`](matrix_peek::LocalRecord) |
//! | `inbound_peeks` | [`InboundKey`](matrix_peek::InboundKey) | [`InboundRecord`](matrix_peek::InboundRecord) |
//! | `outbound_peeks` | [`OutboundKey`](matrix_peek::OutboundKey) | [`OutboundRecord`](matrix_peek::OutboundRecord) |
//! | `remote_rooms` | the room id | [`RemoteRoomRecord`](matrix_peek::RemoteRoomRecord) |
//!
//! The key column is the record's `key()` serialised with `serde_json`, which is deterministic
//! for these types (struct fields in declaration order, no maps), so equal keys give equal text
//! and the primary key does the deduplication.
//!
//! # The storage contract, and how this file keeps it
//!
//! * **One transaction per `save`.** Every change of a batch is applied inside one
//!   `BEGIN IMMEDIATE … COMMIT`; a crash (or an error) before `COMMIT` leaves none of it.
//! * **In order, idempotent.** An upsert is `INSERT … ON CONFLICT(key) DO UPDATE`, a remove is a
//!   `DELETE` (a missing key deletes nothing), applied in the batch's order, so re-applying a
//!   batch leaves the same rows.
//! * **Durable when acknowledged.** WAL mode with `synchronous = FULL`: `save` returns only after
//!   the commit is in the WAL and fsynced, so a batch the driver acknowledged survives a
//!   `SIGKILL` and a power cut. (`NORMAL` would survive a process crash but may lose the last
//!   commits on power loss.)
//! * **Schema on open.** `CREATE TABLE IF NOT EXISTS`; opening the same file again sees
//!   everything committed before.
//!
//! # Blocking calls in an async trait
//!
//! rusqlite is synchronous: `load` and `save` below block the calling task for the duration of
//! one SQLite transaction (well under a millisecond for the batches the driver writes, plus one
//! fsync). That is fine for a template and for a small server. A busy host moves the work to
//! the blocking pool instead, keeping the same two functions:
//!
//! ```ignore
//! // struct SqliteStore { conn: Arc<Mutex<Connection>> }
//! async fn save(&self, changes: &[Change]) -> Result<(), SqliteStoreError> {
//!     let conn = Arc::clone(&self.conn);
//!     let changes = changes.to_vec();
//!     tokio::task::spawn_blocking(move || save_batch(&mut conn.lock()?, &changes))
//!         .await
//!         .map_err(|_| SqliteStoreError::Poisoned)?
//! }
//! ```
//!
//! The driver never calls two `save`s at once, so one connection behind a mutex is enough.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use matrix_peek::RemoteRoomChange;
use matrix_peek::{Change, InboundChange, LocalChange, OutboundChange, PeekStore, Snapshot};
use rusqlite::{Connection, Transaction, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The four tables, one per record kind.
const TABLES: [&str; 4] = ["local_peeks", "inbound_peeks", "outbound_peeks", "remote_rooms"];

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum SqliteStoreError {
    /// SQLite refused (I/O error, full disk, locked database, corrupt file …).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row does not parse as a record (a hand-edited or foreign database).
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A thread panicked while holding the connection.
    #[error("the connection lock is poisoned")]
    Poisoned,
}

/// A [`PeekStore`] in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, switches it to WAL mode and creates the
    /// schema if it is missing.
    pub fn open(path: &Path) -> Result<Self, SqliteStoreError> {
        let conn = Connection::open(path)?;
        // `journal_mode` answers with the mode it ended up in; WAL needs a real file.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        debug_assert!(mode.eq_ignore_ascii_case("wal"), "journal mode {mode}");
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;",
        )?;
        for table in TABLES {
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                     key    TEXT PRIMARY KEY NOT NULL,
                     record TEXT NOT NULL
                 ) WITHOUT ROWID;"
            ))?;
        }
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    /// Every record, table by table (the blocking half of [`PeekStore::load`]).
    pub fn load_blocking(&self) -> Result<Snapshot, SqliteStoreError> {
        let conn = self.conn.lock().map_err(|_| SqliteStoreError::Poisoned)?;
        Ok(Snapshot {
            local: read_table(&conn, "local_peeks")?,
            inbound: read_table(&conn, "inbound_peeks")?,
            outbound: read_table(&conn, "outbound_peeks")?,
            remote_rooms: read_table(&conn, "remote_rooms")?,
        })
    }

    /// Applies one batch in one transaction (the blocking half of [`PeekStore::save`]).
    pub fn save_blocking(&self, changes: &[Change]) -> Result<(), SqliteStoreError> {
        let mut conn = self.conn.lock().map_err(|_| SqliteStoreError::Poisoned)?;
        // IMMEDIATE takes the write lock up front, so the batch never fails half-way on a
        // lock upgrade. Dropping `tx` without `commit` (any `?` below) rolls everything back.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for change in changes {
            apply(&tx, change)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// One change, as an upsert or delete on its kind's table.
fn apply(tx: &Transaction<'_>, change: &Change) -> Result<(), SqliteStoreError> {
    match change {
        Change::Local(LocalChange::Upsert(r)) => upsert(tx, "local_peeks", &r.key(), r),
        Change::Local(LocalChange::Remove(k)) => remove(tx, "local_peeks", k),
        Change::Inbound(InboundChange::Upsert(r)) => upsert(tx, "inbound_peeks", &r.key(), r),
        Change::Inbound(InboundChange::Remove(k)) => remove(tx, "inbound_peeks", k),
        Change::Outbound(OutboundChange::Upsert(r)) => upsert(tx, "outbound_peeks", &r.key(), r),
        Change::Outbound(OutboundChange::Remove(k)) => remove(tx, "outbound_peeks", k),
        Change::RemoteRoom(RemoteRoomChange::Upsert(r)) => upsert(tx, "remote_rooms", &r.key(), r),
        Change::RemoteRoom(RemoteRoomChange::Remove(k)) => remove(tx, "remote_rooms", k),
    }
}

fn upsert<K: Serialize, R: Serialize>(
    tx: &Transaction<'_>,
    table: &str,
    key: &K,
    record: &R,
) -> Result<(), SqliteStoreError> {
    let sql = format!(
        "INSERT INTO {table} (key, record) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET record = excluded.record"
    );
    tx.prepare_cached(&sql)?
        .execute(params![serde_json::to_string(key)?, serde_json::to_string(record)?])?;
    Ok(())
}

fn remove<K: Serialize>(
    tx: &Transaction<'_>,
    table: &str,
    key: &K,
) -> Result<(), SqliteStoreError> {
    let sql = format!("DELETE FROM {table} WHERE key = ?1");
    tx.prepare_cached(&sql)?.execute(params![serde_json::to_string(key)?])?;
    Ok(())
}

fn read_table<R: DeserializeOwned>(
    conn: &Connection,
    table: &str,
) -> Result<Vec<R>, SqliteStoreError> {
    let mut stmt = conn.prepare(&format!("SELECT record FROM {table} ORDER BY key"))?;
    let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(serde_json::from_str(&row?)?);
    }
    Ok(out)
}

#[async_trait]
impl PeekStore for SqliteStore {
    type Error = SqliteStoreError;

    async fn load(&self) -> Result<Snapshot, SqliteStoreError> {
        // Blocking inside async: see the module docs for the `spawn_blocking` version.
        self.load_blocking()
    }

    async fn save(&self, changes: &[Change]) -> Result<(), SqliteStoreError> {
        // Blocking inside async: see the module docs for the `spawn_blocking` version.
        self.save_blocking(changes)
    }
}
