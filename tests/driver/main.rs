//! The async `Driver` under `futures::executor::LocalPool` (no tokio), with `ManualClock`,
//! `MemoryStore`/`FlakyStore` and `ScriptedTransport`: federation, restarts, store faults,
//! notifications, and the testing kit's stores against `store_conformance`.

mod commit;
mod lifecycle;
mod notifications;
mod restart;
mod store_conformance;
mod store_faults;
mod support;
mod transport;
