//! `LocalPeeks` and the clock: backwards clocks, jumps, mass expiry, spurious timeouts and
//! `poll_timeout` (docs/architecture.md §3, R11).

use std::time::Duration;

use matrix_peek::{LocalChange, LocalConfig, LocalEndReason, LocalOutput, LocalPeeks, LocalRecord};

use crate::support::*;

#[test]
fn small_steps_back_are_absorbed_and_a_large_one_is_a_correction() {
    // docs/architecture.md §3: a step back of at most CLOCK_STEP_LIMIT (10 s) is absorbed
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    m.handle_peek(t(20_000), &u, &d, &r, false, &open()).unwrap();
    drain(&mut m);
    // A renewal with a slightly earlier clock runs one lease from the host's now: no grant
    // reports an expiry more than one lease after it.
    let g = m.handle_peek(t(19_500), &u, &d, &r, false, &open()).unwrap();
    assert_eq!(g.expires_at, t(20_500));
    // Exactly the limit back: absorbed, nothing expires early or late.
    m.handle_timeout(t(10_500));
    m.handle_timeout(t(20_499));
    assert!(m.is_peeking(&u, &d, &r));
    m.handle_timeout(t(20_500));
    assert!(!m.is_peeking(&u, &d, &r));
    drain(&mut m);
    // Going back before the expiry does not resurrect it.
    m.handle_timeout(t(20_400));
    assert!(!m.is_peeking(&u, &d, &r));
    assert!(m.poll_output().is_none());
    // Twenty seconds back is a correction: the clock is the host's again, and a peek granted
    // now ends one lease later.
    let g = m.handle_peek(t(1), &u, &d, &r, false, &open()).unwrap();
    assert_eq!(g.expires_at, t(1_001));
    m.handle_timeout(t(1_001));
    assert!(!m.is_peeking(&u, &d, &r), "the lease ends by the corrected clock");
}

#[test]
fn a_one_year_jump_expires_everything_exactly_once() {
    // R11
    let mut m = LocalPeeks::new(config());
    for i in 0..20 {
        m.handle_peek(t(i), &user(i as u32), &dev("A"), &room(i as u32 % 3), false, &open())
            .unwrap();
    }
    drain(&mut m);
    let year = 365 * 24 * 3_600 * 1_000;
    m.handle_timeout(t(year));
    let out = drain(&mut m);
    let expired = out
        .iter()
        .filter(|o| matches!(o, LocalOutput::PeekEnded { reason: LocalEndReason::Expired, .. }))
        .count();
    assert_eq!(expired, 20);
    assert_eq!(m.len(), 0);
    // Only the ended entries' collection is left (retention counts from the expiry).
    assert_eq!(m.poll_timeout(), Some(t(year + 24 * 3_600 * 1_000)));
    m.handle_timeout(t(2 * year));
    let out = drain(&mut m);
    assert!(
        out.iter().all(|o| matches!(o, LocalOutput::Persist(_))),
        "nothing is reported twice: {out:?}"
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_thousand_leases_expiring_in_one_millisecond() {
    // R11
    let mut m = LocalPeeks::new(config());
    for i in 0..1_000u32 {
        m.handle_peek(t(0), &user(i % 10), &dev(&format!("D{i}")), &room(i % 7), false, &open())
            .unwrap();
    }
    drain(&mut m);
    assert_eq!(m.len(), 1_000);
    assert_eq!(m.poll_timeout(), Some(t(1_000)));
    m.handle_timeout(t(999));
    assert_eq!(m.len(), 1_000);
    m.handle_timeout(t(1_000));
    let out = drain(&mut m);
    assert_eq!(out.iter().filter(|o| matches!(o, LocalOutput::PeekEnded { .. })).count(), 1_000);
    let lost: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, LocalOutput::RoomDemand { demanded: false, .. }))
        .collect();
    assert_eq!(lost.len(), 7);
    assert_eq!(m.len(), 0);
    assert_eq!(m.demanded_rooms().count(), 0);
}

#[test]
fn a_device_whose_peeks_expire_together_is_woken_once_after_every_write() {
    // R11; a wake tells the device to sync, so every end it will see is written first.
    let mut m = LocalPeeks::new(config());
    let (u, a, b) = (user(1), dev("A"), dev("B"));
    for r in 0..3 {
        m.handle_peek(t(0), &u, &a, &room(r), false, &open()).unwrap();
    }
    m.handle_peek(t(0), &u, &b, &room(0), false, &open()).unwrap();
    // A's fourth peek ends later, in its own timeout: it wakes A again.
    m.handle_peek(t(500), &u, &a, &room(3), false, &open()).unwrap();
    drain(&mut m);
    m.handle_timeout(t(1_000));
    let out = drain(&mut m);
    assert_eq!(woken(&out), ["A", "B"], "each once, in the order its first peek ended: {out:?}");
    let last_write = out.iter().rposition(|o| matches!(o, LocalOutput::Persist(_))).unwrap();
    let first_wake = out.iter().position(|o| matches!(o, LocalOutput::Wake { .. })).unwrap();
    assert!(first_wake > last_write, "every write precedes the wakes: {out:?}");
    let ended = out.iter().filter(|o| matches!(o, LocalOutput::PeekEnded { .. })).count();
    assert_eq!(ended, 4);
    m.handle_timeout(t(1_500));
    let out = drain(&mut m);
    assert_eq!(woken(&out), ["A"]);
}

#[test]
fn devices_are_woken_in_the_order_their_first_peek_ended_not_by_name_or_slot() {
    // A is known first (the lower slot) and sorts first by name, but Z's lease ends first: a
    // grant runs one lease from the host's clock, which stepped back 100 ms for Z's peek.
    let mut m = LocalPeeks::new(config());
    m.handle_peek(t(100), &user(1), &dev("A"), &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &user(1), &dev("Z"), &room(2), false, &open()).unwrap();
    m.handle_peek(t(100), &user(1), &dev("Z"), &room(3), false, &open()).unwrap();
    drain(&mut m);
    m.handle_timeout(t(1_100));
    assert_eq!(woken(&drain(&mut m)), ["Z", "A"]);
}

#[test]
fn a_mass_collection_writes_the_stream_record_once_before_every_removal() {
    // The horizon covers every entry collected, and is stored before the first removal.
    let mut m = LocalPeeks::new(config());
    for i in 0..50u32 {
        m.handle_peek(t(0), &user(i), &dev("A"), &room(i % 4), false, &open()).unwrap();
    }
    m.handle_timeout(t(1_000));
    drain(&mut m);
    let day = 24 * 3_600 * 1_000;
    m.handle_timeout(t(1_000 + day));
    let out = drain(&mut m);
    let streams: Vec<_> = out
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            LocalOutput::Persist(LocalChange::Upsert(LocalRecord::Stream {
                position,
                horizon,
            })) => Some((i, *position, *horizon)),
            _ => None,
        })
        .collect();
    assert_eq!(streams.len(), 1, "one stream record: {out:?}");
    let (at, position, horizon) = streams[0];
    assert_eq!(horizon, position, "every entry collected, up to the latest position");
    let removals: Vec<_> = out
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o, LocalOutput::Persist(LocalChange::Remove(_))))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(removals.len(), 50);
    assert!(removals.iter().all(|&i| i > at), "the stream record precedes every removal");
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn a_spurious_timeout_is_a_no_op() {
    let mut m = LocalPeeks::new(config());
    m.handle_timeout(t(5));
    assert!(m.poll_output().is_none());
    m.handle_peek(t(10), &user(1), &dev("A"), &room(1), false, &open()).unwrap();
    drain(&mut m);
    let before = m.sync_delta(&user(1), &dev("A"), None);
    m.handle_timeout(t(500));
    m.handle_timeout(t(1_009));
    assert!(m.poll_output().is_none());
    assert_eq!(m.sync_delta(&user(1), &dev("A"), None), before);
    assert_eq!(m.poll_timeout(), Some(t(1_010)));
}

#[test]
fn poll_timeout_is_always_the_earliest_real_deadline() {
    let cfg = LocalConfig {
        lease: Duration::from_millis(1_000),
        ended_retention: Duration::from_millis(300),
        device_idle_after: Some(Duration::from_millis(700)),
        ..LocalConfig::default()
    };
    let mut m = LocalPeeks::new(cfg);
    assert_eq!(m.poll_timeout(), None);
    m.handle_peek(t(0), &user(1), &dev("A"), &room(1), false, &open()).unwrap();
    assert_eq!(m.poll_timeout(), Some(t(700))); // idle before lease
    m.handle_peek(t(100), &user(2), &dev("A"), &room(1), false, &open()).unwrap();
    m.handle_unpeek(t(200), &user(2), &dev("A"), &room(1)).unwrap();
    assert_eq!(m.poll_timeout(), Some(t(500))); // collection of the ended entry
    m.handle_timeout(t(500));
    assert_eq!(m.poll_timeout(), Some(t(700)));
    m.handle_timeout(t(700));
    assert_eq!(m.poll_timeout(), Some(t(1_000)), "the idle device has no idle deadline");
    m.handle_unpeek(t(800), &user(1), &dev("A"), &room(1)).unwrap();
    assert_eq!(m.poll_timeout(), Some(t(1_100)));
    m.handle_timeout(t(1_100));
    assert_eq!(m.poll_timeout(), None);
    assert!(!drain(&mut m).is_empty());
}
