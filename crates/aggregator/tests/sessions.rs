//! Hand-computed session scenarios, and order-independence of every row.

mod common;
use aggregator::{Aggregator, AggregatorConfig, Channel, Output, Position, Rejected, Source};
use common::{Rng, MIN, T0};
use contract::{Device, Event, EventKind};

const SRC: Source = Source {
    stream: 0,
    partition: 3,
};

fn ev(id: &str, visitor: &str, ts: i64, kind: EventKind, path: Option<&str>) -> Event {
    Event {
        page: path.map(common::page),
        ..common::event(id, visitor, ts, kind)
    }
}

fn pv(id: &str, visitor: &str, ts: i64, path: &str) -> Event {
    ev(id, visitor, ts, EventKind::PageView, Some(path))
}

fn at(offset: i64) -> Position {
    Position {
        source: SRC,
        offset,
    }
}

fn run(events: &[Event], watermarks: &[i64]) -> Output {
    common::run(AggregatorConfig::default(), SRC, events, watermarks)
}

#[test]
fn a_30_minute_gap_splits_sessions_and_the_watermark_closes_them() {
    let events = [
        pv("1", "a", T0, "/"),
        pv("2", "a", T0 + 5 * MIN, "/p/1"),
        // 30 min + 1 ms after the last event: a new session.
        pv("3", "a", T0 + 35 * MIN + 1, "/cart"),
    ];
    let mut agg = Aggregator::new(AggregatorConfig::default());
    for (i, e) in events.iter().enumerate() {
        agg.push(e.clone(), at(i as i64)).unwrap();
    }
    let out = agg.advance(T0 + 40 * MIN);
    assert_eq!(out.sessions.len(), 1, "first session closed by the new one");
    let s = &out.sessions[0];
    assert_eq!(
        (s.start_ms, s.end_ms, s.page_views, s.events),
        (T0, T0 + 5 * MIN, 2, 2)
    );
    assert_eq!((&*s.entry_path, &*s.exit_path), ("/", "/p/1"));
    assert!(!s.bounced);
    assert_eq!(agg.open_sessions(), 1);
    // The second session closes when the watermark passes last event + 30 min.
    assert!(agg.advance(T0 + 65 * MIN + 1).sessions.is_empty());
    let out = agg.advance(T0 + 65 * MIN + 2);
    assert_eq!(out.sessions.len(), 1);
    assert!(out.sessions[0].bounced, "one page view, no engagement, 0 s");
    assert_eq!(agg.open_sessions(), 0);
}

#[test]
fn exactly_30_minutes_of_silence_keeps_the_session() {
    let out = run(
        &[pv("1", "a", T0, "/"), pv("2", "a", T0 + 30 * MIN, "/x")],
        &[T0 + 120 * MIN],
    );
    assert_eq!(out.sessions.len(), 1);
    assert_eq!(out.sessions[0].page_views, 2);
}

#[test]
fn bounce_follows_the_engaged_session_rule() {
    let product = EventKind::ProductView {
        product: contract::Product {
            product_id: "p".into(),
            category: None,
            price: None,
        },
    };
    let out = run(
        &[
            // one page view, 0 s: bounce
            pv("1", "bounce", T0, "/"),
            // one page view and a product view: engaged
            pv("2", "engaged", T0, "/"),
            ev("3", "engaged", T0 + 1000, product, None),
            // one page view then a signal 10 s later: long enough
            pv("4", "long", T0, "/"),
            ev(
                "5",
                "long",
                T0 + 10_000,
                EventKind::ReferralSent {
                    referral_code: "r".into(),
                },
                None,
            ),
            // one page view then a signal 9.999 s later: still a bounce
            pv("6", "short", T0, "/"),
            ev(
                "7",
                "short",
                T0 + 9_999,
                EventKind::ReferralSent {
                    referral_code: "r".into(),
                },
                None,
            ),
            // two page views: engaged
            pv("8", "two", T0, "/"),
            pv("9", "two", T0 + 1, "/x"),
        ],
        &[T0 + 60 * MIN],
    );
    let bounced = |v: &str| {
        out.sessions
            .iter()
            .find(|s| &*s.anonymous_id == v)
            .unwrap()
            .bounced
    };
    assert!(bounced("bounce"));
    assert!(!bounced("engaged"));
    assert!(!bounced("long"));
    assert!(bounced("short"));
    assert!(!bounced("two"));
    // All five started in the first minute: one traffic row, final version 5.
    let last = out
        .session_windows
        .iter()
        .max_by_key(|r| r.version)
        .unwrap();
    assert_eq!(
        (last.window_start_ms, last.channel, last.partition),
        (T0, Channel::Direct, 3)
    );
    assert_eq!((last.sessions, last.bounces, last.page_views), (5, 2, 6));
}

#[test]
fn sessions_are_capped_at_24_hours() {
    let events: Vec<Event> = (0..100)
        .map(|i| pv(&i.to_string(), "busy", T0 + i * 20 * MIN, "/"))
        .collect();
    let out = run(&events, &[T0 + 100 * 20 * MIN + 31 * MIN]);
    assert_eq!(out.sessions.len(), 2);
    assert_eq!(out.sessions[0].start_ms, T0);
    assert_eq!(out.sessions[0].page_views, 72, "events in [T0, T0+24h)");
    assert_eq!(out.sessions[1].start_ms, T0 + 24 * 60 * MIN);
}

#[test]
fn a_new_storefront_session_id_starts_a_new_session_and_orders_join_the_open_one() {
    let mut a = pv("1", "v", T0, "/");
    a.session_id = Some("s1".into());
    // A refund (from the back end, with a payment system's session id)
    // joins the open session and does not split it.
    let mut order = ev(
        "2",
        "v",
        T0 + MIN,
        EventKind::OrderRefunded {
            order_id: "o".into(),
            amount: contract::Money {
                minor: 100,
                currency: contract::Currency::parse("USD").unwrap(),
            },
        },
        None,
    );
    order.session_id = Some("psp-session".into());
    let mut b = pv("3", "v", T0 + 2 * MIN, "/");
    b.session_id = Some("s2".into());
    let out = run(&[a, order, b], &[T0 + 60 * MIN]);
    let ids: Vec<_> = out
        .sessions
        .iter()
        .map(|s| (s.session_id.as_str(), s.events))
        .collect();
    assert_eq!(ids, [("s1", 2), ("s2", 1)]);
}

#[test]
fn late_events_are_rejected_and_duplicates_change_nothing() {
    let mut agg = Aggregator::new(AggregatorConfig::default());
    agg.push(pv("1", "a", T0 + 10 * MIN, "/"), at(0)).unwrap();
    agg.advance(T0 + 5 * MIN);
    assert_eq!(
        agg.push(pv("2", "b", T0 + 5 * MIN - 1, "/"), at(1)),
        Err(Rejected::Late {
            watermark_ms: T0 + 5 * MIN
        })
    );
    assert!(agg.push(pv("3", "b", T0 + 5 * MIN, "/"), at(2)).is_ok());
    assert_eq!(
        agg.push(pv("1", "a", T0 + 10 * MIN, "/"), at(3)),
        Err(Rejected::Duplicate)
    );
    let out = agg.advance(T0 + 100 * MIN);
    assert_eq!(out.sessions.len(), 2);
    assert_eq!(agg.stats().late, 1);
    assert_eq!(agg.stats().duplicates, 1);
}

#[test]
fn bots_are_counted_apart() {
    let mut agg = Aggregator::new(AggregatorConfig::default());
    let mut bot = pv("1", "crawler", T0, "/");
    bot.device = Device::Bot;
    assert_eq!(agg.push(bot, at(0)), Ok(aggregator::Accepted::Bot));
    assert!(agg.advance(T0 + 100 * MIN).sessions.is_empty());
    assert_eq!(agg.stats().bots, 1);
}

#[test]
fn low_water_is_the_oldest_offset_an_open_session_needs() {
    let mut agg = Aggregator::new(AggregatorConfig::default());
    agg.push(pv("1", "a", T0, "/"), at(10)).unwrap();
    agg.push(pv("2", "b", T0 + MIN, "/"), at(11)).unwrap();
    assert_eq!(agg.low_water(SRC), Some(10), "buffered events are held");
    agg.advance(T0 + 2 * MIN);
    assert_eq!(agg.low_water(SRC), Some(10), "open sessions are held");
    agg.advance(T0 + 30 * MIN + 1);
    assert_eq!(agg.low_water(SRC), Some(11), "a's session closed");
    agg.advance(T0 + 32 * MIN);
    assert_eq!(agg.low_water(SRC), None);
}

fn sample_events(rng: &mut Rng) -> Vec<Event> {
    let usd = |minor: i64| contract::Money {
        minor,
        currency: contract::Currency::parse("USD").unwrap(),
    };
    let line = |p: u64| contract::LineItem {
        product_id: format!("p{p}").into(),
        price: usd(100 + p as i64),
        quantity: 1,
    };
    let mut events = Vec::new();
    for v in 0..40 {
        let visitor = format!("visitor{v}");
        let mut t = T0 + (rng.next() % 120) as i64 * MIN;
        for n in 0..(1 + rng.next() % 8) {
            t += (rng.next() % (40 * MIN as u64)) as i64;
            let path = ["/", "/a", "/b"][(rng.next() % 3) as usize];
            events.push(pv(&format!("{v}-{n}"), &visitor, t, path));
            let kind = match rng.next() % 6 {
                0 => EventKind::AddToCart {
                    cart_id: format!("cart{v}").into(),
                    line: line(rng.next() % 3),
                },
                1 => EventKind::OrderPlaced {
                    order_id: format!("order{v}-{n}").into(),
                    cart_id: None,
                    total: usd(500),
                    referral_code: None,
                    products: vec![line(1)],
                },
                2 => EventKind::SurveyResponse {
                    survey: contract::Survey::Nps,
                    score: (rng.next() % 11) as f64,
                    scale_max: 10.0,
                },
                _ => continue,
            };
            let e = ev(&format!("{v}-{n}-x"), &visitor, t + 1000, kind, None);
            events.push(e);
        }
    }
    events.sort_by_key(|e| e.timestamp_ms);
    events
}

/// Final rows of every kind, independent of how advances were batched:
/// the last version per key for re-emitted rows, everything else sorted.
#[derive(Debug, PartialEq)]
struct Final {
    sessions: Vec<aggregator::SessionRow>,
    windows: Vec<aggregator::SessionWindowRow>,
    rest: Vec<String>,
}

fn final_rows(out: Output) -> Final {
    let mut sessions = out.sessions;
    sessions.sort_by(|a, b| (a.start_ms, &a.anonymous_id).cmp(&(b.start_ms, &b.anonymous_id)));
    let mut last = std::collections::BTreeMap::new();
    for r in out.session_windows {
        let k = (
            r.window_start_ms,
            r.channel,
            r.experiment_id.clone(),
            r.variant.clone(),
            r.partition,
        );
        let keep = last
            .get(&k)
            .is_none_or(|o: &aggregator::SessionWindowRow| o.version < r.version);
        if keep {
            last.insert(k, r);
        }
    }
    let mut pages = std::collections::BTreeMap::new();
    for p in out.pages {
        let k = (p.window_start_ms, p.path.clone(), p.partition);
        if pages
            .get(&k)
            .is_none_or(|o: &aggregator::PageRow| o.version < p.version)
        {
            pages.insert(k, p);
        }
    }
    let mut carts = std::collections::BTreeMap::new();
    for c in out.carts {
        if carts
            .get(&c.cart_id)
            .is_none_or(|o: &aggregator::CartRow| o.version < c.version)
        {
            carts.insert(c.cart_id.clone(), c);
        }
    }
    let mut rest: Vec<String> = pages.values().map(|r| format!("{r:?}")).collect();
    rest.extend(carts.values().map(|r| format!("{r:?}")));
    rest.extend(out.products.iter().map(|r| format!("{r:?}")));
    rest.extend(out.orders.iter().map(|r| format!("{r:?}")));
    rest.extend(out.feedback.iter().map(|r| format!("{r:?}")));
    rest.extend(out.triggers.iter().map(|r| format!("{r:?}")));
    rest.sort();
    Final {
        sessions,
        windows: last.into_values().collect(),
        rest,
    }
}

#[test]
fn shuffling_inside_the_lateness_or_repeating_events_gives_the_same_rows() {
    const LATENESS: i64 = MIN;
    for seed in 1..30u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let events = sample_events(&mut rng);
        let end = events.last().unwrap().timestamp_ms + 120 * MIN;

        // Reference: in order, one advance per event.
        let reference = {
            let mut agg = Aggregator::new(AggregatorConfig::default());
            let mut out = Output::default();
            for (i, e) in events.iter().enumerate() {
                agg.push(e.clone(), at(i as i64)).unwrap();
                let o = agg.advance(e.timestamp_ms - LATENESS);
                out.extend(o);
            }
            let o = agg.advance(end);
            out.extend(o);
            final_rows(out)
        };

        // Shuffled inside the lateness, with repeats, advancing irregularly.
        let mut shuffled: Vec<(i64, Event)> = events
            .iter()
            .map(|e| {
                (
                    e.timestamp_ms + (rng.next() % LATENESS as u64) as i64,
                    e.clone(),
                )
            })
            .collect();
        for i in 0..shuffled.len() / 5 {
            let dup = shuffled[(i * 7) % shuffled.len()].clone();
            shuffled.push((dup.0 + (rng.next() % 1000) as i64, dup.1));
        }
        shuffled.sort_by_key(|(arrival, _)| *arrival);
        let mut agg = Aggregator::new(AggregatorConfig::default());
        let mut out = Output::default();
        let mut max_seen = i64::MIN;
        for (i, (_, e)) in shuffled.into_iter().enumerate() {
            max_seen = max_seen.max(e.timestamp_ms);
            match agg.push(e, at(i as i64)) {
                Ok(_) | Err(Rejected::Duplicate) => {}
                Err(late) => panic!("seed {seed}: {late:?}"),
            }
            if rng.next().is_multiple_of(3) {
                let o = agg.advance(max_seen - LATENESS);
                out.extend(o);
            }
        }
        out.extend(agg.advance(end));
        assert_eq!(final_rows(out), reference, "seed {seed}");
    }
}

#[test]
fn traffic_sums_match_the_sessions() {
    let mut rng = Rng(42);
    let events = sample_events(&mut rng);
    let end = events.last().unwrap().timestamp_ms + 120 * MIN;
    let f = final_rows(run(&events, &[end]));
    let (sessions, traffic) = (f.sessions, f.windows);
    assert_eq!(
        traffic.iter().map(|r| r.sessions).sum::<u64>(),
        sessions.len() as u64
    );
    assert_eq!(
        traffic.iter().map(|r| r.page_views).sum::<u64>(),
        sessions
            .iter()
            .map(|s| u64::from(s.page_views))
            .sum::<u64>()
    );
    assert_eq!(
        traffic.iter().map(|r| r.bounces).sum::<u64>(),
        sessions.iter().filter(|s| s.bounced).count() as u64
    );
    assert_eq!(
        sessions.iter().map(|s| s.events as usize).sum::<usize>(),
        events.len()
    );
    assert!(
        !f.rest.is_empty(),
        "pages, carts, orders and feedback rows were made"
    );
}

#[test]
fn past_the_open_session_bound_the_session_due_soonest_closes_early_and_is_counted() {
    let cfg = AggregatorConfig {
        max_open_sessions: 2,
        ..AggregatorConfig::default()
    };
    let mut agg = Aggregator::new(cfg);
    let events = [
        pv("1", "a", T0, "/"),
        pv("2", "b", T0 + MIN, "/"),
        pv("3", "a", T0 + 2 * MIN, "/p/1"), // a's session now ends after b's
        pv("4", "c", T0 + 3 * MIN, "/"),    // a third: b is due soonest
        pv("5", "b", T0 + 4 * MIN, "/p/2"), // b again: a new session, a goes
    ];
    for (i, e) in events.iter().enumerate() {
        agg.push(e.clone(), at(i as i64)).unwrap();
    }
    let out = agg.advance(T0 + 5 * MIN);
    assert_eq!(out.evictions.sessions, 2);
    let closed: Vec<(&str, i64, u32, &str)> = out
        .sessions
        .iter()
        .map(|s| (&*s.anonymous_id, s.start_ms, s.page_views, &*s.exit_path))
        .collect();
    assert_eq!(
        closed,
        [("b", T0 + MIN, 1, "/"), ("a", T0, 2, "/p/1")],
        "closed in the order they were pushed out, with what they had"
    );
    assert_eq!(agg.open_sessions(), 2);
    // The rest close as usual, and every page view and exit is counted once.
    let rest = agg.advance(T0 + 3_600_000);
    assert_eq!(rest.evictions.sessions, 0);
    assert_eq!(rest.sessions.len(), 2);
    // A page window is emitted again while exits land in it: keep the
    // latest version of each.
    let mut latest = std::collections::BTreeMap::new();
    for p in out.pages.iter().chain(&rest.pages) {
        let key = (p.window_start_ms, p.path.clone());
        let newer = latest.get(&key).is_none_or(|(v, _)| p.version > *v);
        if newer {
            latest.insert(key, (p.version, p.exits));
        }
    }
    let exits: u64 = latest.values().map(|(_, e)| e).sum();
    assert_eq!(exits, 4, "one exit per session: b, a, c and b's second");
}
