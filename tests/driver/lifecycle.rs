//! A client peek's life around the driver (docs/architecture.md §8.3): a per-call deadline,
//! withdrawal when the caller goes away (nothing is granted later), and `close()` answering
//! every waiting call at once and every later call promptly.

use std::time::Duration;

use matrix_peek::testing::{MemoryStore, Reply, TransportKind};
use matrix_peek::{DriverConfig, DriverError, OutboundOutcome};

use crate::support::*;

fn established() -> OutboundOutcome {
    OutboundOutcome::Established { renewal_interval: Duration::from_secs(3600), access: readable() }
}

fn is_peeking(rig: &mut Rig<MemoryStore>) -> bool {
    let d = rig.driver.clone();
    rig.block(async move { d.read(|p| p.local().is_peeking(&alice(), &phone(), &room("r"))).await })
}

#[test]
fn a_client_peek_gives_up_at_its_deadline_and_is_never_granted_later() {
    let config =
        DriverConfig { client_peek_timeout: Duration::from_secs(20), ..Default::default() };
    let mut rig = Rig::new(config, MemoryStore::new(), T0);
    // The resident answers after 30 s: too late for the caller.
    rig.transport.push(
        &remote_server(),
        TransportKind::Peek,
        Reply::After(Duration::from_secs(30), established()),
    );
    let call = rig.spawn_client_peek(remote_peek(room("r"), phone()));
    rig.advance(Duration::from_secs(19));
    rig.advance(Duration::from_secs(1));
    let result = rig.block(call);
    assert!(matches!(result, Err(DriverError::TimedOut)), "{result:?}");
    assert_eq!(rig.driver.stats().client_peek_timeouts, 1);
    // The answer comes: the peek was withdrawn, so nobody is granted.
    rig.advance(Duration::from_secs(15));
    assert!(!is_peeking(&mut rig), "never granted to a caller that gave up");
}

#[test]
fn dropping_a_waiting_client_peek_withdraws_it() {
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new(), T0);
    rig.transport.push(
        &remote_server(),
        TransportKind::Peek,
        Reply::After(Duration::from_secs(5), established()),
    );
    let call = rig.spawn_client_peek(remote_peek(room("r"), phone()));
    rig.advance(Duration::from_secs(1));
    drop(call); // the HTTP client disconnected
    rig.advance(Duration::from_secs(10));
    assert!(!is_peeking(&mut rig), "nothing granted to a client that has gone");
    assert_eq!(rig.driver.stats().client_peeks_withdrawn, 1);
    let d = rig.driver.clone();
    let pending = rig.block(async move { d.read(|p| p.pending_client_peeks()).await });
    assert_eq!(pending, 0);
}

#[test]
fn close_answers_waiting_calls_at_once_and_later_calls_promptly() {
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new(), T0);
    rig.transport.push(&remote_server(), TransportKind::Peek, Reply::Never);
    let waiting = rig.spawn_client_peek(remote_peek(room("r"), phone()));
    rig.run_until_stalled();
    rig.driver.close();
    // No time passes: the waiting call is answered.
    let result = rig.block(waiting);
    assert!(matches!(result, Err(DriverError::Interrupted)), "{result:?}");
    assert!(rig.driver.is_closed());
    let d = rig.driver.clone();
    let later = rig.block(async move { d.client_peek(remote_peek(room("r"), tablet())).await });
    assert!(matches!(later, Err(DriverError::Closed)), "{later:?}");
    let d = rig.driver.clone();
    let unpeek = rig.block(async move { d.client_unpeek(&alice(), &phone(), &room("r")).await });
    assert!(matches!(unpeek, Err(DriverError::Closed)), "{unpeek:?}");
    // Reads still work.
    let d = rig.driver.clone();
    assert_eq!(rig.block(async move { d.read(|p| p.local().len()).await }), 0);
}

#[test]
fn a_driver_opened_with_the_default_jitter_seed_draws_its_own_and_keeps_a_set_one() {
    // Servers that keep the default seed must not retry a shared resident in lockstep.
    use matrix_peek::testing::{ManualClock, ScriptedTransport};
    let open = |config: DriverConfig| {
        futures::executor::block_on(matrix_peek::Driver::open(
            config,
            MemoryStore::new(),
            ScriptedTransport::new(),
            ManualClock::new(T0),
        ))
        .expect("a memory store opens")
    };
    let seed_of = |driver: &matrix_peek::Driver<_, _, _>| {
        futures::executor::block_on(driver.read(|p| p.outbound().config().jitter_seed))
    };
    let drawn = seed_of(&open(DriverConfig::default()));
    if std::env::var_os(PRINT_SALT).is_some() {
        // Run by `another_process_draws_another_salt` in a child process.
        println!("salt={drawn}");
    }
    assert_ne!(drawn, 0, "a zero seed is replaced");
    assert_eq!(seed_of(&open(DriverConfig::default())), drawn, "one salt per process");
    let mut config = DriverConfig::default();
    config.peeking.outbound.jitter_seed = 42;
    assert_eq!(seed_of(&open(config)), 42, "a host's own seed is kept");
    // The testing rig keeps 0, for reproducible timing.
    let mut rig = Rig::new(DriverConfig::default(), MemoryStore::new(), T0);
    let d = rig.driver.clone();
    assert_eq!(rig.block(async move { d.read(|p| p.outbound().config().jitter_seed).await }), 0);
}

/// Set in a child test process: the salt test prints the salt it drew.
const PRINT_SALT: &str = "MATRIX_PEEK_TEST_PRINT_SALT";

#[test]
fn another_process_draws_another_salt() {
    // Two servers on defaults are two processes: each must draw its own salt.
    let salt_of_a_child = || {
        let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                "--exact",
                "lifecycle::a_driver_opened_with_the_default_jitter_seed_draws_its_own_and_keeps_a_set_one",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PRINT_SALT, "1")
            .output()
            .expect("the test binary runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let salt = stdout.split_once("salt=").and_then(|(_, rest)| rest.split_whitespace().next());
        let salt = salt.map(str::to_owned);
        salt.unwrap_or_else(|| panic!("the child printed its salt: {stdout}"))
    };
    assert_ne!(salt_of_a_child(), salt_of_a_child(), "each process draws its own salt");
}
