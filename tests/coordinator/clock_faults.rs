//! A wrong clock heals: one `now` ten years ahead, then the host's real time again. Small steps
//! back are absorbed; a step back beyond `CLOCK_STEP_LIMIT` is a correction, after which every
//! lease, peek and renewal keeps at most its normal length from the corrected time — in a
//! running machine and across a restore.

use std::time::Duration;

use matrix_peek::{
    CLOCK_STEP_LIMIT, InboundConfig, InboundPeeks, InboundRecord, LocalConfig, LocalPeeks,
    LocalRecord, OutboundConfig, OutboundOutcome, OutboundOutput, OutboundPeeks, OutboundRecord,
    OutboundRequestKind, RoomAccess, Timestamp,
};
use ruma_common::{
    OwnedDeviceId, RoomVersionId, owned_room_id, owned_server_name, owned_user_id, room_id,
};

const NOW: u64 = 1_700_000_000_000;
const DAY: Duration = Duration::from_secs(24 * 3600);
const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

fn t(offset: Duration) -> Timestamp {
    Timestamp::from_millis(NOW).saturating_add(offset)
}

fn access() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V11, true, false)
}

fn local_records(m: &mut LocalPeeks, store: &mut Vec<LocalRecord>) {
    while let Some(o) = m.poll_output() {
        if let matrix_peek::LocalOutput::Persist(change) = o {
            let mut map: std::collections::BTreeMap<_, _> =
                store.drain(..).map(|r| (r.key(), r)).collect();
            change.apply_to(&mut map);
            store.extend(map.into_values());
        }
    }
}

#[test]
fn a_local_peek_after_a_ten_year_jump_lapses_within_its_lease() {
    let (alice, phone): (_, OwnedDeviceId) = (owned_user_id!("@alice:a.org"), "PHONE".into());
    let room = owned_room_id!("!r:a.org");
    let mut m = LocalPeeks::new(LocalConfig::default());
    m.handle_timeout(t(TEN_YEARS));
    let grant = m.handle_peek(t(Duration::ZERO), &alice, &phone, &room, false, &access()).unwrap();
    assert_eq!(grant.expires_at, t(HOUR), "one lease from the host's now, not from 10 years on");
    assert_eq!(m.poll_timeout(), Some(t(HOUR)));
    m.handle_timeout(t(2 * DAY));
    assert!(!m.is_peeking(&alice, &phone, &room), "lapsed");
}

#[test]
fn a_local_peek_granted_under_a_wrong_clock_heals_across_a_restore() {
    let (alice, phone): (_, OwnedDeviceId) = (owned_user_id!("@alice:a.org"), "PHONE".into());
    let room = owned_room_id!("!r:a.org");
    let mut m = LocalPeeks::new(LocalConfig::default());
    let mut store = Vec::new();
    // The clock was wrong when the peek was granted: it is stored with a far expiry.
    let grant = m.handle_peek(t(TEN_YEARS), &alice, &phone, &room, false, &access()).unwrap();
    assert_eq!(grant.expires_at, t(TEN_YEARS + HOUR));
    local_records(&mut m, &mut store);
    let mut restored =
        LocalPeeks::restore(t(Duration::ZERO), LocalConfig::default(), store.clone());
    assert!(restored.poll_timeout().unwrap() <= t(HOUR + CLOCK_STEP_LIMIT));
    local_records(&mut restored, &mut store);
    restored.handle_timeout(t(2 * DAY));
    assert!(!restored.is_peeking(&alice, &phone, &room), "lapsed after the restore too");
    // The healed expiry was persisted: a second restore agrees.
    let again = LocalPeeks::restore(t(Duration::ZERO), LocalConfig::default(), store);
    assert!(again.poll_timeout().unwrap() <= t(HOUR + CLOCK_STEP_LIMIT));
}

#[test]
fn small_steps_back_are_absorbed_and_grants_follow_the_hosts_now() {
    let (alice, phone): (_, OwnedDeviceId) = (owned_user_id!("@alice:a.org"), "PHONE".into());
    let room = owned_room_id!("!r:a.org");
    let mut m = LocalPeeks::new(LocalConfig::default());
    m.handle_peek(t(Duration::from_secs(5)), &alice, &phone, &room, false, &access()).unwrap();
    // 5 s back: absorbed, nothing expires or resurrects, and the renewal runs from the host's
    // own now, so no grant ends more than one lease after it.
    let renew = m.handle_peek(t(Duration::ZERO), &alice, &phone, &room, false, &access()).unwrap();
    assert_eq!(renew.expires_at, t(HOUR));
    assert!(m.is_peeking(&alice, &phone, &room));
}

#[test]
fn an_inbound_peek_after_a_ten_year_jump_lapses_and_heals_across_a_restore() {
    let room = room_id!("!r:a.org");
    let peer = owned_server_name!("peer.org");
    let mut m = InboundPeeks::new(InboundConfig::default());
    m.handle_timeout(t(TEN_YEARS));
    let grant = m
        .handle_peek(t(Duration::ZERO), &peer, room, "p1", &[RoomVersionId::V11], Some(&access()))
        .unwrap();
    let interval = InboundConfig::default().renewal_interval + InboundConfig::default().grace;
    assert_eq!(grant.expires_at, t(interval), "one interval from the host's now");
    m.handle_timeout(t(2 * DAY));
    assert_eq!(m.len(), 0, "lapsed");

    // Stored under a wrong clock, then restored at the real time.
    let mut m = InboundPeeks::new(InboundConfig::default());
    m.handle_peek(t(TEN_YEARS), &peer, room, "p1", &[RoomVersionId::V11], Some(&access())).unwrap();
    let records: Vec<InboundRecord> = m.records().collect();
    let mut restored = InboundPeeks::restore(t(Duration::ZERO), InboundConfig::default(), records);
    assert!(restored.poll_timeout().unwrap() <= t(interval + CLOCK_STEP_LIMIT));
    restored.handle_timeout(t(2 * DAY));
    assert_eq!(restored.len(), 0, "lapsed after the restore");
    assert!(restored.destinations(room).next().is_none(), "and nothing is relayed to it");
}

#[test]
fn an_outbound_peek_renews_on_time_after_a_correction_and_after_a_restore() {
    let room = owned_room_id!("!r:a.org");
    let via = [owned_server_name!("a.org")];
    let mut m = OutboundPeeks::new(OutboundConfig::default());
    let mut store: Vec<OutboundRecord> = Vec::new();
    let drain = |m: &mut OutboundPeeks, store: &mut Vec<OutboundRecord>| {
        let mut sends = Vec::new();
        while let Some(o) = m.poll_output() {
            match o {
                OutboundOutput::Persist(change) => {
                    let mut map: std::collections::BTreeMap<_, _> =
                        store.drain(..).map(|r| (r.key(), r)).collect();
                    change.apply_to(&mut map);
                    store.extend(map.into_values());
                }
                OutboundOutput::Send(r) => sends.push(r),
                _ => {}
            }
        }
        sends
    };
    // Granted while the clock said ten years on: the renewal is due 30 min after that.
    m.handle_demand(t(TEN_YEARS), &room, &via);
    let put = drain(&mut m, &mut store).remove(0);
    let established = OutboundOutcome::Established { renewal_interval: HOUR, access: access() };
    m.handle_response(t(TEN_YEARS), put.id, established);
    drain(&mut m, &mut store);
    // A restore at the real time renews within the normal half interval, not in ten years.
    let restored =
        OutboundPeeks::restore(t(Duration::ZERO), OutboundConfig::default(), store.clone());
    assert!(restored.poll_timeout().unwrap() <= t(HOUR / 2 + CLOCK_STEP_LIMIT));
    // The running machine heals at the first input with the corrected time.
    m.handle_demand(t(Duration::ZERO), &room, &via);
    drain(&mut m, &mut store);
    let due = m.poll_timeout().unwrap();
    assert!(due <= t(HOUR / 2), "renewal due at {due}, not ten years out");
    m.handle_timeout(due);
    let renew = drain(&mut m, &mut store);
    assert_eq!(renew.len(), 1);
    assert_eq!(renew[0].kind, OutboundRequestKind::Renew);
}

#[test]
fn the_coordinator_heals_every_machine_and_its_waiting_client_peeks() {
    use matrix_peek::{ClientPeek, ClientPeekReply, Peeking, PeekingConfig, Residency};
    let mut p = Peeking::new(PeekingConfig::default());
    p.handle_timeout(t(TEN_YEARS));
    let peek = ClientPeek {
        user_id: owned_user_id!("@alice:a.org"),
        device_id: "PHONE".into(),
        room_id: owned_room_id!("!remote:b.org"),
        joined: false,
        residency: Residency::Remote,
        via: vec![owned_server_name!("b.org")],
    };
    let reply = p.handle_client_peek(t(Duration::ZERO), peek);
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    while p.poll_output().is_some() {}
    let due = p.poll_timeout().unwrap();
    assert!(due <= t(PeekingConfig::default().max_pending_wait), "{due}");
    // A resident peek granted after the jump also runs one lease from the host's now.
    let local = ClientPeek {
        user_id: owned_user_id!("@bob:a.org"),
        device_id: "LAPTOP".into(),
        room_id: owned_room_id!("!here:a.org"),
        joined: false,
        residency: Residency::Resident(access()),
        via: vec![],
    };
    let ClientPeekReply::Done(Ok(grant)) = p.handle_client_peek(t(Duration::ZERO), local) else {
        panic!("granted at once")
    };
    assert_eq!(grant.expires_at, t(HOUR));
}
