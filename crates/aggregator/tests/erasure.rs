//! Erasure in the pure core: forgetting a person drops their state, their
//! rows never leave again, the offsets their state held are freed, and the
//! windows they were open in still close.

mod common;
use aggregator::forget::Forgot;
use aggregator::{Aggregator, AggregatorConfig, CustomerBook, Output, Position, Source};
use common::{money, MIN, T0};
use contract::{Event, EventKind, LineItem};

const SRC: Source = Source {
    stream: 0,
    partition: 2,
};

fn ev(id: &str, visitor: &str, user: Option<&str>, ts: i64, kind: EventKind) -> Event {
    Event {
        user_id: user.map(contract::Text::from),
        ..common::event(id, visitor, ts, kind)
    }
}

/// One visitor's journey from `t`: two page views, a cart and its order of
/// 25.00 USD, a second cart left open, paid (when `pays`) ten minutes later; the
/// payment's clock runs 20 s ahead of the order (an early settlement).
fn journey(visitor: &str, user: Option<&str>, t: i64, pays: bool) -> Vec<Event> {
    let id = |what: &str| format!("{visitor}-{what}");
    let page = |what: &str, ts: i64, path: &str| Event {
        page: Some(common::page(path)),
        ..ev(&id(what), visitor, user, ts, EventKind::PageView)
    };
    let line = LineItem {
        product_id: "p1".into(),
        price: money(2_500, "USD"),
        quantity: 1,
    };
    let cart = id("cart");
    let order = id("order");
    // A second cart, left open: abandoned later.
    let other = ev(
        &id("atc2"),
        visitor,
        user,
        t + 2 * MIN,
        EventKind::AddToCart {
            cart_id: id("cart2").into(),
            line: line.clone(),
        },
    );
    let mut events = vec![
        page("pv1", t, "/"),
        page("pv2", t + 20_000, "/shoes"),
        ev(
            &id("atc"),
            visitor,
            user,
            t + 40_000,
            EventKind::AddToCart {
                cart_id: cart.clone().into(),
                line: line.clone(),
            },
        ),
        ev(
            &id("placed"),
            visitor,
            user,
            t + 3 * MIN,
            EventKind::OrderPlaced {
                order_id: order.clone().into(),
                cart_id: Some(cart.into()),
                total: money(2_500, "USD"),
                referral_code: None,
                products: vec![line],
            },
        ),
        other,
    ];
    if pays {
        events.push(ev(
            &id("paid"),
            visitor,
            user,
            t + 3 * MIN - 20_000,
            EventKind::OrderPaid {
                order_id: order.into(),
            },
        ));
    }
    events
}

/// The events of three visitors; `x` is the one to be forgotten.
fn traffic() -> Vec<Event> {
    let mut events = journey("x", Some("user-x"), T0, true);
    events.extend(journey("y", None, T0 + 30_000, true));
    events.extend(journey("z", Some("user-z"), T0 + 90_000, false));
    events.sort_by_key(|e| e.timestamp_ms);
    events
}

/// An aggregator that read `events`, each at its offset in `all` (so a run
/// that never saw some of them has the same offsets for the others).
fn fed(all: &[Event], keep: impl Fn(&Event) -> bool) -> Aggregator {
    let mut agg = Aggregator::new(AggregatorConfig::default());
    for (i, e) in all.iter().enumerate().filter(|(_, e)| keep(e)) {
        let pos = Position {
            source: SRC,
            offset: i as i64,
        };
        agg.push(e.clone(), pos).expect("accepted");
    }
    agg
}

fn is_x(id: &str) -> bool {
    id == "x" || id == "user-x"
}

fn mentions_x(out: &Output) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    found.extend(
        out.sessions
            .iter()
            .filter(|r| is_x(&r.anonymous_id))
            .map(|r| r.session_id.clone()),
    );
    found.extend(
        out.carts
            .iter()
            .filter(|r| is_x(&r.anonymous_id))
            .map(|r| r.cart_id.clone()),
    );
    found.extend(
        out.triggers
            .iter()
            .filter(|t| is_x(t.person().0))
            .map(|t| format!("{t:?}")),
    );
    found.extend(
        out.customer_facts
            .iter()
            .filter(|f| is_x(&f.customer_id))
            .map(|f| f.order_id.clone()),
    );
    found
}

const END: i64 = T0 + 400 * MIN;

#[test]
fn forgetting_before_anything_is_applied_equals_never_having_seen_the_person() {
    let all = traffic();
    let mut forgotten = fed(&all, |_| true);
    let dropped = forgotten.forget(&is_x);
    assert_eq!(
        dropped,
        Forgot {
            events: 6,
            ..Forgot::default()
        },
        "x's six events were buffered, nothing else was held"
    );
    let mut never = fed(&all, |e| e.anonymous_id != "x");
    let (a, b) = (forgotten.advance(END), never.advance(END));
    assert!(!a.sessions.is_empty() && !a.customer_facts.is_empty());
    assert_eq!(a, b, "every row, aggregates included, as if x never came");
    assert_eq!(forgotten.low_water(SRC), never.low_water(SRC));
}

#[test]
fn forgetting_open_state_drops_it_frees_its_offsets_and_lets_windows_close() {
    let all = traffic();
    let mid = T0 + 4 * MIN + 1;
    let mut forgotten = fed(&all, |_| true);
    let mut before = forgotten.advance(mid);
    assert!(
        mentions_x(&before).iter().any(|f| f == "x-order"),
        "x's order fact left before the request"
    );
    let dropped = forgotten.forget(&is_x);
    assert_eq!(
        (dropped.sessions, dropped.carts, dropped.orders),
        (1, 1, 1),
        "x's open session, open cart and remembered order: {dropped:?}"
    );
    // Offsets: what x held no longer holds the commit position back; y
    // and z still hold theirs, as in a run that never saw x.
    let mut never = fed(&all, |e| e.anonymous_id != "x");
    never.advance(mid);
    assert_eq!(forgotten.low_water(SRC), never.low_water(SRC));
    assert!(forgotten.low_water(SRC).is_some(), "y and z are still open");
    // Nothing of x leaves after the request, and every window closes.
    let after = forgotten.advance(END);
    assert_eq!(mentions_x(&after), Vec::<String>::new());
    assert_eq!(forgotten.open_sessions(), 0);
    assert_eq!(
        forgotten.low_water(SRC),
        None,
        "nothing holds an offset at the end"
    );
    let minutes: std::collections::BTreeSet<i64> = after
        .session_windows
        .iter()
        .map(|w| w.window_start_ms)
        .collect();
    assert!(
        minutes.contains(&T0),
        "the minute x's session started in is final (y's session counts there): {minutes:?}"
    );
    before.extend(after);
    let x_sessions = before
        .sessions
        .iter()
        .filter(|r| is_x(&r.anonymous_id))
        .count();
    assert_eq!(
        x_sessions, 0,
        "x's session was open at the request: never written"
    );
}

#[test]
fn a_customer_book_forgets_histories_pending_facts_and_orders() {
    let all = traffic();
    let mut agg = fed(&all, |_| true);
    let facts = agg.advance(END).customer_facts;
    assert!(facts.iter().any(|f| f.customer_id == "user-x"));
    let mut book = CustomerBook::new(30 * 86_400_000, "USD");
    for f in facts.iter().cloned() {
        book.push(f, 0).expect("in time");
    }
    let half = book.advance(T0 + 2 * MIN); // nothing yet: facts at 3 minutes
    assert!(half.customers.is_empty());
    let dropped = book.forget(&is_x);
    assert_eq!(
        dropped.events, 2,
        "x's order and payment were pending: {dropped:?}"
    );
    let out = book.advance(END);
    assert!(out.customers.iter().all(|c| !is_x(&c.customer_id)));
    assert!(out
        .orders
        .iter()
        .all(|o| !is_x(&o.customer_id) && o.anonymous_id != "x"));
    assert_eq!(out.orders.len(), 2, "y's and z's orders");
    // Applied first, then forgotten: the history and the row go.
    let mut book = CustomerBook::new(30 * 86_400_000, "USD");
    for f in facts {
        book.push(f, 0).expect("in time");
    }
    book.advance(END);
    assert_eq!(book.len(), 3);
    let dropped = book.forget(&is_x);
    assert_eq!((dropped.customers, dropped.orders), (1, 1));
    assert_eq!(book.len(), 2);
}
