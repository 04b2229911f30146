//! Fixtures of the `LocalPeeks` tests: ids, a 1 s lease, output filters and a store that
//! follows the `Persist` stream; and the parts of `tests/support/` this area uses.

use std::collections::BTreeMap;
use std::time::Duration;

use matrix_peek::{
    LocalConfig, LocalEndReason, LocalKey, LocalOutput, LocalPeeks, LocalRecord, RoomAccess,
    Timestamp,
};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId};

/// The reference model `model.rs` compares the machine against.
#[path = "../support/model/local.rs"]
pub mod model;
#[path = "../support/prop.rs"]
pub mod prop;
/// The knobs and clocks of the long random runs (`soak.rs`), shared with the inbound area.
#[path = "../support/random_runs.rs"]
pub mod random_runs;

pub fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}
pub fn user(n: u32) -> OwnedUserId {
    UserId::parse(format!("@u{n}:example.org")).unwrap()
}
pub fn dev(s: &str) -> OwnedDeviceId {
    s.into()
}
pub fn room(n: u32) -> OwnedRoomId {
    RoomId::parse(format!("!r{n}:example.org")).unwrap()
}
pub fn open() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V11, true, false)
}
/// The default configuration with a 1 s lease.
pub fn config() -> LocalConfig {
    LocalConfig { lease: Duration::from_millis(1_000), ..LocalConfig::default() }
}

/// Every output queued so far.
pub fn drain(m: &mut LocalPeeks) -> Vec<LocalOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

/// How many `Wake`s are among `out`.
pub fn wakes(out: &[LocalOutput]) -> usize {
    out.iter().filter(|o| matches!(o, LocalOutput::Wake { .. })).count()
}

/// The devices woken among `out`, in order.
pub fn woken(out: &[LocalOutput]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            LocalOutput::Wake { device_id, .. } => Some(device_id.as_str()),
            _ => None,
        })
        .collect()
}

/// The `RoomDemand` changes among `out`.
pub fn demands(out: &[LocalOutput]) -> Vec<(OwnedRoomId, bool)> {
    out.iter()
        .filter_map(|o| match o {
            LocalOutput::RoomDemand { room_id, demanded } => Some((room_id.clone(), *demanded)),
            _ => None,
        })
        .collect()
}

/// The reasons of the `PeekEnded`s among `out`.
pub fn ended(out: &[LocalOutput]) -> Vec<LocalEndReason> {
    out.iter()
        .filter_map(|o| match o {
            LocalOutput::PeekEnded { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// Drains the outputs, applying every `Persist` to `store`.
pub fn pump(m: &mut LocalPeeks, store: &mut BTreeMap<LocalKey, LocalRecord>) -> Vec<LocalOutput> {
    let out: Vec<LocalOutput> = std::iter::from_fn(|| m.poll_output()).collect();
    for o in &out {
        if let LocalOutput::Persist(change) = o {
            change.apply_to(store);
        }
    }
    out
}
