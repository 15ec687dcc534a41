//! The triggers' payloads are byte for byte those the earlier encoders
//! built through `serde_json::Value` (kept here as the oracle).

use super::*;
use aggregator::{CartRow, CartStatus, Channel, CustomerRow};
use serde_json::{json, Value};

fn items_value(items: &[Item]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| json!({ "product_id": i.product_id, "quantity": i.quantity, "price_minor": i.price_minor }))
            .collect(),
    )
}

/// The encoder before payloads were serialized straight from the rows.
fn earlier(t: &Trigger) -> (String, Vec<u8>) {
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
                "items": items_value(&c.items),
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
                "items": items_value(lines),
                "placed": format_rfc3339(*placed_ms),
                "at": format_rfc3339(*at_ms),
            }),
        ),
    };
    (key, serde_json::to_vec(&v).unwrap_or_default())
}

fn earlier_lapsed(c: &CustomerRow) -> (String, Vec<u8>) {
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

fn item(product_id: &str, quantity: i64, price_minor: i64) -> Item {
    Item {
        product_id: product_id.into(),
        quantity,
        price_minor,
    }
}

/// Strings that JSON escapes, empty ones, negative and zero amounts,
/// no items and several.
#[test]
fn triggers_are_the_bytes_the_value_encoder_wrote() {
    let cart = |user_id: &str, items: Vec<Item>, value_minor| {
        Trigger::AbandonedCart(CartRow {
            cart_id: "c-\"1\"\\é\u{1}".into(),
            anonymous_id: "anon 1".into(),
            user_id: user_id.into(),
            status: CartStatus::Abandoned,
            opened_ms: 1_700_000_000_000,
            last_activity_ms: 1_700_000_060_123,
            value_minor,
            currency: "JPY".into(),
            items,
            order_id: String::new(),
            at_ms: 1_700_003_660_123,
            partition: 2,
            version: 1,
        })
    };
    let order = |user_id: &str, items: Vec<Item>, total_minor| Trigger::OverdueOrder {
        order_id: "o/9\t".into(),
        anonymous_id: String::new(),
        user_id: user_id.into(),
        total_minor,
        currency: "EUR".into(),
        items,
        placed_ms: 0,
        at_ms: -1,
        partition: 0,
    };
    let two = vec![item("p\"1", 2, 1999), item("", -1, 0)];
    let all = [
        cart("", vec![], 0),
        cart("u@example.com", two.clone(), 3998),
        order("", vec![item("p", 1, -5)], -5),
        order("u-7", two, i64::MAX),
    ];
    for t in &all {
        assert_eq!(encode(t), earlier(t), "{t:?}");
    }
    let customer = |median_gap_ms, orders, net_minor| CustomerRow {
        customer_id: "cust \"x\"".into(),
        first_order_ms: 1_600_000_000_000,
        last_order_ms: 1_700_000_000_001,
        orders,
        net_minor,
        median_gap_ms,
        first_channel: Channel::Direct,
        lapsed: true,
        version: 3,
        currency: String::new(),
    };
    for c in [
        customer(0, 1, 0),
        customer(86_400_000 * 45 + 1, 7, -120),
        customer(1, u64::MAX, i64::MIN),
    ] {
        assert_eq!(encode_lapsed(&c), earlier_lapsed(&c), "{c:?}");
    }
}
