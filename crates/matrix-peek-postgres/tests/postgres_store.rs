//! [`PostgresStore`] against the storage contract and its own promises, on a throwaway
//! PostgreSQL started by `support` (or the server named by `MATRIX_PEEK_PG_URL`): the store
//! conformance checks, namespaces, the row layout, all-or-nothing batches, and the versioned
//! schema (a hand-written version 1 database is upgraded; a newer one is refused).

mod support;

use matrix_peek::{
    Change, InboundChange, InboundKey, InboundRecord, LocalChange, LocalRecord, PeekStore,
    RemoteRoomChange, RemoteRoomRecord, Snapshot, StreamPosition, Timestamp,
};
use matrix_peek_postgres::{
    MIGRATIONS_TABLE, PostgresStore, PostgresStoreError, RECORD_VERSION, RECORDS_TABLE,
    SCHEMA_VERSION,
};
use ruma_common::owned_server_name;

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

fn stream(position: u64) -> Change {
    Change::Local(LocalChange::Upsert(LocalRecord::Stream {
        position: StreamPosition(position),
        horizon: StreamPosition(0),
    }))
}

async fn count(client: &tokio_postgres::Client, filter: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM {RECORDS_TABLE} WHERE {filter}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn migrations(client: &tokio_postgres::Client) -> Vec<i32> {
    client
        .query(&format!("SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn postgres_store_passes_the_store_conformance_checks() {
    let db = support::fresh_database().await;
    matrix_peek::testing::store_conformance(|| {
        let db = db.clone();
        async move { PostgresStore::connect(&db, "conformance").await.expect("connect") }
    })
    .await;
}

#[tokio::test]
async fn namespaces_keep_independent_snapshots_in_one_database() {
    let db = support::fresh_database().await;
    let sync = PostgresStore::connect(&db, "sync").await.unwrap();
    let fed1 = PostgresStore::connect(&db, "federation-1").await.unwrap();
    let fed2 = PostgresStore::connect(&db, "federation-2").await.unwrap();
    assert_eq!(fed1.namespace(), "federation-1");

    // The same key in every namespace, with different records; and records only some have.
    let shared = inbound("!shared:ns.test", "p1", 1);
    let sync_batch = vec![Change::Inbound(InboundChange::Upsert(shared.clone())), stream(7)];
    let fed1_record = InboundRecord { expires_at: Timestamp::from_millis(99), ..shared.clone() };
    let fed1_batch = vec![
        Change::Inbound(InboundChange::Upsert(fed1_record.clone())),
        Change::RemoteRoom(RemoteRoomChange::Upsert(remote_room("!remote:ns.test"))),
    ];
    sync.save(&sync_batch).await.unwrap();
    fed1.save(&fed1_batch).await.unwrap();

    assert_eq!(sync.load().await.unwrap(), Snapshot::default().apply(&sync_batch));
    assert_eq!(fed1.load().await.unwrap(), Snapshot::default().apply(&fed1_batch));
    assert_eq!(fed2.load().await.unwrap(), Snapshot::default(), "an unused namespace is empty");

    // A remove in one namespace leaves the same key in the others.
    fed2.save(&[Change::Inbound(InboundChange::Remove(shared.key()))]).await.unwrap();
    fed1.save(&[Change::Inbound(InboundChange::Remove(shared.key()))]).await.unwrap();
    assert_eq!(sync.load().await.unwrap().inbound, vec![shared.clone()]);
    assert!(fed1.load().await.unwrap().inbound.is_empty());
    assert_eq!(fed1.load().await.unwrap().remote_rooms.len(), 1);

    // A second store on a namespace (a restarted worker) sees that namespace's records.
    drop(sync);
    let sync_again = PostgresStore::connect(&db, "sync").await.unwrap();
    assert_eq!(sync_again.migrated_from(), None);
    assert_eq!(sync_again.load().await.unwrap(), Snapshot::default().apply(&sync_batch));

    let client = support::connect(&db).await;
    assert_eq!(count(&client, "namespace = 'sync'").await, 2);
    assert_eq!(count(&client, "namespace = 'federation-1'").await, 1);
    assert_eq!(count(&client, "namespace = 'federation-2'").await, 0);

    assert!(matches!(
        PostgresStore::connect(&db, "").await,
        Err(PostgresStoreError::EmptyNamespace)
    ));
}

#[tokio::test]
async fn routing_epochs_grow_per_namespace_across_restarts_and_a_clock_stepped_back() {
    let db = support::fresh_database().await;
    let sync = PostgresStore::connect(&db, "sync").await.unwrap();
    let fed = PostgresStore::connect(&db, "federation-1").await.unwrap();
    let start = 1_700_000_000_000;
    let first = sync.next_epoch(start).await.unwrap();
    assert_eq!(first, start, "the first epoch is the clock");
    // The clock stepped back an hour across a restart: the epoch still grows.
    drop(sync);
    let sync = PostgresStore::connect(&db, "sync").await.unwrap();
    let second = sync.next_epoch(start - 3_600_000).await.unwrap();
    assert!(second > first, "{second} after {first}");
    // A clock far ahead wins.
    assert_eq!(sync.next_epoch(start + 10).await.unwrap(), start + 10);
    // Another namespace has its own counter.
    assert_eq!(fed.next_epoch(5).await.unwrap(), 5);
    assert_eq!(fed.next_epoch(0).await.unwrap(), 6);
    // Beyond a BIGINT, and once the largest one is handed out, it is an error, never an
    // epoch that does not grow.
    let exhausted = |r| matches!(r, Err(PostgresStoreError::EpochExhausted { .. }));
    assert!(exhausted(fed.next_epoch(u64::MAX).await));
    assert_eq!(fed.next_epoch(i64::MAX as u64).await.unwrap(), i64::MAX as u64);
    assert!(exhausted(fed.next_epoch(0).await));
    assert!(exhausted(fed.next_epoch(i64::MAX as u64).await));
}

#[tokio::test]
async fn rows_are_keyed_by_kind_and_the_records_key_as_json_and_upserts_replace() {
    let db = support::fresh_database().await;
    let store = PostgresStore::connect(&db, "layout").await.unwrap();
    let record = inbound("!layout:rows.test", "p1", 1);
    store.save(&[Change::Inbound(InboundChange::Upsert(record.clone()))]).await.unwrap();
    let later = InboundRecord { expires_at: Timestamp::from_millis(99), ..record.clone() };
    store.save(&[Change::Inbound(InboundChange::Upsert(later.clone()))]).await.unwrap();

    let client = support::connect(&db).await;
    let rows = client
        .query(
            &format!(
                "SELECT namespace, kind, key, record::text, version, \
                 pg_typeof(record)::text FROM {RECORDS_TABLE}"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "the second upsert replaced the first");
    let row = &rows[0];
    assert_eq!(row.get::<_, &str>(0), "layout");
    assert_eq!(row.get::<_, &str>(1), "inbound");
    let key: InboundKey = serde_json::from_str(row.get(2)).unwrap();
    assert_eq!(key, record.key());
    assert_eq!(row.get::<_, &str>(2), serde_json::to_string(&record.key()).unwrap());
    let stored: InboundRecord = serde_json::from_str(row.get(3)).unwrap();
    assert_eq!(stored, later);
    assert_eq!(row.get::<_, i32>(4), RECORD_VERSION, "each row carries its record format");
    assert_eq!(row.get::<_, &str>(5), "jsonb");
}

#[tokio::test]
async fn a_batch_failing_midway_leaves_nothing_behind_and_the_store_goes_on() {
    // The storage contract: a batch is all or nothing. A trigger (added through a second
    // connection) refuses remote room rows, so the batch's second statement fails after its
    // first one wrote a row.
    let db = support::fresh_database().await;
    let store = PostgresStore::connect(&db, "atomic").await.unwrap();
    let client = support::connect(&db).await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'injected fault'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON {RECORDS_TABLE}
             FOR EACH ROW WHEN (NEW.kind = 'remote_room') EXECUTE FUNCTION refuse();"
        ))
        .await
        .unwrap();
    let batch = [
        Change::Inbound(InboundChange::Upsert(inbound("!a:atomic.test", "p1", 1))),
        Change::RemoteRoom(RemoteRoomChange::Upsert(remote_room("!a:atomic.test"))),
    ];
    let err = store.save(&batch).await.expect_err("the second statement fails");
    let PostgresStoreError::Postgres(pg) = &err else { panic!("expected a postgres error: {err}") };
    assert!(pg.as_db_error().is_some_and(|e| e.message() == "injected fault"), "{err}");
    assert_eq!(count(&client, "true").await, 0, "the first change was rolled back");
    assert_eq!(store.load().await.unwrap(), Snapshot::default(), "and loads as nothing");

    // The store survived the error: once the fault is gone, the same batch goes through.
    client.batch_execute(&format!("DROP TRIGGER refuse ON {RECORDS_TABLE}")).await.unwrap();
    store.save(&batch).await.unwrap();
    let loaded = store.load().await.unwrap();
    assert_eq!((loaded.inbound.len(), loaded.remote_rooms.len()), (1, 1));
}

#[tokio::test]
async fn a_record_postgres_cannot_store_fails_its_whole_batch() {
    // No fault injection: a peek id with a NUL character serialises to JSON (`\u0000`), which
    // `jsonb` cannot hold. The batch's earlier changes (an upsert and a remove) are undone.
    let db = support::fresh_database().await;
    let store = PostgresStore::connect(&db, "nul").await.unwrap();
    let kept = inbound("!k:nul.test", "kept", 1);
    store.save(&[Change::Inbound(InboundChange::Upsert(kept.clone()))]).await.unwrap();
    let before = store.load().await.unwrap();

    let batch = [
        stream(5),
        Change::Inbound(InboundChange::Remove(kept.key())),
        Change::Inbound(InboundChange::Upsert(inbound("!n:nul.test", "bad\u{0}id", 2))),
    ];
    let err = store.save(&batch).await.expect_err("jsonb refuses \\u0000");
    assert!(matches!(err, PostgresStoreError::Postgres(_)), "{err}");
    assert_eq!(store.load().await.unwrap(), before, "nothing of the batch is left");
    store.save(&batch[..2]).await.expect("the store goes on");
    assert_eq!(store.load().await.unwrap(), before.apply(&batch[..2]));
}

#[tokio::test]
async fn stores_sharing_a_database_from_many_tasks_land_every_batch_whole() {
    let db = support::fresh_database().await;
    let store = std::sync::Arc::new(PostgresStore::connect(&db, "tasks").await.unwrap());
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..5 {
                    let batch: Vec<Change> = (0..3)
                        .map(|j| {
                            Change::Inbound(InboundChange::Upsert(inbound(
                                &format!("!t{t}:tasks.test"),
                                &format!("p{i}-{j}"),
                                i,
                            )))
                        })
                        .collect();
                    store.save(&batch).await.expect("save");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.load().await.unwrap().inbound.len(), 4 * 5 * 3);
}

// --- The versioned schema. ---

/// Schema version 1, written by hand as that version's migration created it.
async fn create_v1_database(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE matrix_peek_schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             );
             INSERT INTO matrix_peek_schema_migrations (version) VALUES (1);
             CREATE TABLE matrix_peek_records (
                 namespace TEXT  NOT NULL,
                 kind      TEXT  NOT NULL,
                 key       TEXT  NOT NULL,
                 record    JSONB NOT NULL,
                 PRIMARY KEY (namespace, kind, key)
             );",
        )
        .await
        .unwrap();
}

/// Rows in two namespaces, in the JSON the version 1 layout holds (matrix-peek 0.1's serde
/// shapes), kept literally so a change of the serialised shape fails here.
const V1_ROWS: [(&str, &str, &str, &str); 3] = [
    ("sync", "local", r#"{"kind":"stream"}"#, r#"{"kind":"stream","position":3,"horizon":0}"#),
    (
        "sync",
        "inbound",
        r#"{"origin":"peer.test","room_id":"!hall:old.test","peek_id":"peek1"}"#,
        r#"{"origin":"peer.test","room_id":"!hall:old.test","peek_id":"peek1","renewed_at":1700000000000,"expires_at":1700003600000}"#,
    ),
    (
        "fed",
        "remote_room",
        r#""!lobby:remote.test""#,
        r#"{"room_id":"!lobby:remote.test","via":["remote.test"],"access":null}"#,
    ),
];

#[tokio::test]
async fn a_version_1_database_is_upgraded_in_place_and_keeps_every_record() {
    let db = support::fresh_database().await;
    let client = support::connect(&db).await;
    create_v1_database(&client).await;
    for (namespace, kind, key, record) in V1_ROWS {
        client
            .execute(
                "INSERT INTO matrix_peek_records (namespace, kind, key, record)
                 VALUES ($1, $2, $3, $4::text::jsonb)",
                &[&namespace, &kind, &key, &record],
            )
            .await
            .unwrap();
    }

    let sync = PostgresStore::connect(&db, "sync").await.expect("a version 1 database opens");
    assert_eq!(sync.migrated_from(), Some(1));
    assert_eq!(sync.schema_version(), SCHEMA_VERSION);
    let loaded = sync.load().await.expect("load the upgraded database");
    assert_eq!(
        loaded.local,
        vec![LocalRecord::Stream { position: StreamPosition(3), horizon: StreamPosition(0) }]
    );
    assert_eq!(loaded.inbound.len(), 1);
    assert_eq!(loaded.inbound[0].expires_at, Timestamp::from_millis(1_700_003_600_000));
    // The stored keys are the keys the records have now: an upsert replaces the old row.
    let renewed = InboundRecord {
        expires_at: Timestamp::from_millis(1_700_007_200_000),
        ..loaded.inbound[0].clone()
    };
    sync.save(&[Change::Inbound(InboundChange::Upsert(renewed.clone())), stream(4)]).await.unwrap();
    assert_eq!(sync.load().await.unwrap().inbound, vec![renewed]);
    assert_eq!(sync.load().await.unwrap().local.len(), 1, "the stream row was replaced too");

    let fed = PostgresStore::connect(&db, "fed").await.unwrap();
    assert_eq!(fed.migrated_from(), None, "migrated once");
    let expected = RemoteRoomRecord {
        via: vec![owned_server_name!("remote.test")],
        ..remote_room("!lobby:remote.test")
    };
    assert_eq!(fed.load().await.unwrap().remote_rooms, vec![expected]);

    assert_eq!(migrations(&client).await, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let formats: Vec<i32> = client
        .query(&format!("SELECT DISTINCT version FROM {RECORDS_TABLE}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(formats, [RECORD_VERSION], "old rows are record format 1");
}

#[tokio::test]
async fn a_new_database_records_every_migration_once_and_reopening_keeps_the_data() {
    let db = support::fresh_database().await;
    let store = PostgresStore::connect(&db, "w").await.unwrap();
    assert_eq!((store.migrated_from(), store.schema_version()), (Some(0), SCHEMA_VERSION));
    store.save(&[stream(1)]).await.unwrap();
    drop(store);
    let client = support::connect(&db).await;
    let recorded = migrations(&client).await;
    assert_eq!(recorded, (1..=SCHEMA_VERSION).collect::<Vec<_>>());

    let again = PostgresStore::connect(&db, "w").await.unwrap();
    assert_eq!(again.migrated_from(), None);
    assert_eq!(again.load().await.unwrap(), Snapshot::default().apply(&[stream(1)]));
    assert_eq!(migrations(&client).await, recorded, "no new rows");
}

#[tokio::test]
async fn workers_connecting_at_once_to_a_new_database_migrate_it_once() {
    let db = support::fresh_database().await;
    let (a, b, c) = tokio::join!(
        PostgresStore::connect(&db, "a"),
        PostgresStore::connect(&db, "b"),
        PostgresStore::connect(&db, "c"),
    );
    let mut from: Vec<_> = [a, b, c].into_iter().map(|s| s.unwrap().migrated_from()).collect();
    from.sort();
    assert_eq!(from, [None, None, Some(0)]);
    let client = support::connect(&db).await;
    assert_eq!(migrations(&client).await, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_newer_schema_is_refused_and_the_database_left_as_it_was() {
    let db = support::fresh_database().await;
    let store = PostgresStore::connect(&db, "w").await.unwrap();
    store.save(&[stream(1)]).await.unwrap();
    drop(store);
    let client = support::connect(&db).await;
    client
        .batch_execute(&format!("INSERT INTO {MIGRATIONS_TABLE} (version) VALUES (99)"))
        .await
        .unwrap();
    let before = migrations(&client).await;

    match PostgresStore::connect(&db, "w").await {
        Err(PostgresStoreError::SchemaTooNew { found: 99, supported }) => {
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    let err = PostgresStore::connect(&db, "w").await.unwrap_err().to_string();
    assert!(err.contains("99") && err.contains("newer"), "{err}");
    assert_eq!(migrations(&client).await, before, "nothing was recorded");
    assert_eq!(count(&client, "true").await, 1, "no row was touched");
}

#[tokio::test]
async fn a_row_in_an_unknown_record_format_fails_the_load() {
    let db = support::fresh_database().await;
    let store = PostgresStore::connect(&db, "w").await.unwrap();
    store.save(&[stream(1)]).await.unwrap();
    let client = support::connect(&db).await;
    client
        .execute(&format!("UPDATE {RECORDS_TABLE} SET version = $1"), &[&(RECORD_VERSION + 1)])
        .await
        .unwrap();
    match store.load().await {
        Err(PostgresStoreError::UnknownRecordVersion { kind, found, supported }) => {
            assert_eq!(
                (kind.as_str(), found, supported),
                ("local", RECORD_VERSION + 1, RECORD_VERSION)
            );
        }
        other => panic!("expected UnknownRecordVersion, got {other:?}"),
    }
}
