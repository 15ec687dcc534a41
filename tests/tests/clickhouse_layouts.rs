//! The ClickHouse layouts and users: the pipeline writing through the insert
//! -only user into a two-shard cluster (replicated local tables behind
//! Distributed ones, migrations `ON CLUSTER`), read back on both servers, and
//! what the writer and analyst users may and may not do.
//!
//! The cluster is the local stack's `shoplens_cluster`: the main server and a
//! second one (HTTP port + 1) sharing a ZooKeeper (deploy/local/stack.sh).

use std::time::Duration;

use e2e::{clickhouse, settings, unique};
use exporter::clickhouse::{migrate, ClickHouseSettings};
use shoplens::generate::{produce, GenConfig, Generator, ProduceOptions};
use shoplens::Pipeline;

/// The second server of the local cluster.
fn second_server() -> String {
    let main = clickhouse();
    let (host, port) = main.rsplit_once(':').expect("url with a port");
    let port: u16 = port.trim_end_matches('/').parse().expect("port");
    format!("{host}:{}", port + 1)
}

fn as_user(base: &ClickHouseSettings, user: &str, password: &str) -> ClickHouseSettings {
    ClickHouseSettings {
        user: user.into(),
        password: password.into(),
        ..base.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_only_pipeline_on_a_two_shard_cluster_gives_the_generators_figures_on_every_node() {
    let id = unique("cluster");
    let mut settings = settings(&id);
    settings.clickhouse.cluster = "shoplens_cluster".into();
    ingest::admin::create_topics(&settings.kafka, 3, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    // The administrator migrates; the pipeline only inserts.
    let applied = migrate(&settings.clickhouse)
        .await
        .expect("migrate on cluster");
    assert_eq!(
        applied,
        (1..=exporter::clickhouse::latest_version()).collect::<Vec<_>>()
    );
    settings.clickhouse = as_user(&settings.clickhouse, "shoplens_writer", "writer");
    settings.clickhouse.migrate_on_start = false;
    let pipeline = Pipeline::start(settings.clone())
        .await
        .expect("pipeline starts as the writer");
    let metrics_addr = pipeline.metrics_addr().to_string();

    let start_ms = 1_700_000_000_000;
    let generator = Generator::new(GenConfig {
        seed: 11,
        start_ms,
        duration_ms: 10 * 60_000,
        sessions_per_minute: 30.0,
        ..GenConfig::default()
    });
    let options = ProduceOptions {
        speed: None,
        flush_after_ms: Some(shoplens::generate::flush_horizon_ms(&settings)),
    };
    let g = produce(&settings.kafka, generator, start_ms, &options)
        .await
        .expect("produce")
        .generated;
    assert!(g.sessions > 200 && g.orders > 10, "{g:?}");

    e2e::settled(&metrics_addr, &g, Duration::from_secs(60)).await;
    pipeline.stop().await.expect("clean stop");

    // Both servers answer the same through the Distributed tables and the
    // views, equal to what the generator made.
    let mut local_sessions = Vec::new();
    for url in [clickhouse(), second_server()] {
        let node = ClickHouseSettings {
            url: url.clone(),
            ..as_user(&settings.clickhouse, "shoplens_analyst", "analyst")
        };
        let ch = node.client().with_database(&id);
        let (sessions, page_views, bounces): (u64, u64, u64) = ch
            .query("SELECT count(), sum(page_views), sum(bounced) FROM sessions FINAL")
            .fetch_one()
            .await
            .expect("sessions");
        assert_eq!(
            (sessions, page_views, bounces),
            (g.sessions, g.page_views, g.bounces),
            "{url}"
        );
        let (w_sessions, w_page_views): (u64, u64) = ch
            .query("SELECT sum(sessions), sum(page_views) FROM traffic_1d_final")
            .fetch_one()
            .await
            .expect("daily traffic");
        assert_eq!(
            (w_sessions, w_page_views),
            (g.sessions, g.page_views),
            "{url}"
        );
        let (orders, paid, gross): (u64, u64, i64) = ch
            .query("SELECT sum(orders), sum(paid), sum(gross_minor) FROM revenue_1h_final")
            .fetch_one()
            .await
            .expect("hourly revenue");
        assert_eq!(
            (orders, paid, gross),
            (g.orders, g.paid, g.revenue_minor),
            "{url}"
        );
        let carts: u64 = ch
            .query("SELECT count() FROM carts FINAL")
            .fetch_one()
            .await
            .expect("carts");
        assert_eq!(carts, g.carts, "{url}");
        let (customers, net): (u64, i64) = ch
            .query("SELECT count(), sum(net_minor) FROM customers FINAL")
            .fetch_one()
            .await
            .expect("customers");
        assert_eq!((customers, net), (g.customers, g.revenue_minor), "{url}");
        let local: u64 = ch
            .query("SELECT count() FROM sessions_local FINAL")
            .fetch_one()
            .await
            .expect("local sessions");
        local_sessions.push(local);
    }
    // The rows are spread over both shards, each stored once.
    assert!(local_sessions.iter().all(|&n| n > 0), "{local_sessions:?}");
    assert_eq!(local_sessions.iter().sum::<u64>(), g.sessions);
}

#[tokio::test]
async fn the_writer_cannot_change_the_schema_and_the_analyst_cannot_write() {
    let id = unique("users");
    let admin = settings(&id).clickhouse;
    migrate(&admin).await.expect("migrate");
    let writer = as_user(&admin, "shoplens_writer", "writer")
        .client()
        .with_database(&id);
    let analyst = as_user(&admin, "shoplens_analyst", "analyst")
        .client()
        .with_database(&id);
    let insert =
        "INSERT INTO ad_spend_daily (day, channel, campaign, event_id, amount_minor, currency) \
                  VALUES ('2026-11-01', 'Paid Search', 'c', 'e1', 100, 'USD')";

    writer
        .query(insert)
        .execute()
        .await
        .expect("the writer inserts");
    let ddl = writer
        .query("CREATE TABLE x (a UInt8) ENGINE = Memory")
        .execute()
        .await
        .expect_err("the writer runs no DDL");
    assert!(ddl.to_string().contains("DDL"), "{ddl}");

    let spend: i64 = analyst
        .query("SELECT sum(amount_minor) FROM ad_spend_daily FINAL")
        .fetch_one()
        .await
        .expect("the analyst reads");
    assert_eq!(spend, 100);
    let write = analyst
        .query(insert)
        .execute()
        .await
        .expect_err("the analyst writes nothing");
    assert!(write.to_string().contains("readonly"), "{write}");

    // A pipeline that does not migrate refuses a database without the schema.
    let mut s = settings(&unique("unmigrated"));
    s.clickhouse = as_user(&s.clickhouse, "shoplens_writer", "writer");
    s.clickhouse.migrate_on_start = false;
    assert!(Pipeline::start(s).await.is_err());
}
