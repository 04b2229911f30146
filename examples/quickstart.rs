//! Quickstart: drive `LocalPeeks` by hand with explicit timestamps.
//!
//! A device peeks a room, renews, receives a new event (fan-out via `peekers`), syncs, lets a
//! second peek expire, and finally joins. Every output is printed. Deterministic and instant:
//! `cargo run --example quickstart`.

use std::time::Duration;

use matrix_peek::{LocalConfig, LocalOutput, LocalPeeks, RoomAccess, SyncDelta, Timestamp};
use ruma_common::{OwnedDeviceId, RoomVersionId, owned_room_id, owned_user_id};

fn drain(step: &str, peeks: &mut LocalPeeks) {
    println!("-- {step}");
    while let Some(output) = peeks.poll_output() {
        match output {
            LocalOutput::Persist(change) => println!("   persist   {change:?}"),
            LocalOutput::Wake { user_id, device_id } => {
                println!("   wake      {user_id} / {device_id}")
            }
            LocalOutput::RoomDemand { room_id, demanded } => {
                println!(
                    "   demand    {room_id}: {}",
                    if demanded { "needed" } else { "no longer needed" }
                )
            }
            LocalOutput::PeekEnded { user_id, device_id, room_id, reason } => {
                println!("   ended     {user_id} / {device_id} in {room_id}: {reason:?}")
            }
            other => println!("   other     {other:?}"),
        }
    }
    match peeks.poll_timeout() {
        Some(at) => println!("   next deadline at {at}"),
        None => println!("   no deadline"),
    }
}

fn show(label: &str, delta: &SyncDelta) {
    println!(
        "   sync {label}: started={:?} peeking={:?} ended={:?} joined={:?} next={}",
        delta.started.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        delta.peeking.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        delta.ended.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        delta.joined.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        delta.next.0,
    );
}

fn main() {
    let config = LocalConfig { lease: Duration::from_secs(60), ..LocalConfig::default() };
    let mut peeks = LocalPeeks::new(config);
    let alice = owned_user_id!("@alice:example.org");
    let phone: OwnedDeviceId = "PHONE".into();
    let lobby = owned_room_id!("!lobby:example.org");
    let news = owned_room_id!("!news:example.org");
    let open = RoomAccess::new(RoomVersionId::V11, true, false);
    let t = Timestamp::from_millis;

    // 1. POST /peek: a lease until t + 60 s.
    let grant =
        peeks.handle_peek(t(1_000), &alice, &phone, &lobby, false, &open).expect("peekable");
    println!("peek granted on {} until {}", grant.room_id, grant.expires_at);
    drain("peek lobby", &mut peeks);

    // 2. The first /sync: the room is `started` (send full state).
    let first = peeks.sync_delta(&alice, &phone, None);
    show("initial", &first);

    // 3. Renew: a later expiry, nothing else (no wake, no new stream entry).
    let renewed =
        peeks.handle_peek(t(30_000), &alice, &phone, &lobby, false, &open).expect("renew");
    println!("renewed until {}", renewed.expires_at);
    drain("renew lobby", &mut peeks);

    // 4. A new event lands in the lobby: wake every peeker's /sync.
    for (user, device) in peeks.peekers(&lobby) {
        println!("new event in {lobby}: wake {user} / {device}");
    }
    let second = peeks.sync_delta(&alice, &phone, Some(first.next));
    show("incremental", &second);

    // 5. A second peek that is never renewed expires exactly at its lease.
    let g = peeks.handle_peek(t(31_000), &alice, &phone, &news, false, &open).expect("peekable");
    drain("peek news", &mut peeks);
    let third = peeks.sync_delta(&alice, &phone, Some(second.next));
    show("after peeking news", &third);
    // The phone keeps renewing the lobby, not the news room.
    peeks.handle_peek(t(89_000), &alice, &phone, &lobby, false, &open).expect("renew");
    drain("renew lobby again", &mut peeks);
    peeks.handle_timeout(g.expires_at);
    drain("lease of news runs out", &mut peeks);
    let fourth = peeks.sync_delta(&alice, &phone, Some(third.next));
    show("after expiry", &fourth);

    // 6. Alice joins the lobby: it moves to `join` without full state.
    peeks.handle_joined(t(95_000), &alice, &lobby);
    drain("alice joins lobby", &mut peeks);
    show("after join", &peeks.sync_delta(&alice, &phone, Some(fourth.next)));
    println!("live peeks left: {}", peeks.len());
}
