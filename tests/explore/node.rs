//! One server of the world ([`Node`]: a `Peeking`, its store, up or down), the inputs it takes
//! ([`Call`]), and the memo of its transitions ([`Memo`]).
//!
//! A server is a deterministic machine: what it becomes, and what it outputs and answers,
//! depends only on its state, the input and `now`. So each distinct (server state, input,
//! `now`) is computed once; every other world that hands the same server the same input
//! shares the result (the `Arc<Node>` itself). Most transitions of the search are such
//! repeats (commuting actions reach the same server state by different paths).

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use matrix_peek::{
    ClientPeek, ClientPeekReply, InboundGrant, InboundPeekError, OutboundOutcome, OutboundRequest,
    OutboundRequestKind, Output, PeekError, Peeking, PeekingConfig, RequestId, RoomAccess,
    Snapshot, Timestamp,
};
use ruma_common::{RoomId, ServerName};

/// A server: its coordinator, the store its `Persist`s built, whether it is up, and its
/// digest.
#[derive(Clone)]
pub struct Node {
    /// The coordinator.
    pub peeking: Peeking,
    /// Every `Persist` applied in order (`Snapshot::apply`, records sorted by key).
    pub store: Snapshot,
    /// Whether it is up (only `R1` ever goes down).
    pub up: bool,
    /// See [`node_digest`].
    pub digest: u128,
}

impl Node {
    /// A server with nothing, restored from an empty store at `now`.
    pub fn fresh(now: Timestamp, config: &PeekingConfig, room: &RoomId) -> Node {
        let mut node = Node {
            peeking: Peeking::restore(now, config.clone(), Snapshot::default()),
            store: Snapshot::default(),
            up: true,
            digest: 0,
        };
        let outputs = node.drain();
        assert!(outputs.is_empty(), "a fresh server has nothing to say: {outputs:?}");
        node.digest = node_digest(&node.peeking, &node.store, node.up, room);
        node
    }

    /// Drains the outputs: `Persist`s go to the store (one batch), the rest is returned.
    fn drain(&mut self) -> Vec<Output> {
        let mut changes = Vec::new();
        let mut outputs = Vec::new();
        while let Some(out) = self.peeking.poll_output() {
            match out {
                Output::Persist(change) => changes.push(change),
                other => outputs.push(other),
            }
        }
        if !changes.is_empty() {
            self.store = self.store.apply(&changes);
        }
        outputs
    }
}

/// One input to a server, at the world's `now`.
#[derive(Debug)]
pub enum Call<'a> {
    /// `handle_client_peek`.
    ClientPeek(&'a ClientPeek),
    /// `handle_client_unpeek` of that peek's user, device and room.
    ClientUnpeek(&'a ClientPeek),
    /// `handle_timeout`.
    Timeout,
    /// A crash: `Peeking::restore` from the store.
    Restore,
    /// The server goes down (its state is kept).
    Down,
    /// The server comes back and fires what fell due meanwhile.
    Up,
    /// `handle_response` (the peeking server).
    Response(RequestId, &'a OutboundOutcome),
    /// `handle_remote_expired` from the given resident (the peeking server).
    RemoteExpired(&'a ServerName, &'a str),
    /// `handle_remote_event` (the peeking server).
    RemoteEvent,
    /// A federation request from `origin`, routed as a host does (a resident).
    Request { origin: &'a ServerName, request: &'a OutboundRequest, access: &'a RoomAccess },
}

/// What a call returned, besides the outputs.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Nothing to report.
    None,
    /// The client peek's immediate answer.
    ClientPeek(ClientPeekReply),
    /// The client unpeek's answer.
    ClientUnpeek(Result<(), PeekError>),
    /// A `PUT` or renew: the grant or the error.
    Grant(Result<InboundGrant, InboundPeekError>),
    /// A `DELETE`.
    Unpeek(Result<(), InboundPeekError>),
    /// `handle_response`: whether the answer was taken (its request was in flight there;
    /// answers to forgotten, stale or duplicate ids are ignored).
    Taken(bool),
}

/// The result of a call, shared by every world that makes it.
pub struct Transition {
    /// The server afterwards.
    pub node: Arc<Node>,
    /// Its outputs, `Persist`s excepted (applied to its store).
    pub outputs: Vec<Output>,
    /// What the call returned.
    pub reply: Reply,
}

/// (server digest, call, `now`) → [`Transition`], in two generations: the search rotates them
/// at every depth, so a result is kept while worlds two steps apart can still ask for it, and
/// memory stays bounded.
#[derive(Default)]
pub struct Memo {
    maps: Mutex<[HashMap<u128, Arc<Transition>>; 2]>,
    /// Calls made.
    pub lookups: AtomicUsize,
    /// Calls answered from the memo.
    pub hits: AtomicUsize,
}

impl Memo {
    /// Starts a new generation, forgetting the oldest.
    pub fn rotate(&self) {
        let mut maps = self.maps.lock().expect("no thread panicked");
        maps[1] = std::mem::take(&mut maps[0]);
    }

    fn get(&self, key: u128) -> Option<Arc<Transition>> {
        let mut maps = self.maps.lock().expect("no thread panicked");
        if let Some(t) = maps[0].get(&key) {
            return Some(t.clone());
        }
        let t = maps[1].get(&key)?.clone();
        maps[0].insert(key, t.clone());
        Some(t)
    }

    fn put(&self, key: u128, t: Arc<Transition>) {
        self.maps.lock().expect("no thread panicked")[0].insert(key, t);
    }

    /// `node` after `call` at `now`: from the memo, or computed (and remembered).
    pub fn call(
        &self,
        node: &Arc<Node>,
        call: &Call<'_>,
        now: Timestamp,
        config: &PeekingConfig,
        room: &RoomId,
    ) -> Arc<Transition> {
        let mut key = Digest::new();
        write!(key, "{:x}\u{1}{call:?}\u{1}{now:?}", node.digest).expect("writing to a string");
        let key = key.finish();
        self.lookups.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = self.get(key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return t;
        }
        let mut next = Node::clone(node);
        let before = next.peeking.outbound().in_flight();
        let reply = run(&mut next, call, now, config, room);
        let outputs = next.drain();
        let reply = taken(call, reply, before, &next, &outputs);
        next.digest = node_digest(&next.peeking, &next.store, next.up, room);
        let t = Arc::new(Transition { node: Arc::new(next), outputs, reply });
        self.put(key, t.clone());
        t
    }
}

/// For a response: whether it was taken, i.e. its request was in flight there (one fewer in
/// flight afterwards, plus any sent).
fn taken(call: &Call<'_>, reply: Reply, before: usize, node: &Node, outputs: &[Output]) -> Reply {
    if let Call::Response(..) = call {
        let sent = outputs.iter().filter(|o| matches!(o, Output::Send(_))).count();
        return Reply::Taken(node.peeking.outbound().in_flight() + 1 == before + sent);
    }
    reply
}

fn run(
    node: &mut Node,
    call: &Call<'_>,
    now: Timestamp,
    config: &PeekingConfig,
    room: &RoomId,
) -> Reply {
    let peeking = &mut node.peeking;
    match call {
        Call::ClientPeek(peek) => {
            Reply::ClientPeek(peeking.handle_client_peek(now, (*peek).clone()))
        }
        Call::ClientUnpeek(peek) => Reply::ClientUnpeek(peeking.handle_client_unpeek(
            now,
            &peek.user_id,
            &peek.device_id,
            &peek.room_id,
        )),
        Call::Timeout => {
            peeking.handle_timeout(now);
            Reply::None
        }
        Call::Restore => {
            node.peeking = Peeking::restore(now, config.clone(), node.store.clone());
            Reply::None
        }
        Call::Down => {
            node.up = false;
            Reply::None
        }
        Call::Up => {
            node.up = true;
            peeking.handle_timeout(now);
            Reply::None
        }
        Call::Response(id, outcome) => {
            peeking.handle_response(now, *id, (*outcome).clone());
            Reply::None // see `Memo::call`
        }
        Call::RemoteExpired(server, peek_id) => {
            peeking.handle_remote_expired(now, server, room, peek_id);
            Reply::None
        }
        Call::RemoteEvent => {
            peeking.handle_remote_event(now, room);
            Reply::None
        }
        Call::Request { origin, request, access } => {
            let peek_id = request.peek_id.as_str();
            match &request.kind {
                OutboundRequestKind::Peek { ver } => Reply::Grant(peeking.handle_inbound_peek(
                    now,
                    origin,
                    room,
                    peek_id,
                    ver,
                    Some(access),
                )),
                OutboundRequestKind::Renew => {
                    Reply::Grant(peeking.handle_inbound_renew(now, origin, room, peek_id))
                }
                _ => Reply::Unpeek(peeking.handle_inbound_unpeek(now, origin, room, peek_id)),
            }
        }
    }
}

/// A 128-bit digest of text: everything is written into one string (a plain copy), then
/// hashed eight bytes at a time through two lanes of folded 64×64→128-bit multiplications
/// (the mixing of wyhash) with a final avalanche. Not cryptographic, and it need not be: the
/// inputs are the explorer's own states. Two different states collide with odds of about
/// n² / 2¹²⁸ for n states. (The standard SipHash runs byte by byte in the test's unoptimised
/// build and cost more than the whole transition.)
#[derive(Default)]
pub struct Digest(String);

impl Digest {
    /// An empty digest.
    pub fn new() -> Digest {
        Digest(String::with_capacity(4096))
    }

    /// The hash of everything written.
    pub fn finish(&self) -> u128 {
        fn mum(a: u64, b: u64) -> u64 {
            let p = u128::from(a) * u128::from(b);
            (p as u64) ^ ((p >> 64) as u64)
        }
        fn avalanche(mut h: u64) -> u64 {
            h ^= h >> 33;
            h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
            h ^= h >> 33;
            h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            h ^ (h >> 33)
        }
        let bytes = self.0.as_bytes();
        let len = bytes.len() as u64;
        let (mut a, mut b) = (0x243f_6a88_85a3_08d3 ^ len, 0x1319_8a2e_0370_7344 ^ len);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            a = mum(a ^ w, 0xa076_1d64_78bd_642f);
            b = mum(b ^ w.rotate_left(29), 0xe703_7ed1_a0b4_28db) ^ a;
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        let w = u64::from_le_bytes(tail);
        a = mum(a ^ w ^ 0x8ebc_6af0_9c88_c6e3, 0xa076_1d64_78bd_642f);
        b = mum(b ^ w.rotate_left(29) ^ 0x5899_65cc_7537_4cc3, 0xe703_7ed1_a0b4_28db) ^ a;
        (u128::from(avalanche(a)) << 64) | u128::from(avalanche(b))
    }
}

impl fmt::Write for Digest {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push_str(s);
        Ok(())
    }
}

/// The digest of one server: what determines its future, as cheaply as it can be printed.
///
/// * `{:?}` of the coordinator: its own fields, every machine's timers, counters, clocks and
///   requests in flight, and the local and inbound machines' scalar state. The `slab` crate
///   prints a slab as `Slab { len, cap }` in this form, hiding its entries, so:
/// * `{:#?}` of the outbound machine when it tracks a room (the alternate form prints slab
///   entries: each room's demand, phase, lease, candidates and their backoff, retired peeks,
///   pacer, activity). It is about ten times slower than `{:?}`, hence only there;
/// * the inbound machine's peeks through `records()`, and its relay order (`destinations`);
/// * the local machine's entries through the store, which holds every one of them (each
///   change is persisted; the restore check confirms the store answers `/sync` the same), and
///   its fan-out order (`peekers`);
/// * the store, and whether the server is up.
///
/// `cap: N` is dropped from the `{:?}` form: a cloned slab has a smaller capacity and the same
/// state.
pub fn node_digest(peeking: &Peeking, store: &Snapshot, up: bool, room: &RoomId) -> u128 {
    let mut d = Digest::new();
    let plain = format!("{peeking:?}");
    let mut rest = plain.as_str();
    while let Some(at) = rest.find("cap: ") {
        d.write_str(&rest[..at]).expect("writing to a string");
        rest = rest[at + 5..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    d.write_str(rest).expect("writing to a string");
    if !peeking.outbound().is_empty() {
        write!(d, "\u{1}{:#?}", peeking.outbound()).expect("writing to a string");
    }
    let mut inbound: Vec<String> = peeking.inbound().records().map(|r| format!("{r:?}")).collect();
    inbound.sort_unstable();
    let destinations: Vec<&ServerName> = peeking.destinations(room).collect();
    let peekers: Vec<_> = peeking.peekers(room).collect();
    write!(d, "\u{1}{inbound:?}\u{1}{destinations:?}\u{1}{peekers:?}\u{1}{store:?}\u{1}{up}")
        .expect("writing to a string");
    d.finish()
}
