//! A [`PeekStore`] for [`matrix_peek`] on SQLite (rusqlite, bundled SQLite): durable peek state
//! for a homeserver, on any async runtime.
//!
//! ```
//! use futures::executor::block_on;
//! use matrix_peek::testing::{ManualClock, ScriptedTransport};
//! use matrix_peek::{Driver, DriverConfig, PeekStore, Timestamp};
//! use matrix_peek_sqlite::{SCHEMA_VERSION, SqliteStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("matrix-peek-sqlite-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! // Creates the file (or upgrades an older schema) and starts the store's worker thread.
//! let store = SqliteStore::open(dir.join("peeks.db"))?;
//! assert_eq!(store.schema_version(), SCHEMA_VERSION);
//! assert_eq!(store.migrated_from(), Some(0)); // a new database
//!
//! // The store is runtime-agnostic: here `block_on`, in a server tokio, async-std, smol …
//! let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000)); // yours: SystemClock
//! let transport = ScriptedTransport::new(); // yours: your federation client
//! let driver = block_on(Driver::open(DriverConfig::default(), store, transport, clock))?;
//! driver.close();
//! drop(driver); // drops the store: its worker closes the database in the background
//!
//! // `load` and `save` are plain `PeekStore` calls, answered by the worker thread.
//! let again = SqliteStore::open(dir.join("peeks.db"))?;
//! assert_eq!(again.migrated_from(), None); // already at SCHEMA_VERSION
//! let snapshot = block_on(again.load())?;
//! assert!(snapshot.local.is_empty());
//! block_on(again.close())?; // or just drop it
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Design: one worker thread per store
//!
//! rusqlite is synchronous, and the library is runtime-free (it uses `futures` only), so the
//! store neither blocks the caller's task nor depends on a runtime's blocking pool. Each
//! [`SqliteStore`] owns one dedicated OS thread (named `matrix-peek-sqlite`) that owns the
//! [`rusqlite::Connection`]. [`load`](PeekStore::load) and [`save`](PeekStore::save) send a
//! command over a channel (an unbounded `std::sync::mpsc` channel, so sending never blocks) and
//! await the answer on a [`futures::channel::oneshot`]; the only work on the caller's task is
//! cloning the batch. SQLite's own waits (an fsync, a lock held by another process, the
//! 5 s busy timeout) happen on the worker.
//!
//! * **Order.** The worker runs commands one at a time in the order they were sent, so batches
//!   are applied in call order even if callers race, and a `load` sees every `save` that
//!   returned before it was called.
//! * **Cancellation.** Dropping a `save` future does not cancel the write: once sent, the batch
//!   is committed (or fails) on the worker, all or nothing. A caller that gave up does not know
//!   which; a later `load` does.
//! * **Shutdown.** Dropping the store closes the channel; the worker finishes the commands
//!   already sent, closes the connection and exits, without the drop waiting for it.
//!   [`SqliteStore::close`] does the same but waits, and reports an error from closing.
//! * **Failure.** An error of one command (a full disk, a locked file) is returned to its caller
//!   and the worker goes on. If the worker thread itself is gone (it panicked), every call
//!   returns [`SqliteStoreError::Closed`].
//!
//! Opening ([`SqliteStore::open`]) is synchronous: it opens the file, applies pending schema
//! migrations and starts the worker, once at startup. Call it before entering the runtime or
//! from the runtime's blocking pool if an open may wait on another process's lock.
//!
//! # The storage contract, and how this store keeps it
//!
//! * **One transaction per `save`.** Every change of a batch is applied inside one
//!   `BEGIN IMMEDIATE … COMMIT`; a crash or an error before `COMMIT` leaves none of it.
//!   `IMMEDIATE` takes the write lock up front, so a batch never fails half-way on a lock
//!   upgrade.
//! * **In order, idempotent.** An upsert is `INSERT … ON CONFLICT(key) DO UPDATE`, a remove is a
//!   `DELETE` (a missing key deletes nothing), applied in the batch's order, so re-applying a
//!   batch leaves the same rows.
//! * **Durable when acknowledged.** WAL mode with `synchronous = FULL`: `save` returns only after
//!   the commit is in the WAL and fsynced, so a batch the driver acknowledged survives a
//!   `SIGKILL` and a power cut. (`NORMAL` would survive a process crash but may lose the last
//!   commits on power loss.) Where the file system cannot do WAL, SQLite keeps its rollback
//!   journal, which is as atomic and, with `FULL`, as durable.
//! * **Consistent loads.** `load` reads the four tables inside one read transaction, so it sees
//!   one committed state even while another connection writes.
//!
//! # Schema
//!
//! One table per record kind, each `(key TEXT PRIMARY KEY, record TEXT NOT NULL, version
//! INTEGER NOT NULL)`, `WITHOUT ROWID`:
//!
//! | table | key (JSON) | record (JSON) |
//! |---|---|---|
//! | `local_peeks` | [`LocalKey`](matrix_peek::LocalKey) | [`LocalRecord`](matrix_peek::LocalRecord) |
//! | `inbound_peeks` | [`InboundKey`](matrix_peek::InboundKey) | [`InboundRecord`](matrix_peek::InboundRecord) |
//! | `outbound_peeks` | [`OutboundKey`](matrix_peek::OutboundKey) | [`OutboundRecord`](matrix_peek::OutboundRecord) |
//! | `remote_rooms` | the room id | `RemoteRoomRecord` |
//!
//! The key column is the record's `key()` serialised with `serde_json`, which is deterministic
//! for these types (struct fields in declaration order, no maps), so equal keys give equal text
//! and the primary key does the deduplication. `version` is the record format
//! ([`RECORD_VERSION`]): the JSON shape of the record types. A row in a format this build does
//! not know fails the `load` with [`SqliteStoreError::UnknownRecordVersion`] instead of being
//! misread; when the library changes a record's serialised shape, [`RECORD_VERSION`] goes up and
//! rows of the older format are converted on read or by a migration.
//!
//! ## Versions and migrations
//!
//! The schema version is kept in `schema_migrations(version INTEGER PRIMARY KEY, applied_at
//! INTEGER NOT NULL)`, one row per applied migration (`applied_at` in seconds since the Unix
//! epoch, from SQLite's clock; informational). On open, every migration newer than the
//! database is applied in order, all inside one `BEGIN IMMEDIATE` transaction, so a crash
//! mid-upgrade leaves the old schema and two processes opening the same file upgrade it once.
//!
//! | version | schema |
//! |---|---|
//! | 1 | the four tables as `(key TEXT PRIMARY KEY NOT NULL, record TEXT NOT NULL) WITHOUT ROWID`, no migrations table: the layout of the template store the `http_pair` example carried before this crate |
//! | 2 | adds `schema_migrations` (recording versions 1 and 2) and each table's `version INTEGER NOT NULL DEFAULT 1` |
//!
//! A database without `schema_migrations` is new or at version 1; migration 1 is idempotent
//! (`CREATE TABLE IF NOT EXISTS`), so both upgrade the same way and keep their rows (which get
//! record format 1). A database whose schema is newer than [`SCHEMA_VERSION`] is refused with
//! [`SqliteStoreError::SchemaTooNew`] and left untouched: never a silent downgrade. Going back
//! from version 2 to code that only knows version 1 still works, as the column has a default.

#![forbid(unsafe_code)]

mod error;
mod schema;
mod worker;

use std::path::Path;
use std::sync::mpsc;

use async_trait::async_trait;
use futures::channel::oneshot;
use matrix_peek::{Change, PeekStore, Snapshot};
use rusqlite::Connection;

pub use error::SqliteStoreError;
pub use schema::{RECORD_VERSION, SCHEMA_VERSION};

use worker::Command;

/// A [`PeekStore`] in one SQLite database, served by its own worker thread (see the
/// [crate docs](crate) for the design, the schema and the storage contract).
///
/// Open it once and hand it to [`Driver::open`](matrix_peek::Driver::open). It is `Send +
/// Sync`; calls from several tasks are applied one at a time, in the order they were made.
#[derive(Debug)]
pub struct SqliteStore {
    commands: mpsc::Sender<Command>,
    schema_version: u32,
    migrated_from: Option<u32>,
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path`, switches it to WAL mode with
    /// `synchronous = FULL`, applies pending schema migrations and starts the worker thread.
    ///
    /// Blocks for the open and the migrations (including up to 5 s waiting for another
    /// process's write lock). Fails with [`SqliteStoreError::SchemaTooNew`] on a database
    /// written by a newer version of this crate, leaving it unchanged.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, SqliteStoreError> {
        let conn = Connection::open(path)?;
        // `journal_mode` answers with the mode it ended up in: WAL needs a file system with
        // shared memory; elsewhere SQLite keeps the rollback journal, also atomic and durable.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        SqliteStore::start(conn)
    }

    /// A store in a private in-memory database: empty on open, gone on drop. For tests and
    /// tools; it has the same schema and behaviour as a file, without the durability.
    pub fn open_in_memory() -> Result<SqliteStore, SqliteStoreError> {
        SqliteStore::start(Connection::open_in_memory()?)
    }

    /// Configures the connection, migrates the schema and hands the connection to a new worker.
    fn start(mut conn: Connection) -> Result<SqliteStore, SqliteStoreError> {
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let migration = schema::migrate(&mut conn)?;
        let (commands, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("matrix-peek-sqlite".to_owned())
            .spawn(move || worker::run(conn, receiver))
            .map_err(SqliteStoreError::Spawn)?;
        Ok(SqliteStore {
            commands,
            schema_version: migration.version,
            migrated_from: migration.migrated_from,
        })
    }

    /// The database's schema version, which after a successful open is always
    /// [`SCHEMA_VERSION`].
    pub fn schema_version(&self) -> u32 {
        self.schema_version
    }

    /// The schema version this open upgraded the database from: `Some(0)` for a new database,
    /// `Some(1)` for one written by the version 1 layout, `None` if it was already current.
    pub fn migrated_from(&self) -> Option<u32> {
        self.migrated_from
    }

    /// Stops the worker after the commands already sent and closes the database, waiting for
    /// both. Dropping the store does the same without waiting.
    pub async fn close(self) -> Result<(), SqliteStoreError> {
        self.call(Command::Close).await
    }

    /// Sends one command to the worker and awaits its answer.
    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, SqliteStoreError>>) -> Command,
    ) -> Result<T, SqliteStoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).map_err(|_| SqliteStoreError::Closed)?;
        // A dropped reply sender means the worker died mid-command.
        answer.await.map_err(|_| SqliteStoreError::Closed)?
    }
}

#[async_trait]
impl PeekStore for SqliteStore {
    type Error = SqliteStoreError;

    /// Every record, read in one transaction on the worker thread.
    async fn load(&self) -> Result<Snapshot, SqliteStoreError> {
        self.call(Command::Load).await
    }

    /// Applies the batch in one `BEGIN IMMEDIATE … COMMIT` on the worker thread; returns once
    /// it is committed and synced.
    async fn save(&self, changes: &[Change]) -> Result<(), SqliteStoreError> {
        let changes = changes.to_vec();
        self.call(|reply| Command::Save(changes, reply)).await
    }
}
