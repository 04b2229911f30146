//! The heap a peek response takes to parse: worst-case bodies for every collection, through
//! every reader (`AnyPeekResponse`, `LegacyPeekResponse`, `FederationPeekResponse` and ruma's
//! `IncomingResponse` for it), must never need more than about twice the body's size
//! (docs/architecture.md §9.5).
//!
//! Its own test binary (`wire_heap` in Cargo.toml): the counting allocator is global, so no
//! other test may allocate while it measures. The count is `stats_alloc`'s `bytes_allocated`
//! over the parse: every allocation and every growth of a reallocation, never minus what was
//! freed, so it is at least the peak heap the parse needed.
//!
//! Before the collections were kept as text (`Vec<Box<RawValue>>`, `Vec<OwnedEventId>`,
//! `BTreeMap`), a 16 MiB `state` array of `{}` took 8.67 × its size, a
//! `latest_event_state_ids` map of `"$n":[]` 7.83 × and a `common_state_ids` list of `"$a"`
//! 4.40 ×.

use std::alloc::System;

use matrix_peek::wire::{
    AnyPeekResponse, FederationPeekResponse, LegacyPeekResponse, MAX_EXTREMITIES,
    MAX_PDUS_PER_LIST, MAX_STATE_IDS, WireError,
};
use ruma_common::api::IncomingResponseExt;
use ruma_common::exports::http;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The most a parse may take, as a multiple of the body's size ("about twice").
const MAX_RATIO: f64 = 2.0;

/// Slack for the fixed costs of a parse (error strings, `serde_json`'s scratch buffer).
const SLACK: usize = 64 * 1024;

const MIB: usize = 1 << 20;

/// `{"renewal_interval":1,<fields>}`.
fn body(fields: &[(&str, String)]) -> Vec<u8> {
    let mut b = String::from(r#"{"renewal_interval":1"#);
    for (key, value) in fields {
        b.push_str(&format!(r#","{key}":{value}"#));
    }
    b.push('}');
    b.into_bytes()
}

/// A JSON array of `n` copies of `item`.
fn array(item: &str, n: usize) -> String {
    let mut a = String::with_capacity(n * (item.len() + 1) + 2);
    a.push('[');
    for i in 0..n {
        if i > 0 {
            a.push(',');
        }
        a.push_str(item);
    }
    a.push(']');
    a
}

/// `n` copies of `item` to fill about `bytes`.
fn array_of_size(item: &str, bytes: usize) -> String {
    array(item, bytes / (item.len() + 1))
}

/// A list of `n` distinct short event ids (`"$0"`, `"$1"`, …).
fn ids(n: usize, from: usize) -> String {
    let items: Vec<String> = (from..from + n).map(|i| format!("\"${i}\"")).collect();
    format!("[{}]", items.join(","))
}

/// A map of `keys` extremities sharing `total` short ids among them.
fn id_map(keys: usize, total: usize) -> String {
    let per = total / keys;
    let entries: Vec<String> =
        (0..keys).map(|k| format!("\"$x{k}\":{}", ids(per, k * per))).collect();
    format!("{{{}}}", entries.join(","))
}

/// Runs `parse` on `body`; returns the bytes it allocated and whether it succeeded.
fn measure<T, E>(body: &[u8], parse: impl FnOnce(&[u8]) -> Result<T, E>) -> (usize, Result<T, E>) {
    let region = Region::new(GLOBAL);
    let parsed = parse(body);
    (region.change().bytes_allocated, parsed)
}

fn ruma_msc(body: &[u8]) -> Result<FederationPeekResponse, String> {
    FederationPeekResponse::try_from_http_response(http::Response::new(body))
        .map_err(|e| e.to_string())
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    /// The MSC's shape: read by `AnyPeekResponse`, `FederationPeekResponse` and ruma.
    Msc,
    /// Dendrite's or palpo's: read by `AnyPeekResponse` and `LegacyPeekResponse`.
    Legacy,
}

/// A body of `shape` with `fields`, the MSC shape's other lists empty.
fn shaped(shape: Shape, fields: &[(&str, String)]) -> Vec<u8> {
    let mut all: Vec<(&str, String)> = fields.to_vec();
    if shape == Shape::Msc {
        for (key, empty) in
            [("latest_event_state_ids", "{}"), ("common_state_ids", "[]"), ("events", "[]")]
        {
            if !all.iter().any(|(k, _)| *k == key) {
                all.push((key, empty.into()));
            }
        }
    }
    body(&all)
}

type Reader = (&'static str, fn(&[u8]) -> Result<(), String>);

const MSC_READERS: [Reader; 3] = [
    ("AnyPeekResponse", |b| AnyPeekResponse::from_slice(b).map(drop).map_err(|e| e.to_string())),
    ("FederationPeekResponse", |b| {
        FederationPeekResponse::from_slice(b).map(drop).map_err(|e| e.to_string())
    }),
    ("ruma IncomingResponse", |b| ruma_msc(b).map(drop)),
];

const LEGACY_READERS: [Reader; 2] = [
    ("AnyPeekResponse", |b| AnyPeekResponse::from_slice(b).map(drop).map_err(|e| e.to_string())),
    ("LegacyPeekResponse", |b| {
        LegacyPeekResponse::from_slice(b).map(drop).map_err(|e| e.to_string())
    }),
];

#[test]
fn parsing_never_takes_more_than_twice_the_body() {
    use Shape::{Legacy, Msc};
    let pdu = format!(r#"{{"type":"m.room.message","content":{{"body":"{}"}}}}"#, "x".repeat(900));
    let many_empty: Vec<String> = (0..16 * MIB / 12).map(|i| format!("\"${i}\":[]")).collect();
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        // Over a cap: rejected, and the rejection is cheap too.
        (
            "16 MiB state of {} (5.6 M, over the cap)",
            shaped(Legacy, &[("state", array_of_size("{}", 16 * MIB))]),
            false,
        ),
        (
            "state of {} at the cap",
            shaped(Legacy, &[("state", array("{}", MAX_PDUS_PER_LIST))]),
            true,
        ),
        (
            "state and auth_chain of {} at the cap",
            shaped(
                Legacy,
                &[
                    ("state", array("{}", MAX_PDUS_PER_LIST)),
                    ("auth_chain", array("{}", MAX_PDUS_PER_LIST)),
                ],
            ),
            true,
        ),
        (
            "palpo: messages of {} at the cap, and a latest_event",
            shaped(
                Legacy,
                &[
                    ("state", "[]".into()),
                    ("latest_event", "{}".into()),
                    ("messages", array("{}", MAX_PDUS_PER_LIST)),
                ],
            ),
            true,
        ),
        (
            "Dendrite: one 16 MiB latest_event",
            shaped(
                Legacy,
                &[
                    ("state", "[]".into()),
                    ("latest_event", format!(r#"{{"a":"{}"}}"#, "x".repeat(16 * MIB))),
                ],
            ),
            true,
        ),
        (
            "16 MiB events of {} (over the cap)",
            shaped(Msc, &[("events", array_of_size("{}", 16 * MIB))]),
            false,
        ),
        (
            "events of {} at the cap",
            shaped(Msc, &[("events", array("{}", MAX_PDUS_PER_LIST))]),
            true,
        ),
        ("16 MiB of 1 KiB PDUs", shaped(Msc, &[("events", array_of_size(&pdu, 16 * MIB))]), true),
        (
            "common_state_ids of short ids at the cap",
            shaped(Msc, &[("common_state_ids", ids(MAX_STATE_IDS, 0))]),
            true,
        ),
        (
            "latest_event_state_ids: the most extremities and ids",
            shaped(Msc, &[("latest_event_state_ids", id_map(MAX_EXTREMITIES, MAX_STATE_IDS))]),
            true,
        ),
        (
            "latest_event_state_ids: 16 MiB of extremities with empty lists (over the cap)",
            shaped(Msc, &[("latest_event_state_ids", format!("{{{}}}", many_empty.join(",")))]),
            false,
        ),
        (
            "all the MSC lists at their caps",
            shaped(
                Msc,
                &[
                    ("latest_event_state_ids", id_map(MAX_EXTREMITIES, MAX_STATE_IDS)),
                    ("common_state_ids", ids(MAX_STATE_IDS, MAX_STATE_IDS)),
                    ("events", array("{}", MAX_PDUS_PER_LIST)),
                ],
            ),
            true,
        ),
    ];
    drop(many_empty);
    let mut report = Vec::new();
    let mut worst: f64 = 0.0;
    for (name, body, accepted) in &cases {
        let shape = if body.windows(7).any(|w| w == b"events\"") { Msc } else { Legacy };
        let readers: &[Reader] = if shape == Msc { &MSC_READERS } else { &LEGACY_READERS };
        for (reader, parse) in readers {
            let (allocated, parsed) = measure(body, parse);
            let ratio = allocated as f64 / body.len() as f64;
            worst = worst.max(ratio);
            report.push(format!(
                "{name} ({} B) via {reader}: {ratio:.2}x ({})",
                body.len(),
                if parsed.is_ok() { "parsed" } else { "rejected" }
            ));
            assert_eq!(parsed.is_ok(), *accepted, "{name} via {reader}: {parsed:?}");
            assert!(
                allocated as f64 <= MAX_RATIO * body.len() as f64 + SLACK as f64,
                "{name} via {reader}: {allocated} B for a body of {} B ({ratio:.2}x)",
                body.len()
            );
        }
        // Over a cap, the error says which.
        if let Err(e) = AnyPeekResponse::from_slice(body) {
            assert!(matches!(e, WireError::TooMany { .. }), "{name}: {e}");
        }
    }
    println!("{}\nworst: {worst:.2}x", report.join("\n"));
}
