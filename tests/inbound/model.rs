//! Property test: `InboundPeeks` against its reference model (`tests/support/model/inbound.rs`,
//! docs/architecture.md §13).
//!
//! Random sequences of peek / renew / unpeek / timeout / clock moves (backwards and jumping) /
//! access loss / server denial / restart-from-store. After every step: the live set, the
//! store built from `Persist` outputs, `destinations`, `poll_timeout` and the `Expired`
//! outputs (each expiry exactly once, none for deletes) agree with the model.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use matrix_peek::{
    InboundChange, InboundKey, InboundOutput, InboundPeekError, InboundPeeks, InboundRecord,
    RoomAccess, Timestamp,
};
use proptest::prelude::*;
use ruma_common::RoomVersionId;

use crate::support::model::*;
use crate::support::prop::saved_beside_source;

#[derive(Debug, Clone)]
enum Op {
    Peek {
        s: u8,
        r: u8,
        p: u8,
        access: u8,
        ver: u8,
    },
    Renew {
        s: u8,
        r: u8,
        p: u8,
    },
    Unpeek {
        s: u8,
        r: u8,
        p: u8,
    },
    /// Moves the test's clock by `dt` ms (may be negative) without calling in.
    Clock(i64),
    Timeout,
    AccessLost {
        r: u8,
    },
    Denied {
        s: u8,
        r: u8,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let id = || (0u8..3, 0u8..3, 0u8..3);
    prop_oneof![
        4 => (id(), 0u8..4, 0u8..3).prop_map(|((s, r, p), access, ver)| Op::Peek { s, r, p, access, ver }),
        2 => id().prop_map(|(s, r, p)| Op::Renew { s, r, p }),
        2 => id().prop_map(|(s, r, p)| Op::Unpeek { s, r, p }),
        3 => prop_oneof![-2_000i64..3_000, Just(INTERVAL as i64 + GRACE as i64), Just(400 * 86_400_000i64), Just(-10_001i64), Just(-400 * 86_400_000i64)].prop_map(Op::Clock),
        2 => Just(Op::Timeout),
        1 => (0u8..3).prop_map(|r| Op::AccessLost { r }),
        1 => (0u8..3, 0u8..3).prop_map(|(s, r)| Op::Denied { s, r }),
        1 => Just(Op::Restart),
    ]
}

fn access(kind: u8) -> Option<RoomAccess> {
    match kind {
        0 | 1 => Some(RoomAccess::new(RoomVersionId::V10, true, false)),
        2 => Some(RoomAccess::new(RoomVersionId::V10, false, false)),
        _ => None,
    }
}

fn ver(kind: u8) -> Vec<RoomVersionId> {
    match kind {
        0 => vec![RoomVersionId::V9, RoomVersionId::V10],
        1 => vec![],
        _ => vec![RoomVersionId::V10],
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut m = InboundPeeks::new(config());
    let mut model = Model::default();
    let mut store: BTreeMap<InboundKey, InboundRecord> = BTreeMap::new();
    let mut clock: u64 = 1_000_000;
    let t = Timestamp::from_millis;
    for op in ops {
        let mut want: Vec<Expiry> = Vec::new();
        match op.clone() {
            Op::Clock(dt) => clock = clock.saturating_add_signed(dt),
            Op::Timeout => {
                model.advance(clock, &mut want);
                m.handle_timeout(t(clock));
            }
            Op::Peek { s, r, p, access: a, ver: v } => {
                model.advance(clock, &mut want);
                let now = clock; // grants run from the host's now
                let acc = access(a);
                let vers = ver(v);
                let expect = model.peek(now, (s, r, p), acc.as_ref(), &vers);
                let got =
                    m.handle_peek(t(clock), &server(s), &room(r), &peek_id(p), &vers, acc.as_ref());
                match (&got, &expect) {
                    (Ok(g), Ok(refreshed)) => {
                        prop_assert_eq!(g.refreshed, *refreshed);
                        prop_assert_eq!(g.expires_at, t(now + INTERVAL + GRACE));
                        prop_assert_eq!(g.renewal_interval, Duration::from_millis(INTERVAL));
                    }
                    (
                        Err(InboundPeekError::LimitExceeded { retry_after }),
                        Err(InboundPeekError::LimitExceeded { .. }),
                    ) => {
                        prop_assert!(*retry_after >= Duration::from_secs(1));
                    }
                    (g, e) => prop_assert_eq!(g.clone().map(|g| g.refreshed), e.clone()),
                }
            }
            Op::Renew { s, r, p } => {
                model.advance(clock, &mut want);
                let now = clock;
                let got = m.handle_renew(t(clock), &server(s), &room(r), &peek_id(p));
                match model.renew(now, (s, r, p)) {
                    Ok(expires) => prop_assert_eq!(got.map(|g| g.expires_at), Ok(t(expires))),
                    Err(e) => prop_assert_eq!(got, Err(e)),
                }
            }
            Op::Unpeek { s, r, p } => {
                model.advance(clock, &mut want);
                let got = m.handle_unpeek(t(clock), &server(s), &room(r), &peek_id(p));
                let expect = model.unpeek((s, r, p));
                prop_assert_eq!(got, expect);
            }
            Op::AccessLost { r } => {
                model.advance(clock, &mut want);
                model.access_lost(r, &mut want);
                let lost = RoomAccess::new(RoomVersionId::V10, false, false);
                m.handle_access_changed(t(clock), &room(r), &lost);
            }
            Op::Denied { s, r } => {
                model.advance(clock, &mut want);
                model.denied(s, r, &mut want);
                m.handle_server_denied(t(clock), &room(r), &server(s));
            }
            Op::Restart => {
                model.restart(clock);
                m = InboundPeeks::restore(t(clock), config(), store.values().cloned());
            }
        }
        // Outputs: Persist feeds the store; Expired must match exactly once.
        let mut got: Vec<Expiry> = Vec::new();
        let mut removed_before: BTreeSet<InboundKey> = BTreeSet::new();
        while let Some(o) = m.poll_output() {
            match o {
                InboundOutput::Persist(change) => {
                    change.apply_to(&mut store);
                    if let InboundChange::Remove(key) = change {
                        removed_before.insert(key);
                    }
                }
                InboundOutput::Expired { server: destination, room_id, peek_id, reason } => {
                    let key = InboundKey {
                        server: destination.clone(),
                        room_id: room_id.clone(),
                        peek_id: peek_id.clone(),
                    };
                    prop_assert!(removed_before.contains(&key), "Persist(Remove) precedes Expired");
                    got.push((
                        destination.to_string(),
                        room_id.to_string(),
                        peek_id.into_string(),
                        reason,
                    ));
                }
                other => panic!("unexpected output {other:?}"),
            }
        }
        let sort =
            |v: &mut Vec<Expiry>| v.sort_by(|x, y| (&x.0, &x.1, &x.2).cmp(&(&y.0, &y.1, &y.2)));
        sort(&mut got);
        sort(&mut want);
        prop_assert_eq!(&got, &want, "expiries after {:?}", op);

        // Live set, store, queries.
        prop_assert_eq!(m.len(), model.live.len());
        prop_assert_eq!(store.len(), model.live.len());
        for (&(s, r, p), &(renewed, expires)) in &model.live {
            let info = m.peek(&server(s), &room(r), &peek_id(p));
            prop_assert_eq!(
                info.map(|i| (i.renewed_at, i.expires_at)),
                Some((t(renewed), t(expires)))
            );
            let key =
                InboundKey { server: server(s), room_id: room(r), peek_id: peek_id(p).into() };
            let rec = store.get(&key).map(|rec| (rec.renewed_at, rec.expires_at));
            prop_assert_eq!(rec, Some((t(renewed), t(expires))));
        }
        for r in 0..3 {
            let mut d: Vec<String> = m.destinations(&room(r)).map(|s| s.to_string()).collect();
            let n = d.len();
            d.sort();
            d.dedup();
            prop_assert_eq!(n, d.len(), "one entry per server");
            let want: BTreeSet<String> =
                model.live.keys().filter(|k| k.1 == r).map(|k| server(k.0).to_string()).collect();
            prop_assert_eq!(d, want.into_iter().collect::<Vec<_>>());
            for s in 0..3 {
                for p in 0..3 {
                    let live = model.live.contains_key(&(s, r, p));
                    prop_assert_eq!(m.is_peeking(&server(s), &room(r), &peek_id(p)), live);
                }
            }
        }
        let next = model.live.values().map(|(_, e)| *e).min().map(t);
        prop_assert_eq!(m.poll_timeout(), next);
        prop_assert_eq!(m.now(), t(model.last));
    }
    Ok(())
}

proptest! {
    #![proptest_config(saved_beside_source(ProptestConfig { cases: 256.max(ProptestConfig::default().cases), ..ProptestConfig::default() }))]

    #[test]
    fn inbound_peeks_match_the_reference_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
