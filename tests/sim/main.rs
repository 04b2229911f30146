//! Whole deployments on the simulator (`testing::Sim`): the soaks (a week, harsh; a month and a
//! long harsh run `#[ignore]`d) and the simulated network's outages.

mod failover;
mod outages;
mod soak;
mod support;
