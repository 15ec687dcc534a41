//! The triggers topic: abandoned carts and overdue orders as JSON, keyed by
//! visitor, with what an e-mail or SMS system needs to act.

use aggregator::{Item, Trigger};
use contract::time::format_rfc3339;
use serde::Serialize;

/// An item as triggers carry it. Fields in name order: the payloads kept
/// the sorted keys of the `serde_json::Value` they were built as.
#[derive(Serialize)]
struct ItemOut<'a> {
    price_minor: i64,
    product_id: &'a str,
    quantity: i64,
}

/// A trigger's items, written as a list of [`ItemOut`] without one.
struct Items<'a>(&'a [Item]);

impl Serialize for Items<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|i| ItemOut {
            price_minor: i.price_minor,
            product_id: &i.product_id,
            quantity: i.quantity,
        }))
    }
}

/// A lapsed-customer trigger (fields in name order, see [`ItemOut`]).
#[derive(Serialize)]
struct LapsedOut<'a> {
    currency: &'a str,
    customer_id: &'a str,
    first_order: String,
    kind: &'static str,
    last_order: String,
    median_gap_days: f64,
    net_minor: i64,
    orders: u64,
    trigger_id: String,
}

/// The key and payload of a lapsed-customer trigger.
pub fn encode_lapsed(c: &aggregator::CustomerRow) -> (String, Vec<u8>) {
    let v = LapsedOut {
        currency: &c.currency,
        customer_id: &c.customer_id,
        first_order: format_rfc3339(c.first_order_ms),
        kind: "lapsed_customer",
        last_order: format_rfc3339(c.last_order_ms),
        median_gap_days: c.median_gap_ms as f64 / 86_400_000.0,
        net_minor: c.net_minor,
        orders: c.orders,
        trigger_id: format!("lapsed_customer:{}:{}", c.customer_id, c.orders),
    };
    (
        c.customer_id.clone(),
        serde_json::to_vec(&v).unwrap_or_default(),
    )
}

/// The kind label of a trigger (also its metric label).
pub fn kind(t: &Trigger) -> &'static str {
    match t {
        Trigger::AbandonedCart(_) => "abandoned_cart",
        Trigger::OverdueOrder { .. } => "overdue_order",
    }
}

/// An abandoned-cart trigger (fields in name order, see [`ItemOut`]).
#[derive(Serialize)]
struct CartOut<'a> {
    anonymous_id: &'a str,
    at: String,
    cart_id: &'a str,
    currency: &'a str,
    items: Items<'a>,
    kind: &'static str,
    last_activity: String,
    trigger_id: String,
    user_id: Option<&'a str>,
    value_minor: i64,
}

/// An overdue-order trigger (fields in name order, see [`ItemOut`]).
#[derive(Serialize)]
struct OrderOut<'a> {
    anonymous_id: &'a str,
    at: String,
    currency: &'a str,
    items: Items<'a>,
    kind: &'static str,
    order_id: &'a str,
    placed: String,
    total_minor: i64,
    trigger_id: String,
    user_id: Option<&'a str>,
}

/// `s`, or none when it is empty.
fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// The Kafka key (the visitor) and JSON payload of a trigger. The `trigger_id`
/// is stable, so a consumer can drop a repeat after a pipeline replay.
/// Serialized straight from the row: building a `serde_json::Value` first
/// cost an allocation per key and value.
pub fn encode(t: &Trigger) -> (String, Vec<u8>) {
    let payload = match t {
        Trigger::AbandonedCart(c) => serde_json::to_vec(&CartOut {
            anonymous_id: &c.anonymous_id,
            at: format_rfc3339(c.at_ms),
            cart_id: &c.cart_id,
            currency: &c.currency,
            items: Items(&c.items),
            kind: kind(t),
            last_activity: format_rfc3339(c.last_activity_ms),
            trigger_id: format!("abandoned_cart:{}", c.cart_id),
            user_id: non_empty(&c.user_id),
            value_minor: c.value_minor,
        }),
        Trigger::OverdueOrder {
            order_id,
            anonymous_id,
            user_id,
            total_minor,
            currency,
            items: lines,
            placed_ms,
            at_ms,
            ..
        } => serde_json::to_vec(&OrderOut {
            anonymous_id,
            at: format_rfc3339(*at_ms),
            currency,
            items: Items(lines),
            kind: kind(t),
            order_id,
            placed: format_rfc3339(*placed_ms),
            total_minor: *total_minor,
            trigger_id: format!("overdue_order:{order_id}"),
            user_id: non_empty(user_id),
        }),
    };
    // The visitor is the key of both kinds.
    let key = t.person().0.to_string();
    (key, payload.unwrap_or_default())
}

#[cfg(test)]
#[path = "triggers_tests.rs"]
mod tests;
