//! Other implementations' tests and defects: the SyTest ports (`sytest_local`: the local peek
//! tests on the coordinator; `sytest_federation`: the federated ones on the simulator) and a
//! regression guard for every Dendrite defect and palpo review finding that applies
//! (`regressions`, ids as in `docs/regressions.md`).

mod config;
mod docs;
mod regressions;
mod support;
mod sytest_federation;
mod sytest_local;
