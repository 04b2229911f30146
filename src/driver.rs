//! [`Driver`]: binds [`Peeking`] to a [`PeekStore`], a [`PeekTransport`] and a [`Clock`]. The
//! flow and the guarantees are on [`Driver`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::channel::{mpsc, oneshot};
use futures::future::{BoxFuture, FutureExt};
use futures::lock::Mutex;
use futures::stream::{FuturesUnordered, Stream, StreamExt};
use ruma_common::{DeviceId, RoomId, RoomVersionId, ServerName, UserId};

use crate::access::RoomAccess;
use crate::coordinator::{
    Change, ClientPeek, ClientPeekReply, Output, PeekError, Peeking, PeekingConfig,
};
use crate::ids::RequestId;
use crate::inbound::{InboundGrant, InboundPeekError};
use crate::local::LocalGrant;
use crate::outbound::{OutboundFailure, OutboundOutcome, OutboundRequest};
use crate::time::Timestamp;
use crate::traits::{Clock, PeekStore, PeekTransport};

/// Configuration of a [`Driver`].
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// The coordinator's configuration.
    pub peeking: PeekingConfig,
    /// Transport calls outstanding at once (default 64); further sends queue.
    pub max_in_flight: usize,
    /// How long a transport call may take before it counts as `Unreachable` (default 60 s).
    pub request_timeout: Duration,
    /// Notifications buffered for [`Driver::notifications`] (default 4 096); beyond it they are
    /// dropped and counted in [`Driver::dropped_notifications`].
    pub notification_capacity: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            peeking: PeekingConfig::default(),
            max_in_flight: 64,
            request_timeout: Duration::from_secs(60),
            notification_capacity: 4096,
        }
    }
}

/// Why a driver call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError<E: std::error::Error + 'static> {
    /// The client peek was refused (locally or by every resident server).
    #[error(transparent)]
    Peek(#[from] PeekError),
    /// The inbound request was refused.
    #[error(transparent)]
    Inbound(#[from] InboundPeekError),
    /// The store failed; the call had no effect (memory was rebuilt from the store).
    #[error("store error: {0}")]
    Store(#[source] E),
    /// The call was waiting on federation when the driver had to rebuild its state (after a
    /// store error) or was dropped; ask again.
    #[error("interrupted; retry")]
    Interrupted,
}

struct State {
    machine: Peeking,
    /// Bumped whenever the machine is rebuilt; answers to older requests are dropped.
    generation: u64,
    sends: VecDeque<(u64, OutboundRequest)>,
    waiters: HashMap<RequestId, oneshot::Sender<Result<LocalGrant, PeekError>>>,
    /// The last rebuild could not make memory equal storage (the load failed, or the restore's
    /// own writes did): `machine` holds unsaved changes and requests that were never sent, so
    /// it takes no input until a rebuild succeeds.
    stale: bool,
}

/// How long [`Driver::run`] waits before retrying the store after a failed save or rebuild.
const STORE_RETRY: Duration = Duration::from_secs(1);

struct Shared<S, T, C> {
    state: Mutex<State>,
    store: S,
    transport: T,
    clock: C,
    config: DriverConfig,
    /// One sender behind a lock: a futures `mpsc` gives every *clone* of a sender its own
    /// guaranteed slot, so sending through fresh clones would never be refused and the channel
    /// would grow without bound.
    kick: std::sync::Mutex<mpsc::Sender<()>>,
    kick_rx: Mutex<Option<mpsc::Receiver<()>>>,
    /// See `kick`: the single sender keeps `notification_capacity` a real bound.
    notify: std::sync::Mutex<mpsc::Sender<Output>>,
    notify_rx: Mutex<Option<mpsc::Receiver<Output>>>,
    dropped: AtomicU64,
    closed: AtomicBool,
}

/// The async shell around [`Peeking`]. Cheap to clone (an `Arc`); every clone drives the same
/// state. Run [`Driver::run`] on one task; call the other methods from anywhere.
///
/// [`Driver`]: binds [`Peeking`] to a [`PeekStore`], a [`PeekTransport`] and a [`Clock`] with
/// `futures` only, on any executor (docs/architecture.md §8).
///
/// ```text
///  host call ──► lock ─► Peeking::handle_* ─► drain outputs ─► store.save(batch) ─┬─ ok ─► effects released, call returns
///                                                                                └─ err ─► machine reloaded from the store, call fails
///  run() ── sleeps until poll_timeout ─► handle_timeout ─► (same settle)
///        └─ keeps ≤ max_in_flight transport.send futures ─► handle_response ─► (same settle)
/// ```
///
/// Guarantees:
/// * **Persist before effect.** Every `Persist` batch a call produces is saved before the call
///   returns and before any `Send` of that batch starts or any notification is released.
/// * **A store error fails the call and loses nothing acknowledged.** The machine is rebuilt
///   from what the store holds, so memory equals storage again; client peeks still waiting on
///   federation fail with [`DriverError::Interrupted`] and responses to requests sent before the
///   rebuild are ignored.
/// * **Concurrency.** Up to [`DriverConfig::max_in_flight`] transport calls run at once inside
///   [`Driver::run`]; inputs and timers are handled while they are outstanding. A call that has
///   not answered after [`DriverConfig::request_timeout`] counts as `Failed(Unreachable)` and
///   frees its slot (its late answer is dropped).
/// * Host notifications (`Wake`, `PeekEnded`, `Expired`, `Established`, `Lost`, `Unavailable`)
///   come out of [`Driver::notifications`], a bounded stream.
///
/// `SystemClock` is the only code in the crate that reads the system time.
pub struct Driver<S, T, C> {
    shared: Arc<Shared<S, T, C>>,
}

impl<S, T, C> Clone for Driver<S, T, C> {
    fn clone(&self) -> Self {
        Driver { shared: Arc::clone(&self.shared) }
    }
}

impl<S, T, C> std::fmt::Debug for Driver<S, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

impl<S: PeekStore, T: PeekTransport, C: Clock> Driver<S, T, C> {
    /// Loads the store, restores the coordinator at `clock.now()`, and saves whatever the
    /// restore produced (re-declared demand, re-sent deletes).
    pub async fn open(
        config: DriverConfig,
        store: S,
        transport: T,
        clock: C,
    ) -> Result<Self, S::Error> {
        let snapshot = store.load().await?;
        let machine = Peeking::restore(clock.now(), config.peeking.clone(), snapshot);
        // A channel of buffer `n` holds `n + 1` messages for its one sender.
        let (kick, kick_rx) = mpsc::channel(0);
        let (notify, notify_rx) = mpsc::channel(config.notification_capacity.max(1) - 1);
        let driver = Driver {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    machine,
                    generation: 0,
                    sends: VecDeque::new(),
                    waiters: HashMap::new(),
                    stale: false,
                }),
                store,
                transport,
                clock,
                config,
                kick: std::sync::Mutex::new(kick),
                kick_rx: Mutex::new(Some(kick_rx)),
                notify: std::sync::Mutex::new(notify),
                notify_rx: Mutex::new(Some(notify_rx)),
                dropped: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        };
        {
            let mut state = driver.shared.state.lock().await;
            driver.settle(&mut state).await?;
        }
        Ok(driver)
    }

    /// The notification stream (`Wake`, `PeekEnded`, `Expired`, `Established`, `Lost`,
    /// `Unavailable`). `None` after the first call: there is one consumer.
    pub async fn notifications(&self) -> Option<impl Stream<Item = Output> + use<S, T, C>> {
        self.shared.notify_rx.lock().await.take()
    }

    /// Notifications dropped because the stream was not read fast enough.
    pub fn dropped_notifications(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Reads the coordinator (queries such as `sync_delta`, `peekers`, `destinations`).
    pub async fn read<R>(&self, f: impl FnOnce(&Peeking) -> R) -> R {
        let state = self.shared.state.lock().await;
        f(&state.machine)
    }

    /// A client's `/peek`. Resolves when the grant is final, also when it waited on federation.
    pub async fn client_peek(&self, peek: ClientPeek) -> Result<LocalGrant, DriverError<S::Error>> {
        let receiver = {
            let mut state = self.shared.state.lock().await;
            self.ensure_fresh(&mut state).await.map_err(DriverError::Store)?;
            let now = self.shared.clock.now();
            match state.machine.handle_client_peek(now, peek) {
                ClientPeekReply::Done(result) => {
                    self.settle(&mut state).await.map_err(DriverError::Store)?;
                    return result.map_err(DriverError::Peek);
                }
                ClientPeekReply::Pending(id) => {
                    let (tx, rx) = oneshot::channel();
                    state.waiters.insert(id, tx);
                    self.settle(&mut state).await.map_err(DriverError::Store)?;
                    rx
                }
            }
        };
        match receiver.await {
            Ok(result) => result.map_err(DriverError::Peek),
            Err(oneshot::Canceled) => Err(DriverError::Interrupted),
        }
    }

    /// A client's `/unpeek`.
    pub async fn client_unpeek(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_client_unpeek(now, user_id, device_id, room_id))
            .await?
            .map_err(Into::into)
    }

    /// A federation `PUT …/peek` (call before taking the snapshot, R37).
    pub async fn inbound_peek(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
        ver: &[RoomVersionId],
        access: Option<&RoomAccess>,
    ) -> Result<InboundGrant, DriverError<S::Error>> {
        self.call(|m, now| m.handle_inbound_peek(now, origin, room_id, peek_id, ver, access))
            .await?
            .map_err(Into::into)
    }

    /// A federation `POST …/renew`.
    pub async fn inbound_renew(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) -> Result<InboundGrant, DriverError<S::Error>> {
        self.call(|m, now| m.handle_inbound_renew(now, origin, room_id, peek_id))
            .await?
            .map_err(Into::into)
    }

    /// A federation `DELETE …/peek`.
    pub async fn inbound_unpeek(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_inbound_unpeek(now, origin, room_id, peek_id))
            .await?
            .map_err(Into::into)
    }

    /// A local user joined the room.
    pub async fn joined(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        access: &RoomAccess,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_joined(now, user_id, room_id, access)).await
    }

    /// This server's last member left the room.
    pub async fn server_left(&self, room_id: &RoomId) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_server_left(now, room_id)).await
    }

    /// The room's history visibility or encryption changed.
    pub async fn access_changed(
        &self,
        room_id: &RoomId,
        access: &RoomAccess,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_access_changed(now, room_id, access)).await
    }

    /// A server is newly denied by the room's ACL.
    pub async fn server_denied(
        &self,
        room_id: &RoomId,
        server: &ServerName,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_server_denied(now, room_id, server)).await
    }

    /// The device synced.
    pub async fn device_synced(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_device_synced(now, user_id, device_id)).await
    }

    /// The device was deleted or logged out.
    pub async fn device_removed(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_device_removed(now, user_id, device_id)).await
    }

    /// The account was deactivated.
    pub async fn user_deactivated(&self, user_id: &UserId) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_user_deactivated(now, user_id)).await
    }

    /// An event of `room_id` arrived through its federated peek: call it for every PDU a
    /// resident relays to us, so a resident that falls silent is noticed in minutes.
    pub async fn remote_event(&self, room_id: &RoomId) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_remote_event(now, room_id)).await
    }

    /// The host's federation traffic says `server` is unreachable: rooms peeked through it move
    /// to another candidate at once.
    pub async fn server_unreachable(
        &self,
        server: &ServerName,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_server_unreachable(now, server)).await
    }

    /// An `expired_peeks` entry arrived from `server`.
    pub async fn remote_expired(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) -> Result<(), DriverError<S::Error>> {
        self.call(|m, now| m.handle_remote_expired(now, server, room_id, peek_id)).await
    }

    /// Stops [`run`](Self::run) (in-flight transport calls are dropped; their requests are
    /// re-issued by the machines' timers after a reopen). Other calls keep working.
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.kick();
    }

    /// The loop: sleeps until the coordinator's next deadline, fires timers, runs transport
    /// calls (≤ `max_in_flight`) and feeds their outcomes back, until [`close`](Self::close).
    /// Only one `run` works at a time; a second concurrent call returns at once.
    pub async fn run(&self) {
        let Some(mut kicks) = self.shared.kick_rx.lock().await.take() else { return };
        let mut in_flight: FuturesUnordered<BoxFuture<'_, (u64, RequestId, OutboundOutcome)>> =
            FuturesUnordered::new();
        // After a store failure: no timer work before this (a store that is down would
        // otherwise be hammered with a reload per due timer, in a busy loop).
        let mut store_retry: Option<Timestamp> = None;
        loop {
            let deadline = {
                let mut state = self.shared.state.lock().await;
                while in_flight.len() < self.shared.config.max_in_flight.max(1) {
                    let Some((generation, request)) = state.sends.pop_front() else { break };
                    in_flight.push(self.transmit(generation, request));
                }
                // A stale machine has no trustworthy deadline: retry the store instead.
                let timer = if state.stale { store_retry } else { state.machine.poll_timeout() };
                match (timer, store_retry) {
                    (Some(at), Some(retry)) => Some(at.max(retry)),
                    (timer, _) => timer,
                }
            };
            let mut sleep = match deadline {
                Some(at) => self.shared.clock.sleep_until(at).fuse(),
                None => futures::future::pending().boxed().fuse(),
            };
            futures::select! {
                () = sleep => {
                    let mut state = self.shared.state.lock().await;
                    let mut ok = self.ensure_fresh(&mut state).await.is_ok();
                    if ok {
                        let now = self.shared.clock.now();
                        state.machine.handle_timeout(now);
                        // A failed save rebuilt the machine from the store; its timers fire
                        // again after `STORE_RETRY`.
                        ok = self.settle(&mut state).await.is_ok();
                    }
                    store_retry = (!ok).then(|| self.shared.clock.now().saturating_add(STORE_RETRY));
                }
                (generation, id, outcome) = in_flight.select_next_some() => {
                    let mut state = self.shared.state.lock().await;
                    // A rebuild (here or earlier) bumps the generation: the answer is stale.
                    let fresh = self.ensure_fresh(&mut state).await.is_ok();
                    if fresh && generation == state.generation {
                        let now = self.shared.clock.now();
                        state.machine.handle_response(now, id, outcome);
                        if self.settle(&mut state).await.is_err() {
                            store_retry = Some(self.shared.clock.now().saturating_add(STORE_RETRY));
                        }
                    }
                }
                _ = kicks.next() => {}
            }
            if self.shared.closed.load(Ordering::SeqCst) {
                return;
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
                () = timeout => OutboundOutcome::Failed(OutboundFailure::Unreachable),
            };
            (generation, id, outcome)
        }
        .boxed()
    }

    /// Runs one coordinator input under the lock and settles its outputs.
    async fn call<R>(
        &self,
        input: impl FnOnce(&mut Peeking, Timestamp) -> R,
    ) -> Result<R, DriverError<S::Error>> {
        let mut state = self.shared.state.lock().await;
        self.ensure_fresh(&mut state).await.map_err(DriverError::Store)?;
        let now = self.shared.clock.now();
        let result = input(&mut state.machine, now);
        self.settle(&mut state).await.map_err(DriverError::Store)?;
        Ok(result)
    }

    /// Drains the coordinator, saves the batch, then releases its effects. On a store error the
    /// effects are dropped and the machine is rebuilt from the store.
    async fn settle(&self, state: &mut State) -> Result<(), S::Error> {
        let (changes, effects) = take_outputs(&mut state.machine);
        if !changes.is_empty()
            && let Err(error) = self.shared.store.save(&changes).await
        {
            // If the rebuild fails too, the machine stays `stale` and the next input retries.
            let _ = self.rebuild(state).await;
            return Err(error);
        }
        for effect in effects {
            match effect {
                Output::Send(request) => state.sends.push_back((state.generation, request)),
                Output::ClientPeekDone { id, result } => {
                    if let Some(waiter) = state.waiters.remove(&id) {
                        let _ = waiter.send(result); // the caller may have gone away
                    }
                }
                Output::Persist(_) => unreachable!("persists were separated above"),
                notification => self.notify(notification),
            }
        }
        self.kick(); // full means a kick is already pending
        Ok(())
    }

    /// Rebuilds a machine left `stale` by a failed rebuild before it takes any input.
    async fn ensure_fresh(&self, state: &mut State) -> Result<(), S::Error> {
        if state.stale { self.rebuild(state).await } else { Ok(()) }
    }

    /// Replaces the machine with one restored from the store. Waiting client peeks are
    /// interrupted; answers to requests already sent are ignored from now on.
    ///
    /// When the store cannot be read, or cannot store what the restore produced (re-declared
    /// demand, the counter block of a re-sent request), memory is not what storage holds and
    /// the restore's requests cannot be sent (their `Persist` is not stored): the machine is
    /// marked `stale` and rebuilt again before the next input. Never acting on it matters: it
    /// would wait forever for answers to requests the transport never saw.
    async fn rebuild(&self, state: &mut State) -> Result<(), S::Error> {
        state.generation += 1;
        state.sends.clear();
        state.waiters.clear(); // dropping the senders fails the waiting calls with Interrupted
        state.stale = true;
        let snapshot = self.shared.store.load().await?;
        state.machine =
            Peeking::restore(self.shared.clock.now(), self.shared.config.peeking.clone(), snapshot);
        let (changes, effects) = take_outputs(&mut state.machine);
        if !changes.is_empty() {
            self.shared.store.save(&changes).await?;
        }
        state.stale = false;
        for effect in effects {
            if let Output::Send(request) = effect {
                state.sends.push_back((state.generation, request));
            }
        }
        Ok(())
    }

    fn notify(&self, output: Output) {
        // The lock is never held across an await; a poisoned one still holds a sender.
        let mut notify = self.shared.notify.lock().unwrap_or_else(|p| p.into_inner());
        if notify.try_send(output).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wakes [`run`](Self::run); a full channel means a wake-up is already pending.
    fn kick(&self) {
        let mut kick = self.shared.kick.lock().unwrap_or_else(|p| p.into_inner());
        let _ = kick.try_send(());
    }
}

/// Drains the coordinator: the batch to persist, and the effects it justifies, each in order.
fn take_outputs(machine: &mut Peeking) -> (Vec<Change>, Vec<Output>) {
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
