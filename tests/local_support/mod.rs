//! Shared fixtures of the `LocalPeeks` scenario and time tests.
#![allow(dead_code)]

use std::time::Duration;

use matrix_peek::{LocalConfig, RoomAccess, Timestamp};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId};

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
