//! The invariants checked in every explored state. Each returns `Err(why)` on a violation.
//!
//! * [`relays`]: no relay to an expired peek (and none missing), R39, R43.
//! * [`leases`]: every local lease ends: finite, at most one lease ahead, and `poll_timeout`
//!   at or before it (R9, R11).
//! * [`restores`]: `Peeking::restore` from the store built by every `Persist` answers the
//!   observable queries like the running server (R59, docs/architecture.md §8.2).
//! * [`teardown`]: once no device peeks the room, running the world without faults deletes
//!   every federated peek `P` knows of, and the residents end up holding none (R55, R43).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use matrix_peek::{OutboundState, Peeking, RoomAccess, StreamPosition, SyncDelta, Timestamp};
use ruma_common::OwnedServerName;

use crate::steps::{Action, Msg};
use crate::world::{Ctx, Outage, P, RESIDENTS, World};

/// How often each invariant had something to check (so that a pass means something).
#[derive(Debug, Default)]
pub struct Coverage {
    /// States where an up resident relays the room to someone.
    pub relaying: AtomicUsize,
    /// States where a device holds a live lease.
    pub leased: AtomicUsize,
    /// Distinct (server state, time) restored and compared.
    pub restored: AtomicUsize,
    /// States without demand, whose teardown was checked.
    pub teardowns: AtomicUsize,
    /// … of which `P` still had the room, or a resident still held a peek from `P`.
    pub teardowns_with_peeks: AtomicUsize,
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        write!(
            f,
            "relaying in {} states, a live lease in {}, {} server states restored, teardown \
             from {} states ({} with a peek left to delete)",
            n(&self.relaying),
            n(&self.leased),
            n(&self.restored),
            n(&self.teardowns),
            n(&self.teardowns_with_peeks)
        )
    }
}

/// Every invariant, cheapest first, remembering which servers' restores already passed.
#[derive(Default)]
pub struct Checker {
    /// How often each check had something to check.
    pub coverage: Coverage,
    /// (server digest, now) of every server state whose restore was found equivalent: the
    /// comparison depends on nothing else, and many worlds share a server state.
    restored: Mutex<HashSet<(u128, Timestamp)>>,
    /// Teardown verdicts by world digest (see [`teardown`]).
    teardowns: Mutex<HashMap<u128, Verdict>>,
}

impl Checker {
    /// Every invariant on `world`.
    pub fn check(&self, world: &World, ctx: &Ctx) -> Result<(), String> {
        let count = |a: &AtomicUsize, yes: bool| {
            a.fetch_add(usize::from(yes), Ordering::Relaxed);
        };
        let c = &self.coverage;
        let relaying = RESIDENTS.iter().any(|&r| {
            world.nodes[r].up && world.nodes[r].peeking.destinations(&ctx.room).next().is_some()
        });
        count(&c.relaying, relaying);
        relays(world, ctx)?;
        count(&c.leased, (0..ctx.devices.len()).any(|d| world.peeks(ctx, d)));
        leases(world, ctx)?;
        for i in 0..world.nodes.len() {
            let key = (world.nodes[i].digest, world.now);
            if self.restored.lock().expect("no thread panicked").contains(&key) {
                continue;
            }
            restores(world, ctx, i)?;
            count(&c.restored, self.restored.lock().expect("no thread panicked").insert(key));
        }
        let demand =
            (0..ctx.devices.len()).any(|d| world.peeks(ctx, d) || world.pending[d].is_some());
        if !demand {
            count(&c.teardowns, true);
            let held = RESIDENTS.iter().any(|&r| !world.nodes[r].peeking.inbound().is_empty());
            count(&c.teardowns_with_peeks, held || !world.nodes[P].peeking.outbound().is_empty());
        }
        teardown(world, ctx, &self.teardowns)
    }
}

/// No relay to an expired peek: every server in an up resident's `destinations(room)` holds
/// a peek there that is live at `now` by the machine (`records()`), by its store, and by the
/// grants the API handed out (the ghost). And no live grant is missing from it.
pub fn relays(world: &World, ctx: &Ctx) -> Result<(), String> {
    let now = world.now;
    for r in RESIDENTS {
        let node = &world.nodes[r];
        if !node.up {
            continue; // a down server relays nothing; it fires what fell due when it is up
        }
        let dests: Vec<OwnedServerName> =
            node.peeking.destinations(&ctx.room).map(ToOwned::to_owned).collect();
        for dest in &dests {
            let live = |expires_at: Timestamp| expires_at > now;
            let by_machine =
                node.peeking.inbound().records().any(|rec| {
                    &rec.server == dest && rec.room_id == ctx.room && live(rec.expires_at)
                });
            let by_store =
                node.store.inbound.iter().any(|rec| {
                    &rec.server == dest && rec.room_id == ctx.room && live(rec.expires_at)
                });
            let by_grants = ctx.index(dest) == P
                && world.ghost.grants.iter().any(|((rr, _), g)| *rr == r && live(g.expires_at));
            if !(by_machine && by_store && by_grants) {
                return Err(format!(
                    "R{r} relays to {dest} without a live peek at {} (machine {by_machine}, \
                     store {by_store}, grants {by_grants})",
                    now.as_millis()
                ));
            }
        }
        let granted = world.ghost.grants.iter().any(|((rr, _), g)| *rr == r && g.expires_at > now);
        if granted && !dests.contains(&ctx.servers[P]) {
            return Err(format!("R{r} granted P a live peek but does not relay to it"));
        }
    }
    Ok(())
}

/// Every live local lease ends: it is finite, at most one lease from now (no grant reports
/// more), and `poll_timeout` is at or before it, so `handle_timeout` will end it.
pub fn leases(world: &World, ctx: &Ctx) -> Result<(), String> {
    let peeking = &world.nodes[P].peeking;
    let longest = world.now.saturating_add(ctx.config.local.lease);
    for (d, device) in ctx.devices.iter().enumerate() {
        if !peeking.local().is_peeking(&ctx.user, device, &ctx.room) {
            if peeking.local().lease(&ctx.user, device, &ctx.room).is_some() {
                return Err(format!("device {d} has a lease but no peek"));
            }
            continue;
        }
        let Some(lease) = peeking.local().lease(&ctx.user, device, &ctx.room) else {
            return Err(format!("device {d} peeks without a lease"));
        };
        if lease >= Timestamp::MAX || lease > longest {
            return Err(format!("device {d}'s lease {lease:?} is beyond one lease from now"));
        }
        match peeking.poll_timeout() {
            Some(t) if t <= lease => {}
            other => {
                return Err(format!(
                    "device {d}'s lease ends at {} but poll_timeout is {other:?}",
                    lease.as_millis()
                ));
            }
        }
        if !peeking.peekers(&ctx.room).any(|(u, dv)| u == ctx.user && dv == device) {
            return Err(format!("device {d} peeks but is not among peekers(room)"));
        }
    }
    Ok(())
}

/// What a server shows through its queries, for comparing a running server with its restore.
#[derive(Debug, PartialEq)]
struct Observed {
    /// Per device: lease, and `sync_delta` for `None` and every `since` up to one past the end.
    devices: Vec<(Option<Timestamp>, Vec<SyncDelta>)>,
    peekers: Vec<String>,
    destinations: Vec<String>,
    inbound: Vec<String>,
    granted: Option<(OwnedServerName, RoomAccess)>,
    /// `is_remote(room)` while a local peek uses the room: a room only waiting client peeks
    /// use is not remembered across a restore (they are not persisted, §7.3).
    is_remote: bool,
    stream: StreamPosition,
}

fn observe(peeking: &Peeking, ctx: &Ctx, stream_end: u64) -> Observed {
    let devices = ctx
        .devices
        .iter()
        .map(|device| {
            let lease = peeking.local().lease(&ctx.user, device, &ctx.room);
            let mut deltas = vec![peeking.sync_delta(&ctx.user, device, None)];
            for k in 0..=stream_end + 1 {
                deltas.push(peeking.sync_delta(&ctx.user, device, Some(StreamPosition(k))));
            }
            (lease, deltas)
        })
        .collect();
    let mut peekers: Vec<String> =
        peeking.peekers(&ctx.room).map(|(u, d)| format!("{u}/{d}")).collect();
    peekers.sort();
    let mut destinations: Vec<String> =
        peeking.destinations(&ctx.room).map(|s| s.to_string()).collect();
    destinations.sort();
    let mut inbound: Vec<String> = peeking.inbound().records().map(|r| format!("{r:?}")).collect();
    inbound.sort();
    let granted = peeking.outbound().granted(&ctx.room).map(|(s, a)| (s.to_owned(), a.clone()));
    let is_remote = peeking.is_remote(&ctx.room) && !peekers.is_empty();
    Observed {
        devices,
        peekers,
        destinations,
        inbound,
        granted,
        is_remote,
        stream: peeking.local().stream_position(),
    }
}

/// Whether a restored outbound state is what the documented differences allow for `running`.
/// Not persisted (docs/architecture.md §6.7, §7.3): client peeks waiting on federation, the
/// linger's start, candidates' backoff, the pacer, and requests in flight. So:
/// * the demand after a restore is the local peeks' (re-declared by the restore itself): a room
///   demanded only by waiting client peeks restores lingering (or deleting, if its peek was
///   retired);
/// * a renewal in flight restores as `Established` (it is re-sent when due);
/// * a room in backoff is not stored: it restores only through its local demand, which opens
///   it again at once (`Connecting`), or not at all.
fn restored_state_allowed(
    running: Option<OutboundState>,
    restored: Option<OutboundState>,
    local_demand: bool,
) -> bool {
    use OutboundState::*;
    match (running, local_demand) {
        (None, _) => restored.is_none(),
        (Some(Established | Renewing), true) => matches!(restored, Some(Established | Renewing)),
        (Some(Connecting), true) => restored == Some(Connecting),
        (Some(Connecting), false) => matches!(restored, Some(Lingering | Deleting)),
        (Some(Backoff), true) => matches!(restored, Some(Connecting | Backoff)),
        (Some(Backoff), false) => matches!(restored, None | Some(Deleting)),
        // `Renewing` is reported whatever the demand (a lingering peek keeps being renewed).
        (Some(Renewing), false) => matches!(restored, Some(Lingering | Renewing)),
        (Some(Lingering), _) => restored == Some(Lingering),
        (Some(Deleting), _) => restored == Some(Deleting),
        (Some(Established), false) => false, // granted and demanded: by a local peek
        (Some(_), _) => false,
    }
}

/// Server `i` restored from its store at `now` (and its restore's outputs drained) answers
/// the observable queries like the running one, up to the documented differences.
pub fn restores(world: &World, ctx: &Ctx, i: usize) -> Result<(), String> {
    {
        let node = &world.nodes[i];
        let mut restored = Peeking::restore(world.now, ctx.config.clone(), node.store.clone());
        while restored.poll_output().is_some() {}
        let end = node.peeking.local().stream_position().0;
        let (a, b) = (observe(&node.peeking, ctx, end), observe(&restored, ctx, end));
        if a != b {
            return Err(format!("server {i} restored differs:\nrunning  {a:?}\nrestored {b:?}"));
        }
        let running = node.peeking.outbound().state(&ctx.room);
        let again = restored.outbound().state(&ctx.room);
        let demand = node.peeking.local().is_demanded(&ctx.room);
        if !restored_state_allowed(running, again, demand) {
            return Err(format!(
                "server {i}: outbound state {running:?} (local demand {demand}) restores as \
                 {again:?}"
            ));
        }
    }
    Ok(())
}

/// Whether `P` has no federated peek left: its outbound machine tracks no room, has nothing
/// in flight and no deadline (no `DELETE` waiting on the pacer or a backoff), and no request
/// of it is on the wire.
fn p_quiet(w: &World) -> bool {
    let out = w.nodes[P].peeking.outbound();
    out.is_empty()
        && out.in_flight() == 0
        && out.poll_timeout().is_none()
        && !w.net.iter().any(|m| matches!(m, Msg::Request { orphan: false, .. }))
}

/// Delivers the first message in flight (in the digest's canonical order, so that the run is
/// a function of the world's digest), else fires the earliest deadline. `false` when there is
/// nothing left to do.
fn settle_step(w: &mut World, ctx: &Ctx) -> bool {
    if let Some(first) = w.net.iter().min_by_key(|m| m.key()) {
        let first = Action::Deliver(first.clone());
        w.apply(ctx, &first);
        return true;
    }
    if w.next_deadline().is_none() {
        return false;
    }
    w.apply(ctx, &Action::Tick);
    true
}

/// How long after the start of the run `P` may still hold anything once demand is gone: the
/// linger, a `DELETE` retry waiting out the longest backoff, and slack for the pacer.
pub fn teardown_bound(ctx: &Ctx) -> Duration {
    let o = &ctx.config.outbound;
    o.linger + o.backoff_max + Duration::from_secs(5)
}

/// What the fault-free run from a world without demand came to: when `P` let go of the room,
/// and whether everything after was right. Every world the run passes through before that
/// point has the same future, so it is remembered for all of them ([`Checker`]).
#[derive(Debug, Clone)]
pub struct Verdict {
    quiet_at: Timestamp,
    outcome: Result<(), String>,
}

impl Verdict {
    /// The verdict for a run started at `start`.
    fn at(&self, start: Timestamp, ctx: &Ctx) -> Result<(), String> {
        let waited = self.quiet_at.saturating_duration_since(start);
        if waited > teardown_bound(ctx) {
            return Err(format!(
                "P still held a federated peek {} ms after demand was gone",
                waited.as_millis()
            ));
        }
        self.outcome.clone()
    }
}

/// No federated peek is left once demand is gone and the timers have run. From a state where
/// no device of `P` peeks (or waits on) the room: bring `R1` up, then deliver every message and
/// fire every timer in order, without faults. Then:
/// * `P` tracks no room and sends nothing any more, within [`teardown_bound`];
/// * at that moment a resident may still hold a peek from `P` only if `P` never learnt it was
///   granted (a lost answer, a duplicated `PUT` re-creating it) or gave up deleting it (a
///   failed `DELETE`): every instance `P` owes a `DELETE` is gone;
/// * once everything is quiet the residents hold no peek from `P` (those lapse, R43).
///
/// `known` holds the verdicts of worlds already run through (by digest); a run stops at the
/// first of them it reaches, and leaves the verdict for every world it passed.
pub fn teardown(
    world: &World,
    ctx: &Ctx,
    known: &Mutex<HashMap<u128, Verdict>>,
) -> Result<(), String> {
    let demand = (0..ctx.devices.len()).any(|d| world.peeks(ctx, d) || world.pending[d].is_some());
    if demand {
        return Ok(());
    }
    let start = world.now;
    let mut passed = vec![world.digest()];
    let mut w = world.clone();
    if w.budget.outage == Outage::Down {
        w.apply(ctx, &Action::Up);
    }
    let mut steps = 0;
    let verdict = loop {
        if let Some(v) = known.lock().expect("no thread panicked").get(passed.last().expect("one"))
        {
            break v.clone();
        }
        if p_quiet(&w) {
            break Verdict { quiet_at: w.now, outcome: after_quiet(w, ctx, start) };
        }
        steps += 1;
        if steps > 500 || !settle_step(&mut w, ctx) {
            return Err(format!("P never settles ({steps} steps)"));
        }
        if w.now.saturating_duration_since(start) > teardown_bound(ctx) {
            return Err(format!(
                "P still holds a federated peek {} ms after demand was gone: {:?}",
                w.now.as_millis() - start.as_millis(),
                w.nodes[P].peeking.outbound().state(&ctx.room)
            ));
        }
        passed.push(w.digest());
    };
    let mut known = known.lock().expect("no thread panicked");
    for digest in passed {
        known.insert(digest, verdict.clone());
    }
    verdict.at(start, ctx)
}

/// The checks once `P` let go of the room (`w` is that moment).
fn after_quiet(mut w: World, ctx: &Ctx, start: Timestamp) -> Result<(), String> {
    if let Some(owed) = w.ghost.owed.iter().next() {
        return Err(format!(
            "P forgot a federated peek it knew was granted: R{} still holds {} (+{} ms)",
            owed.0,
            owed.1,
            w.now.as_millis() - start.as_millis()
        ));
    }
    let mut steps = 0;
    while settle_step(&mut w, ctx) {
        steps += 1;
        if steps > 1000 {
            return Err("the world never settles".into());
        }
        if !p_quiet(&w) {
            return Err("P sent a request after it had let go of the room".into());
        }
    }
    for r in RESIDENTS {
        let held: Vec<_> = w.nodes[r].peeking.inbound().records().collect();
        if !held.is_empty() {
            return Err(format!("R{r} still holds {held:?} once everything is quiet"));
        }
    }
    Ok(())
}
