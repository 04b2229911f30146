//! Exhaustive exploration: every state of a small world (a peeking server, two residents, one
//! room, one or two devices; message loss, duplication and reordering, one crash-restart of
//! the peeking server and one outage of a resident) reachable within a bounded number of
//! steps, breadth-first with state hashing, with the invariants checked in each one
//! (docs/architecture.md §13).

mod bugs;
mod exhaustive;
mod invariants;
mod node;
mod search;
mod world;
