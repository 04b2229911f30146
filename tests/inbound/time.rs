//! `InboundPeeks` and the clock (docs/architecture.md §3): backwards clocks, a year's jump, mass expiry in
//! one millisecond, spurious timeouts and an exact `poll_timeout`.

use std::collections::BTreeSet;

use crate::support::*;

#[test]
fn a_small_step_back_is_absorbed_and_a_large_one_is_a_correction() {
    // docs/architecture.md §3: CLOCK_STEP_LIMIT (10 s)
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    peek(&mut m, 10 * HOUR, "a.org", "!r:x.org", "p").unwrap();
    // Five seconds back: absorbed (nothing expires), and the renewal runs from the host's own
    // now, so no grant ends more than one interval (plus grace) after it.
    m.handle_timeout(t(10 * HOUR - 5_000));
    assert_eq!(m.now(), t(10 * HOUR));
    let g = m.handle_renew(t(10 * HOUR - 5_000), &s, &r, "p").unwrap();
    assert_eq!(g.expires_at, t(10 * HOUR - 5_000 + HOUR + GRACE));
    // Ten hours back: a correction. The peek keeps at most its normal length from then.
    m.handle_timeout(t(5));
    assert_eq!(m.now(), t(5));
    assert!(m.is_peeking(&s, &r, "p"));
    assert_eq!(m.peek(&s, &r, "p").unwrap().expires_at, t(5 + HOUR + GRACE));
    assert_eq!(m.poll_timeout(), Some(t(5 + HOUR + GRACE)));
}

#[test]
fn a_year_jump_expires_everything_exactly_once() {
    let mut m = machine();
    for i in 0..100u64 {
        peek(
            &mut m,
            i,
            &format!("s{}.org", i % 7),
            &format!("!r{}:x.org", i % 5),
            &format!("p{i}"),
        )
        .unwrap();
    }
    drain(&mut m);
    m.handle_timeout(t(365 * 24 * HOUR));
    assert_eq!(expired(&drain(&mut m)).len(), 100);
    assert!(m.is_empty());
    assert_eq!(m.room_count(), 0);
    m.handle_timeout(t(2 * 365 * 24 * HOUR));
    assert!(drain(&mut m).is_empty());
}

#[test]
fn a_thousand_peeks_in_one_millisecond_expire_together() {
    let mut m = machine();
    for i in 0..1_000 {
        peek(&mut m, 7, "a.org", &format!("!r{}:x.org", i % 10), &format!("p{i}")).unwrap();
    }
    assert_eq!(m.len(), 1_000);
    assert_eq!(m.poll_timeout(), Some(t(7 + HOUR + GRACE)));
    drain(&mut m);
    m.handle_timeout(t(6 + HOUR + GRACE));
    assert!(drain(&mut m).is_empty());
    m.handle_timeout(t(7 + HOUR + GRACE));
    let e = expired(&drain(&mut m));
    assert_eq!(e.len(), 1_000);
    assert_eq!(e.iter().map(|x| x.2.clone()).collect::<BTreeSet<_>>().len(), 1_000);
}

#[test]
fn spurious_timeout_is_a_no_op_and_poll_timeout_is_exact() {
    let mut m = machine();
    m.handle_timeout(t(5));
    assert!(m.poll_output().is_none());
    assert_eq!(m.poll_timeout(), None);
    peek(&mut m, 100, "a.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 50, "a.org", "!r:x.org", "p2").unwrap(); // absorbed; its grant runs from 50
    peek(&mut m, 300, "b.org", "!r:x.org", "p1").unwrap();
    assert_eq!(m.poll_timeout(), Some(t(50 + HOUR + GRACE)));
    drain(&mut m);
    m.handle_timeout(t(200));
    assert!(m.poll_output().is_none());
    m.handle_unpeek(t(300), &srv("a.org"), &room("!r:x.org"), "p1").unwrap();
    m.handle_unpeek(t(300), &srv("a.org"), &room("!r:x.org"), "p2").unwrap();
    assert_eq!(m.poll_timeout(), Some(t(300 + HOUR + GRACE)));
}
