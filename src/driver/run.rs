//! [`Driver::run`]: the loop that fires timers, keeps transport calls in flight and saves the
//! batches nobody else is waiting on.

use std::sync::atomic::Ordering;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};

use super::commit::{Health, lock};
use super::input::Input;
use super::{Driver, STORE_RETRY};
use crate::ids::RequestId;
use crate::outbound::{OutboundFailure, OutboundOutcome, OutboundRequest};
use crate::time::Timestamp;
use crate::traits::{Clock, PeekStore, PeekTransport};

impl<S: PeekStore, T: PeekTransport, C: Clock> Driver<S, T, C> {
    /// The loop: sleeps until the coordinator's next deadline, fires timers, runs transport
    /// calls (≤ `max_in_flight`) and feeds their outcomes back, and saves batches that no call
    /// is saving (withdrawn client peeks), until [`close`](Self::close). Only one `run` works
    /// at a time; a second concurrent call returns at once.
    pub async fn run(&self) {
        let Some(mut kicks) = self.shared.kick_rx.lock().await.take() else { return };
        let mut in_flight: FuturesUnordered<BoxFuture<'_, (u64, RequestId, OutboundOutcome)>> =
            FuturesUnordered::new();
        // After a failed rebuild: no timer work before this (a store that is down would
        // otherwise be hammered with a reload per due timer, in a busy loop).
        let mut store_retry: Option<Timestamp> = None;
        loop {
            if self.shared.closed.load(Ordering::SeqCst) {
                return;
            }
            let (deadline, orphans) = {
                let mut work = lock(&self.shared.work);
                while in_flight.len() < self.shared.config.max_in_flight.max(1) {
                    let Some((generation, request)) = work.sends.pop_front() else { break };
                    in_flight.push(self.transmit(generation, request));
                }
                // A stale machine has no trustworthy deadline: retry the store instead.
                let timer = match work.health {
                    Health::Stale => Some(*store_retry.get_or_insert_with(|| {
                        self.shared.clock.now().saturating_add(STORE_RETRY)
                    })),
                    Health::Ready => work.machine.poll_timeout(),
                };
                let orphans = !work.batch.entries.is_empty() || !work.batch.changes.is_empty();
                (timer, orphans)
            };
            if orphans {
                // Inputs nobody waits on (withdrawals): save them now.
                let _leader = self.shared.commit.lock().await;
                self.commit_batch().await;
                continue;
            }
            let sleep = match deadline {
                Some(at) => self.shared.clock.sleep_until(at).boxed().fuse(),
                None => futures::future::pending().boxed().fuse(),
            };
            futures::pin_mut!(sleep);
            futures::select! {
                () = sleep => {
                    if lock(&self.shared.work).health == Health::Stale {
                        store_retry = None;
                        let _ = self.ensure_ready().await;
                    } else {
                        let _ = self.call(Input::Timeout).await;
                    }
                }
                (generation, id, outcome) = in_flight.select_next_some() => {
                    // A rebuild bumps the generation: the answer is stale.
                    if generation == lock(&self.shared.work).generation {
                        let _ = self.call(Input::Response { id, outcome }).await;
                    }
                }
                _ = kicks.next() => {}
            }
        }
    }

    /// One transport call, bounded by `request_timeout`.
    fn transmit(
        &self,
        generation: u64,
        request: OutboundRequest,
    ) -> BoxFuture<'_, (u64, RequestId, OutboundOutcome)> {
        let id = request.id;
        let give_up = self.shared.clock.now().saturating_add(self.shared.config.request_timeout);
        async move {
            let send = self.shared.transport.send(request).fuse();
            let timeout = self.shared.clock.sleep_until(give_up).fuse();
            futures::pin_mut!(send, timeout);
            let outcome = futures::select! {
                outcome = send => outcome,
                () = timeout => {
                    self.shared.stats.transport_timeouts.fetch_add(1, Ordering::Relaxed);
                    OutboundOutcome::Failed(OutboundFailure::Unreachable)
                }
            };
            (generation, id, outcome)
        }
        .boxed()
    }
}
