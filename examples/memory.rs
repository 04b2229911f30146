//! Memory per live peek (docs/architecture.md §12), measured with a counting global allocator.
//!
//! `cargo run --release --example memory [N]` (default 1 000 000) builds an `InboundPeeks` and
//! a `LocalPeeks` with N live peeks through `handle_peek` (outputs drained), and prints the
//! heap bytes they hold per peek, with and without the bytes of the id strings themselves
//! (peek ids per peek; room and server names once each, as the machine interns them).
#![allow(missing_docs)]

#[path = "../benches/support/mod.rs"]
mod support;

use std::alloc::System;

use matrix_peek::InboundPeeks;
use matrix_peek::LocalPeeks;
use matrix_peek::RoomAccess;
use ruma_common::RoomVersionId;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use support::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn held(region: &Region<'_, System>) -> isize {
    let s = region.change();
    s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let acc = RoomAccess::new(RoomVersionId::V10, true, false);
    let ver = [RoomVersionId::V10];

    // Inbound.
    let ids = InboundIds::new(n, 0);
    let region = Region::new(GLOBAL);
    let mut m = InboundPeeks::new(InboundIds::config());
    for i in 0..n {
        let (s, r, id) = ids.key(i);
        m.handle_peek(ts(T0), &ids.servers[s], &ids.rooms[r], id, &ver, Some(&acc))
            .expect("granted");
        while m.poll_output().is_some() {}
    }
    let bytes = held(&region);
    let strings: usize = (0..n).map(|i| ids.key(i).2.len()).sum::<usize>()
        + ids.rooms.iter().map(|r| r.as_str().len()).sum::<usize>()
        + ids.servers.iter().map(|s| s.as_str().len()).sum::<usize>();
    report("inbound", n, m.len(), bytes, strings);
    drop(m);

    // The floor tracker, for comparison.
    let region = Region::new(GLOBAL);
    let mut f = Floor::default();
    for i in 0..n {
        let (s, r, id) = ids.key(i);
        f.upsert(ids.servers[s].as_str(), ids.rooms[r].as_str(), id, ts(T0));
    }
    report("floor (key strings concatenated)", n, f.map.len(), held(&region), strings);
    drop(f);
    drop(ids);

    // Local.
    let ids = LocalIds::new(n, 0);
    let region = Region::new(GLOBAL);
    let mut m = LocalPeeks::new(LocalIds::config());
    for i in 0..n {
        let (u, d, r) = ids.key(i);
        m.handle_peek(ts(T0), &ids.users[u], &ids.devices[d], r, false, &acc).expect("granted");
        while m.poll_output().is_some() {}
    }
    let bytes = held(&region);
    let strings: usize = ids.rooms.iter().map(|r| r.as_str().len()).sum::<usize>()
        + ids.devices.iter().map(|d| d.as_str().len()).sum::<usize>()
        + ids.users.iter().map(|u| u.as_str().len()).sum::<usize>();
    report("local", n, m.len(), bytes, strings);
}

fn report(what: &str, n: usize, live: usize, bytes: isize, strings: usize) {
    assert_eq!(live, n, "{what}: every peek live");
    let per = bytes as f64 / n as f64;
    let above = (bytes - strings as isize) as f64 / n as f64;
    println!(
        "{what}: {n} live peeks, {bytes} heap bytes: {per:.1} B/peek, {above:.1} B/peek above \
         the id strings ({strings} B of ids)"
    );
}
