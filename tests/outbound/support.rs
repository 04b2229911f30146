//! The harness of the `OutboundPeeks` scenario tests (`H`: a machine, its clock and a store
//! that follows the `Persist` stream) and their fixtures; and the parts of `tests/support/`
//! this area uses.

use std::collections::BTreeMap;
use std::time::Duration;

use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundKey, OutboundOutcome, OutboundOutput, OutboundPeeks,
    OutboundRecord, OutboundRenewStyle, OutboundRequest, OutboundState, RoomAccess, Timestamp,
};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, RoomVersionId};

/// The reference model of the residents and the local demand (`model.rs`, `soak.rs`).
#[path = "../support/model/outbound.rs"]
pub mod model;
#[path = "../support/prop.rs"]
pub mod prop;

pub const HOUR: Duration = Duration::from_secs(3600);

pub fn room(s: &str) -> OwnedRoomId {
    RoomId::parse(s).unwrap()
}

pub fn server(s: &str) -> OwnedServerName {
    s.try_into().unwrap()
}

pub fn access() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V11, true, false)
}

pub fn established(interval: Duration) -> OutboundOutcome {
    OutboundOutcome::Established { renewal_interval: interval, access: access() }
}

pub fn failed(f: OutboundFailure) -> OutboundOutcome {
    OutboundOutcome::Failed(f)
}

/// Drives a machine, applies every `Persist` to a store map, and checks at every `Send` that
/// the store names its peek (R59, [`model::check_send_stored`]) and after every drain that each
/// granted lease is stored as held ([`model::check_leases_stored`]).
pub struct H {
    pub m: OutboundPeeks,
    pub config: OutboundConfig,
    pub now: u64,
    pub store: BTreeMap<OutboundKey, OutboundRecord>,
}

impl H {
    pub fn new() -> Self {
        Self::with(OutboundConfig::default())
    }

    pub fn with(config: OutboundConfig) -> Self {
        H { m: OutboundPeeks::new(config.clone()), config, now: 1_000_000, store: BTreeMap::new() }
    }

    pub fn t(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    pub fn drain(&mut self) -> Vec<OutboundOutput> {
        let mut out = Vec::new();
        let reput = self.m.config().renew_style == OutboundRenewStyle::RePut;
        while let Some(o) = self.m.poll_output() {
            if let OutboundOutput::Send(req) = &o
                && let Err(e) = model::check_send_stored(&self.store, out.last(), req, reput)
            {
                panic!("{e}");
            }
            if let OutboundOutput::Persist(change) = &o {
                change.apply_to(&mut self.store);
            }
            out.push(o);
        }
        if let Err(e) = model::check_leases_stored(&self.m, &self.store) {
            panic!("{e}");
        }
        out
    }

    pub fn demand(&mut self, r: &RoomId, via: &[&str]) -> Vec<OutboundOutput> {
        let via: Vec<_> = via.iter().map(|s| server(s)).collect();
        self.m.handle_demand(self.t(), r, &via);
        self.drain()
    }

    pub fn respond(
        &mut self,
        req: &OutboundRequest,
        outcome: OutboundOutcome,
    ) -> Vec<OutboundOutput> {
        self.m.handle_response(self.t(), req.id, outcome);
        self.drain()
    }

    pub fn advance(&mut self, d: Duration) -> Vec<OutboundOutput> {
        self.now += d.as_millis() as u64;
        self.m.handle_timeout(self.t());
        self.drain()
    }

    /// Jumps to the next deadline and fires it.
    pub fn fire(&mut self) -> Vec<OutboundOutput> {
        let at = self.m.poll_timeout().expect("a deadline");
        assert!(at.as_millis() > self.now, "deadline in the future");
        self.now = at.as_millis();
        self.m.handle_timeout(self.t());
        self.drain()
    }

    pub fn restore(&mut self) {
        self.m =
            OutboundPeeks::restore(self.t(), self.config.clone(), self.store.values().cloned());
    }

    /// Opens `r` via `s` and answers Established with `interval`.
    pub fn open(&mut self, r: &RoomId, s: &str, interval: Duration) -> OutboundRequest {
        let out = self.demand(r, &[s]);
        let put = only_send(out);
        self.respond(&put, established(interval));
        assert_eq!(self.m.state(r), Some(OutboundState::Established));
        put
    }
}

/// The requests among `out`, in order.
pub fn sends(out: &[OutboundOutput]) -> Vec<OutboundRequest> {
    out.iter()
        .filter_map(|o| match o {
            OutboundOutput::Send(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

pub fn only_send(out: Vec<OutboundOutput>) -> OutboundRequest {
    let sends: Vec<_> = out
        .into_iter()
        .filter_map(|o| match o {
            OutboundOutput::Send(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1, "exactly one send: {sends:?}");
    sends.into_iter().next().unwrap()
}

pub fn no_sends(out: &[OutboundOutput]) {
    assert!(!out.iter().any(|o| matches!(o, OutboundOutput::Send(_))), "unexpected send: {out:?}");
}
