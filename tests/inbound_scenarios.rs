//! Scenario tests of `InboundPeeks` (MSC2444 resident side), named after behaviour and
//! tagged with the requirement or Dendrite defect they check.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use matrix_peek::{
    InboundChange, InboundConfig, InboundEndReason, InboundKey, InboundOutput, InboundPeekError,
    InboundPeeks, InboundRecord, PeekIdPolicy, RoomAccess, Timestamp,
};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

const HOUR: u64 = 3_600_000;
const GRACE: u64 = 60_000;

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn srv(s: &str) -> OwnedServerName {
    s.try_into().unwrap()
}

fn room(s: &str) -> OwnedRoomId {
    s.try_into().unwrap()
}

fn open() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V10, true, false)
}

fn v10() -> Vec<RoomVersionId> {
    vec![RoomVersionId::V10]
}

fn config() -> InboundConfig {
    InboundConfig { grace: Duration::from_millis(GRACE), ..InboundConfig::default() }
}

fn machine() -> InboundPeeks {
    InboundPeeks::new(config())
}

fn drain(m: &mut InboundPeeks) -> Vec<InboundOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn expired(out: &[InboundOutput]) -> Vec<(String, String, String, InboundEndReason)> {
    out.iter()
        .filter_map(|o| match o {
            InboundOutput::Expired { server: destination, room_id, peek_id, reason } => {
                Some((destination.to_string(), room_id.to_string(), peek_id.clone(), *reason))
            }
            _ => None,
        })
        .collect()
}

fn dests(m: &InboundPeeks, r: &OwnedRoomId) -> Vec<String> {
    let mut v: Vec<String> = m.destinations(r).map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn peek(
    m: &mut InboundPeeks,
    now: u64,
    s: &str,
    r: &str,
    id: &str,
) -> Result<bool, InboundPeekError> {
    m.handle_peek(t(now), &srv(s), &room(r), id, &v10(), Some(&open())).map(|g| g.refreshed)
}

#[test]
fn strict_policy_checks_peek_ids_first() {
    // R29
    let mut m = InboundPeeks::new(InboundConfig {
        peek_id_policy: PeekIdPolicy::Strict,
        ..InboundConfig::default()
    });
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    for ok in ["a", "Zz09.=_-"] {
        assert!(m.handle_peek(t(1), &s, &r, ok, &v10(), Some(&open())).is_ok(), "{ok}");
    }
    for bad in ["", "123456789", "a/b", "!room:server", "é"] {
        // Even with an unknown room: the id check comes first.
        assert_eq!(
            m.handle_peek(t(1), &s, &r, bad, &v10(), None),
            Err(InboundPeekError::InvalidPeekId),
            "{bad:?}"
        );
    }
    assert_eq!(m.len(), 2);
}

#[test]
fn lenient_policy_accepts_dendrite_and_palpo_ids() {
    // R29 relaxed for deployed peers (dendrite.md: peek id = room id; peers.md: palpo peek_ULID)
    let mut m = machine();
    assert_eq!(InboundConfig::default().peek_id_policy, PeekIdPolicy::Lenient);
    let palpo = "peek_01HZX3K4M5N6P7Q8R9S0T1V2W3";
    assert_eq!(palpo.len(), 31);
    assert_eq!(peek(&mut m, 1, "dendrite.org", "!abc:example.org", "!abc:example.org"), Ok(false));
    assert_eq!(peek(&mut m, 1, "palpo.org", "!abc:example.org", palpo), Ok(false));
    for bad in ["a/b".to_owned(), "a\u{1}b".to_owned(), "a\tb".to_owned(), "x".repeat(256)] {
        assert_eq!(
            peek(&mut m, 1, "a.org", "!abc:example.org", &bad),
            Err(InboundPeekError::InvalidPeekId)
        );
    }
    assert_eq!(peek(&mut m, 1, "a.org", "!abc:example.org", &"x".repeat(255)), Ok(false));
}

#[test]
fn unknown_room_is_not_found() {
    // R31
    let mut m = machine();
    let r = m.handle_peek(t(1), &srv("a.org"), &room("!r:x.org"), "p", &v10(), None);
    assert_eq!(r, Err(InboundPeekError::UnknownRoom));
    assert!(m.is_empty());
    assert!(m.poll_output().is_none());
}

#[test]
fn shared_or_encrypted_rooms_are_not_peekable() {
    // R32, B-6
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    let shared = RoomAccess::new(RoomVersionId::V10, false, false);
    let encrypted = RoomAccess::new(RoomVersionId::V10, true, true);
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p", &v10(), Some(&shared)),
        Err(InboundPeekError::NotPeekable)
    );
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p", &v10(), Some(&encrypted)),
        Err(InboundPeekError::NotPeekable)
    );
    // Not peekable is checked before the version.
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p", &[], Some(&shared)),
        Err(InboundPeekError::NotPeekable)
    );
    assert!(m.is_empty());
}

#[test]
fn empty_ver_means_version_one() {
    // R33
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    let v1 = RoomAccess::new(RoomVersionId::V1, true, false);
    assert!(m.handle_peek(t(1), &s, &r, "p1", &[], Some(&v1)).is_ok());
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p2", &[], Some(&open())),
        Err(InboundPeekError::IncompatibleRoomVersion { room_version: RoomVersionId::V10 })
    );
    let both = [RoomVersionId::V9, RoomVersionId::V10];
    assert!(m.handle_peek(t(1), &s, &r, "p3", &both, Some(&open())).is_ok());
    assert_eq!(
        m.handle_peek(t(1), &s, &r, "p4", &[RoomVersionId::V9], Some(&open())),
        Err(InboundPeekError::IncompatibleRoomVersion { room_version: RoomVersionId::V10 })
    );
    assert_eq!(m.len(), 2);
}

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
fn delete_of_unknown_peek_is_not_found_and_never_creates_one() {
    // B-3, R42
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    assert_eq!(m.handle_unpeek(t(1), &s, &r, "p"), Err(InboundPeekError::UnknownPeek));
    assert_eq!(m.handle_renew(t(1), &s, &r, "p"), Err(InboundPeekError::UnknownPeek));
    assert!(m.is_empty());
    assert!(m.poll_output().is_none());
    peek(&mut m, 2, "a.org", "!r:x.org", "p").unwrap();
    drain(&mut m);
    assert_eq!(m.handle_unpeek(t(3), &s, &r, "p"), Ok(()));
    assert_eq!(dests(&m, &r), Vec::<String>::new());
    assert!(!m.is_peeking(&s, &r, "p"));
    let key = InboundKey { server: s.clone(), room_id: r.clone(), peek_id: "p".into() };
    // A delete by the remote: Persist, no Expired.
    assert_eq!(drain(&mut m), [InboundOutput::Persist(InboundChange::Remove(key))]);
    assert_eq!(m.handle_unpeek(t(4), &s, &r, "p"), Err(InboundPeekError::UnknownPeek));
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn one_destination_per_server_however_many_peeks() {
    // R39, B-9
    let mut m = machine();
    let r = room("!r:x.org");
    for id in ["p1", "p2", "p3"] {
        assert_eq!(peek(&mut m, 1, "a.org", "!r:x.org", id), Ok(false));
    }
    peek(&mut m, 1, "b.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "c.org", "!other:x.org", "p1").unwrap();
    assert_eq!(dests(&m, &r), ["a.org", "b.org"]);
    assert_eq!(m.destinations(&r).count(), 2);
    let a = srv("a.org");
    m.handle_unpeek(t(2), &a, &r, "p2").unwrap();
    m.handle_unpeek(t(2), &a, &r, "p1").unwrap();
    assert_eq!(dests(&m, &r), ["a.org", "b.org"]);
    assert!(m.is_peeking(&a, &r, "p3"));
    m.handle_unpeek(t(3), &a, &r, "p3").unwrap();
    assert_eq!(dests(&m, &r), ["b.org"]);
    // Same peek id from another server or room is a different peek (B-9).
    assert!(m.is_peeking(&srv("b.org"), &r, "p1"));
    assert!(m.is_peeking(&srv("c.org"), &room("!other:x.org"), "p1"));
    assert!(!m.is_peeking(&srv("c.org"), &r, "p1"));
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

#[test]
fn access_lost_expires_every_peek_of_the_room() {
    // R40
    let mut m = machine();
    let r = room("!r:x.org");
    peek(&mut m, 1, "a.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "a.org", "!r:x.org", "p2").unwrap();
    peek(&mut m, 1, "b.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "b.org", "!s:x.org", "p1").unwrap();
    drain(&mut m);
    m.handle_access_changed(t(2), &r, &open());
    assert!(drain(&mut m).is_empty());
    assert_eq!(m.len(), 4);
    m.handle_access_changed(t(3), &r, &RoomAccess::new(RoomVersionId::V10, true, true));
    let mut e = expired(&drain(&mut m));
    e.sort_by(|x, y| (&x.0, &x.1, &x.2).cmp(&(&y.0, &y.1, &y.2)));
    let reason = InboundEndReason::AccessLost;
    assert_eq!(
        e,
        [
            ("a.org".into(), "!r:x.org".into(), "p1".into(), reason),
            ("a.org".into(), "!r:x.org".into(), "p2".into(), reason),
            ("b.org".into(), "!r:x.org".into(), "p1".into(), reason),
        ]
    );
    assert_eq!(m.destinations(&r).count(), 0);
    assert_eq!(m.len(), 1);
    assert_eq!(m.room_count(), 1);
}

#[test]
fn server_denied_expires_only_that_servers_peeks() {
    // R45
    let mut m = machine();
    let r = room("!r:x.org");
    peek(&mut m, 1, "a.org", "!r:x.org", "p1").unwrap();
    peek(&mut m, 1, "a.org", "!r:x.org", "p2").unwrap();
    peek(&mut m, 1, "a.org", "!s:x.org", "p1").unwrap();
    peek(&mut m, 1, "b.org", "!r:x.org", "p1").unwrap();
    drain(&mut m);
    m.handle_server_denied(t(2), &r, &srv("a.org"));
    let e = expired(&drain(&mut m));
    assert_eq!(e.len(), 2);
    assert!(
        e.iter()
            .all(|x| x.0 == "a.org" && x.1 == "!r:x.org" && x.3 == InboundEndReason::ServerDenied)
    );
    assert_eq!(dests(&m, &r), ["b.org"]);
    assert!(m.is_peeking(&srv("a.org"), &room("!s:x.org"), "p1"));
    m.handle_server_denied(t(3), &r, &srv("unknown.org"));
    assert!(drain(&mut m).is_empty());
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

#[test]
fn backwards_clock_has_no_effect() {
    // DESIGN §3
    let mut m = machine();
    let (s, r) = (srv("a.org"), room("!r:x.org"));
    peek(&mut m, 10 * HOUR, "a.org", "!r:x.org", "p").unwrap();
    m.handle_timeout(t(0));
    let g = m.handle_renew(t(5), &s, &r, "p").unwrap();
    // The renewal counts from the latest time seen, not the stale clock.
    assert_eq!(g.expires_at, t(10 * HOUR + HOUR + GRACE));
    assert_eq!(m.now(), t(10 * HOUR));
    assert!(m.is_peeking(&s, &r, "p"));
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
    peek(&mut m, 50, "a.org", "!r:x.org", "p2").unwrap(); // clamped to 100
    peek(&mut m, 300, "b.org", "!r:x.org", "p1").unwrap();
    assert_eq!(m.poll_timeout(), Some(t(100 + HOUR + GRACE)));
    drain(&mut m);
    m.handle_timeout(t(200));
    assert!(m.poll_output().is_none());
    m.handle_unpeek(t(300), &srv("a.org"), &room("!r:x.org"), "p1").unwrap();
    m.handle_unpeek(t(300), &srv("a.org"), &room("!r:x.org"), "p2").unwrap();
    assert_eq!(m.poll_timeout(), Some(t(300 + HOUR + GRACE)));
}

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
    assert_eq!(m.now(), t(5)); // the latest renewed_at is later than the restart time
    assert_eq!(m.poll_timeout(), Some(t(3)));
    m.handle_timeout(t(5));
    let e = expired(&drain(&mut m));
    assert_eq!(e, [("a.org".into(), "!r:x.org".into(), "q".into(), InboundEndReason::Lapsed)]);
}
