//! The driver when the store fails (docs/architecture.md §8, §13): a failed save fails the call and leaves
//! nothing behind, a store outage (also with failing loads) wedges no later client peek (R27),
//! a rebuild strands none of its requests (R55), and a renewal due during an outage goes out
//! after it without a busy loop (R53).

use std::time::Duration;

use matrix_peek::testing::{FlakyStore, MemoryStore, Reply, ScriptedTransport, TransportKind};
use matrix_peek::{DriverConfig, DriverError};

use crate::support::*;

// docs/architecture.md §8, §13: a failing save fails the call; nothing acknowledged, nothing sent.
#[test]
fn failing_save_fails_client_peek_and_leaves_nothing_behind() {
    let memory = MemoryStore::new();
    let flaky = FlakyStore::new(memory.clone());
    let mut rig = Rig::new(DriverConfig::default(), flaky.clone(), T0);
    flaky.fail_saves(true);
    let d = rig.driver.clone();
    let remote = rig.block(async move { d.client_peek(remote_peek(room("r"), phone())).await });
    assert!(matches!(remote, Err(DriverError::Store(_))), "{remote:?}");
    let d = rig.driver.clone();
    let local = rig.block(async move { d.client_peek(resident_peek(room("home"), phone())).await });
    assert!(matches!(local, Err(DriverError::Store(_))), "{local:?}");
    rig.advance(Duration::from_secs(600));
    assert_eq!(rig.transport.sent(), vec![], "nothing was sent for an unstored peek");
    let still = rig.block(
        rig.driver.clone().read(|p| (p.local().len(), p.outbound().len(), p.is_remote(&room("r")))),
    );
    assert_eq!(still, (0, 0, false), "memory equals storage again");
    flaky.fail_saves(false);
    let (_, clock) = rig.crash();
    let transport = ScriptedTransport::with_clock(clock.clone());
    let mut rig = Rig::open(DriverConfig::default(), memory.clone(), clock, transport);
    let peeking = rig.block(rig.driver.clone().read(|p| {
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

// docs/architecture.md §8, §13, R27: a save that fails while the store also refuses to load leaves memory
// ahead of storage with a federated PUT that was never sent. Once the store is back, a client
// peek on that room must still be answered (and what memory holds must match storage).
#[test]
fn store_outage_with_failing_load_does_not_wedge_later_client_peeks_r27() {
    let memory = MemoryStore::new();
    let flaky = FlakyStore::new(memory.clone());
    let mut rig = Rig::new(DriverConfig::default(), flaky.clone(), T0);
    flaky.fail_saves(true);
    flaky.fail_loads(true);
    let d = rig.driver.clone();
    let first = rig.block(async move { d.client_peek(remote_peek(room("r"), phone())).await });
    assert!(matches!(first, Err(DriverError::Store(_))), "{first:?}");
    flaky.fail_saves(false);
    flaky.fail_loads(false);
    let handle = rig.spawn_client_peek(remote_peek(room("r"), tablet()));
    rig.advance(Duration::from_secs(60));
    assert!(
        rig.transport.count(TransportKind::Peek) >= 1,
        "the PUT goes out once the store is back"
    );
    let grant = rig.block(handle);
    assert!(grant.is_ok(), "{grant:?}");
    let stored_remote = memory.snapshot().remote_rooms.len();
    assert_eq!(stored_remote, 1, "the granted remote room is stored");
}

// docs/architecture.md §8, R55, R59: a rebuild whose restore re-sends a `DELETE` but cannot store its own
// writes (the request counter block) must not strand that `DELETE`: the machine would wait
// forever for an answer to a request the transport never saw, leaking the remote peek and
// wedging every later client peek on the room.
#[test]
fn failing_save_after_restore_does_not_strand_its_requests_r55() {
    let memory = MemoryStore::new();
    let flaky = FlakyStore::new(memory.clone());
    let mut rig = Rig::new(DriverConfig::default(), flaky.clone(), T0);
    let d = rig.driver.clone();
    rig.block(async move { d.client_peek(remote_peek(room("r"), phone())).await }).unwrap();
    let d = rig.driver.clone();
    rig.block(async move { d.client_unpeek(&alice(), &phone(), &room("r")).await }).unwrap();
    // The DELETE after the linger hangs: the room is stored as Deleting.
    rig.transport.set_default(TransportKind::Unpeek, Reply::Never);
    rig.advance(Duration::from_secs(121));
    assert_eq!(rig.transport.count(TransportKind::Unpeek), 1);
    // Writes fail: a call fails, the rebuild loads fine, its restore re-sends the DELETE but
    // cannot store the request counter it reserved for it.
    flaky.fail_saves(true);
    let d = rig.driver.clone();
    let failed =
        rig.block(async move { d.client_peek(resident_peek(room("home"), phone())).await });
    assert!(matches!(failed, Err(DriverError::Store(_))), "{failed:?}");
    flaky.fail_saves(false);
    rig.transport
        .set_default(TransportKind::Unpeek, Reply::Now(matrix_peek::OutboundOutcome::Deleted));
    rig.advance(Duration::from_secs(3600));
    assert!(rig.transport.count(TransportKind::Unpeek) >= 2, "the DELETE is sent again");
    let handle = rig.spawn_client_peek(remote_peek(room("r"), tablet()));
    rig.advance(Duration::from_secs(3600));
    assert_eq!(rig.transport.count(TransportKind::Peek), 2, "a fresh PUT for the new peek");
    let grant = rig.block(handle);
    assert!(grant.is_ok(), "{grant:?}");
}

// docs/architecture.md §8, R53: a renewal falling due while the store refuses writes goes out once the store
// is back (it used to be stranded as "in flight" by the rebuild), and `run()` does not turn
// the outage into a busy loop of store reloads meanwhile.
#[test]
fn renewal_due_during_store_outage_goes_out_after_it_without_spinning_r53() {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let memory = MemoryStore::new();
        let flaky = FlakyStore::new(memory.clone());
        let mut rig = Rig::new(DriverConfig::default(), flaky.clone(), T0);
        let d = rig.driver.clone();
        rig.block(async move { d.client_peek(remote_peek(room("r"), phone())).await }).unwrap();
        flaky.fail_saves(true);
        // The renewal is due at 30 min; every attempt to act on it fails to save.
        rig.advance(Duration::from_secs(31 * 60));
        flaky.fail_saves(false);
        rig.advance(Duration::from_secs(10));
        let renewed = rig.transport.count(TransportKind::Renew);
        let _ = done_tx.send(renewed);
    });
    let renewed = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("run() spun on a failing store instead of waiting to retry");
    assert!(renewed >= 1, "the renewal goes out once the store is back");
}
