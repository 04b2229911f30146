//! Anti-entropy between the split halves (docs/architecture.md §7.5): what one half loses in a
//! crash, the other's restatement on `resync_interval` gives back, and nothing is restated
//! while both agree or inside `Peeking`.

use matrix_peek::{
    ClientPeekReply, FederationSide, OutboundFailure, OutboundOutcome, OutboundRequest,
    OutboundRequestKind, OutboundState, Output, Peeking, PeekingConfig, SideOutput, Snapshot,
    SyncSide, Timestamp, ToFederation, ToSync,
};

use crate::support::host::*;

/// Both halves with their own stores, every message delivered in order unless a crash drops
/// it. Requests the federation side sends wait in `in_flight` until answered.
struct Pair {
    config: PeekingConfig,
    sync: SyncSide,
    federation: FederationSide,
    sync_store: Snapshot,
    federation_store: Snapshot,
    in_flight: Vec<OutboundRequest>,
    decided: Vec<bool>,
    to_sync: Vec<ToSync>,
    to_federation: Vec<ToFederation>,
    epoch: u64,
}

impl Pair {
    fn new() -> Self {
        let config = PeekingConfig::default();
        Pair {
            sync: SyncSide::new(config.clone(), 1),
            federation: FederationSide::new(config.clone(), 1),
            config,
            sync_store: Snapshot::default(),
            federation_store: Snapshot::default(),
            in_flight: Vec::new(),
            decided: Vec::new(),
            to_sync: Vec::new(),
            to_federation: Vec::new(),
            epoch: 1,
        }
    }

    /// Collects both halves' outputs (a host applies `Persist` to its store), then delivers
    /// the messages, until quiet.
    fn pump(&mut self, now: Timestamp) {
        loop {
            self.collect();
            if self.to_federation.is_empty() && self.to_sync.is_empty() {
                return;
            }
            for m in std::mem::take(&mut self.to_federation) {
                self.federation.handle_route(now, m);
            }
            for m in std::mem::take(&mut self.to_sync) {
                self.sync.handle_route(now, m);
            }
        }
    }

    /// Moves both halves' outputs to the stores, the host and the outgoing message queues.
    fn collect(&mut self) {
        while let Some(out) = self.sync.poll_output() {
            match out {
                SideOutput::Host(Output::Persist(change)) => {
                    self.sync_store = self.sync_store.apply(&[change]);
                }
                SideOutput::Host(Output::ClientPeekDone { result, .. }) => {
                    self.decided.push(result.is_ok());
                }
                SideOutput::Host(_) => {}
                SideOutput::Route(m) => self.to_federation.push(m),
            }
        }
        while let Some(out) = self.federation.poll_output() {
            match out {
                SideOutput::Host(Output::Persist(change)) => {
                    self.federation_store = self.federation_store.apply(&[change]);
                }
                SideOutput::Host(Output::Send(request)) => self.in_flight.push(request),
                SideOutput::Host(_) => {}
                SideOutput::Route(m) => self.to_sync.push(m),
            }
        }
    }

    /// Fires both halves' timers up to `now`, step by step, answering every request with
    /// `answer`, and returns the requests sent meanwhile.
    fn run_until(
        &mut self,
        from: Timestamp,
        now: Timestamp,
        answer: impl Fn(&OutboundRequest) -> OutboundOutcome,
    ) -> Vec<OutboundRequest> {
        let mut sent = Vec::new();
        let mut t = from;
        loop {
            self.pump(t);
            for request in std::mem::take(&mut self.in_flight) {
                self.federation.handle_response(t, request.id, answer(&request));
                sent.push(request);
            }
            self.pump(t);
            if !self.in_flight.is_empty() {
                continue;
            }
            let next = [self.sync.poll_timeout(), self.federation.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= now => {
                    t = t.max(at);
                    self.federation.handle_timeout(t);
                    self.sync.handle_timeout(t);
                }
                _ => return sent,
            }
        }
    }

    fn restart_federation(&mut self, now: Timestamp) {
        self.epoch += 1;
        self.to_federation.clear();
        self.federation = FederationSide::restore(
            now,
            self.config.clone(),
            self.federation_store.clone(),
            self.epoch,
        );
    }

    fn restart_sync(&mut self, now: Timestamp) {
        self.epoch += 1;
        self.to_sync.clear();
        self.sync =
            SyncSide::restore(now, self.config.clone(), self.sync_store.clone(), self.epoch);
    }
}

fn is(kind: Kind) -> impl Fn(&&OutboundRequest) -> bool {
    move |r| self::kind(r) == kind
}

/// A peek of the remote room by alice's phone, through `pair`'s sync side.
fn peek(pair: &mut Pair, now: Timestamp) -> ClientPeekReply {
    let reply =
        pair.sync.handle_client_peek(now, remote_peek(alice(), phone(), &[remote_server()]));
    pair.pump(now);
    reply
}

/// Alice's phone peeks the remote room at `T0`: the federation side's `PUT`, unanswered.
fn put_pending_at_t0() -> (Pair, OutboundRequest) {
    let mut pair = Pair::new();
    assert!(matches!(peek(&mut pair, T0), ClientPeekReply::Pending(_)));
    let put = pair.in_flight.pop().expect("a PUT");
    (pair, put)
}

/// Alice's phone peeks the remote room at `T0` and the resident grants it at once.
fn established_at_t0() -> Pair {
    let mut pair = Pair::new();
    assert!(matches!(peek(&mut pair, T0), ClientPeekReply::Pending(_)));
    pair.run_until(T0, T0, granted);
    assert_eq!(pair.decided, vec![true]);
    assert_eq!(pair.federation.outbound().state(&remote_room()), Some(OutboundState::Established));
    pair
}

#[test]
fn a_demand_the_federation_side_lost_in_a_restart_is_restated_within_one_resync_interval() {
    let (mut pair, put) = put_pending_at_t0();
    let interval = pair.config.resync_interval;
    // The resident does not answer: the room goes into backoff. Nothing of it is stored.
    pair.federation.handle_response(
        T0,
        put.id,
        OutboundOutcome::Failed(OutboundFailure::Unreachable),
    );
    pair.pump(T0);
    pair.in_flight.clear();
    // The federation side crashes and comes back from its store, which has no record of the
    // room: no `Restored` for it, so without anti-entropy the demand is gone for good.
    let crash = at(1_000);
    pair.restart_federation(crash);
    pair.pump(crash);
    assert_eq!(pair.federation.outbound().state(&remote_room()), None, "the demand is lost");
    assert!(pair.sync.wanted_rooms().any(|r| r == remote_room()), "the sync side still wants it");

    let sent = pair.run_until(crash, T0.saturating_add(interval), granted);
    assert_eq!(pair.sync.restated_demands(), 1, "restated once, at one interval");
    assert_eq!(sent.iter().filter(is(Kind::Peek)).count(), 1, "the peek is opened again");
    assert_eq!(pair.federation.outbound().state(&remote_room()), Some(OutboundState::Established));
    assert_eq!(pair.decided, vec![true], "the waiting client peek is granted");
    assert!(pair.sync.local().is_peeking(&alice(), &phone(), &remote_room()));
}

#[test]
fn a_no_demand_lost_in_a_sync_crash_is_asked_for_and_the_peek_is_deleted() {
    let mut pair = established_at_t0();
    let interval = pair.config.resync_interval;
    // The device unpeeks; the sync side saves that, then crashes before its `NoDemand` is
    // published.
    let unpeek = at(10_000);
    pair.sync.handle_client_unpeek(unpeek, &alice(), &phone(), &remote_room()).expect("peeking");
    pair.collect();
    assert!(
        pair.to_federation.iter().any(|m| matches!(m, ToFederation::NoDemand { .. })),
        "{:?}",
        pair.to_federation
    );
    pair.to_federation.clear();
    pair.restart_sync(unpeek);
    pair.pump(unpeek);
    assert_eq!(pair.sync.wanted_rooms().count(), 0);
    assert_eq!(
        pair.federation.outbound().state(&remote_room()),
        Some(OutboundState::Established),
        "the federation side still holds the peek nobody wants"
    );

    // Twice the interval after the last `Demand` the federation side asks; the answer is
    // `NoDemand`, and the peek lingers and is deleted.
    let asked = T0.saturating_add(interval * 2);
    let deleted_by = asked.saturating_add(pair.config.outbound.linger).saturating_add(secs(60));
    let sent = pair.run_until(unpeek, deleted_by, granted);
    assert_eq!(pair.federation.confirmations_asked(), 1);
    assert_eq!(sent.iter().filter(is(Kind::Unpeek)).count(), 1, "{sent:?}");
    assert_eq!(pair.federation.outbound().state(&remote_room()), None);
}

#[test]
fn while_both_halves_agree_only_the_sync_side_restates_and_nothing_changes() {
    let mut pair = established_at_t0();
    let interval = pair.config.resync_interval;
    // The device renews its peek every 10 minutes for two hours.
    let mut sent = Vec::new();
    let mut t = T0;
    let end = T0.saturating_add(secs(2 * 3600));
    while t < end {
        let next = t.saturating_add(secs(600));
        sent.extend(pair.run_until(t, next, granted));
        t = next;
        let renewed = peek(&mut pair, t);
        assert!(matches!(renewed, ClientPeekReply::Done(Ok(_))), "{renewed:?}");
    }
    let intervals = (2 * 3600) / interval.as_secs();
    let restated = pair.sync.restated_demands();
    assert!(restated.abs_diff(intervals) <= 1, "{restated} restatements in {intervals} intervals");
    assert_eq!(pair.federation.confirmations_asked(), 0, "the sync side never went quiet");
    assert_eq!(sent.iter().filter(is(Kind::Peek)).count(), 0, "no new peek: {sent:?}");
    assert_eq!(sent.iter().filter(is(Kind::Unpeek)).count(), 0, "no delete: {sent:?}");
    assert!(sent.iter().filter(is(Kind::Renew)).count() >= 1, "renewed as usual");
    assert_eq!(pair.federation.outbound().state(&remote_room()), Some(OutboundState::Established));
}

#[test]
fn peeking_in_one_process_never_restates() {
    let mut host = Host::new();
    host.establish_remote(T0);
    let mut t = T0;
    for minute in 1..=120 {
        t = t.saturating_add(secs(60));
        host.peeking.handle_timeout(t);
        let mut out = host.drain();
        if minute % 10 == 0 {
            out.extend(host.peek(t, remote_peek(alice(), phone(), &[remote_server()])).1);
        }
        answer_all(&mut host, t, out, granted);
    }
    let peeking: &Peeking = &host.peeking;
    // No restatement deadline either: the next wake-up is the peek's own business.
    // An armed restatement that `Peeking` never fires would be stuck in the past.
    let next = peeking.poll_timeout().expect("the peek has deadlines");
    assert!(next > t, "a deadline in the past ({next:?} at {t:?}): a restatement is armed");
    assert_eq!(peeking.sync_side().restated_demands(), 0);
    assert_eq!(peeking.federation_side().confirmations_asked(), 0);
    assert_eq!(peeking.outbound().state(&remote_room()), Some(OutboundState::Established));
}

#[test]
fn a_clock_stepped_back_delays_no_restatement_beyond_one_interval() {
    let mut pair = established_at_t0();
    let interval = pair.config.resync_interval;
    // The host's clock reads 50 minutes ahead for a while (within the peek's lease): the
    // demand is restated then, and the next restatement is set for 55 minutes.
    let wrong = T0.saturating_add(secs(50 * 60));
    pair.run_until(T0, wrong, granted);
    let restated = pair.sync.restated_demands();
    assert!(restated >= 1);
    // Corrected back to the real time: the next restatement comes one interval from it, not
    // 55 minutes after the real time.
    let back = at(5_000);
    pair.sync.handle_timeout(back);
    pair.federation.handle_timeout(back);
    pair.pump(back);
    pair.run_until(back, back.saturating_add(interval), granted);
    assert_eq!(pair.sync.restated_demands(), restated + 1, "restated one interval after the fix");
}

#[test]
fn answers_to_a_demand_stay_valid_when_the_timer_restates_it_meanwhile() {
    // The resident refuses the peek while the sync side's restatement is on its way: the
    // refusal answers the demand the restatement repeats, so the waiting client fails with it
    // at once, as in `Peeking`, and the room is let go.
    let (mut pair, put) = put_pending_at_t0();
    let interval = pair.config.resync_interval;
    let restate = T0.saturating_add(interval);
    pair.sync.handle_timeout(restate);
    pair.collect();
    assert_eq!(pair.sync.restated_demands(), 1);
    let restated = std::mem::take(&mut pair.to_federation);
    assert!(matches!(restated.as_slice(), [ToFederation::Demand { .. }]), "{restated:?}");
    // The refusal reaches the sync side before the restatement reaches the federation side.
    pair.federation.handle_response(
        restate,
        put.id,
        OutboundOutcome::Failed(OutboundFailure::Forbidden),
    );
    pair.collect();
    for m in std::mem::take(&mut pair.to_sync) {
        pair.sync.handle_route(restate, m);
    }
    pair.collect();
    assert_eq!(pair.decided, vec![false], "the client hears the refusal at once");
    assert_eq!(pair.sync.wanted_rooms().count(), 0);
    // The restatement arrives late and revives the room for a moment; its answer meets a sync
    // side that wants nothing, which winds it down.
    pair.to_federation = restated;
    let sent = pair.run_until(restate, restate.saturating_add(secs(120)), |r| match r.kind {
        OutboundRequestKind::Peek { .. } => OutboundOutcome::Failed(OutboundFailure::Forbidden),
        _ => granted(r),
    });
    assert!(sent.len() <= 1, "at most the revived PUT: {sent:?}");
    assert_eq!(pair.federation.outbound().state(&remote_room()), None);
}

#[test]
fn a_confirm_for_a_room_still_wanted_changes_nothing() {
    // The sync side's host is late firing its timer: the federation side asks first.
    let mut pair = established_at_t0();
    let interval = pair.config.resync_interval;
    let asked = T0.saturating_add(interval * 2);
    pair.federation.handle_timeout(asked);
    pair.collect();
    assert_eq!(pair.federation.confirmations_asked(), 1);
    assert!(matches!(pair.to_sync.as_slice(), [ToSync::Confirm { .. }]), "{:?}", pair.to_sync);
    for m in std::mem::take(&mut pair.to_sync) {
        pair.sync.handle_route(asked, m);
    }
    pair.collect();
    assert!(pair.to_federation.is_empty(), "no answer: {:?}", pair.to_federation);
    assert_eq!(pair.sync.wanted_rooms().count(), 1);
    pair.run_until(asked, asked.saturating_add(pair.config.outbound.linger * 4), granted);
    assert_eq!(pair.federation.outbound().state(&remote_room()), Some(OutboundState::Established));
    assert!(pair.sync.local().is_peeking(&alice(), &phone(), &remote_room()));
}
