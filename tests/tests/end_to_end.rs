//! Generator -> broker -> pipeline -> ClickHouse rows and a real Prometheus
//! scrape, checked against what the generator knows it made.

use std::time::Duration;

use e2e::{eventually, settings, unique, Prometheus};
use serde::Deserialize;
use shoplens::generate::{produce, GenConfig, Generator, ProduceOptions};
use shoplens::http_get::{get, metric_sum};
use shoplens::Pipeline;

const PARTITIONS: i32 = 3;

/// What `promtool check metrics` reports about an exposition (empty: clean).
fn promtool_check_metrics(text: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (deploy/local/stack.sh install)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && report.trim().is_empty() {
        String::new()
    } else {
        format!("{}: {report}", out.status)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_traffic_lands_in_clickhouse_and_prometheus_exactly() {
    let id = unique("e2e");
    let settings = settings(&id);
    ingest::admin::create_topics(&settings.kafka, PARTITIONS, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");

    let pipeline = Pipeline::start(settings.clone())
        .await
        .expect("pipeline starts");
    let metrics_addr = pipeline.metrics_addr().to_string();
    let prometheus = Prometheus::start(&metrics_addr);

    // 20 minutes of event time, 40 sessions a minute, sent as fast as possible,
    // then one page view per partition far enough ahead to close every session.
    let start_ms = 1_700_000_000_000;
    let generator = Generator::new(GenConfig {
        seed: 7,
        start_ms,
        duration_ms: 20 * 60_000,
        sessions_per_minute: 40.0,
        ..GenConfig::default()
    });
    let no_flush = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    let report = produce(&settings.kafka, generator, start_ms, &no_flush)
        .await
        .expect("produce");
    let g = report.generated;
    assert!(
        g.sessions > 500 && g.invalid > 0 && g.duplicates > 0 && g.bot_events > 0,
        "{g:?}"
    );

    // Two days of paid-search spend, 240.00 over 48 hours, reported (as ad
    // platforms do) after the period, at the end of the traffic. Then one
    // page view per partition far enough ahead to close everything.
    let spend = format!(
        r#"{{"event_id":"spend-1","type":"ad_spend","timestamp":{},"anonymous_id":"ads","properties":{{"channel":"Paid Search","amount":"240.00","period_start":"2023-11-14T00:00:00Z","period_end":"2023-11-16T00:00:00Z"}}}}"#,
        g.max_event_ms
    );
    let flush = ProduceOptions {
        speed: None,
        flush_after_ms: Some(shoplens::generate::flush_horizon_ms(&settings)),
    };
    let sent = shoplens::replay::replay(&settings.kafka, std::io::Cursor::new(spend), &flush)
        .await
        .expect("spend replay");
    assert_eq!(sent.generated.messages, 1);
    assert!(
        g.sessions > 500 && g.invalid > 0 && g.duplicates > 0 && g.bot_events > 0,
        "{g:?}"
    );

    // Every session the generator made closes and is counted once; every
    // cart with items is converted by its order or abandoned (one trigger
    // each); every unpaid order becomes overdue (one trigger each). The
    // counters move only after rows are durable.
    let text = e2e::settled(&metrics_addr, &g, Duration::from_secs(30)).await;
    let m = |name: &str, label: &str| metric_sum(&text, name, label) as u64;
    assert_eq!(
        m("shoplens_events_consumed_total", ""),
        g.messages + sent.flush_messages + 1,
        "the generated traffic, the flush and the spend event"
    );
    assert_eq!(m("shoplens_events_invalid_total", ""), g.invalid);
    assert_eq!(m("shoplens_events_invalid_total", "reason=\"late\""), 0);
    assert_eq!(m("shoplens_events_duplicate_total", ""), g.duplicates);
    assert_eq!(m("shoplens_events_bot_total", ""), g.bot_events);
    assert_eq!(m("shoplens_page_views_total", ""), g.page_views);
    assert_eq!(m("shoplens_bounces_total", ""), g.bounces);
    assert_eq!(m("shoplens_channel_sessions_total", ""), g.sessions);
    assert_eq!(
        m("shoplens_sessions_open", ""),
        0,
        "flush events are still ahead of the watermark"
    );
    assert_eq!(m("shoplens_clickhouse_insert_failures_total", ""), 0);
    // Everything is read: the consumer lag is reported, and it is zero.
    assert!(
        text.contains("shoplens_consumer_lag_messages{topic=\"clickstream\"} 0\n"),
        "clickstream lag reported as 0"
    );
    // The live exposition passes Prometheus's own lint.
    let lint = promtool_check_metrics(&text);
    assert!(lint.is_empty(), "promtool check metrics: {lint}");

    // ClickHouse holds the same numbers, by session and by window.
    let ch = settings.clickhouse.client().with_database(&id);
    let (sessions, page_views, bounces, events): (u64, u64, u64, u64) = ch
        .query("SELECT count(), sum(page_views), sum(bounced), sum(events) FROM sessions FINAL")
        .fetch_one()
        .await
        .expect("sessions query");
    assert_eq!(
        (sessions, page_views, bounces),
        (g.sessions, g.page_views, g.bounces)
    );
    assert_eq!(
        events, g.valid_events,
        "every human event in exactly one session"
    );
    let (w_sessions, w_page_views, w_bounces): (u64, u64, u64) = ch
        .query("SELECT sum(sessions), sum(page_views), sum(bounces) FROM traffic_1m_final")
        .fetch_one()
        .await
        .expect("traffic query");
    assert_eq!(
        (w_sessions, w_page_views, w_bounces),
        (g.sessions, g.page_views, g.bounces)
    );
    let channels: u64 = ch
        .query("SELECT uniqExact(channel) FROM traffic_1m_final")
        .fetch_one()
        .await
        .expect("channels query");
    assert!(
        channels >= 6,
        "the generator's channel mix shows up: {channels}"
    );

    // The funnel starts at every session and never grows down the stages.
    #[derive(Deserialize, clickhouse::Row)]
    struct Stage {
        stage: String,
        sequential: u64,
        any_order: u64,
    }
    let funnel: Vec<Stage> = ch
        .query("SELECT stage, sum(sequential) AS sequential, sum(any_order) AS any_order FROM funnel_1m_final GROUP BY stage, stage_index ORDER BY stage_index")
        .fetch_all()
        .await
        .expect("funnel query");
    let names: Vec<&str> = funnel.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        names,
        [
            "session",
            "product_view",
            "add_to_cart",
            "checkout_started",
            "order_placed"
        ]
    );
    assert_eq!(funnel[0].sequential, g.sessions);
    assert!(funnel
        .windows(2)
        .all(|p| p[0].sequential >= p[1].sequential));
    assert!(funnel.iter().all(|s| s.any_order >= s.sequential));
    assert_eq!(
        m("shoplens_funnel_sessions_total", "stage=\"product_view\""),
        funnel[1].sequential
    );

    // Orders and revenue are exact to the cent.
    let (orders, paid, gross): (u64, u64, i64) = ch
        .query("SELECT sum(orders), sum(paid), sum(gross_minor) FROM revenue_1m_final")
        .fetch_one()
        .await
        .expect("revenue query");
    assert_eq!((orders, paid, gross), (g.orders, g.paid, g.revenue_minor));
    let product_revenue: i64 = ch
        .query("SELECT sum(revenue_minor) FROM products_1m FINAL")
        .fetch_one()
        .await
        .expect("products query");
    assert_eq!(
        product_revenue, g.revenue_minor,
        "order lines add up to order totals"
    );
    assert_eq!(m("shoplens_orders_total", ""), g.orders);

    // Every cart with items is converted by its order or abandoned; every
    // unpaid order becomes overdue; each makes one trigger.
    let (converted, abandoned_or_recovered): (u64, u64) = ch
        .query(
            "SELECT countIf(status = 'converted'), countIf(status != 'converted') FROM carts FINAL",
        )
        .fetch_one()
        .await
        .expect("carts query");
    assert_eq!(converted, g.orders);
    assert_eq!(converted + abandoned_or_recovered, g.carts);
    assert_eq!(
        m("shoplens_triggers_total", "kind=\"abandoned_cart\""),
        abandoned_or_recovered
    );
    assert_eq!(
        m("shoplens_triggers_total", "kind=\"overdue_order\""),
        g.orders - g.paid
    );

    // Customers, re-keyed by customer through the internal topic: every
    // customer who ordered is new once; the rest of their orders repeat.
    let facts_done = eventually(
        "customer facts applied",
        Duration::from_secs(60),
        || async {
            let (_, text) = get(&metrics_addr, "/metrics")
                .await
                .map_err(|e| e.to_string())?;
            let new = metric_sum(&text, "shoplens_new_customers_total", "") as u64;
            let repeat = metric_sum(&text, "shoplens_repeat_orders_total", "") as u64;
            if (new, repeat) == (g.customers, g.orders - g.customers) {
                Ok(text)
            } else {
                Err(format!(
                    "new {new}/{}, repeat {repeat}/{}",
                    g.customers,
                    g.orders - g.customers
                ))
            }
        },
    )
    .await;
    assert_eq!(
        metric_sum(&facts_done, "shoplens_customer_facts_total", "") as u64,
        g.orders + g.paid,
        "a fact per order and per payment"
    );
    let (customers, customer_orders, customer_net): (u64, u64, i64) = ch
        .query("SELECT count(), sum(orders), sum(net_minor) FROM customers FINAL")
        .fetch_one()
        .await
        .expect("customers query");
    assert_eq!(
        (customers, customer_orders, customer_net),
        (g.customers, g.orders, g.revenue_minor)
    );
    // Orders as facts: a row per order, each customer's first numbered 1,
    // the paid ones with their payment, net adding up to the customers'.
    eventually("orders rows", Duration::from_secs(60), || async {
        let got: (u64, u64, u64, i64) = ch
            .query("SELECT count(), countIf(customer_order_number = 1), countIf(paid_at IS NOT NULL), sum(net_minor) FROM orders FINAL")
            .fetch_one()
            .await
            .map_err(|e| e.to_string())?;
        let want = (g.orders, g.customers, g.paid, g.revenue_minor);
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}, want {want:?}"))
        }
    })
    .await;
    // Time to convert: every order placed in a session knows the visitor's
    // first session and the sessions it took (at least its own).
    let (in_session, unknown): (u64, u64) = ch
        .query("SELECT countIf(session_id != ''), countIf(session_id != '' AND (first_session_at IS NULL OR sessions_to_order = 0 OR first_session_at > placed_at)) FROM orders FINAL")
        .fetch_one()
        .await
        .expect("orders query");
    assert!(in_session > 0);
    assert_eq!(unknown, 0);
    // Time to convert per stage: every session the funnel counts as
    // reaching a stage (in order) is in that stage's histogram.
    let times: Vec<(u8, u64)> = ch
        .query("SELECT toUInt8(stage_index), toUInt64(sum(sessions)) FROM time_to_stage_1d_final GROUP BY stage_index ORDER BY stage_index")
        .fetch_all()
        .await
        .expect("time to stage query");
    let funnel: Vec<(u8, u64)> = ch
        .query("SELECT toUInt8(stage_index), toUInt64(sum(sequential)) FROM funnel_1m_final WHERE stage_index > 1 GROUP BY stage_index HAVING sum(sequential) > 0 ORDER BY stage_index")
        .fetch_all()
        .await
        .expect("funnel query");
    assert!(!times.is_empty());
    assert_eq!(times, funnel);
    // Attribution: under every model the credit adds up to the orders, the
    // new customers and the orders' totals, exactly.
    let totals: i64 = ch
        .query("SELECT sum(total_minor) FROM orders FINAL")
        .fetch_one()
        .await
        .expect("orders query");
    eventually("attribution rows", Duration::from_secs(60), || async {
        let got: Vec<(String, f64, f64, i64)> = ch
            .query("SELECT model, sum(conversions), sum(new_customers), sum(revenue_minor) FROM attribution_1d_final GROUP BY model ORDER BY model")
            .fetch_all()
            .await
            .map_err(|e| e.to_string())?;
        let (orders, customers) = (g.orders as f64, g.customers as f64);
        let want: Vec<(String, f64, f64, i64)> = ["first_touch", "last_non_direct", "linear"]
            .map(|m| (m.to_string(), orders, customers, totals))
            .to_vec();
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}, want {want:?}"))
        }
    })
    .await;
    // CAC: 240.00 of paid-search spend split over two days, against that day's new customers.
    let (spend_days, spend_total): (u64, i64) = ch
        .query("SELECT uniqExact(day), sum(spend_minor) FROM cac_daily_final WHERE channel = 'Paid Search' AND spend_minor > 0")
        .fetch_one()
        .await
        .expect("cac query");
    assert_eq!(
        (spend_days, spend_total),
        (2, 24_000),
        "spend consumed: {}",
        metric_sum(
            &facts_done,
            "shoplens_events_consumed_total",
            "topic=\"spend\""
        )
    );

    // Pages: one entrance and one exit per session.
    let (page_views, entrances, exits): (u64, u64, u64) = ch
        .query("SELECT sum(page_views), sum(entrances), sum(exits) FROM pages_1m_final")
        .fetch_one()
        .await
        .expect("pages query");
    assert_eq!(
        (page_views, entrances, exits),
        (g.page_views, g.sessions, g.sessions)
    );

    // Feedback and experiments.
    let nps: u64 = ch
        .query("SELECT sum(nps_responses) FROM feedback_1m_final")
        .fetch_one()
        .await
        .expect("feedback query");
    assert_eq!(nps, g.surveys);
    #[derive(Deserialize, clickhouse::Row)]
    struct Variant {
        variant: String,
        sessions: u64,
        p_value: f64,
    }
    let variants: Vec<Variant> = ch
        .query("SELECT variant, sessions, p_value FROM experiments_final ORDER BY variant")
        .fetch_all()
        .await
        .expect("experiments query");
    assert_eq!(
        variants
            .iter()
            .map(|v| v.variant.as_str())
            .collect::<Vec<_>>(),
        ["A", "B"]
    );
    assert_eq!(variants[0].p_value, 1.0, "the control against itself");
    assert!((0.0..=1.0).contains(&variants[1].p_value) && variants.iter().all(|v| v.sessions > 0));
    let experiment_sessions: u64 = variants.iter().map(|v| v.sessions).sum();
    assert_eq!(
        m("shoplens_experiment_sessions_total", ""),
        experiment_sessions
    );

    // Every invalid message is in the dead-letter topic with its reason and source.
    let dead = e2e::read_dead_letters(
        PARTITIONS,
        &settings.kafka.brokers,
        &settings.kafka.topics.dead_letter,
        g.invalid as usize,
    );
    assert_eq!(dead.len() as u64, g.invalid);
    for h in &dead {
        assert!(!h["reason"].is_empty() && h["reason"] != "late", "{h:?}");
        assert!(h["source_topic"].starts_with(&id), "{h:?}");
        assert!(
            h.contains_key("source_partition") && h.contains_key("source_offset"),
            "{h:?}"
        );
    }

    // A real Prometheus scrape sees the same counters.
    let scraped = eventually(
        "prometheus scraped the pipeline",
        Duration::from_secs(60),
        || async {
            let v = prometheus.query("shoplens_sessions_total").await?;
            if v as u64 == g.sessions {
                Ok(v)
            } else {
                Err(format!("scraped {v}"))
            }
        },
    )
    .await;
    assert_eq!(scraped as u64, g.sessions);
    let up = prometheus.query("up").await.expect("up");
    assert_eq!(up, 1.0);

    // Every Grafana panel's query runs against this stack: a renamed metric,
    // recording rule, table or column breaks the build.
    let (_, live) = get(&metrics_addr, "/metrics").await.expect("metrics");
    let rules = std::fs::read_to_string(e2e::repo_path("deploy/prometheus/rules/shoplens.yml"))
        .expect("rules");
    let queries = e2e::dashboard_queries();
    assert!(queries.len() >= 30, "{} queries", queries.len());
    for (board, panel, uid, query) in &queries {
        match uid.as_str() {
            "prometheus" => {
                for name in e2e::promql_names(query) {
                    let known = if name.contains(':') {
                        rules.contains(&format!("record: {name}\n"))
                    } else {
                        live.lines().any(|l| {
                            l.strip_prefix(name.as_str())
                                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                        })
                    };
                    assert!(
                        known,
                        "{board} / {panel}: {name} is neither exported nor recorded"
                    );
                }
                prometheus
                    .valid(query)
                    .await
                    .unwrap_or_else(|e| panic!("{board} / {panel}: {e}"));
            }
            "clickhouse" => {
                let sql = query
                    .replace("shoplens.", &format!("{id}."))
                    .replace("$__timeFilter(window_start)", "1 = 1")
                    .replace("$__timeFilter(opened)", "1 = 1");
                assert!(
                    !sql.contains('$'),
                    "{board} / {panel}: unhandled macro in {sql}"
                );
                ch.query(&sql)
                    .execute()
                    .await
                    .unwrap_or_else(|e| panic!("{board} / {panel}: {e}"));
            }
            other => panic!("{board} / {panel}: unknown datasource {other}"),
        }
    }

    // Every example of the analyst guide runs on this server (18.16) too;
    // deploy/local/current_clickhouse.py runs them on a current one.
    let examples = e2e::analyst_guide_queries();
    assert!(examples.len() >= 12, "{} examples", examples.len());
    for (before, sql) in &examples {
        let sql = sql.replace("shoplens.", &format!("{id}."));
        ch.query(sql.trim().trim_end_matches(';'))
            .execute()
            .await
            .unwrap_or_else(|e| panic!("analyst guide, after {before:?}: {e}"));
    }

    let (ready, _) = get(&metrics_addr, "/readyz").await.expect("readyz");
    assert_eq!(ready, 200);
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test]
async fn a_pipeline_whose_topics_do_not_exist_refuses_to_start() {
    let s = settings(&unique("notopics"));
    let error = Pipeline::start(s).await.err().expect("refuses to start");
    assert!(error.to_string().contains("topics missing"), "{error}");
}
