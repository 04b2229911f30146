//! The versioned schema: the migrations and the code that applies them on open (the table of
//! versions is in the crate docs).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::SqliteStoreError;

/// The schema version this build creates and upgrades to. Opening a database with a newer one
/// fails with [`SqliteStoreError::SchemaTooNew`].
pub const SCHEMA_VERSION: u32 = 2;

/// The record format written to each row's `version` column: the `serde_json` shape of
/// matrix-peek's record and key types. Rows of another format fail the `load` with
/// [`SqliteStoreError::UnknownRecordVersion`].
pub const RECORD_VERSION: u32 = 1;

/// The four record tables.
pub(crate) const TABLES: [&str; 4] =
    ["local_peeks", "inbound_peeks", "outbound_peeks", "remote_rooms"];

/// One step of the schema: applying `sql` to a database at `version - 1` gives `version`.
struct Migration {
    version: u32,
    sql: &'static str,
}

/// Every migration, in order. Append only: a released migration is never edited.
const MIGRATIONS: [Migration; 2] = [
    // Version 1: the template store's layout, exactly (no migrations table). `IF NOT EXISTS`
    // makes it idempotent, which is what lets an unrecorded version 1 database take it again.
    Migration {
        version: 1,
        sql: "CREATE TABLE IF NOT EXISTS local_peeks (
                  key    TEXT PRIMARY KEY NOT NULL,
                  record TEXT NOT NULL
              ) WITHOUT ROWID;
              CREATE TABLE IF NOT EXISTS inbound_peeks (
                  key    TEXT PRIMARY KEY NOT NULL,
                  record TEXT NOT NULL
              ) WITHOUT ROWID;
              CREATE TABLE IF NOT EXISTS outbound_peeks (
                  key    TEXT PRIMARY KEY NOT NULL,
                  record TEXT NOT NULL
              ) WITHOUT ROWID;
              CREATE TABLE IF NOT EXISTS remote_rooms (
                  key    TEXT PRIMARY KEY NOT NULL,
                  record TEXT NOT NULL
              ) WITHOUT ROWID;",
    },
    // Version 2: the migrations table, and the record format on every row (existing rows were
    // written in format 1).
    Migration {
        version: 2,
        sql: "CREATE TABLE schema_migrations (
                  version    INTEGER PRIMARY KEY NOT NULL,
                  applied_at INTEGER NOT NULL
              );
              ALTER TABLE local_peeks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
              ALTER TABLE inbound_peeks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
              ALTER TABLE outbound_peeks ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
              ALTER TABLE remote_rooms ADD COLUMN version INTEGER NOT NULL DEFAULT 1;",
    },
];

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Migrated {
    /// The schema version after the open ([`SCHEMA_VERSION`]).
    pub(crate) version: u32,
    /// The version before, if any migration ran (0: a new database).
    pub(crate) migrated_from: Option<u32>,
}

/// Brings the database to [`SCHEMA_VERSION`]: every pending migration, in order, in one
/// `BEGIN IMMEDIATE` transaction that also records them in `schema_migrations`. A newer schema
/// is an error and the transaction is rolled back untouched.
pub(crate) fn migrate(conn: &mut Connection) -> Result<Migrated, SqliteStoreError> {
    debug_assert!(
        MIGRATIONS.iter().map(|m| m.version).eq(1..=SCHEMA_VERSION),
        "migrations are numbered 1..=SCHEMA_VERSION"
    );
    // IMMEDIATE: a second process opening the same file waits here and then finds it current.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let recorded = recorded_version(&tx)?;
    if let Some(found) = recorded
        && found > i64::from(SCHEMA_VERSION)
    {
        // Dropping `tx` rolls back; nothing was written.
        return Err(SqliteStoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
    }
    let current = match recorded {
        // Versions are 1..=SCHEMA_VERSION here (checked above; a negative one is junk: start over).
        Some(found) => u32::try_from(found).unwrap_or(0),
        // No migrations table: a new database, or version 1 (which did not record itself).
        None if has_any_record_table(&tx)? => 1,
        None => 0,
    };
    if current == SCHEMA_VERSION {
        return Ok(Migrated { version: current, migrated_from: None });
    }
    // An unrecorded version 1 takes migration 1 again (idempotent): the template's own open ran
    // the same DDL every time, so a table it lost is recreated, as it would have been.
    let first = if recorded.is_none() { 1 } else { current + 1 };
    for migration in MIGRATIONS.iter().filter(|m| m.version >= first) {
        tx.execute_batch(migration.sql)?;
    }
    {
        let mut record = tx.prepare(
            "INSERT OR IGNORE INTO schema_migrations (version, applied_at)
             VALUES (?1, unixepoch())",
        )?;
        for version in first..=SCHEMA_VERSION {
            record.execute([version])?;
        }
    }
    tx.commit()?;
    Ok(Migrated { version: SCHEMA_VERSION, migrated_from: Some(current) })
}

/// The highest version in `schema_migrations`, or `None` if the table does not exist.
fn recorded_version(conn: &Connection) -> Result<Option<i64>, SqliteStoreError> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(None);
    }
    let max: Option<i64> =
        conn.query_row("SELECT max(version) FROM schema_migrations", [], |row| row.get(0))?;
    Ok(Some(max.unwrap_or(0)))
}

/// Whether any of the record tables exists (a version 1 database).
fn has_any_record_table(conn: &Connection) -> Result<bool, SqliteStoreError> {
    let mut stmt =
        conn.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1")?;
    for table in TABLES {
        if stmt.exists([table])? {
            return Ok(true);
        }
    }
    Ok(false)
}
