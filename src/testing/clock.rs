//! [`ManualClock`]: a [`Clock`] that moves only when told.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;

use crate::Timestamp;
use crate::traits::Clock;

#[derive(Debug, Default)]
struct Inner {
    now: Timestamp,
    next_sleeper: u64,
    sleepers: BTreeMap<u64, (Timestamp, Waker)>,
}

/// A clock for tests: `now()` changes only through [`advance`](Self::advance) and
/// [`set`](Self::set), which wake every sleeper whose deadline has come. Clones share the time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    inner: Arc<Mutex<Inner>>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        let clock = ManualClock::default();
        clock.lock().now = start;
        clock
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock is a bug in the test itself; keep going regardless.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves time forward by `by` and wakes the sleepers now due.
    pub fn advance(&self, by: Duration) {
        let now = self.lock().now.saturating_add(by);
        self.set(now);
    }

    /// Sets the time (backwards too: the machines ignore a backwards step) and wakes the
    /// sleepers now due.
    pub fn set(&self, now: Timestamp) {
        let wakers: Vec<Waker> = {
            let mut inner = self.lock();
            inner.now = now;
            let due: Vec<u64> = inner
                .sleepers
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(id, _)| *id)
                .collect();
            due.into_iter().filter_map(|id| inner.sleepers.remove(&id)).map(|(_, w)| w).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// The earliest deadline anyone is sleeping until, if any.
    pub fn next_sleeper(&self) -> Option<Timestamp> {
        self.lock().sleepers.values().map(|(at, _)| *at).min()
    }

    /// The current time.
    pub fn time(&self) -> Timestamp {
        self.lock().now
    }
}

struct Sleep {
    clock: ManualClock,
    deadline: Timestamp,
    id: Option<u64>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let clock = self.clock.clone();
        let mut inner = clock.lock();
        if inner.now >= self.deadline {
            if let Some(id) = self.id.take() {
                inner.sleepers.remove(&id);
            }
            return Poll::Ready(());
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = inner.next_sleeper;
                inner.next_sleeper += 1;
                self.id = Some(id);
                id
            }
        };
        inner.sleepers.insert(id, (self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.clock.lock().sleepers.remove(&id);
        }
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.time()
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        Sleep { clock: self.clone(), deadline, id: None }.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn advancing_wakes_due_sleepers_only() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000));
        let mut early = clock.sleep_until(Timestamp::from_millis(1_500)).boxed();
        let mut late = clock.sleep_until(Timestamp::from_millis(3_000)).boxed();
        assert!(early.as_mut().now_or_never().is_none());
        assert!(late.as_mut().now_or_never().is_none());
        assert_eq!(clock.next_sleeper(), Some(Timestamp::from_millis(1_500)));
        clock.advance(Duration::from_millis(500));
        assert!(early.as_mut().now_or_never().is_some());
        assert!(late.as_mut().now_or_never().is_none());
        drop(late);
        assert_eq!(clock.next_sleeper(), None, "a dropped sleep leaves nothing behind");
    }

    #[test]
    fn sleeping_until_the_past_is_immediate() {
        let clock = ManualClock::new(Timestamp::from_millis(10));
        assert!(clock.sleep_until(Timestamp::from_millis(10)).now_or_never().is_some());
        assert!(clock.sleep_until(Timestamp::ZERO).now_or_never().is_some());
    }
}
