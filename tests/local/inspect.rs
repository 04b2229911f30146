//! Introspection for operators: a device's and a user's live peeks, and why a peek ended,
//! kept for `ended_retention` and across a restart.

use std::collections::BTreeMap;
use std::time::Duration;

use matrix_peek::{LocalConfig, LocalEndReason, LocalPeeks};

use crate::support::*;

fn rooms_of<'a>(infos: impl Iterator<Item = matrix_peek::LocalPeekInfo<'a>>) -> Vec<String> {
    let mut rooms: Vec<String> = infos.map(|p| p.room_id.to_string()).collect();
    rooms.sort();
    rooms
}

#[test]
fn peeks_are_listed_by_device_and_by_user() {
    let mut m = LocalPeeks::new(config());
    let (u, other) = (user(1), user(2));
    let a = m.handle_peek(t(0), &u, &dev("A"), &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &dev("A"), &room(2), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &dev("B"), &room(3), false, &open()).unwrap();
    m.handle_peek(t(0), &other, &dev("A"), &room(4), false, &open()).unwrap();
    m.handle_unpeek(t(1), &u, &dev("A"), &room(2)).unwrap();
    drain(&mut m);

    let of_a: Vec<_> = m.peeks_of_device(&u, &dev("A")).collect();
    assert_eq!(of_a.len(), 1, "the unpeeked room is not listed: {of_a:?}");
    assert_eq!((of_a[0].user_id, of_a[0].device_id), (&*u, &*dev("A")));
    assert_eq!(of_a[0].room_id, &*room(1));
    assert_eq!(of_a[0].expires_at, a.expires_at);
    assert_eq!(rooms_of(m.peeks_of_user(&u)), vec![room(1).to_string(), room(3).to_string()]);
    assert_eq!(rooms_of(m.peeks_of_user(&other)), vec![room(4).to_string()]);
    assert_eq!(m.peeks_of_device(&u, &dev("nope")).count(), 0);
    assert_eq!(m.peeks_of_user(&user(9)).count(), 0);
}

#[test]
fn the_end_reason_is_kept_until_the_entry_is_collected() {
    let retention = Duration::from_secs(60);
    let mut m = LocalPeeks::new(LocalConfig { ended_retention: retention, ..config() });
    let (u, d) = (user(1), dev("A"));
    let grant = m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_peek(t(0), &u, &d, &room(2), false, &open()).unwrap();
    assert_eq!(m.end_reason(&u, &d, &room(1)), None, "a live peek has no end reason");
    m.handle_unpeek(t(10), &u, &d, &room(2)).unwrap();
    m.handle_timeout(grant.expires_at);
    drain(&mut m);

    let expired = m.end_reason(&u, &d, &room(1)).expect("kept");
    assert_eq!((expired.reason, expired.ended_at), (LocalEndReason::Expired, grant.expires_at));
    let unpeeked = m.end_reason(&u, &d, &room(2)).expect("kept");
    assert_eq!((unpeeked.reason, unpeeked.ended_at), (LocalEndReason::Unpeeked, t(10)));
    assert_eq!(m.end_reason(&u, &d, &room(3)), None, "never peeked");

    // Peeking again replaces the ending; it is collected after the retention.
    m.handle_peek(t(20), &u, &d, &room(2), false, &open()).unwrap();
    assert_eq!(m.end_reason(&u, &d, &room(2)), None);
    let collect_at = grant.expires_at.saturating_add(retention);
    m.handle_timeout(collect_at);
    drain(&mut m);
    assert_eq!(m.end_reason(&u, &d, &room(1)), None, "collected after ended_retention");
}

#[test]
fn the_end_reason_survives_a_restart() {
    let mut m = LocalPeeks::new(config());
    let mut store = BTreeMap::new();
    let (u, d) = (user(1), dev("A"));
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_joined(t(5), &u, &room(1));
    pump(&mut m, &mut store);
    let m = LocalPeeks::restore(t(6), config(), store.values().cloned());
    let ending = m.end_reason(&u, &d, &room(1)).expect("restored");
    assert_eq!((ending.reason, ending.ended_at), (LocalEndReason::Joined, t(5)));
}
