//! The worker thread: owns the connection and runs one command at a time, in the order sent.

use std::sync::mpsc::Receiver;

use futures::channel::oneshot;
use matrix_peek::RemoteRoomChange;
use matrix_peek::{Change, InboundChange, LocalChange, OutboundChange, Snapshot};
use rusqlite::{Connection, Transaction, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{RECORD_VERSION, SqliteStoreError};

/// The answer to one command.
type Reply<T> = oneshot::Sender<Result<T, SqliteStoreError>>;

/// What the store asks of its worker.
pub(crate) enum Command {
    /// Read every record.
    Load(Reply<Snapshot>),
    /// Apply one batch in one transaction.
    Save(Vec<Change>, Reply<()>),
    /// Close the connection and stop.
    Close(Reply<()>),
}

/// The worker's loop: until the store is closed or dropped (the channel disconnects once the
/// commands already sent are done). An answer nobody waits for any more is dropped.
pub(crate) fn run(mut conn: Connection, commands: Receiver<Command>) {
    while let Ok(command) = commands.recv() {
        match command {
            Command::Load(reply) => {
                let _ = reply.send(load(&mut conn));
            }
            Command::Save(changes, reply) => {
                let _ = reply.send(save(&mut conn, &changes));
            }
            Command::Close(reply) => {
                let _ = reply.send(conn.close().map_err(|(_, e)| e.into()));
                return;
            }
        }
    }
}

/// Every record, table by table, in one read transaction (one consistent state).
fn load(conn: &mut Connection) -> Result<Snapshot, SqliteStoreError> {
    let tx = conn.transaction()?;
    let snapshot = Snapshot {
        local: read_table(&tx, "local_peeks")?,
        inbound: read_table(&tx, "inbound_peeks")?,
        outbound: read_table(&tx, "outbound_peeks")?,
        remote_rooms: read_table(&tx, "remote_rooms")?,
    };
    tx.commit()?;
    Ok(snapshot)
}

/// One batch in one `BEGIN IMMEDIATE … COMMIT`. Dropping `tx` without `commit` (any `?`
/// below) rolls everything back.
fn save(conn: &mut Connection, changes: &[Change]) -> Result<(), SqliteStoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for change in changes {
        apply(&tx, change)?;
    }
    tx.commit()?;
    Ok(())
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
        "INSERT INTO {table} (key, record, version) VALUES (?1, ?2, ?3)
         ON CONFLICT(key) DO UPDATE SET record = excluded.record, version = excluded.version"
    );
    tx.prepare_cached(&sql)?.execute(params![
        serde_json::to_string(key)?,
        serde_json::to_string(record)?,
        RECORD_VERSION
    ])?;
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
    tx: &Transaction<'_>,
    table: &'static str,
) -> Result<Vec<R>, SqliteStoreError> {
    let mut stmt =
        tx.prepare_cached(&format!("SELECT version, record FROM {table} ORDER BY key"))?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (version, record) = row?;
        if version != i64::from(RECORD_VERSION) {
            return Err(SqliteStoreError::UnknownRecordVersion {
                table,
                found: version,
                supported: RECORD_VERSION,
            });
        }
        out.push(serde_json::from_str(&record)?);
    }
    Ok(out)
}
