//! A driver crashed and reopened on the same store (R59, docs/architecture.md §13): leases, inbound and
//! outbound peeks come back with the same deadlines, and a renewal fires at its stored time.

use std::time::Duration;

use matrix_peek::testing::{MemoryStore, Reply, ScriptedTransport, TransportKind};
use matrix_peek::{DriverConfig, OutboundPeekPhase, OutboundRecord};
use ruma_common::RoomVersionId;

use crate::support::*;

// R59, docs/architecture.md §13: a crash mid-renewal loses nothing; the same deadlines come back.
#[test]
fn restart_mid_renewal_restores_leases_inbound_and_outbound_with_same_deadlines_r59() {
    let store = MemoryStore::new();
    let mut rig = Rig::new(DriverConfig::default(), store.clone(), T0);
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
    let (remote_lease, home_lease, inbound_info) = rig.block(rig.driver.clone().read(|p| {
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
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new(), T0);
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
