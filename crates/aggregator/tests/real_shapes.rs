//! Shapes of real store feeds that a generator does not make: events of
//! one instant, payment clocks ahead of the storefront's, payments of
//! orders placed before the history began, order-only feeds, ad spend
//! reported days after its period.

mod common;
use aggregator::{Aggregator, AggregatorConfig, Output, Position, Source, Trigger};
use common::{money, Rng, MIN, T0};
use contract::{Device, Event, EventKind, Page};

const HOUR: i64 = 3_600_000;
const SRC: Source = Source {
    stream: 1,
    partition: 0,
};

/// A signed-in visitor's event, from a back end that knows no device.
fn ev(id: &str, visitor: &str, ts: i64, kind: EventKind) -> Event {
    Event {
        user_id: Some(format!("user-{visitor}").into()),
        device: Device::Unknown,
        ..common::event(id, visitor, ts, kind)
    }
}

fn placed(order: &str, visitor: &str, ts: i64, minor: i64, currency: &str) -> Event {
    let kind = EventKind::OrderPlaced {
        order_id: order.into(),
        cart_id: None,
        total: money(minor, currency),
        referral_code: None,
        products: Vec::new(),
    };
    ev(&format!("{order}:order_placed"), visitor, ts, kind)
}

fn paid(order: &str, visitor: &str, ts: i64) -> Event {
    let kind = EventKind::OrderPaid {
        order_id: order.into(),
    };
    ev(&format!("{order}:order_paid"), visitor, ts, kind)
}

fn cancelled(order: &str, visitor: &str, ts: i64) -> Event {
    let kind = EventKind::OrderCancelled {
        order_id: order.into(),
    };
    ev(&format!("{order}:order_cancelled"), visitor, ts, kind)
}

fn refunded(order: &str, visitor: &str, ts: i64, minor: i64, currency: &str) -> Event {
    let kind = EventKind::OrderRefunded {
        order_id: order.into(),
        amount: money(minor, currency),
    };
    ev(&format!("{order}:order_refunded"), visitor, ts, kind)
}

fn run(events: &[Event], end: i64) -> Output {
    common::run(AggregatorConfig::default(), SRC, events, &[end])
}

fn overdue(out: &Output) -> Vec<String> {
    out.triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::OverdueOrder { order_id, .. } => Some(order_id.clone()),
            _ => None,
        })
        .collect()
}

/// Paid orders per currency, summed over the order windows.
fn paid_by_currency(out: &Output) -> Vec<(String, u64)> {
    let mut m = std::collections::BTreeMap::new();
    for r in &out.orders {
        *m.entry(r.currency.clone()).or_insert(0) += r.paid;
    }
    m.into_iter().filter(|(_, n)| *n > 0).collect()
}

#[test]
fn an_order_placed_and_paid_in_one_millisecond_is_paid_whatever_the_ids() {
    // "o1:order_paid" sorts before "o1:order_placed": causal order wins.
    let out = run(
        &[paid("o1", "a", T0), placed("o1", "a", T0, 4_999, "GBP")],
        T0 + 3 * HOUR,
    );
    assert!(overdue(&out).is_empty(), "{:?}", out.triggers);
    assert_eq!(paid_by_currency(&out), vec![("GBP".into(), 1)]);
}

#[test]
fn a_payment_whose_clock_runs_ahead_pairs_with_its_order() {
    // The payment system's event time is 20 s before the order's.
    let out = run(
        &[
            paid("o1", "a", T0 + 40_000),
            placed("o1", "a", T0 + 60_000, 12_000, "RUB"),
        ],
        T0 + 3 * HOUR,
    );
    assert!(overdue(&out).is_empty(), "{:?}", out.triggers);
    assert_eq!(paid_by_currency(&out), vec![("RUB".into(), 1)]);
}

#[test]
fn a_cancellation_before_its_order_subtracts_the_orders_total() {
    let out = run(
        &[
            cancelled("o1", "a", T0 + 10_000),
            placed("o1", "a", T0 + 30_000, 2_500, "EUR"),
        ],
        T0 + 3 * HOUR,
    );
    assert!(overdue(&out).is_empty());
    let cancel = out
        .customer_facts
        .iter()
        .find(|f| f.kind == aggregator::FactKind::Cancel)
        .expect("a cancel fact");
    assert_eq!(
        (cancel.amount_minor, cancel.currency.as_str()),
        (2_500, "EUR")
    );
    assert_eq!(cancel.customer_id, "user-a");
    let cancelled: i64 = out.orders.iter().map(|r| r.cancelled_minor).sum();
    assert_eq!(cancelled, 2_500);
}

#[test]
fn a_payment_of_an_order_never_seen_still_counts_after_the_grace() {
    // Placed before the history began: counted once the grace is over.
    let out = run(&[paid("old", "a", T0)], T0 + HOUR);
    assert_eq!(out.orders.iter().map(|r| r.paid).sum::<u64>(), 1);
    assert!(overdue(&out).is_empty());
}

#[test]
fn an_unpaid_order_is_still_overdue_once() {
    let out = run(&[placed("o1", "a", T0, 100, "USD")], T0 + 3 * HOUR);
    assert_eq!(overdue(&out), vec!["o1".to_string()]);
}

/// No order paid at or before its deadline is ever overdue, and every
/// order never paid is overdue exactly once, whatever the ties between
/// placement and payment, the payment clock's lead (within the allowed
/// lateness), the arrival order (within it too), the event ids and where
/// the watermark advances fall.
#[test]
fn property_no_paid_order_is_ever_overdue() {
    let cfg = AggregatorConfig::default();
    let (grace, timeout) = (cfg.settle_grace_ms, cfg.payment_timeout_ms);
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut events = Vec::new();
        let mut unpaid = Vec::new();
        for o in 0..(5 + rng.below(30)) {
            let order = format!("{}-{o}", rng.below(1_000_000));
            let placed_at = T0 + rng.below(10) as i64 * 1_000;
            let visitor = format!("v{}", rng.below(5));
            events.push(placed(&order, &visitor, placed_at, 100, "USD"));
            let pay_at = match rng.below(5) {
                0 => None,
                1 => Some(placed_at),
                2 => Some(placed_at - rng.below(grace as u64 + 1) as i64),
                3 => Some(placed_at + timeout),
                _ => Some(placed_at + rng.below(timeout as u64) as i64),
            };
            match pay_at {
                Some(at) => {
                    let mut p = paid(&order, &visitor, at);
                    p.event_id = format!("{:016x}", rng.next()).into();
                    events.push(p);
                }
                None => unpaid.push(order),
            }
        }
        // Arrival: sorted by time, then neighbours within the lateness swapped.
        events.sort_by_key(|e| e.timestamp_ms);
        for i in 1..events.len() {
            let gap = events[i].timestamp_ms - events[i - 1].timestamp_ms;
            if gap <= grace && rng.below(2) == 0 {
                events.swap(i, i - 1);
            }
        }
        let mut agg = Aggregator::new(cfg.clone());
        let mut out = Output::default();
        let mut max_seen = i64::MIN;
        for (i, e) in events.into_iter().enumerate() {
            max_seen = max_seen.max(e.timestamp_ms);
            let pos = Position {
                source: SRC,
                offset: i as i64,
            };
            agg.push(e, pos).expect("within the lateness: accepted");
            if rng.below(3) == 0 {
                out.extend(agg.advance(max_seen - grace));
            }
        }
        out.extend(agg.advance(max_seen + 3 * timeout));
        let mut got = overdue(&out);
        got.sort();
        unpaid.sort();
        assert_eq!(got, unpaid, "seed {seed}");
    }
}

fn page_view(id: &str, visitor: &str, ts: i64, utm: Option<(&str, &str)>) -> Event {
    let mut e = ev(id, visitor, ts, EventKind::PageView);
    e.user_id = None;
    e.page = Some(Page {
        path: "/".into(),
        host: "shop.example".into(),
        referrer_host: None,
    });
    if let Some((source, medium)) = utm {
        e.campaign_mut().source = Some(source.into());
        e.campaign_mut().medium = Some(medium.into());
    }
    e
}

#[test]
fn an_order_only_feed_opens_no_session_and_a_refund_is_no_bounce() {
    let out = run(
        &[
            placed("o1", "a", T0, 1_000, "GBP"),
            paid("o1", "a", T0),
            refunded("o1", "a", T0 + 5 * MIN, 400, "GBP"),
            refunded("o2", "b", T0 + 6 * MIN, 300, "GBP"),
        ],
        T0 + 5 * HOUR,
    );
    assert!(out.sessions.is_empty(), "{:?}", out.sessions);
    assert_eq!(out.orders.iter().map(|r| r.orders).sum::<u64>(), 1);
    assert_eq!(out.orders.iter().map(|r| r.refunds).sum::<u64>(), 2);
    assert_eq!(
        out.customer_facts.len(),
        4,
        "the order, its payment, two refunds"
    );
}

#[test]
fn an_order_joins_the_visitors_open_session_and_keeps_its_channel() {
    let out = run(
        &[
            page_view("p1", "a", T0, Some(("google", "cpc"))),
            placed("o1", "a", T0 + 2 * MIN, 1_000, "USD"),
            // An hour later the session is over: this order opens none.
            placed("o2", "a", T0 + 2 * HOUR, 1_000, "USD"),
        ],
        T0 + 5 * HOUR,
    );
    assert_eq!(out.sessions.len(), 1);
    let s = &out.sessions[0];
    assert_eq!((s.orders, s.converted, s.bounced), (1, true, false));
    let channels: Vec<_> = out
        .orders
        .iter()
        .map(|r| (r.window_start_ms, r.channel.as_str()))
        .collect();
    assert!(
        channels.contains(&(T0 + 2 * MIN, "Paid Search")),
        "{channels:?}"
    );
    assert!(
        channels.contains(&(T0 + 2 * HOUR, "Direct")),
        "{channels:?}"
    );
}

#[test]
fn an_add_to_cart_and_its_order_in_one_millisecond_convert_the_cart() {
    // The order's id sorts before the add's: causal order still applies the
    // add first, so the cart converts instead of being abandoned.
    let mut add = ev(
        "z-add",
        "a",
        T0,
        EventKind::AddToCart {
            cart_id: "c1".into(),
            line: contract::LineItem {
                product_id: "p".into(),
                price: money(500, "USD"),
                quantity: 2,
            },
        },
    );
    add.user_id = None;
    let mut order = placed("o1", "a", T0, 1_000, "USD");
    order.event_id = "a-order".into();
    if let EventKind::OrderPlaced { cart_id, .. } = &mut order.kind {
        *cart_id = Some("c1".into());
    }
    let out = run(&[order, add], T0 + 3 * HOUR);
    let statuses: Vec<_> = out.carts.iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![aggregator::CartStatus::Converted]);
    assert!(out
        .triggers
        .iter()
        .all(|t| !matches!(t, Trigger::AbandonedCart(_))));
}

#[test]
fn two_storefront_sessions_interleaved_in_one_instant_do_not_split_at_every_event() {
    // REES46 has these: one visitor, two session ids, events of both in one
    // second. Ranked by type alone they alternate A, B, A, B (4 sessions).
    let with_session = |mut e: Event, s: &str| {
        e.session_id = Some(s.into());
        e.user_id = None;
        e
    };
    let view = |id: &str, ts: i64| {
        let product = contract::Product {
            product_id: "p".into(),
            category: None,
            price: None,
        };
        ev(id, "v", ts, EventKind::ProductView { product })
    };
    let t = T0 + 1_000;
    let out = run(
        &[
            with_session(page_view("a0", "v", T0, None), "A"),
            with_session(page_view("a1", "v", t, None), "A"),
            with_session(page_view("b1", "v", t, None), "B"),
            with_session(view("a2", t), "A"),
            with_session(view("b2", t), "B"),
        ],
        T0 + 3 * HOUR,
    );
    let sessions: Vec<_> = out
        .sessions
        .iter()
        .map(|s| (s.session_id.as_str(), s.events))
        .collect();
    assert_eq!(sessions, [("A", 3), ("B", 2)]);
}

fn in_session(id: &str, ts: i64, session: &str, path: &str) -> Event {
    let mut e = page_view(id, "v", ts, None);
    e.session_id = Some(session.into());
    if let Some(p) = &mut e.page {
        p.path = path.into();
    }
    e
}

fn session_rows(out: &Output) -> Vec<(String, u32, u32, String)> {
    let mut rows: Vec<_> = out
        .sessions
        .iter()
        .map(|s| {
            let exit = s.exit_path.to_string();
            (s.session_id.clone(), s.events, s.page_views, exit)
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn a_visitor_alternating_between_two_storefront_sessions_keeps_two_sessions() {
    let out = run(
        &[
            in_session("1", T0, "A", "/a1"),
            in_session("2", T0 + MIN, "B", "/b1"),
            in_session("3", T0 + 2 * MIN, "A", "/a2"),
            in_session("4", T0 + 3 * MIN, "B", "/b2"),
            in_session("5", T0 + 4 * MIN, "A", "/a3"),
        ],
        T0 + 3 * HOUR,
    );
    let want = [("A", 3, 3, "/a3"), ("B", 2, 2, "/b2")]
        .map(|(s, e, p, x)| (s.to_string(), e, p, x.to_string()));
    assert_eq!(session_rows(&out), want);
    // Each page's exits: the last page of each session.
    let exits: Vec<_> = out
        .pages
        .iter()
        .filter(|p| p.exits > 0)
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(exits.len(), 2, "{exits:?}");
}

#[test]
fn a_storefront_session_left_longer_than_the_gap_is_closed_not_continued() {
    let out = run(
        &[
            in_session("1", T0, "A", "/a"),
            in_session("2", T0 + MIN, "B", "/b"),
            in_session("3", T0 + 25 * MIN, "B", "/b"),
            // A's last event was 45 minutes ago: a new session under its id.
            in_session("4", T0 + 45 * MIN, "A", "/a"),
        ],
        T0 + 3 * HOUR,
    );
    let ids: Vec<_> = session_rows(&out).into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(
        ids,
        [
            ("A".to_string(), 1),
            ("A".to_string(), 1),
            ("B".to_string(), 2)
        ]
    );
}

#[test]
fn a_checkpoint_with_a_parked_session_continues_as_an_uninterrupted_run() {
    let events = [
        in_session("1", T0, "A", "/a1"),
        in_session("2", T0 + MIN, "B", "/b1"),
        in_session("3", T0 + 2 * MIN, "A", "/a2"),
        in_session("4", T0 + 3 * MIN, "B", "/b2"),
    ];
    let cfg = AggregatorConfig::default();
    let feed = |agg: &mut Aggregator, from: usize, to: usize| {
        for (i, e) in events.iter().enumerate().take(to).skip(from) {
            let pos = Position {
                source: SRC,
                offset: i as i64,
            };
            agg.push(e.clone(), pos).expect("accepted");
        }
    };
    let mut whole = Aggregator::new(cfg.clone());
    feed(&mut whole, 0, 4);
    let mut want = whole.advance(T0 + 2 * MIN);
    want.extend(whole.advance(T0 + 3 * HOUR));

    let mut first = Aggregator::new(cfg.clone());
    feed(&mut first, 0, 4);
    // A is parked (B in use) when the snapshot is taken.
    let mut got = first.advance(T0 + 2 * MIN);
    let mut restored = Aggregator::restore(&cfg, &first.snapshot()).expect("restores");
    assert_eq!(restored.open_sessions(), 2);
    assert_eq!(
        restored.low_water(SRC),
        Some(0),
        "the parked session's offset"
    );
    got.extend(restored.advance(T0 + 3 * HOUR));
    assert_eq!(session_rows(&got), session_rows(&want));
    assert_eq!(got.pages, want.pages);
    assert_eq!(restored.low_water(SRC), None);
}

/// Storefronts send empty strings where a value is missing. An empty
/// experiment id or path fills nothing: the session's experiment is the
/// first non-empty one, its entry page the first non-empty path.
#[test]
fn empty_strings_fill_nothing_and_a_later_value_does() {
    let view = |id: &str, ts: i64, path: &str, experiment: (&str, &str)| Event {
        page: Some(Page {
            path: path.into(),
            ..common::page("/")
        }),
        experiment: Some(Box::new(contract::Experiment {
            id: experiment.0.into(),
            variant: experiment.1.into(),
        })),
        user_id: Some(String::new().into()),
        ..common::event(id, "visitor", ts, EventKind::PageView)
    };
    let events = [
        view("e1", T0, "", ("", "a")),
        view("e2", T0 + 1_000, "/shoes", ("x1", "b")),
        view("e3", T0 + 2_000, "", ("x2", "c")),
        view("e4", T0 + 3_000, "/shoes/red", ("x2", "c")),
    ];
    let out = run(&events, T0 + 2 * HOUR);
    let [s] = out.sessions.as_slice() else {
        panic!("one session: {:?}", out.sessions);
    };
    assert_eq!((&*s.experiment_id, &*s.variant), ("x1", "b"));
    assert_eq!((&*s.entry_path, &*s.exit_path), ("/shoes", "/shoes/red"));
    assert_eq!((s.page_views, s.user_id.as_str()), (4, ""));
}

/// Ad platforms report spend, and correct it, days after the period it
/// covers. A spend event older than the watermark still gives its rows;
/// a page view as old is late.
#[test]
fn ad_spend_reported_days_later_is_not_late() {
    let spend = |id: &str, ts: i64, day: i64| {
        let kind = EventKind::AdSpend {
            channel: "paid_search".into(),
            campaign: None,
            amount: money(12_345, "USD"),
            period_start_ms: T0 + day * 24 * HOUR,
            period_end_ms: T0 + (day + 1) * 24 * HOUR,
        };
        common::event(id, "marketing", ts, kind)
    };
    let mut agg = Aggregator::new(AggregatorConfig::default());
    let at = |offset| Position {
        source: SRC,
        offset,
    };
    let now = T0 + 10 * 24 * HOUR;
    agg.push(spend("s1", now, 8), at(0)).expect("accepted");
    let mut out = agg.advance(now + MIN);
    // Three days' spend, stamped at the start of its period, a week late.
    let late = spend("s2", T0 + 3 * 24 * HOUR, 3);
    assert_eq!(agg.push(late, at(1)), Ok(aggregator::Accepted::Buffered));
    let view = common::event("v", "visitor", T0 + 3 * 24 * HOUR, EventKind::PageView);
    assert!(matches!(
        agg.push(view, at(2)),
        Err(aggregator::Rejected::Late { .. })
    ));
    out.extend(agg.advance(now + 2 * MIN));
    let mut rows: Vec<(String, i64, i64)> = out
        .spend
        .iter()
        .map(|r| {
            (
                r.event_id.clone(),
                (r.day_ms - T0) / (24 * HOUR),
                r.amount_minor,
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [("s1".to_string(), 8, 12_345), ("s2".to_string(), 3, 12_345)]
    );
    assert_eq!(agg.low_water(SRC), None, "nothing held");
}

/// Storefronts deliver order webhooks at least once, and a producer that
/// gives each delivery a fresh event id sends an order twice. An order is
/// placed once: the second placement counts nowhere, and its payment once.
#[test]
fn an_order_delivered_twice_under_new_event_ids_counts_once() {
    let mut again = placed("o1", "v", T0 + 2 * MIN, 5000, "USD");
    again.event_id = "o1:order_placed:delivery-2".into();
    let events = [
        placed("o1", "v", T0, 5000, "USD"),
        paid("o1", "v", T0 + MIN),
        again,
    ];
    let out = run(&events, T0 + 10 * HOUR);
    let orders: u64 = out.orders.iter().map(|o| o.orders).sum();
    let gross: i64 = out.orders.iter().map(|o| o.gross_minor).sum();
    assert_eq!((orders, gross), (1, 5000));
    let placements = out
        .customer_facts
        .iter()
        .filter(|f| f.kind == aggregator::FactKind::Order)
        .count();
    assert_eq!(placements, 1, "one order for the customer");
    assert_eq!(out.repeated_orders, 1, "counted as a duplicate");
    assert!(overdue(&out).is_empty(), "paid");
}
