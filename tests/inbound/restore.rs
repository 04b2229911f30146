//! Restore of `InboundPeeks` from the `Persist` stream (persistence contract): the same state
//! and deadlines, duplicates and overdue records tolerated.

use std::collections::BTreeMap;

use matrix_peek::{InboundEndReason, InboundKey, InboundOutput, InboundPeeks, InboundRecord};

use crate::support::*;

/// Applies the Persist outputs to a store map, returning the other outputs.
fn persist(store: &mut BTreeMap<InboundKey, InboundRecord>, out: Vec<InboundOutput>) -> usize {
    let mut others = 0;
    for o in out {
        match o {
            InboundOutput::Persist(change) => change.apply_to(store),
            _ => others += 1,
        }
    }
    others
}

fn sorted_records(m: &InboundPeeks) -> Vec<InboundRecord> {
    let mut v: Vec<_> = m.records().collect();
    v.sort_by_key(|r| r.key());
    v
}

#[test]
fn restore_reproduces_state_and_deadlines() {
    // Persistence contract
    let mut m = machine();
    let mut store = BTreeMap::new();
    for i in 0..50u64 {
        peek(
            &mut m,
            1_000 * i,
            &format!("s{}.org", i % 4),
            &format!("!r{}:x.org", i % 6),
            &format!("p{}", i % 3),
        )
        .ok();
        if i % 5 == 0 {
            m.handle_unpeek(t(1_000 * i), &srv("s0.org"), &room("!r0:x.org"), "p0").ok();
        }
        if i % 7 == 0 {
            m.handle_renew(t(1_000 * i), &srv("s1.org"), &room("!r1:x.org"), "p1").ok();
        }
        persist(&mut store, drain(&mut m));
    }
    m.handle_timeout(t(HOUR + GRACE + 40_000));
    assert!(persist(&mut store, drain(&mut m)) > 0);
    assert_eq!(store.values().cloned().collect::<Vec<_>>(), sorted_records(&m));

    let now = m.now();
    let mut restored = InboundPeeks::restore(now, config(), store.values().cloned());
    assert_eq!(sorted_records(&restored), sorted_records(&m));
    assert_eq!(restored.len(), m.len());
    assert_eq!(restored.room_count(), m.room_count());
    assert_eq!(restored.poll_timeout(), m.poll_timeout());
    assert_eq!(restored.now(), m.now());
    for i in 0..6 {
        let r = room(&format!("!r{i}:x.org"));
        assert_eq!(dests(&restored, &r), dests(&m, &r));
        for s in 0..4 {
            for p in 0..3 {
                let (s, p) = (srv(&format!("s{s}.org")), format!("p{p}"));
                assert_eq!(restored.peek(&s, &r, &p), m.peek(&s, &r, &p));
            }
        }
    }
    assert!(restored.poll_output().is_none());
    // Both expire the same things at the same time afterwards.
    let later = t(3 * HOUR);
    m.handle_timeout(later);
    restored.handle_timeout(later);
    assert_eq!(expired(&drain(&mut m)), expired(&drain(&mut restored)));
    assert!(m.is_empty() && restored.is_empty());
}

#[test]
fn restore_tolerates_duplicates_and_overdue_records() {
    let rec = |id: &str, renewed: u64, expires: u64| InboundRecord {
        server: srv("a.org"),
        room_id: room("!r:x.org"),
        peek_id: id.into(),
        renewed_at: t(renewed),
        expires_at: t(expires),
    };
    let records = vec![rec("p", 1, 10), rec("p", 5, 50), rec("q", 0, 3)];
    let mut m = InboundPeeks::restore(t(4), config(), records);
    assert_eq!(m.len(), 2);
    assert_eq!(m.peek(&srv("a.org"), &room("!r:x.org"), "p").unwrap().expires_at, t(50));
    // The clock starts at the restart time; a renewal stored later than it (a clock that went
    // back across the restart) is clamped to it.
    assert_eq!(m.now(), t(4));
    assert_eq!(m.peek(&srv("a.org"), &room("!r:x.org"), "p").unwrap().renewed_at, t(4));
    assert_eq!(m.poll_timeout(), Some(t(3)));
    m.handle_timeout(t(5));
    let e = expired(&drain(&mut m));
    assert_eq!(e, [("a.org".into(), "!r:x.org".into(), "q".into(), InboundEndReason::Lapsed)]);
}
