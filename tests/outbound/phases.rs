//! A table: each input fed to a room in each phase (two candidates, `a.org` first), with
//! the state it leaves and the requests it sends. Phases: `Backoff` (both candidates failed),
//! `Connecting` (PUT in flight), `RestoredOpening` (a PUT's answer lost in a crash, restored
//! without demand), `Established`, `Renewing` (renewal in flight), `Failing` (a renewal
//! failed, retried later), `Lingering`, `Deleting` (linger over, DELETE in flight).

use matrix_peek::{
    OutboundFailure, OutboundOutcome, OutboundOutput, OutboundRequest, OutboundRequestKind,
    OutboundState,
};

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    Backoff,
    Connecting,
    RestoredOpening,
    Established,
    Renewing,
    Failing,
    Lingering,
    Deleting,
}

const PHASES: [P; 8] = [
    P::Backoff,
    P::Connecting,
    P::RestoredOpening,
    P::Established,
    P::Renewing,
    P::Failing,
    P::Lingering,
    P::Deleting,
];

/// A room in phase `p`, and the request it has in flight, if any.
fn setup(p: P) -> (H, Option<OutboundRequest>) {
    let mut h = H::new();
    let r = room("!r:a.org");
    let put = only_send(h.demand(&r, &["a.org", "b.org"]));
    let pending = match p {
        P::Backoff => {
            let put_b = only_send(h.respond(&put, failed(OutboundFailure::Unreachable)));
            assert!(sends(&h.respond(&put_b, failed(OutboundFailure::Unreachable))).is_empty());
            None
        }
        P::Connecting => Some(put),
        P::RestoredOpening => {
            h.restore();
            None
        }
        _ => {
            h.respond(&put, established(HOUR));
            match p {
                P::Established => None,
                P::Renewing => Some(only_send(h.fire())),
                P::Failing => {
                    let renew = only_send(h.fire());
                    assert!(
                        sends(&h.respond(&renew, failed(OutboundFailure::Unreachable))).is_empty()
                    );
                    None
                }
                P::Lingering => {
                    h.m.handle_no_demand(h.t(), &r);
                    h.drain();
                    None
                }
                _ => {
                    h.m.handle_no_demand(h.t(), &r);
                    h.drain();
                    Some(only_send(h.fire()))
                }
            }
        }
    };
    let want = match p {
        P::Backoff => Some(OutboundState::Backoff),
        P::Connecting => Some(OutboundState::Connecting),
        P::RestoredOpening | P::Lingering => Some(OutboundState::Lingering),
        P::Established => Some(OutboundState::Established),
        P::Renewing | P::Failing => Some(OutboundState::Renewing),
        P::Deleting => Some(OutboundState::Deleting),
    };
    assert_eq!(h.m.state(&r), want, "setup of {p:?}");
    (h, pending)
}

/// `state` after the input, and its requests as `PUT a`, `RENEW a`, `DELETE b`…
fn summary(h: &H, out: &[OutboundOutput]) -> String {
    let state = match h.m.state(&room("!r:a.org")) {
        Some(s) => format!("{s:?}"),
        None => "gone".into(),
    };
    let mut parts = vec![state];
    for s in sends(out) {
        let kind = match s.kind {
            OutboundRequestKind::Peek { .. } => "PUT",
            OutboundRequestKind::Renew => "RENEW",
            OutboundRequestKind::Unpeek => "DELETE",
        };
        parts.push(format!("{kind} {}", &s.server.as_str()[..1]));
    }
    parts.join(", ")
}

type Input = fn(&mut H, &Option<OutboundRequest>) -> Option<Vec<OutboundOutput>>;
/// Any input: a plain `Input`, or an answer to the request in flight.
type AnyInput = dyn Fn(&mut H, &Option<OutboundRequest>) -> Option<Vec<OutboundOutput>>;

fn answer(
    outcome: OutboundOutcome,
) -> impl Fn(&mut H, &Option<OutboundRequest>) -> Option<Vec<OutboundOutput>> {
    move |h, pending| pending.as_ref().map(|req| h.respond(req, outcome.clone()))
}

fn run(input: &AnyInput, want: [&str; 8], name: &str) {
    for (p, want) in PHASES.into_iter().zip(want) {
        let (mut h, pending) = setup(p);
        let got = match input(&mut h, &pending) {
            Some(out) => summary(&h, &out),
            None => "n/a".into(),
        };
        assert_eq!(got, want, "{name} in {p:?}");
    }
}

fn r() -> ruma_common::OwnedRoomId {
    room("!r:a.org")
}

#[test]
fn the_table() {
    let demand: Input = |h, _| Some(h.demand(&r(), &["a.org", "b.org"]));
    run(
        &demand,
        [
            "Backoff",
            "Connecting",
            "Connecting, PUT a",
            "Established",
            "Renewing",
            "Renewing",
            "Established",
            "Connecting, PUT a",
        ],
        "demand",
    );
    let no_demand: Input = |h, _| {
        h.m.handle_no_demand(h.t(), &r());
        Some(h.drain())
    };
    run(
        &no_demand,
        [
            "gone",
            "Connecting",
            "Lingering",
            "Lingering",
            "Renewing",
            "Renewing",
            "Lingering",
            "Deleting",
        ],
        "no demand",
    );
    let joined: Input = |h, _| {
        h.m.handle_server_joined(h.t(), &r());
        Some(h.drain())
    };
    run(
        &joined,
        [
            "gone",
            "Deleting",
            "Deleting, DELETE a",
            "Deleting, DELETE a",
            "Deleting",
            "Deleting, DELETE a",
            "Deleting, DELETE a",
            "Deleting",
        ],
        "server joined",
    );
    let left: Input = |h, _| {
        h.m.handle_server_left(h.t(), &r());
        Some(h.drain())
    };
    run(
        &left,
        [
            "Backoff",
            "Connecting",
            "Lingering",
            "Established",
            "Renewing",
            "Renewing",
            "Lingering",
            "Deleting",
        ],
        "server left",
    );
    let closed: Input = |h, _| {
        let closed = matrix_peek::RoomAccess::new(ruma_common::RoomVersionId::V11, false, false);
        h.m.handle_access_changed(h.t(), &r(), &closed);
        Some(h.drain())
    };
    run(
        &closed,
        [
            "gone",
            "Deleting",
            "Deleting, DELETE a",
            "Deleting, DELETE a",
            "Deleting",
            "Deleting, DELETE a",
            "Deleting, DELETE a",
            "Deleting",
        ],
        "access lost",
    );
    let open: Input = |h, _| {
        h.m.handle_access_changed(h.t(), &r(), &access());
        Some(h.drain())
    };
    run(
        &open,
        [
            "Backoff",
            "Connecting",
            "Lingering",
            "Established",
            "Renewing",
            "Renewing",
            "Lingering",
            "Deleting",
        ],
        "access kept",
    );
    let event: Input = |h, _| {
        h.m.handle_room_event(h.t(), &r());
        Some(h.drain())
    };
    run(
        &event,
        [
            "Backoff",
            "Connecting",
            "Lingering",
            "Established",
            "Renewing",
            "Renewing",
            "Lingering",
            "Deleting",
        ],
        "room event",
    );
    let unreachable: Input = |h, _| {
        h.m.handle_server_unreachable(h.t(), &server("a.org"));
        Some(h.drain())
    };
    run(
        &unreachable,
        [
            "Backoff",
            "Connecting, PUT b",
            "Lingering",
            "Connecting, PUT b, DELETE a",
            "Connecting, PUT b",
            "Connecting, PUT b, DELETE a",
            "Lingering",
            "Deleting",
        ],
        "server unreachable",
    );
    let expired: Input = |h, _| {
        let peek_id = h.store.values().find_map(|rec| match rec {
            matrix_peek::OutboundRecord::Peek(p) => Some(p.peek_id.clone()),
            matrix_peek::OutboundRecord::Retired { peek_id, .. } => Some(peek_id.clone()),
            _ => None,
        });
        let peek_id = peek_id.unwrap_or_else(|| "00000000".into());
        h.m.handle_remote_expired(h.t(), &server("a.org"), &r(), &peek_id);
        Some(h.drain())
    };
    run(
        &expired,
        [
            "Backoff",
            "Connecting",
            "gone",
            // The entry may predate a same-id PUT that re-created the peek: it is DELETEd.
            "Connecting, PUT a, DELETE a",
            // The renewal in flight is awaited, then the peek DELETEd.
            "Connecting, PUT a",
            "Connecting, PUT a, DELETE a",
            "Deleting, DELETE a",
            "Deleting",
        ],
        "expired_peeks",
    );
    run(
        &answer(established(HOUR)),
        ["n/a", "Established", "n/a", "n/a", "Established", "n/a", "n/a", "gone"],
        "answer Established",
    );
    run(
        &answer(failed(OutboundFailure::Unreachable)),
        ["n/a", "Connecting, PUT b", "n/a", "n/a", "Renewing", "n/a", "n/a", "Deleting"],
        "answer Unreachable",
    );
    run(
        &answer(failed(OutboundFailure::Forbidden)),
        ["n/a", "Connecting, PUT b", "n/a", "n/a", "Connecting, PUT b", "n/a", "n/a", "gone"],
        "answer Forbidden",
    );
    run(
        &answer(failed(OutboundFailure::NotFound)),
        ["n/a", "Connecting, PUT b", "n/a", "n/a", "Connecting, PUT a", "n/a", "n/a", "gone"],
        "answer NotFound",
    );
    run(
        &answer(OutboundOutcome::Deleted),
        ["n/a", "Connecting, PUT b, DELETE a", "n/a", "n/a", "Renewing", "n/a", "n/a", "gone"],
        "answer Deleted",
    );
    let spurious: Input = |h, _| {
        h.m.handle_timeout(h.t());
        Some(h.drain())
    };
    run(
        &spurious,
        [
            "Backoff",
            "Connecting",
            "Lingering",
            "Established",
            "Renewing",
            "Renewing",
            "Lingering",
            "Deleting",
        ],
        "spurious timeout",
    );
    let fire: Input = |h, _| h.m.poll_timeout().map(|_| h.fire());
    run(
        &fire,
        [
            "Connecting, PUT a",
            "n/a",
            "Deleting, DELETE a",
            "Renewing, RENEW a",
            "n/a",
            "Renewing, RENEW a",
            "Deleting, DELETE a",
            "n/a",
        ],
        "deadline",
    );
}
