//! Memory per live peek (docs/architecture.md §12), measured with a counting global allocator.
//!
//! `cargo run --release --example memory [SIZES]` builds, at each size N, an `InboundPeeks` and a
//! `LocalPeeks` with N live peeks through `handle_peek` (outputs drained), the bare key-map floor
//! (`Floor`: the peeks' joined id strings and deadlines, without the counts the benches' inbound
//! floor keeps), and an `OutboundPeeks` with N established rooms (each demanded, its `PUT`
//! answered), and prints the heap bytes each holds per peek, with and without the bytes of the id
//! strings themselves (peek ids per peek; room, server, user and device names once each, as the
//! machines intern them). The 220 B target (docs/architecture.md §12) is set for the inbound and
//! local machines, which hold millions of peeks; the outbound machine holds one room per remote
//! room the server's users peek, and is reported without a target. It ends with the **maximum** per
//! machine over the sizes: slabs, hash tables and `Vec`s double at powers of two, so one size just
//! under a doubling flatters the figure; the target holds only if it holds at every size.
//!
//! * `SIZES` (an argument, or `PEEK_MEMORY_SIZES`) is a comma-separated list, e.g.
//!   `100000,1000000`.
//! * Default in release builds: 100 k, 600 k, 1 M, 1.1 M and 2 M (about 25 s on 2 cores,
//!   about 1 GB of heap at the largest outbound size).
//! * Default in debug builds: 10 k, 60 k and 110 k — the same shape at a tenth of the size,
//!   because CI runs every example unoptimised (`cargo run --all-features --example memory`)
//!   and 2 M debug-mode peeks would take minutes; those figures only show that the example
//!   runs, the report quotes the release ones.
//!
//! Bytes held = `bytes_allocated − bytes_deallocated` of `stats_alloc`, which already counts
//! a reallocation's growth in `bytes_allocated` (and its shrinkage in `bytes_deallocated`), so
//! each byte is counted once. Requested bytes only: the system allocator's own per-block
//! overhead is not included; the blocks held per peek are printed so it can be estimated
//! (glibc: 8 B of header per block, blocks rounded up to 16 B, at least 32 B).
#![allow(missing_docs)]

#[path = "../benches/support/mod.rs"]
mod support;

use std::alloc::System;

use matrix_peek::InboundPeeks;
use matrix_peek::LocalPeeks;
use matrix_peek::OutboundRequestKind;
use matrix_peek::RoomAccess;
use matrix_peek::{OutboundConfig, OutboundOutcome, OutboundOutput, OutboundPeeks, OutboundState};
use ruma_common::RoomVersionId;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes and blocks held now that were not held when `region` started.
fn held(region: &Region<'_, System>) -> (isize, isize) {
    let s = region.change();
    let bytes = s.bytes_allocated as isize - s.bytes_deallocated as isize;
    (bytes, s.allocations as isize - s.deallocations as isize)
}

fn sizes() -> Vec<usize> {
    let spec = std::env::args().nth(1).or_else(|| std::env::var("PEEK_MEMORY_SIZES").ok());
    match spec {
        Some(s) => s.split(',').map(|x| x.trim().parse().expect("SIZES: numbers")).collect(),
        None if cfg!(debug_assertions) => vec![10_000, 60_000, 110_000],
        None => vec![100_000, 600_000, 1_000_000, 1_100_000, 2_000_000],
    }
}

/// One line of the report.
struct Line {
    what: &'static str,
    n: usize,
    per: f64,
    above: f64,
}

fn main() {
    let acc = RoomAccess::new(RoomVersionId::V10, true, false);
    let ver = [RoomVersionId::V10];
    let mut lines = Vec::new();
    for n in sizes() {
        // Inbound.
        let ids = InboundIds::new(n, 0);
        // The servers some peek names (at small sizes, not all of them).
        let mut named = vec![false; ids.servers.len()];
        (0..n).for_each(|i| named[ids.key(i).0] = true);
        let strings: usize = (0..n).map(|i| ids.key(i).2.len()).sum::<usize>()
            + ids.rooms.iter().map(|r| r.as_str().len()).sum::<usize>()
            + ids
                .servers
                .iter()
                .zip(&named)
                .filter(|&(_, &named)| named)
                .map(|(s, _)| s.as_str().len())
                .sum::<usize>();
        let region = Region::new(GLOBAL);
        let mut m = InboundPeeks::new(InboundIds::config());
        for i in 0..n {
            let (s, r, id) = ids.key(i);
            m.handle_peek(ts(T0), &ids.servers[s], &ids.rooms[r], id, &ver, Some(&acc))
                .expect("granted");
            while m.poll_output().is_some() {}
        }
        lines.push(line("inbound", n, m.len(), held(&region), strings));
        drop(m);

        // The bare key-map floor, for comparison.
        let region = Region::new(GLOBAL);
        let mut f = Floor::default();
        for i in 0..n {
            let (s, r, id) = ids.key(i);
            f.upsert(ids.servers[s].as_str(), ids.rooms[r].as_str(), id, ts(T0));
        }
        lines.push(line("floor", n, f.len(), held(&region), strings));
        drop(f);
        drop(ids);

        // Local.
        let ids = LocalIds::new(n, 0);
        let strings: usize = ids.rooms.iter().map(|r| r.as_str().len()).sum::<usize>()
            + ids.devices.iter().map(|d| d.as_str().len()).sum::<usize>()
            + ids.users.iter().map(|u| u.as_str().len()).sum::<usize>();
        let region = Region::new(GLOBAL);
        let mut m = LocalPeeks::new(LocalIds::config());
        for i in 0..n {
            let (u, d, r) = ids.key(i);
            m.handle_peek(ts(T0), &ids.users[u], &ids.devices[d], r, false, &acc).expect("granted");
            while m.poll_output().is_some() {}
        }
        lines.push(line("local", n, m.len(), held(&region), strings));
        drop(m);
        drop(ids);

        // Outbound: one federated peek per room, each through one of `SERVERS` residents.
        let rooms: Vec<_> = (0..n).map(room).collect();
        // Only the residents that some room names are interned.
        let servers: Vec<_> = (0..SERVERS.min(n)).map(server).collect();
        let strings: usize = rooms.iter().map(|r| r.as_str().len()).sum::<usize>()
            + servers.iter().map(|s| s.as_str().len()).sum::<usize>()
            + n * 8; // each peek's id, inline in its room
        let region = Region::new(GLOBAL);
        let mut m = OutboundPeeks::new(OutboundConfig {
            max_rooms: usize::MAX,
            ..OutboundConfig::default()
        });
        for (i, r) in rooms.iter().enumerate() {
            m.handle_demand(ts(T0), r, std::slice::from_ref(&servers[i % servers.len()]));
            while let Some(o) = m.poll_output() {
                if let OutboundOutput::Send(request) = o {
                    // No renewal is due and nothing is undemanded: every request is a `PUT`.
                    assert!(matches!(request.kind, OutboundRequestKind::Peek { .. }));
                    let outcome = OutboundOutcome::Established {
                        renewal_interval: LONG,
                        access: acc.clone(),
                    };
                    m.handle_response(ts(T0), request.id, outcome);
                }
            }
        }
        let live = m.rooms().filter(|info| info.state == OutboundState::Established).count();
        lines.push(line("outbound", n, live, held(&region), strings));
    }
    println!("maximum over the sizes (B per live peek, total / above the id strings):");
    for what in ["inbound", "local", "outbound", "floor"] {
        let of = || lines.iter().filter(|l| l.what == what);
        let per = of().max_by(|a, b| a.per.total_cmp(&b.per)).expect("a size");
        let above = of().max_by(|a, b| a.above.total_cmp(&b.above)).expect("a size");
        let target = if what == "outbound" { "  (no target)" } else { "" };
        println!(
            "  {what:8} {:.1} (at {}) / {:.1} (at {}){target}",
            per.per, per.n, above.above, above.n
        );
    }
}

fn line(what: &'static str, n: usize, live: usize, held: (isize, isize), strings: usize) -> Line {
    assert_eq!(live, n, "{what}: every peek live");
    let (bytes, blocks) = held;
    let per = bytes as f64 / n as f64;
    let above = (bytes - strings as isize) as f64 / n as f64;
    let blocks = blocks as f64 / n as f64;
    println!(
        "{what:8} {n:>9} live peeks: {bytes:>11} heap bytes, {per:6.1} B/peek, {above:6.1} B/peek \
         above the id strings ({strings} B of ids), {blocks:.2} heap blocks/peek"
    );
    Line { what, n, per, above }
}
