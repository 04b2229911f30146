//! What `sync_delta` reports for a `since` token: full state on a start (R15), known peeks as
//! `peeking` (R16), initial syncs (R22), and the retention horizon of ended entries
//! (docs/architecture.md §4.3, §4.5).

use std::time::Duration;

use matrix_peek::{LocalConfig, LocalPeeks, StreamPosition};

use crate::support::*;

#[test]
fn peek_unpeek_peek_across_syncs_starts_again_and_a_window_start_end_is_omitted() {
    // R15, R21
    let mut m = LocalPeeks::new(config());
    let (u, d, r) = (user(1), dev("A"), room(1));
    let s0 = m.sync_delta(&u, &d, None);
    m.handle_peek(t(0), &u, &d, &r, false, &open()).unwrap();
    let s1 = m.sync_delta(&u, &d, Some(s0.next));
    assert_eq!(s1.started, vec![r.clone()]);
    m.handle_unpeek(t(10), &u, &d, &r).unwrap();
    let s2 = m.sync_delta(&u, &d, Some(s1.next));
    assert_eq!(s2.ended, vec![r.clone()]);
    m.handle_peek(t(20), &u, &d, &r, false, &open()).unwrap();
    let s3 = m.sync_delta(&u, &d, Some(s2.next));
    assert_eq!(s3.started, vec![r.clone()], "a re-peek after an unpeek gets full state again");
    assert!(s3.ended.is_empty());
    // Start and end between two syncs: not reported at all.
    let r2 = room(2);
    m.handle_peek(t(30), &u, &d, &r2, false, &open()).unwrap();
    m.handle_unpeek(t(40), &u, &d, &r2).unwrap();
    let s4 = m.sync_delta(&u, &d, Some(s3.next));
    assert!(!s4.started.contains(&r2) && !s4.ended.contains(&r2) && !s4.peeking.contains(&r2));
    assert_eq!(s4.peeking, vec![r.clone()]);
    // Unpeek then re-peek between two syncs: still peeking, with full state.
    m.handle_unpeek(t(50), &u, &d, &r).unwrap();
    m.handle_peek(t(60), &u, &d, &r, false, &open()).unwrap();
    let s5 = m.sync_delta(&u, &d, Some(s4.next));
    assert_eq!(s5.started, vec![r.clone()]);
    assert!(s5.ended.is_empty());
}

#[test]
fn later_syncs_list_known_peeks_as_peeking_only() {
    // R16
    let mut m = LocalPeeks::new(config());
    let (u, d) = (user(1), dev("A"));
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    let s1 = m.sync_delta(&u, &d, None);
    m.handle_peek(t(1), &u, &d, &room(2), false, &open()).unwrap();
    let s2 = m.sync_delta(&u, &d, Some(s1.next));
    assert_eq!(s2.started, vec![room(2)]);
    assert_eq!(s2.peeking, vec![room(1)]);
    let s3 = m.sync_delta(&u, &d, Some(s2.next));
    assert!(s3.started.is_empty());
    assert_eq!(s3.peeking, vec![room(1), room(2)]);
}

#[test]
fn initial_sync_lists_all_live_peeks_and_cancels_nothing() {
    // R22
    let mut m = LocalPeeks::new(config());
    let (u, d) = (user(1), dev("A"));
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &d, &room(2), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &d, &room(3), false, &open()).unwrap();
    m.handle_unpeek(t(1), &u, &d, &room(3)).unwrap();
    drain(&mut m);
    let s = m.sync_delta(&u, &d, None);
    assert_eq!(s.started, vec![room(1), room(2)]);
    assert!(s.ended.is_empty() && s.joined.is_empty() && s.peeking.is_empty());
    let again = m.sync_delta(&u, &d, None);
    assert_eq!(again, s);
    assert!(m.is_peeking(&u, &d, &room(1)) && m.is_peeking(&u, &d, &room(2)));
    assert!(drain(&mut m).is_empty());
}

#[test]
fn ended_entries_are_collected_after_retention_and_old_since_acts_like_initial_sync() {
    // docs/architecture.md §4.3 retention horizon
    let cfg = LocalConfig { ended_retention: Duration::from_millis(500), ..config() };
    let mut m = LocalPeeks::new(cfg);
    let (u, d) = (user(1), dev("A"));
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &d, &room(2), false, &open()).unwrap();
    let s1 = m.sync_delta(&u, &d, None);
    m.handle_unpeek(t(100), &u, &d, &room(1)).unwrap();
    assert_eq!(m.poll_timeout(), Some(t(600)));
    m.handle_timeout(t(599));
    assert_eq!(m.sync_delta(&u, &d, Some(s1.next)).ended, vec![room(1)]);
    m.handle_timeout(t(600));
    let late = m.sync_delta(&u, &d, Some(s1.next));
    assert_eq!(late, m.sync_delta(&u, &d, None), "older than the horizon: like an initial sync");
    assert_eq!(late.started, vec![room(2)]);
    let s2 = m.sync_delta(&u, &d, Some(late.next));
    assert_eq!(s2.peeking, vec![room(2)]);
}

#[test]
fn retained_entries_are_bounded_by_the_caps() {
    // caps bound everything (docs/architecture.md §4.5)
    let cfg = LocalConfig { max_peeks_per_device: 2, max_peeks_total: 3, ..config() };
    let mut m = LocalPeeks::new(cfg);
    let (u, d) = (user(1), dev("A"));
    for i in 0..10 {
        m.handle_peek(t(i), &u, &d, &room(i as u32), false, &open()).unwrap();
        m.handle_unpeek(t(i), &u, &d, &room(i as u32)).unwrap();
    }
    let s = m.sync_delta(&u, &d, Some(StreamPosition(0)));
    assert!(s.ended.len() <= 2, "{s:?}");
    for i in 0..10 {
        m.handle_peek(t(20), &user(2), &dev(&format!("D{i}")), &room(i), false, &open()).ok();
        m.handle_unpeek(t(20), &user(2), &dev(&format!("D{i}")), &room(i)).ok();
    }
    assert!(m.poll_timeout().is_some());
    let retained: usize = (0..10)
        .map(|i| {
            m.sync_delta(&user(2), &dev(&format!("D{i}")), Some(StreamPosition(0))).ended.len()
        })
        .sum::<usize>()
        + m.sync_delta(&u, &d, Some(StreamPosition(0))).ended.len();
    assert!(retained <= 3);
}
