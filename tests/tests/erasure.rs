//! Erasure end to end, on the real broker and ClickHouse: `forget` makes a
//! durable request; the next run deletes the person's rows and writes the
//! audit; aggregates stay as they were; the person's later events, and a
//! replay of the raw topics by another group, do not bring them back.

use std::time::Duration;

use e2e::{bounded_run, rows, settings, unique};
use shoplens::erasure::{forget, id_hash, Subject};
use shoplens::generate::{produce, GenConfig, Generator, ProduceOptions};
use shoplens::replay::replay;
use shoplens::{Pipeline, Settings};

const SALT: &str = "e2e-pepper";

/// Rows naming `id` in any id column of the per-person tables.
async fn rows_of(database: &str, id: &str) -> [u64; 4] {
    let mut n = [0; 4];
    let queries = [
        format!(
            "SELECT count() FROM sessions FINAL WHERE anonymous_id = '{id}' OR user_id = '{id}'"
        ),
        format!("SELECT count() FROM carts FINAL WHERE anonymous_id = '{id}' OR user_id = '{id}'"),
        format!("SELECT count() FROM customers FINAL WHERE customer_id = '{id}'"),
        format!(
            "SELECT count() FROM orders FINAL WHERE customer_id = '{id}' OR anonymous_id = '{id}'"
        ),
    ];
    for (i, q) in queries.iter().enumerate() {
        n[i] = rows(database, q).await.trim().parse().expect("a count");
    }
    n
}

/// The window aggregates analysts read, each in a fixed order.
const AGGREGATES: [&str; 5] = [
    "SELECT * FROM traffic_1m_final ORDER BY window_start, channel",
    "SELECT * FROM funnel_1m_final ORDER BY window_start, channel, experiment_id, variant, stage_index",
    "SELECT * FROM pages_1m_final ORDER BY window_start, path",
    "SELECT * FROM revenue_1m_final ORDER BY window_start, currency, channel",
    "SELECT * FROM customers_1d_final ORDER BY day, channel",
];

async fn aggregates(database: &str) -> Vec<String> {
    let mut out = Vec::new();
    for q in AGGREGATES {
        out.push(rows(database, q).await);
    }
    out
}

/// A visit with a cart and a paid order of 42.00 USD, as JSON lines.
fn shopper(visitor: &str, user: Option<&str>, t_ms: i64, tag: &str) -> String {
    let user = user.map_or(String::new(), |u| format!(r#""user_id":"{u}","#));
    let ev = |id: &str, ty: &str, dt: i64, extra: &str| {
        format!(
            r#"{{"event_id":"{visitor}-{tag}-{id}","type":"{ty}","anonymous_id":"{visitor}",{user}"timestamp":{},"context":{{"page":{{"url":"https://shop.example/{id}"}}}}{extra}}}"#,
            t_ms + dt
        )
    };
    let product = r#"{"product_id":"p1","price":"42.00","quantity":1}"#;
    let cart = format!(r#","properties":{{"cart_id":"{visitor}-{tag}-cart","product":{product}}}"#);
    let order = format!(
        r#","properties":{{"order_id":"{visitor}-{tag}-o","cart_id":"{visitor}-{tag}-cart","total":"42.00","products":[{product}]}}"#
    );
    let paid = format!(r#","properties":{{"order_id":"{visitor}-{tag}-o"}}"#);
    [
        ev("home", "page_view", 0, ""),
        ev("atc", "add_to_cart", 30_000, &cart),
        ev("order", "order_placed", 90_000, &order),
        ev("paid", "order_paid", 95_000, &paid),
    ]
    .join("\n")
}

async fn feed(s: &Settings, lines: &str) {
    let no_flush = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    replay(&s.kafka, lines.as_bytes(), &no_flush)
        .await
        .expect("produce");
}

/// A bounded run of `s`; returns the events it dropped as forgotten.
async fn until_end(s: &Settings) -> u64 {
    bounded_run(s).await.events_forgotten.get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_person_leaves_no_rows_and_does_not_come_back() {
    let id = unique("erasure");
    let mut s = settings(&id);
    s.erasure.salt = SALT.into();
    ingest::admin::create_topics(&s.kafka, 3, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    let db = s.clickhouse.database.clone();
    let t0 = 1_700_000_000_000;
    let generator = Generator::new(GenConfig {
        seed: 5,
        start_ms: t0,
        duration_ms: 10 * 60_000,
        sessions_per_minute: 10.0,
        ..GenConfig::default()
    });
    let no_flush = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    produce(&s.kafka, generator, t0, &no_flush)
        .await
        .expect("produce");
    // A signed-in customer, forgotten by user id; a guest, by visitor id;
    // a customer who stays.
    // After the generator's traffic in event time: earlier would be late.
    let people = [
        shopper("dev-1", Some("alice"), t0 + 15 * 60_000, "a"),
        shopper("guest-7", None, t0 + 16 * 60_000, "a"),
        shopper("dev-2", Some("bob"), t0 + 17 * 60_000, "a"),
    ];
    feed(&s, &people.join("\n")).await;

    assert_eq!(until_end(&s).await, 0);
    for who in ["alice", "guest-7", "bob"] {
        let n = rows_of(&db, who).await;
        assert!(
            n.iter().all(|&c| c >= 1),
            "{who} has rows in every table: {n:?}"
        );
    }
    let before = aggregates(&db).await;

    // Requests while no pipeline runs: the next start applies them.
    let no_wait = Duration::ZERO;
    let alice = forget(&s, &Subject::UserId("alice".into()), no_wait)
        .await
        .expect("recorded");
    let guest = forget(&s, &Subject::AnonymousId("guest-7".into()), no_wait)
        .await
        .expect("recorded");
    assert!(
        !alice.applied && !guest.applied,
        "nothing ran to apply them"
    );
    until_end(&s).await;

    assert_eq!(rows_of(&db, "alice").await, [0; 4], "alice's rows are gone");
    assert_eq!(
        rows_of(&db, "dev-1").await,
        [0; 4],
        "her device's rows carried her user id"
    );
    assert_eq!(
        rows_of(&db, "guest-7").await,
        [0; 4],
        "the guest's rows are gone"
    );
    assert!(
        rows_of(&db, "bob").await.iter().all(|&c| c >= 1),
        "bob stays"
    );
    assert_eq!(
        aggregates(&db).await,
        before,
        "window aggregates are unchanged"
    );

    let audit = rows(
        &db,
        "SELECT id_kind, id_hash, sessions, carts, customers, orders \
         FROM erasure_audit ORDER BY id_kind",
    )
    .await;
    let want = format!(
        "anonymous_id\t{}\t1\t1\t1\t1\nuser_id\t{}\t1\t1\t1\t1\n",
        id_hash(SALT, "guest-7"),
        id_hash(SALT, "alice")
    );
    assert_eq!(
        audit, want,
        "one audit row per request, with what was deleted"
    );
    let stored = rows(&db, "SELECT * FROM erasure_requests FORMAT TSV").await
        + &rows(&db, "SELECT * FROM erasure_audit FORMAT TSV").await;
    assert!(
        !stored.contains("alice") && !stored.contains("guest-7"),
        "only hashes: {stored}"
    );

    // The guest comes back and buys again, after the end of the runs so
    // far (earlier would be late); a new customer too.
    let later = [
        shopper("guest-7", None, t0 + 40 * 60_000, "b"),
        shopper("carol-dev", Some("carol"), t0 + 41 * 60_000, "b"),
    ];
    feed(&s, &later.join("\n")).await;
    // At least the four new ones: the run restores its stores from the
    // last checkpoint before the previous close, and re-applies (dropping
    // again) whatever of the guest came after it.
    let dropped = until_end(&s).await;
    assert!(
        dropped >= 4,
        "the guest's four new events are dropped unread: {dropped}"
    );
    assert_eq!(rows_of(&db, "guest-7").await, [0; 4]);
    let carol = rows_of(&db, "carol").await;
    assert!(
        carol.iter().all(|&c| c >= 1),
        "carol's visit is written: {carol:?}"
    );

    // A replay of the raw topics from the start, by another group into the
    // same database (where the requests live), brings nobody back.
    let mut replayed = s.clone();
    replayed.kafka.group_id = format!("{}-replay", s.kafka.group_id);
    replayed.kafka.topics.customer_facts = format!("{}-replay", s.kafka.topics.customer_facts);
    replayed.kafka.topics.triggers = format!("{}-replay", s.kafka.topics.triggers);
    replayed.kafka.topics.dead_letter = format!("{}-replay", s.kafka.topics.dead_letter);
    ingest::admin::create_topics(&replayed.kafka, 3, 1)
        .await
        .expect("topics");
    let dropped = until_end(&replayed).await;
    assert_eq!(dropped, 12, "alice's four events and the guest's eight");
    for who in ["alice", "dev-1", "guest-7"] {
        assert_eq!(
            rows_of(&db, who).await,
            [0; 4],
            "{who} stays forgotten after a replay"
        );
    }
    let audits = rows(&db, "SELECT count() FROM erasure_audit").await;
    assert_eq!(audits.trim(), "2", "the replay found both requests applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_pipeline_drops_open_state_and_rows_of_a_request_made_meanwhile() {
    let id = unique("erasure_live");
    let mut s = settings(&id);
    s.erasure.salt = SALT.into();
    s.erasure.poll_interval_ms = 200;
    ingest::admin::create_topics(&s.kafka, 3, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    let db = s.clickhouse.database.clone();
    let t0 = 1_700_000_000_000;
    let people = [
        shopper("dev-9", Some("dana"), t0, "a"),
        shopper("dev-8", Some("eve"), t0 + 10_000, "a"),
    ];
    feed(&s, &people.join("\n")).await;

    let pipeline = Pipeline::start(s.clone()).await.expect("starts");
    let metrics = pipeline.metrics().clone();
    let consumed = || {
        metrics
            .events_consumed
            .with_label_values(&["clickstream"])
            .get()
            + metrics.events_consumed.with_label_values(&["orders"]).get()
    };
    e2e::eventually("both visits read", Duration::from_secs(60), || async {
        (consumed() >= 8)
            .then_some(())
            .ok_or(format!("{} of 8 read", consumed()))
    })
    .await;
    // Their sessions are open: no later event moved time 30 minutes on.
    let report = forget(&s, &Subject::UserId("dana".into()), Duration::from_secs(60))
        .await
        .expect("recorded");
    assert!(
        report.applied,
        "the running pipeline applied it within a minute"
    );
    pipeline.stop().await.expect("stops cleanly");

    let open_state = rows(&db, "SELECT sum(open_state) FROM erasure_audit").await;
    assert!(
        open_state.trim().parse::<u64>().expect("a sum") >= 1,
        "dana's open session was dropped: {open_state}"
    );
    // Closing everything writes eve's rows and none of dana's.
    until_end(&s).await;
    assert_eq!(rows_of(&db, "dana").await, [0; 4]);
    assert_eq!(rows_of(&db, "dev-9").await, [0; 4]);
    let eve = rows_of(&db, "eve").await;
    assert!(
        eve.iter().all(|&c| c >= 1),
        "eve's rows are written: {eve:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_user_that_may_not_delete_leaves_the_request_to_an_administrator() {
    let id = unique("erasure_user");
    let mut admin = settings(&id);
    admin.erasure.salt = SALT.into();
    ingest::admin::create_topics(&admin.kafka, 3, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    exporter::clickhouse::migrate(&admin.clickhouse)
        .await
        .expect("migrate as administrator");
    let db = admin.clickhouse.database.clone();
    let t0 = 1_700_000_000_000;
    let people = [
        shopper("dev-5", Some("frank"), t0, "a"),
        shopper("dev-6", Some("gina"), t0 + 10_000, "a"),
    ];
    feed(&admin, &people.join("\n")).await;
    // The pipeline as the XML-configured writer of 18.16 (allow_ddl = 0:
    // a mutation is DDL to it).
    let mut writer = admin.clone();
    writer.clickhouse.user = "shoplens_writer".into();
    writer.clickhouse.password = "writer".into();
    writer.clickhouse.migrate_on_start = false;
    bounded_run(&writer).await;
    assert!(rows_of(&db, "frank").await.iter().all(|&c| c >= 1));

    forget(&admin, &Subject::UserId("frank".into()), Duration::ZERO)
        .await
        .expect("recorded");
    let m = bounded_run(&writer).await;
    assert_eq!(
        m.erasures_failed.get(),
        1,
        "ClickHouse refused the writer the deletion"
    );
    assert_eq!(m.erasures_applied.get(), 0);
    assert_eq!(
        rows(&db, "SELECT count() FROM erasure_audit").await.trim(),
        "0"
    );

    let who = shoplens::erasure::Who {
        apply_pending: true,
        ..Default::default()
    };
    let lines = shoplens::erasure::command(&admin, who, Duration::ZERO, false)
        .await
        .expect("the administrator applies it");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(rows_of(&db, "frank").await, [0; 4], "{lines:?}");
    assert!(
        rows_of(&db, "gina").await.iter().all(|&c| c >= 1),
        "gina stays"
    );
    let audit = rows(&db, "SELECT instance FROM erasure_audit").await;
    assert_eq!(audit.trim(), "shoplens forget --apply-pending");
    // Applied now: the writer's next run has nothing to delete.
    let m = bounded_run(&writer).await;
    assert_eq!((m.erasures_failed.get(), m.erasures_applied.get()), (0, 0));
    assert_eq!(rows_of(&db, "frank").await, [0; 4]);
}
