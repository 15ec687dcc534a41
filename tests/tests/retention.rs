//! Cohort retention views on `orders`, against a triangle computed by hand:
//! twelve customers over four months, three first channels, two
//! currencies, a cancelled order, an order in another currency, and orders
//! on both sides of a month's and a week's boundary. Rows go through the
//! pipeline's own writer into a freshly migrated database (ClickHouse of
//! the local stack).

use aggregator::{Channel, CustomerOutput, OrderRow};
use e2e::{settings, unique};
use serde::Deserialize;

/// `yyyy-mm-dd hh:mm:ss` (UTC) as Unix milliseconds.
fn at(s: &str) -> i64 {
    let (date, time) = s.split_once(' ').unwrap_or((s, "00:00:00"));
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    // Days from 1970-01-01 (H. Hinnant's days-from-civil).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000
}

/// Order `id` of `customer`, their `number`th, placed at `when`.
fn order(id: &str, customer: &str, when: &str, cur: &str, net: i64, number: u64) -> OrderRow {
    let channel = match customer {
        "c1" | "c2" | "c3" | "c7" | "c8" | "c11" => Channel::Email,
        "c12" => Channel::PaidSearch,
        _ => Channel::Direct,
    };
    OrderRow {
        order_id: id.into(),
        customer_id: customer.into(),
        anonymous_id: format!("a-{customer}"),
        session_id: String::new(),
        placed_ms: at(when),
        paid_ms: None,
        cancelled_ms: (net == 0).then(|| at(when)),
        currency: cur.into(),
        total_minor: net.max(1),
        refunded_minor: 0,
        net_minor: net,
        items: 1,
        customer_order_number: number,
        days_since_previous: None,
        // A repeat order's own channel does not move its customer's cohort.
        channel: if number == 1 {
            channel
        } else {
            Channel::Referral
        },
        first_touch_channel: channel,
        last_non_direct_channel: channel,
        first_session_ms: None,
        sessions_to_order: 0,
        experiment_id: String::new(),
        variant: String::new(),
        partition: 0,
        version: 1,
    }
}

fn orders() -> Vec<OrderRow> {
    vec![
        order("o1", "c1", "2019-01-10 12:00:00", "USD", 1000, 1),
        order("o2", "c1", "2019-02-05 12:00:00", "USD", 2000, 2),
        order("o3", "c1", "2019-04-01 12:00:00", "USD", 3000, 3),
        order("o4", "c2", "2019-01-20 12:00:00", "USD", 500, 1),
        order("o5", "c2", "2019-01-25 12:00:00", "USD", 700, 2),
        order("o6", "c2", "2019-03-03 12:00:00", "USD", 900, 3),
        order("o7", "c3", "2019-01-31 23:59:59", "USD", 100, 1),
        order("o8", "c3", "2019-02-01 00:00:00", "USD", 200, 2),
        order("o9", "c4", "2019-01-15 12:00:00", "USD", 400, 1),
        order("o10", "c5", "2019-01-02 12:00:00", "USD", 600, 1),
        order("o11", "c5", "2019-02-28 12:00:00", "USD", 0, 2),
        order("o12", "c6", "2019-01-03 12:00:00", "EUR", 800, 1),
        order("o13", "c6", "2019-03-10 12:00:00", "EUR", 1200, 2),
        order("o14", "c7", "2019-02-01 12:00:00", "USD", 300, 1),
        order("o15", "c7", "2019-02-14 12:00:00", "USD", 300, 2),
        order("o16", "c7", "2019-03-01 12:00:00", "USD", 300, 3),
        order("o17", "c8", "2019-02-10 12:00:00", "USD", 50, 1),
        order("o18", "c9", "2019-02-12 12:00:00", "USD", 75, 1),
        order("o19", "c9", "2019-04-30 12:00:00", "USD", 25, 2),
        order("o20", "c10", "2019-03-05 12:00:00", "USD", 10, 1),
        order("o21", "c11", "2019-03-06 12:00:00", "USD", 20, 1),
        order("o22", "c11", "2019-04-06 12:00:00", "EUR", 999, 2),
        order("o23", "c12", "2019-03-07 12:00:00", "USD", 30, 1),
        order("o24", "c12", "2019-03-20 12:00:00", "USD", 40, 2),
        order("o25", "c12", "2019-04-02 12:00:00", "USD", 50, 3),
    ]
}

#[derive(Debug, PartialEq, Deserialize, clickhouse::Row)]
struct Cell {
    cohort: String,
    first_channel: String,
    currency: String,
    period: i64,
    cohort_size: u64,
    active: u64,
    orders: u64,
    net_minor: i64,
}

/// (cohort, first channel, currency, period, size, active, orders, net).
type Want = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    u64,
    u64,
    u64,
    i64,
);

fn cells(want: &[Want]) -> Vec<Cell> {
    want.iter()
        .map(|&(c, ch, cur, p, size, active, orders, net)| Cell {
            cohort: c.into(),
            first_channel: ch.into(),
            currency: cur.into(),
            period: p,
            cohort_size: size,
            active,
            orders,
            net_minor: net,
        })
        .collect()
}

async fn view(ch: &clickhouse::Client, name: &str, filter: &str) -> Vec<Cell> {
    ch.query(&format!(
        "SELECT toString(cohort), first_channel, currency, period, cohort_size, active, orders, \
         net_minor FROM {name} WHERE {filter} \
         ORDER BY cohort, first_channel, currency, period"
    ))
    .fetch_all()
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn a_dozen_customers_give_the_retention_triangles_computed_by_hand() {
    let s = settings(&unique("retention"));
    let sink = e2e::migrated_sink(&s).await;
    let out = CustomerOutput {
        orders: orders(),
        ..CustomerOutput::default()
    };
    sink.write_customers(&out).await;
    let ch = s.clickhouse.client().with_database(&s.clickhouse.database);

    // c5's cancelled order counts as activity with no money; c11's order in
    // EUR counts as activity, and adds nothing to a USD cohort's revenue.
    let monthly = cells(&[
        ("2019-01-01", "Direct", "EUR", 0, 1, 1, 1, 800),
        ("2019-01-01", "Direct", "EUR", 2, 1, 1, 1, 1200),
        ("2019-01-01", "Direct", "USD", 0, 2, 2, 2, 1000),
        ("2019-01-01", "Direct", "USD", 1, 2, 1, 1, 0),
        ("2019-01-01", "Email", "USD", 0, 3, 3, 4, 2300),
        ("2019-01-01", "Email", "USD", 1, 3, 2, 2, 2200),
        ("2019-01-01", "Email", "USD", 2, 3, 1, 1, 900),
        ("2019-01-01", "Email", "USD", 3, 3, 1, 1, 3000),
        ("2019-02-01", "Direct", "USD", 0, 1, 1, 1, 75),
        ("2019-02-01", "Direct", "USD", 2, 1, 1, 1, 25),
        ("2019-02-01", "Email", "USD", 0, 2, 2, 3, 650),
        ("2019-02-01", "Email", "USD", 1, 2, 1, 1, 300),
        ("2019-03-01", "Direct", "USD", 0, 1, 1, 1, 10),
        ("2019-03-01", "Email", "USD", 0, 1, 1, 1, 20),
        ("2019-03-01", "Email", "USD", 1, 1, 1, 1, 0),
        ("2019-03-01", "Paid Search", "USD", 0, 1, 1, 2, 70),
        ("2019-03-01", "Paid Search", "USD", 1, 1, 1, 1, 50),
    ]);
    assert_eq!(view(&ch, "retention_monthly_final", "1 = 1").await, monthly);

    // ISO weeks: c1 (Thursday 10 January) is alone in the week of Monday 7
    // January; c3 (Thursday 31 January) and c7 (Friday 1 February) share
    // the week of 28 January, where c3's second order (1 February) falls
    // too; c8 ordered on Sunday 10 February, the week of 4 February.
    let weekly = cells(&[
        ("2019-01-07", "Email", "USD", 0, 1, 1, 1, 1000),
        ("2019-01-07", "Email", "USD", 4, 1, 1, 1, 2000),
        ("2019-01-07", "Email", "USD", 12, 1, 1, 1, 3000),
        ("2019-01-28", "Email", "USD", 0, 2, 2, 3, 600),
        ("2019-01-28", "Email", "USD", 2, 2, 1, 1, 300),
        ("2019-01-28", "Email", "USD", 4, 2, 1, 1, 300),
        ("2019-02-04", "Email", "USD", 0, 1, 1, 1, 50),
    ]);
    let filter = "first_channel = 'Email' AND cohort IN ('2019-01-07', '2019-01-28', '2019-02-04')";
    assert_eq!(view(&ch, "retention_weekly_final", filter).await, weekly);

    let rate: Vec<(String, i64, f64)> = ch
        .query("SELECT toString(cohort), period, retention FROM retention_monthly_final WHERE first_channel = 'Email' AND cohort = '2019-01-01' ORDER BY period")
        .fetch_all()
        .await
        .unwrap();
    let rates: Vec<f64> = rate.iter().map(|r| r.2).collect();
    assert_eq!(rates, [1.0, 2.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]);
}
