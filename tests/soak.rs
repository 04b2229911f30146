//! Soak: a simulated week over four homeservers with loss, duplication, reordering and
//! crash-restarts; many rooms and devices; random peeks, unpeeks, joins, visibility changes
//! and outages (DESIGN §13). After local demand ends (leases + linger + a renewal interval +
//! grace), no remote peek may be left anywhere; no event may ever be relayed to a server
//! whose peek had expired or been deleted; every client peek must have completed.

#![cfg(feature = "testing")]

mod soak_support;

use soak_support::{SoakConfig, soak};

#[test]
fn a_simulated_week_leaks_nothing_across_seeds() {
    // DESIGN §13; R43, R53–R55, R59.
    for seed in [1, 2, 3, 4] {
        let out = soak(&SoakConfig::standard(seed, 7));
        assert!(out.client_peeks > 300, "seed {seed}: the soak did work ({})", out.client_peeks);
        assert!(out.requests > 100 && out.steps > 1000);
    }
}

#[test]
#[ignore = "long: a simulated month over 16 seeds"]
fn a_simulated_month_leaks_nothing_across_many_seeds() {
    for seed in 100..116 {
        soak(&SoakConfig::standard(seed, 30));
    }
}
