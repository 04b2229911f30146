//! Soaks on the simulator (docs/architecture.md §13): four homeservers with loss, duplication, reordering
//! and crash-restarts; many rooms and devices; random peeks, unpeeks, joins, visibility
//! changes and outages. The standard soak runs a simulated week (a month, ignored); the harsh
//! one pushes harder: heavy loss and duplication, idle devices (`device_idle_after`) and
//! leaves. After local demand ends, no remote peek may be left anywhere; no event may ever be
//! relayed to a server whose peek had expired or been deleted; every client peek must have
//! completed.

#![cfg(feature = "testing")]

use matrix_peek::testing::SimError;

use crate::support::{SoakConfig, soak};

#[test]
fn a_simulated_week_leaks_nothing_across_seeds() -> Result<(), SimError> {
    // docs/architecture.md §13; R43, R53–R55, R59.
    for seed in [1, 2, 3, 4] {
        let out = soak(&SoakConfig::standard(seed, 7))?;
        assert!(out.client_peeks > 300, "seed {seed}: the soak did work ({})", out.client_peeks);
        assert!(out.requests > 100 && out.steps > 1000);
    }
    Ok(())
}

#[test]
#[ignore = "long: a simulated month over 16 seeds"]
fn a_simulated_month_leaks_nothing_across_many_seeds() -> Result<(), SimError> {
    for seed in 100..116 {
        soak(&SoakConfig::standard(seed, 30))?;
    }
    Ok(())
}

fn harsh(seed: u64, days: u64, loss: f64, duplication: f64, idle: bool) -> Result<usize, SimError> {
    Ok(soak(&SoakConfig::harsh(seed, days, loss, duplication, idle))?.client_peeks)
}

#[test]
fn harsh_soak_heavy_loss_and_duplication_leaks_nothing() -> Result<(), SimError> {
    for seed in 20..28 {
        let n = harsh(seed, 2, 0.3, 0.3, false)?;
        assert!(n > 50, "seed {seed}: the soak did work ({n})");
    }
    Ok(())
}

#[test]
fn harsh_soak_with_idle_devices_leaks_nothing() -> Result<(), SimError> {
    for seed in 40..48 {
        let n = harsh(seed, 2, 0.1, 0.1, true)?;
        assert!(n > 50, "seed {seed}: the soak did work ({n})");
    }
    Ok(())
}

#[test]
#[ignore = "long: 48 seeds x 7 days under heavy loss, idle devices on and off"]
fn harsh_soak_of_a_week_leaks_nothing_across_many_seeds() -> Result<(), SimError> {
    for seed in 200..248 {
        harsh(seed, 7, 0.4, 0.3, seed % 2 == 0)?;
    }
    Ok(())
}
