//! Erasure: dropping one person's state, and their rows from an output.
//!
//! A request names an id; the caller decides which ids it covers (the
//! pipeline matches salted hashes) and passes that test in, so the core
//! stays pure. An id is matched wherever it appears: as a visitor
//! (`anonymous_id`), as a signed-in user (`user_id`) or as a customer
//! (`customer_id`, the user id or else the visitor).
//!
//! What goes: buffered events, open and parked sessions, the returning-
//! visitor memory and touches of each visitor found, open and abandoned
//! carts, remembered orders, settlements waiting for their order; in a
//! customer book, the histories, pending facts and order rows. What stays:
//! window aggregates (counts and sums without ids), the dedup set (event id
//! hashes) and each visitor's digest in the touches and visitor memory when
//! the visitor had no open state to read their id from (see
//! docs/metrics.md, "Erasure").

use crate::customers::{CustomerBook, CustomerOutput};
use crate::{Aggregator, CustomerFact, Output};

/// Whether an id belongs to a person being forgotten.
pub type Forgets<'a> = &'a dyn Fn(&str) -> bool;

/// What one erasure dropped from a store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Forgot {
    /// Buffered events, parked settlements and pending facts.
    pub events: u64,
    /// Open sessions (parked ones included).
    pub sessions: u64,
    /// Open and abandoned carts.
    pub carts: u64,
    /// Remembered orders (the aggregator's order memory and the book's rows).
    pub orders: u64,
    /// Customer histories.
    pub customers: u64,
}

impl Forgot {
    /// Everything dropped, summed.
    pub fn total(&self) -> u64 {
        self.events + self.sessions + self.carts + self.orders + self.customers
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: Forgot) {
        self.events += other.events;
        self.sessions += other.sessions;
        self.carts += other.carts;
        self.orders += other.orders;
        self.customers += other.customers;
    }
}

/// Whether `id` is set and forgotten.
fn named(is: Forgets<'_>, id: &str) -> bool {
    !id.is_empty() && is(id)
}

/// Whether an event belongs to a forgotten person.
pub fn event_is_forgotten(e: &contract::Event, is: Forgets<'_>) -> bool {
    named(is, &e.anonymous_id) || e.user_id.as_deref().is_some_and(|u| named(is, u))
}

/// Whether a customer fact belongs to a forgotten person.
pub fn fact_is_forgotten(f: &CustomerFact, is: Forgets<'_>) -> bool {
    named(is, &f.customer_id) || f.order.as_ref().is_some_and(|d| named(is, &d.anonymous_id))
}

impl Aggregator {
    /// Drops the state of every person `is` names (see the module). Open
    /// state releases the offsets it held, so commits move on.
    pub fn forget(&mut self, is: Forgets<'_>) -> Forgot {
        let mut forgot = Forgot::default();
        let mut visitors: Vec<String> = Vec::new();
        forgot.events += self.pending.forget(is, &mut visitors);
        forgot.events += self.early.forget(is, &mut self.held, &mut visitors);
        for (start_ms, visit) in self.sessions.forget(is, &mut self.held, &mut visitors) {
            forgot.sessions += 1;
            self.session_windows.forget_open(start_ms);
            if let Some(visit) = visit {
                self.pages.forget(*visit);
            }
        }
        let (carts, orders) = self.carts.forget(is, &mut self.held, &mut visitors);
        forgot.carts += carts;
        forgot.orders += orders;
        visitors.sort_unstable();
        visitors.dedup();
        for visitor in &visitors {
            self.forget_visitor(visitor);
        }
        forgot
    }

    /// Drops what is kept of `visitor` beyond open state: their touches and
    /// the returning-visitor memory. For a visitor whose id is known, such
    /// as one whose events arrive after the request and are dropped.
    pub fn forget_visitor(&mut self, visitor: &str) {
        self.touches.forget(visitor);
        self.sessions.forget_seen(visitor);
    }
}

impl CustomerBook {
    /// Drops the histories, pending facts and order rows of every person
    /// `is` names (see the module).
    pub fn forget(&mut self, is: Forgets<'_>) -> Forgot {
        let mut forgot = Forgot::default();
        let before = self.pending.len();
        self.pending.retain(|_, (f, _)| !fact_is_forgotten(f, is));
        forgot.events = (before - self.pending.len()) as u64;
        let before = self.histories.len();
        self.histories.retain(|id, _| !named(is, id));
        self.dirty.retain(|id| !named(is, id));
        forgot.customers = (before - self.histories.len()) as u64;
        forgot.orders = self.orders.forget(is);
        forgot
    }
}

/// Removes the rows of forgotten persons from an aggregator's output: the
/// per-person rows (sessions, carts, triggers, customer facts), never the
/// window aggregates.
pub fn retain_output(out: &mut Output, is: Forgets<'_>) -> u64 {
    let before = out.sessions.len() + out.carts.len() + out.triggers.len();
    let facts = out.customer_facts.len();
    out.sessions
        .retain(|r| !named(is, &r.anonymous_id) && !named(is, &r.user_id));
    out.carts
        .retain(|r| !named(is, &r.anonymous_id) && !named(is, &r.user_id));
    out.triggers.retain(|t| {
        let (visitor, user) = t.person();
        !named(is, visitor) && !named(is, user)
    });
    out.customer_facts.retain(|f| !fact_is_forgotten(f, is));
    let after = out.sessions.len() + out.carts.len() + out.triggers.len();
    (before - after + facts - out.customer_facts.len()) as u64
}

/// Removes the rows of forgotten persons from a customer book's output
/// (customers, lapses and orders; the daily aggregates stay).
pub fn retain_customer_output(out: &mut CustomerOutput, is: Forgets<'_>) -> u64 {
    let before = out.customers.len() + out.lapsed.len() + out.orders.len();
    out.customers.retain(|r| !named(is, &r.customer_id));
    out.lapsed.retain(|r| !named(is, &r.customer_id));
    out.orders
        .retain(|r| !named(is, &r.customer_id) && !named(is, &r.anonymous_id));
    (before - out.customers.len() - out.lapsed.len() - out.orders.len()) as u64
}
