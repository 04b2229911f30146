//! What the explored world is made of and how it moves: the messages between its servers
//! ([`Msg`]), the search's steps ([`Action`], [`Step`], [`path`]), and the checker's own
//! bookkeeping of grants from the API's results ([`Ghost`]). The world itself is in
//! [`world`](crate::world).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use matrix_peek::{
    OutboundFailure, OutboundOutcome, OutboundRequest, OutboundRequestKind, RequestId, Timestamp,
};

use crate::world::T0;

/// What travels between the servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// A federation request of `P` to resident `to`. `orphan` once `P` crashed after sending
    /// it: the resident still handles it, but the answer dies with the old process.
    Request { to: usize, request: OutboundRequest, orphan: bool },
    /// Resident `from`'s answer to request `id`. `instance` names the resident's peek a grant
    /// came from (see [`Ghost`]).
    Answer { from: usize, id: RequestId, outcome: OutboundOutcome, instance: Option<u32> },
    /// An `expired_peeks` entry in a `/send` from resident `from` (R43); `instance` names
    /// the resident's peek that lapsed (see [`Ghost`]).
    Expired { from: usize, peek_id: String, instance: u32 },
    /// An event of the room relayed by resident `from` (R39).
    Event { from: usize },
}

impl Msg {
    /// A short, complete encoding for the digest (a `PUT`'s `ver` is the configuration's, the
    /// same on every one: only its length is kept).
    pub fn key(&self) -> String {
        match self {
            Msg::Request { to, request, orphan } => {
                let kind = match &request.kind {
                    OutboundRequestKind::Peek { ver } => format!("put{}", ver.len()),
                    other => format!("{other:?}"),
                };
                format!(
                    "Q{to}{}{} {} {} {kind} {}",
                    u8::from(*orphan),
                    request.id.0,
                    request.server,
                    request.peek_id,
                    request.room_id
                )
            }
            other => format!("{other:?}"),
        }
    }

    /// What a retry duplicates: a request (its second answer is then a duplicate at `P`), an
    /// `expired_peeks` entry or an event (a retried `/send`). An HTTP answer is never sent twice.
    pub(crate) fn duplicable(&self) -> bool {
        !matches!(self, Msg::Answer { .. })
    }

    pub(crate) fn losable(&self) -> bool {
        !matches!(
            self,
            Msg::Answer { outcome: OutboundOutcome::Failed(OutboundFailure::Unreachable), .. }
                | Msg::Request { orphan: true, .. }
        )
    }
}

/// One step of the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Device `d` `/peek`s the room (remote, via both residents); a renewal if it peeks.
    Peek(usize),
    /// Device `d` `/unpeek`s the room (or withdraws its waiting peek).
    Unpeek(usize),
    /// Deliver one message in flight (any one: reordering).
    Deliver(Msg),
    /// Lose one message in flight, noticed now: `P` gets `Failed(Unreachable)` for a request
    /// that never arrived or an answer that never came back; a lost `expired_peeks` entry or
    /// event is simply gone. (Losing it earlier and noticing now is the same world: nothing
    /// but the wire differs in between.)
    Lose(Msg),
    /// Deliver one copy of a request, `expired_peeks` entry or event, and leave a duplicate in
    /// flight. (Duplicating it earlier is the same world until the first copy arrives.)
    Duplicate(Msg),
    /// Advance to the earliest deadline of an up server and fire every server due then.
    Tick,
    /// Resident `r` relays an event of the room to its `destinations`.
    Event(usize),
    /// `P` crashes and restarts from its store; answers in flight to it are lost.
    Crash,
    /// `R1` goes down: requests to it fail `Unreachable`, its timers wait. Enabled only while
    /// `R1` has something to miss (a request in flight to it, or a deadline): going down
    /// earlier is the same world until then.
    Down,
    /// `R1` comes back and fires what fell due meanwhile.
    Up,
}

/// A resident's live grant to `P`, as the API results told it (independent of the machine's
/// internals): the expiry of the last grant, and which creation of the peek id it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// `expires_at` of the last `InboundGrant` (PUT or renew) for it.
    pub expires_at: Timestamp,
    /// How many times the resident created this (resident, peek id) so far.
    pub instance: u32,
}

/// What kind of request `P` sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Put,
    Renew,
    Delete,
}

/// The checker's own bookkeeping, from the API's results only (never the machines' state).
#[derive(Debug, Clone, Default)]
pub struct Ghost {
    /// (resident, peek id) → the live grant to `P`. Removed by a successful `DELETE` and by
    /// the resident's `Expired` output.
    pub grants: BTreeMap<(usize, String), Grant>,
    /// (resident, peek id) → how many times the resident created it (a duplicated `PUT` may
    /// re-create a deleted peek).
    pub created: BTreeMap<(usize, String), u32>,
    /// `P`'s requests sent and not answered yet (cleared by a crash).
    pub outstanding: BTreeMap<RequestId, (usize, String, Kind)>,
    /// Peek instances `P` learnt were granted (it took an `Established`/`Renewed` answer they
    /// produced) and has not been given a reason to give up on (a failed `PUT` or `DELETE` of
    /// that id, §6.6): `P` owes them a `DELETE` once demand is gone. Pruned to instances that
    /// still exist.
    pub owed: BTreeSet<(usize, String, u32)>,
}

/// One step of a path, for counterexamples.
#[derive(Debug)]
pub struct Step {
    /// What was done.
    pub action: Action,
    /// The world's clock after it.
    pub now: Timestamp,
    /// The step before.
    pub parent: Option<Arc<Step>>,
}

/// The path from the initial world, oldest first, one line per step.
pub fn path(trace: &Option<Arc<Step>>) -> String {
    let mut steps = Vec::new();
    let mut at = trace.clone();
    while let Some(step) = at {
        steps.push(format!(
            "  +{:>6} ms  {:?}",
            step.now.as_millis() - T0.as_millis(),
            step.action
        ));
        at = step.parent.clone();
    }
    steps.reverse();
    steps.join("\n")
}
