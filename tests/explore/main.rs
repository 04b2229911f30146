//! Exhaustive exploration (docs/architecture.md §13): every state of a small world reachable
//! within a bounded number of steps, breadth-first with state hashing, with the invariants
//! checked in each one.
//!
//! **The world** ([`world`], its messages and steps in [`steps`]): a peeking server `P` with one user's devices, two residents `R1`
//! and `R2` of one `world_readable` room, each a `Peeking` with the store its `Persist`s built;
//! the messages in flight (`P`'s `PUT`/renew/`DELETE`s, the residents' answers,
//! `expired_peeks` entries and relayed events); a virtual clock; the fault budgets. Short
//! leases and intervals ([`world::small_config`]) put every timer within a few steps.
//!
//! **A step** is one of: a device peeks (remote, `via` both residents) or unpeeks; any one
//! message is delivered (reordering), lost (`P` sees `Failed(Unreachable)`) or duplicated;
//! time moves to the earliest deadline of an up server and every up server fires; a resident
//! relays an event; `P` crashes and restarts from its store (answers in flight to it die);
//! `R1` goes down (requests to it fail, its timers wait) and comes back.
//!
//! **The invariants** ([`invariants`]), in every state: relays go only to live peeks, and to
//! every live one; each live local lease is finite, at most one lease ahead, with
//! `poll_timeout` at or before it; every server restored from its store answers the
//! observable queries like the running one (up to the documented differences); and from
//! every state without demand, the fault-free run deletes every federated peek `P` knew was
//! granted, `P` lets go of the room within its linger and a backoff, and the residents end up
//! holding nothing.
//!
//! **The state hash** ([`World::digest`](world::World::digest),
//! [`node_digest`](node::node_digest)): each server's coordinator (`{:?}`, and `{:#?}` of
//! the outbound machine, whose rooms only the alternate form prints), its inbound records,
//! relay and fan-out order and its store; the messages in flight as a sorted multiset; the
//! clock, the pending client peeks, the budgets and the checker's own bookkeeping. Equal
//! states that print differently (maps keyed by a per-instance `RandomState` after a restore)
//! only cost pruning, which is why the count of states varies by about 1 % between runs.
//!
//! **Reductions** that keep every behaviour: a loss or a duplication happens when the message
//! is delivered (losing it earlier is the same world until then); `R1` goes down only when it
//! has something to miss; server transitions are memoised by (server digest, input, `now`)
//! ([`node::Memo`]); teardown verdicts are shared along the fault-free run.
//!
//! **Found**: [`bugs`] (a stale `expired_peeks` entry forgot a peek re-created under the same
//! id; fixed: the peeking side now retires and `DELETE`s the peek, whatever the renewal
//! style). Each bug stays pinned by its minimal test there, and the search itself runs with
//! no allowance for it.

mod bugs;
mod exhaustive;
mod invariants;
mod node;
mod search;
mod steps;
mod world;
