//! The fixtures of the driver tests; the harness is the kit's `DriverRig`.

use std::time::Duration;

use matrix_peek::{ClientPeek, Residency, RoomAccess, Timestamp};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId, owned_device_id,
    owned_server_name, owned_user_id,
};

pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

pub fn at(ms: u64) -> Timestamp {
    T0.saturating_add(Duration::from_millis(ms))
}

pub fn alice() -> OwnedUserId {
    owned_user_id!("@alice:local.test")
}
pub fn phone() -> OwnedDeviceId {
    owned_device_id!("PHONE")
}
pub fn tablet() -> OwnedDeviceId {
    owned_device_id!("TABLET")
}
pub fn remote_server() -> OwnedServerName {
    owned_server_name!("remote.test")
}
pub fn peer() -> OwnedServerName {
    owned_server_name!("peer.test")
}
pub fn room(name: &str) -> OwnedRoomId {
    OwnedRoomId::try_from(format!("!{name}:somewhere.test")).unwrap()
}
pub fn readable() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V10, true, false)
}

pub fn remote_peek(room_id: OwnedRoomId, device: OwnedDeviceId) -> ClientPeek {
    ClientPeek {
        user_id: alice(),
        device_id: device,
        room_id,
        joined: false,
        residency: Residency::Remote,
        via: vec![remote_server()],
    }
}

pub fn resident_peek(room_id: OwnedRoomId, device: OwnedDeviceId) -> ClientPeek {
    ClientPeek {
        user_id: alice(),
        device_id: device,
        room_id,
        joined: false,
        residency: Residency::Resident(readable()),
        via: vec![],
    }
}

/// The driver tests run on the kit's own recipe.
pub use matrix_peek::testing::DriverRig as Rig;
