//! The harness of the driver tests (`Rig`: a `Driver` on a `LocalPool`, a `ManualClock` and a
//! `ScriptedTransport`) and their fixtures.

use std::time::Duration;

use futures::executor::LocalPool;
use futures::future::RemoteHandle;
use futures::task::LocalSpawnExt;
use matrix_peek::testing::{ManualClock, ScriptedTransport};
use matrix_peek::{
    ClientPeek, Driver, DriverConfig, DriverError, LocalGrant, PeekStore, Residency, RoomAccess,
    Timestamp,
};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId, owned_device_id,
    owned_server_name, owned_user_id,
};

pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

pub fn at(ms: u64) -> Timestamp {
    T0.saturating_add(Duration::from_millis(ms))
}

pub fn alice() -> OwnedUserId {
    owned_user_id!("@alice:local.test")
}
pub fn phone() -> OwnedDeviceId {
    owned_device_id!("PHONE")
}
pub fn tablet() -> OwnedDeviceId {
    owned_device_id!("TABLET")
}
pub fn remote_server() -> OwnedServerName {
    owned_server_name!("remote.test")
}
pub fn peer() -> OwnedServerName {
    owned_server_name!("peer.test")
}
pub fn room(name: &str) -> OwnedRoomId {
    OwnedRoomId::try_from(format!("!{name}:somewhere.test")).unwrap()
}
pub fn readable() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V10, true, false)
}

pub fn remote_peek(room_id: OwnedRoomId, device: OwnedDeviceId) -> ClientPeek {
    ClientPeek {
        user_id: alice(),
        device_id: device,
        room_id,
        joined: false,
        residency: Residency::Remote,
        via: vec![remote_server()],
    }
}

pub fn resident_peek(room_id: OwnedRoomId, device: OwnedDeviceId) -> ClientPeek {
    ClientPeek {
        user_id: alice(),
        device_id: device,
        room_id,
        joined: false,
        residency: Residency::Resident(readable()),
        via: vec![],
    }
}

pub struct Rig<S: PeekStore + Clone + 'static> {
    pub pool: LocalPool,
    pub clock: ManualClock,
    pub transport: ScriptedTransport,
    pub store: S,
    pub driver: Driver<S, ScriptedTransport, ManualClock>,
}

impl<S: PeekStore + Clone + 'static> Rig<S> {
    /// Opens a driver at `clock`'s time and spawns `run()`.
    pub fn open(
        config: DriverConfig,
        store: S,
        clock: ManualClock,
        transport: ScriptedTransport,
    ) -> Self {
        let mut pool = LocalPool::new();
        let driver = pool
            .run_until(Driver::open(config, store.clone(), transport.clone(), clock.clone()))
            .unwrap_or_else(|_| panic!("open failed"));
        let runner = driver.clone();
        pool.spawner().spawn_local(async move { runner.run().await }).unwrap();
        pool.run_until_stalled();
        Rig { pool, clock, transport, store, driver }
    }

    pub fn new(config: DriverConfig, store: S) -> Self {
        let clock = ManualClock::new(T0);
        let transport = ScriptedTransport::with_clock(clock.clone());
        Self::open(config, store, clock, transport)
    }

    /// Spawns `driver.client_peek(peek)` on the pool, to be driven by `advance` and awaited
    /// with [`Rig::block`].
    pub fn spawn_client_peek(
        &self,
        peek: ClientPeek,
    ) -> RemoteHandle<Result<LocalGrant, DriverError<S::Error>>> {
        let d = self.driver.clone();
        self.pool
            .spawner()
            .spawn_local_with_handle(async move { d.client_peek(peek).await })
            .expect("the pool accepts tasks")
    }

    /// Runs `fut` to completion (time does not move).
    pub fn block<T>(&mut self, fut: impl std::future::Future<Output = T>) -> T {
        self.pool.run_until(fut)
    }

    /// Moves time to `t`, stopping at every sleeper on the way so each fires at its deadline.
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

    pub fn advance(&mut self, by: Duration) {
        let t = self.clock.time().saturating_add(by);
        self.advance_to(t);
    }

    /// Stops `run()` and drops the driver (a crash, as far as the store is concerned).
    pub fn crash(mut self) -> (S, ManualClock) {
        self.driver.close();
        self.pool.run_until_stalled();
        let Rig { store, clock, .. } = self;
        (store, clock)
    }
}
