//! Hand-computed scenarios for each metric family: funnel, pages, orders and
//! revenue, feedback, carts and unpaid orders.

mod common;
use aggregator::{
    Aggregator, AggregatorConfig, CartStatus, Output, Position, Source, Trigger, OTHER,
};
use common::{MIN, T0};
use contract::{Event, EventKind, LineItem, Money, Product, Survey};

const SRC: Source = Source {
    stream: 0,
    partition: 0,
};

fn usd(minor: i64) -> Money {
    common::money(minor, "USD")
}

/// An event whose id says who, when and what.
fn ev(visitor: &str, ts: i64, kind: EventKind) -> Event {
    let id = format!("{visitor}-{ts}-{}", kind.type_name());
    common::event(&id, visitor, ts, kind)
}

fn pv(visitor: &str, ts: i64, path: &str) -> Event {
    let mut e = common::event(
        &format!("{visitor}-{ts}-{path}"),
        visitor,
        ts,
        EventKind::PageView,
    );
    e.page = Some(common::page(path));
    e
}

fn product_view(visitor: &str, ts: i64, id: &str) -> Event {
    ev(
        visitor,
        ts,
        EventKind::ProductView {
            product: Product {
                product_id: id.into(),
                category: None,
                price: Some(usd(1000)),
            },
        },
    )
}

fn line(id: &str, price: i64, quantity: u32) -> LineItem {
    LineItem {
        product_id: id.into(),
        price: usd(price),
        quantity,
    }
}

fn add(visitor: &str, ts: i64, cart: &str, l: LineItem) -> Event {
    ev(
        visitor,
        ts,
        EventKind::AddToCart {
            cart_id: cart.into(),
            line: l,
        },
    )
}

fn order(
    visitor: &str,
    ts: i64,
    id: &str,
    cart: Option<&str>,
    total: i64,
    lines: Vec<LineItem>,
) -> Event {
    ev(
        visitor,
        ts,
        EventKind::OrderPlaced {
            order_id: id.into(),
            cart_id: cart.map(contract::Text::from),
            total: usd(total),
            referral_code: None,
            products: lines,
        },
    )
}

fn run(cfg: AggregatorConfig, events: Vec<Event>, end: i64) -> Output {
    common::run(cfg, SRC, &events, &[end])
}

/// Visitor `a` views a page and a product, adds it to cart `ca` and orders
/// it (`o1`, 10.00), without a checkout event.
fn view_cart_order_a() -> Vec<Event> {
    vec![
        pv("a", T0, "/"),
        product_view("a", T0 + 1000, "p1"),
        add("a", T0 + 2000, "ca", line("p1", 1000, 1)),
        order(
            "a",
            T0 + 3000,
            "o1",
            Some("ca"),
            1000,
            vec![line("p1", 1000, 1)],
        ),
    ]
}

#[test]
fn funnel_counts_sequential_and_any_order_stages() {
    // a: view -> product -> cart -> order (no checkout): sequential up to add_to_cart.
    let mut events = view_cart_order_a();
    events.extend([
        // b: cart before product view: sequential stops at product_view.
        pv("b", T0, "/"),
        add("b", T0 + 1000, "cb", line("p2", 500, 1)),
        product_view("b", T0 + 2000, "p2"),
        // c: just a page view.
        pv("c", T0, "/"),
    ]);
    let out = run(AggregatorConfig::default(), events, T0 + 200 * MIN);
    let w = out
        .session_windows
        .iter()
        .max_by_key(|r| r.version)
        .unwrap();
    assert_eq!(w.sessions, 3);
    // stages: session, product_view, add_to_cart, checkout_started, order_placed
    assert_eq!(w.reached, vec![3, 2, 1, 0, 0]);
    assert_eq!(w.reached_any, vec![3, 2, 2, 0, 1]);
    assert_eq!((w.conversions, w.orders, w.revenue_minor), (1, 1, 1000));
    assert_eq!((w.visitors, w.new_visitors), (3, 3));
    assert!(
        w.reached.windows(2).all(|p| p[0] >= p[1]),
        "never increases down the stages"
    );
}

#[test]
fn a_store_without_checkout_drops_the_stage() {
    let cfg = AggregatorConfig {
        funnel_stages: ["product_view", "add_to_cart", "order_placed"]
            .map(String::from)
            .to_vec(),
        ..AggregatorConfig::default()
    };
    let events = view_cart_order_a();
    let out = run(cfg, events, T0 + 200 * MIN);
    assert_eq!(
        out.session_windows.last().unwrap().reached,
        vec![1, 1, 1, 1]
    );
}

#[test]
fn pages_count_views_entrances_exits_and_sessions_with_both_exit_rates() {
    let events = vec![
        pv("a", T0, "/a"),
        pv("a", T0 + 1000, "/b"),
        pv("b", T0, "/a"),
        pv("c", T0, "/a"),
        pv("c", T0 + 1000, "/a"),
    ];
    let out = run(AggregatorConfig::default(), events, T0 + 200 * MIN);
    let page = |path: &str| {
        out.pages
            .iter()
            .filter(|p| p.path == path)
            .max_by_key(|p| p.version)
            .unwrap()
            .clone()
    };
    let a = page("/a");
    assert_eq!(
        (a.page_views, a.entrances, a.exits, a.sessions),
        (4, 3, 2, 3)
    );
    let b = page("/b");
    assert_eq!(
        (b.page_views, b.entrances, b.exits, b.sessions),
        (1, 0, 1, 1)
    );
    // Exits of closed sessions sum to their count.
    let exits: u64 = ["/a", "/b"].iter().map(|p| page(p).exits).sum();
    assert_eq!(exits, out.sessions.len() as u64);
}

#[test]
fn distinct_paths_are_capped_per_window() {
    let cfg = AggregatorConfig {
        max_paths_per_window: 2,
        ..AggregatorConfig::default()
    };
    let events = vec![
        pv("a", T0, "/1"),
        pv("b", T0, "/2"),
        pv("c", T0, "/3"),
        pv("d", T0, "/4"),
        pv("e", T0 + MIN, "/3"),
    ];
    let out = run(cfg, events, T0 + 200 * MIN);
    let last = |path: &str, w: i64| {
        out.pages
            .iter()
            .filter(|p| p.path == path && p.window_start_ms == w)
            .max_by_key(|p| p.version)
            .map(|p| p.page_views)
    };
    assert_eq!(last(OTHER, T0), Some(2));
    assert_eq!(last("/3", T0), None);
    assert_eq!(last("/3", T0 + MIN), Some(1), "the cap is per window");
}

#[test]
fn orders_and_revenue_are_exact_and_net_of_refunds_and_cancellations() {
    let events = vec![
        pv("a", T0, "/"),
        order(
            "a",
            T0 + 1000,
            "o1",
            None,
            10_000,
            vec![line("p1", 5_000, 2)],
        ),
        ev(
            "a",
            T0 + 2000,
            EventKind::OrderPaid {
                order_id: "o1".into(),
            },
        ),
        order(
            "a",
            T0 + 3000,
            "o2",
            None,
            5_005,
            vec![line("p2", 5_005, 1)],
        ),
        ev(
            "a",
            T0 + MIN,
            EventKind::OrderCancelled {
                order_id: "o2".into(),
            },
        ),
        ev(
            "a",
            T0 + MIN + 1,
            EventKind::OrderRefunded {
                order_id: "o1".into(),
                amount: usd(1_001),
            },
        ),
    ];
    let out = run(AggregatorConfig::default(), events, T0 + 200 * MIN);
    let w0 = out.orders.iter().find(|o| o.window_start_ms == T0).unwrap();
    assert_eq!((w0.orders, w0.paid, w0.gross_minor), (2, 1, 15_005));
    let w1 = out
        .orders
        .iter()
        .find(|o| o.window_start_ms == T0 + MIN)
        .unwrap();
    assert_eq!(
        (
            w1.cancelled,
            w1.cancelled_minor,
            w1.refunds,
            w1.refunded_minor
        ),
        (1, 5_005, 1, 1_001)
    );
    let net: i64 = out
        .orders
        .iter()
        .map(|o| o.gross_minor - o.cancelled_minor - o.refunded_minor)
        .sum();
    assert_eq!(net, 8_999);
    let p1 = out
        .products
        .iter()
        .find(|p| &*p.product_id == "p1")
        .unwrap();
    assert_eq!((p1.purchases, p1.revenue_minor), (2, 10_000));
}

#[test]
fn feedback_scores_nps_csat_and_ces() {
    let survey = |v: &str, ts: i64, survey: Survey, score: f64, scale_max: f64| {
        ev(
            v,
            ts,
            EventKind::SurveyResponse {
                survey,
                score,
                scale_max,
            },
        )
    };
    let events = vec![
        survey("a", T0, Survey::Nps, 10.0, 10.0),
        survey("b", T0, Survey::Nps, 9.0, 10.0),
        survey("c", T0, Survey::Nps, 7.0, 10.0),
        survey("d", T0, Survey::Nps, 3.0, 10.0),
        survey("e", T0, Survey::Csat, 4.0, 5.0),
        survey("f", T0, Survey::Csat, 2.0, 5.0),
        survey("g", T0, Survey::Csat, 10.0, 10.0),
        survey("h", T0, Survey::Ces, 3.0, 7.0),
    ];
    let out = run(AggregatorConfig::default(), events, T0 + 200 * MIN);
    let f = &out.feedback[0];
    assert_eq!(
        (
            f.nps_responses,
            f.nps_promoters,
            f.nps_passives,
            f.nps_detractors
        ),
        (4, 2, 1, 1)
    );
    // NPS = 50% promoters - 25% detractors = 25.
    assert_eq!(
        100 * (f.nps_promoters as i64 - f.nps_detractors as i64) / f.nps_responses as i64,
        25
    );
    assert_eq!((f.csat_responses, f.csat_satisfied), (3, 2));
    assert_eq!(f.csat_score_milli, 4000 + 2000 + 5000);
    assert_eq!((f.ces_responses, f.ces_score_milli), (1, 3000));
}

#[test]
fn carts_are_abandoned_converted_recovered_or_ignored_when_emptied() {
    let remove = |v: &str, ts: i64, cart: &str, l: LineItem| {
        ev(
            v,
            ts,
            EventKind::RemoveFromCart {
                cart_id: cart.into(),
                line: l,
            },
        )
    };
    let events = vec![
        // a abandons a cart worth 2 x 10.00, then orders 2 days later: recovered.
        add("a", T0, "ca", line("p1", 1000, 2)),
        order(
            "a",
            T0 + 2 * 24 * 60 * MIN,
            "oa",
            None,
            2000,
            vec![line("p1", 1000, 2)],
        ),
        // b empties the cart: not abandoned.
        add("b", T0, "cb", line("p1", 1000, 1)),
        remove("b", T0 + 1000, "cb", line("p1", 1000, 1)),
        // c orders the cart 59 minutes after the last activity: converted.
        add("c", T0, "cc", line("p2", 300, 1)),
        order(
            "c",
            T0 + 59 * MIN,
            "oc",
            Some("cc"),
            300,
            vec![line("p2", 300, 1)],
        ),
        ev(
            "c",
            T0 + 60 * MIN,
            EventKind::OrderPaid {
                order_id: "oc".into(),
            },
        ),
    ];
    let out = run(AggregatorConfig::default(), events, T0 + 10 * 24 * 60 * MIN);
    let cart = |id: &str| {
        out.carts
            .iter()
            .filter(|c| c.cart_id == id)
            .max_by_key(|c| c.version)
            .cloned()
    };
    let ca = cart("ca").unwrap();
    assert_eq!(
        (ca.status, ca.value_minor, ca.version, ca.order_id.as_str()),
        (CartStatus::Recovered, 2000, 2, "oa")
    );
    assert!(out.carts.iter().any(|c| c.cart_id == "ca"
        && c.status == CartStatus::Abandoned
        && c.at_ms == T0 + 60 * MIN));
    assert_eq!(cart("cb"), None);
    assert_eq!(cart("cc").unwrap().status, CartStatus::Converted);
    // One trigger for the abandoned cart, one for the never-paid order "oa".
    let kinds: Vec<String> = out
        .triggers
        .iter()
        .map(|t| match t {
            Trigger::AbandonedCart(c) => format!("cart {}", c.cart_id),
            Trigger::OverdueOrder { order_id, .. } => format!("order {order_id}"),
        })
        .collect();
    assert_eq!(kinds, ["cart ca", "order oa"]);
}

#[test]
fn an_order_after_the_timeout_recovers_rather_than_converts_however_advances_are_batched() {
    let events = vec![
        add("a", T0, "ca", line("p1", 1000, 1)),
        order(
            "a",
            T0 + 61 * MIN,
            "oa",
            None,
            1000,
            vec![line("p1", 1000, 1)],
        ),
    ];
    // One big advance and many small ones give the same outcome.
    let big = run(AggregatorConfig::default(), events.clone(), T0 + 200 * MIN);
    let mut agg = Aggregator::new(AggregatorConfig::default());
    let mut small = Output::default();
    for (i, e) in events.into_iter().enumerate() {
        agg.push(
            e,
            Position {
                source: SRC,
                offset: i as i64,
            },
        )
        .unwrap();
    }
    for m in 0..200 {
        small.extend(agg.advance(T0 + m * MIN));
    }
    for out in [big, small] {
        let statuses: Vec<_> = out.carts.iter().map(|c| c.status).collect();
        assert_eq!(statuses, [CartStatus::Abandoned, CartStatus::Recovered]);
    }
}

#[test]
fn ad_spend_splits_exactly_over_the_days_of_its_period() {
    let shares = aggregator::split_by_day(100_001, T0 + 12 * 60 * MIN, T0 + 3 * 24 * 60 * MIN);
    // Half a day, then two whole days: 1/5, 2/5, 2/5, the remainder on the last.
    assert_eq!(
        shares.iter().map(|s| s.1).collect::<Vec<_>>(),
        vec![20_000, 40_000, 40_001]
    );
    assert_eq!(shares[0].0, T0);
    assert_eq!(shares.iter().map(|s| s.1).sum::<i64>(), 100_001);
}

#[test]
fn orders_cancellations_and_refunds_become_customer_facts() {
    let mut placed = order("v", T0 + 1000, "o1", None, 5000, vec![line("p", 5000, 1)]);
    placed.user_id = Some("u1".into());
    let events = vec![
        pv("v", T0, "/"),
        placed,
        ev(
            "v",
            T0 + 2000,
            EventKind::OrderCancelled {
                order_id: "o1".into(),
            },
        ),
        order("w", T0 + 3000, "o2", None, 700, vec![line("p", 700, 1)]),
    ];
    let out = run(AggregatorConfig::default(), events, T0 + 200 * MIN);
    let facts: Vec<(String, aggregator::FactKind, i64)> = out
        .customer_facts
        .iter()
        .map(|f| (f.customer_id.clone(), f.kind, f.amount_minor))
        .collect();
    assert_eq!(
        facts,
        vec![
            ("u1".to_string(), aggregator::FactKind::Order, 5000),
            ("u1".to_string(), aggregator::FactKind::Cancel, 5000),
            ("w".to_string(), aggregator::FactKind::Order, 700),
        ]
    );
}

/// The latest row of each cart.
fn latest_carts(out: &Output) -> Vec<(String, CartStatus, i64, String)> {
    let mut latest: std::collections::BTreeMap<String, &aggregator::CartRow> = Default::default();
    for c in &out.carts {
        if latest
            .get(&c.cart_id)
            .is_none_or(|l| c.version >= l.version)
        {
            latest.insert(c.cart_id.clone(), c);
        }
    }
    latest
        .into_values()
        .map(|c| (c.cart_id.clone(), c.status, c.at_ms, c.order_id.clone()))
        .collect()
}

#[test]
fn an_order_without_a_cart_id_converts_each_open_cart_of_its_visitor_and_recovers_by_user() {
    let mut by_user = order("u-device", T0 + 3 * 60 * MIN, "ou", None, 100, vec![]);
    by_user.user_id = Some("user-1".into());
    let mut abandoning = add("x", T0, "cx", line("p1", 100, 1));
    abandoning.user_id = Some("user-1".into());
    let events = vec![
        add("d", T0, "cd1", line("p1", 100, 1)),
        add("d", T0 + MIN, "cd2", line("p2", 100, 1)),
        add("e", T0, "ce", line("p1", 100, 1)),
        order("d", T0 + 2 * MIN, "od", None, 200, vec![]),
        abandoning,
        by_user,
    ];
    let out = run(AggregatorConfig::default(), events, T0 + 10 * 60 * MIN);
    let converted = |id: &str, at: i64, order: &str| {
        (id.to_string(), CartStatus::Converted, at, order.to_string())
    };
    assert_eq!(
        latest_carts(&out),
        [
            converted("cd1", T0 + 2 * MIN, "od"),
            converted("cd2", T0 + 2 * MIN, "od"),
            (
                "ce".into(),
                CartStatus::Abandoned,
                T0 + 60 * MIN,
                String::new()
            ),
            (
                "cx".into(),
                CartStatus::Recovered,
                T0 + 3 * 60 * MIN,
                "ou".into()
            ),
        ]
    );
}

#[test]
fn past_the_cart_bounds_the_cart_due_soonest_is_abandoned_early_and_the_oldest_abandoned_forgotten()
{
    let cfg = AggregatorConfig {
        max_open_carts: 2,
        max_abandoned_carts: 1,
        ..AggregatorConfig::default()
    };
    let events = vec![
        add("a", T0, "ca", line("p1", 100, 1)),
        add("b", T0 + MIN, "cb", line("p1", 100, 1)),
        add("a", T0 + 2 * MIN, "ca", line("p2", 100, 1)), // ca now due after cb
        add("c", T0 + 3 * MIN, "cc", line("p1", 100, 1)), // a third: cb goes early
        // ca (at 62 min) and cc (at 63 min) are abandoned by timeout; each
        // pushes the one before out of memory, so only cc can recover.
        order("a", T0 + 5 * 60 * MIN, "oa", None, 200, vec![]),
        order("c", T0 + 5 * 60 * MIN + 1, "oc", None, 100, vec![]),
    ];
    let out = run(cfg, events, T0 + 10 * 60 * MIN);
    assert_eq!(out.evictions.carts, 1);
    assert_eq!(out.evictions.abandoned_carts, 2);
    let abandoned = |id: &str, at: i64| (id.to_string(), CartStatus::Abandoned, at, String::new());
    assert_eq!(
        latest_carts(&out),
        [
            abandoned("ca", T0 + 62 * MIN),
            abandoned("cb", T0 + 3 * MIN),
            (
                "cc".into(),
                CartStatus::Recovered,
                T0 + 5 * 60 * MIN + 1,
                "oc".into()
            ),
        ]
    );
    let triggers = out
        .triggers
        .iter()
        .filter(|t| matches!(t, aggregator::Trigger::AbandonedCart(_)))
        .count();
    assert_eq!(triggers, 3, "one trigger per abandonment, early or not");
}

#[test]
fn after_a_restore_orders_still_find_the_visitors_open_and_abandoned_carts() {
    let cfg = AggregatorConfig::default();
    let mut agg = Aggregator::new(cfg.clone());
    let at = |offset| Position {
        source: SRC,
        offset,
    };
    agg.push(add("a", T0, "ca", line("p1", 100, 1)), at(0))
        .unwrap();
    agg.push(add("b", T0 + 2 * 60 * MIN, "cb", line("p1", 100, 1)), at(1))
        .unwrap();
    let mut out = agg.advance(T0 + 2 * 60 * MIN + MIN); // ca abandoned, cb open
    let mut agg = Aggregator::restore(&cfg, &agg.snapshot()).expect("restores");
    let later = T0 + 2 * 60 * MIN + 2 * MIN;
    agg.push(order("a", later, "oa", None, 100, vec![]), at(2))
        .unwrap();
    agg.push(order("b", later, "ob", None, 100, vec![]), at(3))
        .unwrap();
    out.extend(agg.advance(later + MIN));
    assert_eq!(
        latest_carts(&out),
        [
            ("ca".into(), CartStatus::Recovered, later, "oa".into()),
            ("cb".into(), CartStatus::Converted, later, "ob".into()),
        ]
    );
}
