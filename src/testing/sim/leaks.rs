//! Leaks: inbound peeks that outlived the window in which they may exist without their
//! origin accounting for them ([`Sim::leak_report`], [`Sim::leaks`], [`Sim::assert_no_leaks`]).
//!
//! The simulator follows, as stores apply them, which peeks each origin's store accounts for
//! (its room's `Peek` record, or a `Retired` record owed a `DELETE`), and since when each
//! inbound peek a resident granted has not been accounted for.

use std::collections::HashMap;
use std::fmt;

use ruma_common::{OwnedRoomId, OwnedServerName, RoomId, ServerName};

use super::Sim;
use super::types::fmt_elapsed;
use crate::outbound::{OutboundChange, OutboundKey, OutboundRecord};
use crate::{PeekId, Timestamp};

/// (origin, resident, room, peek id).
type PeekKey = (OwnedServerName, OwnedServerName, OwnedRoomId, String);

/// Which peeks the origins' stores account for, and since when granted ones have not been.
#[derive(Debug, Default)]
pub(super) struct Accounting {
    /// The peek each origin's stored outbound record names, by (origin, record key).
    records: HashMap<(OwnedServerName, OutboundKey), PeekKey>,
    /// How many stored records name each peek (one moves from its room record to a retired
    /// one, briefly named by both).
    counts: HashMap<PeekKey, u32>,
    /// Since when each granted peek has not been accounted for.
    since: HashMap<PeekKey, Timestamp>,
}

fn key(origin: &ServerName, resident: &ServerName, room: &RoomId, peek_id: &str) -> PeekKey {
    (origin.to_owned(), resident.to_owned(), room.to_owned(), peek_id.to_owned())
}

impl Accounting {
    /// `resident` granted (or refreshed) `origin`'s peek at `now`.
    pub(super) fn granted(
        &mut self,
        origin: &ServerName,
        resident: &ServerName,
        room: &RoomId,
        peek_id: &str,
        now: Timestamp,
    ) {
        let key = key(origin, resident, room, peek_id);
        if !self.counts.contains_key(&key) {
            self.since.entry(key).or_insert(now);
        }
    }

    /// The resident no longer holds the peek.
    pub(super) fn ended(
        &mut self,
        origin: &ServerName,
        resident: &ServerName,
        room: &RoomId,
        peek_id: &str,
    ) {
        self.since.remove(&key(origin, resident, room, peek_id));
    }
}

/// An inbound peek that its origin's store does not account for. From [`Sim::leak_report`]; a
/// snapshot that does not change once taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnaccountedPeek {
    /// The server holding the peek.
    pub resident: OwnedServerName,
    /// The peeking server.
    pub origin: OwnedServerName,
    /// The room.
    pub room_id: OwnedRoomId,
    /// The peek id.
    pub peek_id: PeekId,
    /// Since when the origin's store has not accounted for it: when it removed the last
    /// record naming the peek, or when the resident granted a peek the store never named.
    pub since: Timestamp,
    /// The latest time the resident may still hold it: `since` + the resident's
    /// `InboundConfig::renewal_interval` + `grace` + the longest one-way latency (a renewal
    /// already on the wire may still refresh it).
    pub deadline: Timestamp,
}

/// Every inbound peek whose origin does not account for it, split by whether it is still
/// within its window. From [`Sim::leak_report`]; a snapshot that does not change once taken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeakReport {
    /// When it was taken.
    pub at: Timestamp,
    /// Legitimate: within their window, or held by a resident that is down (whose timers do
    /// not run; it lapses them as it comes back up). Each lapses by its `deadline`.
    pub lapsing: Vec<UnaccountedPeek>,
    /// Leaks: held by an up resident after their `deadline`.
    pub leaked: Vec<UnaccountedPeek>,
}

impl LeakReport {
    /// Whether nothing leaked (peeks within their window are fine).
    pub fn is_clean(&self) -> bool {
        self.leaked.is_empty()
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.at;
        writeln!(f, "{} leaked inbound peek(s):", self.leaked.len())?;
        for p in &self.leaked {
            writeln!(
                f,
                "  {} holds {}'s peek {} on {}: unaccounted for by its origin for {}, \
                 past its deadline by {}",
                p.resident,
                p.origin,
                p.peek_id,
                p.room_id,
                fmt_elapsed(at.saturating_duration_since(p.since)),
                fmt_elapsed(at.saturating_duration_since(p.deadline)),
            )?;
        }
        writeln!(f, "{} lapsing legitimately:", self.lapsing.len())?;
        for p in &self.lapsing {
            let (resident, origin, id, room) = (&p.resident, &p.origin, &p.peek_id, &p.room_id);
            let since = fmt_elapsed(at.saturating_duration_since(p.since));
            if p.deadline < at {
                // Only a resident that is down holds one past its deadline without leaking it.
                writeln!(
                    f,
                    "  {resident} (down) holds {origin}'s peek {id} on {room}: unaccounted for \
                     {since}, lapses as {resident} comes back up",
                )?;
            } else {
                let left = fmt_elapsed(p.deadline.saturating_duration_since(at));
                writeln!(
                    f,
                    "  {resident} holds {origin}'s peek {id} on {room}: unaccounted for {since}, \
                     lapses within {left}",
                )?;
            }
        }
        Ok(())
    }
}

impl Sim {
    /// Every inbound peek held anywhere whose origin's store does not account for it (neither
    /// its room's `Peek` record nor a `Retired` record owed a `DELETE` names it), split into
    /// those still within their window and real leaks.
    ///
    /// Such a peek exists legitimately for a while: an answer lost on the wire leaves the
    /// resident holding a peek the origin dropped, and a `DELETE` given up after
    /// `max_delete_attempts` leaves it to lapse (R43). Once the origin stops accounting for
    /// it nobody renews it, so the resident lapses it within its `renewal_interval` + `grace`
    /// (plus a request already on the wire): the [`UnaccountedPeek::deadline`]. A peek still
    /// held by an up resident after it is a leak: the resident failed to lapse it, or the
    /// origin keeps renewing a peek it has no record of (see
    /// [`drop_store_writes`](Self::drop_store_writes)).
    ///
    /// Meaningful at any moment. Changes as stores are written, peeks granted and ended, the
    /// clock advances and servers go down or up.
    pub fn leak_report(&self) -> LeakReport {
        let mut report = LeakReport { at: self.now, lapsing: Vec::new(), leaked: Vec::new() };
        let transit = self.config.latency.1;
        for (resident, node) in &self.nodes {
            let inbound = &node.config.inbound;
            let window =
                inbound.renewal_interval.saturating_add(inbound.grace).saturating_add(transit);
            for r in node.peeking.inbound().records() {
                let key = key(&r.server, resident, &r.room_id, &r.peek_id);
                if self.accounting.counts.contains_key(&key) {
                    continue;
                }
                // A held peek the simulator never saw granted (none so far): from its last
                // renewal, which is when the resident started counting.
                let since = self.accounting.since.get(&key).copied().unwrap_or(r.renewed_at);
                let peek = UnaccountedPeek {
                    resident: resident.clone(),
                    origin: r.server,
                    room_id: r.room_id,
                    peek_id: r.peek_id,
                    since,
                    deadline: since.saturating_add(window),
                };
                if node.up && self.now > peek.deadline {
                    report.leaked.push(peek);
                } else {
                    report.lapsing.push(peek);
                }
            }
        }
        report
    }

    /// The real leaks of [`leak_report`](Self::leak_report): inbound peeks held by an up
    /// resident past their deadline while their origin does not account for them. Must stay
    /// empty at every moment. Unlike [`leaked_peeks`](Self::leaked_peeks) (the raw view), it
    /// ignores peeks within their window.
    pub fn leaks(&self) -> Vec<UnaccountedPeek> {
        self.leak_report().leaked
    }

    /// Panics with a readable [`LeakReport`] if [`leaks`](Self::leaks) is not empty.
    /// Meaningful at any moment, during the window after demand ends included.
    pub fn assert_no_leaks(&self) {
        let report = self.leak_report();
        assert!(report.is_clean(), "{report}");
    }

    /// A stored outbound change of `origin`: which peek the record under its key names now.
    pub(super) fn account(&mut self, origin: &ServerName, change: &OutboundChange) {
        let (record_key, named) = match change {
            OutboundChange::Upsert(record) => {
                let named = match record {
                    OutboundRecord::Peek(p) => Some(key(origin, &p.server, &p.room_id, &p.peek_id)),
                    OutboundRecord::Retired { room_id, server, peek_id } => {
                        Some(key(origin, server, room_id, peek_id))
                    }
                    _ => None,
                };
                (record.key(), named)
            }
            OutboundChange::Remove(record_key) => (record_key.clone(), None),
        };
        let slot = (origin.to_owned(), record_key);
        let before = self.accounting.records.remove(&slot);
        if before == named {
            if let Some(named) = named {
                self.accounting.records.insert(slot, named);
            }
            return;
        }
        if let Some(named) = named {
            *self.accounting.counts.entry(named.clone()).or_default() += 1;
            self.accounting.since.remove(&named);
            self.accounting.records.insert(slot, named);
        }
        if let Some(before) = before {
            let count = self.accounting.counts.entry(before.clone()).or_default();
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.accounting.counts.remove(&before);
                let (o, resident, room, id) = &before;
                let granted = self
                    .grants
                    .get(&(resident.clone(), room.clone()))
                    .and_then(|origins| origins.get(o))
                    .is_some_and(|ids| ids.contains_key(id));
                if granted {
                    self.accounting.since.insert(before, self.now);
                }
            }
        }
    }
}
