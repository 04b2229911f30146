//! The peek response shapes peers actually send, and one lenient reader for all of them
//! (docs/architecture.md §9.3, docs/requirements.md#q8).
//!
//! | shape | fields |
//! |---|---|
//! | MSC2444 final (Nov 2020) | `latest_event_state_ids`, `common_state_ids`, `events`, `renewal_interval` |
//! | Dendrite (Sept 2020 draft, gomatrixserverlib `RespPeek`) | `room_version`, `state`, `auth_chain`, `latest_event`, `renewal_interval` |
//! | palpo (PR #218) | `room_version`, `state`, `auth_chain`, `messages`, `renewal_interval` |
//!
//! Dendrite advertises `renewal_interval: 3600000000` (1000 h, a unit bug); it parses, and the
//! outbound machine clamps it. PDUs stay raw; validate them like a `send_join` response (R49).

use std::time::Duration;

use ruma_common::RoomVersionId;
use ruma_common::exports::http;
use serde::ser::{Error as _, SerializeMap};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use super::federation::peek;
use super::json::{from_object, interval_ms};
use super::raw::{CheckedPdus, PduPart};
use super::{EventIdList, MAX_PEEK_RESPONSE_BYTES, PduList, StateIdMap, WireError};
use crate::OutboundFailure;

/// The September-2020 draft's peek response, as Dendrite sends it (`latest_event`) and as palpo
/// sends it (`messages` instead of `latest_event`). Missing lists read as empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacyPeekResponse {
    /// The room version (both peers send it; the MSC-final shape does not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_version: Option<RoomVersionId>,
    /// The current state's PDUs.
    #[serde(default)]
    pub state: PduList,
    /// The auth chain of `state`.
    #[serde(default)]
    pub auth_chain: PduList,
    /// Dendrite: the latest event (the state is the state after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_event: Option<Box<RawValue>>,
    /// palpo: recent timeline events, in place of `latest_event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<PduList>,
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

impl PartialEq for LegacyPeekResponse {
    fn eq(&self, other: &Self) -> bool {
        self.room_version == other.room_version
            && self.state == other.state
            && self.auth_chain == other.auth_chain
            && self.latest_event.as_ref().map(|r| r.get())
                == other.latest_event.as_ref().map(|r| r.get())
            && self.messages == other.messages
            && self.renewal_interval == other.renewal_interval
    }
}

impl Eq for LegacyPeekResponse {}

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extremities {
    /// MSC shape: the keys of `latest_event_state_ids` (their PDUs are in `events`).
    Ids(EventIdList),
    /// Older shapes: the PDUs themselves (Dendrite's single `latest_event`, palpo's
    /// `messages`).
    Events(PduList),
}

/// The MSC shape's state ids (R35, R50): the state after extremity X is
/// `common_state_ids ∪ latest_event_state_ids[X]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateIds {
    /// Extremity → state ids after it, minus the common ones.
    pub latest_event_state_ids: StateIdMap,
    /// State ids common to every extremity.
    pub common_state_ids: EventIdList,
}

/// A peek response in any of the three shapes, normalised to one view (Q8).
///
/// Detection: any of `latest_event_state_ids`, `common_state_ids`, `events` → MSC (legacy keys
/// are then ignored); otherwise `state` or `auth_chain` → Dendrite, or palpo when `messages` is
/// present. A body with none of these is [`WireError::BadJson`]; `renewal_interval` is
/// required in every shape. Every list is capped and kept compact (see [`PduList`]).
///
/// It serialises back to the shape it was read from (the fields that shape has), so a
/// serialised response parses to an equal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnyPeekResponse {
    /// The shape it was read from.
    pub format: PeekResponseFormat,
    /// The `room_version` field when sent (older shapes; some MSC implementations add it).
    /// See [`AnyPeekResponse::effective_room_version`] for the MSC shape.
    pub room_version: Option<RoomVersionId>,
    /// Older shapes: `state`. MSC shape: all of `events`, which mixes state, auth chain and
    /// extremities; the host tells them apart by event id while validating (R49).
    pub state: PduList,
    /// Older shapes: `auth_chain`. MSC shape: empty (the chain is inside `events`).
    pub auth_chain: PduList,
    /// The forward extremities.
    pub extremities: Extremities,
    /// MSC shape only: which ids form the state after each extremity.
    pub state_ids: Option<StateIds>,
    /// The interval the resident granted, unclamped (Dendrite's 3 600 000 000 ms parses).
    pub renewal_interval: Duration,
}

/// Every key of every shape. The lists are read in place; palpo's `messages` and Dendrite's
/// `latest_event` are borrowed so that the extremity list is copied out of the body once.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(default)]
    latest_event_state_ids: Option<StateIdMap>,
    #[serde(default)]
    common_state_ids: Option<EventIdList>,
    #[serde(default)]
    events: Option<PduList>,
    #[serde(default)]
    room_version: Option<RoomVersionId>,
    #[serde(default)]
    state: Option<PduList>,
    #[serde(default)]
    auth_chain: Option<PduList>,
    #[serde(default, borrow)]
    latest_event: Option<&'a RawValue>,
    #[serde(default, borrow)]
    messages: Option<CheckedPdus<'a>>,
    #[serde(default, with = "interval_ms::option")]
    renewal_interval: Option<Duration>,
}

impl AnyPeekResponse {
    /// Parses a peek response of any shape (at most [`MAX_PEEK_RESPONSE_BYTES`]).
    pub fn from_slice(body: &[u8]) -> Result<Self, WireError> {
        let p: Probe<'_> = from_object(body, MAX_PEEK_RESPONSE_BYTES)?;
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
                auth_chain: PduList::new(),
                extremities: Extremities::Ids(EventIdList::from_ids(latest.keys())),
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
        let extremities = match (p.latest_event, &p.messages) {
            (None, Some(messages)) => PduList::from_checked(messages),
            (latest, messages) => PduList::concat(
                latest.map(PduPart::One).into_iter().chain(messages.as_ref().map(|m| m.part())),
            ),
        };
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

    /// Reads a peer's answer to a peek `PUT`: a 2xx body of any shape, or the classified
    /// failure ([`OutboundFailure::from_response`] for an error status, `InvalidResponse` for a
    /// 2xx body that does not parse). What a transport turns into an `OutboundOutcome`.
    pub fn from_http_response<B: AsRef<[u8]>>(
        response: &http::Response<B>,
    ) -> Result<Self, OutboundFailure> {
        let body = response.body().as_ref();
        if !response.status().is_success() {
            return Err(OutboundFailure::from_http_response(response));
        }
        AnyPeekResponse::from_slice(body).map_err(|_| OutboundFailure::InvalidResponse)
    }

    /// Every PDU the response carried: `state`, `auth_chain`, then extremity PDUs.
    pub fn pdus(&self) -> impl Iterator<Item = &RawValue> {
        let ext = match &self.extremities {
            Extremities::Events(e) => Some(e),
            Extremities::Ids(_) => None,
        };
        self.state
            .iter()
            .chain(self.auth_chain.iter())
            .chain(ext.into_iter().flat_map(|e| e.iter()))
    }

    /// The room version from the first `m.room.create` state event (`state_key` `""`) among
    /// [`pdus`](Self::pdus): its `content.room_version`, or `"1"` when absent. `None` when there
    /// is no create event or its version is invalid. Unverified: only a hint until the host has
    /// validated the event (R49).
    pub fn room_version_from_create(&self) -> Option<RoomVersionId> {
        #[derive(Deserialize)]
        struct CreateProbe<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            state_key: Option<std::borrow::Cow<'a, str>>,
            content: Option<CreateContent>,
        }
        #[derive(Deserialize)]
        struct CreateContent {
            room_version: Option<String>,
        }
        for pdu in self.pdus() {
            let Ok(probe) = serde_json::from_str::<CreateProbe<'_>>(pdu.get()) else { continue };
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

impl Serialize for AnyPeekResponse {
    /// The shape of [`format`](Self::format) with the fields it has: MSC writes `state_ids` and
    /// `state` (as `events`); Dendrite `state`, `auth_chain` and its one extremity PDU as
    /// `latest_event` (more than one is an error); palpo the extremity PDUs as `messages`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Ms(Duration);
        impl Serialize for Ms {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                interval_ms::serialize(&self.0, s)
            }
        }
        let events = match &self.extremities {
            Extremities::Events(e) => Some(e),
            Extremities::Ids(_) => None,
        };
        let mut map = s.serialize_map(None)?;
        if let Some(v) = &self.room_version {
            map.serialize_entry("room_version", v)?;
        }
        match self.format {
            PeekResponseFormat::Msc => {
                let ids = self.state_ids.clone().unwrap_or_default();
                map.serialize_entry("latest_event_state_ids", &ids.latest_event_state_ids)?;
                map.serialize_entry("common_state_ids", &ids.common_state_ids)?;
                map.serialize_entry("events", &self.state)?;
            }
            PeekResponseFormat::Dendrite => {
                map.serialize_entry("state", &self.state)?;
                map.serialize_entry("auth_chain", &self.auth_chain)?;
                let mut pdus = events.into_iter().flat_map(|e| e.iter());
                if let Some(latest) = pdus.next() {
                    if pdus.next().is_some() {
                        return Err(S::Error::custom("Dendrite's shape has one latest_event"));
                    }
                    map.serialize_entry("latest_event", latest)?;
                }
            }
            PeekResponseFormat::Palpo => {
                map.serialize_entry("state", &self.state)?;
                map.serialize_entry("auth_chain", &self.auth_chain)?;
                map.serialize_entry("messages", &events.cloned().unwrap_or_default())?;
            }
        }
        map.serialize_entry("renewal_interval", &Ms(self.renewal_interval))?;
        map.end()
    }
}

impl From<peek::Response> for AnyPeekResponse {
    fn from(r: peek::Response) -> Self {
        AnyPeekResponse {
            format: PeekResponseFormat::Msc,
            room_version: None,
            state: r.events,
            auth_chain: PduList::new(),
            extremities: Extremities::Ids(EventIdList::from_ids(r.latest_event_state_ids.keys())),
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
        let extremities = match (&r.latest_event, r.messages) {
            (None, Some(messages)) => messages,
            (latest, messages) => PduList::concat(
                latest
                    .as_deref()
                    .map(PduPart::One)
                    .into_iter()
                    .chain(messages.as_ref().map(PduList::part)),
            ),
        };
        AnyPeekResponse {
            format,
            room_version: r.room_version,
            state: r.state,
            auth_chain: r.auth_chain,
            extremities: Extremities::Events(extremities),
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
        let both =
            br#"{"state":[],"latest_event":{"a":1},"messages":[{"b":2}],"renewal_interval":1}"#;
        let r = AnyPeekResponse::from_slice(both).unwrap();
        let ext: Vec<&str> = r.pdus().map(RawValue::get).collect();
        assert_eq!(ext, [r#"{"a":1}"#, r#"{"b":2}"#]);
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
