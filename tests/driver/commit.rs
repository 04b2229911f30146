//! Group commit and read isolation (docs/architecture.md §8.3): concurrent calls share one
//! `save`; no lock is held across it and reads never wait on it; a read never shows a call that
//! has not been saved, or that failed; a failed batch fails exactly its calls.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::future::RemoteHandle;
use matrix_peek::testing::{MemoryStore, StoreFault};
use matrix_peek::{Change, DriverConfig, DriverError, PeekStore, Snapshot};
use ruma_common::{OwnedServerName, RoomVersionId};

use crate::support::*;

/// A store whose saves wait at a gate the test holds, and fail on demand; it counts saves.
#[derive(Clone, Default)]
struct GatedStore {
    inner: MemoryStore,
    gate: Arc<futures::lock::Mutex<()>>,
    /// Results of the next saves (`false`: fail); empty means succeed.
    script: Arc<Mutex<VecDeque<bool>>>,
    saves: Arc<Mutex<Vec<usize>>>,
}

#[async_trait]
impl PeekStore for GatedStore {
    type Error = StoreFault;

    async fn load(&self) -> Result<Snapshot, StoreFault> {
        Ok(self.inner.snapshot())
    }

    async fn save(&self, changes: &[Change]) -> Result<(), StoreFault> {
        let _open = self.gate.lock().await;
        self.saves.lock().unwrap().push(changes.len());
        if self.script.lock().unwrap().pop_front() == Some(false) {
            return Err(StoreFault);
        }
        self.inner.save(changes).await.map_err(|never| match never {})
    }
}

fn server(n: usize) -> OwnedServerName {
    format!("s{n}.example").try_into().unwrap()
}

type Rigged = Rig<GatedStore>;

fn inbound_peek(rig: &Rigged, n: usize) -> RemoteHandle<Result<(), String>> {
    let d = rig.driver.clone();
    rig.spawn(async move {
        d.inbound_peek(&server(n), &room("r"), "p1", &[RoomVersionId::V10], Some(&readable()))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
}

fn destinations<S: PeekStore + Clone + 'static>(rig: &mut Rig<S>) -> Vec<String> {
    let d = rig.driver.clone();
    let mut out = rig.block(async move {
        d.read(|p| p.destinations(&room("r")).map(|s| s.to_string()).collect::<Vec<_>>()).await
    });
    out.sort();
    out
}

#[test]
fn reads_never_wait_on_a_save_and_never_show_an_unsaved_call() {
    let store = GatedStore::default();
    let mut rig = Rig::new(DriverConfig::default(), store.clone(), T0);
    let gate = rig.block(store.gate.lock());
    let call = inbound_peek(&rig, 1);
    rig.run_until_stalled();
    assert_eq!(store.saves.lock().unwrap().len(), 0, "the save is waiting at the gate");
    // The read completes while the save is in flight, and shows the committed state only.
    assert!(destinations(&mut rig).is_empty(), "an unsaved call is invisible");
    drop(gate);
    rig.block(call).expect("saved");
    assert_eq!(destinations(&mut rig), ["s1.example"]);
}

#[test]
fn concurrent_calls_share_one_save() {
    let store = GatedStore::default();
    let mut rig = Rig::new(DriverConfig::default(), store.clone(), T0);
    let gate = rig.block(store.gate.lock());
    let first = inbound_peek(&rig, 0);
    rig.run_until_stalled();
    // While the first batch is being saved, 50 more calls arrive: they form the next batch.
    let rest: Vec<_> = (1..=50).map(|n| inbound_peek(&rig, n)).collect();
    rig.run_until_stalled();
    drop(gate);
    rig.block(first).unwrap();
    for call in rest {
        rig.block(call).unwrap();
    }
    let saves = store.saves.lock().unwrap().clone();
    assert_eq!(saves.len(), 2, "one save for the first call, one for the fifty: {saves:?}");
    assert_eq!(destinations(&mut rig).len(), 51);
    let stats = rig.driver.stats();
    assert_eq!((stats.batches, stats.batched_calls), (2, 51));
}

#[test]
fn a_failed_save_fails_exactly_the_calls_in_its_batch() {
    let store = GatedStore::default();
    store.script.lock().unwrap().push_back(false); // the first save fails
    let mut rig = Rig::new(DriverConfig::default(), store.clone(), T0);
    let gate = rig.block(store.gate.lock());
    let failing = inbound_peek(&rig, 0);
    rig.run_until_stalled();
    let queued: Vec<_> = (1..=3).map(|n| inbound_peek(&rig, n)).collect();
    rig.run_until_stalled();
    drop(gate);
    let err = rig.block(failing).unwrap_err();
    assert!(err.contains("store error"), "{err}");
    for call in queued {
        rig.block(call).expect("not in the failed batch: applied again and saved");
    }
    assert_eq!(destinations(&mut rig), ["s1.example", "s2.example", "s3.example"]);
    assert_eq!(rig.driver.stats().save_failures, 1);
}

#[test]
fn a_call_that_failed_with_the_store_down_is_never_read() {
    // docs/architecture.md §13.4: a save and the reload after it both fail.
    let flaky = matrix_peek::testing::FlakyStore::new(MemoryStore::new());
    let mut rig = Rig::new(DriverConfig::default(), flaky.clone(), T0);
    flaky.fail_saves(true);
    flaky.fail_loads(true);
    let d = rig.driver.clone();
    let put = rig.block(async move {
        d.inbound_peek(&peer(), &room("r"), "p1", &[RoomVersionId::V10], Some(&readable())).await
    });
    assert!(matches!(put, Err(DriverError::Store(_))), "{put:?}");
    let d = rig.driver.clone();
    let peek = rig.block(async move { d.client_peek(resident_peek(room("r"), phone())).await });
    assert!(matches!(peek, Err(DriverError::Store(_))), "still down: {peek:?}");
    assert!(destinations(&mut rig).is_empty(), "the refused PUT is not read");
    let d = rig.driver.clone();
    let delta = rig.block(async move { d.read(|p| p.sync_delta(&alice(), &phone(), None)).await });
    assert!(delta.started.is_empty(), "the refused /peek is not read");
    // The store comes back: the next call rebuilds and works.
    flaky.fail_saves(false);
    flaky.fail_loads(false);
    let d = rig.driver.clone();
    rig.block(async move {
        d.inbound_peek(&peer(), &room("r"), "p1", &[RoomVersionId::V10], Some(&readable())).await
    })
    .expect("works again");
    assert_eq!(destinations(&mut rig), [peer().to_string()]);
}
