//! Customer facts: orders, cancellations and refunds, as facts about their
//! customer, to be re-keyed by customer (the customer book reads them).
//!
//! The customer is the user id of the event, else of the order's event (for
//! a cancellation or refund), else of the visitor's session, else the
//! visitor ([`crate::Aggregator`] resolves it into [`Applied::customer`]).

use contract::EventKind;

use crate::aggregate::{Aggregate, Applied};
use crate::customers::{CustomerFact, FactKind};
use crate::offsets::HeldOffsets;
use crate::Output;

/// The facts aggregate; it keeps no state.
pub(crate) struct CustomerFacts<'a> {
    /// The currency of a cancellation whose order is not known.
    pub(crate) reporting_currency: &'a str,
}

impl Aggregate for CustomerFacts<'_> {
    fn apply(&mut self, a: &Applied<'_>, _held: &mut HeldOffsets, out: &mut Output) {
        let e = a.event;
        let (kind, order_id, amount, currency) = match &e.kind {
            EventKind::OrderPlaced {
                order_id, total, ..
            } => (
                FactKind::Order,
                order_id,
                total.minor,
                total.currency.as_str().to_string(),
            ),
            EventKind::OrderCancelled { order_id } => {
                let known = a.order_total.clone();
                let (minor, currency) =
                    known.unwrap_or_else(|| (0, self.reporting_currency.to_string()));
                (FactKind::Cancel, order_id, minor, currency)
            }
            EventKind::OrderRefunded { order_id, amount } => (
                FactKind::Refund,
                order_id,
                amount.minor,
                amount.currency.as_str().to_string(),
            ),
            _ => return,
        };
        out.customer_facts.push(CustomerFact {
            customer_id: a.customer.clone().unwrap_or_else(|| e.anonymous_id.clone()),
            kind,
            order_id: order_id.clone(),
            ts_ms: e.timestamp_ms,
            amount_minor: amount,
            currency,
            channel: a.channel,
        });
    }
}
