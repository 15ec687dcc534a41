//! Unit tests of the customer book (lapses, bounds, distinct customers per day).

use super::*;

const DAY: i64 = DAY_MS;
const T0: i64 = 1_569_888_000_000;

fn order(customer: &str, id: &str, ts: i64, minor: i64) -> CustomerFact {
    CustomerFact {
        customer_id: customer.into(),
        kind: FactKind::Order,
        order_id: id.into(),
        ts_ms: ts,
        amount_minor: minor,
        currency: "USD".into(),
        channel: Channel::Email,
        order: None,
    }
}

#[test]
fn new_and_repeat_customers_net_revenue_and_median_gap() {
    let mut b = CustomerBook::new(30 * DAY, "USD");
    b.push(order("c1", "o1", T0, 1000), 0).unwrap();
    b.push(order("c1", "o2", T0 + 10 * DAY, 2000), 0).unwrap();
    b.push(order("c1", "o3", T0 + 40 * DAY, 3000), 0).unwrap();
    let mut refund = order("c1", "o3", T0 + 41 * DAY, 500);
    refund.kind = FactKind::Refund;
    b.push(refund, 0).unwrap();
    b.push(order("c2", "o4", T0 + DAY, 700), 0).unwrap();
    let out = b.advance(T0 + 42 * DAY);
    let c1 = out
        .customers
        .iter()
        .find(|c| c.customer_id == "c1")
        .unwrap();
    assert_eq!(
        (c1.orders, c1.net_minor, c1.median_gap_ms),
        (3, 5500, 20 * DAY)
    );
    assert_eq!(c1.first_order_ms, T0);
    let new: u64 = out.days.iter().map(|d| d.new_customers).sum();
    let repeat: u64 = out.days.iter().map(|d| d.repeat_orders).sum();
    assert_eq!((new, repeat), (2, 2));
}

#[test]
fn a_customer_lapses_once_after_twice_the_median_gap_and_30_days() {
    let mut b = CustomerBook::new(30 * DAY, "USD");
    // Monthly buyer: gaps of 30 days, so lapsed after 60 days of silence.
    for (i, id) in ["o1", "o2", "o3"].iter().enumerate() {
        b.push(order("c1", id, T0 + i as i64 * 30 * DAY, 1000), 0)
            .unwrap();
    }
    // A one-time buyer never lapses.
    b.push(order("c2", "o9", T0, 1000), 0).unwrap();
    let last = T0 + 60 * DAY;
    assert!(
        b.advance(last + 60 * DAY).lapsed.is_empty(),
        "exactly 60 days is not beyond"
    );
    let out = b.advance(last + 60 * DAY + 2);
    assert_eq!(out.lapsed.len(), 1);
    assert_eq!(out.lapsed[0].customer_id, "c1");
    assert!(
        b.advance(last + 200 * DAY).lapsed.is_empty(),
        "emitted once"
    );
    // A new order resets it; silence lapses it again.
    b.push(order("c1", "o4", last + 201 * DAY, 1000), 0)
        .unwrap();
    let out = b.advance(last + 201 * DAY + 1);
    assert!(!out.customers[0].lapsed);
    assert_eq!(b.advance(last + 1000 * DAY).lapsed.len(), 1);
}

#[test]
fn short_gaps_lapse_at_exactly_30_days() {
    let mut b = CustomerBook::new(30 * DAY, "USD");
    b.push(order("c", "a", T0, 1), 0).unwrap();
    b.push(order("c", "b", T0 + DAY, 1), 0).unwrap();
    assert!(b.advance(T0 + 31 * DAY - 1).lapsed.is_empty());
    // "At least 30 days": 30 days to the millisecond is lapsed.
    assert_eq!(b.advance(T0 + 31 * DAY).lapsed.len(), 1);
}

#[test]
fn a_day_counts_each_paying_and_repeat_customer_once() {
    let mut b = CustomerBook::new(30 * DAY, "USD");
    // c1: first order and a repeat the same day; c2: three repeats.
    b.push(order("c2", "x", T0 - DAY, 1), 0).unwrap();
    for (c, o, ts) in [
        ("c1", "a", 1),
        ("c1", "b", 2),
        ("c2", "y", 3),
        ("c2", "z", 4),
    ] {
        b.push(order(c, o, T0 + ts, 1), 0).unwrap();
    }
    b.push(order("c2", "w", T0 + 5, 1), 0).unwrap();
    let out = b.advance(T0 + DAY);
    let d = out.days.iter().find(|d| d.day_ms == T0).unwrap();
    let got = (d.orders, d.new_customers, d.repeat_orders);
    assert_eq!(got, (5, 1, 4));
    assert_eq!((d.paying_customers, d.repeat_customers), (2, 2));
}

#[test]
fn the_median_gap_is_over_all_of_a_wholesale_customers_gaps() {
    let mut b = CustomerBook::new(30 * DAY, "USD");
    // 100 gaps of 1 day, then 80 gaps of 10 days: 180 gaps, median 1
    // day over all of them (the last 64 alone would say 10 days).
    let mut ts = T0;
    for i in 0..181 {
        b.push(order("w", &format!("o{i}"), ts, 1), 0).unwrap();
        ts += if i < 100 { DAY } else { 10 * DAY };
    }
    let out = b.advance(ts);
    let row = out.customers.iter().find(|c| c.customer_id == "w").unwrap();
    assert_eq!(row.orders, 181);
    assert_eq!(row.median_gap_ms, DAY);
}

#[test]
fn the_memory_bound_forgets_the_least_recent_customer() {
    let mut b = CustomerBook::bounded(30 * DAY, "USD", 2);
    b.push(order("old", "a", T0, 1), 0).unwrap();
    b.push(order("mid", "b", T0 + DAY, 1), 0).unwrap();
    b.push(order("old", "c", T0 + 2 * DAY, 1), 0).unwrap();
    b.push(order("new", "d", T0 + 3 * DAY, 1), 0).unwrap();
    b.advance(T0 + 4 * DAY);
    assert_eq!((b.len(), b.evicted()), (2, 1), "mid ordered least recently");
    // "mid" ordering again is a new customer to the book.
    b.push(order("mid", "e", T0 + 5 * DAY, 1), 0).unwrap();
    assert_eq!(b.advance(T0 + 6 * DAY).new_customers, 1);
}

#[test]
fn late_facts_are_refused_and_repeats_change_nothing() {
    let mut b = CustomerBook::new(30 * DAY, "USD");
    b.push(order("c", "a", T0, 1), 0).unwrap();
    b.push(order("c", "a", T0, 1), 0).unwrap();
    let out = b.advance(T0 + 1);
    assert_eq!(out.customers[0].orders, 1);
    assert_eq!(b.push(order("c", "b", T0, 1), 0), Err(T0 + 1));
}

#[test]
fn customers_past_the_kept_gaps_are_counted_once() {
    let mut b = CustomerBook::new(30 * DAY, "USD");
    for i in 0..(MAX_GAPS as i64 + 3) {
        b.push(order("w", &format!("o{i}"), T0 + i * 1000, 1), 0)
            .unwrap();
    }
    b.advance(T0 + DAY);
    assert_eq!(b.gaps_clipped(), 1, "one customer, clipped by three orders");
}

#[test]
fn a_customer_s_net_revenue_is_in_the_currency_of_their_first_order() {
    // The book's reporting currency is USD; this store sells in GBP.
    let mut b = CustomerBook::new(30 * DAY, "USD");
    let gbp = |mut f: CustomerFact| {
        f.currency = "GBP".into();
        f
    };
    b.push(gbp(order("c", "a", T0, 5_000)), 0).unwrap();
    b.push(gbp(order("c", "b", T0 + 1, 2_000)), 0).unwrap();
    let mut refund = gbp(order("c", "b", T0 + 2, 500));
    refund.kind = FactKind::Refund;
    b.push(refund, 0).unwrap();
    // A refund in another currency is left out, and counted.
    let mut eur = order("c", "a", T0 + 3, 100);
    eur.kind = FactKind::Refund;
    eur.currency = "EUR".into();
    b.push(eur, 0).unwrap();
    let out = b.advance(T0 + DAY);
    let c = &out.customers[0];
    assert_eq!((c.net_minor, c.currency.as_str()), (6_500, "GBP"));
    assert_eq!(b.foreign_currency_facts(), 1);
}

#[test]
fn a_fact_round_trips_through_the_facts_topic_and_unknown_labels_are_refused() {
    let f = CustomerFact {
        customer_id: "u1".into(),
        kind: FactKind::Refund,
        order_id: "o".into(),
        ts_ms: 5,
        amount_minor: 100,
        currency: "EUR".into(),
        channel: Channel::OrganicSocial,
        order: None,
    };
    let (key, bytes) = contract::internal::encode_fact(&f.to_wire());
    assert_eq!(key, "u1");
    let Some(contract::internal::FactMessage::Fact(wire)) =
        contract::internal::decode_message(&bytes)
    else {
        panic!("a fact");
    };
    assert_eq!(CustomerFact::from_wire(wire.clone()), Some(f));
    let unknown_kind = contract::internal::FactWire {
        kind: "gift".into(),
        ..wire.clone()
    };
    assert_eq!(CustomerFact::from_wire(unknown_kind), None);
    let unknown_channel = contract::internal::FactWire {
        channel: "Carrier Pigeon".into(),
        ..wire
    };
    assert_eq!(CustomerFact::from_wire(unknown_channel), None);
}
