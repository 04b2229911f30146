//! [`SqliteStoreError`]: why a store call (or an open) failed.

/// Why opening the store, or one of its calls, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteStoreError {
    /// SQLite refused: an I/O error, a full disk, a database locked for longer than the busy
    /// timeout, a corrupt or foreign file …
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A record or key did not serialise, or a stored row does not parse as the record its
    /// table holds (a hand-edited or foreign database).
    #[error("record JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The database was written by a newer version of this crate: its schema is `found`, this
    /// build knows up to `supported`. Nothing was changed; use the newer version.
    #[error(
        "the database schema is version {found}, newer than version {supported} that this build \
         supports; refusing to downgrade it"
    )]
    SchemaTooNew {
        /// The schema version recorded in the database.
        found: i64,
        /// [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
        supported: u32,
    },
    /// A row's record format is one this build cannot read (written by a newer version).
    #[error(
        "a row of {table} has record version {found}; this build reads version {supported} only"
    )]
    UnknownRecordVersion {
        /// The table holding the row.
        table: &'static str,
        /// The row's `version` column.
        found: i64,
        /// [`RECORD_VERSION`](crate::RECORD_VERSION).
        supported: u32,
    },
    /// The worker thread could not be started.
    #[error("could not start the store's worker thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The store's worker thread has stopped (it panicked), so the call could not be answered.
    /// The store cannot be used any more; open it again.
    #[error("the store's worker thread has stopped")]
    Closed,
}
