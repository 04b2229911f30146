//! Time and persistence behaviour of `LocalPeeks`: backwards clocks, jumps, mass expiry,
//! spurious timeouts, `poll_timeout`, and restore from the `Persist` stream.

mod local_support;

use std::collections::BTreeMap;
use std::time::Duration;

use local_support::*;
use matrix_peek::{LocalConfig, LocalEndReason, LocalKey, LocalOutput, LocalPeeks, LocalRecord};

/// Drains the outputs, applying every `Persist` to `store`.
fn pump(m: &mut LocalPeeks, store: &mut BTreeMap<LocalKey, LocalRecord>) -> Vec<LocalOutput> {
    let out: Vec<LocalOutput> = std::iter::from_fn(|| m.poll_output()).collect();
    for o in &out {
        if let LocalOutput::Persist(change) = o {
            change.apply_to(store);
        }
    }
    out
}

#[test]
fn a_backwards_clock_changes_nothing() {
    // DESIGN §3: time never goes backwards inside a machine
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    m.handle_peek(t(10_000), &u, &d, &r, false, &open()).unwrap();
    let _ = std::iter::from_fn(|| m.poll_output()).count();
    // A renewal with an earlier clock does not shorten the lease.
    let g = m.handle_peek(t(5_000), &u, &d, &r, false, &open()).unwrap();
    assert_eq!(g.expires_at, t(11_000));
    m.handle_timeout(t(0));
    m.handle_timeout(t(10_999));
    assert!(m.is_peeking(&u, &d, &r));
    m.handle_timeout(t(11_000));
    assert!(!m.is_peeking(&u, &d, &r));
    let _ = std::iter::from_fn(|| m.poll_output()).count();
    // Going back before the expiry does not resurrect it.
    m.handle_timeout(t(10_500));
    assert!(!m.is_peeking(&u, &d, &r));
    assert!(m.poll_output().is_none());
    // A peek with an old clock is granted relative to the latest time seen.
    let g = m.handle_peek(t(1), &u, &d, &r, false, &open()).unwrap();
    assert_eq!(g.expires_at, t(12_000));
}

#[test]
fn a_one_year_jump_expires_everything_exactly_once() {
    // R11
    let mut m = LocalPeeks::new(config());
    for i in 0..20 {
        m.handle_peek(t(i), &user(i as u32), &dev("A"), &room(i as u32 % 3), false, &open())
            .unwrap();
    }
    let _ = std::iter::from_fn(|| m.poll_output()).count();
    let year = 365 * 24 * 3_600 * 1_000;
    m.handle_timeout(t(year));
    let out: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
    let expired = out
        .iter()
        .filter(|o| matches!(o, LocalOutput::PeekEnded { reason: LocalEndReason::Expired, .. }))
        .count();
    assert_eq!(expired, 20);
    assert_eq!(m.len(), 0);
    // Only the ended entries' collection is left (retention counts from the expiry).
    assert_eq!(m.poll_timeout(), Some(t(year + 24 * 3_600 * 1_000)));
    m.handle_timeout(t(2 * year));
    let out: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
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
    let _ = std::iter::from_fn(|| m.poll_output()).count();
    assert_eq!(m.len(), 1_000);
    assert_eq!(m.poll_timeout(), Some(t(1_000)));
    m.handle_timeout(t(999));
    assert_eq!(m.len(), 1_000);
    m.handle_timeout(t(1_000));
    let out: Vec<_> = std::iter::from_fn(|| m.poll_output()).collect();
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
fn a_spurious_timeout_is_a_no_op() {
    let mut m = LocalPeeks::new(config());
    m.handle_timeout(t(5));
    assert!(m.poll_output().is_none());
    m.handle_peek(t(10), &user(1), &dev("A"), &room(1), false, &open()).unwrap();
    let _ = std::iter::from_fn(|| m.poll_output()).count();
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
    assert!(std::iter::from_fn(|| m.poll_output()).count() > 0);
}

#[test]
fn restore_mid_sequence_answers_like_the_original() {
    // persistence contract: restore from the Persist stream reproduces queries and deadlines
    let cfg = LocalConfig {
        lease: Duration::from_millis(1_000),
        ended_retention: Duration::from_millis(400),
        ..LocalConfig::default()
    };
    let mut m = LocalPeeks::new(cfg.clone());
    let mut store = BTreeMap::new();
    let (u, a, b) = (user(1), dev("A"), dev("B"));
    m.handle_peek(t(0), &u, &a, &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &a, &room(2), false, &open()).unwrap();
    m.handle_peek(t(10), &u, &b, &room(1), false, &open()).unwrap();
    pump(&mut m, &mut store);
    let s_a = m.sync_delta(&u, &a, None);
    let s_b = m.sync_delta(&u, &b, None);
    m.handle_unpeek(t(100), &u, &a, &room(2)).unwrap();
    m.handle_joined(t(150), &u, &room(1));
    m.handle_peek(t(200), &u, &a, &room(3), false, &open()).unwrap();
    m.handle_peek(t(300), &user(2), &a, &room(3), false, &open()).unwrap();
    m.handle_unpeek(t(300), &user(2), &a, &room(3)).unwrap();
    m.handle_timeout(t(520)); // collects the entry that ended at 100
    pump(&mut m, &mut store);

    let mut r = LocalPeeks::restore(t(520), cfg.clone(), store.values().cloned());
    let restored_out: Vec<_> = std::iter::from_fn(|| r.poll_output()).collect();
    assert_eq!(restored_out, vec![LocalOutput::RoomDemand { room_id: room(3), demanded: true }]);
    let check = |m: &LocalPeeks, r: &LocalPeeks| {
        for (uu, dd, since) in [
            (&u, &a, Some(s_a.next)),
            (&u, &b, Some(s_b.next)),
            (&u, &a, None),
            (&user(2), &a, Some(s_a.next)),
            (&u, &a, Some(m.stream_position())),
        ] {
            assert_eq!(
                m.sync_delta(uu, dd, since),
                r.sync_delta(uu, dd, since),
                "{uu} {dd} {since:?}"
            );
        }
        assert_eq!(m.poll_timeout(), r.poll_timeout());
        assert_eq!(m.len(), r.len());
        assert_eq!(m.stream_position(), r.stream_position());
        for i in 1..=3 {
            assert_eq!(m.lease(&u, &a, &room(i)), r.lease(&u, &a, &room(i)));
            assert_eq!(m.is_demanded(&room(i)), r.is_demanded(&room(i)));
        }
    };
    check(&m, &r);
    // Both go on identically, and new positions continue after the old ones.
    for x in [&mut m, &mut r] {
        x.handle_peek(t(600), &u, &a, &room(4), false, &open()).unwrap();
        x.handle_timeout(t(2_000));
    }
    check(&m, &r);
    assert!(m.stream_position() > s_a.next);
}

#[test]
fn restore_tolerates_duplicates_and_keeps_the_stream_counter() {
    let cfg = config();
    let mut m = LocalPeeks::new(cfg.clone());
    let mut store = BTreeMap::new();
    m.handle_peek(t(0), &user(1), &dev("A"), &room(1), false, &open()).unwrap();
    m.handle_unpeek(t(1), &user(1), &dev("A"), &room(1)).unwrap();
    m.handle_device_removed(t(2), &user(1), &dev("A"));
    pump(&mut m, &mut store);
    assert_eq!(store.len(), 1, "only the stream record is left: {store:?}");
    let r = LocalPeeks::restore(t(3), cfg.clone(), store.values().cloned());
    assert_eq!(r.stream_position(), m.stream_position(), "since tokens stay valid");
    // Duplicates: the last wins.
    let rec = |exp| LocalRecord::Peek {
        user_id: user(1),
        device_id: dev("A"),
        room_id: room(1),
        started: matrix_peek::StreamPosition(4),
        expires_at: t(exp),
    };
    let r = LocalPeeks::restore(t(3), cfg, [rec(50), rec(70)]);
    assert_eq!(r.lease(&user(1), &dev("A"), &room(1)), Some(t(70)));
    assert_eq!(r.len(), 1);
    assert_eq!(r.stream_position(), matrix_peek::StreamPosition(4));
}

#[test]
fn restored_devices_count_as_live_from_the_restart() {
    // DESIGN §4.4: liveness is not persisted
    let cfg = LocalConfig { device_idle_after: Some(Duration::from_millis(100)), ..config() };
    let mut m = LocalPeeks::new(cfg.clone());
    let mut store = BTreeMap::new();
    m.handle_peek(t(0), &user(1), &dev("A"), &room(1), false, &open()).unwrap();
    m.handle_timeout(t(100));
    pump(&mut m, &mut store);
    assert!(!m.is_demanded(&room(1)));
    let mut r = LocalPeeks::restore(t(150), cfg, store.values().cloned());
    assert_eq!(r.poll_output(), Some(LocalOutput::RoomDemand { room_id: room(1), demanded: true }));
    assert!(r.is_demanded(&room(1)));
    assert_eq!(r.poll_timeout(), Some(t(250)));
}
