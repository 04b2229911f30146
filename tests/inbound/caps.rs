//! The caps on inbound peeks (R34): per server, per room and in total, with a `retry_after`
//! hint, and refreshes that re-check access and version but not the caps (R38).

use std::time::Duration;

use matrix_peek::{InboundConfig, InboundPeekError, InboundPeeks};
use ruma_common::RoomVersionId;

use crate::support::*;

#[test]
fn refresh_rechecks_access_and_version_but_not_caps() {
    // R38
    let mut m = InboundPeeks::new(InboundConfig { max_peeks_per_server: 1, ..config() });
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    assert_eq!(peek(&mut m, 1, "a.org", "!r:x.org", "p"), Ok(false));
    assert_eq!(peek(&mut m, 2, "a.org", "!r:x.org", "p"), Ok(true)); // at the cap, still fine
    assert_eq!(
        m.handle_peek(t(3), &s, &r, "p", &[], Some(&open())),
        Err(InboundPeekError::IncompatibleRoomVersion { room_version: RoomVersionId::V10 })
    );
    assert_eq!(m.handle_peek(t(3), &s, &r, "p", &v10(), None), Err(InboundPeekError::UnknownRoom));
    // The failed refreshes left the peek as it was.
    assert_eq!(m.peek(&s, &r, "p").unwrap().renewed_at, t(2));
}

#[test]
fn per_server_cap_rejects_new_peeks_but_accepts_refreshes() {
    // R34
    let mut m = InboundPeeks::new(InboundConfig { max_peeks_per_server: 2, ..config() });
    peek(&mut m, 1, "a.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "a.org", "!s:x.org", "p2").unwrap();
    let err = peek(&mut m, 2, "a.org", "!t:x.org", "p3").unwrap_err();
    let InboundPeekError::LimitExceeded { retry_after } = err else { panic!("{err:?}") };
    assert!(retry_after >= Duration::from_secs(1));
    assert!(retry_after <= Duration::from_millis(HOUR + GRACE));
    assert_eq!(peek(&mut m, 3, "a.org", "!r:x.org", "p1"), Ok(true));
    assert_eq!(peek(&mut m, 3, "b.org", "!t:x.org", "p3"), Ok(false));
    m.handle_unpeek(t(4), &srv("a.org"), &room("!r:x.org"), "p1").unwrap();
    assert_eq!(peek(&mut m, 5, "a.org", "!t:x.org", "p3"), Ok(false));
}

#[test]
fn per_room_cap_hints_the_rooms_earliest_deadline() {
    // R34
    let mut m = InboundPeeks::new(InboundConfig { max_peeks_per_room: 2, ..config() });
    peek(&mut m, 1_000, "a.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 2_000, "b.org", "!r:x.org", "p1").unwrap();
    let err = peek(&mut m, 3_000, "c.org", "!r:x.org", "p1").unwrap_err();
    assert_eq!(
        err,
        InboundPeekError::LimitExceeded {
            retry_after: Duration::from_millis(1_000 + HOUR + GRACE - 3_000)
        }
    );
    assert_eq!(peek(&mut m, 3_000, "c.org", "!s:x.org", "p1"), Ok(false));
    assert_eq!(peek(&mut m, 3_000, "a.org", "!r:x.org", "p1"), Ok(true));
}

#[test]
fn total_cap_rejects_until_a_peek_ends() {
    // R34
    let mut m = InboundPeeks::new(InboundConfig { max_peeks_total: 3, ..config() });
    for (i, s) in ["a.org", "b.org", "c.org"].iter().enumerate() {
        peek(&mut m, 1 + i as u64, s, "!r:x.org", "p").unwrap();
    }
    let err = peek(&mut m, 10, "d.org", "!s:x.org", "p").unwrap_err();
    assert_eq!(
        err,
        InboundPeekError::LimitExceeded {
            retry_after: Duration::from_millis(1 + HOUR + GRACE - 10)
        }
    );
    m.handle_timeout(t(1 + HOUR + GRACE));
    assert_eq!(peek(&mut m, 1 + HOUR + GRACE, "d.org", "!s:x.org", "p"), Ok(false));
    let zero = InboundPeeks::new(InboundConfig { max_peeks_total: 0, ..config() });
    let mut zero = zero;
    assert!(matches!(
        peek(&mut zero, 1, "a.org", "!r:x.org", "p"),
        Err(InboundPeekError::LimitExceeded { .. })
    ));
}
