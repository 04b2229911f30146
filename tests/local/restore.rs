//! Restore of `LocalPeeks` from the `Persist` stream (persistence contract, docs/architecture.md §4.4): the
//! same answers and deadlines, duplicates tolerated, devices live again from the restart.

use std::collections::BTreeMap;
use std::time::Duration;

use matrix_peek::{LocalChange, LocalConfig, LocalOutput, LocalPeeks, LocalRecord};

use crate::support::*;

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
    // docs/architecture.md §4.4: liveness is not persisted
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

#[test]
fn ending_a_peek_of_a_store_over_a_lowered_cap_wakes_the_device_before_the_cap_collects() {
    // The operator lowered `max_peeks_total` below what the store holds: restore keeps it all,
    // and the first end applies the cap, which collects the device's only (just ended) entry
    // and frees the device, only after its wake went out.
    let mut m = LocalPeeks::new(config());
    let mut store = BTreeMap::new();
    let (u, a, b) = (user(1), dev("A"), dev("B"));
    m.handle_peek(t(0), &u, &a, &room(0), false, &open()).unwrap();
    m.handle_peek(t(10), &u, &b, &room(0), false, &open()).unwrap();
    pump(&mut m, &mut store);
    let lowered = LocalConfig { max_peeks_total: 1, ..config() };
    type End = fn(&mut LocalPeeks);
    let ends: [(&str, End); 3] = [
        ("unpeek", |r| r.handle_unpeek(t(20), &user(1), &dev("A"), &room(0)).unwrap()),
        ("room unavailable", |r| r.handle_room_unavailable(t(20), &room(0))),
        ("lease", |r| r.handle_timeout(t(1_000))),
    ];
    for (what, end) in ends {
        let mut r = LocalPeeks::restore(t(20), lowered.clone(), store.values().cloned());
        drain(&mut r);
        end(&mut r);
        let out = drain(&mut r);
        assert_eq!(woken(&out).first(), Some(&"A"), "{what}: A is woken: {out:?}");
        let removed =
            out.iter().rposition(|o| matches!(o, LocalOutput::Persist(LocalChange::Remove(_))));
        let wake = out.iter().position(|o| matches!(o, LocalOutput::Wake { .. }));
        assert!(removed > wake, "{what}: the cap collects after the wake: {out:?}");
        assert!(r.len() <= 1, "{what}: within the cap");
    }
}
