//! The explored world: a peeking server `P` and two residents `R1`, `R2` of one room, each a
//! `Peeking` with its own store, the messages in flight between them, a virtual clock and the
//! scenario's fault budgets. Every transition is one [`Action`]; [`World::digest`] is the state
//! hash the search prunes with.
//!
//! ```text
//!   P ──Request(PUT/renew/DELETE)──▶ R1, R2      (lost: P sees Failed(Unreachable))
//!   P ◀──Answer(outcome, instance)── R1, R2      (lost: P sees Failed(Unreachable))
//!   P ◀──Expired(peek id) / Event─── R1, R2      (/send: a lost one is simply gone)
//! ```
//!
//! Messages are delivered in any order (the search picks any one), instantly, at the world's
//! `now`; time moves only by [`Action::Tick`], to the earliest deadline of an up server. A
//! request is answered at any later point (the machines have no request timeout of their own:
//! a late answer is a legal host, a timed-out one is a loss).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use matrix_peek::wire::ToMatrixError;
use matrix_peek::{
    ClientPeek, ClientPeekReply, OutboundFailure, OutboundOutcome, OutboundRequest,
    OutboundRequestKind, Output, PeekingConfig, RequestId, Residency, RoomAccess, Timestamp,
};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId, ServerName,
    owned_room_id, owned_server_name, owned_user_id,
};

use crate::node::{Call, Digest, Memo, Node, Reply};

use crate::steps::{Action, Ghost, Grant, Kind, Msg, Step};

/// The peeking server.
pub const P: usize = 0;
/// The first resident (the one that has the outage).
pub const R1: usize = 1;
/// The second resident.
pub const R2: usize = 2;
/// Both residents.
pub const RESIDENTS: [usize; 2] = [R1, R2];

/// The start of the clock.
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// What the scenario allows: devices, and how many of each fault.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Devices of the one local user on `P` (1 or 2).
    pub devices: usize,
    /// Messages that may be duplicated.
    pub duplications: u8,
    /// Messages that may be lost.
    pub losses: u8,
    /// Events the residents may send (relayed to their `destinations`).
    pub events: u8,
    /// Whether `P` may crash and restart once.
    pub crash: bool,
    /// Whether `R1` may go down (and come back) once.
    pub outage: bool,
    /// Whether a device may `/peek` again while it peeks (a lease renewal).
    pub renewals: bool,
    /// `/peek`s and `/unpeek`s of all devices together (e.g. 3: peek, unpeek, peek again).
    pub client_actions: u8,
    /// Faults in one run, whatever their kind (a loss, a duplication, the crash, the outage),
    /// on top of each kind's own budget.
    pub faults: u8,
}

impl Scenario {
    /// One device and no faults.
    pub const QUIET: Scenario = Scenario {
        devices: 1,
        duplications: 0,
        losses: 0,
        events: 0,
        crash: false,
        outage: false,
        renewals: false,
        client_actions: 3,
        faults: 0,
    };
}

/// The fixed names and configuration of the world.
pub struct Ctx {
    /// `P`, `R1`, `R2`.
    pub servers: [OwnedServerName; 3],
    /// The room.
    pub room: OwnedRoomId,
    /// The one local user on `P`.
    pub user: OwnedUserId,
    /// Its devices.
    pub devices: Vec<OwnedDeviceId>,
    /// The room's access at the residents.
    pub access: RoomAccess,
    /// Every server's configuration.
    pub config: PeekingConfig,
    /// The fault budgets.
    pub scenario: Scenario,
    /// Every server transition computed so far (see [`Memo`]).
    pub memo: Memo,
}

/// Short leases and intervals, so that every timer of the machines (lease end, renewal,
/// lapse, linger, backoff, DELETE retry, failover, pending wait) is reachable in a few steps.
pub fn small_config() -> PeekingConfig {
    let secs = Duration::from_secs;
    let mut c = PeekingConfig::default();
    c.local.lease = secs(10);
    c.local.ended_retention = secs(5);
    c.inbound.renewal_interval = secs(4);
    c.inbound.grace = secs(1);
    c.outbound.min_renew_after = secs(1);
    c.outbound.linger = secs(3);
    c.outbound.backoff_base = secs(1);
    c.outbound.backoff_max = secs(4);
    c.outbound.max_attempts = 2;
    c.outbound.max_delete_attempts = 2;
    c.outbound.failover_after = secs(3);
    c.max_pending_wait = secs(20);
    c
}

impl Ctx {
    /// The world's names with `config` and `scenario`.
    pub fn new(config: PeekingConfig, scenario: Scenario) -> Ctx {
        let devices = ["PHONE", "TABLET"][..scenario.devices].iter().map(|d| (*d).into()).collect();
        Ctx {
            servers: [
                owned_server_name!("p.test"),
                owned_server_name!("r1.test"),
                owned_server_name!("r2.test"),
            ],
            room: owned_room_id!("!room:r1.test"),
            user: owned_user_id!("@alice:p.test"),
            devices,
            access: RoomAccess::new(RoomVersionId::V10, true, false),
            config,
            scenario,
            memo: Memo::default(),
        }
    }

    /// Index of a server name.
    pub fn index(&self, server: &ServerName) -> usize {
        self.servers.iter().position(|s| s == server).expect("one of the three servers")
    }
}

/// Whether `R1`'s one outage is still to come, going on, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    Unused,
    Down,
    Over,
}

/// What is left of the scenario's faults and client actions.
#[derive(Debug, Clone)]
pub struct Budget {
    pub client_actions: u8,
    pub faults: u8,
    pub duplications: u8,
    pub losses: u8,
    pub events: u8,
    pub crash: bool,
    pub outage: Outage,
}

/// The whole explored state.
#[derive(Clone)]
pub struct World {
    /// The virtual clock (every server is handed this `now`).
    pub now: Timestamp,
    /// `P`, `R1`, `R2`, shared with every world in the same server state.
    pub nodes: [Arc<Node>; 3],
    /// Messages in flight (a multiset: order is irrelevant, the digest sorts them).
    pub net: Vec<Msg>,
    /// Each device's client peek still waiting on federation.
    pub pending: Vec<Option<RequestId>>,
    /// Faults and client actions left.
    pub budget: Budget,
    /// The checker's bookkeeping.
    pub ghost: Ghost,
    /// How this world was reached.
    pub trace: Option<Arc<Step>>,
}

/// An error answer as it crosses the wire: through the error table and back (as the sim does).
fn over_the_wire(error: &impl ToMatrixError) -> OutboundOutcome {
    let m = error.to_matrix_error();
    let header = m.retry_after_header().map(|s| s.to_string());
    OutboundOutcome::Failed(OutboundFailure::from_response(
        m.status,
        header.as_deref(),
        &m.to_body(),
    ))
}

fn kind_of(kind: &OutboundRequestKind) -> Kind {
    match kind {
        OutboundRequestKind::Peek { .. } => Kind::Put,
        OutboundRequestKind::Renew => Kind::Renew,
        _ => Kind::Delete,
    }
}

impl World {
    /// Three fresh servers at `T0`, nothing in flight.
    pub fn new(ctx: &Ctx) -> World {
        let node = || Arc::new(Node::fresh(T0, &ctx.config, &ctx.room));
        let s = ctx.scenario;
        World {
            now: T0,
            nodes: [node(), node(), node()],
            net: Vec::new(),
            pending: vec![None; s.devices],
            budget: Budget {
                client_actions: s.client_actions,
                faults: s.faults,
                duplications: s.duplications,
                losses: s.losses,
                events: s.events,
                crash: s.crash,
                outage: if s.outage { Outage::Unused } else { Outage::Over },
            },
            ghost: Ghost::default(),
            trace: None,
        }
    }

    /// The earliest deadline of an up server.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.nodes.iter().filter(|n| n.up).filter_map(|n| n.peeking.poll_timeout()).min()
    }

    /// Whether device `d` holds a local peek on the room.
    pub fn peeks(&self, ctx: &Ctx, d: usize) -> bool {
        self.nodes[P].peeking.local().is_peeking(&ctx.user, &ctx.devices[d], &ctx.room)
    }

    /// Every action enabled here. Equal messages give one action.
    pub fn actions(&self, ctx: &Ctx) -> Vec<Action> {
        let mut actions = Vec::new();
        for d in 0..ctx.devices.len() {
            if self.budget.client_actions == 0 {
                break;
            }
            let peeks = self.peeks(ctx, d);
            if self.pending[d].is_none() && (!peeks || ctx.scenario.renewals) {
                actions.push(Action::Peek(d));
            }
            if peeks || self.pending[d].is_some() {
                actions.push(Action::Unpeek(d));
            }
        }
        let fault = self.budget.faults > 0;
        let mut seen: Vec<&Msg> = Vec::new();
        for m in &self.net {
            if seen.contains(&m) {
                continue;
            }
            seen.push(m);
            actions.push(Action::Deliver(m.clone()));
            if fault && self.budget.losses > 0 && m.losable() {
                actions.push(Action::Lose(m.clone()));
            }
            if fault && self.budget.duplications > 0 && m.duplicable() {
                actions.push(Action::Duplicate(m.clone()));
            }
        }
        if self.next_deadline().is_some() {
            actions.push(Action::Tick);
        }
        if self.budget.events > 0 {
            for r in RESIDENTS {
                let node = &self.nodes[r];
                if node.up && node.peeking.destinations(&ctx.room).next().is_some() {
                    actions.push(Action::Event(r));
                }
            }
        }
        if fault && self.budget.crash {
            actions.push(Action::Crash);
        }
        let r1_busy = self.nodes[R1].peeking.poll_timeout().is_some()
            || self.net.iter().any(|m| matches!(m, Msg::Request { to: R1, .. }));
        match self.budget.outage {
            Outage::Unused if fault && r1_busy => actions.push(Action::Down),
            Outage::Down => actions.push(Action::Up),
            Outage::Unused | Outage::Over => {}
        }
        actions
    }

    /// This world after `action` (a clone), with the step recorded.
    pub fn after(&self, ctx: &Ctx, action: &Action) -> World {
        let mut next = self.clone();
        next.apply(ctx, action);
        next.trace = Some(Arc::new(Step {
            action: action.clone(),
            now: next.now,
            parent: self.trace.clone(),
        }));
        next
    }

    /// The client peek device `d` sends.
    fn client_peek(ctx: &Ctx, d: usize) -> ClientPeek {
        ClientPeek {
            user_id: ctx.user.clone(),
            device_id: ctx.devices[d].clone(),
            room_id: ctx.room.clone(),
            joined: false,
            residency: Residency::Remote,
            via: vec![ctx.servers[R1].clone(), ctx.servers[R2].clone()],
        }
    }

    /// Hands server `i` one input; its outputs go on the wire (and into the ghost).
    fn call(&mut self, ctx: &Ctx, i: usize, call: &Call<'_>) -> Reply {
        let t = ctx.memo.call(&self.nodes[i], call, self.now, &ctx.config, &ctx.room);
        self.nodes[i] = t.node.clone();
        for out in &t.outputs {
            self.output(ctx, i, out);
        }
        t.reply.clone()
    }

    fn output(&mut self, ctx: &Ctx, i: usize, out: &Output) {
        match out {
            Output::Send(request) => {
                assert_eq!(i, P, "only P sends federation requests");
                let to = ctx.index(&request.server);
                let entry = (to, request.peek_id.to_string(), kind_of(&request.kind));
                self.ghost.outstanding.insert(request.id, entry);
                self.net.push(Msg::Request { to, request: request.clone(), orphan: false });
            }
            Output::Expired { server, room_id, peek_id, .. } => {
                assert_eq!((ctx.index(server), room_id), (P, &ctx.room));
                let key = (i, peek_id.to_string());
                // The machine expires what is due before handling a request: a grant made in
                // the same call (a re-created id) is live and stays, and the one that lapsed
                // is the creation before it.
                let instance = match self.ghost.grants.get(&key) {
                    Some(g) if g.expires_at <= self.now => {
                        let instance = g.instance;
                        self.ghost.grants.remove(&key);
                        instance
                    }
                    _ => self.ghost.created.get(&key).map_or(0, |n| n - 1),
                };
                self.net.push(Msg::Expired { from: i, peek_id: peek_id.to_string(), instance });
            }
            Output::ClientPeekDone { id, .. } => {
                for p in &mut self.pending {
                    if *p == Some(*id) {
                        *p = None;
                    }
                }
            }
            _ => {}
        }
    }

    /// Performs `action` in place.
    pub fn apply(&mut self, ctx: &Ctx, action: &Action) {
        match action {
            Action::Peek(d) => {
                self.budget.client_actions -= 1;
                let peek = World::client_peek(ctx, *d);
                if let Reply::ClientPeek(ClientPeekReply::Pending(id)) =
                    self.call(ctx, P, &Call::ClientPeek(&peek))
                {
                    self.pending[*d] = Some(id);
                }
            }
            Action::Unpeek(d) => {
                self.budget.client_actions -= 1;
                let peek = World::client_peek(ctx, *d);
                let reply = self.call(ctx, P, &Call::ClientUnpeek(&peek));
                assert!(
                    matches!(reply, Reply::ClientUnpeek(Ok(()))),
                    "unpeek of a peeking or waiting device: {reply:?}"
                );
                self.pending[*d] = None;
            }
            Action::Deliver(m) => {
                let m = self.take(m);
                self.deliver(ctx, m);
            }
            Action::Lose(m) => {
                let m = self.take(m);
                self.budget.losses -= 1;
                self.budget.faults -= 1;
                let outcome = OutboundOutcome::Failed(OutboundFailure::Unreachable);
                match m {
                    Msg::Request {
                        to: from,
                        request: OutboundRequest { id, .. },
                        orphan: false,
                    }
                    | Msg::Answer { from, id, .. } => {
                        self.deliver(ctx, Msg::Answer { from, id, outcome, instance: None });
                    }
                    Msg::Request { .. } | Msg::Expired { .. } | Msg::Event { .. } => {}
                }
            }
            Action::Duplicate(m) => {
                self.budget.duplications -= 1;
                self.budget.faults -= 1;
                self.deliver(ctx, m.clone());
            }
            Action::Tick => {
                let due = self.next_deadline().expect("Tick is enabled only with a deadline");
                self.now = self.now.max(due);
                // Every up server, the ones not due too (a spurious `handle_timeout` is a
                // documented no-op): every up machine's clock is then the world's, and states
                // that differ only in when a machine last heard the time are one state.
                for i in 0..3 {
                    if self.nodes[i].up {
                        self.call(ctx, i, &Call::Timeout);
                    }
                }
            }
            Action::Event(r) => {
                self.budget.events -= 1;
                let dests: Vec<usize> =
                    self.nodes[*r].peeking.destinations(&ctx.room).map(|s| ctx.index(s)).collect();
                for to in dests {
                    assert_eq!(to, P, "only P peeks");
                    self.net.push(Msg::Event { from: *r });
                }
            }
            Action::Crash => {
                self.budget.crash = false;
                self.budget.faults -= 1;
                self.net.retain(|m| !matches!(m, Msg::Answer { .. }));
                for m in &mut self.net {
                    if let Msg::Request { orphan, .. } = m {
                        *orphan = true;
                    }
                }
                self.ghost.outstanding.clear();
                self.pending.iter_mut().for_each(|p| *p = None);
                self.call(ctx, P, &Call::Restore);
            }
            Action::Down => {
                self.budget.outage = Outage::Down;
                self.budget.faults -= 1;
                self.call(ctx, R1, &Call::Down);
            }
            Action::Up => {
                self.budget.outage = Outage::Over;
                self.call(ctx, R1, &Call::Up);
            }
        }
        self.prune_ghost();
    }

    fn take(&mut self, m: &Msg) -> Msg {
        let at = self.net.iter().position(|x| x == m).expect("the message is in flight");
        self.net.swap_remove(at)
    }

    /// Delivers one message at `now`.
    fn deliver(&mut self, ctx: &Ctx, m: Msg) {
        match m {
            Msg::Request { to, request, orphan } => {
                let (outcome, instance) = if self.nodes[to].up {
                    self.resident_answer(ctx, to, &request)
                } else {
                    (OutboundOutcome::Failed(OutboundFailure::Unreachable), None)
                };
                if !orphan {
                    self.net.push(Msg::Answer { from: to, id: request.id, outcome, instance });
                }
            }
            Msg::Answer { from, id, outcome, instance } => {
                let sent = self.ghost.outstanding.remove(&id);
                let granted = matches!(
                    outcome,
                    OutboundOutcome::Established { .. } | OutboundOutcome::Renewed { .. }
                );
                let failed = matches!(outcome, OutboundOutcome::Failed(_));
                let taken =
                    matches!(self.call(ctx, P, &Call::Response(id, &outcome)), Reply::Taken(true));
                if let Some((r, peek_id, kind)) = sent {
                    debug_assert_eq!(r, from);
                    if let (true, true, Some(k)) = (taken, granted, instance) {
                        self.ghost.owed.insert((r, peek_id, k));
                    } else if failed && kind != Kind::Renew {
                        // P may give up on it: a `PUT` that failed is assumed not to have
                        // created the peek, a `DELETE` that failed may be dropped (§6.6).
                        self.ghost.owed.retain(|(rr, pp, _)| !(*rr == r && *pp == peek_id));
                    }
                }
            }
            Msg::Expired { from, peek_id, .. } => {
                let server = ctx.servers[from].clone();
                self.call(ctx, P, &Call::RemoteExpired(&server, &peek_id));
            }
            Msg::Event { .. } => {
                self.call(ctx, P, &Call::RemoteEvent);
            }
        }
    }

    /// Resident `r` handles `request` from `P` the way a host routes federation calls; the
    /// ghost records the grants it hands out.
    fn resident_answer(
        &mut self,
        ctx: &Ctx,
        r: usize,
        request: &OutboundRequest,
    ) -> (OutboundOutcome, Option<u32>) {
        let origin = ctx.servers[P].clone();
        let key = (r, request.peek_id.to_string());
        let call = Call::Request { origin: &origin, request, access: &ctx.access };
        match (self.call(ctx, r, &call), &request.kind) {
            (Reply::Grant(Ok(grant)), OutboundRequestKind::Peek { .. }) => {
                let instance = match self.ghost.grants.get(&key) {
                    Some(g) if grant.refreshed => g.instance,
                    _ => {
                        let n = self.ghost.created.entry(key.clone()).or_insert(0);
                        *n += 1;
                        *n
                    }
                };
                self.ghost.grants.insert(key, Grant { expires_at: grant.expires_at, instance });
                let outcome = OutboundOutcome::Established {
                    renewal_interval: grant.renewal_interval,
                    access: ctx.access.clone(),
                };
                (outcome, Some(instance))
            }
            (Reply::Grant(Ok(grant)), _) => {
                let g = self
                    .ghost
                    .grants
                    .get_mut(&key)
                    .expect("the resident renewed a peek the API never granted");
                g.expires_at = grant.expires_at;
                let outcome =
                    OutboundOutcome::Renewed { renewal_interval: Some(grant.renewal_interval) };
                (outcome, Some(g.instance))
            }
            (Reply::Unpeek(Ok(())), _) => {
                self.ghost.grants.remove(&key);
                (OutboundOutcome::Deleted, None)
            }
            (Reply::Grant(Err(e)) | Reply::Unpeek(Err(e)), _) => (over_the_wire(&e), None),
            (reply, _) => unreachable!("a resident answers a request: {reply:?}"),
        }
    }

    /// Owed instances that no longer exist at their resident are irrelevant (and would only
    /// split equal states).
    fn prune_ghost(&mut self) {
        let grants = &self.ghost.grants;
        self.ghost
            .owed
            .retain(|(r, id, k)| grants.get(&(*r, id.clone())).is_some_and(|g| g.instance == *k));
    }

    /// The state hash: every server's digest ([`node_digest`](crate::node::node_digest)),
    /// the messages in flight as a sorted multiset, the clock, the pending client peeks, the
    /// budgets and the ghost. The trace is not part of it.
    pub fn digest(&self) -> u128 {
        let mut d = Digest::new();
        for node in &self.nodes {
            write!(d, "{:x}\u{1}", node.digest).expect("writing to a string");
        }
        let mut net: Vec<String> = self.net.iter().map(Msg::key).collect();
        net.sort_unstable();
        write!(
            d,
            "{net:?}\u{1}{:?}\u{1}{:?}\u{1}{:?}\u{1}{:?}",
            self.now, self.pending, self.budget, self.ghost
        )
        .expect("writing to a string");
        d.finish()
    }
}
