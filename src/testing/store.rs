//! [`MemoryStore`] and [`FlakyStore`].

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::coordinator::{Change, Snapshot, SnapshotMaps};
use crate::traits::PeekStore;

/// An in-memory [`PeekStore`]. Clones share the same data, so "reopening" is a clone.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    maps: Arc<Mutex<SnapshotMaps>>,
    saves: Arc<AtomicUsize>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SnapshotMaps> {
        // Saves apply whole batches under the lock, so a poisoned lock still holds whole batches.
        self.maps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What is stored now.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().to_snapshot()
    }

    /// Number of records stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Number of `save` calls so far.
    pub fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl PeekStore for MemoryStore {
    type Error = Infallible;

    async fn load(&self) -> Result<Snapshot, Infallible> {
        Ok(self.snapshot())
    }

    async fn save(&self, changes: &[Change]) -> Result<(), Infallible> {
        self.lock().apply(changes);
        self.saves.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// The error a [`FlakyStore`] fails with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected store fault")]
pub struct StoreFault;

/// A [`MemoryStore`] that fails on demand: while [`fail_saves`](Self::fail_saves) is on, every
/// `save` fails and writes nothing (the batch is atomic); likewise loads.
#[derive(Debug, Clone, Default)]
pub struct FlakyStore {
    inner: MemoryStore,
    fail_saves: Arc<AtomicBool>,
    fail_loads: Arc<AtomicBool>,
}

impl FlakyStore {
    /// A flaky store over `inner` (share it to look at what was stored).
    pub fn new(inner: MemoryStore) -> Self {
        FlakyStore { inner, ..Default::default() }
    }

    /// Makes every following `save` fail (`true`) or succeed (`false`).
    pub fn fail_saves(&self, fail: bool) {
        self.fail_saves.store(fail, Ordering::SeqCst);
    }

    /// Makes every following `load` fail (`true`) or succeed (`false`).
    pub fn fail_loads(&self, fail: bool) {
        self.fail_loads.store(fail, Ordering::SeqCst);
    }

    /// The store underneath.
    pub fn inner(&self) -> &MemoryStore {
        &self.inner
    }
}

#[async_trait]
impl PeekStore for FlakyStore {
    type Error = StoreFault;

    async fn load(&self) -> Result<Snapshot, StoreFault> {
        if self.fail_loads.load(Ordering::SeqCst) {
            return Err(StoreFault);
        }
        Ok(self.inner.snapshot())
    }

    async fn save(&self, changes: &[Change]) -> Result<(), StoreFault> {
        if self.fail_saves.load(Ordering::SeqCst) {
            return Err(StoreFault);
        }
        let Ok(()) = self.inner.save(changes).await;
        Ok(())
    }
}
