//! Convergence of the split halves through crashes (docs/architecture.md §7.5, "Anti-entropy"):
//! whatever a crash loses between saving and publishing, once the log is healthy for a few
//! restatement intervals the federation side holds a peek of exactly the rooms the sync side
//! wants, and every one of them is established.

use std::collections::VecDeque;

use matrix_peek::{
    ClientPeek, ClientPeekReply, FederationSide, OutboundFailure, OutboundOutcome, OutboundRequest,
    OutboundRequestKind, OutboundState, Output, PeekingConfig, Residency, SideOutput, Snapshot,
    SyncSide, Timestamp, ToFederation, ToSync,
};
use proptest::prelude::*;
use ruma_common::{OwnedRoomId, owned_room_id};

use crate::support::host::*;

fn rooms() -> [OwnedRoomId; 2] {
    [remote_room(), owned_room_id!("!second:remote.test")]
}

#[derive(Debug, Clone, Copy)]
enum Answer {
    Granted,
    Forbidden,
    Unreachable,
}

#[derive(Debug, Clone)]
enum Op {
    Peek {
        device: usize,
        room: usize,
    },
    Unpeek {
        device: usize,
        room: usize,
    },
    /// Answer the oldest request in flight.
    Respond(Answer),
    Advance {
        secs: u64,
    },
    /// The sync side restarts from its store; with `lose`, the messages its last input
    /// produced were saved but never published.
    CrashSync {
        lose: bool,
    },
    /// The federation side restarts from its store, the same way.
    CrashFederation {
        lose: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..2usize).prop_map(|(device, room)| Op::Peek { device, room }),
        2 => (0..2usize, 0..2usize).prop_map(|(device, room)| Op::Unpeek { device, room }),
        4 => prop_oneof![
            5 => Just(Answer::Granted),
            1 => Just(Answer::Forbidden),
            2 => Just(Answer::Unreachable),
        ]
        .prop_map(Op::Respond),
        2 => prop_oneof![Just(1u64), Just(120), Just(400), Just(1800)]
            .prop_map(|secs| Op::Advance { secs }),
        2 => any::<bool>().prop_map(|lose| Op::CrashSync { lose }),
        2 => any::<bool>().prop_map(|lose| Op::CrashFederation { lose }),
    ]
}

fn client_peek(device: usize, room: usize) -> ClientPeek {
    ClientPeek {
        user_id: alice(),
        device_id: [phone(), tablet()][device].clone(),
        room_id: rooms()[room].clone(),
        joined: false,
        residency: Residency::Remote,
        via: vec![remote_server(), other_server()],
    }
}

/// Both halves, each with its own store, a log per direction, and the requests in flight.
struct World {
    config: PeekingConfig,
    sync: SyncSide,
    federation: FederationSide,
    sync_store: Snapshot,
    federation_store: Snapshot,
    to_federation: VecDeque<ToFederation>,
    to_sync: VecDeque<ToSync>,
    in_flight: VecDeque<OutboundRequest>,
    epoch: u64,
    now: Timestamp,
}

impl World {
    fn new() -> Self {
        // A client peek waits longer than the healthy stretch: one the federation side forgot
        // must be granted by the restatement, not end by giving up.
        let config = PeekingConfig { max_pending_wait: secs(2 * 3600), ..PeekingConfig::default() };
        World {
            sync: SyncSide::new(config.clone(), 1),
            federation: FederationSide::new(config.clone(), 1),
            config,
            sync_store: Snapshot::default(),
            federation_store: Snapshot::default(),
            to_federation: VecDeque::new(),
            to_sync: VecDeque::new(),
            in_flight: VecDeque::new(),
            epoch: 1,
            now: T0,
        }
    }

    /// Saves both halves' `Persist`s and takes their messages; `publish`: into the logs.
    fn collect(&mut self, publish_sync: bool, publish_federation: bool) {
        while let Some(out) = self.sync.poll_output() {
            match out {
                SideOutput::Host(Output::Persist(change)) => {
                    self.sync_store = self.sync_store.apply(&[change]);
                }
                SideOutput::Host(_) => {}
                SideOutput::Route(m) if publish_sync => self.to_federation.push_back(m),
                SideOutput::Route(_) => {}
            }
        }
        while let Some(out) = self.federation.poll_output() {
            match out {
                SideOutput::Host(Output::Persist(change)) => {
                    self.federation_store = self.federation_store.apply(&[change]);
                }
                SideOutput::Host(Output::Send(request)) => self.in_flight.push_back(request),
                SideOutput::Host(_) => {}
                SideOutput::Route(m) if publish_federation => self.to_sync.push_back(m),
                SideOutput::Route(_) => {}
            }
        }
    }

    /// Delivers every message, in order, until both logs are empty.
    fn settle(&mut self) {
        loop {
            self.collect(true, true);
            if let Some(m) = self.to_federation.pop_front() {
                self.federation.handle_route(self.now, m);
            } else if let Some(m) = self.to_sync.pop_front() {
                self.sync.handle_route(self.now, m);
            } else {
                return;
            }
        }
    }

    fn respond(&mut self, answer: Answer) {
        let Some(request) = self.in_flight.pop_front() else { return };
        let outcome = match (&request.kind, answer) {
            (_, Answer::Unreachable) => OutboundOutcome::Failed(OutboundFailure::Unreachable),
            (OutboundRequestKind::Unpeek, _) | (_, Answer::Granted) => granted(&request),
            (_, Answer::Forbidden) => OutboundOutcome::Failed(OutboundFailure::Forbidden),
        };
        self.federation.handle_response(self.now, request.id, outcome);
    }

    fn advance_to(&mut self, at: Timestamp) {
        self.now = self.now.max(at);
        self.federation.handle_timeout(self.now);
        self.sync.handle_timeout(self.now);
    }

    /// Runs `op`; `lose_sync` / `lose_federation`: the next op crashes that side losing what
    /// this one would publish.
    fn apply(&mut self, op: &Op, lose_sync: bool, lose_federation: bool) {
        match op {
            Op::Peek { device, room } => {
                let _ = self.sync.handle_client_peek(self.now, client_peek(*device, *room));
            }
            Op::Unpeek { device, room } => {
                let device_id = [phone(), tablet()][*device].clone();
                let _ =
                    self.sync.handle_client_unpeek(self.now, &alice(), &device_id, &rooms()[*room]);
            }
            Op::Respond(answer) => self.respond(*answer),
            Op::Advance { secs: s } => self.advance_to(self.now.saturating_add(secs(*s))),
            Op::CrashSync { .. } => {
                self.epoch += 1;
                self.sync = SyncSide::restore(
                    self.now,
                    self.config.clone(),
                    self.sync_store.clone(),
                    self.epoch,
                );
            }
            Op::CrashFederation { .. } => {
                self.epoch += 1;
                // Requests in flight die with it; their answers are never handled.
                self.in_flight.clear();
                self.federation = FederationSide::restore(
                    self.now,
                    self.config.clone(),
                    self.federation_store.clone(),
                    self.epoch,
                );
            }
        }
        self.collect(!lose_sync, !lose_federation);
        self.settle();
    }

    /// A healthy stretch: every request granted, each peeking device renewing every 10
    /// minutes, for long enough that every restatement and confirmation has fired.
    fn heal(&mut self) {
        let end = self.now.saturating_add(self.config.resync_interval * 4 + secs(600));
        let mut renew_at = self.now;
        while self.now < end {
            while !self.in_flight.is_empty() {
                self.respond(Answer::Granted);
                self.settle();
            }
            if self.now >= renew_at {
                renew_at = self.now.saturating_add(secs(600));
                for (device, room) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let device_id = [phone(), tablet()][device].clone();
                    if self.sync.local().is_peeking(&alice(), &device_id, &rooms()[room]) {
                        let reply =
                            self.sync.handle_client_peek(self.now, client_peek(device, room));
                        assert!(matches!(reply, ClientPeekReply::Done(Ok(_))), "{reply:?}");
                        self.settle();
                    }
                }
            }
            let next = [self.sync.poll_timeout(), self.federation.poll_timeout(), Some(renew_at)]
                .into_iter()
                .flatten()
                .min()
                .expect("a renewal is always due");
            self.advance_to(next.min(end));
            self.settle();
        }
        while !self.in_flight.is_empty() {
            self.respond(Answer::Granted);
            self.settle();
        }
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut world = World::new();
    for (i, op) in ops.iter().enumerate() {
        let next = ops.get(i + 1);
        let lose_sync = matches!(next, Some(Op::CrashSync { lose: true }));
        let lose_federation = matches!(next, Some(Op::CrashFederation { lose: true }));
        world.apply(op, lose_sync, lose_federation);
    }
    world.heal();
    prop_assert_eq!(world.sync.pending_client_peeks(), 0, "every waiting client peek decided");
    for room in rooms() {
        let wanted = world.sync.wanted_rooms().any(|r| r == room);
        let peeked = world.sync.peekers(&room).next().is_some();
        let state = world.federation.outbound().state(&room);
        prop_assert_eq!(wanted, peeked, "{}: wanted iff a device peeks it", room);
        if wanted {
            prop_assert_eq!(state, Some(OutboundState::Established), "{} is wanted", room);
        } else {
            prop_assert_eq!(state, None, "{} is wanted by nobody", room);
        }
    }
    Ok(())
}

proptest! {
    /// Crashes that lose a half's unpublished messages, restarts from the stores, refusals
    /// and time: after a healthy stretch of four restatement intervals the federated peeks are
    /// exactly the wanted rooms, each established.
    #[test]
    fn the_halves_converge_after_crashes_that_lose_messages(ops in prop::collection::vec(op(), 1..30)) {
        run(ops)?;
    }
}

#[test]
fn a_no_demand_lost_in_a_sync_crash_heals() {
    run(vec![
        Op::Peek { device: 0, room: 0 },
        Op::Respond(Answer::Granted),
        Op::Unpeek { device: 0, room: 0 },
        Op::CrashSync { lose: true },
    ])
    .unwrap();
}

#[test]
fn a_demand_forgotten_in_a_federation_restart_heals() {
    // Both residents were unreachable, so the room is in backoff when the federation side
    // restarts: its store has no record of a peek, so only the sync side's restatement brings
    // the demand back.
    run(vec![
        Op::Peek { device: 0, room: 0 },
        Op::Respond(Answer::Unreachable),
        Op::Respond(Answer::Unreachable),
        Op::CrashFederation { lose: false },
    ])
    .unwrap();
}
