//! A bounded run's tables equal those of a streaming run of the same input
//! that was stopped and then closed by a bounded run of its own group: the
//! closing adds nothing of its own, and a later run continues where the
//! streaming one stopped.

use std::time::Duration;

use e2e::{bounded_run, eventually, produce_backlog, rows, settings, unique};
use shoplens::http_get::{get, metric_sum};
use shoplens::{Pipeline, Settings};

/// The analysts' tables, each in a fixed order.
const TABLES: [&str; 9] = [
    "SELECT * FROM sessions FINAL ORDER BY session_id, start",
    "SELECT * FROM traffic_1m_final ORDER BY window_start, channel",
    "SELECT * FROM funnel_1m_final ORDER BY window_start, channel, experiment_id, variant, stage_index",
    "SELECT * FROM pages_1m_final ORDER BY window_start, path",
    "SELECT * FROM revenue_1m_final ORDER BY window_start, currency, channel",
    "SELECT * FROM carts FINAL ORDER BY cart_id, opened",
    "SELECT * FROM customers FINAL ORDER BY customer_id",
    "SELECT * FROM customers_1d_final ORDER BY day, channel",
    "SELECT * FROM orders FINAL ORDER BY order_id",
];

/// `base` with a group, a database and output topics of its own (the
/// facts topic above all: each group's customer books read only its own).
fn own(base: &Settings, name: &str) -> Settings {
    let mut s = base.clone();
    s.kafka.group_id = format!("{}-{name}", base.kafka.group_id);
    s.clickhouse.database = format!("{}_{name}", base.clickhouse.database);
    let t = &mut s.kafka.topics;
    t.customer_facts = format!("{}-{name}", t.customer_facts);
    t.triggers = format!("{}-{name}", t.triggers);
    t.dead_letter = format!("{}-{name}", t.dead_letter);
    s
}

async fn until_end(s: &Settings) {
    bounded_run(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_run_equals_a_stopped_streaming_run_closed_later() {
    let id = unique("bounded");
    let base = settings(&id);
    let (one_shot, streamed) = (own(&base, "a"), own(&base, "b"));
    for s in [&one_shot, &streamed] {
        ingest::admin::create_topics(&s.kafka, 3, 1)
            .await
            .expect("topics (is the stack up? deploy/local/stack.sh up)");
    }
    let generated = produce_backlog(&base.kafka, 11, 15, 20.0).await;
    let messages = generated.messages as f64;

    until_end(&one_shot).await;

    // The same input streamed, stopped once all of it is read, then closed.
    let pipeline = Pipeline::start(streamed.clone()).await.expect("starts");
    let addr = pipeline.metrics_addr().to_string();
    eventually("every message read", Duration::from_secs(90), || async {
        let (_, text) = get(&addr, "/metrics").await.map_err(|e| e.to_string())?;
        let read = metric_sum(&text, "shoplens_events_consumed_total", "");
        (read >= messages)
            .then_some(())
            .ok_or(format!("{read} of {messages}"))
    })
    .await;
    pipeline.stop().await.expect("stops cleanly");
    until_end(&streamed).await;

    let sessions = rows(
        &one_shot.clickhouse.database,
        "SELECT count() FROM sessions FINAL",
    )
    .await;
    assert_eq!(
        sessions.trim().parse::<u64>().unwrap(),
        generated.sessions,
        "every session the generator made, closed once"
    );
    for sql in TABLES {
        let a = rows(&one_shot.clickhouse.database, sql).await;
        let b = rows(&streamed.clickhouse.database, sql).await;
        assert!(!a.trim().is_empty(), "{sql}: no rows");
        assert_eq!(a, b, "{sql}");
    }
}
