//! `outbound_day`: one simulated day of outbound peeks, every request answered at once.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode};
use matrix_peek::Timestamp;
use matrix_peek::{
    OutboundConfig, OutboundOutcome, OutboundOutput, OutboundPeeks, OutboundRequest,
    OutboundRequestKind,
};
use ruma_common::{OwnedRoomId, OwnedServerName};

use crate::support::*;
use crate::{Plan, access};

/// Answers every `Send` at once (at `now`), until the machine asks for nothing more.
fn pump(m: &mut OutboundPeeks, now: Timestamp, q: &mut Vec<OutboundRequest>) -> usize {
    let mut answered = 0;
    let acc = access();
    loop {
        while let Some(o) = m.poll_output() {
            if let OutboundOutput::Send(r) = o {
                q.push(r);
            }
        }
        if q.is_empty() {
            return answered;
        }
        for r in q.drain(..) {
            let hour = Duration::from_secs(3600);
            let outcome = match r.kind {
                OutboundRequestKind::Peek { .. } => {
                    OutboundOutcome::Established { renewal_interval: hour, access: acc.clone() }
                }
                OutboundRequestKind::Renew => {
                    OutboundOutcome::Renewed { renewal_interval: Some(hour) }
                }
                OutboundRequestKind::Unpeek => OutboundOutcome::Deleted,
            };
            answered += 1;
            m.handle_response(now, r.id, outcome);
        }
    }
}

/// One day of `rooms` outbound peeks: demand staggered over the first minute, renewals every
/// 30 min (a 1 h interval), all demand dropped at the end (linger, then `DELETE`).
/// Returns the number of requests answered.
fn outbound_day(rooms: &[OwnedRoomId], via: &[OwnedServerName]) -> usize {
    let mut m = OutboundPeeks::new(OutboundConfig { max_rooms: rooms.len(), ..Default::default() });
    let mut q = Vec::new();
    let mut answered = 0;
    let start = T0;
    for (i, r) in rooms.iter().enumerate() {
        let now = ts(start + (i as u64 * 60_000) / rooms.len() as u64);
        m.handle_demand(now, r, &via[i % via.len()..][..1]);
        answered += pump(&mut m, now, &mut q);
    }
    let end = ts(start + 24 * 3600 * 1000);
    while let Some(t) = m.poll_timeout() {
        if t > end {
            break;
        }
        m.handle_timeout(t);
        answered += pump(&mut m, t, &mut q);
    }
    for r in rooms {
        m.handle_no_demand(end, r);
    }
    answered += pump(&mut m, end, &mut q);
    while let Some(t) = m.poll_timeout() {
        m.handle_timeout(t);
        answered += pump(&mut m, t, &mut q);
    }
    assert!(m.is_empty(), "every room deleted at the end of the day");
    answered
}

pub fn day(c: &mut Criterion, plan: &Plan) {
    if !plan.wants("outbound_day") {
        return;
    }
    let n = if plan.full { 10_000 } else { 100 };
    let rooms: Vec<OwnedRoomId> = (0..n).map(room).collect();
    let via: Vec<OwnedServerName> = (0..100).map(server).collect();
    eprintln!("outbound_day: {} requests answered for {n} rooms", outbound_day(&rooms, &via));
    let mut g = c.benchmark_group("outbound_day");
    g.sample_size(10).sampling_mode(SamplingMode::Flat);
    g.bench_function(BenchmarkId::new("machine", n), |b| b.iter(|| outbound_day(&rooms, &via)));
    g.finish();
}
