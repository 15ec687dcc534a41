//! Snapshots written by earlier builds of the same format still restore.
//!
//! The files under `tests/data/` were written by the release that last
//! wrote each format (`formatN-*.bin`) and are never written again: a change
//! to the in-memory state bumps `aggregator::SNAPSHOT_FORMAT`, keeps a
//! reader of the format before it, and adds a file of that format here.

use aggregator::{Aggregator, AggregatorConfig, Output, Position, Source};
use contract::{Device, Event, EventKind, Page};
use std::path::PathBuf;

const T0: i64 = 1_569_888_000_000; // 2019-10-01T00:00:00Z
const MIN: i64 = 60_000;

fn pv(id: &str, visitor: &str, ts: i64, path: &str) -> Event {
    Event {
        event_id: id.into(),
        timestamp_ms: ts,
        anonymous_id: visitor.into(),
        user_id: None,
        session_id: Some(format!("s-{visitor}").into()),
        page: Some(Page {
            path: path.into(),
            host: "shop.example".into(),
            referrer_host: None,
        }),
        campaign: None,
        device: Device::Desktop,
        experiment: None,
        kind: EventKind::PageView,
    }
}

fn at(offset: i64) -> Position {
    Position {
        source: Source {
            stream: 0,
            partition: 1,
        },
        offset,
    }
}

/// Pushes `events` (offsets from `first`) and advances to `watermark_ms`.
fn feed(agg: &mut Aggregator, events: &[Event], first: i64, watermark_ms: i64) -> Output {
    for (i, e) in events.iter().enumerate() {
        agg.push(e.clone(), at(first + i as i64)).expect("accepted");
    }
    agg.advance(watermark_ms)
}

fn rows(out: &Output) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    all.extend(out.sessions.iter().map(|r| format!("{r:?}")));
    all.extend(out.session_windows.iter().map(|r| format!("{r:?}")));
    all.extend(out.pages.iter().map(|r| format!("{r:?}")));
    all.sort();
    all
}

/// Two visitors with open sessions and page-exit state, and a page
/// window still waiting for their exits.
fn before() -> Vec<Event> {
    vec![
        pv("e1", "a", T0, "/"),
        pv("e2", "b", T0 + MIN / 2, "/"),
        pv("e3", "a", T0 + MIN, "/p/1"),
        pv("e4", "b", T0 + 3 * MIN / 2, "/p/1"),
        pv("e5", "b", T0 + 2 * MIN, "/p/2"),
    ]
}

fn after() -> Vec<Event> {
    vec![
        pv("e6", "a", T0 + 4 * MIN, "/cart"),
        pv("e7", "c", T0 + 5 * MIN, "/"),
    ]
}

#[test]
fn an_earlier_snapshot_with_open_visits_continues_as_an_uninterrupted_run() {
    continues_as_an_uninterrupted_run("format1-open-visits.bin");
}

/// Written by the release before format 3 (no touches), from the same
/// visits.
#[test]
fn a_format_2_snapshot_with_open_visits_continues_as_an_uninterrupted_run() {
    let bytes = stored_read("format2-open-visits.bin");
    assert_eq!(bytes[0], 2);
    continues_as_an_uninterrupted_run("format2-open-visits.bin");
}

/// The stored snapshot `name` of `before()`'s visits, restored and fed
/// `after()`, gives the rows of a run that was never interrupted.
fn continues_as_an_uninterrupted_run(name: &str) {
    let cfg = AggregatorConfig::default();
    let (mid, end) = (T0 + 3 * MIN, T0 + 3 * 3_600_000);

    let mut whole = Aggregator::new(cfg.clone());
    let mut want = feed(&mut whole, &before(), 0, mid);
    want.extend(feed(&mut whole, &after(), 100, end));

    let mut first = Aggregator::new(cfg.clone());
    let mut got = feed(&mut first, &before(), 0, mid);
    let bytes = stored_read(name);
    let mut restored = Aggregator::restore(&cfg, &bytes).expect("the stored snapshot restores");
    assert_eq!(restored.open_sessions(), 2);
    got.extend(feed(&mut restored, &after(), 100, end));

    assert_eq!(rows(&got), rows(&want));
    assert!(
        want.pages.iter().any(|p| p.path == "/p/2" && p.exits == 1),
        "b's exit, known only at its close after the restore, is counted"
    );
}

#[test]
fn an_earlier_snapshot_of_one_visit_is_written_back_byte_for_byte() {
    let cfg = AggregatorConfig::default();
    let bytes = stored_read("format1-one-visit.bin");
    let restored = Aggregator::restore(&cfg, &bytes).expect("the stored snapshot restores");
    // Written back in this build's format: the same fields, then no
    // settlements waiting for their order (format 2: an empty map and an
    // empty queue).
    let mut want = vec![aggregator::SNAPSHOT_FORMAT];
    want.extend_from_slice(&bytes[1..]);
    want.extend_from_slice(&[0, 0]);
    let before_touches = want.clone();
    // No touches and no time-to-stage windows (format 3: two empty maps
    // and two empty queues or sets).
    want.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(restored.snapshot(), want);
    // What the earlier build stored is still what this one makes, followed
    // by the visit's touch.
    let mut agg = Aggregator::new(cfg.clone());
    feed(&mut agg, &[pv("e1", "a", T0, "/")], 0, T0 + MIN);
    let fresh = agg.snapshot();
    assert!(fresh.starts_with(&before_touches));
    assert_ne!(&fresh[before_touches.len()..], [0, 0], "a touch");
}

#[test]
fn a_snapshot_restores_under_another_open_session_bound_which_then_holds() {
    let bytes = stored_read("format1-open-visits.bin");
    let cfg = AggregatorConfig {
        max_open_sessions: 2,
        ..AggregatorConfig::default()
    };
    let mut agg =
        Aggregator::restore(&cfg, &bytes).expect("the bound is not a setting of the state");
    assert_eq!(agg.open_sessions(), 2);
    let out = feed(
        &mut agg,
        &[pv("e7", "c", T0 + 5 * MIN, "/")],
        100,
        T0 + 6 * MIN,
    );
    assert_eq!(out.evictions.sessions, 1);
    assert_eq!(agg.open_sessions(), 2);
}

fn stored_read(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(path).expect("stored snapshot")
}

#[test]
fn an_earlier_snapshot_with_buffered_events_holds_their_offsets_only_until_applied() {
    let cfg = AggregatorConfig::default();
    let source = at(0).source;
    let mut agg = Aggregator::new(cfg.clone());
    for (i, e) in before().iter().enumerate() {
        agg.push(e.clone(), at(10 + i as i64)).expect("accepted");
    }
    assert_eq!(agg.buffered_events(), 5);
    let bytes = stored_read("format1-buffered.bin");
    let mut restored = Aggregator::restore(&cfg, &bytes).expect("the stored snapshot restores");
    assert_eq!(restored.low_water(source), Some(10), "buffered events");
    restored.advance(T0 + 3 * MIN);
    assert_eq!(restored.buffered_events(), 0);
    assert_eq!(restored.low_water(source), Some(10), "a's open session");
    restored.advance(T0 + 3 * 3_600_000);
    assert_eq!(
        restored.low_water(source),
        None,
        "every session closed: nothing holds an offset any more"
    );
}

/// The customer facts the stored format-1 book was made from: c1 orders
/// twice (a refund on the second), c2 twice on consecutive days.
fn book_facts() -> Vec<aggregator::CustomerFact> {
    use aggregator::{Channel, CustomerFact, FactKind};
    const DAY: i64 = 86_400_000;
    let f = |c: &str, o: &str, kind: FactKind, ts: i64, minor: i64| CustomerFact {
        customer_id: c.into(),
        kind,
        order_id: o.into(),
        ts_ms: ts,
        amount_minor: minor,
        currency: "USD".into(),
        channel: Channel::Email,
        order: None,
    };
    vec![
        f("c1", "o1", FactKind::Order, T0, 1000),
        f("c1", "o2", FactKind::Order, T0 + 10 * DAY, 2000),
        f("c2", "o3", FactKind::Order, T0 + 10 * DAY + 5, 500),
        f("c1", "o2", FactKind::Refund, T0 + 10 * DAY + 9, 300),
        f("c2", "o4", FactKind::Order, T0 + 11 * DAY, 700),
    ]
}

#[test]
fn a_format_1_customer_book_continues_with_distinct_customers_from_then_on() {
    use aggregator::CustomerBook;
    const DAY: i64 = 86_400_000;
    let like = CustomerBook::bounded(30 * DAY, "USD", 1000);
    // Written by the previous release after advancing to T0 + 10 days + 7 ms.
    let bytes = stored_read("format1-customers.bin");
    let mut restored = CustomerBook::restore(&like, &bytes).expect("format 1 restores");
    let mut whole = CustomerBook::bounded(30 * DAY, "USD", 1000);
    for f in book_facts() {
        whole.push(f, 0).unwrap();
    }
    whole.advance(T0 + 10 * DAY + 7);
    let (got, want) = (
        restored.advance(T0 + 12 * DAY),
        whole.advance(T0 + 12 * DAY),
    );
    assert_eq!(got.customers, want.customers, "histories continue exactly");
    let day11 = |out: &aggregator::CustomerOutput| {
        out.days
            .iter()
            .find(|d| d.day_ms == T0 + 11 * DAY)
            .map(|d| (d.orders, d.paying_customers, d.repeat_customers))
    };
    assert_eq!(day11(&got), Some((1, 1, 1)), "c2's repeat order on day 11");
    assert_eq!(day11(&got), day11(&want));
    let net: Vec<_> = got
        .customers
        .iter()
        .map(|c| (c.customer_id.as_str(), c.net_minor))
        .collect();
    assert_eq!(net, [("c1", 2700), ("c2", 1200)]);
}

#[test]
fn a_format_2_customer_book_continues_exactly_and_remembers_orders_from_then_on() {
    use aggregator::{Channel, CustomerBook, CustomerFact, FactKind};
    const DAY: i64 = 86_400_000;
    let like = CustomerBook::bounded(30 * DAY, "USD", 1000);
    // Written by the release before the `orders` table, after advancing
    // the facts of `book_facts` to T0 + 10 days + 7 ms.
    let bytes = stored_read("format2-customers.bin");
    assert_eq!(bytes[0], 2);
    let mut restored = CustomerBook::restore(&like, &bytes).expect("format 2 restores");
    assert_eq!(restored.orders_remembered(), 0, "format 2 kept no orders");
    let mut whole = CustomerBook::bounded(30 * DAY, "USD", 1000);
    for f in book_facts() {
        whole.push(f, 0).unwrap();
    }
    whole.advance(T0 + 10 * DAY + 7);
    let paid = CustomerFact {
        customer_id: "c1".into(),
        kind: FactKind::Paid,
        order_id: "o2".into(),
        ts_ms: T0 + 11 * DAY,
        amount_minor: 0,
        currency: "USD".into(),
        channel: Channel::Email,
        order: None,
    };
    for b in [&mut restored, &mut whole] {
        b.push(paid.clone(), 0).unwrap();
    }
    let (got, want) = (
        restored.advance(T0 + 12 * DAY),
        whole.advance(T0 + 12 * DAY),
    );
    assert_eq!(got.customers, want.customers, "histories continue exactly");
    assert_eq!(got.days, want.days);
    let ids = |out: &aggregator::CustomerOutput| {
        let ids = out.orders.iter().map(|o| o.order_id.clone());
        ids.collect::<Vec<_>>()
    };
    assert_eq!(ids(&got), ["o4"], "placed after the upgrade");
    assert_eq!(ids(&want), ["o2", "o4"]);
    // o2's refund (pending in the stored book) and payment: o2 was placed
    // before the upgrade.
    assert_eq!(restored.unknown_settlements(), 2);
    assert_eq!(whole.unknown_settlements(), 0);
    let again = CustomerBook::restore(&like, &restored.snapshot()).expect("own format");
    assert_eq!(again.orders_remembered(), 1);
    assert_eq!(restored.snapshot()[0], aggregator::SNAPSHOT_FORMAT);
}
