//! [`PostgresStoreError`]: why connecting to the store, or one of its calls, failed.

/// Why connecting to the store, or one of its calls, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresStoreError {
    /// PostgreSQL (or the connection to it) failed: a bad connection string, a refused or lost
    /// connection, a failed statement, a serialization failure …
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A record or key did not serialise, or a stored row does not parse as the record its kind
    /// holds (a hand-edited or foreign row).
    #[error("record JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The namespace is empty; every store needs a name of its own.
    #[error("the store namespace must not be empty")]
    EmptyNamespace,
    /// The database was written by a newer version of this crate: its schema is `found`, this
    /// build knows up to `supported`. Nothing was changed; use the newer version.
    #[error(
        "the database schema is version {found}, newer than version {supported} that this build \
         supports; refusing to downgrade it"
    )]
    SchemaTooNew {
        /// The schema version recorded in the database.
        found: i32,
        /// [`SCHEMA_VERSION`](crate::SCHEMA_VERSION).
        supported: i32,
    },
    /// A row's record format is one this build cannot read (written by a newer version).
    #[error("a {kind} row has record version {found}; this build reads version {supported} only")]
    UnknownRecordVersion {
        /// The row's kind (`local`, `inbound`, `outbound` or `remote_room`).
        kind: String,
        /// The row's `version` column.
        found: i32,
        /// [`RECORD_VERSION`](crate::RECORD_VERSION).
        supported: i32,
    },
    /// [`PostgresStore::next_epoch`](crate::PostgresStore::next_epoch) cannot hand out a larger
    /// epoch: the one asked for is above `i64::MAX`, the namespace's stored epoch already
    /// reached it, or the stored value is negative (a hand-edited row). Reset the namespace's
    /// row in `matrix_peek_epochs` while every worker of it is stopped.
    #[error("no larger routing epoch can be handed out for namespace {namespace:?}")]
    EpochExhausted {
        /// The store's namespace.
        namespace: String,
    },
    /// A row has a kind this build does not know (written by a newer version).
    #[error("a row has the unknown record kind {0:?}")]
    UnknownKind(String),
}
