//! A store's exported order history, shaped like the real ones: server-side
//! order events only (no clickstream), two years, placed and paid in the same
//! millisecond (the payment's event id sorting first), refunds in a second
//! currency, wholesale customers with over a hundred orders, empty optional
//! strings. Replayed, then read and closed with a bounded run; every figure
//! is compared with what this test computes from the same events on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use e2e::{settings, unique};
use serde::Deserialize;
use shoplens::generate::ProduceOptions;
use shoplens::http_get::metric_sum;

const DAY: i64 = 86_400_000;
/// 2019-01-01T00:00:00Z.
const T0: i64 = 1_546_300_800_000;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n.max(1)) as i64
    }
}

fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// What the history holds, computed here from the events themselves.
#[derive(Default)]
struct Expected {
    lines: Vec<(i64, String)>,
    orders: u64,
    gross_gbp: i64,
    cancelled: u64,
    cancelled_gbp: i64,
    refunds: u64,
    refunded: BTreeMap<String, i64>,
    eur_refunds: u64,
    /// Per customer: order times, net revenue in GBP.
    customers: BTreeMap<String, (Vec<i64>, i64)>,
    /// Distinct paying customers per day.
    paying_by_day: BTreeMap<i64, BTreeSet<String>>,
    /// Per order, its row of `orders` as computed here.
    rows: BTreeMap<String, OrderFact>,
    /// Per order, when it was placed.
    placed: BTreeMap<String, i64>,
    max_ts: i64,
}

/// An order's row of `orders`, as computed here or read back.
#[derive(Debug, Clone, PartialEq, Deserialize, clickhouse::Row)]
struct OrderFact {
    order_id: String,
    customer_id: String,
    session_id: String,
    customer_order_number: u64,
    days_since_previous: Option<u32>,
    total_minor: i64,
    refunded_minor: i64,
    net_minor: i64,
    items: u64,
    paid: u8,
    cancelled: u8,
    first_touch_channel: String,
    last_non_direct_channel: String,
    first_session: u8,
    sessions_to_order: u32,
}

impl Expected {
    fn event(&mut self, ts: i64, json: String) {
        self.max_ts = self.max_ts.max(ts);
        self.lines.push((ts, json));
    }

    fn order(&mut self, rng: &mut Rng, c: usize, n: usize, ts: i64) {
        let (order, anon, user) = (format!("o{c}-{n}"), format!("a{c}"), format!("u{c}"));
        let total = 100 + rng.below(50_000);
        // Server-side events with the empty strings real exports carry.
        self.event(ts, format!(
            r#"{{"event_id":"{order}:order_placed","type":"order_placed","timestamp":{ts},"anonymous_id":"{anon}","user_id":"{user}","session_id":"","context":{{"campaign":{{"source":"","medium":""}}}},"properties":{{"order_id":"{order}","cart_id":"","coupon":"","currency":"GBP","total":"{}","products":[{{"product_id":"p{}","price":"{}","quantity":1}}]}}}}"#,
            money(total), rng.below(50), money(total)
        ));
        self.event(ts, format!(
            r#"{{"event_id":"{order}:order_paid","type":"order_paid","timestamp":{ts},"anonymous_id":"{anon}","user_id":"{user}","properties":{{"order_id":"{order}","currency":"GBP"}}}}"#
        ));
        self.orders += 1;
        self.gross_gbp += total;
        self.paying_by_day
            .entry(ts.div_euclid(DAY) * DAY)
            .or_default()
            .insert(user.clone());
        let customer = self.customers.entry(user.clone()).or_default();
        let previous = customer.0.last().map(|p| ((ts - p) / DAY) as u32);
        customer.0.push(ts);
        customer.1 += total;
        let mut row = OrderFact {
            order_id: order.clone(),
            customer_id: user.clone(),
            session_id: String::new(),
            customer_order_number: customer.0.len() as u64,
            days_since_previous: previous,
            total_minor: total,
            refunded_minor: 0,
            net_minor: total,
            items: 1,
            paid: 1,
            cancelled: 0,
            // An order-only feed has no touches: the order's own channel,
            // Direct for a back end's event with empty campaign fields.
            first_touch_channel: "Direct".into(),
            last_non_direct_channel: "Direct".into(),
            // Nor a session to have converted in.
            first_session: 0,
            sessions_to_order: 0,
        };
        match rng.below(20) {
            0 => {
                let at = ts + 10 * 60_000;
                self.event(at, format!(
                    r#"{{"event_id":"{order}:order_cancelled","type":"order_cancelled","timestamp":{at},"anonymous_id":"{anon}","user_id":"{user}","properties":{{"order_id":"{order}"}}}}"#
                ));
                self.cancelled += 1;
                self.cancelled_gbp += total;
                (row.cancelled, row.net_minor) = (1, 0);
                self.customers.get_mut(&user).unwrap().1 -= total;
            }
            1..=3 => {
                let at = ts + (1 + rng.below(40)) * DAY;
                let currency = if rng.below(2) == 0 { "GBP" } else { "EUR" };
                let amount = 1 + rng.below(total as u64);
                self.event(at, format!(
                    r#"{{"event_id":"{order}:order_refunded","type":"order_refunded","timestamp":{at},"anonymous_id":"{anon}","user_id":"{user}","properties":{{"order_id":"{order}","currency":"{currency}","amount":"{}"}}}}"#,
                    money(amount)
                ));
                self.refunds += 1;
                *self.refunded.entry(currency.into()).or_default() += amount;
                if currency == "GBP" {
                    self.customers.get_mut(&user).unwrap().1 -= amount;
                    row.refunded_minor += amount;
                    row.net_minor -= amount;
                } else {
                    self.eur_refunds += 1;
                }
            }
            _ => {}
        }
        self.placed.insert(order.clone(), ts);
        self.rows.insert(order, row);
    }

    /// Cohort retention as the spec defines it, computed from the orders:
    /// `(cohort, period) -> (cohort size, active, orders, net)`, where
    /// `cohort` maps an order's time to its cohort's key and `period` the
    /// cohort's key and an order's time to its period.
    fn retention(
        &self,
        cohort: fn(i64) -> i64,
        period: fn(i64, i64) -> i64,
    ) -> BTreeMap<(i64, i64), (u64, u64, u64, i64)> {
        let mut out: BTreeMap<(i64, i64), (u64, u64, u64, i64)> = BTreeMap::new();
        let mut active: BTreeSet<(i64, i64, &str)> = BTreeSet::new();
        let mut sizes: BTreeMap<i64, u64> = BTreeMap::new();
        for (times, _) in self.customers.values() {
            *sizes.entry(cohort(times[0])).or_default() += 1;
        }
        for (id, row) in &self.rows {
            let first = self.customers[&row.customer_id].0[0];
            let (c, at) = (cohort(first), self.placed[id]);
            let key = (c, period(c, at));
            let cell = out.entry(key).or_default();
            cell.0 = sizes[&c];
            if active.insert((key.0, key.1, row.customer_id.as_str())) {
                cell.1 += 1;
            }
            cell.2 += 1;
            cell.3 += row.net_minor;
        }
        out
    }

    /// `customers` customers over two years; the first three are wholesale
    /// buyers with 120 orders each.
    fn history(customers: usize, seed: u64) -> Expected {
        let mut rng = Rng(seed);
        let mut e = Expected::default();
        for c in 0..customers {
            let mut ts = T0 + rng.below(700) * DAY + rng.below(DAY as u64);
            let orders = if c < 3 {
                120
            } else {
                match rng.below(10) {
                    0..=5 => 1,
                    6..=8 => 2 + rng.below(3) as usize,
                    _ => 5 + rng.below(8) as usize,
                }
            };
            for n in 0..orders {
                e.order(&mut rng, c, n, ts);
                ts += if c < 3 {
                    (1 + rng.below(4)) * DAY
                } else {
                    rng.below(90) * DAY + rng.below(DAY as u64)
                };
            }
        }
        e.lines.sort();
        e
    }
}

/// Year and month (1-12) of a day counted from 1970-01-01 (H. Hinnant's
/// civil-from-days).
fn civil(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month)
}

/// A time's UTC month as ClickHouse's toRelativeMonthNum numbers it.
fn month_num(ms: i64) -> i64 {
    let (y, m) = civil(ms.div_euclid(DAY));
    y * 12 + m
}

/// The day number of the Monday starting a time's ISO week (UTC).
fn monday(ms: i64) -> i64 {
    let d = ms.div_euclid(DAY);
    d - (d + 3).rem_euclid(7)
}

/// The median of the gaps between `times` (sorted), in ms, as the spec
/// defines it: over all gaps, the mean of the middle two when even.
fn median_gap(times: &[i64]) -> i64 {
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    let n = gaps.len();
    match n {
        0 => 0,
        _ if n % 2 == 1 => gaps[n / 2],
        _ => (gaps[n / 2 - 1] + gaps[n / 2]) / 2,
    }
}

#[derive(Deserialize, clickhouse::Row)]
struct Customer {
    customer_id: String,
    orders: u64,
    net_minor: i64,
    median_gap_days: f64,
    lapsed: u8,
    currency: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_only_history_replayed_and_closed_gives_the_exact_figures() {
    let id = unique("history");
    let mut s = settings(&id);
    // The store sells in GBP and refunds some orders in EUR; the default
    // (USD) reporting currency is left as it is.
    s.contract.currencies = vec!["GBP".into(), "EUR".into()];
    ingest::admin::create_topics(&s.kafka, 3, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    let e = Expected::history(1_500, 0x5EED_1234_ABCD);
    assert!(e.customers.values().any(|(t, _)| t.len() > 64));
    let jsonl: String = e.lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    let no_flush = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    let sent = shoplens::replay::replay(&s.kafka, std::io::Cursor::new(jsonl), &no_flush)
        .await
        .expect("replay");
    assert_eq!(sent.generated.messages, e.lines.len() as u64);

    let text = e2e::bounded_run(&s).await.render();
    let n = |name: &str, label: &str| metric_sum(&text, name, label) as u64;
    assert_eq!(
        n("shoplens_events_consumed_total", ""),
        e.lines.len() as u64
    );
    assert_eq!(
        n("shoplens_events_invalid_total", ""),
        0,
        "nothing dead-lettered: {}",
        shoplens::summary::table(&text)
    );
    assert_eq!(
        n("shoplens_triggers_total", "kind=\"overdue_order\""),
        0,
        "every order was paid in the millisecond it was placed"
    );

    let ch = s.clickhouse.client().with_database(&id);
    let sessions: u64 = ch
        .query("SELECT count() FROM sessions FINAL")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(sessions, 0, "an order-only feed opens no sessions");

    #[derive(Deserialize, clickhouse::Row)]
    struct Revenue {
        currency: String,
        orders: u64,
        paid: u64,
        cancelled: u64,
        refunds: u64,
        gross_minor: i64,
        cancelled_minor: i64,
        refunded_minor: i64,
    }
    let revenue: Vec<Revenue> = ch
        .query("SELECT currency, sum(orders), sum(paid), sum(cancelled), sum(refunds), sum(gross_minor), sum(cancelled_minor), sum(refunded_minor) FROM revenue_1d_final GROUP BY currency ORDER BY currency")
        .fetch_all()
        .await
        .unwrap();
    let by = |c: &str| revenue.iter().find(|r| r.currency == c).expect(c);
    let (gbp, eur) = (by("GBP"), by("EUR"));
    assert_eq!((gbp.orders, gbp.paid), (e.orders, e.orders));
    assert_eq!(
        (gbp.gross_minor, gbp.cancelled, gbp.cancelled_minor),
        (e.gross_gbp, e.cancelled, e.cancelled_gbp)
    );
    assert_eq!(gbp.refunds + eur.refunds, e.refunds);
    assert_eq!(gbp.refunded_minor, e.refunded["GBP"]);
    assert_eq!(eur.refunded_minor, e.refunded["EUR"]);
    assert_eq!(
        (eur.orders, eur.paid),
        (0, 0),
        "payments count in the order's currency"
    );

    let got: Vec<Customer> = ch
        .query("SELECT customer_id, orders, net_minor, median_gap_days, lapsed, currency FROM customers FINAL ORDER BY customer_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(got.len(), e.customers.len());
    // The customer books stop just past the last event (and the grace).
    let end_ms = e.max_ts + s.aggregator.settle_grace_ms + 1;
    let mut lapsed = 0;
    let got: HashMap<&str, &Customer> = got.iter().map(|c| (c.customer_id.as_str(), c)).collect();
    for (user, (times, net)) in &e.customers {
        let c = got[user.as_str()];
        assert_eq!(
            (c.orders, c.net_minor, c.currency.as_str()),
            (times.len() as u64, *net, "GBP"),
            "{user}: net revenue in the store's currency, whatever the reporting one"
        );
        let median = median_gap(times);
        assert!(
            (c.median_gap_days - median as f64 / DAY as f64).abs() < 1e-9,
            "{user}"
        );
        let since = end_ms - times.last().unwrap();
        let want = times.len() >= 2 && since >= 30 * DAY && since > 2 * median;
        assert_eq!(
            c.lapsed == 1,
            want,
            "{user}: lapsed as of the end of the history; orders at {times:?}, median gap {median} ms, end {end_ms}"
        );
        lapsed += u64::from(want);
    }
    assert!(lapsed > 100, "{lapsed}");

    #[derive(Deserialize, clickhouse::Row)]
    struct Day {
        day: u16,
        paying_customers: u64,
    }
    let days: Vec<Day> = ch
        .query(
            "SELECT day, sum(paying_customers) FROM customers_1d_final GROUP BY day ORDER BY day",
        )
        .fetch_all()
        .await
        .unwrap();
    let got: BTreeMap<i64, u64> = days
        .iter()
        .filter(|d| d.paying_customers > 0)
        .map(|d| (i64::from(d.day) * DAY, d.paying_customers))
        .collect();
    let want: BTreeMap<i64, u64> = e
        .paying_by_day
        .iter()
        .map(|(d, c)| (*d, c.len() as u64))
        .collect();
    assert_eq!(got, want, "distinct paying customers per day");

    check_orders(&ch, &e, &text).await;
    check_retention(&ch, &e).await;

    // Attribution of an order-only feed: no touches, so every model gives
    // each order whole to its own channel (Direct).
    let credited: Vec<(String, String, f64, f64, i64)> = ch
        .query("SELECT model, channel, sum(conversions), sum(new_customers), sum(revenue_minor) FROM attribution_1d_final WHERE currency = 'GBP' GROUP BY model, channel ORDER BY model, channel")
        .fetch_all()
        .await
        .unwrap();
    let want: Vec<(String, String, f64, f64, i64)> = ["first_touch", "last_non_direct", "linear"]
        .map(|m| {
            let (o, c) = (e.orders as f64, e.customers.len() as f64);
            (m.to_string(), "Direct".to_string(), o, c, e.gross_gbp)
        })
        .to_vec();
    assert_eq!(credited, want);
}

/// One row per order: its customer's order number, the days since their
/// previous order, and its money net of refunds in its own currency.
async fn check_orders(ch: &clickhouse::Client, e: &Expected, text: &str) {
    let rows: Vec<OrderFact> = ch
        .query(
            "SELECT order_id, customer_id, session_id, customer_order_number, days_since_previous, \
             total_minor, refunded_minor, net_minor, items, paid_at IS NOT NULL AS paid, \
             cancelled_at IS NOT NULL AS cancelled, first_touch_channel, last_non_direct_channel, \
             first_session_at IS NOT NULL AS first_session, sessions_to_order \
             FROM orders FINAL ORDER BY order_id",
        )
        .fetch_all()
        .await
        .unwrap();
    let got: BTreeMap<String, OrderFact> =
        rows.into_iter().map(|o| (o.order_id.clone(), o)).collect();
    assert_eq!(got.len(), e.rows.len());
    for (id, want) in &e.rows {
        assert_eq!(&got[id], want, "{id}");
    }
    let n = |name: &str| metric_sum(text, name, "") as u64;
    assert_eq!(n("shoplens_order_settlements_unknown"), 0);
    assert!(e.eur_refunds > 0);
    assert_eq!(
        n("shoplens_order_refunds_foreign_currency"),
        e.eur_refunds,
        "refunds in EUR of orders in GBP are left out of their rows"
    );
}

/// Cohort retention, monthly and weekly, summed over first channels.
async fn check_retention(ch: &clickhouse::Client, e: &Expected) {
    #[derive(Deserialize, clickhouse::Row)]
    struct Cell {
        cohort: i64,
        period: i64,
        size: u64,
        active: u64,
        orders: u64,
        net: i64,
    }
    for (view, cohort_key, cohort, period) in [
        (
            "retention_monthly_final",
            "toRelativeMonthNum(cohort)",
            month_num as fn(i64) -> i64,
            (|c, at| month_num(at) - c) as fn(i64, i64) -> i64,
        ),
        (
            "retention_weekly_final",
            "toRelativeDayNum(cohort)",
            monday,
            |c, at| (monday(at) - c) / 7,
        ),
    ] {
        let cells: Vec<Cell> = ch
            .query(&format!(
                "SELECT toInt64({cohort_key}), period, s, a, o, n FROM \
                 (SELECT cohort, period, sum(active) AS a, sum(orders) AS o, sum(net_minor) AS n \
                  FROM {view} GROUP BY cohort, period) AS cells \
                 ANY LEFT JOIN (SELECT cohort, sum(cohort_size) AS s FROM {view} \
                  WHERE period = 0 GROUP BY cohort) AS sizes USING (cohort) ORDER BY cohort, period"
            ))
            .fetch_all()
            .await
            .unwrap();
        let got: BTreeMap<(i64, i64), (u64, u64, u64, i64)> = cells
            .iter()
            .map(|c| ((c.cohort, c.period), (c.size, c.active, c.orders, c.net)))
            .collect();
        let want = e.retention(cohort, period);
        assert!(want.len() > 100, "{view}: {} cells", want.len());
        assert_eq!(got, want, "{view}");
    }
}
