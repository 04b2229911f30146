//! [`ScriptedTransport`]: a [`PeekTransport`] that answers from a script.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ruma_common::{OwnedServerName, RoomVersionId, ServerName};

use super::ManualClock;
use crate::RoomAccess;
use crate::outbound::{OutboundFailure, OutboundOutcome, OutboundRequest, OutboundRequestKind};
use crate::traits::{Clock, PeekTransport};

/// Which of the three MSC2444 calls a script entry answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// `PUT …/peek`.
    Peek,
    /// `POST …/renew`.
    Renew,
    /// `DELETE …/peek`.
    Unpeek,
}

impl TransportKind {
    fn of(kind: &OutboundRequestKind) -> Self {
        match kind {
            OutboundRequestKind::Peek { .. } => TransportKind::Peek,
            OutboundRequestKind::Renew => TransportKind::Renew,
            OutboundRequestKind::Unpeek => TransportKind::Unpeek,
        }
    }
}

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer at once.
    Now(OutboundOutcome),
    /// Answer after `Duration` on the transport's [`ManualClock`] (at once without a clock).
    After(Duration, OutboundOutcome),
    /// Never answer (the driver's request timeout must deal with it).
    Never,
}

#[derive(Debug, Default)]
struct Script {
    queues: HashMap<(OwnedServerName, TransportKind), VecDeque<Reply>>,
    defaults: HashMap<TransportKind, Reply>,
    sent: Vec<OutboundRequest>,
}

/// A scripted federation: replies are queued per (server, call kind) and consumed in order;
/// when a queue is empty the per-kind default answers (`Peek` → established on a
/// world_readable v10 room with a 1 h interval, `Renew` → renewed for 1 h, `Unpeek` →
/// deleted). Every request is recorded. Clones share the script.
#[derive(Debug, Clone, Default)]
pub struct ScriptedTransport {
    script: Arc<Mutex<Script>>,
    clock: Option<ManualClock>,
    outstanding: Arc<AtomicUsize>,
    max_outstanding: Arc<AtomicUsize>,
}

impl ScriptedTransport {
    /// A transport with the default answers and no clock (delays answer at once).
    pub fn new() -> Self {
        Self::default()
    }

    /// A transport whose [`Reply::After`] delays run on `clock`.
    pub fn with_clock(clock: ManualClock) -> Self {
        ScriptedTransport { clock: Some(clock), ..Self::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        // The script is plain data; a panic elsewhere leaves it usable.
        self.script.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `reply` for the next `kind` request to `server`.
    pub fn push(&self, server: &ServerName, kind: TransportKind, reply: Reply) -> &Self {
        self.lock().queues.entry((server.to_owned(), kind)).or_default().push_back(reply);
        self
    }

    /// Sets the answer for `kind` when nothing is queued.
    pub fn set_default(&self, kind: TransportKind, reply: Reply) -> &Self {
        self.lock().defaults.insert(kind, reply);
        self
    }

    /// Every request sent so far, in order.
    pub fn sent(&self) -> Vec<OutboundRequest> {
        self.lock().sent.clone()
    }

    /// How many requests of `kind` were sent so far.
    pub fn count(&self, kind: TransportKind) -> usize {
        self.lock().sent.iter().filter(|r| TransportKind::of(&r.kind) == kind).count()
    }

    /// Requests sent and not answered yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }

    /// The most requests that were ever outstanding at once.
    pub fn max_outstanding(&self) -> usize {
        self.max_outstanding.load(Ordering::SeqCst)
    }

    fn default_reply(kind: TransportKind) -> Reply {
        Reply::Now(match kind {
            TransportKind::Peek => OutboundOutcome::Established {
                renewal_interval: Duration::from_secs(3600),
                access: RoomAccess::new(RoomVersionId::V10, true, false),
            },
            TransportKind::Renew => {
                OutboundOutcome::Renewed { renewal_interval: Some(Duration::from_secs(3600)) }
            }
            TransportKind::Unpeek => OutboundOutcome::Deleted,
        })
    }
}

struct Outstanding(Arc<AtomicUsize>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl PeekTransport for ScriptedTransport {
    async fn send(&self, request: OutboundRequest) -> OutboundOutcome {
        let kind = TransportKind::of(&request.kind);
        let reply = {
            let mut script = self.lock();
            script.sent.push(request.clone());
            let queued = script
                .queues
                .get_mut(&(request.server.to_owned_id(), kind))
                .and_then(VecDeque::pop_front);
            queued
                .or_else(|| script.defaults.get(&kind).cloned())
                .unwrap_or_else(|| Self::default_reply(kind))
        };
        let now_outstanding = self.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_outstanding.fetch_max(now_outstanding, Ordering::SeqCst);
        let _guard = Outstanding(Arc::clone(&self.outstanding));
        match reply {
            Reply::Now(outcome) => outcome,
            Reply::After(delay, outcome) => {
                if let Some(clock) = &self.clock {
                    let at = clock.now().saturating_add(delay);
                    clock.sleep_until(at).await;
                }
                outcome
            }
            Reply::Never => {
                futures::future::pending::<()>().await;
                OutboundOutcome::Failed(OutboundFailure::Unreachable)
            }
        }
    }
}
