//! Scenario tests of `OutboundPeeks` (MSC2444 peeking side). Each names its requirement.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use matrix_peek::outbound::is_valid_peek_id;
use matrix_peek::{
    LostReason, OutboundChange, OutboundConfig, OutboundKey, OutboundOutput, OutboundPeekError,
    OutboundPeeks, OutboundRecord, OutboundState, PeekFailure, PeekOutcome, RenewStyle, Request,
    RequestKind, RoomAccess, Timestamp,
};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, RoomVersionId};

const HOUR: Duration = Duration::from_secs(3600);

fn room(s: &str) -> OwnedRoomId {
    RoomId::parse(s).unwrap()
}

fn server(s: &str) -> OwnedServerName {
    s.try_into().unwrap()
}

fn access() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V11, true, false)
}

fn established(interval: Duration) -> PeekOutcome {
    PeekOutcome::Established { renewal_interval: interval, access: access() }
}

fn failed(f: PeekFailure) -> PeekOutcome {
    PeekOutcome::Failed(f)
}

/// Drives a machine, applies every `Persist` to a store map, and checks that every `Send` is
/// immediately preceded by the `Persist` of its room's record naming the same peek (R59).
struct H {
    m: OutboundPeeks,
    config: OutboundConfig,
    now: u64,
    store: BTreeMap<OutboundKey, OutboundRecord>,
}

impl H {
    fn new() -> Self {
        Self::with(OutboundConfig::default())
    }

    fn with(config: OutboundConfig) -> Self {
        H { m: OutboundPeeks::new(config.clone()), config, now: 1_000_000, store: BTreeMap::new() }
    }

    fn t(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    fn drain(&mut self) -> Vec<OutboundOutput> {
        let mut out = Vec::new();
        while let Some(o) = self.m.poll_output() {
            if let OutboundOutput::Send(req) = &o {
                match out.last() {
                    Some(OutboundOutput::Persist(OutboundChange::Upsert(
                        OutboundRecord::Peek(p),
                    ))) => {
                        assert_eq!(p.room_id, req.room_id, "persist before send names the room");
                        assert_eq!(p.peek_id, req.peek_id, "persist before send names the peek");
                        assert_eq!(p.server, req.server);
                    }
                    other => panic!("Send {req:?} not preceded by its Persist: {other:?}"),
                }
            }
            if let OutboundOutput::Persist(change) = &o {
                match change {
                    OutboundChange::Upsert(r) => {
                        self.store.insert(r.key(), r.clone());
                    }
                    OutboundChange::Remove(k) => {
                        self.store.remove(k);
                    }
                }
            }
            out.push(o);
        }
        out
    }

    fn demand(&mut self, r: &RoomId, via: &[&str]) -> Vec<OutboundOutput> {
        let via: Vec<_> = via.iter().map(|s| server(s)).collect();
        self.m.handle_demand(self.t(), r, &via);
        self.drain()
    }

    fn respond(&mut self, req: &Request, outcome: PeekOutcome) -> Vec<OutboundOutput> {
        self.m.handle_response(self.t(), req.id, outcome);
        self.drain()
    }

    fn advance(&mut self, d: Duration) -> Vec<OutboundOutput> {
        self.now += d.as_millis() as u64;
        self.m.handle_timeout(self.t());
        self.drain()
    }

    /// Jumps to the next deadline and fires it.
    fn fire(&mut self) -> Vec<OutboundOutput> {
        let at = self.m.poll_timeout().expect("a deadline");
        assert!(at.as_millis() > self.now, "deadline in the future");
        self.now = at.as_millis();
        self.m.handle_timeout(self.t());
        self.drain()
    }

    fn restore(&mut self) {
        self.m =
            OutboundPeeks::restore(self.t(), self.config.clone(), self.store.values().cloned());
    }

    /// Opens `r` via `s` and answers Established with `interval`.
    fn open(&mut self, r: &RoomId, s: &str, interval: Duration) -> Request {
        let out = self.demand(r, &[s]);
        let put = only_send(out);
        self.respond(&put, established(interval));
        assert_eq!(self.m.state(r), Some(OutboundState::Established));
        put
    }
}

fn only_send(out: Vec<OutboundOutput>) -> Request {
    let sends: Vec<_> = out
        .into_iter()
        .filter_map(|o| match o {
            OutboundOutput::Send(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "exactly one send: {sends:?}");
    sends.into_iter().next().unwrap()
}

fn no_sends(out: &[OutboundOutput]) {
    assert!(!out.iter().any(|o| matches!(o, OutboundOutput::Send(_))), "unexpected send: {out:?}");
}

#[test]
fn five_devices_share_one_federated_peek() {
    // R58
    let mut h = H::new();
    let r = room("!r:remote.org");
    let mut sends = Vec::new();
    for _ in 0..5 {
        sends.extend(h.demand(&r, &["remote.org"]));
    }
    let put = only_send(sends);
    assert!(matches!(put.kind, RequestKind::Peek { .. }));
    assert_eq!(put.server, server("remote.org"));
    assert_eq!(h.m.len(), 1);
    assert_eq!(h.m.in_flight(), 1);
    let out = h.respond(&put, established(HOUR));
    assert!(out.iter().any(|o| matches!(o, OutboundOutput::Established { .. })));
    no_sends(&h.demand(&r, &["remote.org"]));
}

#[test]
fn joined_room_is_unpeeked_and_never_peeked_again_until_left() {
    // R56, R57
    let mut h = H::new();
    let r = room("!r:remote.org");
    h.open(&r, "remote.org", HOUR);
    h.m.handle_joined(h.t(), &r);
    let del = only_send(h.drain());
    assert_eq!(del.kind, RequestKind::Unpeek);
    h.respond(&del, PeekOutcome::Deleted);
    assert_eq!(h.m.state(&r), None);
    no_sends(&h.demand(&r, &["remote.org"]));
    no_sends(&h.advance(Duration::from_secs(3600 * 10)));
    assert_eq!(h.m.len(), 0);
    assert!(h.m.is_joined(&r));
    // The marker survives a restart.
    h.restore();
    no_sends(&h.demand(&r, &["remote.org"]));
    h.m.handle_left(h.t(), &r);
    h.drain();
    let put = only_send(h.demand(&r, &["remote.org"]));
    assert!(matches!(put.kind, RequestKind::Peek { .. }));
}

#[test]
fn joining_while_the_put_is_in_flight_deletes_once_granted() {
    // R56
    let mut h = H::new();
    let r = room("!r:remote.org");
    let put = only_send(h.demand(&r, &["remote.org"]));
    h.m.handle_joined(h.t(), &r);
    no_sends(&h.drain());
    let out = h.respond(&put, established(HOUR));
    assert!(!out.iter().any(|o| matches!(o, OutboundOutput::Established { .. })));
    let del = only_send(out);
    assert_eq!((del.kind, del.peek_id), (RequestKind::Unpeek, put.peek_id));
}

#[test]
fn v12_room_id_uses_via_and_never_a_domain() {
    // R46, B-13
    let mut h = H::new();
    let v12 = room(&format!("!{}", "a".repeat(43)));
    assert!(v12.server_name().is_none());
    let out = h.demand(&v12, &[]);
    assert_eq!(
        out,
        vec![OutboundOutput::Unavailable {
            room_id: v12.clone(),
            error: OutboundPeekError::NoCandidates
        }]
    );
    assert_eq!(h.m.len(), 0);
    let put = only_send(h.demand(&v12, &["b.org", "b.org", "c.org"]));
    assert_eq!(put.server, server("b.org"));
    let next = only_send(h.respond(&put, failed(PeekFailure::NotFound)));
    assert_eq!(next.server, server("c.org"));
}

#[test]
fn renewal_at_half_the_interval_clamped_both_ways() {
    // R53
    for (interval, after) in [
        (HOUR, Duration::from_secs(1800)),
        (Duration::from_millis(3_600_000_000), OutboundConfig::default().max_renew_after),
        (Duration::from_millis(10), OutboundConfig::default().min_renew_after),
    ] {
        let mut h = H::new();
        let r = room("!r:remote.org");
        let start = h.now;
        let put = h.open(&r, "remote.org", interval);
        assert_eq!(
            h.m.poll_timeout(),
            Some(Timestamp::from_millis(start + after.as_millis() as u64))
        );
        let renew = only_send(h.fire());
        assert_eq!((&renew.kind, &renew.peek_id), (&RequestKind::Renew, &put.peek_id));
        assert_eq!(h.m.state(&r), Some(OutboundState::Renewing));
        assert!(h.m.established(&r).is_some());
        let renewed_at = h.now;
        h.respond(&renew, PeekOutcome::Renewed { renewal_interval: interval });
        assert_eq!(
            h.m.poll_timeout(),
            Some(Timestamp::from_millis(renewed_at + after.as_millis() as u64))
        );
    }
}

#[test]
fn refusal_fails_over_and_all_refusing_is_unavailable_with_the_most_specific_error() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org", "c.org"]));
    assert_eq!(put.server, server("a.org"));
    let next = only_send(h.respond(&put, failed(PeekFailure::NotFound)));
    assert_eq!(next.server, server("b.org"));
    assert_ne!(next.peek_id, put.peek_id);
    let next2 = only_send(h.respond(&next, failed(PeekFailure::Forbidden)));
    assert_eq!(next2.server, server("c.org"));
    let out = h.respond(&next2, failed(PeekFailure::IncompatibleRoomVersion));
    assert_eq!(
        out.last(),
        Some(&OutboundOutput::Unavailable {
            room_id: r.clone(),
            error: OutboundPeekError::Remote(PeekFailure::Forbidden)
        })
    );
    no_sends(&out);
    assert_eq!(h.m.len(), 0);
    assert!(h.store.keys().all(|k| !matches!(k, OutboundKey::Room(_))), "no leftover record");
}

#[test]
fn forbidden_from_the_first_candidate_peeks_the_second() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    let next = only_send(h.respond(&put, failed(PeekFailure::Forbidden)));
    assert_eq!(next.server, server("b.org"));
    let out = h.respond(&next, established(HOUR));
    assert!(out.contains(&OutboundOutput::Established {
        room_id: r.clone(),
        server: server("b.org"),
        access: access()
    }));
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("b.org")));
}

#[test]
fn invalid_response_deletes_the_granted_peek_before_failing_over() {
    // R49, R55, R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    let del = only_send(h.respond(&put, failed(PeekFailure::InvalidResponse)));
    assert_eq!(
        (del.kind.clone(), &del.server, &del.peek_id),
        (RequestKind::Unpeek, &put.server, &put.peek_id)
    );
    assert_eq!(h.m.state(&r), Some(OutboundState::Deleting));
    let next = only_send(h.respond(&del, failed(PeekFailure::NotFound)));
    assert_eq!(next.server, server("b.org"));
    // An Established of an unsupported version counts as incompatible and is deleted too.
    let cfg = OutboundConfig {
        supported_versions: vec![RoomVersionId::V10],
        ..OutboundConfig::default()
    };
    let mut h = H::with(cfg);
    let put = only_send(h.demand(&r, &["a.org"]));
    let out = h.respond(&put, established(HOUR));
    assert!(out.contains(&OutboundOutput::Unavailable {
        room_id: r.clone(),
        error: OutboundPeekError::Remote(PeekFailure::IncompatibleRoomVersion)
    }));
    assert_eq!(only_send(out).kind, RequestKind::Unpeek);
}

fn backoff_gaps(room_id: &RoomId, n: usize) -> Vec<u64> {
    let cfg = OutboundConfig {
        max_attempts: 100,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        ..OutboundConfig::default()
    };
    let mut h = H::with(cfg);
    let mut req = only_send(h.demand(room_id, &["a.org"]));
    let mut gaps = Vec::new();
    for _ in 0..n {
        let failed_at = h.now;
        no_sends(&h.respond(&req, failed(PeekFailure::Unreachable)));
        assert_eq!(h.m.state(room_id), Some(OutboundState::Backoff));
        req = only_send(h.fire());
        gaps.push(h.now - failed_at);
    }
    gaps
}

#[test]
fn backoff_doubles_caps_and_its_jitter_is_reproducible() {
    // R60
    let r = room("!backoff:a.org");
    let gaps = backoff_gaps(&r, 9);
    for (i, gap) in gaps.iter().enumerate() {
        let full = (1000u64 << i).min(60_000);
        assert!(*gap <= full && *gap >= full - full / 10, "attempt {i}: {gap} vs {full}");
    }
    assert_eq!(gaps, backoff_gaps(&r, 9), "same room, same delays");
    assert_ne!(gaps, backoff_gaps(&room("!other:a.org"), 9), "jitter depends on the room");
}

#[test]
fn rate_limited_retry_after_is_honoured() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org"]));
    let t0 = h.now;
    let hint = Some(Duration::from_secs(30));
    no_sends(&h.respond(&put, failed(PeekFailure::RateLimited { retry_after: hint })));
    assert_eq!(h.m.poll_timeout(), Some(Timestamp::from_millis(t0 + 30_000)));
    no_sends(&h.advance(Duration::from_millis(29_999)));
    assert!(matches!(
        only_send(h.advance(Duration::from_millis(1))).kind,
        RequestKind::Peek { .. }
    ));
}

#[test]
fn never_established_gives_up_after_max_attempts() {
    // R60, R27
    let cfg = OutboundConfig { max_attempts: 3, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    let mut req = only_send(h.demand(&r, &["a.org", "b.org"]));
    let mut out = Vec::new();
    for i in 0..3 {
        out = h.respond(
            &req,
            failed(if i == 1 { PeekFailure::Other(500) } else { PeekFailure::Unreachable }),
        );
        if i < 2 {
            req = only_send(h.fire());
        }
    }
    assert_eq!(
        out.last(),
        Some(&OutboundOutput::Unavailable {
            room_id: r.clone(),
            error: OutboundPeekError::Remote(PeekFailure::Unreachable)
        })
    );
    assert_eq!(h.m.len(), 0);
}

#[test]
fn established_peek_lost_to_network_trouble_is_retried_reporting_lost_once() {
    // DESIGN §6 giving up; R53
    let cfg = OutboundConfig { max_attempts: 2, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    h.open(&r, "a.org", Duration::from_secs(600)); // renew after 300 s, lapses at 600 s
    let mut lost = 0;
    let mut est = 0;
    let mut req = only_send(h.fire());
    for _ in 0..30 {
        let out = h.respond(&req, failed(PeekFailure::Unreachable));
        lost += out.iter().filter(|o| matches!(o, OutboundOutput::Lost { .. })).count();
        let mut out = h.fire();
        while !out.iter().any(|o| matches!(o, OutboundOutput::Send(_))) {
            lost += out.iter().filter(|o| matches!(o, OutboundOutput::Lost { .. })).count();
            out = h.fire();
        }
        lost += out.iter().filter(|o| matches!(o, OutboundOutput::Lost { .. })).count();
        req = only_send(out);
    }
    assert_eq!(lost, 1, "Lost reported once");
    assert!(h.m.state(&r).is_some(), "still trying, far past max_attempts");
    assert!(matches!(req.kind, RequestKind::Peek { .. }));
    let out = h.respond(&req, established(HOUR));
    est += out.iter().filter(|o| matches!(o, OutboundOutput::Established { .. })).count();
    assert_eq!(est, 1);
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}

#[test]
fn linger_then_exactly_one_unpeek_and_returning_demand_cancels_it() {
    // R55
    let mut h = H::new();
    let r = room("!r:a.org");
    let linger = h.config.linger;
    let put = h.open(&r, "a.org", HOUR);
    h.m.handle_no_demand(h.t(), &r);
    no_sends(&h.drain());
    assert_eq!(h.m.state(&r), Some(OutboundState::Lingering));
    no_sends(&h.advance(linger / 2));
    no_sends(&h.demand(&r, &["a.org"]));
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    no_sends(&h.advance(linger));
    // Now really go away.
    h.m.handle_no_demand(h.t(), &r);
    h.drain();
    no_sends(&h.advance(linger - Duration::from_millis(1)));
    let del = only_send(h.advance(Duration::from_millis(1)));
    assert_eq!((del.kind.clone(), del.peek_id.clone()), (RequestKind::Unpeek, put.peek_id));
    no_sends(&h.advance(HOUR * 5));
    h.respond(&del, failed(PeekFailure::NotFound)); // 404 counts as done
    assert_eq!(h.m.len(), 0);
    assert!(h.store.keys().all(|k| !matches!(k, OutboundKey::Room(_))));
    no_sends(&h.advance(HOUR * 5));
}

#[test]
fn unreachable_unpeek_is_retried_a_bounded_number_of_times() {
    // R55
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    h.m.handle_joined(h.t(), &r);
    let mut del = only_send(h.drain());
    let mut tries = 1;
    loop {
        let out = h.respond(&del, failed(PeekFailure::Unreachable));
        no_sends(&out);
        if h.m.state(&r).is_none() {
            break;
        }
        del = only_send(h.fire());
        assert_eq!(del.kind, RequestKind::Unpeek);
        tries += 1;
    }
    assert_eq!(tries, h.config.max_delete_attempts);
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn renew_404_reopens_with_a_fresh_id_and_an_old_expiry_is_ignored() {
    // R54
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let renew = only_send(h.fire());
    let out = h.respond(&renew, failed(PeekFailure::NotFound));
    assert!(
        out.contains(&OutboundOutput::Lost {
            room_id: r.clone(),
            reason: LostReason::RemoteExpired
        })
    );
    let put2 = only_send(out);
    assert!(matches!(put2.kind, RequestKind::Peek { .. }));
    assert_ne!(put2.peek_id, put.peek_id);
    h.respond(&put2, established(HOUR));
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put.peek_id);
    let out = h.drain();
    assert!(out.is_empty(), "old id ignored: {out:?}");
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    // The current id re-opens with yet another fresh id.
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, &put2.peek_id);
    let put3 = only_send(h.drain());
    assert!(![&put.peek_id, &put2.peek_id].contains(&&put3.peek_id));
    // The wrong server naming the current id is ignored too (B-9).
    h.respond(&put3, established(HOUR));
    h.m.handle_remote_expired(h.t(), &server("b.org"), &r, &put3.peek_id);
    assert!(h.drain().is_empty());
}

#[test]
fn a_peek_through_a_never_makes_a_demand_via_b_look_established() {
    // B-9
    let mut h = H::new();
    let r = room("!r:a.org");
    let other = room("!other:b.org");
    h.open(&r, "a.org", HOUR);
    let put_b = only_send(h.demand(&other, &["b.org"]));
    assert_eq!(h.m.established(&other), None);
    no_sends(&h.demand(&r, &["b.org"])); // merges b.org as a candidate, no second peek
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("a.org")));
    // A loses the peek; until B grants one, nothing is established.
    h.m.handle_remote_expired(h.t(), &server("a.org"), &r, "nope");
    assert!(h.drain().is_empty());
    let renew = only_send(h.fire());
    let reopen = only_send(h.respond(&renew, failed(PeekFailure::Forbidden)));
    assert_eq!(reopen.server, server("b.org"));
    assert_eq!(h.m.established(&r), None);
    h.respond(&reopen, established(HOUR));
    assert_eq!(h.m.established(&r).map(|(s, _)| s.to_owned()), Some(server("b.org")));
    h.respond(&put_b, failed(PeekFailure::Forbidden));
    assert_eq!(h.m.established(&other), None);
}

#[test]
fn ten_thousand_peek_ids_in_one_room_are_distinct_valid_and_survive_restore() {
    // R47
    let mut h = H::new();
    let r = room("!r:a.org");
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        let put = only_send(h.demand(&r, &["a.org"]));
        assert!(is_valid_peek_id(&put.peek_id) && put.peek_id.len() == 8, "{}", put.peek_id);
        assert!(seen.insert(put.peek_id.clone()), "reused {}", put.peek_id);
        h.respond(&put, established(HOUR));
        h.m.handle_joined(h.t(), &r);
        let del = only_send(h.drain());
        h.respond(&del, PeekOutcome::Deleted);
        h.m.handle_left(h.t(), &r);
        h.drain();
    }
    h.restore();
    let put = only_send(h.demand(&r, &["a.org"]));
    assert!(!seen.contains(&put.peek_id), "id reused after restore");
    assert!(is_valid_peek_id(&put.peek_id));
}

#[test]
fn restore_mid_renewal_renews_at_the_stored_time() {
    // R59, R53
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let due = h.m.poll_timeout().unwrap();
    h.advance(Duration::from_secs(60));
    h.restore();
    assert!(h.drain().is_empty(), "nothing to send at once");
    // The host re-declares demand (as LocalPeeks does after its own restore).
    no_sends(&h.demand(&r, &["a.org"]));
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    assert_eq!(
        h.m.established(&r).map(|(s, a)| (s.to_owned(), a.clone())),
        Some((server("a.org"), access()))
    );
    assert_eq!(h.m.poll_timeout(), Some(due));
    let renew = only_send(h.fire());
    assert_eq!(h.t(), due);
    assert_eq!((renew.kind, renew.peek_id), (RequestKind::Renew, put.peek_id));
}

#[test]
fn restore_with_a_renewal_in_flight_resends_it_when_due() {
    // R59
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    let renew = only_send(h.fire());
    h.restore();
    // The renewal was due before the crash: re-sent at once, also while lingering.
    let again = only_send(h.drain());
    assert_eq!((&again.kind, &again.peek_id), (&RequestKind::Renew, &renew.peek_id));
    h.m.handle_response(h.t(), renew.id, PeekOutcome::Renewed { renewal_interval: HOUR });
    assert!(h.drain().is_empty(), "a pre-crash answer is an unknown id");
    assert_eq!(h.m.state(&r), Some(OutboundState::Renewing));
    no_sends(&h.demand(&r, &["a.org"]));
    h.respond(&again, PeekOutcome::Renewed { renewal_interval: HOUR });
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
    assert_ne!(again.id, renew.id, "request ids are not reused across restarts");
}

#[test]
fn restored_peek_without_demand_is_deleted_after_linger() {
    // R59, R55
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    h.restore();
    assert_eq!(h.m.state(&r), Some(OutboundState::Lingering));
    no_sends(&h.advance(h.config.linger - Duration::from_millis(1)));
    let del = only_send(h.advance(Duration::from_millis(1)));
    assert_eq!((del.kind.clone(), del.peek_id.clone()), (RequestKind::Unpeek, put.peek_id));
    h.respond(&del, PeekOutcome::Deleted);
    assert_eq!(h.m.len(), 0);
}

#[test]
fn restore_resends_pending_deletes_and_settles_unanswered_puts() {
    // R59
    let mut h = H::new();
    let (a, b) = (room("!a:x.org"), room("!b:x.org"));
    h.open(&a, "x.org", HOUR);
    h.m.handle_joined(h.t(), &a);
    let _lost_delete = only_send(h.drain());
    let lost_put = only_send(h.demand(&b, &["x.org"]));
    h.restore();
    let del = only_send(h.drain());
    assert_eq!((del.kind, del.room_id), (RequestKind::Unpeek, a.clone()));
    // The unanswered PUT is re-sent with the same id once demand returns (idempotent).
    let put = only_send(h.demand(&b, &["x.org"]));
    assert_eq!((&put.peek_id, &put.server), (&lost_put.peek_id, &lost_put.server));
}

#[test]
fn restored_machine_answers_queries_like_the_original() {
    // R59, CONVENTIONS persistence contract
    let mut h = H::new();
    let rooms: Vec<_> = (0..5).map(|i| room(&format!("!r{i}:a.org"))).collect();
    for (i, r) in rooms.iter().enumerate() {
        h.open(r, "a.org", HOUR * (i as u32 + 1));
        h.advance(Duration::from_secs(7));
    }
    h.m.handle_no_demand(h.t(), &rooms[4]);
    h.drain();
    let before: Vec<_> = rooms
        .iter()
        .map(|r| (h.m.state(r), h.m.established(r).map(|(s, a)| (s.to_owned(), a.clone()))))
        .collect();
    let (timeout, len) = (h.m.poll_timeout(), h.m.len());
    let original = h.m.clone();
    h.restore();
    for r in &rooms[..4] {
        no_sends(&h.demand(r, &["a.org"]));
    }
    let after: Vec<_> = rooms
        .iter()
        .map(|r| (h.m.state(r), h.m.established(r).map(|(s, a)| (s.to_owned(), a.clone()))))
        .collect();
    assert_eq!(before, after);
    assert_eq!((h.m.poll_timeout(), h.m.len()), (timeout, len));
    assert_eq!(original.in_flight(), h.m.in_flight());
}

#[test]
fn renew_style_reput_resends_the_put_with_the_same_id() {
    // R53, RenewStyle::RePut
    let cfg = OutboundConfig { renew_style: RenewStyle::RePut, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let renew = only_send(h.fire());
    assert!(matches!(renew.kind, RequestKind::Peek { .. }));
    assert_eq!(renew.peek_id, put.peek_id);
    let t = h.now;
    no_sends(&h.respond(&renew, established(HOUR)));
    assert_eq!(h.m.poll_timeout(), Some(Timestamp::from_millis(t + 1_800_000)));
    let renew = only_send(h.fire());
    h.respond(&renew, PeekOutcome::Renewed { renewal_interval: HOUR });
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}

#[test]
fn access_lost_deletes_at_once_without_linger() {
    // R40, R24
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    let closed = RoomAccess::new(RoomVersionId::V11, false, false);
    h.m.handle_access_changed(h.t(), &r, &closed);
    let out = h.drain();
    assert!(
        out.contains(&OutboundOutput::Lost { room_id: r.clone(), reason: LostReason::AccessLost })
    );
    let del = only_send(out);
    assert_eq!((del.kind, del.peek_id), (RequestKind::Unpeek, put.peek_id));
    // Waiting clients (no peek yet) get Unavailable instead.
    let r2 = room("!r2:a.org");
    let put = only_send(h.demand(&r2, &["a.org"]));
    h.m.handle_access_changed(h.t(), &r2, &closed);
    assert_eq!(
        h.drain(),
        vec![OutboundOutput::Unavailable {
            room_id: r2.clone(),
            error: OutboundPeekError::Remote(PeekFailure::Forbidden)
        }]
    );
    let del = only_send(h.respond(&put, established(HOUR)));
    assert_eq!(del.kind, RequestKind::Unpeek);
}

#[test]
fn unknown_stale_and_duplicate_responses_are_ignored() {
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = h.open(&r, "a.org", HOUR);
    for outcome in [
        established(HOUR),
        PeekOutcome::Deleted,
        failed(PeekFailure::Forbidden),
        PeekOutcome::Renewed { renewal_interval: Duration::ZERO },
    ] {
        h.m.handle_response(h.t(), put.id, outcome.clone());
        h.m.handle_response(h.t(), matrix_peek::RequestId(u64::MAX), outcome);
    }
    assert!(h.drain().is_empty());
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}

#[test]
fn max_rooms_is_enforced() {
    let cfg = OutboundConfig { max_rooms: 2, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    h.demand(&room("!a:x.org"), &["x.org"]);
    h.demand(&room("!b:x.org"), &["x.org"]);
    let r = room("!c:x.org");
    assert_eq!(
        h.demand(&r, &["x.org"]),
        vec![OutboundOutput::Unavailable { room_id: r, error: OutboundPeekError::LimitExceeded }]
    );
}

#[test]
fn backwards_clock_never_renews_early() {
    // DESIGN §3
    let mut h = H::new();
    let r = room("!r:a.org");
    h.open(&r, "a.org", HOUR);
    let due = h.m.poll_timeout().unwrap();
    h.m.handle_timeout(Timestamp::from_millis(1));
    h.m.handle_no_demand(Timestamp::from_millis(2), &r);
    h.m.handle_demand(Timestamp::from_millis(3), &r, &[]);
    no_sends(&h.drain());
    assert_eq!(h.m.poll_timeout(), Some(due));
}
