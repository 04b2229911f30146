//! Property test: `LocalPeeks` against its reference model (`tests/support/model/local.rs`,
//! docs/architecture.md §13), with
//! random operations over a few users, devices and rooms, backwards and jumping clocks,
//! restores from the `Persist` stream, and outputs the host sometimes takes only after later
//! inputs (so inputs meet slots kept only for queued outputs). Checked after every step: live
//! sets and leases, `poll_timeout`, `sync_delta` for remembered `since` tokens, demand
//! (queried, and as reported by `RoomDemand` once the outputs are taken), ended-peek counts,
//! and a bounded output queue.

use std::collections::{BTreeMap, BTreeSet};

use matrix_peek::{
    LocalEndReason, LocalKey, LocalOutput, LocalPeekError, LocalPeeks, LocalRecord, RoomAccess,
    StreamPosition, Timestamp,
};
use proptest::prelude::*;
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomVersionId};

use crate::support::model::*;
use crate::support::prop::saved_beside_source;

#[derive(Debug, Clone)]
enum Op {
    Peek { u: u8, d: u8, r: u8, joined: bool, access: u8 },
    Unpeek { u: u8, d: u8, r: u8 },
    Joined { u: u8, r: u8 },
    AccessLost { r: u8 },
    Unavailable { r: u8 },
    DeviceRemoved { u: u8, d: u8 },
    UserDeactivated { u: u8 },
    Synced { u: u8, d: u8 },
    Timeout,
    Restore,
}

fn op() -> impl Strategy<Value = Op> {
    let (u, d, r) = (0..USERS, 0..DEVICES, 0..ROOMS);
    prop_oneof![
        6 => (u.clone(), d.clone(), r.clone(), prop::bool::weighted(0.1), prop_oneof![6 => Just(0u8), 1 => 1..4u8])
            .prop_map(|(u, d, r, joined, access)| Op::Peek { u, d, r, joined, access }),
        3 => (u.clone(), d.clone(), r.clone()).prop_map(|(u, d, r)| Op::Unpeek { u, d, r }),
        1 => (u.clone(), r.clone()).prop_map(|(u, r)| Op::Joined { u, r }),
        1 => r.clone().prop_map(|r| Op::AccessLost { r }),
        1 => r.prop_map(|r| Op::Unavailable { r }),
        1 => (u.clone(), d.clone()).prop_map(|(u, d)| Op::DeviceRemoved { u, d }),
        1 => u.clone().prop_map(|u| Op::UserDeactivated { u }),
        2 => (u, d).prop_map(|(u, d)| Op::Synced { u, d }),
        4 => Just(Op::Timeout),
        1 => Just(Op::Restore),
    ]
}

/// A clock step: mostly small forward, sometimes backwards (absorbed), sometimes a big jump,
/// and sometimes a step back beyond `CLOCK_STEP_LIMIT` (a correction, e.g. undoing the jump).
fn dt() -> impl Strategy<Value = i64> {
    prop_oneof![
        8 => 0..600i64,
        2 => -800..0i64,
        1 => Just(10_000_000_000i64),
        1 => prop_oneof![Just(-10_001i64), Just(-15_000i64), Just(-10_000_000_000i64)],
    ]
}

fn access(kind: u8) -> RoomAccess {
    let v = RoomVersionId::V11;
    match kind {
        0 => RoomAccess::new(v, true, false),
        1 => RoomAccess::new(v, false, false),
        2 => RoomAccess::new(v, true, true),
        _ => RoomAccess::new(v, false, true),
    }
}

/// Takes every queued output as a host does: applies each `Persist` to `store`, follows
/// `RoomDemand` in `reported` (each must be a change), counts `PeekEnded` (a
/// `RemoteUnavailable` end only if `unavailable`: a room was reported unavailable since the
/// last take). At most `bound` outputs may be queued.
fn take_outputs(
    m: &mut LocalPeeks,
    store: &mut BTreeMap<LocalKey, LocalRecord>,
    reported: &mut BTreeSet<OwnedRoomId>,
    bound: usize,
    unavailable: bool,
) -> Result<usize, TestCaseError> {
    let out: Vec<LocalOutput> = std::iter::from_fn(|| m.poll_output()).collect();
    prop_assert!(out.len() <= bound, "output queue too long: {} > {}", out.len(), bound);
    let mut ended = 0;
    for o in out {
        match o {
            LocalOutput::Persist(change) => change.apply_to(store),
            LocalOutput::RoomDemand { room_id, demanded } => {
                prop_assert_eq!(
                    reported.contains(&room_id),
                    !demanded,
                    "demand flip must be a change"
                );
                if demanded {
                    reported.insert(room_id);
                } else {
                    reported.remove(&room_id);
                }
            }
            LocalOutput::PeekEnded { reason, .. } => {
                prop_assert!(reason != LocalEndReason::RemoteUnavailable || unavailable);
                ended += 1;
            }
            LocalOutput::Wake { .. } => {}
            other => panic!("unexpected output {other:?}"),
        }
    }
    Ok(ended)
}

proptest! {
    // 256 cases by default (proptest's default); raise with PROPTEST_CASES.
    #![proptest_config(saved_beside_source(ProptestConfig { cases: ProptestConfig::default().cases.max(256), ..ProptestConfig::default() }))]

    // R5, R10, R11, R13, R15, R16, R19-R25, docs/architecture.md §4.3/§4.4, persistence contract
    #[test]
    fn local_peeks_match_the_reference_model(
        idle in any::<bool>(),
        // The bool: the host takes this step's outputs later (with a later step's), so inputs
        // meet device and room slots kept only for queued outputs.
        steps in prop::collection::vec((op(), dt(), prop::bool::weighted(0.25)), 1..60),
    ) {
        let cfg = config(idle);
        let mut m = LocalPeeks::new(cfg.clone());
        let mut model = Model { idle_after: idle.then_some(IDLE), clock: 0, ..Model::default() };
        let mut now: i64 = 1_000;
        let mut store: BTreeMap<LocalKey, LocalRecord> = BTreeMap::new();
        let mut reported: BTreeSet<OwnedRoomId> = BTreeSet::new();
        let mut tokens: Vec<u64> = vec![0];
        // Outputs not taken yet: the steps they come from, the ends they hold, and whether a
        // room was reported unavailable among those steps.
        let (mut held_steps, mut held_ends, mut held_unavailable) = (0usize, 0usize, false);
        let per_step = 8 * (TOTAL + 1) + 8;
        for (op, dt, hold) in steps {
            now = (now + dt).max(0);
            let ts = Timestamp::from_millis(now as u64);
            model.advance(now as u64);
            model.ended_now = 0;
            if matches!(op, Op::Restore) && held_steps > 0 {
                // The host stores what it was given before the crash.
                let ended = take_outputs(&mut m, &mut store, &mut reported, held_steps * per_step, held_unavailable)?;
                prop_assert_eq!(ended, held_ends);
                (held_steps, held_ends, held_unavailable) = (0, 0, false);
            }
            match op {
                Op::Peek { u, d, r, joined, access: a } => {
                    let got = m.handle_peek(ts, &user(u), &dev(d), &room(r), joined, &access(a));
                    let want = model.peek((u, d, r), joined, &access(a), now as u64);
                    prop_assert_eq!(got.map(|g| g.expires_at.as_millis()), want);
                }
                Op::Unpeek { u, d, r } => {
                    let got = m.handle_unpeek(ts, &user(u), &dev(d), &room(r));
                    let live = matches!(model.entries.get(&(u, d, r)), Some(ME::Peeking { .. }));
                    prop_assert_eq!(got.is_ok(), live);
                    if !live {
                        prop_assert_eq!(got, Err(LocalPeekError::NotPeeking));
                    }
                    model.end((u, d, r), false, false);
                }
                Op::Joined { u, r } => {
                    m.handle_joined(ts, &user(u), &room(r));
                    for d in 0..DEVICES {
                        model.end((u, d, r), false, true);
                    }
                }
                Op::AccessLost { r } => {
                    m.handle_access_changed(ts, &room(r), &access(1));
                    model.end_room(r);
                }
                Op::Unavailable { r } => {
                    m.handle_room_unavailable(ts, &room(r));
                    model.end_room(r);
                }
                Op::DeviceRemoved { u, d } => {
                    m.handle_device_removed(ts, &user(u), &dev(d));
                    model.remove_device((u, d));
                }
                Op::UserDeactivated { u } => {
                    m.handle_user_deactivated(ts, &user(u));
                    for d in 0..DEVICES {
                        model.remove_device((u, d));
                    }
                }
                Op::Synced { u, d } => {
                    m.handle_device_synced(ts, &user(u), &dev(d));
                    if model.entries.keys().any(|k| (k.0, k.1) == (u, d)) {
                        model.touch((u, d));
                    }
                }
                Op::Timeout => {
                    m.handle_timeout(ts);
                    model.timeout();
                }
                Op::Restore => {
                    m = LocalPeeks::restore(ts, cfg.clone(), store.values().cloned());
                    model.restore(now as u64);
                    reported.clear();
                }
            }
            held_steps += 1;
            held_ends += model.ended_now;
            held_unavailable |= matches!(op, Op::Unavailable { .. });
            // Take the outputs (apply Persist, follow RoomDemand, count PeekEnded), unless the
            // host takes them later.
            if !hold {
                let ended = take_outputs(&mut m, &mut store, &mut reported, held_steps * per_step, held_unavailable)?;
                prop_assert_eq!(ended, held_ends);
                (held_steps, held_ends, held_unavailable) = (0, 0, false);
            }
            // Live sets and leases.
            prop_assert_eq!(m.len(), model.live().count());
            for u in 0..USERS { for d in 0..DEVICES { for r in 0..ROOMS {
                let want = match model.entries.get(&(u, d, r)) {
                    Some(ME::Peeking { expires, .. }) => Some(*expires),
                    _ => None,
                };
                prop_assert_eq!(m.lease(&user(u), &dev(d), &room(r)).map(|t| t.as_millis()), want);
            }}}
            for r in 0..ROOMS {
                let mut got: Vec<(OwnedUserId, OwnedDeviceId)> =
                    m.peekers(&room(r)).map(|(u, d)| (u.to_owned(), d.to_owned())).collect();
                got.sort();
                let mut want: Vec<(OwnedUserId, OwnedDeviceId)> =
                    model.live().filter(|(k, _)| k.2 == r).map(|((u, d, _), _)| (user(u), dev(d))).collect();
                want.sort();
                prop_assert_eq!(got, want);
            }
            // Deadlines.
            prop_assert_eq!(m.poll_timeout().map(|t| t.as_millis()), model.poll_timeout());
            // Demand, queried and as reported.
            let want: BTreeSet<OwnedRoomId> = model.demanded().into_iter().map(room).collect();
            let got: BTreeSet<OwnedRoomId> = m.demanded_rooms().map(|r| r.to_owned()).collect();
            prop_assert_eq!(&got, &want);
            if held_steps == 0 {
                prop_assert_eq!(&reported, &want);
            }
            // Sync deltas for remembered tokens.
            prop_assert_eq!(m.stream_position().0, model.pos);
            tokens.push(model.pos);
            let n = tokens.len();
            let picks = [None, Some(tokens[0]), Some(tokens[n / 2]), Some(tokens[n.saturating_sub(3)]), Some(tokens[n - 1])];
            for u in 0..USERS { for d in 0..DEVICES {
                for since in picks {
                    let got = m.sync_delta(&user(u), &dev(d), since.map(StreamPosition));
                    let want = model.sync_delta((u, d), since);
                    prop_assert!(
                        got.joined.iter().all(|r| !got.started.contains(r) && !got.peeking.contains(r)),
                        "R23: never both peek and join"
                    );
                    prop_assert_eq!(got, want, "u{} d{} since {:?}", u, d, since);
                }
            }}
        }
    }
}
