//! Generator -> broker -> pipeline -> ClickHouse rows and a real Prometheus
//! scrape, checked against what the generator knows it made.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::{eventually, settings, unique, Prometheus};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shoplens::generate::{produce, GenConfig, Generator, ProduceOptions};
use shoplens::http_get::{get, metric_sum};
use shoplens::Pipeline;

const PARTITIONS: i32 = 3;

/// Reads every message of `topic` (all partitions, from the start) until
/// `want` have arrived; returns the `reason` header of each.
fn read_dead_letters(brokers: &str, topic: &str, want: usize) -> Vec<BTreeMap<String, String>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while out.len() < want && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut h = BTreeMap::new();
            if let Some(headers) = m.headers() {
                for header in headers.iter() {
                    let value = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    h.insert(header.key.to_string(), value.unwrap_or_default());
                }
            }
            out.push(h);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_traffic_lands_in_clickhouse_and_prometheus_exactly() {
    let id = unique("e2e");
    let settings = settings(&id);
    shoplens::topics::create_topics(&settings.kafka, PARTITIONS, 1)
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
    let opts = ProduceOptions {
        speed: None,
        flush_after_ms: Some(
            settings.aggregator.session_gap_ms + settings.watermark.allowed_lateness_ms + 120_000,
        ),
    };
    let report = produce(&settings.kafka, generator, start_ms, &opts)
        .await
        .expect("produce");
    let g = report.generated;
    assert!(
        g.sessions > 500 && g.invalid > 0 && g.duplicates > 0 && g.bot_events > 0,
        "{g:?}"
    );

    // Every session the generator made closes and is counted once.
    let text = eventually(
        "all sessions closed and written",
        Duration::from_secs(120),
        || async {
            let (_, text) = get(&metrics_addr, "/metrics")
                .await
                .map_err(|e| e.to_string())?;
            let closed = metric_sum(&text, "shoplens_sessions_total", "");
            if closed as u64 == g.sessions {
                Ok(text)
            } else {
                Err(format!("{closed} of {} sessions", g.sessions))
            }
        },
    )
    .await;
    let m = |name: &str, label: &str| metric_sum(&text, name, label) as u64;
    assert_eq!(
        m("shoplens_events_consumed_total", ""),
        g.messages + report.flush_messages
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

    // Every invalid message is in the dead-letter topic with its reason and source.
    let dead = read_dead_letters(
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

    let (ready, _) = get(&metrics_addr, "/readyz").await.expect("readyz");
    assert_eq!(ready, 200);
    pipeline.stop().await.expect("clean stop");
}
