//! The memory of orders: what was placed (for cart recovery, payments,
//! cancellations and the customer of a refund), which orders await
//! payment, and the overdue-order trigger of those not paid in time.
//! Orders are remembered for the retention, at most `max_orders` of them.

use contract::Event;

use super::Carts;
use crate::offsets::HeldOffsets;
use crate::rows::{Item, Trigger};
use crate::Position;

/// What the aggregator remembers of an order.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Order {
    pub total_minor: i64,
    pub currency: String,
    anonymous_id: String,
    user_id: String,
    items: Vec<Item>,
    placed_ms: i64,
    settled: bool,
    pub(super) held: Option<Position>,
    partition: i32,
}

impl Carts {
    /// The customer (user id, else visitor) of a remembered order.
    pub(crate) fn order_customer(&self, order_id: &str) -> Option<String> {
        self.orders.get(order_id).map(|o| {
            if o.user_id.is_empty() {
                o.anonymous_id.clone()
            } else {
                o.user_id.clone()
            }
        })
    }

    /// Drops the remembered orders of the persons `is` names (their
    /// visitors to `visitors`), releasing their offsets; returns how many.
    /// Their queue entries are skipped when they come up.
    pub(super) fn forget_orders(
        &mut self,
        is: crate::forget::Forgets<'_>,
        held: &mut HeldOffsets,
        visitors: &mut Vec<String>,
    ) -> u64 {
        let before = self.orders.len();
        self.orders.retain(|_, o| {
            let named = |id: &str| !id.is_empty() && is(id);
            if !named(&o.anonymous_id) && !named(&o.user_id) {
                return true;
            }
            if let Some(p) = o.held.take() {
                held.release(p.source, p.offset);
            }
            visitors.push(o.anonymous_id.clone());
            false
        });
        (before - self.orders.len()) as u64
    }

    /// Whether order `order_id` is remembered.
    pub(crate) fn knows_order(&self, order_id: &str) -> bool {
        self.orders.contains_key(order_id)
    }

    /// Total and currency of a remembered order.
    pub(crate) fn order_total(&self, order_id: &str) -> Option<(i64, String)> {
        self.orders
            .get(order_id)
            .map(|o| (o.total_minor, o.currency.clone()))
    }

    /// Order `order_id` was paid or cancelled: it is not overdue, and its
    /// offset is not held any more.
    pub(super) fn settle(&mut self, order_id: &str, held: &mut HeldOffsets) {
        if let Some(o) = self.orders.get_mut(order_id) {
            o.settled = true;
            if let Some(p) = o.held.take() {
                held.release(p.source, p.offset);
            }
        }
    }

    /// Remembers a newly placed order; a placement of an order already
    /// remembered never comes here (the aggregator drops it as a duplicate).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn remember(
        &mut self,
        e: &Event,
        order_id: &str,
        total_minor: i64,
        currency: &str,
        products: &[contract::LineItem],
        pos: Position,
        held: &mut HeldOffsets,
    ) {
        held.hold(pos.source, pos.offset);
        self.orders.insert(
            order_id.to_string(),
            Order {
                total_minor,
                currency: currency.to_string(),
                anonymous_id: e.anonymous_id.to_string(),
                user_id: e.user_id.as_deref().unwrap_or_default().to_string(),
                items: products
                    .iter()
                    .map(|l| Item {
                        product_id: l.product_id.to_string(),
                        quantity: i64::from(l.quantity),
                        price_minor: l.price.minor,
                    })
                    .collect(),
                placed_ms: e.timestamp_ms,
                settled: false,
                held: Some(pos),
                partition: pos.source.partition,
            },
        );
        self.order_queue
            .push_back((e.timestamp_ms, order_id.to_string()));
        self.unpaid
            .push_back((e.timestamp_ms, order_id.to_string()));
        while self.orders.len() > self.max_orders {
            let Some((_, old)) = self.order_queue.pop_front() else {
                break;
            };
            if let Some(o) = self.orders.remove(&old) {
                if let Some(p) = o.held {
                    held.release(p.source, p.offset);
                }
            }
        }
    }

    /// Orders placed more than the payment timeout before `watermark_ms`
    /// and not settled become overdue-order triggers.
    pub(super) fn overdue_until(
        &mut self,
        watermark_ms: i64,
        held: &mut HeldOffsets,
        triggers: &mut Vec<Trigger>,
    ) {
        while let Some((placed, _)) = self.unpaid.front() {
            if placed + self.payment_ms >= watermark_ms {
                break;
            }
            let (placed, id) = self.unpaid.pop_front().expect("front");
            if let Some(o) = self.orders.get_mut(&id) {
                if let Some(p) = o.held.take() {
                    held.release(p.source, p.offset);
                }
                if !o.settled {
                    o.settled = true;
                    triggers.push(Trigger::OverdueOrder {
                        order_id: id,
                        anonymous_id: o.anonymous_id.clone(),
                        user_id: o.user_id.clone(),
                        total_minor: o.total_minor,
                        currency: o.currency.clone(),
                        items: o.items.clone(),
                        placed_ms: o.placed_ms,
                        at_ms: placed + self.payment_ms,
                        partition: o.partition,
                    });
                }
            }
        }
    }

    /// Forgets orders placed more than the retention before `watermark_ms`.
    pub(super) fn forget_orders_until(&mut self, watermark_ms: i64) {
        while let Some((placed, id)) = self.order_queue.front() {
            if placed + self.retention_ms >= watermark_ms {
                break;
            }
            self.orders.remove(id);
            self.order_queue.pop_front();
        }
    }
}
