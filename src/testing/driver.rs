//! [`DriverRig`]: a [`Driver`] on a single-threaded executor, a [`ManualClock`] and a
//! [`ScriptedTransport`], for tests that drive the driver through simulated time.

use std::future::Future;
use std::time::Duration;

use futures::executor::LocalPool;
use futures::future::RemoteHandle;
use futures::task::LocalSpawnExt;

use super::{ManualClock, ScriptedTransport};
use crate::coordinator::ClientPeek;
use crate::driver::{Driver, DriverConfig, DriverError};
use crate::local::LocalGrant;
use crate::time::Timestamp;
use crate::traits::PeekStore;

/// The recipe for testing with a [`Driver`]: the driver, its `run()` loop spawned on a
/// [`LocalPool`], a [`ManualClock`] and a [`ScriptedTransport`] whose delays run on that clock.
///
/// Unlike [`Driver::open`], the rig keeps an `OutboundConfig::jitter_seed` of 0 as it is, so
/// retry timing is the same on every run.
///
/// Nothing happens on its own: spawn the calls you want to make ([`spawn_client_peek`],
/// [`spawn`]), then move time with [`advance`]/[`advance_to`] (which run every task until
/// it stalls at each timer deadline on the way) and collect the answers with [`block`].
/// A remote `client_peek` waits on a transport answer, so it completes only once the rig
/// runs; awaiting it directly with `block` before would wait on the transport's delay forever.
///
/// ```
/// use std::time::Duration;
/// use matrix_peek::testing::{DriverRig, MemoryStore, Reply, TransportKind};
/// use matrix_peek::{ClientPeek, DriverConfig, OutboundOutcome, Residency, RoomAccess, Timestamp};
/// use ruma_common::{RoomVersionId, owned_room_id, owned_server_name, owned_user_id};
///
/// let start = Timestamp::from_millis(1_700_000_000_000);
/// let mut rig = DriverRig::new(DriverConfig::default(), MemoryStore::default(), start);
/// let resident = owned_server_name!("resident.example");
/// // The resident answers the PUT after 3 simulated seconds.
/// let access = RoomAccess::new(RoomVersionId::V11, true, false);
/// let granted = OutboundOutcome::Established {
///     renewal_interval: Duration::from_secs(3600),
///     access,
/// };
/// rig.transport.push(&resident, TransportKind::Peek, Reply::After(Duration::from_secs(3), granted));
///
/// let peek = rig.spawn_client_peek(ClientPeek {
///     user_id: owned_user_id!("@alice:here.example"),
///     device_id: "PHONE".into(),
///     room_id: owned_room_id!("!lobby:resident.example"),
///     joined: false,
///     residency: Residency::Remote,
///     via: vec![resident.clone()],
/// });
/// rig.advance(Duration::from_secs(2));
/// assert_eq!(rig.transport.sent().len(), 1, "the PUT went out");
/// rig.advance(Duration::from_secs(1)); // the answer arrives: the peek is granted
/// let grant = rig.block(peek).expect("granted");
/// assert_eq!(grant.expires_at, start.saturating_add(Duration::from_secs(3 + 3600)));
/// ```
///
/// [`spawn_client_peek`]: Self::spawn_client_peek
/// [`spawn`]: Self::spawn
/// [`advance`]: Self::advance
/// [`advance_to`]: Self::advance_to
/// [`block`]: Self::block
#[derive(Debug)]
pub struct DriverRig<S: PeekStore + Clone + 'static> {
    pool: LocalPool,
    /// The driver under test (clones share it: hand one to each spawned task).
    pub driver: Driver<S, ScriptedTransport, ManualClock>,
    /// The clock the driver and the transport run on.
    pub clock: ManualClock,
    /// The federation: script answers with `push`/`set_default`, read what was sent.
    pub transport: ScriptedTransport,
    /// The store the driver saves to (a clone: stores in the kit share their contents).
    pub store: S,
}

impl<S: PeekStore + Clone + 'static> DriverRig<S> {
    /// A rig at `start` with a fresh clock and a transport on it.
    ///
    /// # Panics
    ///
    /// If the store fails to load or to save what the restore produced (a test setup error).
    pub fn new(config: DriverConfig, store: S, start: Timestamp) -> Self {
        let clock = ManualClock::new(start);
        let transport = ScriptedTransport::with_clock(clock.clone());
        Self::open(config, store, clock, transport)
    }

    /// A rig on a given clock and transport (e.g. to reopen a store after [`crash`](Self::crash)
    /// at the time it crashed): opens the driver at `clock`'s time and spawns its `run()`.
    ///
    /// # Panics
    ///
    /// If the store fails to load or to save what the restore produced (a test setup error).
    pub fn open(
        config: DriverConfig,
        store: S,
        clock: ManualClock,
        transport: ScriptedTransport,
    ) -> Self {
        let mut pool = LocalPool::new();
        let opened = pool.run_until(Driver::open_salted(
            config,
            store.clone(),
            transport.clone(),
            clock.clone(),
            false,
        ));
        let Ok(driver) = opened else { panic!("DriverRig: the store failed to open") };
        let runner = driver.clone();
        pool.spawner()
            .spawn_local(async move { runner.run().await })
            .expect("a LocalPool accepts tasks while it exists");
        pool.run_until_stalled();
        DriverRig { pool, driver, clock, transport, store }
    }

    /// Spawns `fut` on the rig's executor; it makes progress whenever the rig runs. Await the
    /// handle with [`block`](Self::block); dropping the handle cancels the task (for
    /// `client_peek`, that withdraws a waiting peek).
    pub fn spawn<T: 'static>(&self, fut: impl Future<Output = T> + 'static) -> RemoteHandle<T> {
        self.pool
            .spawner()
            .spawn_local_with_handle(fut)
            .expect("a LocalPool accepts tasks while it exists")
    }

    /// Spawns `driver.client_peek(peek)`.
    pub fn spawn_client_peek(
        &self,
        peek: ClientPeek,
    ) -> RemoteHandle<Result<LocalGrant, DriverError<S::Error>>> {
        let driver = self.driver.clone();
        self.spawn(async move { driver.client_peek(peek).await })
    }

    /// Runs `fut` and every spawned task until `fut` completes. Time does not move: a `fut`
    /// that waits on a timer never completes (advance first).
    pub fn block<T>(&mut self, fut: impl Future<Output = T>) -> T {
        self.pool.run_until(fut)
    }

    /// Runs every spawned task until none can make progress without time moving.
    pub fn run_until_stalled(&mut self) {
        self.pool.run_until_stalled();
    }

    /// Moves time to `t`, stopping at every sleeper's deadline on the way so each timer fires
    /// at its own time and what it causes runs before the next one. Never moves time back.
    pub fn advance_to(&mut self, t: Timestamp) {
        self.pool.run_until_stalled();
        while let Some(next) = self.clock.next_sleeper() {
            if next > t {
                break;
            }
            self.clock.set(next.max(self.clock.time()));
            self.pool.run_until_stalled();
        }
        if self.clock.time() < t {
            self.clock.set(t);
        }
        self.pool.run_until_stalled();
    }

    /// [`advance_to`](Self::advance_to) `by` from now.
    pub fn advance(&mut self, by: Duration) {
        let t = self.clock.time().saturating_add(by);
        self.advance_to(t);
    }

    /// Closes the driver and drops everything but the store and the clock: a crash as far as
    /// the store is concerned. Reopen with [`open`](Self::open).
    pub fn crash(mut self) -> (S, ManualClock) {
        self.driver.close();
        self.pool.run_until_stalled();
        let DriverRig { store, clock, .. } = self;
        (store, clock)
    }
}
