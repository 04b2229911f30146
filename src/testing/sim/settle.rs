//! Settling: running until nothing is left to fire ([`Sim::run_until_settled`]), and what is
//! still due ([`Sim::pending`]).

use std::time::Duration;

use super::{Livelock, Pending, Sim, SimError};

impl Sim {
    /// Whether the world is **settled**: no message on the wire and no server, up or down,
    /// with a deadline (`Peeking::poll_timeout` is `None` everywhere). Nothing will happen any
    /// more until a test gives an input. Changes after every input and step.
    ///
    /// Live demand keeps a world from settling: a device's lease, its server's renewals and
    /// the resident's lapse deadline are always due. It settles once nothing is demanded and
    /// every linger, `DELETE`, lapse and collection has fired; collection of ended local
    /// entries (`LocalConfig::ended_retention`, 24 h by default) counts, so settling takes
    /// that long in virtual time after the last local peek ends (a few steps).
    pub fn is_settled(&self) -> bool {
        self.queue.is_empty() && self.nodes.values().all(|n| n.peeking.poll_timeout().is_none())
    }

    /// Runs until the world [is settled](Self::is_settled), at most `within` of virtual time.
    /// Returns at the moment it settles (the clock stands at the last thing that fired).
    ///
    /// [`SimError::NotSettled`] when something is still due after `within` (the clock then
    /// stands at `now + within`, as after [`run_for`](Self::run_for)), with every
    /// [`Pending`] item; a server that is down with deadlines keeps the world from settling
    /// (they fire once it is up). [`SimError::Livelock`] after
    /// [`SimConfig::step_budget`](super::SimConfig::step_budget) steps.
    pub fn run_until_settled(&mut self, within: Duration) -> Result<(), SimError> {
        let until = self.now.saturating_add(within);
        let mut steps = 0u64;
        while let Some(at) = self.next_due().filter(|&at| at <= until) {
            debug_assert!(at >= self.now);
            self.step();
            steps += 1;
            if steps > self.config.step_budget {
                return Err(Livelock { steps, at: self.now }.into());
            }
        }
        if self.is_settled() {
            return Ok(());
        }
        self.now = self.now.max(until);
        Err(SimError::NotSettled { at: self.now, within, pending: self.pending() })
    }

    /// What is still due, in order: messages on the wire, then each server by name: its local
    /// peeks', inbound peeks' and outbound machine's next deadlines and its waiting client
    /// peeks, or one [`Pending::DownServer`] for a server that is down. Empty exactly when the
    /// world [is settled](Self::is_settled). Changes after every input and step.
    pub fn pending(&self) -> Vec<Pending> {
        let mut pending = Vec::new();
        if let Some(first) = self.queue.peek() {
            // The heap's top is the earliest message.
            pending.push(Pending::Messages { count: self.queue.len(), next_at: first.at });
        }
        for (server, node) in &self.nodes {
            let p = &node.peeking;
            if !node.up {
                if let Some(due) = p.poll_timeout() {
                    pending.push(Pending::DownServer { server: server.clone(), due });
                }
                continue;
            }
            if let Some(due) = p.local().poll_timeout() {
                let live = p.local().len();
                pending.push(Pending::LocalPeeks { server: server.clone(), live, due });
            }
            if let Some(due) = p.inbound().poll_timeout() {
                let live = p.inbound().len();
                pending.push(Pending::InboundPeeks { server: server.clone(), live, due });
            }
            if let Some(due) = p.outbound().poll_timeout() {
                let mut rooms: Vec<_> =
                    p.outbound().rooms().map(|r| (r.room_id.to_owned(), r.state)).collect();
                rooms.sort_by(|a, b| a.0.cmp(&b.0));
                pending.push(Pending::OutboundPeeks { server: server.clone(), rooms, due });
            }
            if p.pending_client_peeks() > 0
                && let Some(due) = p.poll_timeout()
            {
                let waiting = p.pending_client_peeks();
                pending.push(Pending::ClientPeeks { server: server.clone(), waiting, due });
            }
        }
        pending
    }
}
