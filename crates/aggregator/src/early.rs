//! Payments and cancellations that reach the aggregator before their order.
//!
//! A payment system's clock is not the storefront's: an `order_paid` can
//! carry an event time a little before its `order_placed`. Applied in event
//! time it would meet an unknown order, so its order would later be flagged
//! overdue although paid. Such a settlement waits here, holding its offset,
//! for at most the grace (the allowed lateness): when its order is placed it
//! is applied right after it, at the order's time; when the grace runs out
//! first it is applied alone, at the end of the grace, as a settlement of an
//! order this pipeline never saw (placed before its history began).

use std::collections::VecDeque;

use contract::Event;

use crate::hash::Map;
use crate::offsets::HeldOffsets;
use crate::{Position, Source};

/// Settlements waiting for their order, by order id, and their deadlines.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct EarlySettlements {
    by_order: Map<String, Vec<(Event, Position)>>,
    /// (deadline, order id), in the order they were deferred.
    queue: VecDeque<(i64, String)>,
}

impl EarlySettlements {
    /// Keeps `event` (a settlement of `order_id`) until its order is placed
    /// or `deadline_ms` passes; it holds its offset meanwhile.
    pub(crate) fn defer(
        &mut self,
        order_id: &str,
        event: Event,
        pos: Position,
        deadline_ms: i64,
        held: &mut HeldOffsets,
    ) {
        held.hold(pos.source, pos.offset);
        let waiting = self.by_order.entry(order_id.to_string()).or_default();
        if waiting.is_empty() {
            self.queue.push_back((deadline_ms, order_id.to_string()));
        }
        waiting.push((event, pos));
    }

    /// The settlements waiting for `order_id`, now that it is placed.
    pub(crate) fn take(
        &mut self,
        order_id: &str,
        held: &mut HeldOffsets,
    ) -> Vec<(Event, Position)> {
        if self.by_order.is_empty() {
            return Vec::new(); // the common case: no hashing of the order id
        }
        let waiting = self.by_order.remove(order_id).unwrap_or_default();
        for (_, pos) in &waiting {
            held.release(pos.source, pos.offset);
        }
        waiting
    }

    /// The settlements of the first order whose grace ended before
    /// `until_ms` (an order placed at the deadline itself still pairs), or
    /// the oldest whatever its deadline while more than `over` orders wait
    /// (the memory bound), with the time to apply them at.
    pub(crate) fn pop_expired(
        &mut self,
        until_ms: i64,
        over: usize,
        held: &mut HeldOffsets,
    ) -> Option<(i64, Vec<(Event, Position)>)> {
        loop {
            let &(deadline, _) = self.queue.front()?;
            if deadline >= until_ms && self.by_order.len() <= over {
                return None;
            }
            let (deadline, order_id) = self.queue.pop_front()?;
            let waiting = self.take(&order_id, held);
            if !waiting.is_empty() {
                return Some((deadline.min(until_ms), waiting));
            }
        }
    }

    /// Drops the waiting settlements of the persons `is` names (their
    /// visitors to `visitors`), releasing their offsets; returns how many.
    pub(crate) fn forget(
        &mut self,
        is: crate::forget::Forgets<'_>,
        held: &mut HeldOffsets,
        visitors: &mut Vec<String>,
    ) -> u64 {
        let mut dropped = 0;
        for waiting in self.by_order.values_mut() {
            waiting.retain(|(e, pos)| {
                if !crate::forget::event_is_forgotten(e, is) {
                    return true;
                }
                held.release(pos.source, pos.offset);
                visitors.push(e.anonymous_id.to_string());
                dropped += 1;
                false
            });
        }
        // The queue's entries of emptied orders are skipped when popped.
        self.by_order.retain(|_, waiting| !waiting.is_empty());
        dropped
    }

    /// Offsets the waiting settlements hold (rebuilt after a restore).
    pub(crate) fn holds(&self) -> impl Iterator<Item = (Source, i64)> + '_ {
        self.by_order
            .values()
            .flatten()
            .map(|(_, pos)| (pos.source, pos.offset))
    }
}
