//! [`SystemClock`]: the only code in the crate that reads the system time.

use std::time::Duration;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::time::Timestamp;
use crate::traits::Clock;

/// The system's wall clock, for production hosts. The only code in the crate that reads the
/// system time. `sleep_until` needs a timer from the host's runtime: wrap it with
/// [`SystemClock::new`].
pub struct SystemClock {
    sleep: Box<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>,
}

impl std::fmt::Debug for SystemClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemClock").finish_non_exhaustive()
    }
}

impl SystemClock {
    /// A system clock that sleeps with the host runtime's timer, e.g.
    /// `SystemClock::new(|d| Box::pin(tokio::time::sleep(d)))`.
    pub fn new(sleep: impl Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static) -> Self {
        SystemClock { sleep: Box::new(sleep) }
    }
}

#[async_trait]
impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the system clock
    fn now(&self) -> Timestamp {
        let since_epoch =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_millis(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    async fn sleep_until(&self, deadline: Timestamp) {
        // Re-check after waking: timers may fire early or the wall clock may have moved.
        loop {
            let now = self.now();
            if now >= deadline {
                return;
            }
            (self.sleep)(deadline.saturating_duration_since(now)).await;
        }
    }
}
