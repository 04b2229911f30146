//! The testing kit's stores against `store_conformance` (docs/architecture.md §10, §13).

use futures::executor::block_on;
use matrix_peek::PeekStore;
use matrix_peek::testing::{FlakyStore, MemoryStore, store_conformance};

// docs/architecture.md §10: the in-memory store meets the storage contract (save, reload, restore equals;
// idempotent saves; order within a batch; reopen).
#[test]
fn memory_store_passes_store_conformance() {
    let store = MemoryStore::new();
    block_on(store_conformance(|| {
        let reopened = store.clone();
        async move { reopened }
    }));
    assert!(!store.is_empty(), "conformance left its records in the shared store");
}

// docs/architecture.md §10: a FlakyStore with failures off is just as good.
#[test]
fn flaky_store_with_failures_off_passes_store_conformance() {
    let memory = MemoryStore::new();
    block_on(store_conformance(|| {
        let reopened = FlakyStore::new(memory.clone());
        async move { reopened }
    }));
    assert!(!memory.is_empty());
}

// docs/architecture.md §13: a failing save writes nothing (the batch is atomic); a failing load fails.
#[test]
fn flaky_store_failures_are_atomic() {
    let memory = MemoryStore::new();
    let flaky = FlakyStore::new(memory.clone());
    block_on(store_conformance(|| {
        let reopened = flaky.clone();
        async move { reopened }
    }));
    let before = memory.snapshot();
    flaky.fail_saves(true);
    let changes: Vec<_> = {
        use matrix_peek::Change;
        use matrix_peek::LocalChange;
        before.local.iter().map(|r| Change::Local(LocalChange::Remove(r.key()))).collect()
    };
    assert!(block_on(flaky.save(&changes)).is_err());
    assert_eq!(memory.snapshot(), before, "a failed save writes nothing");
    flaky.fail_loads(true);
    assert!(block_on(flaky.load()).is_err());
    flaky.fail_loads(false);
    flaky.fail_saves(false);
    assert_eq!(block_on(flaky.load()).unwrap(), before);
}
