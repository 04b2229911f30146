//! Retrying on trouble (R60, docs/architecture.md §6): backoff that doubles, caps and has reproducible jitter,
//! `retry_after` honoured, giving up on a peek never established, and an established peek lost
//! to the network retried with `Lost` reported once.

use std::time::Duration;

use matrix_peek::{
    OutboundConfig, OutboundFailure, OutboundOutput, OutboundPeekError, OutboundRequestKind,
    OutboundState, Timestamp,
};
use ruma_common::RoomId;

use crate::support::*;

fn backoff_gaps(room_id: &RoomId, n: usize) -> Vec<u64> {
    let cfg = OutboundConfig {
        max_attempts: 100,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(60),
        ..OutboundConfig::default()
    };
    let mut h = H::with(cfg);
    let mut req = only_send(h.demand(room_id, &["a.org"]));
    let mut gaps = Vec::new();
    for _ in 0..n {
        let failed_at = h.now;
        no_sends(&h.respond(&req, failed(OutboundFailure::Unreachable)));
        assert_eq!(h.m.state(room_id), Some(OutboundState::Backoff));
        req = only_send(h.fire());
        gaps.push(h.now - failed_at);
    }
    gaps
}

#[test]
fn backoff_doubles_caps_and_its_jitter_is_reproducible() {
    // R60
    let r = room("!backoff:a.org");
    let gaps = backoff_gaps(&r, 9);
    for (i, gap) in gaps.iter().enumerate() {
        let full = (1000u64 << i).min(60_000);
        assert!(*gap <= full && *gap >= full - full / 10, "attempt {i}: {gap} vs {full}");
    }
    assert_eq!(gaps, backoff_gaps(&r, 9), "same room, same delays");
    assert_ne!(gaps, backoff_gaps(&room("!other:a.org"), 9), "jitter depends on the room");
}

#[test]
fn rate_limited_retry_after_is_honoured() {
    // R60
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org"]));
    let t0 = h.now;
    let hint = Some(Duration::from_secs(30));
    no_sends(&h.respond(&put, failed(OutboundFailure::RateLimited { retry_after: hint })));
    assert_eq!(h.m.poll_timeout(), Some(Timestamp::from_millis(t0 + 30_000)));
    no_sends(&h.advance(Duration::from_millis(29_999)));
    assert!(matches!(
        only_send(h.advance(Duration::from_millis(1))).kind,
        OutboundRequestKind::Peek { .. }
    ));
}

#[test]
fn never_established_gives_up_after_max_attempts() {
    // R60, R27
    let cfg = OutboundConfig { max_attempts: 3, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    let mut req = only_send(h.demand(&r, &["a.org", "b.org"]));
    let mut out = Vec::new();
    let mut servers = Vec::new();
    for i in 0..3 {
        servers.push(req.server.to_string());
        out = h.respond(
            &req,
            failed(if i == 1 { OutboundFailure::Other(500) } else { OutboundFailure::Unreachable }),
        );
        if i < 2 {
            // The other candidate is asked at once while it is ready; then the backoff of the
            // one that failed first ends.
            if out.iter().all(|o| !matches!(o, OutboundOutput::Send(_))) {
                out = h.fire();
            }
            req = only_send(out.clone());
        }
    }
    assert_eq!(servers, ["a.org", "b.org", "a.org"], "per-candidate backoff");
    assert_eq!(
        out.last(),
        Some(&OutboundOutput::Unavailable {
            room_id: r.clone().into(),
            error: OutboundPeekError::Remote(OutboundFailure::Unreachable)
        })
    );
    assert_eq!(h.m.len(), 0);
}

#[test]
fn established_peek_lost_to_network_trouble_is_retried_reporting_lost_once() {
    // docs/architecture.md §6.5; R53
    let cfg = OutboundConfig { max_attempts: 2, ..OutboundConfig::default() };
    let mut h = H::with(cfg);
    let r = room("!r:a.org");
    h.open(&r, "a.org", Duration::from_secs(600)); // renew after 300 s, lapses at 600 s
    let mut lost = 0;
    let mut est = 0;
    let mut queue = vec![only_send(h.fire())];
    let mut puts = 0;
    let mut last_put = None;
    while puts < 10 {
        // Everything fails: renewals until the lapse, then the lapsed peek's DELETE in the
        // background (R55, R58) and new PUTs.
        let out = match queue.pop() {
            Some(req) => {
                if matches!(req.kind, OutboundRequestKind::Peek { .. }) {
                    puts += 1;
                    last_put = Some(req.clone());
                }
                h.respond(&req, failed(OutboundFailure::Unreachable))
            }
            None => h.fire(),
        };
        lost += out.iter().filter(|o| matches!(o, OutboundOutput::Lost { .. })).count();
        queue.extend(out.into_iter().filter_map(|o| match o {
            OutboundOutput::Send(r) => Some(r),
            _ => None,
        }));
    }
    assert_eq!(lost, 1, "Lost reported once");
    assert!(h.m.state(&r).is_some(), "still trying, far past max_attempts");
    let req = loop {
        let out = match queue.pop() {
            Some(req) if matches!(req.kind, OutboundRequestKind::Peek { .. }) => break req,
            Some(req) => h.respond(&req, failed(OutboundFailure::Unreachable)),
            None => h.fire(),
        };
        queue.extend(out.into_iter().filter_map(|o| match o {
            OutboundOutput::Send(r) => Some(r),
            _ => None,
        }));
    };
    assert!(last_put.is_some());
    let out = h.respond(&req, established(HOUR));
    est += out.iter().filter(|o| matches!(o, OutboundOutput::Established { .. })).count();
    assert_eq!(est, 1);
    assert_eq!(h.m.state(&r), Some(OutboundState::Established));
}
