//! Carts (abandoned, converted, recovered); the orders they meet are
//! remembered in [`orders`].
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
use std::collections::{BTreeMap, VecDeque};

use contract::{Event, EventKind};

use crate::config::AggregatorConfig;
use crate::deadlines::{pop_due, Deadlines, Due};
use crate::offsets::HeldOffsets;
use crate::rows::{CartRow, CartStatus, Item, Trigger};

mod orders;

use crate::{Output, Position, Source};
pub(crate) use orders::Order;

/// The memory bounds of the carts (settings, not part of checkpoints: a
/// restore sets them from the configuration in force).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CartBounds {
    /// Open carts at most; a new one beyond first abandons the cart due soonest.
    pub open: usize,
    /// Abandoned carts remembered for recovery at most; the oldest go first.
    pub abandoned: usize,
}

impl Default for CartBounds {
    /// Unbounded, until the configuration's bounds are set.
    fn default() -> Self {
        CartBounds {
            open: usize::MAX,
            abandoned: usize::MAX,
        }
    }
}

impl CartBounds {
    pub(crate) fn of(cfg: &AggregatorConfig) -> Self {
        CartBounds {
            open: cfg.max_open_carts.max(1),
            abandoned: cfg.max_abandoned_carts.max(1),
        }
    }
}

/// Cart ids by a visitor or user id: a visitor's carts without a scan of
/// them all. Derived from the carts, so rebuilt after a restore, not saved.
#[derive(Default)]
struct ById(Map<String, Vec<String>>);

impl ById {
    fn add(&mut self, key: &str, id: &str) {
        if !key.is_empty() {
            self.0
                .entry(key.to_string())
                .or_default()
                .push(id.to_string());
        }
    }

    fn remove(&mut self, key: &str, id: &str) {
        if let Some(ids) = self.0.get_mut(key) {
            if let Some(i) = ids.iter().position(|x| x == id) {
                ids.swap_remove(i);
            }
            if ids.is_empty() {
                self.0.remove(key);
            }
        }
    }

    fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }
}

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

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Carts {
    timeout_ms: i64,
    recovery_ms: i64,
    payment_ms: i64,
    retention_ms: i64,
    max_orders: usize,
    open: Map<String, Cart>,
    deadlines: Deadlines<String>,
    abandoned: Map<String, CartRow>,
    abandoned_order: VecDeque<(i64, String)>,
    orders: Map<String, Order>,
    order_queue: VecDeque<(i64, String)>,
    /// Orders awaiting payment, by placement time.
    unpaid: VecDeque<(i64, String)>,
    /// Open carts by visitor.
    #[serde(skip)]
    open_by_visitor: ById,
    /// Abandoned carts by visitor, and by user where known.
    #[serde(skip)]
    abandoned_by_visitor: ById,
    #[serde(skip)]
    abandoned_by_user: ById,
    /// The memory bounds in force.
    #[serde(skip)]
    pub(crate) bounds: CartBounds,
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
            deadlines: Deadlines::new(),
            abandoned: Map::default(),
            abandoned_order: VecDeque::new(),
            orders: Map::default(),
            order_queue: VecDeque::new(),
            unpaid: VecDeque::new(),
            open_by_visitor: ById::default(),
            abandoned_by_visitor: ById::default(),
            abandoned_by_user: ById::default(),
            bounds: CartBounds::of(cfg),
        }
    }

    /// The offsets the open carts and unsettled orders hold.
    pub(crate) fn holds(&self) -> impl Iterator<Item = (Source, i64)> + '_ {
        let carts = self.open.values().map(|c| c.held);
        let orders = self.orders.values().filter_map(|o| o.held);
        carts.chain(orders).map(|p| (p.source, p.offset))
    }

    /// Rebuilds the indexes, which checkpoints do not hold.
    pub(crate) fn reindex(&mut self) {
        self.open_by_visitor = ById::default();
        for (id, c) in &self.open {
            self.open_by_visitor.add(&c.row.anonymous_id, id);
        }
        self.abandoned_by_visitor = ById::default();
        self.abandoned_by_user = ById::default();
        for (id, row) in &self.abandoned {
            self.abandoned_by_visitor.add(&row.anonymous_id, id);
            self.abandoned_by_user.add(&row.user_id, id);
        }
    }

    /// Drops the open and abandoned carts and the remembered orders of the
    /// persons `is` names (their visitors to `visitors`), releasing their
    /// offsets; returns (carts, orders) dropped. Deadlines and queue
    /// entries of what is gone are skipped when they come up.
    pub(crate) fn forget(
        &mut self,
        is: crate::forget::Forgets<'_>,
        held: &mut HeldOffsets,
        visitors: &mut Vec<String>,
    ) -> (u64, u64) {
        let named = |r: &CartRow| {
            let n = |id: &str| !id.is_empty() && is(id);
            n(&r.anonymous_id) || n(&r.user_id)
        };
        let before = self.open.len() + self.abandoned.len();
        self.open.retain(|_, c| {
            if !named(&c.row) {
                return true;
            }
            held.release(c.held.source, c.held.offset);
            visitors.push(c.row.anonymous_id.clone());
            false
        });
        self.abandoned.retain(|_, r| {
            let gone = named(r);
            if gone {
                visitors.push(r.anonymous_id.clone());
            }
            !gone
        });
        let carts = (before - self.open.len() - self.abandoned.len()) as u64;
        let orders = self.forget_orders(is, held, visitors);
        self.reindex();
        (carts, orders)
    }

    /// Open carts now.
    pub(crate) fn open_carts(&self) -> usize {
        self.open.len()
    }

    fn cart(
        &mut self,
        e: &Event,
        cart_id: &str,
        currency: &str,
        pos: Position,
        held: &mut HeldOffsets,
        (out, bounds): (&mut Output, CartBounds),
    ) -> &mut Cart {
        if !self.open.contains_key(cart_id) {
            if self.open.len() >= bounds.open {
                self.abandon_soonest(e.timestamp_ms, held, out, bounds);
            }
            self.open_by_visitor.add(&e.anonymous_id, cart_id);
            held.hold(pos.source, pos.offset);
            let at = e.timestamp_ms + self.timeout_ms + 1;
            self.deadlines.push(Reverse((at, cart_id.to_string())));
            self.open.insert(
                cart_id.to_string(),
                Cart {
                    row: CartRow {
                        cart_id: cart_id.to_string(),
                        anonymous_id: e.anonymous_id.to_string(),
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
            c.row.user_id.clear();
            c.row.user_id.push_str(u);
        }
        c
    }

    /// Applies one event in event-time order; finished carts go to `out`.
    fn apply_event(
        &mut self,
        e: &Event,
        pos: Position,
        held: &mut HeldOffsets,
        out: &mut Output,
        bounds: CartBounds,
    ) {
        match &e.kind {
            EventKind::AddToCart { cart_id, line } => {
                let currency = line.price.currency.as_str();
                let c = self.cart(e, cart_id, currency, pos, held, (out, bounds));
                // A line already in the cart is found by its id, without
                // making the key again: only a new line allocates.
                let (quantity, price) = (i64::from(line.quantity), line.price.minor);
                match c.lines.get_mut(line.product_id.as_str()) {
                    Some(entry) => *entry = (entry.0.saturating_add(quantity), price),
                    None => {
                        c.lines
                            .insert(line.product_id.to_string(), (quantity, price));
                    }
                }
            }
            EventKind::RemoveFromCart { cart_id, line } => {
                if let Some(c) = self.open.get_mut(cart_id.as_str()) {
                    c.row.last_activity_ms = e.timestamp_ms;
                    if let Some(entry) = c.lines.get_mut(line.product_id.as_str()) {
                        entry.0 = (entry.0 - i64::from(line.quantity)).max(0);
                    }
                }
            }
            EventKind::CheckoutStarted { cart_id, .. } => {
                if let Some(c) = self.open.get_mut(cart_id.as_str()) {
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
                self.convert(e, order_id, cart_id.as_deref(), held, &mut out.carts);
                self.recover(e, order_id, &mut out.carts);
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
                self.settle(order_id, held);
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
                let mut ids = self.open_by_visitor.get(&e.anonymous_id).to_vec();
                ids.sort();
                ids
            }
        };
        for id in ids {
            if let Some(c) = self.open.remove(&id) {
                self.open_by_visitor.remove(&c.row.anonymous_id, &id);
                held.release(c.held.source, c.held.offset);
                rows.push(c.finish(CartStatus::Converted, order_id, e.timestamp_ms));
            }
        }
    }

    fn recover(&mut self, e: &Event, order_id: &str, rows: &mut Vec<CartRow>) {
        let user = e.user_id.as_deref().unwrap_or("");
        let mut ids = self.abandoned_by_visitor.get(&e.anonymous_id).to_vec();
        ids.extend_from_slice(self.abandoned_by_user.get(user));
        ids.sort();
        ids.dedup();
        for id in ids {
            if let Some(mut c) = self.forget_abandoned(&id) {
                c.status = CartStatus::Recovered;
                c.order_id = order_id.to_string();
                c.at_ms = e.timestamp_ms;
                c.version = 2;
                rows.push(c);
            }
        }
    }

    /// The next open cart whose inactivity deadline is at or before
    /// `until` (the soonest due of all when `None`), taken off the heap.
    fn pop_due(&mut self, until: Option<i64>) -> Option<String> {
        let (open, timeout) = (&mut self.open, self.timeout_ms);
        pop_due(&mut self.deadlines, until, |id, at| {
            match open.get_mut(id) {
                Some(c) if c.queued_at == at => {
                    let now_at = c.row.last_activity_ms + timeout + 1;
                    if now_at > at {
                        // Active since queued.
                        c.queued_at = now_at;
                        Due::Later(now_at)
                    } else {
                        Due::Now
                    }
                }
                _ => Due::Stale,
            }
        })
    }

    /// Takes open cart `id` out (its offset and index entry too).
    fn take_open(&mut self, id: &str, held: &mut HeldOffsets) -> Option<Cart> {
        let c = self.open.remove(id)?;
        self.open_by_visitor.remove(&c.row.anonymous_id, id);
        held.release(c.held.source, c.held.offset);
        Some(c)
    }

    /// Abandons, at `now_ms`, the open cart due soonest, to make room for a
    /// new one within the bound.
    fn abandon_soonest(
        &mut self,
        now_ms: i64,
        held: &mut HeldOffsets,
        out: &mut Output,
        bounds: CartBounds,
    ) {
        let Some(id) = self.pop_due(None) else {
            return;
        };
        let Some(c) = self.take_open(&id, held) else {
            return;
        };
        out.evictions.carts += 1;
        if c.value() > 0 {
            let row = c.finish(CartStatus::Abandoned, "", now_ms);
            self.record_abandoned(vec![row], out, bounds);
        }
    }

    /// Emits newly abandoned carts (rows and triggers, in a stable order) and
    /// remembers them for recovery, within the bound (oldest forgotten first).
    fn record_abandoned(&mut self, mut now: Vec<CartRow>, out: &mut Output, bounds: CartBounds) {
        now.sort_by(|a, b| (a.at_ms, &a.cart_id).cmp(&(b.at_ms, &b.cart_id)));
        for row in now {
            // A cart id abandoned again replaces its earlier abandonment.
            self.forget_abandoned(&row.cart_id);
            self.abandoned_order
                .push_back((row.at_ms, row.cart_id.clone()));
            self.abandoned_by_visitor
                .add(&row.anonymous_id, &row.cart_id);
            self.abandoned_by_user.add(&row.user_id, &row.cart_id);
            self.abandoned.insert(row.cart_id.clone(), row.clone());
            out.triggers.push(Trigger::AbandonedCart(row.clone()));
            out.carts.push(row);
        }
        while self.abandoned.len() > bounds.abandoned {
            let Some((at, id)) = self.abandoned_order.pop_front() else {
                break;
            };
            if self.is_abandoned_at(&id, at) {
                self.forget_abandoned(&id);
                out.evictions.abandoned_carts += 1;
            }
        }
    }

    /// Whether `id`'s remembered abandonment is the one of time `at` (not
    /// an earlier one of the same cart id, nor one since recovered).
    fn is_abandoned_at(&self, id: &str, at: i64) -> bool {
        self.abandoned.get(id).is_some_and(|r| r.at_ms == at)
    }

    fn forget_abandoned(&mut self, id: &str) -> Option<CartRow> {
        let row = self.abandoned.remove(id)?;
        self.abandoned_by_visitor.remove(&row.anonymous_id, id);
        self.abandoned_by_user.remove(&row.user_id, id);
        Some(row)
    }

    /// Abandons carts, flags overdue orders and forgets what expired, up to
    /// `watermark_ms`.
    fn expire_until(
        &mut self,
        watermark_ms: i64,
        held: &mut HeldOffsets,
        out: &mut Output,
        bounds: CartBounds,
    ) {
        let mut abandoned_now = Vec::new();
        while let Some(id) = self.pop_due(Some(watermark_ms)) {
            let Some(c) = self.take_open(&id, held) else {
                continue;
            };
            let at_ms = c.row.last_activity_ms + self.timeout_ms;
            if c.value() > 0 {
                abandoned_now.push(c.finish(CartStatus::Abandoned, "", at_ms));
            }
        }
        self.record_abandoned(abandoned_now, out, bounds);
        while let Some((at, _)) = self.abandoned_order.front() {
            if at + self.recovery_ms >= watermark_ms {
                break;
            }
            let (at, id) = self.abandoned_order.pop_front().expect("front");
            if self.is_abandoned_at(&id, at) {
                self.forget_abandoned(&id);
            }
        }
        self.overdue_until(watermark_ms, held, &mut out.triggers);
        self.forget_orders_until(watermark_ms);
    }
}

impl crate::aggregate::Aggregate for Carts {
    fn apply(
        &mut self,
        a: &crate::aggregate::Applied<'_>,
        held: &mut HeldOffsets,
        out: &mut Output,
    ) {
        let bounds = self.bounds;
        self.apply_event(a.event, a.pos, held, out, bounds);
    }

    fn expire(&mut self, now_ms: i64, held: &mut HeldOffsets, out: &mut Output) {
        let bounds = self.bounds;
        self.expire_until(now_ms, held, out, bounds);
    }
}
