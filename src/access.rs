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

    /// A room's access from its version and its current `m.room.history_visibility` and
    /// `m.room.encryption` state events, as JSON (`None`: the room has no such event).
    ///
    /// Each event may be given whole (a PDU or a client-format event, with `type` and
    /// `content`) or as its `content` alone. The rules, conservative where the state is odd:
    ///
    /// * no history visibility event means `shared` (not `world_readable`); so does one whose
    ///   `history_visibility` is missing, not a string, or a value this crate does not know;
    /// * any `m.room.encryption` event makes the room encrypted, whatever its content (a
    ///   redacted or unknown-algorithm event still means encryption was turned on, and it
    ///   cannot be turned off).
    ///
    /// Fails only on what is certainly the host's mistake: text that is not a JSON object, or a
    /// whole event of another `type`.
    ///
    /// ```
    /// use matrix_peek::RoomAccess;
    /// use ruma_common::RoomVersionId;
    ///
    /// let visibility = r#"{"type":"m.room.history_visibility","state_key":"",
    ///                      "content":{"history_visibility":"world_readable"}}"#;
    /// let access = RoomAccess::from_state(RoomVersionId::V11, Some(visibility), None).unwrap();
    /// assert!(access.is_peekable());
    ///
    /// let encryption = r#"{"algorithm":"m.megolm.v1.aes-sha2"}"#; // content alone
    /// let access = RoomAccess::from_state(RoomVersionId::V11, Some(visibility), Some(encryption));
    /// assert!(!access.unwrap().is_peekable());
    /// ```
    pub fn from_state(
        room_version: RoomVersionId,
        history_visibility: Option<&str>,
        encryption: Option<&str>,
    ) -> Result<RoomAccess, RoomAccessError> {
        let world_readable = match history_visibility {
            None => false,
            Some(json) => {
                let content = content_of(json, AccessStateEvent::HistoryVisibility)?;
                content.get("history_visibility").and_then(serde_json::Value::as_str)
                    == Some("world_readable")
            }
        };
        let encrypted = match encryption {
            None => false,
            Some(json) => {
                content_of(json, AccessStateEvent::Encryption)?;
                true
            }
        };
        Ok(RoomAccess { room_version, world_readable, encrypted })
    }
}

/// The state events [`RoomAccess::from_state`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessStateEvent {
    /// `m.room.history_visibility`.
    HistoryVisibility,
    /// `m.room.encryption`.
    Encryption,
}

impl AccessStateEvent {
    /// The event type.
    pub fn event_type(self) -> &'static str {
        match self {
            AccessStateEvent::HistoryVisibility => "m.room.history_visibility",
            AccessStateEvent::Encryption => "m.room.encryption",
        }
    }
}

/// Why [`RoomAccess::from_state`] refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomAccessError {
    /// The text given for `event` is not a JSON object.
    #[error("the {} event is not a JSON object: {message}", event.event_type())]
    NotAnObject {
        /// Which event.
        event: AccessStateEvent,
        /// What the JSON parser said (or what it found instead of an object).
        message: String,
    },
    /// A whole event of another type was given for `event`.
    #[error("expected a {} event, got {found:?}", event.event_type())]
    WrongType {
        /// Which event was expected.
        event: AccessStateEvent,
        /// The `type` it had (truncated to 255 bytes).
        found: String,
    },
}

/// The content of `json`: its `content` object when it is a whole event (it has a `type`),
/// itself otherwise.
fn content_of(
    json: &str,
    event: AccessStateEvent,
) -> Result<serde_json::Map<String, serde_json::Value>, RoomAccessError> {
    let not_object = |message: String| RoomAccessError::NotAnObject { event, message };
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| not_object(e.to_string()))?;
    let serde_json::Value::Object(mut object) = value else {
        return Err(not_object("not an object".to_owned()));
    };
    let Some(kind) = object.get("type") else { return Ok(object) };
    if kind.as_str() != Some(event.event_type()) {
        let mut found = kind.as_str().map_or_else(|| kind.to_string(), str::to_owned);
        if found.len() > 255 {
            let mut end = 255;
            while !found.is_char_boundary(end) {
                end -= 1;
            }
            found.truncate(end);
        }
        return Err(RoomAccessError::WrongType { event, found });
    }
    match object.remove("content") {
        Some(serde_json::Value::Object(content)) => Ok(content),
        // A whole event without a content object: nothing in it can say `world_readable`.
        _ => Ok(serde_json::Map::new()),
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

    const V: RoomVersionId = RoomVersionId::V11;

    fn hv(value: &str) -> String {
        format!(
            r#"{{"type":"m.room.history_visibility","state_key":"","content":{{"history_visibility":{value}}}}}"#
        )
    }

    #[test]
    fn from_state_reads_world_readable_from_the_event_or_its_content() {
        let whole = hv(r#""world_readable""#);
        assert!(RoomAccess::from_state(V, Some(&whole), None).unwrap().world_readable);
        let content = r#"{"history_visibility":"world_readable"}"#;
        assert!(RoomAccess::from_state(V, Some(content), None).unwrap().world_readable);
        let access = RoomAccess::from_state(V, Some(content), None).unwrap();
        assert_eq!(access, RoomAccess::new(V, true, false));
    }

    #[test]
    fn from_state_treats_missing_odd_and_unknown_visibility_as_shared() {
        assert!(!RoomAccess::from_state(V, None, None).unwrap().world_readable, "no event");
        for value in
            [r#""shared""#, r#""joined""#, r#""invited""#, r#""World_Readable""#, "1", "null"]
        {
            let access = RoomAccess::from_state(V, Some(&hv(value)), None).unwrap();
            assert!(!access.world_readable, "{value}");
        }
        let redacted = r#"{"type":"m.room.history_visibility","state_key":"","content":{}}"#;
        assert!(!RoomAccess::from_state(V, Some(redacted), None).unwrap().world_readable);
        let no_content = r#"{"type":"m.room.history_visibility","state_key":""}"#;
        assert!(!RoomAccess::from_state(V, Some(no_content), None).unwrap().world_readable);
    }

    #[test]
    fn from_state_any_encryption_event_means_encrypted() {
        let hv = hv(r#""world_readable""#);
        for encryption in [
            r#"{"type":"m.room.encryption","state_key":"","content":{"algorithm":"m.megolm.v1.aes-sha2"}}"#,
            r#"{"type":"m.room.encryption","state_key":"","content":{}}"#,
            r#"{"algorithm":"org.example.unknown"}"#,
            "{}",
        ] {
            let access = RoomAccess::from_state(V, Some(&hv), Some(encryption)).unwrap();
            assert!(access.encrypted && !access.is_peekable(), "{encryption}");
        }
    }

    #[test]
    fn from_state_refuses_non_objects_and_events_of_another_type() {
        for bad in ["", "[]", "\"world_readable\"", "{", "null"] {
            let err = RoomAccess::from_state(V, Some(bad), None).unwrap_err();
            assert!(
                matches!(
                    err,
                    RoomAccessError::NotAnObject { event: AccessStateEvent::HistoryVisibility, .. }
                ),
                "{bad}: {err:?}"
            );
            let err = RoomAccess::from_state(V, None, Some(bad)).unwrap_err();
            assert!(matches!(
                err,
                RoomAccessError::NotAnObject { event: AccessStateEvent::Encryption, .. }
            ));
        }
        let topic = r#"{"type":"m.room.topic","state_key":"","content":{"history_visibility":"world_readable"}}"#;
        assert_eq!(
            RoomAccess::from_state(V, Some(topic), None).unwrap_err(),
            RoomAccessError::WrongType {
                event: AccessStateEvent::HistoryVisibility,
                found: "m.room.topic".into()
            }
        );
        let long = format!(r#"{{"type":"{}","content":{{}}}}"#, "é".repeat(300));
        let RoomAccessError::WrongType { found, .. } =
            RoomAccess::from_state(V, None, Some(&long)).unwrap_err()
        else {
            panic!()
        };
        assert!(found.len() <= 255, "the echoed type is bounded");
    }

    #[test]
    fn serde_round_trip() {
        let a = RoomAccess::new(RoomVersionId::V11, true, false);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"room_version":"11","world_readable":true,"encrypted":false}"#);
        assert_eq!(serde_json::from_str::<RoomAccess>(&json).unwrap(), a);
    }
}
