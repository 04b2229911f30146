//! Group commit: inputs are applied to the working machine at once, under a lock held only for
//! that; their changes join the current batch; one caller at a time saves a whole batch (no lock
//! held during the save), then replays its inputs on the committed view that reads see,
//! releases its effects, and answers every call in it. A failed batch fails exactly its calls,
//! and the machine is rebuilt from the store (the inputs queued behind it are applied again).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::channel::oneshot;

use super::input::{Input, Reply};
use super::{Driver, DriverError};
use crate::coordinator::{Change, ClientPeekReply, Output, PeekError, Peeking};
use crate::ids::RequestId;
use crate::local::LocalGrant;
use crate::outbound::OutboundRequest;
use crate::time::Timestamp;
use crate::traits::{Clock, PeekStore, PeekTransport};

/// The answer a call gets once its batch is saved (or failed).
pub(super) type Done<E> = Result<Reply, DriverError<E>>;

/// One call in a batch.
pub(super) struct Entry<E: std::error::Error + 'static> {
    pub(super) now: Timestamp,
    pub(super) input: Input,
    pub(super) reply: Reply,
    /// `None` for inputs nobody waits on (timers, answers, withdrawals).
    pub(super) done: Option<oneshot::Sender<Done<E>>>,
}

/// Inputs applied to the working machine and not saved yet, with what they produced.
pub(super) struct Batch<E: std::error::Error + 'static> {
    pub(super) entries: Vec<Entry<E>>,
    pub(super) changes: Vec<Change>,
    pub(super) effects: Vec<Output>,
}

impl<E: std::error::Error + 'static> Default for Batch<E> {
    fn default() -> Self {
        Batch { entries: Vec::new(), changes: Vec::new(), effects: Vec::new() }
    }
}

/// Whether the working machine can take inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Health {
    /// It equals what the store holds plus the current batch.
    Ready,
    /// A rebuild from the store failed: no input until one succeeds.
    Stale,
}

/// The working side: the machine every input goes to, and what waits on it.
pub(super) struct Work<E: std::error::Error + 'static> {
    pub(super) machine: Peeking,
    pub(super) health: Health,
    /// Bumped by every rebuild; answers to requests of an older generation are dropped.
    pub(super) generation: u64,
    pub(super) batch: Batch<E>,
    /// Requests whose batch is saved, waiting for a transport slot.
    pub(super) sends: VecDeque<(u64, OutboundRequest)>,
    /// Client peeks waiting on federation, by the coordinator's pending id.
    pub(super) waiters: HashMap<RequestId, oneshot::Sender<Result<LocalGrant, PeekError>>>,
}

impl<E: std::error::Error + 'static> Work<E> {
    /// Moves the machine's outputs into the current batch.
    pub(super) fn collect(&mut self) {
        while let Some(output) = self.machine.poll_output() {
            match output {
                Output::Persist(change) => self.batch.changes.push(change),
                other => self.batch.effects.push(other),
            }
        }
    }

    /// Applies `input` at `now` and queues it (and what it produced) in the current batch.
    pub(super) fn submit(
        &mut self,
        now: Timestamp,
        input: Input,
        done: Option<oneshot::Sender<Done<E>>>,
    ) -> Reply {
        let reply = input.apply(&mut self.machine, now);
        self.collect();
        self.batch.entries.push(Entry { now, input, reply: reply.clone(), done });
        reply
    }
}

/// Lock a std mutex; the locks are never held across an await, so poisoning only follows a
/// panic in the machine, after which the data is still the best there is.
pub(super) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: PeekStore, T: PeekTransport, C: Clock> Driver<S, T, C> {
    /// Waits until the batch holding the call behind `rx` is saved (saving it, and whatever
    /// joined it, when no other caller is), and returns the call's answer.
    pub(super) async fn commit_until(
        &self,
        mut rx: oneshot::Receiver<Done<S::Error>>,
    ) -> Done<S::Error> {
        loop {
            match rx.try_recv() {
                Ok(Some(done)) => return done,
                Err(oneshot::Canceled) => return Err(DriverError::Interrupted),
                Ok(None) => {}
            }
            let _leader = self.shared.commit.lock().await;
            match rx.try_recv() {
                Ok(Some(done)) => return done,
                Err(oneshot::Canceled) => return Err(DriverError::Interrupted),
                // Saves the batch this call is in (or, after a rebuild re-queued it, the one
                // it is in now: the loop goes round).
                Ok(None) => self.commit_batch().await,
            }
        }
    }

    /// Saves the current batch, if any. The caller holds the commit lock.
    pub(super) async fn commit_batch(&self) {
        let batch = std::mem::take(&mut lock(&self.shared.work).batch);
        if batch.entries.is_empty() && batch.changes.is_empty() && batch.effects.is_empty() {
            return;
        }
        let saved = if batch.changes.is_empty() {
            Ok(())
        } else {
            self.shared.store.save(&batch.changes).await
        };
        match saved {
            Ok(()) => {
                crate::log::debug!(
                    calls = batch.entries.len(),
                    changes = batch.changes.len(),
                    "batch saved"
                );
                self.shared.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .stats
                    .batched_calls
                    .fetch_add(batch.entries.len() as u64, Ordering::Relaxed);
                {
                    // Replay on the committed view (deterministic), so reads see the batch.
                    let mut view = self.shared.view.write().unwrap_or_else(|p| p.into_inner());
                    for entry in &batch.entries {
                        entry.input.apply(&mut view, entry.now);
                    }
                    while view.poll_output().is_some() {}
                }
                self.release(batch.effects);
                for entry in batch.entries {
                    if let Some(done) = entry.done {
                        let _ = done.send(Ok(entry.reply)); // the caller may have gone away
                    }
                }
            }
            Err(error) => {
                self.shared.stats.save_failures.fetch_add(1, Ordering::Relaxed);
                crate::log::warning!(error = %error, calls = batch.entries.len(), "store save failed; rebuilding from the store");
                let error = Arc::new(error);
                for entry in batch.entries {
                    if let Some(done) = entry.done {
                        let _ = done.send(Err(DriverError::Store(Arc::clone(&error))));
                    }
                }
                let _ = self.rebuild().await;
            }
        }
        self.kick();
    }

    /// Releases a saved batch's effects in order: sends queue for the transport, waiting client
    /// peeks are answered, notifications go to the stream.
    fn release(&self, effects: Vec<Output>) {
        let mut work = lock(&self.shared.work);
        let generation = work.generation;
        for effect in effects {
            match effect {
                Output::Send(request) => work.sends.push_back((generation, request)),
                Output::ClientPeekDone { id, result } => {
                    if let Some(waiter) = work.waiters.remove(&id) {
                        let _ = waiter.send(result); // the caller may have gone away
                    }
                }
                Output::Persist(_) => {} // separated when the batch was built
                notification => self.notify(notification),
            }
        }
    }

    /// Replaces the machine with one restored from the store, saves what the restore wrote, and
    /// makes it the committed view too. Waiting client peeks are interrupted, answers to
    /// requests sent before are ignored from now on, and inputs queued behind the failed batch
    /// are applied again on the rebuilt machine (their callers get the new answers). When the
    /// store cannot be read or written, the machine is `Stale` and every call fails until a
    /// rebuild succeeds; reads keep seeing the last committed view. The caller holds the
    /// commit lock.
    pub(super) async fn rebuild(&self) -> Result<(), Arc<S::Error>> {
        self.shared.stats.rebuilds.fetch_add(1, Ordering::Relaxed);
        let (queued, mut carried) = {
            let mut work = lock(&self.shared.work);
            work.generation += 1;
            work.sends.clear();
            let queued = std::mem::take(&mut work.batch);
            // Client peeks of the queued calls keep their waiters (re-keyed below); every other
            // waiter belongs to a peek the rebuild forgets: dropping it answers Interrupted.
            let carried: Vec<_> = queued
                .entries
                .iter()
                .map(|e| match e.reply {
                    Reply::ClientPeek(ClientPeekReply::Pending(id)) => work.waiters.remove(&id),
                    _ => None,
                })
                .collect();
            work.waiters.clear();
            work.health = Health::Stale;
            (queued, carried)
        };
        let restored = match self.shared.store.load().await {
            Ok(snapshot) => {
                let mut machine = Peeking::restore(
                    self.shared.clock.now(),
                    self.shared.config.peeking.clone(),
                    snapshot,
                );
                let (changes, effects) = take_outputs(&mut machine);
                match if changes.is_empty() {
                    Ok(())
                } else {
                    self.shared.store.save(&changes).await
                } {
                    Ok(()) => Ok((machine, effects)),
                    Err(e) => Err(Arc::new(e)),
                }
            }
            Err(e) => Err(Arc::new(e)),
        };
        let (machine, effects) = match restored {
            Ok(restored) => restored,
            Err(error) => {
                crate::log::warning!(error = %error, "rebuild from the store failed; calls fail until it succeeds");
                for entry in queued.entries {
                    if let Some(done) = entry.done {
                        let _ = done.send(Err(DriverError::Store(Arc::clone(&error))));
                    }
                }
                return Err(error);
            }
        };
        *self.shared.view.write().unwrap_or_else(|p| p.into_inner()) = machine.clone();
        let mut work = lock(&self.shared.work);
        work.machine = machine;
        work.health = Health::Ready;
        let generation = work.generation;
        for effect in effects {
            if let Output::Send(request) = effect {
                work.sends.push_back((generation, request));
            }
        }
        let now = self.shared.clock.now();
        for (entry, waiter) in queued.entries.into_iter().zip(carried.iter_mut()) {
            let reply = work.submit(now, entry.input, entry.done);
            if let (Reply::ClientPeek(ClientPeekReply::Pending(id)), Some(waiter)) =
                (reply, waiter.take())
            {
                work.waiters.insert(id, waiter);
            }
        }
        Ok(())
    }

    /// Rebuilds a `Stale` machine before it takes an input. The caller holds no lock.
    pub(super) async fn ensure_ready(&self) -> Result<(), DriverError<S::Error>> {
        if lock(&self.shared.work).health == Health::Ready {
            return Ok(());
        }
        let _leader = self.shared.commit.lock().await;
        if lock(&self.shared.work).health == Health::Ready {
            return Ok(());
        }
        self.rebuild().await.map_err(DriverError::Store)
    }

    /// Sends a notification, counting it when the stream is full.
    pub(super) fn notify(&self, output: Output) {
        let mut notify = lock(&self.shared.notify);
        if notify.try_send(output).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wakes [`run`](Self::run); a full channel means a wake-up is already pending.
    pub(super) fn kick(&self) {
        let _ = lock(&self.shared.kick).try_send(());
    }
}

/// Drains a machine: the batch to persist, and the effects it justifies, each in order.
pub(super) fn take_outputs(machine: &mut Peeking) -> (Vec<Change>, Vec<Output>) {
    let mut changes = Vec::new();
    let mut effects = Vec::new();
    while let Some(output) = machine.poll_output() {
        match output {
            Output::Persist(change) => changes.push(change),
            other => effects.push(other),
        }
    }
    (changes, effects)
}
