//! The versioned schema: a database written by schema version 1 (the `examples/http_pair`
//! template store, which had no migrations table) is upgraded in place with every record kept;
//! a new database records its migrations; a newer schema or record format is refused, never
//! downgraded; and a failed upgrade changes nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::executor::block_on;
use matrix_peek::RemoteRoomRecord;
use matrix_peek::{
    Change, InboundChange, InboundRecord, LocalRecord, OutboundChange, OutboundKey,
    OutboundPeekPhase, OutboundPeekRecord, OutboundRecord, PeekStore, Peeking, PeekingConfig,
    RoomAccess, Snapshot, StreamPosition, Timestamp,
};
use matrix_peek_sqlite::{RECORD_VERSION, SCHEMA_VERSION, SqliteStore, SqliteStoreError};
use ruma_common::{
    RoomVersionId, owned_device_id, owned_room_id, owned_server_name, owned_user_id,
};
use rusqlite::Connection;

const TABLES: [&str; 4] = ["local_peeks", "inbound_peeks", "outbound_peeks", "remote_rooms"];

/// Schema version 1, as the template's `SqliteStore::open` created it (verbatim).
fn create_v1_schema(conn: &Connection) {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 5000;",
    )
    .unwrap();
    for table in TABLES {
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                 key    TEXT PRIMARY KEY NOT NULL,
                 record TEXT NOT NULL
             ) WITHOUT ROWID;"
        ))
        .unwrap();
    }
}

/// One row as the template's `upsert` wrote it.
fn v1_upsert(conn: &Connection, table: &str, key: &str, record: &str) {
    conn.execute(
        &format!(
            "INSERT INTO {table} (key, record) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET record = excluded.record"
        ),
        [key, record],
    )
    .unwrap();
}

/// Rows of every kind, in the JSON the template wrote (matrix-peek 0.1's serde shapes, record
/// format 1), kept literally so a change of the serialised shape fails here.
const V1_ROWS: [(&str, &str, &str); 6] = [
    (
        "local_peeks",
        r#"{"kind":"entry","user":"@alice:old.test","device":"PHONE","room_id":"!lobby:remote.test"}"#,
        r#"{"kind":"peek","user":"@alice:old.test","device":"PHONE","room_id":"!lobby:remote.test","started":3,"expires_at":1700003600000}"#,
    ),
    ("local_peeks", r#"{"kind":"stream"}"#, r#"{"kind":"stream","position":3,"horizon":0}"#),
    (
        "inbound_peeks",
        r#"{"origin":"peer.test","room_id":"!hall:old.test","peek_id":"peek1"}"#,
        r#"{"origin":"peer.test","room_id":"!hall:old.test","peek_id":"peek1","renewed_at":1700000000000,"expires_at":1700003600000}"#,
    ),
    (
        "outbound_peeks",
        r#"{"type":"room","room_id":"!lobby:remote.test"}"#,
        r#"{"type":"peek","room_id":"!lobby:remote.test","server":"remote.test","peek_id":"7","phase":{"phase":"live","renewed_at":1700000000000,"interval":3600000,"renew_at":1700001800000,"expires_at":1700003600000},"access":{"room_version":"11","world_readable":true,"encrypted":false}}"#,
    ),
    (
        "outbound_peeks",
        r#"{"type":"counters"}"#,
        r#"{"type":"counters","peek_id":64,"request":64}"#,
    ),
    (
        "remote_rooms",
        r#""!lobby:remote.test""#,
        r#"{"room_id":"!lobby:remote.test","via":["remote.test"],"access":{"room_version":"11","world_readable":true,"encrypted":false}}"#,
    ),
];

/// What [`V1_ROWS`] hold, as records.
fn v1_snapshot() -> Snapshot {
    let access = RoomAccess::new(RoomVersionId::V11, true, false);
    Snapshot {
        local: vec![
            LocalRecord::Peek {
                user_id: owned_user_id!("@alice:old.test"),
                device_id: owned_device_id!("PHONE"),
                room_id: owned_room_id!("!lobby:remote.test"),
                started: StreamPosition(3),
                expires_at: Timestamp::from_millis(1_700_003_600_000),
            },
            LocalRecord::Stream { position: StreamPosition(3), horizon: StreamPosition(0) },
        ],
        inbound: vec![InboundRecord {
            server: owned_server_name!("peer.test"),
            room_id: owned_room_id!("!hall:old.test"),
            peek_id: "peek1".into(),
            renewed_at: Timestamp::from_millis(1_700_000_000_000),
            expires_at: Timestamp::from_millis(1_700_003_600_000),
        }],
        outbound: vec![
            OutboundRecord::Peek(OutboundPeekRecord {
                room_id: owned_room_id!("!lobby:remote.test").into(),
                server: owned_server_name!("remote.test").into(),
                peek_id: "7".into(),
                phase: OutboundPeekPhase::Live {
                    renewed_at: Timestamp::from_millis(1_700_000_000_000),
                    interval: Duration::from_secs(3600),
                    renew_at: Timestamp::from_millis(1_700_001_800_000),
                    expires_at: Timestamp::from_millis(1_700_003_600_000),
                },
                access: Some(access.clone()),
            }),
            OutboundRecord::Counters { peek_id: 64, request: 64 },
        ],
        remote_rooms: vec![RemoteRoomRecord {
            room_id: owned_room_id!("!lobby:remote.test"),
            via: vec![owned_server_name!("remote.test")],
            access: Some(access),
        }],
    }
}

/// A version 1 database file holding [`V1_ROWS`].
fn v1_database(name: &str) -> PathBuf {
    let path = fresh_db(name);
    let conn = Connection::open(&path).unwrap();
    create_v1_schema(&conn);
    for (table, key, record) in V1_ROWS {
        v1_upsert(&conn, table, key, record);
    }
    path
}

fn fresh_db(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sqlite_schema");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path =
        dir.join(format!("{name}-{}-{}.db", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// The snapshot with its records sorted by key (how `load` returns them, up to order).
fn sorted(snapshot: &Snapshot) -> Snapshot {
    Snapshot::default().apply(&to_upserts(snapshot))
}

fn to_upserts(snapshot: &Snapshot) -> Vec<Change> {
    use matrix_peek::LocalChange;
    use matrix_peek::RemoteRoomChange;
    let mut changes: Vec<Change> =
        snapshot.local.iter().cloned().map(|r| Change::Local(LocalChange::Upsert(r))).collect();
    changes.extend(
        snapshot.inbound.iter().cloned().map(|r| Change::Inbound(InboundChange::Upsert(r))),
    );
    changes.extend(
        snapshot.outbound.iter().cloned().map(|r| Change::Outbound(OutboundChange::Upsert(r))),
    );
    changes.extend(
        snapshot
            .remote_rooms
            .iter()
            .cloned()
            .map(|r| Change::RemoteRoom(RemoteRoomChange::Upsert(r))),
    );
    changes
}

fn migrations(conn: &Connection) -> Vec<(i64, i64)> {
    conn.prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn has_table(conn: &Connection, table: &str) -> bool {
    conn.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1")
        .unwrap()
        .exists([table])
        .unwrap()
}

#[test]
fn a_version_1_database_is_upgraded_in_place_and_keeps_every_record() {
    let path = v1_database("v1");
    let store = SqliteStore::open(&path).expect("a version 1 database opens");
    assert_eq!(store.migrated_from(), Some(1));
    assert_eq!(store.schema_version(), SCHEMA_VERSION);

    // Every record the old store wrote loads, and restores a coordinator.
    let loaded = block_on(store.load()).expect("load the upgraded database");
    assert_eq!(loaded, sorted(&v1_snapshot()));
    let now = Timestamp::from_millis(1_700_000_100_000);
    let restored = Peeking::restore(now, PeekingConfig::default(), loaded.clone());
    assert_eq!(
        (restored.local().len(), restored.inbound().len(), restored.outbound().len()),
        (1, 1, 1),
        "the old peeks are live again"
    );

    // Saves go through it: a new record, a replaced one and a removed one.
    let mut renewed = v1_snapshot().inbound[0].clone();
    renewed.expires_at = Timestamp::from_millis(1_700_007_200_000);
    let mut second = renewed.clone();
    second.peek_id = "peek2".into();
    let batch = [
        Change::Inbound(InboundChange::Upsert(renewed.clone())),
        Change::Inbound(InboundChange::Upsert(second.clone())),
        Change::Outbound(OutboundChange::Remove(OutboundKey::Counters)),
    ];
    block_on(store.save(&batch)).expect("save into the upgraded database");
    let expected = loaded.apply(&batch);
    assert_eq!(block_on(store.load()).unwrap(), expected);
    block_on(store.close()).unwrap();

    // On disk: the migrations are recorded, every table has the version column, and every row
    // (old or new) is in record format 1.
    let conn = Connection::open(&path).unwrap();
    let recorded = migrations(&conn);
    assert_eq!(recorded.iter().map(|m| m.0).collect::<Vec<_>>(), [1, 2]);
    assert!(recorded.iter().all(|m| m.1 > 1_600_000_000), "applied_at is a Unix time");
    for table in TABLES {
        assert_eq!(columns(&conn, table), ["key", "record", "version"], "{table}");
        let formats: Vec<i64> = conn
            .prepare(&format!("SELECT DISTINCT version FROM {table}"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(formats, [i64::from(RECORD_VERSION)], "{table}");
    }
    drop(conn);

    // Opening again migrates nothing and loads the same.
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.migrated_from(), None);
    assert_eq!(block_on(again.load()).unwrap(), expected);
    block_on(again.close()).unwrap();
    assert_eq!(migrations(&Connection::open(&path).unwrap()), recorded, "no new rows");
}

#[test]
fn a_version_1_database_that_lost_a_table_gets_it_back() {
    // The template ran its `CREATE TABLE IF NOT EXISTS` on every open; the upgrade does too.
    let path = v1_database("v1-lost");
    Connection::open(&path).unwrap().execute_batch("DROP TABLE remote_rooms").unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.migrated_from(), Some(1));
    let loaded = block_on(store.load()).unwrap();
    assert!(loaded.remote_rooms.is_empty());
    assert_eq!(loaded.local.len(), 2, "the other tables kept their rows");
}

#[test]
fn code_that_knows_only_version_1_can_still_use_an_upgraded_database() {
    // Rolling a deploy back: the old template's open and upserts work on a version 2 file (the
    // new column has a default), and what they write loads as record format 1.
    let path = v1_database("rollback");
    block_on(SqliteStore::open(&path).unwrap().close()).unwrap();
    let conn = Connection::open(&path).unwrap();
    create_v1_schema(&conn);
    let (table, key, record) = V1_ROWS[2];
    let record = record.replace("1700003600000", "1700009999000");
    v1_upsert(&conn, table, key, &record);
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.migrated_from(), None);
    let loaded = block_on(store.load()).unwrap();
    assert_eq!(loaded.inbound[0].expires_at, Timestamp::from_millis(1_700_009_999_000));
}

#[test]
fn a_new_database_records_every_migration_once() {
    let path = fresh_db("new");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!((store.migrated_from(), store.schema_version()), (Some(0), SCHEMA_VERSION));
    assert_eq!(block_on(store.load()).unwrap(), Snapshot::default());
    block_on(store.close()).unwrap();
    let conn = Connection::open(&path).unwrap();
    let recorded = migrations(&conn);
    assert_eq!(
        recorded.iter().map(|m| m.0).collect::<Vec<_>>(),
        (1..=i64::from(SCHEMA_VERSION)).collect::<Vec<_>>()
    );
    for table in TABLES {
        assert_eq!(columns(&conn, table), ["key", "record", "version"], "{table}");
    }
    let again = SqliteStore::open(&path).unwrap();
    assert_eq!(again.migrated_from(), None);
    block_on(again.close()).unwrap();
    assert_eq!(migrations(&conn), recorded);
}

#[test]
fn a_newer_schema_is_refused_and_the_database_left_as_it_was() {
    let path = v1_database("newer");
    let store = SqliteStore::open(&path).unwrap();
    block_on(store.close()).unwrap();
    let conn = Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 0)", []).unwrap();
    let schema_before: Vec<String> = conn
        .prepare("SELECT sql FROM sqlite_schema ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let migrations_before = migrations(&conn);

    match SqliteStore::open(&path) {
        Err(SqliteStoreError::SchemaTooNew { found: 99, supported }) => {
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let err = SqliteStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("99") && err.contains("newer"), "{err}");

    let schema_after: Vec<String> = conn
        .prepare("SELECT sql FROM sqlite_schema ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(schema_after, schema_before, "no table was touched");
    assert_eq!(migrations(&conn), migrations_before, "nothing was recorded");
    let rows: i64 = conn.query_row("SELECT count(*) FROM local_peeks", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 2, "no row was touched");
}

#[test]
fn a_row_in_an_unknown_record_format_fails_the_load() {
    let path = v1_database("format");
    block_on(SqliteStore::open(&path).unwrap().close()).unwrap();
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE inbound_peeks SET version = ?1", [RECORD_VERSION + 1])
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    match block_on(store.load()) {
        Err(SqliteStoreError::UnknownRecordVersion {
            table: "inbound_peeks",
            found,
            supported,
        }) => {
            assert_eq!((found, supported), (i64::from(RECORD_VERSION) + 1, RECORD_VERSION));
        }
        other => panic!("expected UnknownRecordVersion, got {other:?}"),
    }
}

#[test]
fn a_failed_upgrade_changes_nothing() {
    // A version 1 database where one table already has a `version` column: migration 2's
    // ALTER TABLE on it fails after it changed the tables before it. The transaction takes all
    // of it back: no migrations table, no new column anywhere, and the rows are as they were.
    let path = v1_database("failed-upgrade");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("ALTER TABLE remote_rooms ADD COLUMN version TEXT").unwrap();
    assert!(matches!(SqliteStore::open(&path), Err(SqliteStoreError::Sqlite(_))));
    assert!(!has_table(&conn, "schema_migrations"));
    for table in ["local_peeks", "inbound_peeks", "outbound_peeks"] {
        assert_eq!(columns(&conn, table), ["key", "record"], "{table} is still version 1");
    }
    let rows: i64 =
        conn.query_row("SELECT count(*) FROM outbound_peeks", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 2);
}
