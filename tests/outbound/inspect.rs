//! Introspection for operators: every outbound room listed with its state, resident, peek id,
//! lease and retired peeks.

use matrix_peek::{OutboundFailure, OutboundState};

use crate::support::*;

#[test]
fn every_room_is_listed_with_its_state_and_resident() {
    let mut h = H::new();
    let (a, b) = (room("!a:x.test"), room("!b:x.test"));
    let put = h.open(&a, "one.test", HOUR);
    h.demand(&b, &["two.test", "three.test"]);
    assert_eq!(h.m.rooms().count(), 2);

    let info = h.m.room_info(&a).expect("tracked");
    assert_eq!(info.room_id, &*a);
    assert_eq!(info.state, OutboundState::Established);
    assert_eq!(info.resident.map(|s| s.as_str()), Some("one.test"));
    assert_eq!(info.peek_id, Some(put.peek_id.as_str()));
    assert!(info.expires_at.is_some_and(|at| at > h.t()), "a granted peek has a lease end");
    assert_eq!((info.failing_since, info.retired_peeks, info.candidates), (None, 0, 1));
    assert!(info.demanded);

    let info = h.m.room_info(&b).expect("tracked");
    assert_eq!(info.state, OutboundState::Connecting);
    assert_eq!(info.resident.map(|s| s.as_str()), Some("two.test"));
    assert_eq!((info.expires_at, info.candidates), (None, 2));

    let listed: Vec<_> = h.m.rooms().map(|i| (i.room_id.to_owned(), i.state)).collect();
    assert!(listed.contains(&(a.clone(), OutboundState::Established)));
    assert!(listed.contains(&(b.clone(), OutboundState::Connecting)));
    assert_eq!(h.m.room_info(&room("!c:x.test")), None);
}

#[test]
fn a_failing_renewal_and_a_failover_show_in_the_listing() {
    let mut h = H::new();
    let r = room("!a:x.test");
    let via = ["one.test", "two.test"];
    let put = only_send(h.demand(&r, &via));
    h.respond(&put, established(HOUR));
    let renew = only_send(h.fire());
    let failed_at = h.t();
    h.respond(&renew, failed(OutboundFailure::Unreachable));
    let info = h.m.room_info(&r).unwrap();
    assert_eq!(info.state, OutboundState::Renewing);
    assert_eq!(info.failing_since, Some(failed_at));
    assert_eq!(info.resident.map(|s| s.as_str()), Some("one.test"));

    h.m.handle_server_unreachable(h.t(), &server("one.test"));
    h.drain();
    let info = h.m.room_info(&r).unwrap();
    assert_eq!(info.state, OutboundState::Connecting);
    assert_eq!(info.resident.map(|s| s.as_str()), Some("two.test"));
    assert_eq!(info.retired_peeks, 1, "the old peek is being deleted");
    assert_eq!(info.failing_since, None);
}

#[test]
fn a_lingering_room_is_listed_as_not_demanded() {
    let mut h = H::new();
    let r = room("!a:x.test");
    h.open(&r, "one.test", HOUR);
    h.m.handle_no_demand(h.t(), &r);
    h.drain();
    let info = h.m.room_info(&r).unwrap();
    assert_eq!(info.state, OutboundState::Lingering);
    assert!(!info.demanded);
}
