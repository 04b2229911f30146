//! The driver and federation (docs/architecture.md §8): a client peek on a remote room resolves only once the
//! `PUT` is answered (R27, R58), and a transport that never answers is timed out, retried and
//! capped at `max_in_flight` while other calls keep completing.

use std::time::Duration;

use matrix_peek::testing::{MemoryStore, Reply, TransportKind};
use matrix_peek::{DriverConfig, OutboundOutcome};
use ruma_common::RoomVersionId;

use crate::support::*;

fn established() -> OutboundOutcome {
    OutboundOutcome::Established { renewal_interval: Duration::from_secs(3600), access: readable() }
}

// R27, docs/architecture.md §8: client_peek on a remote room resolves only after the federated PUT answers.
#[test]
fn client_peek_on_remote_room_resolves_after_federation_r27() {
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new(), T0);
    rig.transport.push(
        &remote_server(),
        TransportKind::Peek,
        Reply::After(Duration::from_secs(5), established()),
    );
    let handle = rig.spawn_client_peek(remote_peek(room("r"), phone()));
    rig.run_until_stalled();
    assert_eq!(rig.transport.count(TransportKind::Peek), 1);
    rig.advance(Duration::from_secs(4));
    assert!(!is_peeking(&mut rig, &room("r")), "not granted before the PUT answers");
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

fn is_peeking(rig: &mut Rig<MemoryStore>, room: &ruma_common::RoomId) -> bool {
    rig.block(rig.driver.clone().read(|p| p.local().is_peeking(&alice(), &phone(), room)))
}

// docs/architecture.md §8: a transport that never answers: renewals are retried on the driver's
// request_timeout, other calls keep completing, and at most max_in_flight are outstanding.
#[test]
fn never_answering_transport_is_timed_out_retried_and_capped() {
    let config = DriverConfig {
        max_in_flight: 2,
        request_timeout: Duration::from_secs(10),
        ..DriverConfig::default()
    };
    let mut rig = Rig::new(config, MemoryStore::new(), T0);
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
