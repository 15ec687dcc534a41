//! An oracle written in SQL, independent of the aggregator: the generated
//! events go raw into ClickHouse, and GROUP BY / array sessionization /
//! windowFunnel compute what the pipeline's tables must hold. They must agree
//! exactly.

use std::time::Duration;

use clickhouse::Row;
use contract::Decoder;
use e2e::{settings, unique};
use serde::{Deserialize, Serialize};
use shoplens::generate::{produce, GenConfig, Generator, ProduceOptions};
use shoplens::Pipeline;

#[derive(Row, Serialize)]
struct Raw<'a> {
    event_id: &'a str,
    kind: &'a str,
    ts: i64,
    anonymous_id: &'a str,
    bot: u8,
    total_minor: i64,
}

fn config() -> GenConfig {
    GenConfig {
        seed: 11,
        start_ms: 1_650_000_000_000,
        duration_ms: 30 * 60_000,
        sessions_per_minute: 30.0,
        ..GenConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_over_raw_events_agrees_with_the_pipeline() {
    let id = unique("oracle");
    let settings = settings(&id);
    ingest::admin::create_topics(&settings.kafka, 2, 1)
        .await
        .expect("topics");
    let pipeline = Pipeline::start(settings.clone())
        .await
        .expect("pipeline starts");
    let metrics_addr = pipeline.metrics_addr().to_string();
    let opts = ProduceOptions {
        speed: None,
        flush_after_ms: Some(shoplens::generate::flush_horizon_ms(&settings)),
    };
    let report = produce(
        &settings.kafka,
        Generator::new(config()),
        config().start_ms,
        &opts,
    )
    .await
    .expect("produce");
    let g = report.generated;

    // The same traffic again (the generator is deterministic), raw into ClickHouse.
    let ch = settings.clickhouse.client().with_database(&id);
    ch.query(
        "CREATE TABLE raw_events (event_id String, kind String, ts Int64, anonymous_id String, bot UInt8, total_minor Int64) \
         ENGINE = MergeTree ORDER BY (anonymous_id, ts)",
    )
    .execute()
    .await
    .expect("raw table");
    let decoder = Decoder::default();
    let events: Vec<contract::Event> = Generator::new(config())
        .filter_map(|m| decoder.decode(&m.payload, m.stream, None).ok())
        .collect();
    let mut insert = ch.insert::<Raw<'_>>("raw_events").await.expect("insert");
    for e in &events {
        let total_minor = match &e.kind {
            contract::EventKind::OrderPlaced { total, .. } => total.minor,
            _ => 0,
        };
        insert
            .write(&Raw {
                event_id: &e.event_id,
                kind: e.kind.type_name(),
                ts: e.timestamp_ms,
                anonymous_id: &e.anonymous_id,
                bot: u8::from(e.device == contract::Device::Bot),
                total_minor,
            })
            .await
            .expect("write");
    }
    insert.end().await.expect("end");

    e2e::settled(&metrics_addr, &g, Duration::from_secs(120)).await;

    // Deduplicated human events, then sessions by the 30-minute gap, with
    // arrays rather than the aggregator's state machine.
    const EVENTS: &str = "(SELECT event_id, any(kind) AS kind, any(ts) AS ts, any(anonymous_id) AS anonymous_id, any(total_minor) AS total_minor \
         FROM raw_events WHERE bot = 0 GROUP BY event_id)";
    let sessions_sql = format!(
        "SELECT anonymous_id, tupleElement(e, 1) AS ts, tupleElement(e, 2) AS kind, s AS session \
         FROM (SELECT anonymous_id, arraySort(x -> x.1, groupArray((ts, kind))) AS evs, \
                      arrayCumSum(arrayMap(d -> if(d > 1800000, 1, 0), arrayDifference(arrayMap(x -> x.1, evs)))) AS idx \
               FROM {EVENTS} GROUP BY anonymous_id) \
         ARRAY JOIN evs AS e, idx AS s"
    );

    let (oracle_sessions, oracle_page_views, oracle_orders, oracle_revenue): (u64, u64, u64, i64) = ch
        .query(&format!(
            "SELECT uniqExact(anonymous_id, session), countIf(kind = 'page_view'), countIf(kind = 'order_placed'), \
                    (SELECT sum(total_minor) FROM {EVENTS} WHERE kind = 'order_placed') FROM ({sessions_sql})"
        ))
        .fetch_one()
        .await
        .expect("oracle sessions");
    let (sessions, page_views): (u64, u64) = ch
        .query("SELECT sum(sessions), sum(page_views) FROM traffic_1m_final")
        .fetch_one()
        .await
        .expect("pipeline sessions");
    let (orders, gross): (u64, i64) = ch
        .query("SELECT sum(orders), sum(gross_minor) FROM revenue_1m_final")
        .fetch_one()
        .await
        .expect("pipeline revenue");
    assert_eq!(
        oracle_sessions, g.sessions,
        "the oracle sees the generated sessions"
    );
    assert_eq!((sessions, page_views), (oracle_sessions, oracle_page_views));
    assert_eq!((orders, gross), (oracle_orders, oracle_revenue));

    // The sequential funnel by windowFunnel over each SQL session.
    #[derive(Row, Deserialize, Debug, PartialEq)]
    struct Level {
        level: u8,
        sessions: u64,
    }
    let oracle: Vec<u64> = {
        let levels: Vec<Level> = ch
            .query(&format!(
                "SELECT level, count() AS sessions FROM ( \
                   SELECT anonymous_id, session, \
                          windowFunnel(86400)(toDateTime(intDiv(ts, 1000)), kind = 'product_view', kind = 'add_to_cart', \
                                              kind = 'checkout_started', kind = 'order_placed') AS level \
                   FROM ({sessions_sql}) GROUP BY anonymous_id, session) \
                 GROUP BY level ORDER BY level"
            ))
            .fetch_all()
            .await
            .expect("oracle funnel");
        // Sessions reaching at least each level.
        (0..=4u8)
            .map(|k| {
                levels
                    .iter()
                    .filter(|l| l.level >= k)
                    .map(|l| l.sessions)
                    .sum()
            })
            .collect()
    };
    let pipeline_funnel: Vec<u64> = ch
        .query(
            "SELECT sum(sequential) FROM funnel_1m_final GROUP BY stage_index ORDER BY stage_index",
        )
        .fetch_all()
        .await
        .expect("pipeline funnel");
    assert!(
        oracle[4] > 0,
        "some sessions complete the funnel: {oracle:?}"
    );
    assert_eq!(
        pipeline_funnel, oracle,
        "session, product_view, add_to_cart, checkout_started, order_placed"
    );
    pipeline.stop().await.expect("stop");
}
