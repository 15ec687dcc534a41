//! The triggers topic: abandoned carts and overdue orders as JSON, keyed by
//! visitor, with what an e-mail or SMS system needs to act.

use aggregator::{Item, Trigger};
use contract::time::format_rfc3339;
use serde_json::{json, Value};

fn items(items: &[Item]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| json!({ "product_id": i.product_id, "quantity": i.quantity, "price_minor": i.price_minor }))
            .collect(),
    )
}

/// The key and payload of a lapsed-customer trigger.
pub fn encode_lapsed(c: &aggregator::CustomerRow) -> (String, Vec<u8>) {
    let v = json!({
        "trigger_id": format!("lapsed_customer:{}:{}", c.customer_id, c.orders),
        "kind": "lapsed_customer",
        "customer_id": c.customer_id,
        "orders": c.orders,
        "net_minor": c.net_minor,
        "currency": c.currency,
        "first_order": format_rfc3339(c.first_order_ms),
        "last_order": format_rfc3339(c.last_order_ms),
        "median_gap_days": c.median_gap_ms as f64 / 86_400_000.0,
    });
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

/// The Kafka key (the visitor) and JSON payload of a trigger. The `trigger_id`
/// is stable, so a consumer can drop a repeat after a pipeline replay.
pub fn encode(t: &Trigger) -> (String, Vec<u8>) {
    let (key, v) = match t {
        Trigger::AbandonedCart(c) => (
            c.anonymous_id.clone(),
            json!({
                "trigger_id": format!("abandoned_cart:{}", c.cart_id),
                "kind": kind(t),
                "cart_id": c.cart_id,
                "anonymous_id": c.anonymous_id,
                "user_id": (!c.user_id.is_empty()).then_some(&c.user_id),
                "value_minor": c.value_minor,
                "currency": c.currency,
                "items": items(&c.items),
                "last_activity": format_rfc3339(c.last_activity_ms),
                "at": format_rfc3339(c.at_ms),
            }),
        ),
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
        } => (
            anonymous_id.clone(),
            json!({
                "trigger_id": format!("overdue_order:{order_id}"),
                "kind": kind(t),
                "order_id": order_id,
                "anonymous_id": anonymous_id,
                "user_id": (!user_id.is_empty()).then_some(user_id),
                "total_minor": total_minor,
                "currency": currency,
                "items": items(lines),
                "placed": format_rfc3339(*placed_ms),
                "at": format_rfc3339(*at_ms),
            }),
        ),
    };
    (key, serde_json::to_vec(&v).unwrap_or_default())
}
