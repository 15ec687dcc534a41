//! Carts (abandoned, converted, recovered) and orders awaiting payment.
//!
//! A cart opens at its first add_to_cart and is abandoned when the watermark
//! passes its last activity plus the cart timeout with no order for it (by
//! `cart_id`, or for the visitor when the order names no cart) and a value
//! above zero. An abandoned cart is recovered when the same visitor or
//! customer orders within the recovery window. An order placed and neither
//! paid nor cancelled within the payment timeout is overdue. Abandoned carts
//! and overdue orders each make one trigger.

use crate::hash::Map;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use contract::{Event, EventKind};

use crate::config::AggregatorConfig;
use crate::offsets::HeldOffsets;
use crate::rows::{CartRow, CartStatus, Item, Trigger};
use crate::Position;

#[derive(serde::Serialize, serde::Deserialize)]
struct Cart {
    row: CartRow,
    /// product id -> (quantity, unit price)
    lines: BTreeMap<String, (i64, i64)>,
    held: Position,
    queued_at: i64,
}

impl Cart {
    fn value(&self) -> i64 {
        self.lines
            .values()
            .map(|(q, p)| q.saturating_mul(*p))
            .fold(0i64, |a, v| a.saturating_add(v))
    }

    fn finish(mut self, status: CartStatus, order_id: &str, at_ms: i64) -> CartRow {
        self.row.value_minor = self.value();
        self.row.items = self
            .lines
            .iter()
            .filter(|(_, (q, _))| *q > 0)
            .map(|(id, (q, p))| Item {
                product_id: id.clone(),
                quantity: *q,
                price_minor: *p,
            })
            .collect();
        self.row.status = status;
        self.row.order_id = order_id.to_string();
        self.row.at_ms = at_ms;
        self.row
    }
}

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
    held: Option<Position>,
    partition: i32,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Carts {
    timeout_ms: i64,
    recovery_ms: i64,
    payment_ms: i64,
    retention_ms: i64,
    max_orders: usize,
    open: Map<String, Cart>,
    deadlines: BinaryHeap<Reverse<(i64, String)>>,
    abandoned: Map<String, CartRow>,
    abandoned_order: VecDeque<(i64, String)>,
    orders: Map<String, Order>,
    order_queue: VecDeque<(i64, String)>,
    /// Orders awaiting payment, by placement time.
    unpaid: VecDeque<(i64, String)>,
}

impl Carts {
    pub(crate) fn new(cfg: &AggregatorConfig) -> Self {
        Carts {
            timeout_ms: cfg.cart_timeout_ms,
            recovery_ms: cfg.recovery_window_ms,
            payment_ms: cfg.payment_timeout_ms,
            retention_ms: cfg.order_retention_ms,
            max_orders: cfg.max_orders.max(1),
            open: Map::default(),
            deadlines: BinaryHeap::new(),
            abandoned: Map::default(),
            abandoned_order: VecDeque::new(),
            orders: Map::default(),
            order_queue: VecDeque::new(),
            unpaid: VecDeque::new(),
        }
    }

    /// Open carts now.
    pub(crate) fn open_carts(&self) -> usize {
        self.open.len()
    }

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

    /// Total and currency of a remembered order.
    pub(crate) fn order_total(&self, order_id: &str) -> Option<(i64, String)> {
        self.orders
            .get(order_id)
            .map(|o| (o.total_minor, o.currency.clone()))
    }

    fn cart(
        &mut self,
        e: &Event,
        cart_id: &str,
        currency: &str,
        pos: Position,
        held: &mut HeldOffsets,
    ) -> &mut Cart {
        if !self.open.contains_key(cart_id) {
            held.hold(pos.source, pos.offset);
            let at = e.timestamp_ms + self.timeout_ms + 1;
            self.deadlines.push(Reverse((at, cart_id.to_string())));
            self.open.insert(
                cart_id.to_string(),
                Cart {
                    row: CartRow {
                        cart_id: cart_id.to_string(),
                        anonymous_id: e.anonymous_id.clone(),
                        user_id: String::new(),
                        status: CartStatus::Abandoned,
                        opened_ms: e.timestamp_ms,
                        last_activity_ms: e.timestamp_ms,
                        value_minor: 0,
                        currency: currency.to_string(),
                        items: Vec::new(),
                        order_id: String::new(),
                        at_ms: 0,
                        partition: pos.source.partition,
                        version: 1,
                    },
                    lines: BTreeMap::new(),
                    held: pos,
                    queued_at: at,
                },
            );
        }
        let c = self.open.get_mut(cart_id).expect("inserted");
        c.row.last_activity_ms = e.timestamp_ms;
        if let Some(u) = &e.user_id {
            c.row.user_id.clone_from(u);
        }
        c
    }

    /// Applies one event in event-time order; finished carts go to `rows`.
    pub(crate) fn apply(
        &mut self,
        e: &Event,
        pos: Position,
        held: &mut HeldOffsets,
        rows: &mut Vec<CartRow>,
    ) {
        match &e.kind {
            EventKind::AddToCart { cart_id, line } => {
                let c = self.cart(e, cart_id, line.price.currency.as_str(), pos, held);
                let entry = c.lines.entry(line.product_id.clone()).or_insert((0, 0));
                entry.0 = entry.0.saturating_add(i64::from(line.quantity));
                entry.1 = line.price.minor;
            }
            EventKind::RemoveFromCart { cart_id, line } => {
                if let Some(c) = self.open.get_mut(cart_id) {
                    c.row.last_activity_ms = e.timestamp_ms;
                    if let Some(entry) = c.lines.get_mut(&line.product_id) {
                        entry.0 = (entry.0 - i64::from(line.quantity)).max(0);
                    }
                }
            }
            EventKind::CheckoutStarted { cart_id, .. } => {
                if let Some(c) = self.open.get_mut(cart_id) {
                    c.row.last_activity_ms = e.timestamp_ms;
                }
            }
            EventKind::OrderPlaced {
                order_id,
                cart_id,
                total,
                products,
                ..
            } => {
                self.convert(e, order_id, cart_id.as_deref(), held, rows);
                self.recover(e, order_id, rows);
                self.remember(
                    e,
                    order_id,
                    total.minor,
                    total.currency.as_str(),
                    products,
                    pos,
                    held,
                );
            }
            EventKind::OrderPaid { order_id } | EventKind::OrderCancelled { order_id } => {
                if let Some(o) = self.orders.get_mut(order_id) {
                    o.settled = true;
                    if let Some(p) = o.held.take() {
                        held.release(p.source, p.offset);
                    }
                }
            }
            _ => {}
        }
    }

    fn convert(
        &mut self,
        e: &Event,
        order_id: &str,
        cart_id: Option<&str>,
        held: &mut HeldOffsets,
        rows: &mut Vec<CartRow>,
    ) {
        let ids: Vec<String> = match cart_id {
            Some(id) => self
                .open
                .contains_key(id)
                .then(|| id.to_string())
                .into_iter()
                .collect(),
            None => {
                let mut ids: Vec<String> = self
                    .open
                    .iter()
                    .filter(|(_, c)| c.row.anonymous_id == e.anonymous_id)
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.sort();
                ids
            }
        };
        for id in ids {
            if let Some(c) = self.open.remove(&id) {
                held.release(c.held.source, c.held.offset);
                rows.push(c.finish(CartStatus::Converted, order_id, e.timestamp_ms));
            }
        }
    }

    fn recover(&mut self, e: &Event, order_id: &str, rows: &mut Vec<CartRow>) {
        let user = e.user_id.as_deref().unwrap_or("");
        let mut ids: Vec<String> = self
            .abandoned
            .iter()
            .filter(|(_, c)| {
                c.anonymous_id == e.anonymous_id || (!user.is_empty() && c.user_id == user)
            })
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        for id in ids {
            if let Some(mut c) = self.abandoned.remove(&id) {
                c.status = CartStatus::Recovered;
                c.order_id = order_id.to_string();
                c.at_ms = e.timestamp_ms;
                c.version = 2;
                rows.push(c);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn remember(
        &mut self,
        e: &Event,
        order_id: &str,
        total_minor: i64,
        currency: &str,
        products: &[contract::LineItem],
        pos: Position,
        held: &mut HeldOffsets,
    ) {
        if self.orders.contains_key(order_id) {
            return;
        }
        held.hold(pos.source, pos.offset);
        self.orders.insert(
            order_id.to_string(),
            Order {
                total_minor,
                currency: currency.to_string(),
                anonymous_id: e.anonymous_id.clone(),
                user_id: e.user_id.clone().unwrap_or_default(),
                items: products
                    .iter()
                    .map(|l| Item {
                        product_id: l.product_id.clone(),
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

    /// Abandons carts, flags overdue orders and forgets what expired, up to
    /// `watermark_ms`.
    pub(crate) fn advance(
        &mut self,
        watermark_ms: i64,
        held: &mut HeldOffsets,
        rows: &mut Vec<CartRow>,
        triggers: &mut Vec<Trigger>,
    ) {
        let mut abandoned_now = Vec::new();
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > watermark_ms {
                break;
            }
            let Reverse((at, id)) = self.deadlines.pop().expect("peeked");
            let Some(c) = self.open.get_mut(&id) else {
                continue;
            };
            if c.queued_at != at {
                continue;
            }
            let now_at = c.row.last_activity_ms + self.timeout_ms + 1;
            if now_at > at {
                c.queued_at = now_at;
                self.deadlines.push(Reverse((now_at, id)));
                continue;
            }
            let c = self.open.remove(&id).expect("present");
            held.release(c.held.source, c.held.offset);
            let at_ms = c.row.last_activity_ms + self.timeout_ms;
            if c.value() > 0 {
                abandoned_now.push(c.finish(CartStatus::Abandoned, "", at_ms));
            }
        }
        abandoned_now.sort_by(|a, b| (a.at_ms, &a.cart_id).cmp(&(b.at_ms, &b.cart_id)));
        for row in abandoned_now {
            self.abandoned_order
                .push_back((row.at_ms, row.cart_id.clone()));
            self.abandoned.insert(row.cart_id.clone(), row.clone());
            triggers.push(Trigger::AbandonedCart(row.clone()));
            rows.push(row);
        }
        while let Some((at, id)) = self.abandoned_order.front() {
            if at + self.recovery_ms >= watermark_ms {
                break;
            }
            self.abandoned.remove(id);
            self.abandoned_order.pop_front();
        }
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
        while let Some((placed, id)) = self.order_queue.front() {
            if placed + self.retention_ms >= watermark_ms {
                break;
            }
            self.orders.remove(id);
            self.order_queue.pop_front();
        }
    }
}
