//! Long random runs of `LocalPeeks` with extreme configs (zero and `Duration::MAX` leases,
//! retention and idle times), clocks near `Timestamp::MAX` and jumping both ways, restores at
//! random steps. Checked: no spin after `handle_timeout` (the next deadline is later than now),
//! a restore from the `Persist` stream answers every query and `poll_timeout` like the
//! original, nothing panics, and once everything ended no deadline and no stored entry is
//! left.

use std::collections::BTreeMap;
use std::time::Duration;

use matrix_peek::testing::SimRng;
use matrix_peek::{
    LocalConfig, LocalKey, LocalOutput, LocalPeeks, LocalRecord, RoomAccess, StreamPosition,
    Timestamp,
};
use ruma_common::{OwnedDeviceId, OwnedRoomId, OwnedUserId, RoomVersionId};

use crate::support::random_runs::*;

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
        // Liveness is not persisted (docs/architecture.md §4.4): idle deadlines restart from the restore.
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

/// A machine's own clock after the host says `host`: later times move it, a step back within
/// `CLOCK_STEP_LIMIT` is absorbed, a larger one is a correction to `host`.
fn machine_clock(clock: u64, host: u64) -> u64 {
    let limit = matrix_peek::CLOCK_STEP_LIMIT.as_millis() as u64;
    if host >= clock || clock - host > limit { host } else { clock }
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
        // The machine's own clock (a restore at it changes nothing; at an earlier time it would
        // heal what the original keeps until its clock is corrected).
        let mut clock = now;
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
            clock = machine_clock(clock, now);
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
                    let at = Timestamp::from_millis(clock);
                    let restored =
                        LocalPeeks::restore(at, w.cfg.clone(), w.store.values().cloned());
                    w.same(&restored, &ctx);
                    w.m = restored;
                }
                _ => now = step_time(&mut rng, now),
            }
            w.drain();
            let t = Timestamp::from_millis(now);
            clock = machine_clock(clock, now);
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
