//! Orders as facts: one row per order, replaced as it is paid, cancelled or
//! refunded (the `orders` table).
//!
//! The customer book keeps it, as only the owner of a customer's whole
//! history knows the order's number among the customer's orders and the
//! time since the previous one. The visitor's side sends the rest with the
//! order's fact (visitor, session, items, variant). An order is remembered
//! for the order retention after it was placed, and at most `max_orders`
//! of them: a settlement of an order placed earlier, or never seen, changes
//! no row and is counted in [`OrderBook::unknown_settlements`].

use std::collections::{BTreeSet, VecDeque};

use crate::attribution::{first_touch, last_non_direct};
use crate::channel::Channel;
use crate::customer_facts::{CustomerFact, FactKind};
use crate::hash::Map;

const DAY_MS: i64 = 86_400_000;

/// One order as the `orders` table shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderRow {
    /// The order.
    pub order_id: String,
    /// Its customer (user id, else visitor).
    pub customer_id: String,
    /// The visitor who placed it.
    pub anonymous_id: String,
    /// The session it was placed in (the `sessions` table's id).
    pub session_id: String,
    /// When it was placed.
    pub placed_ms: i64,
    /// When it was first paid, if it was.
    pub paid_ms: Option<i64>,
    /// When it was first cancelled, if it was.
    pub cancelled_ms: Option<i64>,
    /// Currency of every amount of the row.
    pub currency: String,
    /// The order's total, minor units.
    pub total_minor: i64,
    /// Refunds in the order's currency, minor units.
    pub refunded_minor: i64,
    /// `total - refunded`, and 0 once cancelled.
    pub net_minor: i64,
    /// Items: the sum of the line items' quantities.
    pub items: u64,
    /// The customer's order number, 1 for their first (a new customer).
    pub customer_order_number: u64,
    /// Whole days since the customer's previous order (none for the first).
    pub days_since_previous: Option<u32>,
    /// Channel of the session it was placed in.
    pub channel: Channel,
    /// Channel of the visitor's first touch within the attribution window
    /// (the order's own channel without one).
    pub first_touch_channel: Channel,
    /// Channel of the visitor's latest touch that is not Direct, else
    /// Direct (the order's own channel without a touch).
    pub last_non_direct_channel: Channel,
    /// Start of the visitor's first session remembered (none without one).
    pub first_session_ms: Option<i64>,
    /// Sessions the visitor started from then to the order, its own
    /// included (0 without one).
    pub sessions_to_order: u32,
    /// The session's experiment and variant, empty when none.
    pub experiment_id: String,
    /// See `experiment_id`.
    pub variant: String,
    /// Partition of the facts topic (the customer's).
    pub partition: i32,
    /// Grows with every change of the row.
    pub version: u64,
}

/// The orders a customer book remembers.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct OrderBook {
    retention_ms: i64,
    max_orders: usize,
    orders: Map<String, OrderRow>,
    /// (placed, order id), oldest first.
    queue: VecDeque<(i64, String)>,
    dirty: BTreeSet<String>,
    unknown_settlements: u64,
    foreign_refunds: u64,
}

/// The channels of an order's touches, oldest first; without one (an
/// order-only feed, or a fact of an earlier build), the order's own.
pub(crate) fn touches_of(f: &CustomerFact) -> Vec<Channel> {
    let labels = f
        .order
        .as_ref()
        .map(|d| d.touches.as_slice())
        .unwrap_or_default();
    let touches: Vec<Channel> = labels.iter().filter_map(|l| Channel::parse(l)).collect();
    if touches.is_empty() {
        vec![f.channel]
    } else {
        touches
    }
}

impl Default for OrderBook {
    /// As the aggregator's defaults: 120 days, a million orders.
    fn default() -> Self {
        let d = crate::AggregatorConfig::default();
        OrderBook::new(d.order_rows_retention_ms, d.max_order_rows)
    }
}

impl OrderBook {
    /// Orders remembered `retention_ms` after they were placed, at most
    /// `max_orders` of them.
    pub(crate) fn new(retention_ms: i64, max_orders: usize) -> Self {
        OrderBook {
            retention_ms,
            max_orders: max_orders.max(1),
            orders: Map::default(),
            queue: VecDeque::new(),
            dirty: BTreeSet::new(),
            unknown_settlements: 0,
            foreign_refunds: 0,
        }
    }

    /// Applies the memory settings in force (a restored book keeps its
    /// orders; the bounds apply from its next advance on).
    pub(crate) fn set_bounds(&mut self, retention_ms: i64, max_orders: usize) {
        self.retention_ms = retention_ms;
        self.max_orders = max_orders.max(1);
    }

    /// The bounds `other` was built with.
    pub(crate) fn bounds_of(&mut self, other: &OrderBook) {
        self.set_bounds(other.retention_ms, other.max_orders);
    }

    /// Orders remembered.
    pub(crate) fn len(&self) -> usize {
        self.orders.len()
    }

    /// Drops the rows of the persons `is` names (customer or visitor);
    /// returns how many. Their queue entries are skipped when they come up.
    pub(crate) fn forget(&mut self, is: crate::forget::Forgets<'_>) -> u64 {
        let named = |id: &str| !id.is_empty() && is(id);
        let before = self.orders.len();
        self.orders
            .retain(|_, r| !named(&r.customer_id) && !named(&r.anonymous_id));
        let orders = &self.orders;
        self.dirty.retain(|id| orders.contains_key(id));
        (before - self.orders.len()) as u64
    }

    /// Payments, cancellations and refunds of orders not remembered.
    pub(crate) fn unknown_settlements(&self) -> u64 {
        self.unknown_settlements
    }

    /// Refunds in another currency than their order's (not subtracted).
    pub(crate) fn foreign_refunds(&self) -> u64 {
        self.foreign_refunds
    }

    /// Order `f` was placed, as the customer's `number`th order,
    /// `previous_ms` after their previous one. A repeat of a remembered
    /// order changes nothing: the first placement stands.
    pub(crate) fn placed(
        &mut self,
        f: &CustomerFact,
        partition: i32,
        number: u64,
        previous_ms: Option<i64>,
    ) {
        if self.orders.contains_key(&f.order_id) {
            return;
        }
        let d = *f.order.clone().unwrap_or_default();
        let touches = touches_of(f);
        let first_touch_channel = first_touch(&touches).unwrap_or(f.channel);
        let last_non_direct_channel = last_non_direct(&touches).unwrap_or(f.channel);
        let days = previous_ms.map(|ms| u32::try_from(ms.max(0) / DAY_MS).unwrap_or(u32::MAX));
        let row = OrderRow {
            order_id: f.order_id.clone(),
            customer_id: f.customer_id.clone(),
            anonymous_id: d.anonymous_id,
            session_id: d.session_id,
            placed_ms: f.ts_ms,
            paid_ms: None,
            cancelled_ms: None,
            currency: f.currency.clone(),
            total_minor: f.amount_minor,
            refunded_minor: 0,
            net_minor: f.amount_minor,
            items: d.items,
            customer_order_number: number,
            days_since_previous: days,
            channel: f.channel,
            first_touch_channel,
            last_non_direct_channel,
            first_session_ms: d.first_session_ms,
            sessions_to_order: d.sessions,
            experiment_id: d.experiment_id,
            variant: d.variant,
            partition,
            version: 1,
        };
        self.orders.insert(f.order_id.clone(), row);
        self.queue.push_back((f.ts_ms, f.order_id.clone()));
        self.dirty.insert(f.order_id.clone());
    }

    /// A payment, cancellation or refund of a remembered order.
    pub(crate) fn settled(&mut self, f: &CustomerFact) {
        let Some(o) = self.orders.get_mut(&f.order_id) else {
            self.unknown_settlements += 1;
            return;
        };
        match f.kind {
            FactKind::Paid => o.paid_ms = o.paid_ms.or(Some(f.ts_ms)),
            FactKind::Cancel => o.cancelled_ms = o.cancelled_ms.or(Some(f.ts_ms)),
            FactKind::Refund if f.currency == o.currency => {
                o.refunded_minor = o.refunded_minor.saturating_add(f.amount_minor);
            }
            FactKind::Refund => {
                self.foreign_refunds += 1;
                return;
            }
            FactKind::Order => return,
        }
        o.net_minor = if o.cancelled_ms.is_some() {
            0
        } else {
            o.total_minor.saturating_sub(o.refunded_minor)
        };
        o.version += 1;
        self.dirty.insert(f.order_id.clone());
    }

    /// The rows changed since the last call. After them, orders placed
    /// more than the retention before `watermark_ms`, and the oldest beyond
    /// the bound, are forgotten (so every row is written before it goes).
    pub(crate) fn take_changed(&mut self, watermark_ms: i64, out: &mut Vec<OrderRow>) {
        for id in std::mem::take(&mut self.dirty) {
            if let Some(o) = self.orders.get(&id) {
                out.push(o.clone());
            }
        }
        while let Some((placed, id)) = self.queue.front() {
            let expired = placed.saturating_add(self.retention_ms) < watermark_ms;
            if !expired && self.orders.len() <= self.max_orders {
                break;
            }
            self.orders.remove(id);
            self.queue.pop_front();
        }
    }
}
