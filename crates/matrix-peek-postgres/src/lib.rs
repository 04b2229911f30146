//! A [`PeekStore`] for [`matrix_peek`] on PostgreSQL ([`tokio_postgres`]): durable peek state
//! for a homeserver whose workers share one database.
//!
//! ```no_run
//! use matrix_peek::PeekStore;
//! use matrix_peek_postgres::{PostgresStore, SCHEMA_VERSION};
//!
//! # async fn run() -> Result<(), matrix_peek_postgres::PostgresStoreError> {
//! // Inside a tokio runtime: the connection's task is spawned on it.
//! let sync = PostgresStore::connect("host=/run/postgresql dbname=synapse", "sync").await?;
//! let federation = PostgresStore::connect("host=/run/postgresql dbname=synapse", "fed1").await?;
//! assert_eq!(sync.schema_version(), SCHEMA_VERSION);
//! // Each worker sees only its own records.
//! let snapshot = federation.load().await?;
//! # let _ = snapshot;
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! A [`PostgresStore`] owns one [`tokio_postgres::Client`] behind a [`tokio::sync::Mutex`]
//! (a transaction needs the client exclusively, and [`PeekStore::save`] takes `&self`). The
//! connection's I/O runs on a task spawned on the current tokio runtime by
//! [`PostgresStore::connect`]; the store must be used while that runtime runs. Calls from
//! several tasks are applied one at a time, in the order they take the lock.
//!
//! * **Namespaces.** Every row carries the store's namespace, and every statement filters by
//!   it, so the workers of one homeserver (a sync worker, federation workers …) keep
//!   independent snapshots in one database. Two stores with the same namespace share one
//!   snapshot; give every worker its own.
//! * **Cancellation.** Dropping a `save` future mid-batch drops its transaction, which
//!   `tokio_postgres` rolls back: the batch is all or nothing either way.
//! * **Failure.** An error of one call is returned to its caller; if the connection is lost,
//!   every later call fails with [`PostgresStoreError::Postgres`] (connect again).
//!
//! # The storage contract, and how this store keeps it
//!
//! * **One transaction per `save`.** Every change of a batch is applied between `BEGIN` and
//!   `COMMIT`; an error (or a crash) before `COMMIT` leaves none of it.
//! * **In order, idempotent.** An upsert is `INSERT … ON CONFLICT (namespace, kind, key) DO
//!   UPDATE`, a remove is a `DELETE` (a missing key deletes nothing), applied in the batch's
//!   order, so re-applying a batch leaves the same rows.
//! * **Durable when acknowledged.** `save` returns after `COMMIT` succeeded, which with the
//!   server's default `synchronous_commit = on` means the commit is flushed to the WAL.
//! * **Consistent loads.** `load` is one `SELECT`, which sees one committed state.
//!
//! # Schema
//!
//! One table of records for every namespace and kind:
//!
//! ```sql
//! CREATE TABLE matrix_peek_records (
//!     namespace TEXT    NOT NULL,
//!     kind      TEXT    NOT NULL,  -- local | inbound | outbound | remote_room
//!     key       TEXT    NOT NULL,  -- the record's key() as serde_json text
//!     record    JSONB   NOT NULL,  -- the record, serde_json
//!     version   INTEGER NOT NULL DEFAULT 1,  -- the record format, RECORD_VERSION
//!     PRIMARY KEY (namespace, kind, key)
//! );
//! ```
//!
//! The key column is the record's `key()` serialised with `serde_json`, which is deterministic
//! for these types (struct fields in declaration order, no maps), so equal keys give equal text
//! and the primary key does the deduplication. `version` is the record format
//! ([`RECORD_VERSION`]); a row in a format this build does not know fails the `load` with
//! [`PostgresStoreError::UnknownRecordVersion`] instead of being misread.
//!
//! ## Versions and migrations
//!
//! The schema version is kept in `matrix_peek_schema_migrations(version INTEGER PRIMARY KEY,
//! applied_at TIMESTAMPTZ)`, one row per applied migration. On connect, every migration newer
//! than the database is applied in order, all in one transaction that first takes a
//! transaction-scoped advisory lock, so a failure mid-upgrade leaves the old schema and workers
//! connecting at once upgrade it once.
//!
//! | version | schema |
//! |---|---|
//! | 1 | `matrix_peek_schema_migrations`, and `matrix_peek_records` without `version` |
//! | 2 | adds `matrix_peek_records.version INTEGER NOT NULL DEFAULT 1` |
//! | 3 | adds `matrix_peek_epochs(namespace TEXT PRIMARY KEY, epoch BIGINT)` ([`PostgresStore::next_epoch`]) |
//!
//! A database whose schema is newer than [`SCHEMA_VERSION`] is refused with
//! [`PostgresStoreError::SchemaTooNew`] and left untouched: never a silent downgrade.

#![forbid(unsafe_code)]

mod error;
mod schema;

use async_trait::async_trait;
use matrix_peek::{
    Change, InboundChange, LocalChange, OutboundChange, PeekStore, RemoteRoomChange, Snapshot,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio_postgres::types::Json;
use tokio_postgres::{Client, NoTls, Statement, Transaction};

pub use error::PostgresStoreError;
pub use schema::{EPOCHS_TABLE, MIGRATIONS_TABLE, RECORD_VERSION, RECORDS_TABLE, SCHEMA_VERSION};

/// The `kind` column of local peek records.
const LOCAL: &str = "local";
/// The `kind` column of inbound peek records.
const INBOUND: &str = "inbound";
/// The `kind` column of outbound peek records.
const OUTBOUND: &str = "outbound";
/// The `kind` column of remote room records.
const REMOTE_ROOM: &str = "remote_room";

/// A [`PeekStore`] in one namespace of a PostgreSQL database (see the [crate docs](crate) for
/// the design, the schema and the storage contract).
///
/// Connect it once and hand it to [`Driver::open`](matrix_peek::Driver::open). It is `Send +
/// Sync`.
#[derive(Debug)]
pub struct PostgresStore {
    conn: Mutex<Connection>,
    namespace: String,
    migrated_from: Option<i32>,
}

/// The client and its prepared statements.
#[derive(Debug)]
struct Connection {
    client: Client,
    upsert: Statement,
    remove: Statement,
    load: Statement,
}

impl PostgresStore {
    /// Connects to the database named by `conn_str` (a `tokio_postgres` connection string or
    /// URL, without TLS), applies pending schema migrations and prepares the store for
    /// `namespace`.
    ///
    /// Must be called inside a tokio runtime: the connection's task is spawned on it. Fails
    /// with [`PostgresStoreError::SchemaTooNew`] on a database written by a newer version of
    /// this crate, leaving it unchanged, and with [`PostgresStoreError::EmptyNamespace`] for an
    /// empty `namespace`.
    pub async fn connect(
        conn_str: &str,
        namespace: impl Into<String>,
    ) -> Result<PostgresStore, PostgresStoreError> {
        let namespace = namespace.into();
        if namespace.is_empty() {
            return Err(PostgresStoreError::EmptyNamespace);
        }
        let (client, connection) = tokio_postgres::connect(conn_str, NoTls).await?;
        // The connection task ends when the client is dropped (or the server goes away); its
        // error then surfaces on the client's next call.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        PostgresStore::with_client(client, namespace).await
    }

    /// Uses an already connected `client` (whose connection task the caller runs): migrates
    /// the schema and prepares the store for `namespace`, like [`connect`](Self::connect).
    pub async fn with_client(
        mut client: Client,
        namespace: impl Into<String>,
    ) -> Result<PostgresStore, PostgresStoreError> {
        let namespace = namespace.into();
        if namespace.is_empty() {
            return Err(PostgresStoreError::EmptyNamespace);
        }
        let migration = schema::migrate(&mut client).await?;
        let upsert = client
            .prepare(&format!(
                "INSERT INTO {RECORDS_TABLE} (namespace, kind, key, record, version)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (namespace, kind, key)
                 DO UPDATE SET record = EXCLUDED.record, version = EXCLUDED.version"
            ))
            .await?;
        let remove = client
            .prepare(&format!(
                "DELETE FROM {RECORDS_TABLE} WHERE namespace = $1 AND kind = $2 AND key = $3"
            ))
            .await?;
        let load = client
            .prepare(&format!(
                "SELECT kind, version, record FROM {RECORDS_TABLE}
                 WHERE namespace = $1 ORDER BY kind, key"
            ))
            .await?;
        Ok(PostgresStore {
            conn: Mutex::new(Connection { client, upsert, remove, load }),
            namespace,
            migrated_from: migration.migrated_from,
        })
    }

    /// The namespace this store reads and writes.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The database's schema version, which after a successful connect is always
    /// [`SCHEMA_VERSION`].
    pub fn schema_version(&self) -> i32 {
        SCHEMA_VERSION
    }

    /// The schema version this connect upgraded the database from: `Some(0)` for a new
    /// database, `Some(1)` for one at version 1, `None` if it was already current.
    pub fn migrated_from(&self) -> Option<i32> {
        self.migrated_from
    }

    /// A new routing epoch for this namespace's worker (`matrix_peek::Seq::epoch`, given to
    /// `SyncSide::restore` / `FederationSide::restore`): greater than every epoch this call
    /// returned for the namespace before, and at least `at_least` (pass the wall-clock
    /// milliseconds at start, so epochs also grow across a database that was reset). The
    /// namespace's last epoch is kept in [`EPOCHS_TABLE`] and raised in one statement, so a
    /// worker whose clock stepped back across a restart still gets a larger epoch, and its
    /// messages are not mistaken for old ones.
    ///
    /// Epochs are PostgreSQL `BIGINT`s: an `at_least` above `i64::MAX`, or a namespace whose
    /// epoch already reached it, fails with [`PostgresStoreError::EpochExhausted`] rather
    /// than handing out an epoch that does not grow.
    pub async fn next_epoch(&self, at_least: u64) -> Result<u64, PostgresStoreError> {
        let exhausted = || PostgresStoreError::EpochExhausted { namespace: self.namespace.clone() };
        let at_least = i64::try_from(at_least).map_err(|_| exhausted())?;
        let conn = self.conn.lock().await;
        // No row back: the stored epoch is already the largest `BIGINT`.
        let row = conn
            .client
            .query_opt(
                &format!(
                    "INSERT INTO {EPOCHS_TABLE} AS e (namespace, epoch) VALUES ($1, $2)
                     ON CONFLICT (namespace) DO UPDATE
                     SET epoch = GREATEST(e.epoch + 1, EXCLUDED.epoch)
                     WHERE e.epoch < {max}
                     RETURNING epoch",
                    max = i64::MAX
                ),
                &[&self.namespace, &at_least],
            )
            .await?
            .ok_or_else(exhausted)?;
        let epoch: i64 = row.try_get(0)?;
        u64::try_from(epoch).map_err(|_| exhausted())
    }
}

#[async_trait]
impl PeekStore for PostgresStore {
    type Error = PostgresStoreError;

    /// Every record of this store's namespace, read by one `SELECT`.
    async fn load(&self) -> Result<Snapshot, PostgresStoreError> {
        let conn = self.conn.lock().await;
        let rows = conn.client.query(&conn.load, &[&self.namespace]).await?;
        let mut snapshot = Snapshot::default();
        for row in rows {
            let kind: &str = row.try_get(0)?;
            let version: i32 = row.try_get(1)?;
            if version != RECORD_VERSION {
                return Err(PostgresStoreError::UnknownRecordVersion {
                    kind: kind.to_owned(),
                    found: version,
                    supported: RECORD_VERSION,
                });
            }
            let Json(record): Json<serde_json::Value> = row.try_get(2)?;
            match kind {
                LOCAL => snapshot.local.push(parse(record)?),
                INBOUND => snapshot.inbound.push(parse(record)?),
                OUTBOUND => snapshot.outbound.push(parse(record)?),
                REMOTE_ROOM => snapshot.remote_rooms.push(parse(record)?),
                other => return Err(PostgresStoreError::UnknownKind(other.to_owned())),
            }
        }
        Ok(snapshot)
    }

    /// Applies the batch in one transaction; returns once it is committed.
    async fn save(&self, changes: &[Change]) -> Result<(), PostgresStoreError> {
        let mut guard = self.conn.lock().await;
        let conn = &mut *guard;
        let tx = conn.client.transaction().await?;
        let batch =
            Batch { tx: &tx, upsert: &conn.upsert, remove: &conn.remove, ns: &self.namespace };
        for change in changes {
            batch.apply(change).await?;
        }
        // Any `?` above drops `tx`, which rolls the whole batch back.
        tx.commit().await?;
        Ok(())
    }
}

/// One `save` in progress: its transaction and statements.
struct Batch<'a> {
    tx: &'a Transaction<'a>,
    upsert: &'a Statement,
    remove: &'a Statement,
    ns: &'a str,
}

impl Batch<'_> {
    /// One change, as an upsert or delete of its row.
    async fn apply(&self, change: &Change) -> Result<(), PostgresStoreError> {
        match change {
            Change::Local(LocalChange::Upsert(r)) => self.upsert(LOCAL, &r.key(), r).await,
            Change::Local(LocalChange::Remove(k)) => self.remove(LOCAL, k).await,
            Change::Inbound(InboundChange::Upsert(r)) => self.upsert(INBOUND, &r.key(), r).await,
            Change::Inbound(InboundChange::Remove(k)) => self.remove(INBOUND, k).await,
            Change::Outbound(OutboundChange::Upsert(r)) => self.upsert(OUTBOUND, &r.key(), r).await,
            Change::Outbound(OutboundChange::Remove(k)) => self.remove(OUTBOUND, k).await,
            Change::RemoteRoom(RemoteRoomChange::Upsert(r)) => {
                self.upsert(REMOTE_ROOM, &r.key(), r).await
            }
            Change::RemoteRoom(RemoteRoomChange::Remove(k)) => self.remove(REMOTE_ROOM, k).await,
        }
    }

    async fn upsert<K: Serialize, R: Serialize>(
        &self,
        kind: &str,
        key: &K,
        record: &R,
    ) -> Result<(), PostgresStoreError> {
        let key = serde_json::to_string(key)?;
        let record = Json(serde_json::to_value(record)?);
        self.tx.execute(self.upsert, &[&self.ns, &kind, &key, &record, &RECORD_VERSION]).await?;
        Ok(())
    }

    async fn remove<K: Serialize>(&self, kind: &str, key: &K) -> Result<(), PostgresStoreError> {
        let key = serde_json::to_string(key)?;
        self.tx.execute(self.remove, &[&self.ns, &kind, &key]).await?;
        Ok(())
    }
}

/// A stored record back into its type.
fn parse<R: DeserializeOwned>(record: serde_json::Value) -> Result<R, PostgresStoreError> {
    Ok(serde_json::from_value(record)?)
}
