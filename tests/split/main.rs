//! Routing as messages (docs/architecture.md §7.5): `SyncSide` and `FederationSide` over a
//! log that duplicates, replays and interleaves, against `Peeking`. Its own binary: its
//! property test runs long enough to race the coordinator binary's tracing test for the
//! global callsite-interest cache.

mod converge;
mod log;
mod resync;
mod support;
