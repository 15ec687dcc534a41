//! Helpers for end-to-end tests: isolated names per test, service addresses,
//! a Prometheus server of the test's own, and waiting on conditions.
//!
//! The services come from `deploy/local/stack.sh up` (the test command starts
//! them). Addresses can be changed with `SHOPLENS_TEST_KAFKA` and
//! `SHOPLENS_TEST_CLICKHOUSE`.

#![warn(missing_docs)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::BTreeMap;

use shoplens::Settings;

pub mod process;

pub use process::Prometheus;

/// Kafka bootstrap address for tests.
pub fn kafka() -> String {
    std::env::var("SHOPLENS_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// ClickHouse HTTP URL for tests.
pub fn clickhouse() -> String {
    std::env::var("SHOPLENS_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A suffix unique to this test run, for topics, groups and databases.
pub fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{name}_{}_{nanos}", std::process::id())
}

/// Settings pointing at the test services with names of their own, fast
/// ticks and a short idle timeout, and an ephemeral metrics port.
pub fn settings(id: &str) -> Settings {
    // Logs of the in-process pipeline, captured per test and shown when it
    // fails: `info` unless RUST_LOG says otherwise.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,librdkafka=warn,rdkafka=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
    let mut s = Settings::default();
    s.kafka.brokers = kafka();
    s.kafka.group_id = format!("g-{id}");
    let t = &mut s.kafka.topics;
    t.clickstream = format!("{id}.clickstream");
    t.orders = format!("{id}.orders");
    t.spend = format!("{id}.spend");
    t.dead_letter = format!("{id}.dead-letter");
    t.triggers = format!("{id}.triggers");
    t.customer_facts = format!("{id}.customer-facts");
    s.clickhouse.url = clickhouse();
    s.clickhouse.database = id.to_string();
    s.http.listen = "127.0.0.1:0".into();
    s.watermark.idle_timeout_ms = 5_000;
    s.pipeline.tick_ms = 50;
    s
}

/// When the tests' generated traffic starts: 2023-11-14T22:13:20Z.
pub const TRAFFIC_START_MS: i64 = 1_700_000_000_000;

/// Produces `minutes` of generated traffic from [`TRAFFIC_START_MS`]
/// (`seed`, `per_minute` sessions a minute) to the topics of `kafka` as
/// fast as the broker takes it, with nothing after it to close the last
/// sessions: a backlog. Returns what the generator made.
pub async fn produce_backlog(
    kafka: &ingest::KafkaSettings,
    seed: u64,
    minutes: i64,
    per_minute: f64,
) -> shoplens::generate::GenStats {
    use shoplens::generate::{produce, GenConfig, Generator, ProduceOptions};
    let generator = Generator::new(GenConfig {
        seed,
        start_ms: TRAFFIC_START_MS,
        duration_ms: minutes * 60_000,
        sessions_per_minute: per_minute,
        ..GenConfig::default()
    });
    let no_flush = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    let report = produce(kafka, generator, TRAFFIC_START_MS, &no_flush)
        .await
        .expect("produce");
    report.generated
}

/// The rows of `sql` in `database`, as ClickHouse's tab-separated text.
pub async fn rows(database: &str, sql: &str) -> String {
    use shoplens::http_get::{get, prometheus_query_path};
    let addr = clickhouse().trim_start_matches("http://").to_string();
    let encoded = prometheus_query_path(sql).replace("/api/v1/query?query=", "");
    let (status, body) = get(&addr, &format!("/?database={database}&query={encoded}"))
        .await
        .expect("clickhouse answers");
    assert_eq!(status, 200, "{sql}: {body}");
    body
}

/// A bounded run (`run --until-end`) of `s`, which must end by itself
/// within 4 minutes and succeed; returns its metrics.
pub async fn bounded_run(s: &Settings) -> std::sync::Arc<exporter::Metrics> {
    let pipeline = shoplens::Pipeline::start_until_end(s.clone())
        .await
        .expect("starts");
    let metrics = pipeline.metrics().clone();
    let run = pipeline.run_until(std::future::pending());
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the bounded run ends by itself")
        .expect("and succeeds");
    metrics
}

/// The pipeline's own ClickHouse writer for `s`, its database freshly
/// migrated: for tests that write rows of their own and read the views.
pub async fn migrated_sink(s: &Settings) -> exporter::ClickHouseSink {
    let sink = exporter::ClickHouseSink::new(
        s.clickhouse.clone(),
        std::sync::Arc::new(exporter::Metrics::new()),
        std::sync::Arc::new(exporter::Health::default()),
    );
    sink.migrate().await.expect("migrate (is the stack up?)");
    sink
}

/// A path in the repository (the tests crate lives at `<repo>/tests`).
pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// Every query of every provisioned Grafana dashboard: `(dashboard, panel,
/// datasource uid, query)`.
pub fn dashboard_queries() -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let dir = repo_path("deploy/grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards dir")
        .flatten()
        .collect();
    files.sort_by_key(|f| f.path());
    for file in files {
        let text = std::fs::read_to_string(file.path()).expect("dashboard");
        let d: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
        let title = d["title"].as_str().unwrap_or_default().to_string();
        for panel in d["panels"].as_array().expect("panels") {
            let uid = panel["datasource"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            for t in panel["targets"].as_array().expect("targets") {
                let q = t["expr"]
                    .as_str()
                    .or(t["rawSql"].as_str())
                    .expect("a query");
                out.push((
                    title.clone(),
                    panel["title"].as_str().unwrap_or_default().to_string(),
                    uid.clone(),
                    q.to_string(),
                ));
            }
        }
    }
    out
}

/// Every ```` ```sql ```` block of `docs/analyst-guide.md`: `(the line
/// before it, the query)`.
pub fn analyst_guide_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_path("docs/analyst-guide.md")).expect("guide");
    let mut out = Vec::new();
    let (mut block, mut before, mut last) = (None::<String>, String::new(), String::new());
    for line in text.lines() {
        match (&mut block, line.trim()) {
            (None, "```sql") => (block, before) = (Some(String::new()), last.clone()),
            (Some(_), "```") => out.push((before.clone(), block.take().unwrap_or_default())),
            (Some(b), _) => b.push_str(&format!("{line}\n")),
            (None, l) if !l.is_empty() => last = l.to_string(),
            _ => {}
        }
    }
    out
}

/// The `shoplens_*` and `shoplens:*` names a PromQL expression uses.
pub fn promql_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("shoplens") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Polls `check` every 100 ms until it returns `Ok`, or panics after `limit`
/// with `what` and the last value seen.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    match within(limit, check).await {
        Ok(v) => v,
        Err(last) => panic!("{what}: not reached in {limit:?}; last: {last}"),
    }
}

/// Polls `check` every 100 ms until it returns `Ok`; after `limit`, the
/// last `Err` it returned.
pub async fn within<T, F, Fut>(limit: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        match check().await {
            Ok(v) => return Ok(v),
            Err(last) if started.elapsed() > limit => return Err(last),
            Err(_) => {}
        }
    }
}

/// Reads messages of `topic` (its `partitions`, from the start) until `want`
/// have arrived or a minute has passed; returns the headers of each.
pub fn read_dead_letters(
    partitions: i32,
    brokers: &str,
    topic: &str,
    want: usize,
) -> Vec<BTreeMap<String, String>> {
    let limit = Duration::from_secs(60);
    ingest::admin::read_headers(brokers, topic, partitions, want, limit).expect("read the topic")
}

/// Waits (up to `limit`) until the pipeline serving `/metrics` on
/// `metrics_addr` has settled what the generator made (`g`): every session
/// closed and counted once, every cart with items converted or abandoned,
/// every unpaid order overdue, and every order through the customer facts.
/// The counters move only once rows are durable. Returns the last scrape.
pub async fn settled(
    metrics_addr: &str,
    g: &shoplens::generate::GenStats,
    limit: Duration,
) -> String {
    use shoplens::http_get::{get, metric_sum};
    let want = (g.sessions, g.carts, g.orders - g.paid, g.orders);
    eventually(
        "the generated traffic settled and written",
        limit,
        || async {
            let (_, text) = get(metrics_addr, "/metrics")
                .await
                .map_err(|e| e.to_string())?;
            let n = |name: &str, label: &str| metric_sum(&text, name, label) as u64;
            let got = (
                n("shoplens_sessions_total", ""),
                n("shoplens_carts_total", "status=\"converted\"")
                    + n("shoplens_triggers_total", "kind=\"abandoned_cart\""),
                n("shoplens_triggers_total", "kind=\"overdue_order\""),
                n("shoplens_new_customers_total", "") + n("shoplens_repeat_orders_total", ""),
            );
            if got == want {
                return Ok(text);
            }
            let state: Vec<String> = [
                "shoplens_watermark_timestamp_seconds",
                "shoplens_partitions_paused",
                "shoplens_buffered_events",
                "shoplens_carts_open",
                "shoplens_sessions_open",
            ]
            .iter()
            .map(|name| format!("{name}={}", metric_sum(&text, name, "")))
            .collect();
            Err(format!(
                "(sessions, carts, overdue, customer orders) = {got:?}, want {want:?}; {}",
                state.join(" ")
            ))
        },
    )
    .await
}
