//! Orders as facts: the rows of `orders`, from storefront and payment
//! events through the visitor's aggregator and the customer book, checked
//! against figures computed by hand.

mod common;
use aggregator::attribution::{AttributionDayRow, Model, UNITS};
use aggregator::{
    AggregatorConfig, Channel, CustomerBook, CustomerFact, FactKind, OrderRow, Output, Source,
};
use common::{money, MIN, T0};
use contract::{Campaign, Event, EventKind, Experiment, LineItem};
use std::collections::BTreeMap;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;
const SRC: Source = Source {
    stream: 1,
    partition: 3,
};

fn ev(id: &str, visitor: &str, ts: i64, kind: EventKind) -> Event {
    common::event(id, visitor, ts, kind)
}

/// A page view from an email campaign, in experiment `checkout` variant B.
fn landing(visitor: &str, ts: i64) -> Event {
    Event {
        page: Some(common::page("/")),
        campaign: Campaign {
            source: Some("newsletter".into()),
            medium: Some("email".into()),
            ..Campaign::default()
        }
        .boxed(),
        experiment: Some(Box::new(Experiment {
            id: "checkout".into(),
            variant: "B".into(),
        })),
        ..ev(
            &format!("{visitor}-{ts}-pv"),
            visitor,
            ts,
            EventKind::PageView,
        )
    }
}

/// A page view from `medium` (`source` it names), or a direct one.
fn visit(visitor: &str, ts: i64, medium: Option<(&str, &str)>) -> Event {
    Event {
        page: Some(common::page("/")),
        campaign: Campaign {
            source: medium.map(|m| m.0.into()),
            medium: medium.map(|m| m.1.into()),
            ..Campaign::default()
        }
        .boxed(),
        ..ev(
            &format!("{visitor}-{ts}-visit"),
            visitor,
            ts,
            EventKind::PageView,
        )
    }
}

fn placed(order: &str, visitor: &str, user: &str, ts: i64, lines: &[(u32, i64)]) -> Event {
    let products: Vec<LineItem> = lines
        .iter()
        .enumerate()
        .map(|(i, &(quantity, price))| LineItem {
            product_id: format!("p{i}").into(),
            price: money(price, "USD"),
            quantity,
        })
        .collect();
    let total = products
        .iter()
        .map(|l| l.price.minor * i64::from(l.quantity))
        .sum();
    let kind = EventKind::OrderPlaced {
        order_id: order.into(),
        cart_id: None,
        total: money(total, "USD"),
        referral_code: None,
        products,
    };
    Event {
        user_id: (!user.is_empty()).then(|| user.into()),
        ..ev(&format!("{order}:placed"), visitor, ts, kind)
    }
}

/// A payment system's event about `what`: the visitor's key, no user id.
fn settled(what: &str, visitor: &str, ts: i64, kind: EventKind) -> Event {
    ev(&format!("{what}:{}", kind.type_name()), visitor, ts, kind)
}

fn paid(order: &str, visitor: &str, ts: i64) -> Event {
    let kind = EventKind::OrderPaid {
        order_id: order.into(),
    };
    settled(order, visitor, ts, kind)
}

fn refunded(order: &str, visitor: &str, ts: i64, minor: i64, currency: &str) -> Event {
    let kind = EventKind::OrderRefunded {
        order_id: order.into(),
        amount: money(minor, currency),
    };
    settled(&format!("{order}-{minor}{currency}"), visitor, ts, kind)
}

fn cancelled(order: &str, visitor: &str, ts: i64) -> Event {
    let kind = EventKind::OrderCancelled {
        order_id: order.into(),
    };
    settled(order, visitor, ts, kind)
}

/// What the customer book made of the visitor side's facts.
struct Book {
    /// The latest row of each order.
    orders: BTreeMap<String, OrderRow>,
    /// The latest net revenue of each customer.
    net: BTreeMap<String, i64>,
    /// The latest attribution row of each (day, channel, model).
    attribution: BTreeMap<(i64, Channel, Model), AttributionDayRow>,
    book: CustomerBook,
    /// The visitor side's output.
    out: Output,
}

/// The visitor's side over `events`, then the customer book over its facts
/// (facts partition 0), advanced in two steps to `end`.
fn orders(events: &[Event], end: i64) -> Book {
    let out = common::run(AggregatorConfig::default(), SRC, events, &[end]);
    let mut book = CustomerBook::new(30 * DAY, "USD");
    for f in &out.customer_facts {
        book.push(f.clone(), 0).expect("not late");
    }
    let (mut orders, mut net) = (BTreeMap::new(), BTreeMap::new());
    let mut attribution = BTreeMap::new();
    for w in [end - 20 * DAY, end] {
        let step = book.advance(w);
        for o in step.orders {
            let newer = orders
                .get(&o.order_id)
                .is_none_or(|l: &OrderRow| o.version > l.version);
            if newer {
                orders.insert(o.order_id.clone(), o);
            }
        }
        for c in step.customers {
            net.insert(c.customer_id.clone(), c.net_minor);
        }
        for a in step.attribution {
            attribution.insert((a.day_ms, a.channel, a.model), a);
        }
    }
    Book {
        orders,
        net,
        attribution,
        book,
        out,
    }
}

/// Visitor `a` (user `u1`) lands from the newsletter in variant B and
/// orders twice, 10 days and 1 hour apart; visitor `b` is a guest whose
/// order is cancelled.
fn scenario() -> Vec<Event> {
    let t2 = T0 + 10 * DAY + HOUR;
    vec![
        landing("a", T0),
        placed("o1", "a", "u1", T0 + 2 * MIN, &[(2, 1_250), (1, 500)]),
        paid("o1", "a", T0 + 3 * MIN),
        landing("a", t2 - MIN),
        placed("o2", "a", "u1", t2, &[(1, 2_000)]),
        paid("o2", "a", t2 + MIN),
        refunded("o2", "a", t2 + 2 * DAY, 300, "USD"),
        refunded("o2", "a", t2 + 3 * DAY, 200, "USD"),
        refunded("o2", "a", t2 + 3 * DAY + 1, 100, "EUR"),
        landing("b", T0 + HOUR),
        placed("o3", "b", "", T0 + HOUR + MIN, &[(4, 250)]),
        cancelled("o3", "b", T0 + 2 * HOUR),
        paid("o9", "b", T0 + 3 * HOUR),
    ]
}

#[test]
fn every_order_is_one_row_with_its_customer_number_session_and_money() {
    let Book {
        orders: rows, book, ..
    } = orders(&scenario(), T0 + 40 * DAY);
    let o1 = &rows["o1"];
    assert_eq!(
        (o1.customer_id.as_str(), o1.anonymous_id.as_str()),
        ("u1", "a")
    );
    assert_eq!(o1.session_id, format!("a:{T0}"), "the landing's session");
    assert_eq!(
        (o1.experiment_id.as_str(), o1.variant.as_str()),
        ("checkout", "B")
    );
    assert_eq!(
        (o1.channel, o1.items, o1.total_minor),
        (Channel::Email, 3, 3_000)
    );
    assert_eq!(
        (o1.placed_ms, o1.paid_ms, o1.cancelled_ms),
        (T0 + 2 * MIN, Some(T0 + 3 * MIN), None)
    );
    assert_eq!(
        (o1.customer_order_number, o1.days_since_previous),
        (1, None)
    );
    assert_eq!((o1.net_minor, o1.version), (3_000, 2), "placed, paid");

    let o2 = &rows["o2"];
    assert_eq!(o2.session_id, format!("a:{}", T0 + 10 * DAY + HOUR - MIN));
    assert_eq!(
        (o2.customer_order_number, o2.days_since_previous),
        (2, Some(10))
    );
    // Time to convert: a's first session (T0) is remembered; o1 came in
    // it, o2 in a's second session.
    assert_eq!((o1.first_session_ms, o1.sessions_to_order), (Some(T0), 1));
    assert_eq!((o2.first_session_ms, o2.sessions_to_order), (Some(T0), 2));
    assert_eq!(
        (o2.refunded_minor, o2.net_minor),
        (500, 1_500),
        "the EUR refund is not USD"
    );
    assert_eq!(o2.version, 4, "placed, paid, two refunds");

    let o3 = &rows["o3"];
    assert_eq!(o3.customer_id, "b", "a guest is their visitor");
    assert_eq!(
        (o3.customer_order_number, o3.items, o3.total_minor),
        (1, 4, 1_000)
    );
    assert_eq!((o3.paid_ms, o3.cancelled_ms), (None, Some(T0 + 2 * HOUR)));
    assert_eq!((o3.net_minor, o3.version), (0, 2));

    assert_eq!(
        rows.len(),
        3,
        "a payment of an order never placed makes no row"
    );
    assert_eq!((book.unknown_settlements(), book.foreign_refunds()), (1, 1));
}

#[test]
fn orders_sum_to_the_customers_net_revenue() {
    let mut b = orders(&scenario(), T0 + 40 * DAY);
    let mut net = BTreeMap::new();
    for o in b.orders.values() {
        *net.entry(o.customer_id.clone()).or_insert(0) += o.net_minor;
    }
    assert_eq!(net, BTreeMap::from([("b".into(), 0), ("u1".into(), 4_500)]));
    assert_eq!(net, b.net, "the customers' rows say the same");
    let out = b.book.advance(T0 + 41 * DAY);
    assert!(out.orders.is_empty(), "nothing changed: {:?}", out.orders);
}

#[test]
fn a_payment_changes_the_orders_row_and_not_the_customers() {
    let mut book = CustomerBook::new(30 * DAY, "USD");
    let fact = |kind, ts| CustomerFact {
        customer_id: "c".into(),
        kind,
        order_id: "o".into(),
        ts_ms: ts,
        amount_minor: if kind == FactKind::Order { 900 } else { 0 },
        currency: "USD".into(),
        channel: Channel::Direct,
        order: None,
    };
    book.push(fact(FactKind::Order, T0), 2).unwrap();
    let first = book.advance(T0 + MIN);
    assert_eq!((first.customers.len(), first.orders.len()), (1, 1));
    assert_eq!(first.orders[0].partition, 2);
    book.push(fact(FactKind::Paid, T0 + 2 * MIN), 2).unwrap();
    let then = book.advance(T0 + 3 * MIN);
    assert!(then.customers.is_empty(), "{:?}", then.customers);
    assert_eq!(then.orders.len(), 1);
    assert_eq!(
        (then.orders[0].paid_ms, then.orders[0].version),
        (Some(T0 + 2 * MIN), 2)
    );
}

#[test]
fn an_order_is_remembered_for_the_retention_and_within_the_bound() {
    let mut book = CustomerBook::new(30 * DAY, "USD").with_order_memory(5 * DAY, 2);
    let fact = |kind, order: &str, ts| CustomerFact {
        customer_id: "c".into(),
        kind,
        order_id: order.into(),
        ts_ms: ts,
        amount_minor: 100,
        currency: "USD".into(),
        channel: Channel::Direct,
        order: None,
    };
    for (i, o) in ["o1", "o2", "o3"].into_iter().enumerate() {
        book.push(fact(FactKind::Order, o, T0 + i as i64 * HOUR), 0)
            .unwrap();
    }
    let out = book.advance(T0 + DAY);
    assert_eq!(
        out.orders.len(),
        3,
        "every row is written before its order goes"
    );
    assert_eq!(
        book.orders_remembered(),
        2,
        "the oldest beyond the bound goes"
    );
    book.push(fact(FactKind::Refund, "o1", T0 + DAY), 0)
        .unwrap();
    book.push(fact(FactKind::Refund, "o3", T0 + DAY + 1), 0)
        .unwrap();
    let out = book.advance(T0 + 2 * DAY);
    assert_eq!(
        out.orders
            .iter()
            .map(|o| o.order_id.as_str())
            .collect::<Vec<_>>(),
        ["o3"]
    );
    assert_eq!(book.unknown_settlements(), 1);
    book.advance(T0 + 6 * DAY);
    assert_eq!(book.orders_remembered(), 0, "placed over 5 days ago");
}

#[test]
fn an_order_only_feed_has_no_session_and_a_repeated_placement_changes_nothing() {
    // A webhook sent again under a new event id.
    let again = Event {
        event_id: "o1:placed-again".into(),
        ..placed("o1", "a", "u1", T0 + MIN, &[(1, 700)])
    };
    let events = [
        placed("o1", "a", "u1", T0, &[(1, 700)]),
        again,
        paid("o1", "a", T0 + 2 * MIN),
    ];
    let Book {
        orders: rows, out, ..
    } = orders(&events, T0 + DAY);
    // The repeat is a duplicate already on the events side: no fact.
    let kinds: Vec<FactKind> = out.customer_facts.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [FactKind::Order, FactKind::Paid]);
    assert_eq!(out.repeated_orders, 1);
    let orders: u64 = out.orders.iter().map(|o| o.orders).sum();
    assert_eq!(orders, 1, "one order in the order windows");
    let o1 = &rows["o1"];
    assert_eq!(
        (o1.session_id.as_str(), o1.anonymous_id.as_str()),
        ("", "a")
    );
    assert_eq!((o1.placed_ms, o1.paid_ms), (T0, Some(T0 + 2 * MIN)));
    assert_eq!(
        o1.version, 2,
        "the first placement stands, then its payment"
    );
}

#[test]
fn an_order_names_its_first_touch_and_last_non_direct_within_30_days() {
    // Four sessions over 40 days, then a fifth: e-mail on day 0, paid
    // search on day 15, direct on days 35, 40 (o1) and 50 (o2).
    let day = |d: i64| T0 + d * DAY;
    let events = [
        visit("v", day(0), Some(("newsletter", "email"))),
        visit("v", day(15), Some(("google", "cpc"))),
        visit("v", day(35), None),
        visit("v", day(40), None),
        placed("o1", "v", "", day(40) + MIN, &[(1, 5_000)]),
        visit("v", day(50), None),
        placed("o2", "v", "", day(50) + MIN, &[(1, 7_000)]),
    ];
    let Book {
        orders: rows,
        attribution,
        ..
    } = orders(&events, day(60));
    let o1 = &rows["o1"];
    // The e-mail touch is 40 days old: outside the window.
    assert_eq!(o1.channel, Channel::Direct);
    assert_eq!(
        (o1.first_touch_channel, o1.last_non_direct_channel),
        (Channel::PaidSearch, Channel::PaidSearch)
    );
    // By day 50 the paid search touch is 35 days old: only direct ones.
    let o2 = &rows["o2"];
    assert_eq!(
        (o2.first_touch_channel, o2.last_non_direct_channel),
        (Channel::Direct, Channel::Direct)
    );
    assert_eq!(
        (o2.customer_order_number, o2.days_since_previous),
        (2, Some(10))
    );

    // Time to convert: the visitor came back within 30 days each time, so
    // their first session (day 0) is remembered; o1 took 4 sessions and 40
    // days, o2 came in the fifth session.
    assert_eq!(
        (o1.first_session_ms, o1.sessions_to_order),
        (Some(day(0)), 4)
    );
    assert_eq!(
        (o2.first_session_ms, o2.sessions_to_order),
        (Some(day(0)), 5)
    );

    // Every model's credit, to the minor unit: (conversions, new customers,
    // revenue) per day, channel and model. o1 (5,000, a new customer) has
    // touches paid search, direct, direct; 5,000 / 3 is 1,666 each, and
    // the remainder (2) goes to the latest touch. o2 (7,000) is all direct.
    use Channel::{Direct, PaidSearch};
    let credited: BTreeMap<_, _> = attribution
        .values()
        .map(|a| {
            let key = (a.day_ms, a.channel, a.model);
            (
                key,
                (a.conversion_units, a.new_customer_units, a.revenue_minor),
            )
        })
        .collect();
    let (d40, d50) = (day(40), day(50));
    let want: BTreeMap<_, _> = [
        ((d40, PaidSearch, Model::FirstTouch), (UNITS, UNITS, 5_000)),
        (
            (d40, PaidSearch, Model::LastNonDirect),
            (UNITS, UNITS, 5_000),
        ),
        ((d40, PaidSearch, Model::Linear), (333_333, 333_333, 1_666)),
        ((d40, Direct, Model::Linear), (666_667, 666_667, 3_334)),
        ((d50, Direct, Model::FirstTouch), (UNITS, 0, 7_000)),
        ((d50, Direct, Model::LastNonDirect), (UNITS, 0, 7_000)),
        ((d50, Direct, Model::Linear), (UNITS, 0, 7_000)),
    ]
    .into_iter()
    .collect();
    assert_eq!(credited, want);
}

#[test]
fn without_a_touch_an_order_is_attributed_to_its_own_channel() {
    // An order-only feed whose order event names the e-mail campaign.
    let mut order = placed("o1", "a", "u1", T0, &[(1, 700)]);
    order.campaign_mut().source = Some("newsletter".into());
    order.campaign_mut().medium = Some("email".into());
    let Book { orders: rows, .. } = orders(&[order], T0 + DAY);
    let o1 = &rows["o1"];
    assert_eq!(o1.session_id, "", "no session");
    assert_eq!((o1.first_session_ms, o1.sessions_to_order), (None, 0));
    let channels = (o1.first_touch_channel, o1.last_non_direct_channel);
    assert_eq!(o1.channel, Channel::Email);
    assert_eq!(channels, (Channel::Email, Channel::Email));
}
