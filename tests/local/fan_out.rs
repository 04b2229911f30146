//! Who hears of a room: wakes (R14, R21), room demand following the first and last live
//! peeker and idle devices (docs/architecture.md §4.4), and `peekers` (R14, R16).

use std::time::Duration;

use matrix_peek::{LocalConfig, LocalOutput, LocalPeeks, RoomAccess};
use ruma_common::{OwnedUserId, RoomVersionId};

use crate::support::*;

#[test]
fn wake_on_every_start_end_and_join_not_on_renew() {
    let mut m = LocalPeeks::new(config());
    let (u, d) = (user(1), dev("A"));
    let wake = LocalOutput::Wake { user_id: u.clone(), device_id: d.clone() };
    m.handle_peek(t(0), &u, &d, &room(1), false, &open()).unwrap();
    assert_eq!(drain(&mut m).iter().filter(|o| **o == wake).count(), 1);
    m.handle_peek(t(1), &u, &d, &room(1), false, &open()).unwrap();
    assert_eq!(wakes(&drain(&mut m)), 0);
    m.handle_unpeek(t(2), &u, &d, &room(1)).unwrap();
    assert_eq!(drain(&mut m).iter().filter(|o| **o == wake).count(), 1);
    m.handle_peek(t(3), &u, &d, &room(1), false, &open()).unwrap();
    m.handle_peek(t(3), &u, &d, &room(2), false, &open()).unwrap();
    m.handle_peek(t(3), &u, &d, &room(3), false, &open()).unwrap();
    drain(&mut m);
    m.handle_joined(t(4), &u, &room(1));
    assert_eq!(wakes(&drain(&mut m)), 1);
    m.handle_access_changed(t(5), &room(2), &RoomAccess::new(RoomVersionId::V11, false, false));
    assert_eq!(wakes(&drain(&mut m)), 1);
    m.handle_timeout(t(1_003));
    assert_eq!(wakes(&drain(&mut m)), 1);
}

#[test]
fn room_demand_follows_the_first_and_last_live_peeker() {
    // docs/architecture.md §4.4
    let mut m = LocalPeeks::new(config());
    let r = room(1);
    m.handle_peek(t(0), &user(1), &dev("A"), &r, false, &open()).unwrap();
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), true)]);
    m.handle_peek(t(0), &user(2), &dev("A"), &r, false, &open()).unwrap();
    assert!(demands(&drain(&mut m)).is_empty());
    assert!(m.is_demanded(&r));
    assert_eq!(m.demanded_rooms().collect::<Vec<_>>(), vec![&*r]);
    m.handle_unpeek(t(1), &user(1), &dev("A"), &r).unwrap();
    assert!(demands(&drain(&mut m)).is_empty());
    m.handle_unpeek(t(2), &user(2), &dev("A"), &r).unwrap(); // unpeek
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    assert!(!m.is_demanded(&r));
    assert_eq!(m.demanded_rooms().count(), 0);
    m.handle_peek(t(3), &user(1), &dev("A"), &r, false, &open()).unwrap();
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), true)]);
    m.handle_timeout(t(1_003)); // expiry
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    m.handle_peek(t(1_004), &user(1), &dev("A"), &r, false, &open()).unwrap();
    drain(&mut m);
    m.handle_device_removed(t(1_005), &user(1), &dev("A")); // removal
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
}

#[test]
fn idle_devices_lose_demand_and_regain_it_when_they_sync() {
    // docs/architecture.md §4.4: idleness ends demand, not the peek
    let cfg = LocalConfig {
        lease: Duration::from_secs(3_600),
        device_idle_after: Some(Duration::from_secs(60)),
        ..LocalConfig::default()
    };
    let mut m = LocalPeeks::new(cfg);
    let (u, d, r) = (user(1), dev("A"), room(1));
    m.handle_peek(t(0), &u, &d, &r, false, &open()).unwrap();
    drain(&mut m);
    assert_eq!(m.poll_timeout(), Some(t(60_000)), "the idle deadline comes first");
    m.handle_device_synced(t(30_000), &u, &d);
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.poll_timeout(), Some(t(90_000)));
    m.handle_timeout(t(89_999));
    assert!(m.is_demanded(&r));
    m.handle_timeout(t(90_000));
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    assert!(m.is_peeking(&u, &d, &r), "idleness does not end the peek");
    assert!(!m.is_demanded(&r));
    assert_eq!(m.poll_timeout(), Some(t(3_600_000)));
    m.handle_device_synced(t(100_000), &u, &d);
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), true)]);
    assert_eq!(m.poll_timeout(), Some(t(160_000)));
    // A renewal is activity too.
    m.handle_timeout(t(160_000));
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    m.handle_peek(t(170_000), &u, &d, &r, false, &open()).unwrap();
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), true)]);
    // A second idle device does not re-announce demand while another is live.
    m.handle_peek(t(170_000), &user(2), &d, &r, false, &open()).unwrap();
    m.handle_device_synced(t(200_000), &user(2), &d);
    drain(&mut m);
    m.handle_timeout(t(230_000)); // user 1 idle, user 2 still live
    assert!(demands(&drain(&mut m)).is_empty());
    m.handle_timeout(t(260_000));
    assert_eq!(demands(&drain(&mut m)), vec![(r.clone(), false)]);
    // Unknown devices syncing are ignored.
    m.handle_device_synced(t(260_001), &user(9), &d);
    assert!(drain(&mut m).is_empty());
}

#[test]
fn fan_out_lists_exactly_the_live_peekers() {
    // R14, R16 fan-out
    let mut m = LocalPeeks::new(config());
    let r = room(1);
    for i in 0..50 {
        m.handle_peek(t(0), &user(i), &dev("A"), &r, false, &open()).unwrap();
    }
    for i in (0..50).step_by(3) {
        m.handle_unpeek(t(1), &user(i), &dev("A"), &r).unwrap();
    }
    let mut got: Vec<OwnedUserId> = m.peekers(&r).map(|(u, _)| u.to_owned()).collect();
    got.sort();
    let mut want: Vec<OwnedUserId> = (0..50).filter(|i| i % 3 != 0).map(user).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(m.peekers(&room(2)).count(), 0);
}
