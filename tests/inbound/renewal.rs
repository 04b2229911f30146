//! How an inbound peek lives on: a repeated `PUT` is one idempotent peek (R38, B-2), a renewal
//! extends it from the renewal time and it lapses exactly then (R41, R43), and nothing revives
//! a lapsed peek.

use std::time::Duration;

use matrix_peek::{InboundChange, InboundEndReason, InboundOutput, InboundPeekError};

use crate::support::*;

#[test]
fn repeated_put_is_one_idempotent_peek() {
    // B-2 (Dendrite crashed on the 2nd PUT), R38
    let mut m = machine();
    let r = room("!r:x.org");
    for i in 0..1_000u64 {
        let refreshed = peek(&mut m, 10 + i, "a.org", "!r:x.org", "!r:x.org").unwrap();
        assert_eq!(refreshed, i > 0);
    }
    assert_eq!(m.len(), 1);
    assert_eq!(dests(&m, &r), ["a.org"]);
    let info = m.peek(&srv("a.org"), &r, "!r:x.org").unwrap();
    assert_eq!(info.renewed_at, t(1_009));
    assert_eq!(info.expires_at, t(1_009 + HOUR + GRACE));
    // Only upserts of one key, no Expired.
    let out = drain(&mut m);
    assert_eq!(out.len(), 1_000);
    assert!(out.iter().all(|o| matches!(o, InboundOutput::Persist(InboundChange::Upsert(_)))));
}

#[test]
fn renew_extends_from_the_renewal_time_and_lapse_is_exact() {
    // R41, R43
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    let start = 1_000_000;
    peek(&mut m, start, "a.org", "!r:x.org", "p").unwrap();
    let renew_at = start + HOUR / 2;
    let g = m.handle_renew(t(renew_at), &s, &r, "p").unwrap();
    assert_eq!(g.renewal_interval, Duration::from_millis(HOUR));
    assert_eq!(g.expires_at, t(renew_at + HOUR + GRACE));
    assert!(g.refreshed);
    let deadline = renew_at + HOUR + GRACE;
    assert_eq!(m.poll_timeout(), Some(t(deadline)));
    drain(&mut m);
    // The old deadline does not fire.
    m.handle_timeout(t(start + HOUR + GRACE));
    m.handle_timeout(t(deadline - 1));
    assert!(m.is_peeking(&s, &r, "p"));
    assert!(drain(&mut m).is_empty());
    m.handle_timeout(t(deadline));
    let out = drain(&mut m);
    assert_eq!(
        expired(&out),
        [("a.org".into(), "!r:x.org".into(), "p".into(), InboundEndReason::Lapsed)]
    );
    // Persist(Remove) comes before the Expired it justifies.
    assert!(matches!(out[0], InboundOutput::Persist(InboundChange::Remove(_))));
    assert_eq!(out.len(), 2);
    assert_eq!(m.destinations(&r).count(), 0);
    assert_eq!(m.poll_timeout(), None);
    m.handle_timeout(t(deadline + 10 * HOUR));
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.handle_renew(t(deadline + 1), &s, &r, "p"), Err(InboundPeekError::UnknownPeek));
}

#[test]
fn late_renew_does_not_revive_a_lapsed_peek_even_without_handle_timeout() {
    // R43
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    peek(&mut m, 0, "a.org", "!r:x.org", "p").unwrap();
    drain(&mut m);
    assert_eq!(m.handle_renew(t(HOUR + GRACE), &s, &r, "p"), Err(InboundPeekError::UnknownPeek));
    assert_eq!(expired(&drain(&mut m)).len(), 1);
    // A re-PUT creates a fresh peek.
    assert_eq!(peek(&mut m, HOUR + GRACE, "a.org", "!r:x.org", "p"), Ok(false));
}
