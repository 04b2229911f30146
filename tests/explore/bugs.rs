//! Library bugs the exploration found, each pinned by a minimal test of the fixed behaviour.

use std::time::Duration;

use matrix_peek::{
    ClientPeek, ClientPeekReply, OutboundOutcome, OutboundRequest, OutboundRequestKind, Output,
    Peeking, Residency, Snapshot,
};

use crate::world::{Ctx, P, R1, Scenario, T0, small_config};

/// Drains `peeking`: its `Persist`s applied to `store`, its requests returned.
fn drain(peeking: &mut Peeking, store: &mut Snapshot) -> Vec<OutboundRequest> {
    let mut sent = Vec::new();
    let mut changes = Vec::new();
    while let Some(out) = peeking.poll_output() {
        match out {
            Output::Persist(c) => changes.push(c),
            Output::Send(r) => sent.push(r),
            _ => {}
        }
    }
    *store = store.apply(&changes);
    sent
}

/// **Fixed bug: a stale `expired_peeks` entry forgot a peek that a restore's same-id re-`PUT`
/// re-created** (docs/architecture.md §6.2, §6.7, §8.2; R54, R59).
///
/// A restart re-`PUT`s an `Opening` peek with the **same** peek id. If the resident's first
/// copy of that peek (created by the `PUT` before the crash, whose answer died with the
/// process) lapsed meanwhile, its `expired_peeks` entry can reach us after the re-`PUT`'s
/// `Established` (the `/send` and the HTTP answer travel separately). `on_remote_expired`
/// took the entry for the live peek and forgot it (`Phase::Idle`, no `DELETE`) under the
/// default `RenewEndpoint` style (only `RePut` retired it). The resident kept the re-created
/// peek, and kept relaying the room to us, until it lapsed (`renewal_interval + grace`, 65 min
/// by default); with demand, a second peek was opened beside it. Now the peek is retired and
/// `DELETE`d whatever the renewal style. Found by the exhaustive search (a crash, a re-peek, the lapse, then the
/// answer delivered before the entry). The search also reaches it without a crash: a
/// duplicated `PUT` that arrives after the first copy's peek lapsed re-creates the id, and
/// the `PUT`'s (first) answer comes from the new copy; that needs an answer later than the
/// peek's whole lifetime, which a host with a request timeout never gives.
#[test]
fn a_stale_expired_peeks_entry_does_not_forget_a_peek_a_restore_re_put_re_created() {
    let ctx = Ctx::new(small_config(), Scenario::QUIET);
    let (p_name, r1_name) = (&ctx.servers[P], &ctx.servers[R1]);
    let peek = || ClientPeek {
        user_id: ctx.user.clone(),
        device_id: ctx.devices[0].clone(),
        room_id: ctx.room.clone(),
        joined: false,
        residency: Residency::Remote,
        via: vec![r1_name.clone()],
    };
    let (mut p, mut p_store) =
        (Peeking::restore(T0, ctx.config.clone(), Snapshot::default()), Snapshot::default());
    let mut r1 = Peeking::restore(T0, ctx.config.clone(), Snapshot::default());

    // The device peeks: P PUTs peek id X to R1, which grants it; the answer dies with P.
    assert!(matches!(p.handle_client_peek(T0, peek()), ClientPeekReply::Pending(_)));
    let put = drain(&mut p, &mut p_store).pop().expect("a PUT");
    let OutboundRequestKind::Peek { ver } = &put.kind else { panic!("a PUT: {put:?}") };
    r1.handle_inbound_peek(T0, p_name, &ctx.room, &put.peek_id, ver, Some(&ctx.access))
        .expect("granted");
    while r1.poll_output().is_some() {}

    // P restarts and the device peeks again: the Opening peek is re-PUT with the same id.
    let mut p = Peeking::restore(T0, ctx.config.clone(), p_store.clone());
    drain(&mut p, &mut p_store);
    assert!(matches!(p.handle_client_peek(T0, peek()), ClientPeekReply::Pending(_)));
    let reput = drain(&mut p, &mut p_store).pop().expect("a re-PUT");
    assert_eq!(reput.peek_id, put.peek_id, "a restore re-PUTs with the same id");

    // R1's first copy lapses before the re-PUT arrives: an expired_peeks entry goes out …
    let lapse = r1.poll_timeout().expect("the peek's deadline");
    r1.handle_timeout(lapse);
    assert!(std::iter::from_fn(|| r1.poll_output()).any(|o| matches!(o, Output::Expired { .. })));
    // … then the re-PUT re-creates the peek, and its answer reaches P first.
    let grant = r1
        .handle_inbound_peek(lapse, p_name, &ctx.room, &reput.peek_id, ver, Some(&ctx.access))
        .expect("granted again");
    assert!(!grant.refreshed, "a new peek under the old id");
    let established = OutboundOutcome::Established {
        renewal_interval: grant.renewal_interval,
        access: ctx.access.clone(),
    };
    p.handle_response(lapse, reput.id, established);
    drain(&mut p, &mut p_store);
    assert!(p.outbound().granted(&ctx.room).is_some(), "P holds the re-created peek");

    // The stale entry arrives. R1 still holds the peek P knows as granted: P must keep it, or
    // retire and DELETE it; it must not forget it and open a second peek beside it.
    let now = lapse.saturating_add(Duration::from_millis(1));
    p.handle_remote_expired(now, r1_name, &ctx.room, &reput.peek_id);
    let sent = drain(&mut p, &mut p_store);
    assert!(r1.inbound().is_peeking(p_name, &ctx.room, &reput.peek_id));
    let keeps = p.outbound().granted(&ctx.room).is_some();
    let deletes =
        sent.iter().any(|r| r.peek_id == reput.peek_id && r.kind == OutboundRequestKind::Unpeek);
    assert!(
        keeps || deletes,
        "P forgot peek {} that R1 still holds (R1 relays to P until it lapses); it sent {sent:?}",
        reput.peek_id
    );
}
