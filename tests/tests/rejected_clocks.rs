//! Messages the pipeline rejects and the watermark. A rejected message
//! with a valid event time moves its partition's clock as an accepted one
//! does: a partition whose last messages are dead-lettered (a currency the
//! store does not accept, say) does not hold results back until the idle
//! timeout. One with no time to go by is no sign of the partition's clock:
//! a partition fed malformed messages after its last event holds the
//! watermark one idle timeout, not for as long as they come.

use std::time::Duration;

use e2e::{eventually, rows, settings, unique};
use ingest::{Outbox, Outgoing};
use shoplens::generate::ProduceOptions;
use shoplens::Pipeline;

/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

fn page_view(n: i64) -> String {
    format!(
        r#"{{"event_id":"pv{n}","type":"page_view","timestamp":{},"anonymous_id":"v1","context":{{"page":{{"url":"https://shop.example/p/{n}"}}}}}}"#,
        T0 + n * MINUTE
    )
}

fn order(n: i64, currency: &str) -> String {
    format!(
        r#"{{"event_id":"o{n}","type":"order_placed","timestamp":{},"anonymous_id":"v1","properties":{{"order_id":"o{n}","total":"10.00","currency":"{currency}","products":[{{"product_id":"p","price":"10.00"}}]}}}}"#,
        T0 + n * MINUTE
    )
}

async fn replay(kafka: &ingest::KafkaSettings, lines: &[String]) {
    let jsonl: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let no_flush = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    let sent = shoplens::replay::replay(kafka, std::io::Cursor::new(jsonl), &no_flush)
        .await
        .expect("replay");
    assert_eq!(sent.generated.messages, lines.len() as u64);
}

/// The latest page window written, in minutes after [`T0`] (-1: none).
async fn latest_page_window(database: &str) -> i64 {
    let sql = format!(
        "SELECT count(), toInt64(max(toUnixTimestamp(window_start))) FROM pages_1m \
         WHERE window_start >= toDateTime({})",
        T0 / 1000
    );
    let text = rows(database, &sql).await;
    let mut fields = text.split_whitespace().map(|f| f.parse::<i64>().unwrap());
    match (fields.next(), fields.next()) {
        (Some(n), Some(s)) if n > 0 => (s * 1000 - T0) / MINUTE,
        _ => -1,
    }
}

/// The latest page window once it is past minute 15, within a minute.
async fn page_windows_past_minute_15(database: &str) -> i64 {
    eventually(
        "page windows past minute 15",
        Duration::from_secs(60),
        || async move {
            match latest_page_window(database).await {
                m if m >= 15 => Ok(m),
                m => Err(format!("latest page window: minute {m}")),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_last_messages_are_rejected_closes_windows_on_their_time() {
    let id = unique("rejtail");
    let mut s = settings(&id);
    // Ten minutes: only the rejected messages' own times can move the
    // orders partition's clock within the test's limit.
    s.watermark.idle_timeout_ms = 600_000;
    ingest::admin::create_topics(&s.kafka, 1, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    // A page view a minute for 20 minutes; one order in the store's
    // currency at minute 1, then one a minute in a currency it does not
    // accept (the store's default list is USD alone).
    let mut lines: Vec<String> = (0..=20).map(page_view).collect();
    lines.push(order(1, "USD"));
    lines.extend((2..=20).map(|n| order(n, "JPY")));
    replay(&s.kafka, &lines).await;

    let pipeline = Pipeline::start(s.clone()).await.expect("pipeline starts");
    let database = &s.clickhouse.database;
    // The watermark is the last event's time less the allowed lateness
    // (1 minute): just short of minute 19, which closes the windows that
    // end before it, up to minute 17's. Held at the last accepted order,
    // it would stay short of minute 0.
    let latest = page_windows_past_minute_15(database).await;
    assert_eq!(latest, 17, "the windows the watermark closes");
    let text = pipeline.metrics().render();
    assert!(
        text.contains("shoplens_events_invalid_total{reason=\"bad_currency\"} 19"),
        "the 19 orders dead-lettered"
    );
    pipeline.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_fed_malformed_messages_holds_results_one_idle_timeout() {
    let id = unique("rejgarbage");
    let s = settings(&id);
    ingest::admin::create_topics(&s.kafka, 1, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    // The orders partition's one order, at minute 1, then only malformed
    // messages, which keep coming while the test runs.
    let mut lines: Vec<String> = (0..=20).map(page_view).collect();
    lines.push(order(1, "USD"));
    replay(&s.kafka, &lines).await;

    let kafka = s.kafka.clone();
    let orders = s.kafka.topics.orders.clone();
    let garbage = tokio::spawn(async move {
        let mut outbox = Outbox::connect(&kafka).expect("producer");
        // Ten a second, as a misbehaving producer would send them.
        let mut pace = tokio::time::interval(Duration::from_millis(100));
        for i in 0u64.. {
            pace.tick().await;
            let message = Outgoing::new(&orders, format!("k{i}"), format!("not json {i}"));
            outbox.send(message.to_partition(0)).await.expect("send");
        }
    });

    let started = std::time::Instant::now();
    let pipeline = Pipeline::start(s.clone()).await.expect("pipeline starts");
    let database = &s.clickhouse.database;
    // The idle timeout is 5 s: after it the orders partition, silent in
    // event time since its order, no longer holds the watermark at minute
    // 0, and the clickstream's closes its windows. (Counted as events, the
    // malformed messages kept the partition active for good.)
    let latest = page_windows_past_minute_15(database).await;
    assert_eq!(latest, 17, "the windows the watermark closes");
    let idle = Duration::from_millis(s.watermark.idle_timeout_ms);
    assert!(started.elapsed() >= idle, "held until the idle timeout");
    garbage.abort();
    let text = pipeline.metrics().render();
    assert!(
        !text.contains("shoplens_events_invalid_total{reason=\"not_json\"} 0"),
        "the malformed messages were read and dead-lettered"
    );
    pipeline.stop().await.expect("clean shutdown");
}
