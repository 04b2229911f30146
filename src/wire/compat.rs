//! The peek response shapes peers actually send, and one lenient reader for all of them
//! (docs/architecture.md §9, docs/architecture.md §9.3, docs/requirements.md#q8).
//!
//! | shape | fields |
//! |---|---|
//! | MSC2444 final (Nov 2020) | `latest_event_state_ids`, `common_state_ids`, `events`, `renewal_interval` |
//! | Dendrite (Sept 2020 draft, gomatrixserverlib `RespPeek`) | `room_version`, `state`, `auth_chain`, `latest_event`, `renewal_interval` |
//! | palpo (PR #218) | `room_version`, `state`, `auth_chain`, `messages`, `renewal_interval` |
//!
//! Dendrite advertises `renewal_interval: 3600000000` (1000 h, a unit bug); it parses, and the
//! outbound machine clamps it. PDUs stay raw; validate them like a `send_join` response (R49).

use std::collections::BTreeMap;
use std::time::Duration;

use ruma_common::{OwnedEventId, RoomVersionId};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::federation::PeekResponse;
use super::json::{from_object, interval_ms};
use super::{MAX_PEEK_RESPONSE_BYTES, WireError};

/// The September-2020 draft's peek response, as Dendrite sends it (`latest_event`) and as palpo
/// sends it (`messages` instead of `latest_event`). Missing lists read as empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacyPeekResponse {
    /// The room version (both peers send it; the MSC-final shape does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<RoomVersionId>,
    /// The current state's PDUs.
    #[serde(default)]
    pub state: Vec<Box<RawValue>>,
    /// The auth chain of `state`.
    #[serde(default)]
    pub auth_chain: Vec<Box<RawValue>>,
    /// Dendrite: the latest event (the state is the state after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_event: Option<Box<RawValue>>,
    /// palpo: recent timeline events, in place of `latest_event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Box<RawValue>>>,
    /// Milliseconds on the wire; any `u64` is accepted (the machine clamps, R53).
    #[serde(with = "interval_ms")]
    pub renewal_interval: Duration,
}

impl LegacyPeekResponse {
    /// Parses a response body (at most [`MAX_PEEK_RESPONSE_BYTES`]); unknown fields ignored.
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        from_object(body, MAX_PEEK_RESPONSE_BYTES)
    }
}

/// Which shape an [`AnyPeekResponse`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PeekResponseFormat {
    /// MSC2444 final: `latest_event_state_ids`, `common_state_ids`, `events`.
    Msc,
    /// Dendrite / the Sept-2020 draft: `state`, `auth_chain`, `latest_event`.
    Dendrite,
    /// palpo: `state`, `auth_chain`, `messages`.
    Palpo,
}

/// The forward extremities of a peek response.
#[derive(Debug, Clone)]
pub enum Extremities {
    /// MSC shape: the keys of `latest_event_state_ids` (their PDUs are in the `state` list).
    Ids(Vec<OwnedEventId>),
    /// Older shapes: the PDUs themselves (Dendrite's single `latest_event`, palpo's
    /// `messages`).
    Events(Vec<Box<RawValue>>),
}

/// The MSC shape's state ids (R35, R50): the state after extremity X is
/// `common_state_ids ∪ latest_event_state_ids[X]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateIds {
    /// Extremity → state ids after it, minus the common ones.
    pub latest_event_state_ids: BTreeMap<OwnedEventId, Vec<OwnedEventId>>,
    /// State ids common to every extremity.
    pub common_state_ids: Vec<OwnedEventId>,
}

/// A peek response in any of the three shapes, normalised to one view (Q8).
///
/// Detection: any of `latest_event_state_ids`, `common_state_ids`, `events` → MSC (legacy keys
/// are then ignored); otherwise `state` or `auth_chain` → Dendrite, or palpo when `messages` is
/// present. A body with none of these is [`WireError::BadJson`]; `renewal_interval` is
/// required in every shape.
#[derive(Debug, Clone)]
pub struct AnyPeekResponse {
    /// The shape it was read from.
    pub format: PeekResponseFormat,
    /// The `room_version` field when sent (older shapes; some MSC implementations add it).
    /// See [`AnyPeekResponse::effective_room_version`] for the MSC shape.
    pub room_version: Option<RoomVersionId>,
    /// Older shapes: `state`. MSC shape: all of `events`, which mixes state, auth chain and
    /// extremities; the host tells them apart by event id while validating (R49).
    pub state: Vec<Box<RawValue>>,
    /// Older shapes: `auth_chain`. MSC shape: empty (the chain is inside `events`).
    pub auth_chain: Vec<Box<RawValue>>,
    /// The forward extremities.
    pub extremities: Extremities,
    /// MSC shape only: which ids form the state after each extremity.
    pub state_ids: Option<StateIds>,
    /// The interval the resident granted, unclamped (Dendrite's 3 600 000 000 ms parses).
    pub renewal_interval: Duration,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    latest_event_state_ids: Option<BTreeMap<OwnedEventId, Vec<OwnedEventId>>>,
    #[serde(default)]
    common_state_ids: Option<Vec<OwnedEventId>>,
    #[serde(default)]
    events: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    room_version: Option<RoomVersionId>,
    #[serde(default)]
    state: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    auth_chain: Option<Vec<Box<RawValue>>>,
    #[serde(default)]
    latest_event: Option<Box<RawValue>>,
    #[serde(default)]
    messages: Option<Vec<Box<RawValue>>>,
    #[serde(default, with = "interval_ms::option")]
    renewal_interval: Option<Duration>,
}

impl AnyPeekResponse {
    /// Parses a peek response of any shape (at most [`MAX_PEEK_RESPONSE_BYTES`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        let p: Probe = from_object(body, MAX_PEEK_RESPONSE_BYTES)?;
        let renewal_interval = p
            .renewal_interval
            .ok_or_else(|| WireError::BadJson("missing field `renewal_interval`".into()))?;
        if p.latest_event_state_ids.is_some() || p.common_state_ids.is_some() || p.events.is_some()
        {
            let latest = p.latest_event_state_ids.unwrap_or_default();
            return Ok(AnyPeekResponse {
                format: PeekResponseFormat::Msc,
                room_version: p.room_version,
                state: p.events.unwrap_or_default(),
                auth_chain: Vec::new(),
                extremities: Extremities::Ids(latest.keys().cloned().collect()),
                state_ids: Some(StateIds {
                    latest_event_state_ids: latest,
                    common_state_ids: p.common_state_ids.unwrap_or_default(),
                }),
                renewal_interval,
            });
        }
        if p.state.is_none() && p.auth_chain.is_none() {
            return Err(WireError::BadJson(
                "not a peek response: no `events`, `latest_event_state_ids`, `state` or \
                 `auth_chain`"
                    .into(),
            ));
        }
        let format = if p.messages.is_some() {
            PeekResponseFormat::Palpo
        } else {
            PeekResponseFormat::Dendrite
        };
        let extremities: Vec<Box<RawValue>> =
            p.latest_event.into_iter().chain(p.messages.unwrap_or_default()).collect();
        Ok(AnyPeekResponse {
            format,
            room_version: p.room_version,
            state: p.state.unwrap_or_default(),
            auth_chain: p.auth_chain.unwrap_or_default(),
            extremities: Extremities::Events(extremities),
            state_ids: None,
            renewal_interval,
        })
    }

    /// Every PDU the response carried: `state`, `auth_chain`, then extremity PDUs.
    pub fn pdus(&self) -> impl Iterator<Item = &RawValue> {
        let ext: &[Box<RawValue>] = match &self.extremities {
            Extremities::Events(e) => e,
            Extremities::Ids(_) => &[],
        };
        self.state.iter().chain(&self.auth_chain).chain(ext).map(|b| &**b)
    }

    /// The room version from the first `m.room.create` state event (`state_key` `""`) among
    /// [`pdus`](Self::pdus): its `content.room_version`, or `"1"` when absent. `None` when there
    /// is no create event or its version is invalid. Unverified: only a hint until the host has
    /// validated the event (R49).
    pub fn room_version_from_create(&self) -> Option<RoomVersionId> {
        #[derive(Deserialize)]
        struct CreateProbe {
            #[serde(rename = "type")]
            kind: Option<String>,
            state_key: Option<String>,
            content: Option<CreateContent>,
        }
        #[derive(Deserialize)]
        struct CreateContent {
            room_version: Option<String>,
        }
        for pdu in self.pdus() {
            let Ok(probe) = serde_json::from_str::<CreateProbe>(pdu.get()) else { continue };
            if probe.kind.as_deref() != Some("m.room.create")
                || probe.state_key.as_deref() != Some("")
            {
                continue;
            }
            let version = probe.content.and_then(|c| c.room_version).unwrap_or_else(|| "1".into());
            return RoomVersionId::try_from(version).ok();
        }
        None
    }

    /// `room_version` when sent, else [`room_version_from_create`](Self::room_version_from_create).
    pub fn effective_room_version(&self) -> Option<RoomVersionId> {
        self.room_version.clone().or_else(|| self.room_version_from_create())
    }
}

impl From<PeekResponse> for AnyPeekResponse {
    fn from(r: PeekResponse) -> Self {
        AnyPeekResponse {
            format: PeekResponseFormat::Msc,
            room_version: None,
            state: r.events,
            auth_chain: Vec::new(),
            extremities: Extremities::Ids(r.latest_event_state_ids.keys().cloned().collect()),
            state_ids: Some(StateIds {
                latest_event_state_ids: r.latest_event_state_ids,
                common_state_ids: r.common_state_ids,
            }),
            renewal_interval: r.renewal_interval,
        }
    }
}

impl From<LegacyPeekResponse> for AnyPeekResponse {
    fn from(r: LegacyPeekResponse) -> Self {
        let format = if r.messages.is_some() {
            PeekResponseFormat::Palpo
        } else {
            PeekResponseFormat::Dendrite
        };
        AnyPeekResponse {
            format,
            room_version: r.room_version,
            state: r.state,
            auth_chain: r.auth_chain,
            extremities: Extremities::Events(
                r.latest_event.into_iter().chain(r.messages.unwrap_or_default()).collect(),
            ),
            state_ids: None,
            renewal_interval: r.renewal_interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_told_apart() {
        let msc = br#"{"latest_event_state_ids":{},"common_state_ids":[],"events":[],"renewal_interval":1}"#;
        assert_eq!(AnyPeekResponse::from_slice(msc).unwrap().format, PeekResponseFormat::Msc);
        let den = br#"{"room_version":"9","state":[],"auth_chain":[],"latest_event":{"a":1},"renewal_interval":3600000000}"#;
        let r = AnyPeekResponse::from_slice(den).unwrap();
        assert_eq!(r.format, PeekResponseFormat::Dendrite);
        assert_eq!(r.renewal_interval, Duration::from_millis(3_600_000_000));
        let palpo = br#"{"room_version":"11","state":[],"auth_chain":[],"messages":[{},{}],"renewal_interval":3600000}"#;
        let r = AnyPeekResponse::from_slice(palpo).unwrap();
        assert_eq!(r.format, PeekResponseFormat::Palpo);
        assert!(matches!(r.extremities, Extremities::Events(ref e) if e.len() == 2));
        assert!(matches!(
            AnyPeekResponse::from_slice(br#"{"renewal_interval":1}"#),
            Err(WireError::BadJson(_))
        ));
        assert!(matches!(
            AnyPeekResponse::from_slice(br#"{"state":[]}"#),
            Err(WireError::BadJson(_))
        ));
    }

    #[test]
    fn room_version_comes_from_the_create_event_when_not_sent() {
        // R49: the MSC shape has no room_version.
        let body = br#"{"latest_event_state_ids":{},"common_state_ids":[],"renewal_interval":1,
            "events":[{"type":"m.room.member","state_key":"@a:b","content":{}},
                      {"type":"m.room.create","state_key":"","content":{"room_version":"10"}}]}"#;
        let r = AnyPeekResponse::from_slice(body).unwrap();
        assert_eq!(r.room_version, None);
        assert_eq!(r.effective_room_version(), Some(RoomVersionId::V10));
        let v1 = br#"{"events":[{"type":"m.room.create","state_key":"","content":{}}],"renewal_interval":1}"#;
        assert_eq!(
            AnyPeekResponse::from_slice(v1).unwrap().room_version_from_create(),
            Some(RoomVersionId::V1)
        );
    }
}
