//! [`RoomAccess`]: what the host knows about a room's peekability, from its current state.

use ruma_common::RoomVersionId;
use serde::{Deserialize, Serialize};

/// Host-supplied facts about a room, read from its current state.
///
/// A room is **peekable** exactly when its `m.room.history_visibility` is `world_readable` and it
/// has no `m.room.encryption` event (R7, R8, R32). A missing history visibility event means
/// `shared`, so the host passes `world_readable: false` for it. Join rules do not matter: an
/// invite-only `world_readable` room is peekable (R7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoomAccess {
    /// The room's version (from its create event).
    pub room_version: RoomVersionId,
    /// Whether the current `history_visibility` is `world_readable`.
    pub world_readable: bool,
    /// Whether the current state has an `m.room.encryption` event.
    pub encrypted: bool,
}

impl RoomAccess {
    /// Facts about a room.
    pub fn new(room_version: RoomVersionId, world_readable: bool, encrypted: bool) -> Self {
        RoomAccess { room_version, world_readable, encrypted }
    }

    /// Peekable ⇔ `world_readable && !encrypted` (R7, R8, R32).
    pub fn is_peekable(&self) -> bool {
        self.world_readable && !self.encrypted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peekable_only_when_world_readable_and_unencrypted() {
        let v = RoomVersionId::V10;
        assert!(RoomAccess::new(v.clone(), true, false).is_peekable());
        assert!(!RoomAccess::new(v.clone(), false, false).is_peekable()); // R7
        assert!(!RoomAccess::new(v.clone(), true, true).is_peekable()); // R8
        assert!(!RoomAccess::new(v, false, true).is_peekable());
    }

    #[test]
    fn serde_round_trip() {
        let a = RoomAccess::new(RoomVersionId::V11, true, false);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"room_version":"11","world_readable":true,"encrypted":false}"#);
        assert_eq!(serde_json::from_str::<RoomAccess>(&json).unwrap(), a);
    }
}
