//! Time to convert per funnel stage: the histogram of the time from a
//! session's start to each stage it reaches in funnel order, against
//! figures computed by hand.

mod common;
use aggregator::stage_times::{StageTimeRow, BUCKETS};
use aggregator::{AggregatorConfig, Channel, Source};
use common::{money, MIN, T0};
use contract::{Event, EventKind, LineItem, Product};

const SRC: Source = Source {
    stream: 1,
    partition: 2,
};

fn ev(visitor: &str, ts: i64, kind: EventKind) -> Event {
    let id = format!("{visitor}-{ts}-{}", kind.type_name());
    let page = matches!(kind, EventKind::PageView).then(|| common::page("/"));
    Event {
        page,
        ..common::event(&id, visitor, ts, kind)
    }
}

fn view(visitor: &str, ts: i64) -> Event {
    let product = Product {
        product_id: "p1".into(),
        category: None,
        price: Some(money(1_000, "USD")),
    };
    ev(visitor, ts, EventKind::ProductView { product })
}

fn add(visitor: &str, ts: i64) -> Event {
    let line = LineItem {
        product_id: "p1".into(),
        price: money(1_000, "USD"),
        quantity: 1,
    };
    let cart_id = format!("cart-{visitor}").into();
    ev(visitor, ts, EventKind::AddToCart { cart_id, line })
}

fn checkout(visitor: &str, ts: i64) -> Event {
    let kind = EventKind::CheckoutStarted {
        cart_id: format!("cart-{visitor}").into(),
        value: None,
    };
    ev(visitor, ts, kind)
}

/// The final row of each (window, stage).
fn latest(rows: &[StageTimeRow]) -> Vec<(i64, u8, String, [u64; BUCKETS])> {
    let mut by = std::collections::BTreeMap::new();
    for r in rows {
        let key = (r.window_start_ms, r.stage_index);
        let newer = by
            .get(&key)
            .is_none_or(|l: &&StageTimeRow| r.version > l.version);
        if newer {
            by.insert(key, r);
        }
    }
    let rows = by.into_values();
    let rows = rows.map(|r| (r.window_start_ms, r.stage_index, r.stage.clone(), r.buckets));
    rows.collect()
}

#[test]
fn sessions_count_the_time_to_each_stage_they_reach_in_funnel_order() {
    let events = [
        // a: a view after 8 s, a cart after 3 min, checkout after 25 min.
        ev("a", T0, EventKind::PageView),
        view("a", T0 + 8_000),
        add("a", T0 + 3 * MIN),
        checkout("a", T0 + 25 * MIN),
        // b (same minute): a cart before any view reaches no stage
        // sequentially; its view after 40 s does, then a second view
        // changes nothing.
        ev("b", T0 + 20_000, EventKind::PageView),
        add("b", T0 + 30_000),
        view("b", T0 + 60_000),
        view("b", T0 + 70_000),
        // c, a minute later: a view at its very start, exactly 10 s.
        ev("c", T0 + MIN, EventKind::PageView),
        view("c", T0 + MIN + 10_000),
    ];
    let out = common::run(
        AggregatorConfig::default(),
        SRC,
        &events,
        &[T0 + 3 * 3_600_000],
    );
    assert!(out
        .stage_times
        .iter()
        .all(|r| r.channel == Channel::Direct && r.partition == 2));
    let b = |i: usize| {
        let mut buckets = [0; BUCKETS];
        buckets[i] += 1;
        buckets
    };
    let two = |i: usize, j: usize| {
        let mut buckets = [0; BUCKETS];
        buckets[i] += 1;
        buckets[j] += 1;
        buckets
    };
    let s = String::from;
    assert_eq!(
        latest(&out.stage_times),
        [
            // Window T0: a's view (8 s: up to 10 s), b's view 40 s after
            // b's start (up to 1 min); a's cart (3 min: up to 5 min); a's
            // checkout (25 min: up to 30 min).
            (T0, 2, s("product_view"), two(0, 2)),
            (T0, 3, s("add_to_cart"), b(4)),
            (T0, 4, s("checkout_started"), b(6)),
            // Window T0 + 1 min: c's view, 10 s exactly.
            (T0 + MIN, 2, s("product_view"), b(0)),
        ]
    );
}
