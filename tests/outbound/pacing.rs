//! No sequence of answers makes one room send more than
//! `OutboundPeeks::MAX_REQUESTS_PER_MINUTE` requests in any minute, on either renew style,
//! whatever the host's backoff configuration.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundOutcome, OutboundOutput, OutboundPeeks,
    OutboundRenewStyle, OutboundRequest, RoomAccess, Timestamp,
};
use proptest::prelude::*;

use crate::support::prop::saved_beside_source;
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

#[derive(Debug, Clone)]
enum Op {
    Demand(usize, Vec<usize>),
    NoDemand(usize),
    Answer(usize, Outcome),
    Advance(u64),
    Event(usize),
    Expired(usize),
    Unreachable(usize),
    Joined(usize),
    Left(usize),
    /// A hostile or broken resident: every request answered at once with `Outcome`, `rounds`
    /// times, `step` ms apart (deadlines fired in between).
    Storm(Outcome, u16, u64),
}

#[derive(Debug, Clone)]
enum Outcome {
    Established(u64, bool),
    Renewed(Option<u64>),
    Deleted,
    Failed(u8, Option<u64>, u16),
}

fn duration() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), 0u64..5, 0u64..70_000, Just(u64::MAX / 4)]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (duration(), any::<bool>()).prop_map(|(d, p)| Outcome::Established(d, p)),
        proptest::option::of(duration()).prop_map(Outcome::Renewed),
        Just(Outcome::Deleted),
        (0u8..7, proptest::option::of(duration()), 400u16..600)
            .prop_map(|(k, h, s)| Outcome::Failed(k, h, s)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0usize..2, proptest::collection::vec(0usize..3, 0..4)).prop_map(|(r, v)| Op::Demand(r, v)),
        1 => (0usize..2).prop_map(Op::NoDemand),
        8 => (0usize..8, outcome()).prop_map(|(i, o)| Op::Answer(i, o)),
        4 => prop_oneof![0u64..3, 0u64..2_000, 0u64..120_000].prop_map(Op::Advance),
        2 => (0usize..2).prop_map(Op::Event),
        1 => (0usize..2).prop_map(Op::Expired),
        1 => (0usize..3).prop_map(Op::Unreachable),
        1 => (0usize..2).prop_map(Op::Joined),
        1 => (0usize..2).prop_map(Op::Left),
        2 => (outcome(), 1u16..400, 0u64..300).prop_map(|(o, n, s)| Op::Storm(o, n, s)),
    ]
}

fn config() -> impl Strategy<Value = OutboundConfig> {
    let small = || prop_oneof![Just(0u64), 0u64..2_000, 0u64..70_000];
    (any::<bool>(), small(), small(), small(), small()).prop_map(
        |(reput, base, min_renew, failover, silence)| OutboundConfig {
            renew_style: if reput {
                OutboundRenewStyle::RePut
            } else {
                OutboundRenewStyle::RenewEndpoint
            },
            backoff_base: Duration::from_millis(base),
            min_renew_after: Duration::from_millis(min_renew),
            failover_after: Duration::from_millis(failover),
            min_silence: Duration::from_millis(silence),
            linger: Duration::from_millis(base * 10),
            ..OutboundConfig::default()
        },
    )
}

fn to_outcome(o: &Outcome) -> OutboundOutcome {
    let ms = Duration::from_millis;
    match o {
        Outcome::Established(d, peekable) => OutboundOutcome::Established {
            renewal_interval: ms(*d),
            access: RoomAccess::new(RoomVersionId::V11, *peekable, false),
        },
        Outcome::Renewed(d) => OutboundOutcome::Renewed { renewal_interval: d.map(ms) },
        Outcome::Deleted => OutboundOutcome::Deleted,
        Outcome::Failed(k, hint, status) => OutboundOutcome::Failed(match k {
            0 => OutboundFailure::Forbidden,
            1 => OutboundFailure::NotFound,
            2 => OutboundFailure::IncompatibleRoomVersion,
            3 => OutboundFailure::RateLimited { retry_after: hint.map(ms) },
            4 => OutboundFailure::InvalidResponse,
            5 => OutboundFailure::Other(*status),
            _ => OutboundFailure::Unreachable,
        }),
    }
}

struct World {
    m: OutboundPeeks,
    now: u64,
    rooms: Vec<OwnedRoomId>,
    servers: Vec<OwnedServerName>,
    outstanding: Vec<OutboundRequest>,
    sent: BTreeMap<OwnedRoomId, VecDeque<u64>>,
}

impl World {
    fn t(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(o) = self.m.poll_output() {
            if let OutboundOutput::Send(req) = o {
                let window = self.sent.entry(req.room_id.clone().into()).or_default();
                window.push_back(self.now);
                while window.front().is_some_and(|&t| t + 60_000 <= self.now) {
                    window.pop_front();
                }
                prop_assert!(
                    window.len() as u32 <= OutboundPeeks::MAX_REQUESTS_PER_MINUTE,
                    "{} requests for {} in the minute before {}",
                    window.len(),
                    req.room_id,
                    self.now
                );
                self.outstanding.push(req);
            }
        }
        if let Some(at) = self.m.poll_timeout() {
            prop_assert!(at.as_millis() > self.now, "a due deadline was left behind");
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(saved_beside_source(ProptestConfig::default()))]
    #[test]
    fn no_answers_make_a_room_exceed_its_request_budget(
        config in config(),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let mut w = World {
            m: OutboundPeeks::new(config),
            now: 1_700_000_000_000,
            rooms: vec!["!a:x.org".try_into().unwrap(), "!b:x.org".try_into().unwrap()],
            servers: ["s0.org", "s1.org", "s2.org"].map(|s| s.try_into().unwrap()).to_vec(),
            outstanding: Vec::new(),
            sent: BTreeMap::new(),
        };
        for op in ops {
            let now = w.t();
            match op {
                Op::Demand(r, via) => {
                    let via: Vec<_> = via.iter().map(|&s| w.servers[s].clone()).collect();
                    w.m.handle_demand(now, &w.rooms[r].clone(), &via);
                }
                Op::NoDemand(r) => w.m.handle_no_demand(now, &w.rooms[r].clone()),
                Op::Answer(i, o) => {
                    if !w.outstanding.is_empty() {
                        let req = w.outstanding.remove(i % w.outstanding.len());
                        w.m.handle_response(now, req.id, to_outcome(&o));
                    }
                }
                Op::Advance(ms) => {
                    let target = w.now + ms;
                    while let Some(at) = w.m.poll_timeout() {
                        if at.as_millis() > target {
                            break;
                        }
                        w.now = at.as_millis();
                        w.m.handle_timeout(w.t());
                        w.drain()?;
                    }
                    w.now = target;
                }
                Op::Storm(o, rounds, step) => {
                    for _ in 0..rounds {
                        for req in std::mem::take(&mut w.outstanding) {
                            w.m.handle_response(w.t(), req.id, to_outcome(&o));
                            w.drain()?;
                        }
                        let target = w.now + step;
                        while let Some(at) = w.m.poll_timeout() {
                            if at.as_millis() > target {
                                break;
                            }
                            w.now = at.as_millis();
                            w.m.handle_timeout(w.t());
                            w.drain()?;
                        }
                        w.now = target;
                    }
                }
                Op::Event(r) => w.m.handle_room_event(now, &w.rooms[r].clone()),
                Op::Expired(r) => {
                    let room = w.rooms[r].clone();
                    let last = w.outstanding.iter().rev().find(|q| q.room_id == room).cloned();
                    if let Some(q) = last {
                        w.m.handle_remote_expired(now, &q.server, &room, &q.peek_id);
                    }
                }
                Op::Unreachable(s) => w.m.handle_server_unreachable(now, &w.servers[s].clone()),
                Op::Joined(r) => w.m.handle_server_joined(now, &w.rooms[r].clone()),
                Op::Left(r) => w.m.handle_server_left(now, &w.rooms[r].clone()),
            }
            w.drain()?;
        }
    }
}
