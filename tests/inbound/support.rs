//! Fixtures of the `InboundPeeks` tests: ids, a 60 s grace, and helpers that peek, drain and
//! read expiries and destinations; and the parts of `tests/support/` this area uses.

use std::time::Duration;

use matrix_peek::{
    InboundConfig, InboundEndReason, InboundOutput, InboundPeekError, InboundPeeks, RoomAccess,
    Timestamp,
};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

/// The reference model `model.rs` compares the machine against.
#[path = "../support/model/inbound.rs"]
pub mod model;
#[path = "../support/prop.rs"]
pub mod prop;
/// The knobs and clocks of the long random runs (`soak.rs`), shared with the local area.
#[path = "../support/random_runs.rs"]
pub mod random_runs;

pub const HOUR: u64 = 3_600_000;

pub const GRACE: u64 = 60_000;

pub fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

pub fn srv(s: &str) -> OwnedServerName {
    s.try_into().unwrap()
}

pub fn room(s: &str) -> OwnedRoomId {
    s.try_into().unwrap()
}

pub fn open() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V10, true, false)
}

pub fn v10() -> Vec<RoomVersionId> {
    vec![RoomVersionId::V10]
}

pub fn config() -> InboundConfig {
    InboundConfig { grace: Duration::from_millis(GRACE), ..InboundConfig::default() }
}

pub fn machine() -> InboundPeeks {
    InboundPeeks::new(config())
}

pub fn drain(m: &mut InboundPeeks) -> Vec<InboundOutput> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

pub fn expired(out: &[InboundOutput]) -> Vec<(String, String, String, InboundEndReason)> {
    out.iter()
        .filter_map(|o| match o {
            InboundOutput::Expired { server: destination, room_id, peek_id, reason } => {
                Some((destination.to_string(), room_id.to_string(), peek_id.to_string(), *reason))
            }
            _ => None,
        })
        .collect()
}

pub fn dests(m: &InboundPeeks, r: &OwnedRoomId) -> Vec<String> {
    let mut v: Vec<String> = m.destinations(r).map(|s| s.to_string()).collect();
    v.sort();
    v
}

pub fn peek(
    m: &mut InboundPeeks,
    now: u64,
    s: &str,
    r: &str,
    id: &str,
) -> Result<bool, InboundPeekError> {
    m.handle_peek(t(now), &srv(s), &room(r), id, &v10(), Some(&open())).map(|g| g.refreshed)
}
