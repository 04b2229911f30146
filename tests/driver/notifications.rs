//! The driver's notification stream (docs/architecture.md §8): what comes out of it, and a bounded buffer
//! whose overflow is counted.

use std::time::Duration;

use futures::StreamExt;
use matrix_peek::testing::MemoryStore;
use matrix_peek::{DriverConfig, Output};
use ruma_common::RoomVersionId;

use crate::support::*;

// docs/architecture.md §8: Wake, Established and Expired come out of the notifications stream.
#[test]
fn notifications_stream_delivers_wake_established_and_expired() {
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new(), T0);
    let mut stream =
        rig.block(rig.driver.clone().notifications()).expect("first call gets the stream");
    assert!(rig.block(rig.driver.clone().notifications()).is_none(), "one consumer");
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

// docs/architecture.md §8: the notification buffer is bounded; overflow is counted, not queued forever.
#[test]
fn notifications_beyond_capacity_are_dropped_and_counted() {
    let config = DriverConfig { notification_capacity: 3, ..DriverConfig::default() };
    let mut rig = Rig::new(config, MemoryStore::new(), T0);
    let mut stream = rig.block(rig.driver.clone().notifications()).unwrap();
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
