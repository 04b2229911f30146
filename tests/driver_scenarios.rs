//! Driver scenarios under `futures::executor::LocalPool` (no tokio), with `ManualClock`,
//! `MemoryStore`/`FlakyStore` and `ScriptedTransport` (DESIGN §8, §13).

mod driver_support;

use std::time::Duration;

use driver_support::*;
use futures::StreamExt;
use matrix_peek::testing::{FlakyStore, MemoryStore, Reply, ScriptedTransport, TransportKind};
use matrix_peek::{DriverConfig, DriverError, OutboundRecord, Output};
use matrix_peek::{OutboundOutcome, OutboundPeekPhase};
use ruma_common::RoomVersionId;

fn established() -> OutboundOutcome {
    OutboundOutcome::Established { renewal_interval: Duration::from_secs(3600), access: readable() }
}

// R27, DESIGN §8: client_peek on a remote room resolves only after the federated PUT answers.
#[test]
fn client_peek_on_remote_room_resolves_after_federation_r27() {
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new());
    rig.transport.push(
        &remote_server(),
        TransportKind::Peek,
        Reply::After(Duration::from_secs(5), established()),
    );
    let handle = rig.spawn_client_peek(remote_peek(room("r"), phone()));
    rig.pool.run_until_stalled();
    assert_eq!(rig.transport.count(TransportKind::Peek), 1);
    rig.advance(Duration::from_secs(4));
    assert!(
        !rig.driver.block_read_is_peeking(&mut rig.pool, &room("r")),
        "not granted before the PUT answers"
    );
    rig.advance(Duration::from_secs(1));
    let grant = rig.block(handle).expect("granted after federation");
    assert_eq!(grant.room_id, room("r"));
    assert_eq!(grant.expires_at, at(5_000).saturating_add(Duration::from_secs(3600)));
    // A second device is granted at once with no new traffic (R58).
    let d = rig.driver.clone();
    let again = rig.block(async move { d.client_peek(remote_peek(room("r"), tablet())).await });
    assert!(again.is_ok());
    assert_eq!(rig.transport.count(TransportKind::Peek), 1);
    // And it was all stored before being acknowledged.
    assert_eq!(
        rig.store
            .snapshot()
            .local
            .iter()
            .filter(|r| matches!(r, matrix_peek::LocalRecord::Peek { .. }))
            .count(),
        2
    );
}

trait ReadExt {
    fn block_read_is_peeking(
        &self,
        pool: &mut futures::executor::LocalPool,
        room: &ruma_common::RoomId,
    ) -> bool;
}
impl<S: matrix_peek::PeekStore, T: matrix_peek::PeekTransport, C: matrix_peek::Clock> ReadExt
    for matrix_peek::Driver<S, T, C>
{
    fn block_read_is_peeking(
        &self,
        pool: &mut futures::executor::LocalPool,
        room: &ruma_common::RoomId,
    ) -> bool {
        pool.run_until(self.read(|p| p.local().is_peeking(&alice(), &phone(), room)))
    }
}

// R59, DESIGN §13: a crash mid-renewal loses nothing; the same deadlines come back.
#[test]
fn restart_mid_renewal_restores_leases_inbound_and_outbound_with_same_deadlines_r59() {
    let store = MemoryStore::new();
    let mut rig = Rig::new(DriverConfig::default(), store.clone());
    rig.transport.set_default(TransportKind::Renew, Reply::Never);
    let d = rig.driver.clone();
    let grant =
        rig.block(async move { d.client_peek(remote_peek(room("r"), phone())).await }).unwrap();
    let d = rig.driver.clone();
    let local_grant = rig
        .block(async move { d.client_peek(resident_peek(room("home"), phone())).await })
        .unwrap();
    let d = rig.driver.clone();
    let inbound = rig
        .block(async move {
            d.inbound_peek(&peer(), &room("home"), "p1", &[RoomVersionId::V10], Some(&readable()))
                .await
        })
        .unwrap();
    let outbound_before = store.snapshot().outbound;
    // Renewal is due at 30 min; it is sent and never answered: we crash mid-renewal.
    rig.advance_to(at(30 * 60_000));
    assert_eq!(rig.transport.count(TransportKind::Renew), 1);
    assert_eq!(rig.transport.outstanding(), 1, "the renewal is in flight");
    let (store, clock) = rig.crash();
    assert_eq!(
        store.snapshot().outbound,
        outbound_before,
        "an in-flight renewal is stored as Live"
    );
    let renew_at = store
        .snapshot()
        .outbound
        .iter()
        .find_map(|r| match r {
            OutboundRecord::Peek(p) => match p.phase {
                OutboundPeekPhase::Live { renew_at, .. } => Some(renew_at),
                _ => None,
            },
            _ => None,
        })
        .expect("a live outbound peek is stored");
    assert_eq!(renew_at, at(30 * 60_000));

    // Reopen a little later on the same store with a fresh transport.
    clock.advance(Duration::from_secs(1));
    let transport = ScriptedTransport::with_clock(clock.clone());
    let mut rig = Rig::open(DriverConfig::default(), store, clock, transport);
    let (remote_lease, home_lease, inbound_info) = rig.pool.run_until(rig.driver.read(|p| {
        (
            p.local().lease(&alice(), &phone(), &room("r")),
            p.local().lease(&alice(), &phone(), &room("home")),
            p.inbound().peek(&peer(), &room("home"), "p1"),
        )
    }));
    assert_eq!(remote_lease, Some(grant.expires_at));
    assert_eq!(home_lease, Some(local_grant.expires_at));
    assert_eq!(inbound_info.map(|i| i.expires_at), Some(inbound.expires_at));
    // The stored renewal time has passed: the renewal is re-sent at once, no new PUT.
    assert_eq!(rig.transport.count(TransportKind::Renew), 1, "renewal fires at the stored time");
    assert_eq!(rig.transport.count(TransportKind::Peek), 0, "the federated peek is reused");
    assert_eq!(rig.transport.count(TransportKind::Unpeek), 0);
}

// R59: a restart before the renewal: it fires exactly at the stored time, not before.
#[test]
fn restart_before_renewal_fires_it_at_the_stored_time_r59() {
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new());
    let d = rig.driver.clone();
    rig.block(async move { d.client_peek(remote_peek(room("r"), phone())).await }).unwrap();
    rig.advance_to(at(10 * 60_000));
    let (store, clock) = rig.crash();
    let transport = ScriptedTransport::with_clock(clock.clone());
    let mut rig = Rig::open(DriverConfig::default(), store, clock, transport);
    rig.advance_to(at(30 * 60_000 - 1));
    assert_eq!(rig.transport.count(TransportKind::Renew), 0);
    rig.advance_to(at(30 * 60_000));
    assert_eq!(rig.transport.count(TransportKind::Renew), 1);
    // Past the restore linger: still demanded, never deleted.
    rig.advance_to(at(40 * 60_000));
    assert_eq!(rig.transport.count(TransportKind::Unpeek), 0);
}

// DESIGN §8, §13: a failing save fails the call; nothing acknowledged, nothing sent.
#[test]
fn failing_save_fails_client_peek_and_leaves_nothing_behind() {
    let memory = MemoryStore::new();
    let flaky = FlakyStore::new(memory.clone());
    let mut rig = Rig::new(DriverConfig::default(), flaky.clone());
    flaky.fail_saves(true);
    let d = rig.driver.clone();
    let remote = rig.block(async move { d.client_peek(remote_peek(room("r"), phone())).await });
    assert!(matches!(remote, Err(DriverError::Store(_))), "{remote:?}");
    let d = rig.driver.clone();
    let local = rig.block(async move { d.client_peek(resident_peek(room("home"), phone())).await });
    assert!(matches!(local, Err(DriverError::Store(_))), "{local:?}");
    rig.advance(Duration::from_secs(600));
    assert_eq!(rig.transport.sent(), vec![], "nothing was sent for an unstored peek");
    let still = rig.pool.run_until(
        rig.driver.read(|p| (p.local().len(), p.outbound().len(), p.is_remote(&room("r")))),
    );
    assert_eq!(still, (0, 0, false), "memory equals storage again");
    flaky.fail_saves(false);
    let (_, clock) = rig.crash();
    let transport = ScriptedTransport::with_clock(clock.clone());
    let mut rig = Rig::open(DriverConfig::default(), memory.clone(), clock, transport);
    let peeking = rig.pool.run_until(rig.driver.read(|p| {
        (
            p.local().is_peeking(&alice(), &phone(), &room("r")),
            p.local().is_peeking(&alice(), &phone(), &room("home")),
        )
    }));
    assert_eq!(peeking, (false, false));
    rig.advance(Duration::from_secs(3600));
    assert_eq!(rig.transport.sent(), vec![]);
    assert!(
        memory.snapshot().local.iter().all(|r| !matches!(r, matrix_peek::LocalRecord::Peek { .. }))
    );
}

// DESIGN §8: a transport that never answers: renewals are retried on the driver's
// request_timeout, other calls keep completing, and at most max_in_flight are outstanding.
#[test]
fn never_answering_transport_is_timed_out_retried_and_capped() {
    let config = DriverConfig {
        max_in_flight: 2,
        request_timeout: Duration::from_secs(10),
        ..DriverConfig::default()
    };
    let mut rig = Rig::new(config, MemoryStore::new());
    for name in ["a", "b", "c"] {
        let d = rig.driver.clone();
        rig.block(async move { d.client_peek(remote_peek(room(name), phone())).await }).unwrap();
    }
    rig.transport.set_default(TransportKind::Renew, Reply::Never);
    rig.advance_to(at(30 * 60_000));
    assert_eq!(rig.transport.count(TransportKind::Renew), 2, "two in flight, the third waits");
    assert_eq!(rig.transport.outstanding(), 2);
    // Other inputs keep completing meanwhile.
    let d = rig.driver.clone();
    let grant = rig.block(async move { d.client_peek(resident_peek(room("home"), phone())).await });
    assert!(grant.is_ok());
    let d = rig.driver.clone();
    let inbound = rig.block(async move {
        d.inbound_peek(&peer(), &room("home"), "p1", &[RoomVersionId::V10], Some(&readable())).await
    });
    assert!(inbound.is_ok());
    // After request_timeout the two time out, the third goes out.
    rig.advance(Duration::from_secs(10));
    assert_eq!(rig.transport.count(TransportKind::Renew), 3);
    // Keep going for a while: renewals are retried with backoff, never more than 2 at once.
    rig.advance(Duration::from_secs(20 * 60));
    let renews = rig.transport.count(TransportKind::Renew);
    assert!(renews > 6, "renewals are retried on schedule: {renews}");
    assert!(
        rig.transport.max_outstanding() <= 2,
        "max_outstanding {}",
        rig.transport.max_outstanding()
    );
    assert!(rig.transport.outstanding() <= 2);
    // Once the transport answers again, renewals succeed and stop.
    rig.transport.set_default(
        TransportKind::Renew,
        Reply::Now(OutboundOutcome::Renewed { renewal_interval: Some(Duration::from_secs(3600)) }),
    );
    rig.advance(Duration::from_secs(15 * 60));
    let settled = rig.transport.count(TransportKind::Renew);
    rig.advance(Duration::from_secs(20 * 60));
    assert_eq!(
        rig.transport.count(TransportKind::Renew),
        settled,
        "no renewal before the next is due"
    );
}

// DESIGN §8: Wake, Established and Expired come out of the notifications stream.
#[test]
fn notifications_stream_delivers_wake_established_and_expired() {
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new());
    let mut stream =
        rig.pool.run_until(rig.driver.notifications()).expect("first call gets the stream");
    assert!(rig.pool.run_until(rig.driver.notifications()).is_none(), "one consumer");
    let d = rig.driver.clone();
    rig.block(async move { d.client_peek(remote_peek(room("r"), phone())).await }).unwrap();
    let d = rig.driver.clone();
    rig.block(async move {
        d.inbound_peek(&peer(), &room("home"), "p1", &[RoomVersionId::V10], Some(&readable())).await
    })
    .unwrap();
    rig.advance(Duration::from_secs(3600 + 5 * 60 + 1));
    let mut seen = Vec::new();
    while let Some(Some(n)) = futures::FutureExt::now_or_never(stream.next()) {
        seen.push(n);
    }
    assert!(seen.iter().any(|n| matches!(n, Output::Established { .. })), "{seen:?}");
    assert!(seen.iter().any(|n| matches!(n, Output::Wake { .. })), "{seen:?}");
    assert!(
        seen.iter().any(|n| matches!(n, Output::Expired { peek_id, .. } if peek_id == "p1")),
        "{seen:?}"
    );
    assert!(seen.iter().all(|n| !matches!(
        n,
        Output::Persist(_) | Output::Send(_) | Output::ClientPeekDone { .. }
    )));
}

// DESIGN §8: the notification buffer is bounded; overflow is counted, not queued forever.
#[test]
fn notifications_beyond_capacity_are_dropped_and_counted() {
    let config = DriverConfig { notification_capacity: 3, ..DriverConfig::default() };
    let mut rig = Rig::new(config, MemoryStore::new());
    let mut stream = rig.pool.run_until(rig.driver.notifications()).unwrap();
    for i in 0..10 {
        let d = rig.driver.clone();
        rig.block(
            async move { d.client_peek(resident_peek(room(&format!("home{i}")), phone())).await },
        )
        .unwrap();
    }
    let mut got = 0;
    while let Some(Some(_)) = futures::FutureExt::now_or_never(stream.next()) {
        got += 1;
    }
    assert_eq!(got, 3, "the stream holds at most notification_capacity");
    assert_eq!(rig.driver.dropped_notifications(), 7);
}
