//! Routing as messages (docs/architecture.md §7.5): a [`SyncSide`] and a [`FederationSide`]
//! joined by a lossy-looking log — every message delivered twice, old ones replayed, the two
//! directions interleaved at random — end every step in the same state as [`Peeking`], which
//! passes the same messages directly. And a federation side that restarts keeps its peeks.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use matrix_peek::{
    ClientPeek, ClientPeekReply, FederationSide, OutboundOutcome, OutboundRequest,
    OutboundRequestKind, OutboundState, Output, Peeking, PeekingConfig, RequestId, Residency,
    SideOutput, Snapshot, SyncSide, Timestamp, ToFederation, ToSync,
};
use proptest::prelude::*;
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId};

use crate::support::host::*;

fn users() -> [OwnedUserId; 2] {
    [alice(), bob()]
}
fn devices() -> [OwnedDeviceId; 2] {
    [phone(), tablet()]
}
fn rooms() -> [OwnedRoomId; 2] {
    [remote_room(), ruma_common::owned_room_id!("!second:remote.test")]
}

#[derive(Debug, Clone)]
enum Op {
    Peek {
        user: usize,
        device: usize,
        room: usize,
        joined: bool,
    },
    Unpeek {
        user: usize,
        device: usize,
        room: usize,
    },
    /// Answer the oldest request in flight for the room (`ok`: the resident grants it).
    Respond {
        room: usize,
        ok: bool,
    },
    Advance {
        secs: u64,
    },
    DeviceRemoved {
        user: usize,
        device: usize,
    },
    Joined {
        user: usize,
        room: usize,
    },
    AccessChanged {
        room: usize,
        readable: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..2usize, 0..2usize, prop::bool::weighted(0.1))
            .prop_map(|(user, device, room, joined)| Op::Peek { user, device, room, joined }),
        2 => (0..2usize, 0..2usize, 0..2usize)
            .prop_map(|(user, device, room)| Op::Unpeek { user, device, room }),
        4 => (0..2usize, prop::bool::weighted(0.8)).prop_map(|(room, ok)| Op::Respond { room, ok }),
        2 => prop_oneof![Just(1u64), Just(60), Just(1800), Just(4000)]
            .prop_map(|secs| Op::Advance { secs }),
        1 => (0..2usize, 0..2usize).prop_map(|(user, device)| Op::DeviceRemoved { user, device }),
        1 => (0..2usize, 0..2usize).prop_map(|(user, room)| Op::Joined { user, room }),
        1 => (0..2usize, any::<bool>()).prop_map(|(room, readable)| Op::AccessChanged { room, readable }),
    ]
}

/// What a host sees: requests in flight (in the order sent) and client peek decisions.
#[derive(Default)]
struct Seen {
    in_flight: Vec<OutboundRequest>,
    decided: BTreeMap<RequestId, bool>,
}

impl Seen {
    fn take(&mut self, output: Output) {
        match output {
            Output::Send(request) => self.in_flight.push(request),
            Output::ClientPeekDone { id, result } => {
                self.decided.insert(id, result.is_ok());
            }
            _ => {}
        }
    }

    fn reply(&mut self, id: Option<RequestId>, reply: ClientPeekReply) {
        match reply {
            ClientPeekReply::Done(result) => {
                if let Some(id) = id {
                    self.decided.insert(id, result.is_ok());
                }
            }
            ClientPeekReply::Pending(_) => {}
        }
    }

    fn oldest(&mut self, room: &RoomId) -> Option<OutboundRequest> {
        let at = self.in_flight.iter().position(|r| r.room_id == room)?;
        Some(self.in_flight.remove(at))
    }
}

fn outcome(request: &OutboundRequest, ok: bool) -> OutboundOutcome {
    match (&request.kind, ok) {
        (OutboundRequestKind::Unpeek, _) | (_, true) => granted(request),
        _ => OutboundOutcome::Failed(matrix_peek::OutboundFailure::Forbidden),
    }
}

/// How the log misbehaves in one run.
#[derive(Debug, Clone)]
struct Faults {
    /// Every message is delivered twice (the second time later, at a random point).
    duplicate: bool,
    /// Random old messages are delivered again (choices, consumed in turn).
    replays: Vec<usize>,
    /// Which direction delivers next (choices, consumed in turn).
    directions: Vec<bool>,
}

fn faults() -> impl Strategy<Value = Faults> {
    (
        any::<bool>(),
        prop::collection::vec(any::<usize>(), 0..40),
        prop::collection::vec(any::<bool>(), 0..60),
    )
        .prop_map(|(duplicate, replays, directions)| Faults { duplicate, replays, directions })
}

/// A sync side and a federation side joined by two logs.
struct Split {
    sync: SyncSide,
    federation: FederationSide,
    to_federation: VecDeque<ToFederation>,
    to_sync: VecDeque<ToSync>,
    history_f: Vec<ToFederation>,
    history_s: Vec<ToSync>,
    faults: Faults,
    turn: usize,
}

impl Split {
    fn new(faults: Faults) -> Self {
        let config = PeekingConfig::default();
        Split {
            sync: SyncSide::new(config.clone(), 1),
            federation: FederationSide::new(config, 1),
            to_federation: VecDeque::new(),
            to_sync: VecDeque::new(),
            history_f: Vec::new(),
            history_s: Vec::new(),
            faults,
            turn: 0,
        }
    }

    fn choice<T: Copy>(list: &[T], turn: usize) -> Option<T> {
        if list.is_empty() { None } else { Some(list[turn % list.len()]) }
    }

    /// Collects both sides' outputs into the logs and the host, then delivers until quiet.
    fn settle(&mut self, now: Timestamp, seen: &mut Seen) {
        loop {
            while let Some(out) = self.sync.poll_output() {
                match out {
                    SideOutput::Host(output) => seen.take(output),
                    SideOutput::Route(m) => {
                        self.history_f.push(m.clone());
                        self.to_federation.push_back(m);
                    }
                }
            }
            while let Some(out) = self.federation.poll_output() {
                match out {
                    SideOutput::Host(output) => seen.take(output),
                    SideOutput::Route(m) => {
                        self.history_s.push(m.clone());
                        self.to_sync.push_back(m);
                    }
                }
            }
            self.turn += 1;
            let turn = self.turn;
            if let Some(pick) = Self::choice(&self.faults.replays, turn)
                && turn.is_multiple_of(3)
            {
                // A redelivery of an old message, out of order.
                if turn.is_multiple_of(2) && !self.history_f.is_empty() {
                    let m = self.history_f[pick % self.history_f.len()].clone();
                    self.federation.handle_route(now, m);
                } else if !self.history_s.is_empty() {
                    let m = self.history_s[pick % self.history_s.len()].clone();
                    self.sync.handle_route(now, m);
                }
            }
            let federation_first = Self::choice(&self.faults.directions, turn).unwrap_or(true);
            // Which log delivers first this turn; the other only if the first was empty.
            let delivered = match federation_first {
                true => self.deliver_f(now) || self.deliver_s(now),
                false => self.deliver_s(now) || self.deliver_f(now),
            };
            if !delivered {
                break;
            }
        }
    }

    fn deliver_f(&mut self, now: Timestamp) -> bool {
        let Some(m) = self.to_federation.pop_front() else { return false };
        self.federation.handle_route(now, m.clone());
        if self.faults.duplicate {
            self.federation.handle_route(now, m);
        }
        true
    }

    fn deliver_s(&mut self, now: Timestamp) -> bool {
        let Some(m) = self.to_sync.pop_front() else { return false };
        self.sync.handle_route(now, m.clone());
        if self.faults.duplicate {
            self.sync.handle_route(now, m);
        }
        true
    }
}

fn client_peek(user: usize, device: usize, room: usize, joined: bool) -> ClientPeek {
    ClientPeek {
        user_id: users()[user].clone(),
        device_id: devices()[device].clone(),
        room_id: rooms()[room].clone(),
        joined,
        residency: Residency::Remote,
        via: vec![remote_server(), other_server()],
    }
}

fn access(readable: bool) -> matrix_peek::RoomAccess {
    if readable {
        readable_access()
    } else {
        matrix_peek::RoomAccess::new(ruma_common::RoomVersionId::V10, false, true)
    }
}

fn readable_access() -> matrix_peek::RoomAccess {
    readable()
}

/// What both must agree on after every step.
#[derive(Debug, PartialEq)]
struct State {
    peeking: Vec<bool>,
    outbound: Vec<Option<OutboundState>>,
    in_flight: Vec<(String, String, String)>,
    decided: BTreeMap<RequestId, bool>,
    pending: usize,
}

fn state(
    local: &matrix_peek::LocalPeeks,
    outbound: &matrix_peek::OutboundPeeks,
    pending: usize,
    seen: &Seen,
) -> State {
    let mut peeking = Vec::new();
    for u in users() {
        for d in devices() {
            for r in rooms() {
                peeking.push(local.is_peeking(&u, &d, &r));
            }
        }
    }
    let mut in_flight: Vec<_> = seen
        .in_flight
        .iter()
        .map(|r| (r.room_id.to_string(), r.server.to_string(), format!("{:?}", r.kind)))
        .collect();
    in_flight.sort();
    State {
        peeking,
        outbound: rooms().iter().map(|r| outbound.state(r)).collect(),
        in_flight,
        decided: seen.decided.clone(),
        pending,
    }
}

fn run(ops: Vec<Op>, faults: Faults) -> Result<(), TestCaseError> {
    let mut peeking = Peeking::new(PeekingConfig::default());
    let mut split = Split::new(faults);
    let (mut seen_p, mut seen_s) = (Seen::default(), Seen::default());
    let mut now = T0;
    let mut next_id = 0u64;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Peek { user, device, room, joined } => {
                let peek = client_peek(user, device, room, joined);
                let a = peeking.handle_client_peek(now, peek.clone());
                let b = split.sync.handle_client_peek(now, peek);
                // Both number waiting peeks alike; a peek decided at once takes no number.
                let id = match (&a, &b) {
                    (_, ClientPeekReply::Pending(id)) | (ClientPeekReply::Pending(id), _) => {
                        next_id = id.0 + 1;
                        Some(*id)
                    }
                    _ => None,
                };
                seen_p.reply(id, a);
                seen_s.reply(id, b);
            }
            Op::Unpeek { user, device, room } => {
                let (u, d, r) = (&users()[user], &devices()[device], &rooms()[room]);
                let a = peeking.handle_client_unpeek(now, u, d, r);
                let b = split.sync.handle_client_unpeek(now, u, d, r);
                prop_assert_eq!(a.is_ok(), b.is_ok(), "step {}: unpeek", step);
            }
            Op::Respond { room, ok } => {
                let room = &rooms()[room];
                let (a, b) = (seen_p.oldest(room), seen_s.oldest(room));
                prop_assert_eq!(a.is_some(), b.is_some(), "step {}: requests in flight", step);
                if let (Some(a), Some(b)) = (a, b) {
                    peeking.handle_response(now, a.id, outcome(&a, ok));
                    split.federation.handle_response(now, b.id, outcome(&b, ok));
                }
            }
            Op::Advance { secs: s } => {
                now = now.saturating_add(secs(s));
                peeking.handle_timeout(now);
                split.federation.handle_timeout(now);
                split.sync.handle_timeout(now);
            }
            Op::DeviceRemoved { user, device } => {
                let (u, d) = (&users()[user], &devices()[device]);
                peeking.handle_device_removed(now, u, d);
                split.sync.handle_device_removed(now, u, d);
            }
            Op::Joined { user, room } => {
                let (u, r) = (&users()[user], &rooms()[room]);
                peeking.handle_joined(now, u, r, &readable());
                split.sync.handle_joined(now, u, r, &readable());
            }
            Op::AccessChanged { room, readable } => {
                let r = &rooms()[room];
                peeking.handle_access_changed(now, r, &access(readable));
                split.sync.handle_access_changed(now, r, &access(readable));
                split.federation.handle_access_changed(now, r, &access(readable));
            }
        }
        while let Some(out) = peeking.poll_output() {
            seen_p.take(out);
        }
        split.settle(now, &mut seen_s);
        let a = state(peeking.local(), peeking.outbound(), peeking.pending_client_peeks(), &seen_p);
        let b = state(
            split.sync.local(),
            split.federation.outbound(),
            split.sync.pending_client_peeks(),
            &seen_s,
        );
        prop_assert_eq!(a, b, "step {} ({:?})", step, next_id);
    }
    Ok(())
}

proptest! {
    /// At-least-once delivery, redeliveries of old messages and the two directions interleaved
    /// change nothing: after every step the split halves hold what `Peeking` holds.
    #[test]
    fn split_over_a_log_matches_in_process(ops in prop::collection::vec(op(), 1..40), faults in faults()) {
        run(ops, faults)?;
    }
}

#[test]
fn a_clean_log_matches_in_process() {
    let ops = vec![
        Op::Peek { user: 0, device: 0, room: 0, joined: false },
        Op::Respond { room: 0, ok: true },
        Op::Peek { user: 1, device: 1, room: 0, joined: false },
        Op::Unpeek { user: 0, device: 0, room: 0 },
        Op::Unpeek { user: 1, device: 1, room: 0 },
        Op::Advance { secs: 4000 },
        Op::Respond { room: 0, ok: true },
    ];
    run(ops, Faults { duplicate: false, replays: vec![], directions: vec![] }).unwrap();
}

#[test]
fn a_restated_demand_brings_back_no_candidate_that_refused_the_room() {
    // The resident refuses a renewal, then the other candidate refuses the new peek: the room
    // is unavailable, as in `Peeking`, although the sync side restated its demand (with the
    // refusing server in `via`) between the two.
    let ops = vec![
        Op::Peek { user: 0, device: 0, room: 0, joined: false },
        Op::Respond { room: 0, ok: true },
        Op::Advance { secs: 1800 },
        Op::Peek { user: 0, device: 0, room: 0, joined: false },
        Op::Respond { room: 0, ok: false },
        Op::Advance { secs: 1800 },
        Op::Respond { room: 0, ok: false },
    ];
    run(ops, Faults { duplicate: false, replays: vec![], directions: vec![] }).unwrap();
}

/// A federation side that crashes and restarts from its store announces its rooms
/// (`Restored`); the sync side states its demand again, so the peek is renewed, not dropped.
#[test]
fn a_restarted_federation_side_keeps_the_peeks_the_sync_side_wants() {
    let config = PeekingConfig::default();
    let mut sync = SyncSide::new(config.clone(), 1);
    let mut federation = FederationSide::new(config.clone(), 1);
    let mut store = Snapshot::default();
    let mut seen = Seen::default();
    let pump = |sync: &mut SyncSide,
                federation: &mut FederationSide,
                store: &mut Snapshot,
                seen: &mut Seen| loop {
        let mut progressed = false;
        while let Some(out) = sync.poll_output() {
            progressed = true;
            match out {
                SideOutput::Host(o) => seen.take(o),
                SideOutput::Route(m) => federation.handle_route(T0, m),
            }
        }
        while let Some(out) = federation.poll_output() {
            progressed = true;
            match out {
                SideOutput::Host(Output::Persist(change)) => *store = store.apply(&[change]),
                SideOutput::Host(o) => seen.take(o),
                SideOutput::Route(m) => sync.handle_route(T0, m),
            }
        }
        if !progressed {
            break;
        }
    };
    let reply = sync.handle_client_peek(T0, client_peek(0, 0, 0, false));
    assert!(matches!(reply, ClientPeekReply::Pending(_)));
    pump(&mut sync, &mut federation, &mut store, &mut seen);
    let put = seen.oldest(&rooms()[0]).expect("a PUT");
    federation.handle_response(T0, put.id, established());
    pump(&mut sync, &mut federation, &mut store, &mut seen);
    assert!(sync.local().is_peeking(&alice(), &phone(), &rooms()[0]));
    // Crash: the federation side comes back from its store, in a later epoch.
    federation = FederationSide::restore(T0, config, store.clone(), 2);
    assert_eq!(federation.outbound().state(&rooms()[0]), Some(OutboundState::Lingering));
    pump(&mut sync, &mut federation, &mut store, &mut seen);
    assert_eq!(federation.outbound().state(&rooms()[0]), Some(OutboundState::Established));
}

#[test]
fn over_a_log_a_replayed_message_stays_stale_however_many_rooms_came_and_went() {
    // Over a log every applied message is remembered for the replay window: a replay of an
    // old `ServerJoined` or `Demand` for a room gone since must not apply again (it would
    // re-set or wipe the joined mark, or re-open a peek).
    let mut federation = FederationSide::new(PeekingConfig::default(), 1);
    let mut n = 0;
    let mut seq = || {
        n += 1;
        matrix_peek::Seq { epoch: 1, n }
    };
    let first: OwnedRoomId = "!first:remote.test".try_into().expect("a room id");
    let (demand, joined) = (seq(), seq());
    let demand_first = ToFederation::Demand {
        room_id: first.clone(),
        seq: demand,
        via: Vec::new(),
        not_resident: true,
        restated: false,
    };
    federation.handle_route(T0, demand_first.clone());
    federation.handle_route(T0, ToFederation::ServerJoined { room_id: first.clone(), seq: joined });
    for i in 0..2_000 {
        let room_id: OwnedRoomId = format!("!r{i}:remote.test").try_into().expect("a room id");
        federation.handle_route(T0, ToFederation::NoDemand { room_id, seq: seq() });
    }
    while federation.poll_output().is_some() {}
    let stale = federation.stale_messages();
    federation.handle_route(T0, demand_first);
    federation.handle_route(T0, ToFederation::ServerJoined { room_id: first, seq: joined });
    assert_eq!(federation.stale_messages(), stale + 2, "both replays dropped");
    assert!(federation.poll_output().is_none(), "a replay changes nothing");
}

#[test]
fn over_a_log_the_routing_memory_keeps_only_the_replay_window_of_rooms_no_longer_peeked() {
    // 3 000 rooms written about 6 s apart (five hours): a room the outbound machine does not
    // hold is forgotten once its message is older than `replay_window` (1 h), so the memory
    // holds about the last hour's 600 rooms (twice that just before a prune), not 3 000.
    let config = PeekingConfig::default();
    let window = config.replay_window;
    let mut federation = FederationSide::new(config, 1);
    let mut now = T0;
    for i in 0..3_000u64 {
        now = T0.saturating_add(secs(6 * i));
        let room_id: OwnedRoomId = format!("!r{i}:remote.test").try_into().expect("a room id");
        let seq = matrix_peek::Seq { epoch: 1, n: i + 1 };
        federation.handle_route(now, ToFederation::NoDemand { room_id, seq });
    }
    while federation.poll_output().is_some() {}
    let in_window = (window.as_secs() / 6) as usize;
    assert!(
        federation.routing_memory() <= 2 * in_window + 64,
        "{} rooms remembered; {in_window} were written about within the window",
        federation.routing_memory()
    );
    let replay = |i: u64| {
        let room_id: OwnedRoomId = format!("!r{i}:remote.test").try_into().expect("a room id");
        ToFederation::NoDemand { room_id, seq: matrix_peek::Seq { epoch: 1, n: i + 1 } }
    };
    // A redelivery of a message applied 30 minutes ago is still stale...
    let stale = federation.stale_messages();
    federation.handle_route(now, replay(2_999 - 300));
    assert_eq!(federation.stale_messages(), stale + 1, "kept for the window");
    // ... and one of five hours ago finds its room forgotten (the log's contract rules it out).
    federation.handle_route(now, replay(100));
    assert_eq!(federation.stale_messages(), stale + 1, "forgotten after the window");
    assert_eq!(federation.forgotten_early(), 0, "nothing dropped before its window ended");
}

#[test]
fn over_a_log_the_routing_memory_is_capped_and_drops_the_oldest_first() {
    // 1 000 rooms in one minute, with room for 16 outbound rooms: the memory stays at its cap
    // (four per room, at least 64), forgetting the oldest first.
    let mut config = PeekingConfig::default();
    config.outbound.max_rooms = 16;
    let mut federation = FederationSide::new(config, 1);
    let room =
        |i: u64| -> OwnedRoomId { format!("!r{i}:remote.test").try_into().expect("a room id") };
    for i in 0..1_000u64 {
        let seq = matrix_peek::Seq { epoch: 1, n: i + 1 };
        federation.handle_route(
            T0.saturating_add(Duration::from_millis(60 * i)),
            ToFederation::NoDemand { room_id: room(i), seq },
        );
    }
    assert!(federation.routing_memory() <= 64, "{}", federation.routing_memory());
    assert!(federation.forgotten_early() >= 1_000 - 64, "{}", federation.forgotten_early());
    let stale = federation.stale_messages();
    let newest =
        ToFederation::NoDemand { room_id: room(999), seq: matrix_peek::Seq { epoch: 1, n: 1 } };
    federation.handle_route(T0.saturating_add(secs(60)), newest);
    assert_eq!(federation.stale_messages(), stale + 1, "the newest rooms are the ones kept");
    // ... and the oldest are the ones dropped: a redelivery for room 0 finds it forgotten.
    let oldest =
        ToFederation::NoDemand { room_id: room(0), seq: matrix_peek::Seq { epoch: 1, n: 1 } };
    federation.handle_route(T0.saturating_add(secs(60)), oldest);
    assert_eq!(federation.stale_messages(), stale + 1, "the oldest rooms are the ones dropped");
}

#[test]
fn in_process_the_routing_memory_stays_bounded_as_remote_rooms_come_and_go() {
    // Inside `Peeking` messages arrive once and in order, so the memory of applied messages
    // is pruned of rooms the outbound machine no longer holds: here 3 000 remote rooms whose
    // only candidate refuses the peek (the client's peek fails, the room is forgotten).
    let mut peeking = Peeking::new(PeekingConfig::default());
    for i in 0..3_000 {
        let room_id: OwnedRoomId = format!("!r{i}:remote.test").try_into().expect("a room id");
        let peek = ClientPeek {
            user_id: alice(),
            device_id: phone(),
            room_id: room_id.clone(),
            joined: false,
            residency: Residency::Remote,
            via: vec!["remote.test".try_into().expect("a server name")],
        };
        assert!(matches!(peeking.handle_client_peek(T0, peek), ClientPeekReply::Pending(_)));
        let mut refused = 0;
        while let Some(out) = peeking.poll_output() {
            if let Output::Send(request) = out {
                refused += 1;
                peeking.handle_response(
                    T0,
                    request.id,
                    OutboundOutcome::Failed(matrix_peek::OutboundFailure::Forbidden),
                );
            }
        }
        assert_eq!(refused, 1, "one PUT per room, refused");
        assert_eq!(peeking.outbound().state(&room_id), None, "{room_id} forgotten");
    }
    assert!(
        peeking.routing_memory() <= 128,
        "{} rooms remembered after 3000 came and went",
        peeking.routing_memory()
    );
}
