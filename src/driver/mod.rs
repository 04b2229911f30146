//! [`Driver`]: binds [`Peeking`] to a [`PeekStore`], a [`PeekTransport`] and a [`Clock`]. The
//! flow and the guarantees are on [`Driver`].

mod clock;
mod commit;
mod input;
mod run;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::channel::{mpsc, oneshot};
use futures::stream::Stream;
use ruma_common::{DeviceId, RoomId, RoomVersionId, ServerName, UserId};
use serde::{Deserialize, Serialize};

pub use clock::SystemClock;

use crate::access::RoomAccess;
use crate::coordinator::{ClientPeek, ClientPeekReply, Output, PeekError, Peeking, PeekingConfig};
use crate::inbound::{InboundGrant, InboundPeekError};
use crate::local::LocalGrant;
use crate::traits::{Clock, PeekStore, PeekTransport};
use commit::{Batch, Health, Work, lock, take_outputs};
use input::{Input, Reply};

/// Configuration of a [`Driver`]. Every field has a documented default; a missing field in a
/// config file takes it. In a file, durations are humantime strings (`"90s"`, `"1h 30m"`,
/// `"200ms"`, `"forever"`) or integers of **milliseconds**, as Matrix writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DriverConfig {
    /// The coordinator's configuration.
    pub peeking: PeekingConfig,
    /// Transport calls outstanding at once (default 64); further sends queue.
    pub max_in_flight: usize,
    /// How long a transport call may take before it counts as `Unreachable` (default 60 s).
    #[serde(with = "crate::time::duration_serde")]
    pub request_timeout: Duration,
    /// Notifications buffered for [`Driver::notifications`] (default 4 096); beyond it they are
    /// dropped and counted in [`DriverStats::dropped_notifications`].
    pub notification_capacity: usize,
    /// The longest a [`Driver::client_peek`] waits on federation (default **20 s**, below the
    /// usual 30–60 s of HTTP clients and proxies): then the waiting peek is withdrawn (never
    /// granted later) and the call fails with [`DriverError::TimedOut`]. The coordinator's
    /// own `max_pending_wait` still bounds a peek whose caller stopped waiting some other way.
    #[serde(with = "crate::time::duration_serde")]
    pub client_peek_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            peeking: PeekingConfig::default(),
            max_in_flight: 64,
            request_timeout: Duration::from_secs(60),
            notification_capacity: 4096,
            client_peek_timeout: Duration::from_secs(20),
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
    /// The store failed: the call had no effect (memory was rebuilt from the store). Every call
    /// of the failed batch gets the same error.
    #[error("store error: {0}")]
    Store(#[source] Arc<E>),
    /// The call was waiting on federation when the driver had to rebuild its state (after a
    /// store error), or was closed; ask again.
    #[error("interrupted; retry")]
    Interrupted,
    /// The client peek waited on federation for [`DriverConfig::client_peek_timeout`]; it was
    /// withdrawn and will not be granted later.
    #[error("timed out waiting on federation")]
    TimedOut,
    /// [`Driver::close`] was called: the driver takes no more calls.
    #[error("the driver is closed")]
    Closed,
}

/// What the driver did, for metrics; cheap to read (atomics). Counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DriverStats {
    /// Batches saved (one `PeekStore::save` each, or none when a batch changed nothing).
    pub batches: u64,
    /// Calls and internal inputs answered in those batches: `batched_calls / batches` is the
    /// mean group-commit size.
    pub batched_calls: u64,
    /// `save` calls that failed (each failed its whole batch).
    pub save_failures: u64,
    /// Rebuilds from the store (after a failed save, or retrying a failed rebuild).
    pub rebuilds: u64,
    /// Notifications dropped because the stream was not read fast enough.
    pub dropped_notifications: u64,
    /// Client peeks that hit [`DriverConfig::client_peek_timeout`].
    pub client_peek_timeouts: u64,
    /// Client peeks withdrawn because their caller dropped the future.
    pub client_peeks_withdrawn: u64,
    /// Transport calls that hit [`DriverConfig::request_timeout`].
    pub transport_timeouts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    batched_calls: AtomicU64,
    save_failures: AtomicU64,
    rebuilds: AtomicU64,
    client_peek_timeouts: AtomicU64,
    client_peeks_withdrawn: AtomicU64,
    transport_timeouts: AtomicU64,
}

/// How long [`Driver::run`] waits before retrying the store after a failed rebuild.
const STORE_RETRY: Duration = Duration::from_secs(1);

struct Shared<S: PeekStore, T, C> {
    /// The working machine: every input goes here first. Never held across an await.
    work: std::sync::Mutex<Work<S::Error>>,
    /// The committed view: the working machine as of the last saved batch. Reads see only
    /// this; it is never held across an await.
    view: RwLock<Peeking>,
    /// One batch is saved at a time.
    commit: futures::lock::Mutex<()>,
    store: S,
    transport: T,
    clock: C,
    config: DriverConfig,
    /// One sender behind a lock: a futures `mpsc` gives every *clone* of a sender its own
    /// guaranteed slot, so sending through fresh clones would never be refused and the channel
    /// would grow without bound.
    kick: std::sync::Mutex<mpsc::Sender<()>>,
    kick_rx: futures::lock::Mutex<Option<mpsc::Receiver<()>>>,
    /// See `kick`: the single sender keeps `notification_capacity` a real bound.
    notify: std::sync::Mutex<mpsc::Sender<Output>>,
    notify_rx: futures::lock::Mutex<Option<mpsc::Receiver<Output>>>,
    dropped: AtomicU64,
    closed: AtomicBool,
    stats: Counters,
}

/// The async shell around [`Peeking`]: binds it to a [`PeekStore`], a [`PeekTransport`] and a
/// [`Clock`] with `futures` only, on any executor (docs/architecture.md §8.3). Cheap to clone
/// (an `Arc`); every clone drives the same state. Run [`Driver::run`] on one task; call the
/// other methods from anywhere, concurrently.
///
/// ```text
///  call ─► lock working machine ─► Peeking::handle_* ─► outputs join the current batch ─► unlock
///       └► one caller at a time saves a whole batch (no lock held) ─┬─ ok ─► replay on the committed
///                                                                   │        view, release effects,
///                                                                   │        answer every call in it
///                                                                   └─ err ─► fail exactly those calls,
///                                                                            rebuild from the store
///  read(f) ─► the committed view (never waits on a save, never shows an unsaved call)
///  run() ─► sleeps until poll_timeout ─► handle_timeout ─► (same batch)
///        └► keeps ≤ max_in_flight transport.send futures ─► handle_response ─► (same batch)
/// ```
///
/// Guarantees:
/// * **Persist before effect.** A call returns, and the `Send`s and notifications it caused are
///   released, only after the batch holding its changes is saved.
/// * **Group commit.** Calls that arrive while a batch is being saved join the next batch: one
///   `save` for all of them. No lock is held across `save`, and reads never wait on one.
/// * **A failed save fails exactly the calls in its batch** ([`DriverError::Store`]) and loses
///   nothing acknowledged: the machine is rebuilt from the store; client peeks still waiting on
///   federation fail with [`DriverError::Interrupted`]; answers to requests sent before the
///   rebuild are ignored; calls queued behind the failed batch are applied again. If the store
///   cannot even be read, calls fail until it can (retried every second by `run`).
/// * **No read shows a call that failed.** [`read`](Self::read) sees a committed view: the
///   working machine as of the last saved batch. The price is a second copy of the machines
///   (about twice the memory of one [`Peeking`]) and each input applied twice.
/// * **Deadlines and cancellation.** A client peek waits on federation for at most
///   [`DriverConfig::client_peek_timeout`]; dropping its future withdraws the waiting peek, so
///   nothing is granted to a client that has gone.
/// * **Concurrency.** Up to [`DriverConfig::max_in_flight`] transport calls run at once inside
///   [`Driver::run`]; one that has not answered after [`DriverConfig::request_timeout`] counts
///   as `Failed(Unreachable)`.
/// * **Closing.** [`close`](Self::close) answers every waiting client peek with
///   [`DriverError::Interrupted`] at once and every later call with [`DriverError::Closed`].
///
/// Host notifications (`Wake`, `PeekEnded`, `Expired`, `Established`, `Lost`, `Unavailable`)
/// come out of [`Driver::notifications`], a bounded stream. `SystemClock` is the only code in
/// the crate that reads the system time.
pub struct Driver<S: PeekStore, T, C> {
    shared: Arc<Shared<S, T, C>>,
}

impl<S: PeekStore, T, C> Clone for Driver<S, T, C> {
    fn clone(&self) -> Self {
        Driver { shared: Arc::clone(&self.shared) }
    }
}

impl<S: PeekStore, T, C> std::fmt::Debug for Driver<S, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

/// Withdraws a waiting client peek if its future is dropped before the answer.
struct WaitGuard<S: PeekStore, T: PeekTransport, C: Clock> {
    driver: Driver<S, T, C>,
    id: Option<crate::ids::RequestId>,
}

impl<S: PeekStore, T: PeekTransport, C: Clock> Drop for WaitGuard<S, T, C> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.driver.shared.stats.client_peeks_withdrawn.fetch_add(1, Ordering::Relaxed);
            self.driver.withdraw(id);
        }
    }
}

impl<S: PeekStore, T: PeekTransport, C: Clock> Driver<S, T, C> {
    /// Loads the store, restores the coordinator at `clock.now()`, and saves whatever the
    /// restore produced (re-declared demand, re-sent deletes).
    ///
    /// An `OutboundConfig::jitter_seed` of 0 (the default) is replaced by a salt drawn once
    /// per process, so servers that kept the default do not retry a shared resident in
    /// lockstep. Set a non-zero seed for reproducible retry timing.
    pub async fn open(
        config: DriverConfig,
        store: S,
        transport: T,
        clock: C,
    ) -> Result<Self, S::Error> {
        Self::open_salted(config, store, transport, clock, true).await
    }

    /// [`open`](Self::open), drawing a jitter salt for a zero seed only if `salt` (the testing
    /// kit keeps 0, for reproducible timing).
    pub(crate) async fn open_salted(
        mut config: DriverConfig,
        store: S,
        transport: T,
        clock: C,
        salt: bool,
    ) -> Result<Self, S::Error> {
        if salt && config.peeking.outbound.jitter_seed == 0 {
            config.peeking.outbound.jitter_seed = process_salt();
        }
        let snapshot = store.load().await?;
        let mut machine = Peeking::restore(clock.now(), config.peeking.clone(), snapshot);
        let (changes, effects) = take_outputs(&mut machine);
        if !changes.is_empty() {
            store.save(&changes).await?;
        }
        // A channel of buffer `n` holds `n + 1` messages for its one sender.
        let (kick, kick_rx) = mpsc::channel(0);
        let (notify, notify_rx) = mpsc::channel(config.notification_capacity.max(1) - 1);
        let sends: VecDeque<_> = effects
            .into_iter()
            .filter_map(|e| match e {
                Output::Send(request) => Some((0, request)),
                _ => None,
            })
            .collect();
        Ok(Driver {
            shared: Arc::new(Shared {
                view: RwLock::new(machine.clone()),
                work: std::sync::Mutex::new(Work {
                    machine,
                    health: Health::Ready,
                    generation: 0,
                    batch: Batch::default(),
                    sends,
                    waiters: HashMap::new(),
                }),
                commit: futures::lock::Mutex::new(()),
                store,
                transport,
                clock,
                config,
                kick: std::sync::Mutex::new(kick),
                kick_rx: futures::lock::Mutex::new(Some(kick_rx)),
                notify: std::sync::Mutex::new(notify),
                notify_rx: futures::lock::Mutex::new(Some(notify_rx)),
                dropped: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                stats: Counters::default(),
            }),
        })
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

    /// What the driver did so far. Cheap: a few atomic reads.
    pub fn stats(&self) -> DriverStats {
        let c = &self.shared.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DriverStats {
            batches: get(&c.batches),
            batched_calls: get(&c.batched_calls),
            save_failures: get(&c.save_failures),
            rebuilds: get(&c.rebuilds),
            dropped_notifications: self.dropped_notifications(),
            client_peek_timeouts: get(&c.client_peek_timeouts),
            client_peeks_withdrawn: get(&c.client_peeks_withdrawn),
            transport_timeouts: get(&c.transport_timeouts),
        }
    }

    /// Reads the committed view of the coordinator (queries such as `sync_delta`, `peekers`,
    /// `destinations`, `stats`): everything saved, nothing that is not. Never waits on a save.
    pub async fn read<R>(&self, f: impl FnOnce(&Peeking) -> R) -> R {
        let view = self.shared.view.read().unwrap_or_else(|p| p.into_inner());
        f(&view)
    }

    /// Applies `input` to the working machine, waits for its batch to be saved, and returns
    /// its answer.
    async fn call(&self, input: Input) -> Result<Reply, DriverError<S::Error>> {
        self.submit(input, None).await
    }

    async fn submit(
        &self,
        input: Input,
        waiter: Option<oneshot::Sender<Result<LocalGrant, PeekError>>>,
    ) -> Result<Reply, DriverError<S::Error>> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(DriverError::Closed);
        }
        self.ensure_ready().await?;
        let (done, rx) = oneshot::channel();
        {
            let mut work = lock(&self.shared.work);
            if work.health != Health::Ready {
                return Err(DriverError::Interrupted);
            }
            let now = self.shared.clock.now();
            let reply = work.submit(now, input, Some(done));
            if let (Reply::ClientPeek(ClientPeekReply::Pending(id)), Some(waiter)) =
                (&reply, waiter)
            {
                work.waiters.insert(*id, waiter);
            }
        }
        self.commit_until(rx).await
    }

    /// Queues `ClientPeekWithdrawn(id)` without waiting (from a drop or a deadline): the next
    /// batch saves it; `run` is woken to save it when no call does.
    fn withdraw(&self, id: crate::ids::RequestId) {
        let mut work = lock(&self.shared.work);
        if work.health != Health::Ready {
            return; // a rebuild already forgot the peek
        }
        work.waiters.remove(&id);
        let now = self.shared.clock.now();
        work.submit(now, Input::ClientPeekWithdrawn(id), None);
        drop(work);
        self.kick();
    }

    /// A client's `/peek`. Resolves when the grant is final, also when it waited on federation
    /// (at most [`DriverConfig::client_peek_timeout`], then [`DriverError::TimedOut`]).
    /// Dropping the future while it waits withdraws the peek: it is never granted later.
    pub async fn client_peek(&self, peek: ClientPeek) -> Result<LocalGrant, DriverError<S::Error>> {
        let (waiter, mut grant) = oneshot::channel();
        let reply = self.submit(Input::ClientPeek(peek), Some(waiter)).await?;
        let id = match reply {
            Reply::ClientPeek(ClientPeekReply::Done(result)) => return Ok(result?),
            Reply::ClientPeek(ClientPeekReply::Pending(id)) => id,
            _ => return Err(DriverError::Interrupted),
        };
        let mut guard = WaitGuard { driver: self.clone(), id: Some(id) };
        let deadline =
            self.shared.clock.now().saturating_add(self.shared.config.client_peek_timeout);
        let timeout = self.shared.clock.sleep_until(deadline);
        futures::pin_mut!(timeout);
        let outcome = futures::future::select(&mut grant, timeout).await;
        match outcome {
            futures::future::Either::Left((Ok(result), _)) => {
                guard.id = None;
                Ok(result?)
            }
            futures::future::Either::Left((Err(oneshot::Canceled), _)) => {
                guard.id = None;
                Err(DriverError::Interrupted)
            }
            futures::future::Either::Right(((), _)) => {
                // The answer may have raced the deadline.
                if let Ok(Some(result)) = grant.try_recv() {
                    guard.id = None;
                    return Ok(result?);
                }
                self.shared.stats.client_peek_timeouts.fetch_add(1, Ordering::Relaxed);
                guard.id = None;
                self.withdraw(id);
                Err(DriverError::TimedOut)
            }
        }
    }

    /// A client's `/unpeek`.
    pub async fn client_unpeek(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
        room_id: &RoomId,
    ) -> Result<(), DriverError<S::Error>> {
        let input = Input::ClientUnpeek {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            room_id: room_id.to_owned(),
        };
        match self.call(input).await? {
            Reply::ClientUnpeek(result) => Ok(result?),
            _ => Err(DriverError::Interrupted),
        }
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
        let input = Input::InboundPeek {
            origin: origin.to_owned(),
            room_id: room_id.to_owned(),
            peek_id: peek_id.to_owned(),
            ver: ver.to_vec(),
            access: access.cloned(),
        };
        self.inbound(input).await
    }

    /// A federation `POST …/renew`.
    pub async fn inbound_renew(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) -> Result<InboundGrant, DriverError<S::Error>> {
        let input = Input::InboundRenew {
            origin: origin.to_owned(),
            room_id: room_id.to_owned(),
            peek_id: peek_id.to_owned(),
        };
        self.inbound(input).await
    }

    async fn inbound(&self, input: Input) -> Result<InboundGrant, DriverError<S::Error>> {
        match self.call(input).await? {
            Reply::Inbound(result) => Ok(result?),
            _ => Err(DriverError::Interrupted),
        }
    }

    /// A federation `DELETE …/peek`.
    pub async fn inbound_unpeek(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) -> Result<(), DriverError<S::Error>> {
        let input = Input::InboundUnpeek {
            origin: origin.to_owned(),
            room_id: room_id.to_owned(),
            peek_id: peek_id.to_owned(),
        };
        match self.call(input).await? {
            Reply::InboundUnpeek(result) => Ok(result?),
            _ => Err(DriverError::Interrupted),
        }
    }

    async fn call_done(&self, input: Input) -> Result<(), DriverError<S::Error>> {
        self.call(input).await.map(|_| ())
    }

    /// A local user joined the room.
    pub async fn joined(
        &self,
        user_id: &UserId,
        room_id: &RoomId,
        access: &RoomAccess,
    ) -> Result<(), DriverError<S::Error>> {
        let (user_id, room_id, access) = (user_id.to_owned(), room_id.to_owned(), access.clone());
        self.call_done(Input::Joined { user_id, room_id, access }).await
    }

    /// This server's last member left the room.
    pub async fn server_left(&self, room_id: &RoomId) -> Result<(), DriverError<S::Error>> {
        self.call_done(Input::ServerLeft(room_id.to_owned())).await
    }

    /// The room's history visibility or encryption changed.
    pub async fn access_changed(
        &self,
        room_id: &RoomId,
        access: &RoomAccess,
    ) -> Result<(), DriverError<S::Error>> {
        let (room_id, access) = (room_id.to_owned(), access.clone());
        self.call_done(Input::AccessChanged { room_id, access }).await
    }

    /// A server is newly denied by the room's ACL.
    pub async fn server_denied(
        &self,
        room_id: &RoomId,
        server: &ServerName,
    ) -> Result<(), DriverError<S::Error>> {
        let (room_id, server) = (room_id.to_owned(), server.to_owned());
        self.call_done(Input::ServerDenied { room_id, server }).await
    }

    /// The device synced.
    pub async fn device_synced(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<(), DriverError<S::Error>> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.call_done(Input::DeviceSynced { user_id, device_id }).await
    }

    /// The device was deleted or logged out.
    pub async fn device_removed(
        &self,
        user_id: &UserId,
        device_id: &DeviceId,
    ) -> Result<(), DriverError<S::Error>> {
        let (user_id, device_id) = (user_id.to_owned(), device_id.to_owned());
        self.call_done(Input::DeviceRemoved { user_id, device_id }).await
    }

    /// The account was deactivated.
    pub async fn user_deactivated(&self, user_id: &UserId) -> Result<(), DriverError<S::Error>> {
        self.call_done(Input::UserDeactivated(user_id.to_owned())).await
    }

    /// An event of `room_id` arrived through its federated peek: call it for every PDU a
    /// resident relays to us, so a resident that falls silent is noticed in minutes.
    pub async fn remote_event(&self, room_id: &RoomId) -> Result<(), DriverError<S::Error>> {
        self.call_done(Input::RemoteEvent(room_id.to_owned())).await
    }

    /// The host's federation traffic says `server` is unreachable: rooms peeked through it move
    /// to another candidate at once.
    pub async fn server_unreachable(
        &self,
        server: &ServerName,
    ) -> Result<(), DriverError<S::Error>> {
        self.call_done(Input::ServerUnreachable(server.to_owned())).await
    }

    /// An `expired_peeks` entry arrived from `server`.
    pub async fn remote_expired(
        &self,
        server: &ServerName,
        room_id: &RoomId,
        peek_id: &str,
    ) -> Result<(), DriverError<S::Error>> {
        let (server, room_id, peek_id) =
            (server.to_owned(), room_id.to_owned(), peek_id.to_owned());
        self.call_done(Input::RemoteExpired { server, room_id, peek_id }).await
    }

    /// Stops the driver: [`run`](Self::run) returns, every client peek still waiting on
    /// federation is answered [`DriverError::Interrupted`] at once, and every later call fails
    /// with [`DriverError::Closed`]. Reads keep working. State is already stored; in-flight
    /// transport calls are dropped, and their requests are re-issued by the machines' timers
    /// after the next [`open`](Self::open).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        lock(&self.shared.work).waiters.clear(); // dropped senders answer Interrupted
        self.kick();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

/// A non-zero salt drawn once per process from std's randomly keyed hasher: the driver's
/// jitter salt when the host left `OutboundConfig::jitter_seed` at 0.
fn process_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(u64::from(std::process::id()));
        hasher.finish().max(1)
    })
}
