//! A coordinator driven like a host would drive it (`Host`: every `Persist` applied to a
//! store, restarts from it), with the ids, accesses and request filters of the coordinator
//! tests (`tests/coordinator/`) and the SyTest ports and peer regressions (`tests/interop/`).

use std::time::Duration;

use matrix_peek::{
    ClientPeek, ClientPeekReply, InboundGrant, InboundPeekError, Output, Peeking, PeekingConfig,
    Residency, RoomAccess, Snapshot, Timestamp,
};
use matrix_peek::{OutboundFailure, OutboundOutcome, OutboundRequest, OutboundRequestKind};
use ruma_common::{
    OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId, owned_device_id,
    owned_room_id, owned_server_name, owned_user_id,
};

pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// The room versions an inbound peek offers: v10 only.
pub const V10: &[RoomVersionId] = &[RoomVersionId::V10];

pub fn at(ms: u64) -> Timestamp {
    T0.saturating_add(Duration::from_millis(ms))
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn alice() -> OwnedUserId {
    owned_user_id!("@alice:local.test")
}
pub fn bob() -> OwnedUserId {
    owned_user_id!("@bob:local.test")
}
pub fn phone() -> OwnedDeviceId {
    owned_device_id!("PHONE")
}
pub fn tablet() -> OwnedDeviceId {
    owned_device_id!("TABLET")
}
pub fn remote_room() -> OwnedRoomId {
    owned_room_id!("!remote:remote.test")
}
pub fn local_room() -> OwnedRoomId {
    owned_room_id!("!here:local.test")
}
pub fn remote_server() -> OwnedServerName {
    owned_server_name!("remote.test")
}
pub fn other_server() -> OwnedServerName {
    owned_server_name!("other.test")
}
pub fn peer() -> OwnedServerName {
    owned_server_name!("peer.test")
}

pub fn readable() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V10, true, false)
}
pub fn shared() -> RoomAccess {
    RoomAccess::new(RoomVersionId::V10, false, false)
}

pub fn established() -> OutboundOutcome {
    OutboundOutcome::Established { renewal_interval: Duration::from_secs(3600), access: readable() }
}

/// A resident's answer granting whatever `request` asks: the peek and each renewal for an hour,
/// the `DELETE` done.
pub fn granted(request: &OutboundRequest) -> OutboundOutcome {
    match request.kind {
        OutboundRequestKind::Peek { .. } => established(),
        OutboundRequestKind::Renew => {
            OutboundOutcome::Renewed { renewal_interval: Some(Duration::from_secs(3600)) }
        }
        OutboundRequestKind::Unpeek => OutboundOutcome::Deleted,
    }
}

pub fn remote_peek(
    user: OwnedUserId,
    device: OwnedDeviceId,
    via: &[OwnedServerName],
) -> ClientPeek {
    ClientPeek {
        user_id: user,
        device_id: device,
        room_id: remote_room(),
        joined: false,
        residency: Residency::Remote,
        via: via.to_vec(),
    }
}

pub fn resident_peek(user: OwnedUserId, device: OwnedDeviceId, access: RoomAccess) -> ClientPeek {
    ClientPeek {
        user_id: user,
        device_id: device,
        room_id: local_room(),
        joined: false,
        residency: Residency::Resident(access),
        via: vec![],
    }
}

/// A coordinator that records every `Persist` into store maps, like a host would.
pub struct Host {
    pub peeking: Peeking,
    pub store: Snapshot,
    pub config: PeekingConfig,
}

impl Host {
    pub fn new() -> Self {
        Self::with_config(PeekingConfig::default())
    }

    pub fn with_config(config: PeekingConfig) -> Self {
        Host { peeking: Peeking::new(config.clone()), store: Snapshot::default(), config }
    }

    /// Drains the coordinator; persists are applied to `store` and also returned.
    pub fn drain(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(o) = self.peeking.poll_output() {
            if let Output::Persist(change) = &o {
                self.store = self.store.apply(std::slice::from_ref(change));
            }
            out.push(o);
        }
        out
    }

    /// Restarts from the store at `now`.
    pub fn restart(&mut self, now: Timestamp) {
        self.peeking = Peeking::restore(now, self.config.clone(), self.store.clone());
    }

    pub fn peek(&mut self, now: Timestamp, peek: ClientPeek) -> (ClientPeekReply, Vec<Output>) {
        let reply = self.peeking.handle_client_peek(now, peek);
        (reply, self.drain())
    }

    /// A remote peek by alice/PHONE through `remote.test`, established: returns the outputs
    /// of the establishment.
    pub fn establish_remote(&mut self, now: Timestamp) -> Vec<Output> {
        self.answer_remote_put(now, established())
    }

    /// A remote peek by alice/PHONE through `remote.test` (pending on one PUT), the PUT
    /// answered with `outcome` at `now`: returns the outputs of that answer.
    pub fn answer_remote_put(&mut self, now: Timestamp, outcome: OutboundOutcome) -> Vec<Output> {
        let (reply, out) = self.peek(now, remote_peek(alice(), phone(), &[remote_server()]));
        assert!(matches!(reply, ClientPeekReply::Pending(_)), "{reply:?}");
        let put = only_send(&out, Kind::Peek);
        self.peeking.handle_response(now, put.id, outcome);
        self.drain()
    }

    /// [`Host::establish_remote`] at `T0`, then the renewal due at 30 min is answered 404 (the
    /// remote forgot the peek): returns the outputs of that answer.
    pub fn renewal_not_found(&mut self) -> Vec<Output> {
        self.establish_remote(T0);
        self.peeking.handle_timeout(at(30 * 60_000));
        let renew = only_send(&self.drain(), Kind::Renew);
        self.peeking.handle_response(
            at(30 * 60_000),
            renew.id,
            OutboundOutcome::Failed(OutboundFailure::NotFound),
        );
        self.drain()
    }
}

/// An inbound peek `id` from `peer.test` on the world-readable `local_room()` at `now`; the
/// outputs are drained.
pub fn inbound(
    host: &mut Host,
    now: Timestamp,
    id: &str,
) -> Result<InboundGrant, InboundPeekError> {
    let r =
        host.peeking.handle_inbound_peek(now, &peer(), &local_room(), id, V10, Some(&readable()));
    let _ = host.drain();
    r
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Peek,
    Renew,
    Unpeek,
}

pub fn kind(r: &OutboundRequest) -> Kind {
    match r.kind {
        OutboundRequestKind::Peek { .. } => Kind::Peek,
        OutboundRequestKind::Renew => Kind::Renew,
        OutboundRequestKind::Unpeek => Kind::Unpeek,
    }
}

pub fn sends(out: &[Output]) -> Vec<OutboundRequest> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// Asserts exactly one `Send` is among `out`, of kind `k`, and returns it.
pub fn only_send(out: &[Output], k: Kind) -> OutboundRequest {
    let s = sends(out);
    assert_eq!(s.len(), 1, "expected exactly one send, got {s:?}");
    assert_eq!(kind(&s[0]), k, "{s:?}");
    s[0].clone()
}

/// Answers every `Send` in `out` with `answer(kind)`, repeatedly, until no new sends appear.
pub fn answer_all(
    host: &mut Host,
    now: Timestamp,
    mut out: Vec<Output>,
    answer: impl Fn(&OutboundRequest) -> OutboundOutcome,
) -> Vec<Output> {
    let mut all = Vec::new();
    loop {
        let s = sends(&out);
        all.extend(out);
        if s.is_empty() {
            return all;
        }
        out = Vec::new();
        for r in s {
            host.peeking.handle_response(now, r.id, answer(&r));
            out.extend(host.drain());
        }
    }
}
