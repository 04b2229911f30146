//! When the coordinator wakes: `poll_timeout` is the earliest of the three machines' (docs/architecture.md
//! §7), a restore keeps the stored renewal time (R59), and remote-controlled numbers are
//! clamped (R53, R60).

use matrix_peek::{ClientPeekReply, OutboundOutcome, OutboundState};

use crate::support::host::*;

// docs/architecture.md §7: poll_timeout is the minimum of the three machines' deadlines.
#[test]
fn poll_timeout_is_the_min_of_the_children() {
    let mut host = Host::new();
    assert_eq!(host.peeking.poll_timeout(), None);
    host.establish_remote(T0);
    inbound(&mut host, at(1), "p1").unwrap();
    let p = &host.peeking;
    let children =
        [p.local().poll_timeout(), p.inbound().poll_timeout(), p.outbound().poll_timeout()];
    assert!(children.iter().all(Option::is_some), "{children:?}");
    assert_eq!(p.poll_timeout(), children.into_iter().flatten().min());
    // The outbound renewal (interval/2 capped at 30 min) is the earliest here.
    assert_eq!(p.poll_timeout(), p.outbound().poll_timeout());
    assert_eq!(p.poll_timeout(), Some(at(30 * 60_000)));
}

// R59: restore from the Persist stream re-declares demand; the federated peek keeps being
// renewed at the stored time and is not deleted.
#[test]
fn restore_redeclares_demand_and_keeps_the_federated_peek_renewed_r59() {
    let mut host = Host::new();
    host.establish_remote(T0);
    let _ = host.peek(at(5), resident_peek(bob(), tablet(), readable()));
    let before_timeout = host.peeking.poll_timeout();
    host.restart(at(60_000));
    let out = host.drain();
    assert!(sends(&out).is_empty(), "nothing to send right after restore: {out:?}");
    assert_eq!(host.peeking.poll_timeout(), before_timeout);
    assert!(host.peeking.is_remote(&remote_room()));
    assert!(host.peeking.local().is_peeking(&alice(), &phone(), &remote_room()));
    assert_eq!(host.peeking.outbound().state(&remote_room()), Some(OutboundState::Established));
    // The renewal fires at the stored time: 30 min after establishment.
    host.peeking.handle_timeout(at(30 * 60_000 - 1));
    assert!(sends(&host.drain()).is_empty());
    host.peeking.handle_timeout(at(30 * 60_000));
    let renew = only_send(&host.drain(), Kind::Renew);
    host.peeking.handle_response(
        at(30 * 60_000 + 10),
        renew.id,
        OutboundOutcome::Renewed { renewal_interval: Some(secs(3600)) },
    );
    let _ = host.drain();
    // Past any linger: never deleted while the lease lives.
    host.peeking.handle_timeout(at(50 * 60_000));
    assert!(sends(&host.drain()).iter().all(|r| kind(r) != Kind::Unpeek));
    // A grant on another device is still immediate after restore (access remembered).
    let (reply, out) =
        host.peek(at(50 * 60_000), remote_peek(alice(), tablet(), &[remote_server()]));
    assert!(matches!(reply, ClientPeekReply::Done(Ok(_))), "{reply:?}");
    assert!(sends(&out).is_empty());
}

// R53, R60, docs/architecture.md §11.4: remote-controlled numbers (renewal_interval 0 or absurdly large,
// retry_after huge) are clamped through the coordinator: no panic, renewals within bounds.
#[test]
fn remote_numbers_are_clamped_through_the_coordinator_r53_r60() {
    use matrix_peek::{OutboundFailure, OutboundOutcome};
    use std::time::Duration;
    for interval in [Duration::ZERO, Duration::from_millis(u64::MAX), Duration::MAX] {
        let mut host = Host::new();
        let _ = host.answer_remote_put(
            at(0),
            OutboundOutcome::Established { renewal_interval: interval, access: readable() },
        );
        let next = host.peeking.poll_timeout().expect("a renewal is scheduled");
        assert!(next >= at(60_000) && next <= at(1_800_000), "{interval:?}: renew at {next:?}");
        host.restart(at(1));
        let _ = host.drain();
        assert!(host.peeking.poll_timeout().is_some());
    }
    let mut host = Host::new();
    let _ = host.answer_remote_put(
        at(0),
        OutboundOutcome::Failed(OutboundFailure::RateLimited { retry_after: Some(Duration::MAX) }),
    );
    let next = host.peeking.poll_timeout().expect("a retry is scheduled");
    assert!(next <= at(600_000), "retry_after is capped by backoff_max: {next:?}");
}
