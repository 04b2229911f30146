//! Whole deployments on the simulator (`testing::Sim`): the soaks (a week, harsh; a month and a
//! long harsh run `#[ignore]`d), failover, the simulated network's outages, and the kit itself
//! as test authors meet it (typed errors, gaps, histories, settling, leaks), and a reduced day
//! of the scale mode (issue #20).

mod failover;
mod kit;
mod outages;
mod scale;
mod soak;
mod support;
