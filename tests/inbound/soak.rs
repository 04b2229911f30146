//! Long random runs of `InboundPeeks` with extreme configs (zero and `Duration::MAX` intervals
//! and grace, caps of zero), both peek id policies, clocks near `Timestamp::MAX` and jumping
//! both ways, restores at random steps. Checked: no spin after `handle_timeout`, a restore from
//! the `Persist` stream answers like the original, the store matches the machine, nothing
//! panics, and at `Timestamp::MAX` nothing is left.

use std::collections::BTreeMap;

use matrix_peek::testing::SimRng;
use matrix_peek::{
    InboundConfig, InboundKey, InboundOutput, InboundPeeks, InboundRecord, PeekIdPolicy,
    RoomAccess, Timestamp,
};
use ruma_common::{OwnedRoomId, OwnedServerName, RoomVersionId};

use crate::support::random_runs::*;

#[test]
fn inbound_long_random_runs_never_spin_and_restore_the_same() {
    for seed in 0..seeds() {
        let mut rng = SimRng::new(seed ^ 0x1B0);
        let cfg = InboundConfig {
            renewal_interval: rng.pick(&DURS),
            grace: rng.pick(&DURS),
            max_peeks_per_server: rng.range(0, 3) as usize,
            max_peeks_per_room: rng.range(0, 3) as usize,
            max_peeks_total: rng.range(0, 7) as usize,
            peek_id_policy: rng.pick(&[PeekIdPolicy::Strict, PeekIdPolicy::Lenient]),
        };
        let servers: Vec<OwnedServerName> =
            ["a.org", "b.org"].iter().map(|s| (*s).try_into().unwrap()).collect();
        let rooms: Vec<OwnedRoomId> =
            (0..3).map(|i| format!("!r{i}:x.org").try_into().unwrap()).collect();
        let ids = ["p1", "p2", "", "!r0:x.org", "a/b"];
        let mut now = start(&mut rng);
        let mut m = InboundPeeks::new(cfg.clone());
        let mut store: BTreeMap<InboundKey, InboundRecord> = BTreeMap::new();
        let mut expired = 0u64;
        let drain = |m: &mut InboundPeeks,
                     store: &mut BTreeMap<InboundKey, InboundRecord>,
                     expired: &mut u64| {
            while let Some(o) = m.poll_output() {
                match o {
                    InboundOutput::Persist(change) => change.apply_to(store),
                    InboundOutput::Expired { .. } => *expired += 1,
                    other => panic!("unexpected output {other:?}"),
                }
            }
        };
        for i in 0..300 {
            let ctx = format!("seed {seed} step {i} cfg {cfg:?}");
            let t = Timestamp::from_millis(now);
            let (s, r, id) = (rng.pick(&servers), rng.pick(&rooms), rng.pick(&ids));
            let access = RoomAccess::new(RoomVersionId::V11, rng.range(0, 5) != 0, false);
            match rng.range(0, 9) {
                0..=3 => {
                    let ver = rng.pick(&[vec![], vec![RoomVersionId::V11]]);
                    let _ = m.handle_peek(t, &s, &r, id, &ver, Some(&access));
                }
                4 => {
                    let _ = m.handle_renew(t, &s, &r, id);
                }
                5 => {
                    let _ = m.handle_unpeek(t, &s, &r, id);
                }
                6 => {
                    if rng.range(0, 1) == 0 {
                        m.handle_access_changed(t, &r, &access)
                    } else {
                        m.handle_server_denied(t, &r, &s)
                    }
                }
                7 => {
                    drain(&mut m, &mut store, &mut expired);
                    // At the machine's own clock, a restore changes nothing (earlier, it would heal
                    // what the original keeps until its clock is corrected).
                    let at = m.now();
                    let restored = InboundPeeks::restore(at, cfg.clone(), store.values().cloned());
                    assert_eq!(restored.poll_timeout(), m.poll_timeout(), "{ctx}: poll_timeout");
                    assert_eq!(restored.len(), m.len(), "{ctx}: len");
                    assert_eq!(restored.now(), m.now(), "{ctx}: time");
                    for s in &servers {
                        for r in &rooms {
                            for id in ids {
                                assert_eq!(
                                    restored.peek(s, r, id),
                                    m.peek(s, r, id),
                                    "{ctx}: peek"
                                );
                            }
                        }
                    }
                    m = restored;
                }
                _ => now = step_time(&mut rng, now),
            }
            drain(&mut m, &mut store, &mut expired);
            let t = Timestamp::from_millis(now);
            m.handle_timeout(t);
            drain(&mut m, &mut store, &mut expired);
            if let Some(next) = m.poll_timeout() {
                assert!(
                    next > m.now(),
                    "{ctx}: poll_timeout {next:?} not after {:?} (spin)",
                    m.now()
                );
            }
            assert_eq!(store.len(), m.len(), "{ctx}: store and machine disagree");
        }
        m.handle_timeout(Timestamp::MAX);
        drain(&mut m, &mut store, &mut expired);
        assert!(m.is_empty() && m.room_count() == 0, "seed {seed}: peeks outlive Timestamp::MAX");
        assert_eq!(m.poll_timeout(), None);
        assert!(store.is_empty());
    }
}
