//! Long random runs of `LocalPeeks` and `InboundPeeks` with extreme configs (zero and
//! `Duration::MAX` leases, intervals, retention and idle times), clocks near `Timestamp::MAX`
//! and jumping both ways, restores at random steps. Checked: no spin after `handle_timeout`
//! (the next deadline is later than now), a restore from the `Persist` stream answers every
//! query and `poll_timeout` like the original, nothing panics, and once everything ended and
//! the deadlines passed, no deadline and no stored entry is left.

use std::collections::BTreeMap;
use std::time::Duration;

use matrix_peek::testing::SimRng;
use matrix_peek::{
    InboundConfig, InboundKey, InboundOutput, InboundPeeks, InboundRecord, LocalConfig, LocalKey,
    LocalOutput, LocalPeeks, LocalRecord, PeekIdPolicy, RoomAccess, StreamPosition, Timestamp,
};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomVersionId};

const DURS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_secs(10),
    Duration::from_secs(3600),
    Duration::MAX,
];

fn seeds() -> u64 {
    std::env::var("REVIEW_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(200)
}

fn start(rng: &mut SimRng) -> u64 {
    rng.pick(&[0, 1_000_000, Timestamp::MAX.as_millis() - 50_000, Timestamp::MAX.as_millis()])
}

fn step_time(rng: &mut SimRng, now: u64) -> u64 {
    let d = rng.pick(&[0u64, 1, 700, 20_000, 4_000_000, u64::MAX / 2]);
    let t = if rng.range(0, 4) == 0 { now.saturating_sub(d) } else { now.saturating_add(d) };
    t.min(Timestamp::MAX.as_millis())
}

// ---------- local ----------

struct Local {
    m: LocalPeeks,
    cfg: LocalConfig,
    store: BTreeMap<LocalKey, LocalRecord>,
    users: Vec<OwnedUserId>,
    devices: Vec<OwnedDeviceId>,
    rooms: Vec<OwnedRoomId>,
    sinces: Vec<StreamPosition>,
}

impl Local {
    fn drain(&mut self) {
        let mut n = 0;
        while let Some(o) = self.m.poll_output() {
            n += 1;
            assert!(n < 100_000, "local output runs away");
            if let LocalOutput::Persist(change) = o {
                change.apply_to(&mut self.store);
            }
        }
    }

    fn same(&self, other: &LocalPeeks, ctx: &str) {
        // Liveness is not persisted (DESIGN §4.4): idle deadlines restart from the restore.
        let idle = self.cfg.device_idle_after.is_some();
        if !idle {
            assert_eq!(self.m.poll_timeout(), other.poll_timeout(), "{ctx}: poll_timeout");
        }
        assert_eq!(self.m.len(), other.len(), "{ctx}: len");
        assert!(other.stream_position() >= self.m.stream_position(), "{ctx}: stream went back");
        for u in &self.users {
            for d in &self.devices {
                for r in &self.rooms {
                    assert_eq!(self.m.lease(u, d, r), other.lease(u, d, r), "{ctx}: lease");
                }
                for since in self.sinces.iter().copied().map(Some).chain([None]) {
                    let (mut a, mut b) =
                        (self.m.sync_delta(u, d, since), other.sync_delta(u, d, since));
                    a.next = StreamPosition(0);
                    b.next = StreamPosition(0);
                    assert_eq!(a, b, "{ctx}: sync_delta {u} {d} since {since:?}");
                }
            }
        }
        for r in self.rooms.iter().filter(|_| !idle) {
            assert_eq!(self.m.is_demanded(r), other.is_demanded(r), "{ctx}: demand {r}");
        }
    }
}

#[test]
fn local_long_random_runs_never_spin_and_restore_the_same() {
    for seed in 0..seeds() {
        let mut rng = SimRng::new(seed ^ 0x10CA1);
        let cfg = LocalConfig {
            lease: rng.pick(&DURS),
            max_peeks_per_device: 1 + rng.range(0, 2) as usize,
            max_peeks_total: rng.range(0, 7) as usize,
            ended_retention: rng.pick(&DURS),
            device_idle_after: rng.pick(&[
                None,
                Some(Duration::ZERO),
                Some(Duration::from_secs(5)),
                Some(Duration::MAX),
            ]),
        };
        let mut now = start(&mut rng);
        let mut w = Local {
            m: LocalPeeks::new(cfg.clone()),
            cfg,
            store: BTreeMap::new(),
            users: (0..2).map(|i| format!("@u{i}:x.org").try_into().unwrap()).collect(),
            devices: (0..2).map(|i| format!("D{i}").as_str().into()).collect(),
            rooms: (0..3).map(|i| format!("!r{i}:x.org").try_into().unwrap()).collect(),
            sinces: Vec::new(),
        };
        for i in 0..300 {
            let ctx = format!("seed {seed} step {i} cfg {:?}", w.cfg);
            let t = Timestamp::from_millis(now);
            let (u, d, r) = (rng.pick(&w.users), rng.pick(&w.devices), rng.pick(&w.rooms));
            match rng.range(0, 11) {
                0..=3 => {
                    let access = RoomAccess::new(RoomVersionId::V11, rng.range(0, 5) != 0, false);
                    let _ = w.m.handle_peek(t, &u, &d, &r, rng.range(0, 9) == 0, &access);
                }
                4 => {
                    let _ = w.m.handle_unpeek(t, &u, &d, &r);
                }
                5 => w.m.handle_joined(t, &u, &r),
                6 => w.m.handle_device_synced(t, &u, &d),
                7 => {
                    if rng.range(0, 2) == 0 {
                        w.m.handle_device_removed(t, &u, &d)
                    } else {
                        w.m.handle_room_unavailable(t, &r)
                    }
                }
                8 => w.sinces.push(w.m.stream_position()),
                9 => {
                    w.drain();
                    let restored = LocalPeeks::restore(t, w.cfg.clone(), w.store.values().cloned());
                    w.same(&restored, &ctx);
                    w.m = restored;
                }
                _ => now = step_time(&mut rng, now),
            }
            w.drain();
            let t = Timestamp::from_millis(now);
            w.m.handle_timeout(t);
            w.drain();
            if let Some(next) = w.m.poll_timeout() {
                assert!(next > t, "{ctx}: poll_timeout {next:?} not after {t:?} (spin)");
            }
        }
        // Everything ends; every deadline passes.
        for u in w.users.clone() {
            w.m.handle_user_deactivated(Timestamp::from_millis(now), &u);
        }
        w.drain();
        assert!(w.m.is_empty());
        assert_eq!(w.m.poll_timeout(), None, "seed {seed}: a deadline outlives every entry");
        assert!(
            w.store.keys().all(|k| matches!(k, LocalKey::Stream)),
            "seed {seed}: stored entries left: {:?}",
            w.store.keys().collect::<Vec<_>>()
        );
    }
}

// ---------- inbound ----------

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
                    let restored = InboundPeeks::restore(t, cfg.clone(), store.values().cloned());
                    assert_eq!(restored.poll_timeout(), m.poll_timeout(), "{ctx}: poll_timeout");
                    assert_eq!(restored.len(), m.len(), "{ctx}: len");
                    assert!(restored.now() >= m.now().min(t.max(restored.now())), "{ctx}: time");
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
