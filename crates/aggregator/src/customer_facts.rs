//! Customer facts: orders, payments, cancellations and refunds, as facts
//! about their customer, to be re-keyed by customer (the customer book reads
//! them).
//!
//! The customer is the user id of the event, else of the order's event (for
//! a payment, cancellation or refund), else of the visitor's session, else
//! the visitor ([`crate::Aggregator`] resolves it into [`Applied::customer`]).

use contract::internal::OrderDetail;
use contract::EventKind;

use crate::aggregate::{Aggregate, Applied};
use crate::channel::Channel;
use crate::offsets::HeldOffsets;
use crate::touches::{Seen, TouchBounds};
use crate::Output;
use crate::{Aggregator, Position};
use contract::Event;

/// What happened to a customer's order. Snapshots write the variant's
/// index: new kinds go at the end.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum FactKind {
    /// An order was placed.
    Order,
    /// An order was cancelled (its total is subtracted).
    Cancel,
    /// An amount was refunded.
    Refund,
    /// An order was paid (it changes the order's row only).
    Paid,
}

impl FactKind {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Order => "order",
            FactKind::Cancel => "cancel",
            FactKind::Refund => "refund",
            FactKind::Paid => "paid",
        }
    }

    /// The kind of a label.
    pub fn parse(s: &str) -> Option<FactKind> {
        match s {
            "order" => Some(FactKind::Order),
            "cancel" => Some(FactKind::Cancel),
            "refund" => Some(FactKind::Refund),
            "paid" => Some(FactKind::Paid),
            _ => None,
        }
    }
}

/// One customer-level fact, keyed by `customer_id` on the internal topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CustomerFact {
    /// `user_id`, else the anonymous id.
    pub customer_id: String,
    /// What happened.
    pub kind: FactKind,
    /// The order.
    pub order_id: String,
    /// Event time.
    pub ts_ms: i64,
    /// Order total, cancelled total or refunded amount, minor units (0 for
    /// a payment).
    pub amount_minor: i64,
    /// Currency of the amount.
    pub currency: String,
    /// Channel of the session the event came in.
    pub channel: Channel,
    /// For an order: its visitor, session, items and variant.
    pub order: Option<Box<OrderDetail>>,
}

impl CustomerFact {
    /// The fact as the internal facts topic carries it.
    pub fn to_wire(&self) -> contract::internal::FactWire {
        contract::internal::FactWire {
            customer_id: self.customer_id.clone(),
            kind: self.kind.as_str().to_string(),
            order_id: self.order_id.clone(),
            ts_ms: self.ts_ms,
            amount_minor: self.amount_minor,
            currency: self.currency.clone(),
            channel: self.channel.as_str().to_string(),
            order: self.order.clone(),
        }
    }

    /// A fact read back from the facts topic; `None` for a kind or a
    /// channel this version does not know.
    pub fn from_wire(w: contract::internal::FactWire) -> Option<Self> {
        Some(CustomerFact {
            kind: FactKind::parse(&w.kind)?,
            channel: Channel::parse(&w.channel)?,
            customer_id: w.customer_id,
            order_id: w.order_id,
            ts_ms: w.ts_ms,
            amount_minor: w.amount_minor,
            currency: w.currency,
            order: w.order,
        })
    }
}

/// The facts aggregate; it keeps no state.
pub(crate) struct CustomerFacts<'a> {
    /// The currency of a payment or cancellation whose order is not known.
    pub(crate) reporting_currency: &'a str,
}

impl CustomerFacts<'_> {
    /// Total and currency of the order a payment or cancellation settles
    /// (0 in the reporting currency when the order is not known).
    fn settled(&self, a: &Applied<'_>) -> (i64, String) {
        let known = a.order_total.clone();
        known.unwrap_or_else(|| (0, self.reporting_currency.to_string()))
    }
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
            EventKind::OrderPaid { order_id } => {
                let (_, currency) = self.settled(a);
                (FactKind::Paid, order_id, 0, currency)
            }
            EventKind::OrderCancelled { order_id } => {
                let (minor, currency) = self.settled(a);
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
            customer_id: a
                .customer
                .clone()
                .unwrap_or_else(|| e.anonymous_id.to_string()),
            kind,
            order_id: order_id.to_string(),
            ts_ms: e.timestamp_ms,
            amount_minor: amount,
            currency,
            channel: a.channel,
            order: a.order_detail(),
        });
    }
}

/// What the aggregates see of an event beside it: the order's total, its
/// customer, and for an order the session and touches it came with.
impl Aggregator {
    pub(crate) fn applied<'e>(
        &self,
        event: &'e Event,
        pos: Position,
        channel: Channel,
    ) -> Applied<'e> {
        let placed = matches!(event.kind, EventKind::OrderPlaced { .. });
        let visitor = &event.anonymous_id;
        Applied {
            event,
            pos,
            channel,
            order_total: self.order_total(event),
            customer: self.customer(event),
            session: placed.then(|| self.sessions.key_of(visitor)).flatten(),
            seen: if placed {
                let b = TouchBounds::of(&self.cfg);
                self.touches.seen(visitor, event.timestamp_ms, b)
            } else {
                Seen::default()
            },
        }
    }

    /// The total and currency of the order a payment or cancellation
    /// settles, when the order is known.
    fn order_total(&self, e: &Event) -> Option<(i64, String)> {
        match &e.kind {
            EventKind::OrderPaid { order_id } | EventKind::OrderCancelled { order_id } => {
                self.carts.order_total(order_id)
            }
            _ => None,
        }
    }

    /// The customer of an order, payment, cancellation or refund: the user
    /// id of the event, else of the order's event (settlements), else of the
    /// visitor's session, else the visitor.
    fn customer(&self, e: &Event) -> Option<String> {
        use contract::EventKind as K;
        let order_id = match &e.kind {
            K::OrderPlaced { .. } => None,
            K::OrderPaid { order_id }
            | K::OrderCancelled { order_id }
            | K::OrderRefunded { order_id, .. } => Some(order_id),
            _ => return None,
        };
        let customer = e
            .user_id
            .as_deref()
            .map(str::to_string)
            .or_else(|| order_id.and_then(|o| self.carts.order_customer(o)))
            .or_else(|| self.sessions.user_of(&e.anonymous_id))
            .unwrap_or_else(|| e.anonymous_id.to_string());
        Some(customer)
    }
}
