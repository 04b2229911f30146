//! [`store_conformance`]: the checks every [`PeekStore`] must pass.

use std::future::Future;
use std::time::Duration;

use ruma_common::{
    RoomVersionId, owned_device_id, owned_room_id, owned_server_name, owned_user_id,
};

use crate::coordinator::{Change, Snapshot};
use crate::coordinator::{ClientPeek, ClientPeekReply, Output, Peeking, PeekingConfig, Residency};
use crate::outbound::{OutboundOutcome, OutboundRequestKind};
use crate::traits::PeekStore;
use crate::{RoomAccess, Timestamp};

/// Drives a coordinator through every kind of record and returns the changes it asked to
/// persist, in order, with the coordinator itself.
fn realistic_changes(now: Timestamp) -> (Vec<Change>, Peeking) {
    let mut peeking = Peeking::new(PeekingConfig::default());
    let mut changes = Vec::new();
    let access = RoomAccess::new(RoomVersionId::V10, true, false);
    let user = owned_user_id!("@alice:local.test");
    let device = owned_device_id!("PHONE");
    let resident = owned_room_id!("!resident:local.test");
    let remote = owned_room_id!("!remote:remote.test");
    let peer = owned_server_name!("peer.test");

    let _ = peeking.handle_client_peek(
        now,
        ClientPeek {
            user_id: user.clone(),
            device_id: device.clone(),
            room_id: resident.clone(),
            joined: false,
            residency: Residency::Resident(access.clone()),
            via: vec![],
        },
    );
    let _ = peeking.handle_inbound_peek(
        now,
        &peer,
        &resident,
        "peek1",
        &[RoomVersionId::V10],
        Some(&access),
    );
    let reply = peeking.handle_client_peek(
        now,
        ClientPeek {
            user_id: user,
            device_id: device,
            room_id: remote,
            joined: false,
            residency: Residency::Remote,
            via: vec![owned_server_name!("remote.test")],
        },
    );
    assert!(matches!(reply, ClientPeekReply::Pending(_)), "a remote peek waits on federation");
    let mut sends = Vec::new();
    while let Some(output) = peeking.poll_output() {
        match output {
            Output::Persist(change) => changes.push(change),
            Output::Send(request) => sends.push(request),
            _ => {}
        }
    }
    for request in sends {
        if matches!(request.kind, OutboundRequestKind::Peek { .. }) {
            peeking.handle_response(
                now,
                request.id,
                OutboundOutcome::Established {
                    renewal_interval: Duration::from_secs(3600),
                    access: access.clone(),
                },
            );
        }
    }
    while let Some(output) = peeking.poll_output() {
        if let Output::Persist(change) = output {
            changes.push(change);
        }
    }
    (changes, peeking)
}

fn assert_same_state(a: &Peeking, b: &Peeking) {
    assert_eq!(a.poll_timeout(), b.poll_timeout(), "restored deadlines differ");
    assert_eq!(a.local().len(), b.local().len(), "restored local peeks differ");
    assert_eq!(a.inbound().len(), b.inbound().len(), "restored inbound peeks differ");
    assert_eq!(a.outbound().len(), b.outbound().len(), "restored outbound peeks differ");
}

/// Checks a [`PeekStore`] against the storage contract (`crate::traits` module docs).
///
/// `open` must return a store over the **same** underlying storage each time it is called,
/// empty on the first call (a fresh database file, a fresh schema, a shared in-memory map).
/// Panics with a message naming the broken rule.
///
/// Checked: an empty store loads empty; a batch with every record kind loads back as
/// `Snapshot::apply` says; saving the same batch again changes nothing (idempotent); changes
/// apply in order within a batch (upsert then remove of one key leaves nothing, remove then
/// upsert leaves the record); removing a missing key is fine; a reopened store loads the same;
/// and a coordinator restored from the loaded snapshot has the same peeks and deadlines as the
/// one that produced the changes.
pub async fn store_conformance<S, F, Fut>(mut open: F)
where
    S: PeekStore,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let now = Timestamp::from_millis(1_700_000_000_000);
    let store = open().await;
    let empty = store.load().await.expect("load of an empty store");
    assert_eq!(empty, Snapshot::default(), "a new store must load empty");

    let (changes, original) = realistic_changes(now);
    assert!(
        changes.iter().any(|c| matches!(c, Change::Local(_))),
        "the scenario makes local records"
    );
    assert!(
        changes.iter().any(|c| matches!(c, Change::Inbound(_))),
        "the scenario makes inbound records"
    );
    assert!(
        changes.iter().any(|c| matches!(c, Change::Outbound(_))),
        "the scenario makes outbound records"
    );
    let expected = Snapshot::default().apply(&changes);

    store.save(&changes).await.expect("save");
    let loaded = Snapshot::default().apply(&to_changes(&store.load().await.expect("load")));
    assert_eq!(loaded, expected, "load must return what the saved batch says");

    store.save(&changes).await.expect("second save of the same batch");
    let again = Snapshot::default().apply(&to_changes(&store.load().await.expect("load")));
    assert_eq!(again, expected, "saving the same batch twice must change nothing");

    // Order within one batch, and removal of missing keys.
    let first_local = expected.local.first().cloned().expect("the scenario has a local record");
    let key = first_local.key();
    store
        .save(&[
            Change::Local(crate::local::LocalChange::Remove(key.clone())),
            Change::Local(crate::local::LocalChange::Remove(key.clone())),
            Change::Local(crate::local::LocalChange::Upsert(first_local.clone())),
        ])
        .await
        .expect("save");
    let after = Snapshot::default().apply(&to_changes(&store.load().await.expect("load")));
    assert_eq!(after, expected, "remove then upsert in one batch must leave the record");
    store
        .save(&[
            Change::Local(crate::local::LocalChange::Upsert(first_local.clone())),
            Change::Local(crate::local::LocalChange::Remove(key.clone())),
        ])
        .await
        .expect("save");
    let removed = Snapshot::default().apply(&to_changes(&store.load().await.expect("load")));
    assert!(
        !removed.local.iter().any(|r| r.key() == key),
        "upsert then remove in one batch must leave nothing"
    );
    store
        .save(&[Change::Local(crate::local::LocalChange::Upsert(first_local))])
        .await
        .expect("save");

    // Reopen.
    drop(store);
    let reopened = open().await;
    let snapshot = reopened.load().await.expect("load after reopen");
    let normalised = Snapshot::default().apply(&to_changes(&snapshot));
    assert_eq!(normalised, expected, "a reopened store must load what was saved");

    // Restore.
    let restored = Peeking::restore(now, PeekingConfig::default(), snapshot);
    assert_same_state(&original, &restored);
}

/// A snapshot as upserts, so two snapshots can be compared independent of record order.
fn to_changes(snapshot: &Snapshot) -> Vec<Change> {
    use crate::coordinator::RemoteRoomChange;
    use crate::inbound::InboundChange;
    use crate::local::LocalChange;
    use crate::outbound::OutboundChange;
    let mut changes = Vec::new();
    changes.extend(snapshot.local.iter().cloned().map(|r| Change::Local(LocalChange::Upsert(r))));
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
