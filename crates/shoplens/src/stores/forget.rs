//! Erasure in the stores: the forgotten set, applied to every store held,
//! to each store restored from a checkpoint written before a request, and
//! to what leaves the stores.

use aggregator::forget::{self, Forgot};
use aggregator::{CustomerFact, CustomerOutput, Output};
use contract::Event;
use exporter::ErasureRequest;

use super::{Slot, Stores};
use crate::erasure::{ErasureError, Forgotten};

impl Stores {
    /// The persons forgotten.
    pub fn forgotten(&self) -> &Forgotten {
        &self.forgotten
    }

    /// Starts with the requests read at start (no store is held yet).
    pub fn set_forgotten(&mut self, forgotten: Forgotten) {
        self.forgotten = forgotten;
    }

    /// Adds `request` to the forgotten set and drops the person's state
    /// from every store held. Parked stores (revoked a moment ago) are let
    /// go: one given back is loaded again, and forgets on load.
    pub fn forget(&mut self, request: &ErasureRequest) -> Result<Forgot, ErasureError> {
        self.forgotten.add(request)?;
        self.parked.clear();
        let mut forgot = Forgot::default();
        let slots: Vec<Slot> = self.aggregators.keys().copied().collect();
        for slot in slots {
            forgot.add(self.forget_in(slot));
        }
        let partitions: Vec<i32> = self.books.keys().copied().collect();
        for partition in partitions {
            forgot.add(self.forget_in(Slot {
                kind: super::Kind::Customers,
                partition,
            }));
        }
        Ok(forgot)
    }

    /// A store restored from a checkpoint may hold persons forgotten since.
    pub(super) fn forget_restored(&mut self, slot: Slot) {
        if !self.forgotten.is_empty() {
            self.forget_in(slot);
        }
    }

    /// Drops the forgotten persons' state from `slot`; a store that changed
    /// is checkpointed again at the next interval, so the saved state
    /// loses them too.
    fn forget_in(&mut self, slot: Slot) -> Forgot {
        let f = &self.forgotten;
        let is = |id: &str| f.covers(id);
        let forgot = match slot.kind {
            super::Kind::Customers => self.books.get_mut(&slot.partition).map(|b| b.forget(&is)),
            _ => self.aggregators.get_mut(&slot).map(|a| a.forget(&is)),
        }
        .unwrap_or_default();
        if forgot.total() > 0 {
            self.saved.remove(&slot);
        }
        forgot
    }

    /// Whether `event` is a forgotten person's. The store of `slot` then
    /// also drops what it keeps of the visitor beyond open state.
    pub fn drops_event(&mut self, slot: Slot, event: &Event) -> bool {
        if self.forgotten.is_empty() {
            return false;
        }
        let f = &self.forgotten;
        if !forget::event_is_forgotten(event, &|id| f.covers(id)) {
            return false;
        }
        if let Some(agg) = self.aggregators.get_mut(&slot) {
            agg.forget_visitor(&event.anonymous_id);
        }
        true
    }

    /// Whether `fact` is a forgotten person's.
    pub fn drops_fact(&self, fact: &CustomerFact) -> bool {
        let f = &self.forgotten;
        !f.is_empty() && forget::fact_is_forgotten(fact, &|id| f.covers(id))
    }

    /// Keeps the forgotten persons' rows out of `out` and `customers`;
    /// returns how many were withheld.
    pub fn withhold(&self, out: &mut Output, customers: &mut CustomerOutput) -> u64 {
        let f = &self.forgotten;
        if f.is_empty() {
            return 0;
        }
        let is = |id: &str| f.covers(id);
        forget::retain_output(out, &is) + forget::retain_customer_output(customers, &is)
    }
}
