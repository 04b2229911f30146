//! The versioned schema: the migrations and the code that applies them on connect (the table
//! of versions is in the crate docs).

use tokio_postgres::Client;

use crate::PostgresStoreError;

/// The schema version this build creates and upgrades to. Connecting to a database with a
/// newer one fails with [`PostgresStoreError::SchemaTooNew`].
pub const SCHEMA_VERSION: i32 = 3;

/// The record format written to each row's `version` column: the `serde_json` shape of
/// matrix-peek's record and key types. Rows of another format fail the `load` with
/// [`PostgresStoreError::UnknownRecordVersion`].
pub const RECORD_VERSION: i32 = 1;

/// The table of applied migrations.
pub const MIGRATIONS_TABLE: &str = "matrix_peek_schema_migrations";

/// The table of records, all namespaces and kinds.
pub const RECORDS_TABLE: &str = "matrix_peek_records";

/// The table of routing epochs, one row per namespace
/// ([`PostgresStore::next_epoch`](crate::PostgresStore::next_epoch)).
pub const EPOCHS_TABLE: &str = "matrix_peek_epochs";

/// The advisory lock key that serialises migrations of concurrent connects (`"mpeek"` in
/// ASCII).
const MIGRATION_LOCK: i64 = 0x6d_70_65_65_6b;

/// One step of the schema: applying `sql` to a database at `version - 1` gives `version`.
struct Migration {
    version: i32,
    sql: &'static str,
}

/// Every migration, in order. Append only: a released migration is never edited.
const MIGRATIONS: [Migration; 3] = [
    // Version 1: the records, one row per (namespace, kind, key), and the migrations table.
    Migration {
        version: 1,
        sql: "CREATE TABLE matrix_peek_schema_migrations (
                  version    INTEGER PRIMARY KEY,
                  applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
              );
              CREATE TABLE matrix_peek_records (
                  namespace TEXT  NOT NULL,
                  kind      TEXT  NOT NULL,
                  key       TEXT  NOT NULL,
                  record    JSONB NOT NULL,
                  PRIMARY KEY (namespace, kind, key)
              );",
    },
    // Version 2: the record format on every row (rows written by version 1 are format 1).
    Migration {
        version: 2,
        sql: "ALTER TABLE matrix_peek_records ADD COLUMN version INTEGER NOT NULL DEFAULT 1;",
    },
    // Version 3: each namespace's last routing epoch (`Seq::epoch`), so a restarted worker's
    // epoch grows even when its clock stepped back.
    Migration {
        version: 3,
        sql: "CREATE TABLE matrix_peek_epochs (
                  namespace TEXT   PRIMARY KEY,
                  epoch     BIGINT NOT NULL
              );",
    },
];

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Migrated {
    /// The version before, if any migration ran (0: a new database).
    pub(crate) migrated_from: Option<i32>,
}

/// Brings the database to [`SCHEMA_VERSION`]: every pending migration, in order, in one
/// transaction that also records them in the migrations table. A transaction-scoped advisory
/// lock makes concurrent connects (several workers starting at once) migrate one after the
/// other; the later ones find the schema current. A newer schema is an error and the
/// transaction is rolled back untouched.
pub(crate) async fn migrate(client: &mut Client) -> Result<Migrated, PostgresStoreError> {
    debug_assert!(
        MIGRATIONS.iter().map(|m| m.version).eq(1..=SCHEMA_VERSION),
        "migrations are numbered 1..=SCHEMA_VERSION"
    );
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    let exists: bool =
        tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&MIGRATIONS_TABLE]).await?.get(0);
    let current: i32 = if exists {
        tx.query_one(&format!("SELECT coalesce(max(version), 0) FROM {MIGRATIONS_TABLE}"), &[])
            .await?
            .get(0)
    } else {
        0
    };
    if current > SCHEMA_VERSION {
        // Dropping `tx` rolls back; nothing was written.
        return Err(PostgresStoreError::SchemaTooNew { found: current, supported: SCHEMA_VERSION });
    }
    if current == SCHEMA_VERSION {
        tx.commit().await?;
        return Ok(Migrated { migrated_from: None });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            &format!("INSERT INTO {MIGRATIONS_TABLE} (version) VALUES ($1)"),
            &[&migration.version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Migrated { migrated_from: Some(current) })
}
