//! Fault tests: the pipeline runs as its own process (the `shoplens`
//! binary) and is disturbed mid-stream. Each test compares the final
//! ClickHouse tables, row by row, with those of an undisturbed run on the
//! same input: they must be equal.

use std::path::PathBuf;
use std::time::Duration;

use e2e::process::{free_port, spawn, OwnBroker, OwnClickHouse, Running};
use e2e::{eventually, settings, unique, within};
use shoplens::generate::{produce, GenConfig, GenStats, Generator, ProduceOptions};
use shoplens::http_get::{get, metric_sum};
use shoplens::{Pipeline, Settings};

/// Every table an analyst reads, in a canonical order: what "the same
/// results" means.
const TABLES: &[(&str, &str)] = &[
    (
        "sessions",
        "SELECT * FROM sessions FINAL ORDER BY anonymous_id, start, session_id",
    ),
    (
        "session windows",
        "SELECT * FROM session_windows_1m_final ORDER BY window_start, channel, experiment_id, variant",
    ),
    (
        "pages",
        "SELECT * FROM pages_1m_final ORDER BY window_start, path",
    ),
    (
        "products",
        "SELECT * FROM products_1m FINAL ORDER BY window_start, product_id, currency, partition",
    ),
    (
        "orders",
        "SELECT * FROM orders_1m FINAL ORDER BY window_start, currency, channel, partition",
    ),
    (
        "feedback",
        "SELECT * FROM feedback_1m FINAL ORDER BY window_start, partition",
    ),
    ("carts", "SELECT * FROM carts FINAL ORDER BY cart_id, opened"),
    (
        "customers",
        "SELECT * FROM customers FINAL ORDER BY customer_id",
    ),
    (
        "customers daily",
        "SELECT * FROM customers_daily FINAL ORDER BY day, channel, partition",
    ),
    ("orders as facts", "SELECT * FROM orders FINAL ORDER BY order_id"),
];

/// The `shoplens` binary of this build (the test command builds it first).
/// Starts `shoplens run` after a `kill -9` and waits until it holds
/// partitions (it loaded a store); returns it with its metrics address.
///
/// tansu 0.6's group coordinator sometimes never assigns a member that
/// joins right after another was killed: it evicts the dead member only
/// when a later request reaches the group, and the newcomer's JoinGroup is
/// already waiting (seen in about one run in four under CI load, whatever
/// the rebalance timeout). A restart assigned nothing within 30 s is
/// stopped with SIGTERM, which leaves the group cleanly, and started again:
/// the new JoinGroup lets tansu evict the dead member. Apache Kafka expires
/// the dead member on its own. A clean stop and start changes no result,
/// so the test's claim is the same either way.
async fn restart_until_assigned(s: &Settings, log: &PathBuf) -> (Running, String) {
    for attempt in 1..=3 {
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut process = spawn(s, &metrics, log);
        let assigned = within(Duration::from_secs(30), || async {
            match counts(&metrics, &[LOADED]).await?[..] {
                [loaded] if loaded > 0 => Ok(()),
                _ => Err("no store loaded".to_string()),
            }
        })
        .await;
        if assigned.is_ok() {
            return (process, metrics);
        }
        eprintln!(
            "restart {attempt}: no partition assigned in 30 s; stopping it and starting again"
        );
        process.terminate().await;
    }
    panic!("no restart was assigned a partition in three attempts");
}

/// Settings of one run: names of its own, small batches and a short idle
/// timeout (the empty spend partitions stop holding the watermark at once),
/// so that a run closes sessions and writes them in many steps while it
/// reads. Partitions with unread messages are never idle, so no event turns
/// late because of it.
fn run_settings(name: &str) -> Settings {
    let mut s = settings(&unique(name));
    s.pipeline.max_batch_events = 2_000;
    s.watermark.idle_timeout_ms = 500;
    // Checkpoints every few steps, so a kill finds state saved mid-stream.
    s.pipeline.checkpoint_interval_ms = 300;
    // Writes of a step or two, so a kill lands between them: at the default
    // (100,000 rows or 1 s) this input's rows all went out in one write, and
    // at 10,000 in two or three, so that a kill half way found them all
    // written now and then.
    s.pipeline.write_min_rows = 1_000;
    s
}

const START_MS: i64 = 1_700_000_000_000;

/// The fault tests run one at a time: each runs pipelines and kills
/// processes or stops a broker or ClickHouse, and on two cores five of them
/// at once starve each other, which only adds timing noise to what they
/// check.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The generated traffic every run of this file reads.
fn generator() -> Generator {
    Generator::new(GenConfig {
        seed: 21,
        start_ms: START_MS,
        duration_ms: 60 * 60_000,
        sessions_per_minute: 60.0,
        ..GenConfig::default()
    })
}

/// Topics of `s`, loaded with the same generated traffic every time.
async fn load(s: &Settings) -> GenStats {
    ingest::admin::create_topics(&s.kafka, 3, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    let start_ms = START_MS;
    let generator = generator();
    let options = ProduceOptions {
        speed: None,
        flush_after_ms: Some(shoplens::generate::flush_horizon_ms(s)),
    };
    produce(&s.kafka, generator, start_ms, &options)
        .await
        .expect("produce")
        .generated
}

/// Every table of `database`, as TSV.
async fn dump(s: &Settings) -> Vec<(&'static str, String)> {
    let ch = s.clickhouse.client().with_database(&s.clickhouse.database);
    let mut out = Vec::new();
    for (name, sql) in TABLES {
        let bytes = ch
            .query(sql)
            .fetch_bytes("TSV")
            .expect("query")
            .collect()
            .await
            .expect("rows");
        out.push((*name, String::from_utf8_lossy(&bytes).into_owned()));
    }
    out
}

/// The first difference between two dumps, if any.
fn difference(want: &[(&str, String)], got: &[(&str, String)]) -> Option<String> {
    for ((name, a), (_, b)) in want.iter().zip(got) {
        if a != b {
            let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
            let first = la
                .iter()
                .zip(&lb)
                .position(|(x, y)| x != y)
                .unwrap_or(la.len().min(lb.len()));
            return Some(format!(
                "{name}: {} rows undisturbed, {} rows now; first difference at row {first}:\n  undisturbed: {}\n  now:         {}",
                la.len(),
                lb.len(),
                la.get(first).unwrap_or(&"(none)"),
                lb.get(first).unwrap_or(&"(none)")
            ));
        }
    }
    None
}

/// The sums of the `(name, label filter)` series on the pipeline serving
/// `metrics`, in order.
async fn counts(metrics: &str, series: &[(&str, &str)]) -> Result<Vec<u64>, String> {
    let (_, text) = get(metrics, "/metrics").await.map_err(|e| e.to_string())?;
    Ok(series
        .iter()
        .map(|(name, label)| metric_sum(&text, name, label) as u64)
        .collect())
}

/// Waits until the `series` sum to `want`.
async fn wait_for_counts(what: &str, metrics: &str, series: &[(&str, &str)], want: &[u64]) {
    eventually(
        &format!("{what} accounted for"),
        Duration::from_secs(60),
        || async {
            let got = counts(metrics, series).await?;
            if got == want {
                Ok(())
            } else {
                Err(format!("{series:?} = {got:?}, want {want:?}"))
            }
        },
    )
    .await;
}

/// Sessions written so far by the pipeline serving `metrics`.
async fn sessions_written(metrics: &str) -> Result<u64, String> {
    Ok(counts(metrics, &[SESSIONS]).await?[0])
}

/// Waits until the pipeline serving `metrics` has counted every session
/// and every order (through the customer facts) of `g` exactly once, and
/// nothing late.
async fn caught_up(metrics: &str, g: &GenStats) {
    eventually("caught up", Duration::from_secs(90), || async {
        let late = ("shoplens_events_invalid_total", "reason=\"late\"");
        let c = counts(metrics, &[SESSIONS, NEW_CUSTOMERS, REPEAT_ORDERS, late]).await?;
        let got = (c[0], c[1] + c[2], c[3]);
        if got == (g.sessions, g.orders, 0) {
            Ok(())
        } else {
            Err(format!(
                "(sessions, customer orders, late) = {got:?}, want {:?}",
                (g.sessions, g.orders, 0)
            ))
        }
    })
    .await;
}

/// Waits until the pipeline serving `metrics` has written its first
/// sessions; returns how many.
async fn some_sessions_written(metrics: &str) -> u64 {
    // 90 s, as the other waits here: on a loaded machine the broker-restart
    // test's own broker (SQLite) has twice needed more than 60 s.
    eventually("some sessions written", Duration::from_secs(90), || async {
        match sessions_written(metrics).await {
            Ok(n) if n > 0 => Ok(n),
            other => Err(format!("{other:?}; {}", progress(metrics).await)),
        }
    })
    .await
}

/// Where a pipeline stands, for a failure message: what it consumed, what
/// waits for it, and where its ingest task spends its time.
async fn progress(metrics: &str) -> String {
    let Ok((_, text)) = get(metrics, "/metrics").await else {
        return "no metrics".into();
    };
    let sum = |name: &str, labels: &str| metric_sum(&text, name, labels);
    let phases: Vec<String> = exporter::metrics::INGEST_PHASES
        .iter()
        .map(|p| {
            let seconds = sum("shoplens_ingest_seconds_total", &format!("phase=\"{p}\""));
            format!("{p} {seconds:.1} s")
        })
        .collect();
    format!(
        "consumed {}, dead-lettered {}, lag {}, paused {}, buffered {}, watermark {} s, ingest: {}",
        sum("shoplens_events_consumed_total", ""),
        sum("shoplens_events_invalid_total", ""),
        sum("shoplens_consumer_lag_messages", ""),
        sum("shoplens_partitions_paused", ""),
        sum("shoplens_buffered_events", ""),
        sum("shoplens_watermark_timestamp_seconds", ""),
        phases.join(", ")
    )
}

const SESSIONS: (&str, &str) = ("shoplens_sessions_total", "");
const CHECKPOINTS: (&str, &str) = ("shoplens_checkpoints_written_total", "");
const NEW_CUSTOMERS: (&str, &str) = ("shoplens_new_customers_total", "");
const REPEAT_ORDERS: (&str, &str) = ("shoplens_repeat_orders_total", "");
const INVALID: (&str, &str) = ("shoplens_events_invalid_total", "");
const DUPLICATES: (&str, &str) = ("shoplens_events_duplicate_total", "");
const RESTORED: (&str, &str) = ("shoplens_stores_loaded_total", "result=\"restored\"");
const LOADED: (&str, &str) = ("shoplens_stores_loaded_total", "");
const REFUSED: (&str, &str) = ("shoplens_stores_loaded_total", "result=\"refused\"");
const ASSIGNED: (&str, &str) = ("shoplens_partitions_assigned", "");

type Dump = Vec<(&'static str, String)>;

/// The undisturbed run, made once for all the tests of this file.
static UNDISTURBED: tokio::sync::OnceCell<(GenStats, Dump)> = tokio::sync::OnceCell::const_new();

async fn undisturbed() -> (GenStats, Dump) {
    UNDISTURBED.get_or_init(undisturbed_run).await.clone()
}

/// The tables an undisturbed in-process run leaves for the generated input.
async fn undisturbed_run() -> (GenStats, Dump) {
    let s = run_settings("calm");
    let g = load(&s).await;
    let pipeline = Pipeline::start(s.clone()).await.expect("pipeline starts");
    let metrics = pipeline.metrics_addr().to_string();
    eventually(
        "undisturbed run settles",
        Duration::from_secs(60),
        || async {
            // Sessions closed, and every order through the customer facts.
            let c = counts(&metrics, &[SESSIONS, NEW_CUSTOMERS, REPEAT_ORDERS]).await?;
            let got = (c[0], c[1] + c[2]);
            if got == (g.sessions, g.orders) {
                Ok(())
            } else {
                Err(format!("{got:?} of {:?}", (g.sessions, g.orders)))
            }
        },
    )
    .await;
    let settled = settled_dump(&s, None).await;
    pipeline.stop().await.expect("clean stop");
    (g, settled)
}

/// Polls the tables every second until two consecutive dumps agree
/// (nothing is being written any more) and, if given, equal `want`.
async fn settled_dump(
    s: &Settings,
    want: Option<&[(&'static str, String)]>,
) -> Vec<(&'static str, String)> {
    // Settled: the same dump ten polls in a row (at least a second) and, if
    // given, equal to `want`.
    let last: std::sync::Mutex<(Option<Dump>, u32)> = std::sync::Mutex::new((None, 0));
    eventually(
        "tables settle to the undisturbed ones",
        Duration::from_secs(90),
        || async {
            let now = dump(s).await;
            let wrong = want.and_then(|w| difference(w, &now));
            let mut last = last.lock().expect("not poisoned");
            let same = last
                .0
                .as_ref()
                .is_some_and(|p| difference(p, &now).is_none());
            last.1 = if same && wrong.is_none() {
                last.1 + 1
            } else {
                0
            };
            last.0 = Some(now.clone());
            match wrong {
                Some(d) => Err(d),
                None if last.1 >= 10 => Ok(now),
                None => Err(format!("unchanged for {} polls", last.1)),
            }
        },
    )
    .await
}

/// Loads the generated traffic into the topics of `s`, all but its last
/// message and without the flush, so that a pipeline reading it cannot
/// close the sessions of the last half hour: a kill while it reads is
/// mid-stream however fast it reads. Returns the last message, which
/// [`release_the_rest`] produces with the flush.
async fn load_all_but_the_end(s: &Settings) -> (GenStats, shoplens::generate::Message) {
    ingest::admin::create_topics(&s.kafka, 3, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    let mut gen = generator();
    let mut traffic: Vec<shoplens::generate::Message> = gen.by_ref().collect();
    let last = traffic.pop().expect("traffic");
    // The flush lands where the undisturbed run's did: after the latest event.
    assert!(
        traffic.iter().all(|m| m.ts_ms <= last.ts_ms),
        "last is latest"
    );
    produce_now(s, traffic, "all but the last message").await;
    (gen.stats(), last)
}

/// Produces `traffic` at once, with no flush after it.
async fn produce_now(s: &Settings, traffic: Vec<shoplens::generate::Message>, what: &str) {
    let no_flush = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    shoplens::generate::produce_messages(&s.kafka, traffic, START_MS, &no_flush)
        .await
        .unwrap_or_else(|e| panic!("produce {what}: {e}"));
}

/// Produces the message [`load_all_but_the_end`] held back, and the flush
/// after it that lets every window close.
async fn release_the_rest(s: &Settings, last: shoplens::generate::Message) {
    let start_ms = last.ts_ms;
    let flush = ProduceOptions {
        speed: None,
        flush_after_ms: Some(shoplens::generate::flush_horizon_ms(s)),
    };
    shoplens::generate::produce_messages(&s.kafka, [last], start_ms, &flush)
        .await
        .expect("produce the last message and the flush");
}

/// Runs the input through a `shoplens run` process, kills it with SIGKILL
/// once `kill_at` sessions are durable, releases the end of the input,
/// restarts it, and requires the undisturbed tables.
async fn kill_9_and_restart(kill_at: fn(u64) -> u64) {
    let (g, want) = undisturbed().await;
    assert!(want[0].1.lines().count() as u64 == g.sessions);

    let s = run_settings("kill9");
    let (loaded, last) = load_all_but_the_end(&s).await;
    assert_eq!(loaded, g, "the same input");
    let log = std::env::temp_dir().join(format!("{}.log", s.clickhouse.database));
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut first = spawn(&s, &metrics, &log);
    let threshold = kill_at(g.sessions);
    // And a round of checkpoints written (one per events store, three),
    // which the restart must continue from: a first write can beat the
    // first checkpoint when the input is read fast.
    let written = eventually(
        "sessions and checkpoints written before the kill",
        Duration::from_secs(60),
        || async {
            match counts(&metrics, &[SESSIONS, CHECKPOINTS]).await?[..] {
                [n, saved] if n >= threshold && saved >= 3 => Ok(n),
                [n, saved] => Err(format!("{n} sessions, {saved} checkpoints")),
                _ => unreachable!(),
            }
        },
    )
    .await;
    first.kill();
    assert!(
        written < g.sessions,
        "killed mid-stream: {written} of {} sessions were written",
        g.sessions
    );
    release_the_rest(&s, last).await;

    let (mut second, metrics) = restart_until_assigned(&s, &log).await;
    settled_dump(&s, Some(&want)).await;
    // The restart continued from saved state, not from the beginning: every
    // events store (one per partition) came back from its checkpoint.
    let [restored, refused] = counts(&metrics, &[RESTORED, REFUSED])
        .await
        .expect("metrics")[..]
    else {
        unreachable!()
    };
    assert!(restored >= 3, "{restored} stores restored");
    assert_eq!(refused, 0, "checkpoints refused");
    second.kill();
}

// The restart restores every partition's store from its last checkpoint and
// reads on from the offsets saved with it; rows emitted after that
// checkpoint are emitted again, identically, and replace themselves.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_the_first_writes_and_restart_gives_the_undisturbed_tables() {
    let _serial = SERIAL.lock().await;
    kill_9_and_restart(|_| 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_half_way_and_restart_gives_the_undisturbed_tables() {
    let _serial = SERIAL.lock().await;
    // With the end held back, about seven in ten sessions can close (2,585
    // of 3,574 when this was written), so half of them is reached mid-stream.
    kill_9_and_restart(|sessions| sessions / 2).await;
}

/// Creates the topics of `s` and produces the first half of the generated
/// traffic at once, with no flush. Returns its size and the second half.
async fn first_half_now(s: &Settings, g: &GenStats) -> (usize, Vec<shoplens::generate::Message>) {
    ingest::admin::create_topics(&s.kafka, 3, 1)
        .await
        .expect("topics");
    let mut gen = generator();
    let mut traffic: Vec<shoplens::generate::Message> = gen.by_ref().collect();
    assert_eq!(&gen.stats(), g, "the same input");
    let second_half = traffic.split_off(traffic.len() / 2);
    let first_half_messages = traffic.len();
    produce_now(s, traffic, "the first half").await;
    (first_half_messages, second_half)
}

/// Streams `second_half` in at event time x 45, then the flush that lets
/// every window close.
fn stream_in(
    s: &Settings,
    second_half: Vec<shoplens::generate::Message>,
) -> tokio::task::JoinHandle<shoplens::generate::ProduceReport> {
    let second_start = second_half.first().map_or(START_MS, |m| m.ts_ms);
    let paced = ProduceOptions {
        speed: Some(45.0),
        flush_after_ms: Some(shoplens::generate::flush_horizon_ms(s)),
    };
    let kafka = s.kafka.clone();
    tokio::spawn(async move {
        shoplens::generate::produce_messages(&kafka, second_half, second_start, &paced)
            .await
            .expect("produce the second half")
    })
}

/// The sum of `series` over the instances serving `addrs`.
async fn total(addrs: &[String], series: (&str, &str)) -> Result<u64, String> {
    let mut sum = 0;
    for a in addrs {
        sum += counts(a, &[series]).await?[0];
    }
    Ok(sum)
}

/// Partitions the pipeline consumes in the fault tests: clickstream and
/// orders (3 each, from `create_topics(.., 3, 1)`), spend (1) and the
/// customer facts (3).
const CONSUMED_PARTITIONS: u64 = 3 + 3 + 1 + 3;

/// Waits until the instances serving `addrs` own every consumed partition
/// between them, restarting the last one (SIGTERM, then start again) when
/// they do not within 30 s, up to three times.
///
/// tansu 0.6's group coordinator sometimes leaves a partition to nobody in
/// the rebalance that follows a kill: librdkafka's group logs
/// (`SHOPLENS_TEST_CHILD_LOG=info,librdkafka=debug KAFKA__LIBRDKAFKA__DEBUG=cgrp`,
/// each instance logs to `<database>.<i>.log`) show it answering a rejoin
/// with the generation id the group already had, and forming generations
/// from a subset of the live members (2 of 25 runs failed that way before
/// this remedy). A member that leaves and joins again makes it form a new
/// generation of every live member. Apache Kafka assigns every partition on
/// its own. A clean stop and start changes no result (the kill tests rely
/// on the same), so the test's claim is the same either way.
async fn until_every_partition_owned(
    s: &Settings,
    runs: &mut [Running],
    addrs: &[String],
    logs: &[PathBuf],
) {
    for attempt in 1..=3 {
        let owned = within(Duration::from_secs(30), || async {
            match total(addrs, ASSIGNED).await? {
                n if n == CONSUMED_PARTITIONS => Ok(()),
                n => Err(format!("{n} of {CONSUMED_PARTITIONS} partitions owned")),
            }
        })
        .await;
        if owned.is_ok() {
            return;
        }
        let last = runs.len() - 1;
        eprintln!(
            "attempt {attempt}: {owned:?} after 30 s; restarting the instance at {}",
            addrs[last]
        );
        runs[last].terminate().await;
        runs[last] = spawn(s, &addrs[last], &logs[last]);
    }
    panic!("the survivors never owned every partition in three attempts");
}

// Passed 18 of 19 runs after the pause fix (8 of 10 before), then 2 of 3
// with merged writes and a 30 s rebalance timeout, then 3 of 3 with the
// end-of-log asks. The failures left a partition owned by nobody after the
// rebalance that follows the kill; `until_every_partition_owned` is the
// remedy (see there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_with_one_killed_mid_stream_give_the_undisturbed_tables() {
    let _serial = SERIAL.lock().await;
    let (g, want) = undisturbed().await;
    let s = run_settings("trio");
    // Half the traffic before the group forms, the rest streamed in over
    // about 40 s (event time x 45) while it runs.
    let (_, second_half) = first_half_now(&s, &g).await;

    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let logs: Vec<PathBuf> = (0..3)
        .map(|i| std::env::temp_dir().join(format!("{}.{i}.log", s.clickhouse.database)))
        .collect();
    let mut runs: Vec<Running> = addrs
        .iter()
        .zip(&logs)
        .map(|(a, log)| spawn(&s, a, log))
        .collect();
    // The group has split the partitions: every instance holds a store.
    eventually(
        "every instance holds a partition",
        Duration::from_secs(60),
        || async {
            let mut held = Vec::new();
            for a in &addrs {
                held.push(counts(a, &[("shoplens_stores_loaded_total", "")]).await?[0]);
            }
            if held.iter().all(|n| *n > 0) {
                Ok(())
            } else {
                Err(format!("stores loaded per instance: {held:?}"))
            }
        },
    )
    .await;

    let producing = stream_in(&s, second_half);
    let written = eventually(
        "sessions written by the group",
        Duration::from_secs(60),
        || async {
            match total(&addrs, SESSIONS).await {
                Ok(n) if n >= g.sessions / 4 => Ok(n),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    runs[0].kill();
    assert!(
        !producing.is_finished(),
        "killed while traffic still streams in ({written} sessions written)"
    );
    until_every_partition_owned(&s, &mut runs[1..], &addrs[1..], &logs[1..]).await;
    producing.await.expect("producer");

    settled_dump(&s, Some(&want)).await;
    // The survivors took the killed instance's partitions over from its
    // checkpoints.
    let restored = total(&addrs[1..], RESTORED).await.expect("metrics");
    assert!(restored >= 1, "{restored} stores restored by the survivors");
    assert_eq!(total(&addrs[1..], REFUSED).await.expect("metrics"), 0);
}

/// One hostile message of each kind, by turn: its payload and the kind.
fn hostile(i: usize) -> (&'static str, Vec<u8>) {
    let id = format!("hostile-{i}");
    let page = |fields: &str| {
        format!(
            r#"{{"event_id":"{id}","type":"page_view","timestamp":{START_MS},"anonymous_id":"h{i}","context":{{"page":{{"url":"/"}}}}{fields}}}"#
        )
        .into_bytes()
    };
    let order = |total: &str| {
        format!(
            r#"{{"event_id":"{id}","type":"order_placed","timestamp":{START_MS},"anonymous_id":"h{i}","properties":{{"order_id":"o{i}","total":{total},"products":[{{"product_id":"p","price":"1.00"}}]}}}}"#
        )
        .into_bytes()
    };
    match i % 17 {
        0 => ("malformed", page("").split_at(40).0.to_vec()),
        1 => ("malformed", vec![b'{'; 1 + i % 50]),
        2 => ("malformed", b"[1,2,3]".to_vec()),
        3 => ("oversized", page(&format!(r#","padding":"{}""#, "x".repeat(70_000)))),
        4 => ("wrong type", page(r#","user_id":42"#).replace_first(&id, "")),
        5 => (
            "wrong type",
            format!(r#"{{"event_id":{i},"type":"page_view","timestamp":{START_MS},"anonymous_id":"h"}}"#).into_bytes(),
        ),
        6 => (
            "wrong type",
            format!(r#"{{"event_id":"{id}","type":"page_view","timestamp":"yesterday","anonymous_id":"h"}}"#).into_bytes(),
        ),
        7 => (
            "wrong type",
            format!(r#"{{"event_id":"{id}","type":"page_view","timestamp":{START_MS},"anonymous_id":"h","context":5}}"#).into_bytes(),
        ),
        8 => ("huge number", order("1e400")),
        9 => ("huge number", order("99999999999999999999999999")),
        10 => (
            "huge number",
            format!(r#"{{"event_id":"{id}","type":"page_view","timestamp":1e30,"anonymous_id":"h","context":{{"page":{{"url":"/"}}}}}}"#).into_bytes(),
        ),
        11 => ("huge number", order(r#""-5.00""#)),
        12 => {
            let mut b = page("");
            b.extend_from_slice(&[0xff, 0xfe, 0xc0, 0x80]);
            ("odd unicode", b)
        }
        13 => (
            "odd unicode",
            format!(r#"{{"event_id":"{id}","type":"page_view","timestamp":{START_MS},"anonymous_id":"\ud800","context":{{"page":{{"url":"/"}}}}}}"#).into_bytes(),
        ),
        14 => (
            "odd unicode",
            format!(r#"{{"event_id":"{}","type":"page_view","timestamp":{START_MS},"anonymous_id":"h","context":{{"page":{{"url":"/"}}}}}}"#, "\u{202e}🛒".repeat(100)).into_bytes(),
        ),
        15 => (
            "unknown type",
            format!(r#"{{"event_id":"{id}","type":"hack","timestamp":{START_MS},"anonymous_id":"h"}}"#).into_bytes(),
        ),
        _ => ("missing field", br#"{"type":"page_view"}"#.to_vec()),
    }
}

/// `replace_first` for byte payloads built from strings.
trait ReplaceFirst {
    fn replace_first(self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceFirst for Vec<u8> {
    fn replace_first(self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self)
            .expect("utf-8")
            .replacen(from, to, 1)
            .into_bytes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_10000_hostile_messages_is_accounted_for_and_changes_no_result() {
    let _serial = SERIAL.lock().await;
    use shoplens::generate::{produce_messages, Message};
    use std::collections::BTreeMap;

    let (g, want) = undisturbed().await;
    let s = run_settings("flood");
    ingest::admin::create_topics(&s.kafka, 3, 1)
        .await
        .expect("topics");
    let decoder = contract::Decoder::new(s.decode_options().expect("decode options"));

    // The same traffic with 10,000 hostile messages: 7,000 the decoder must
    // reject and 1,500 exact repeats of recent valid messages mixed into it,
    // then, once the pipeline's watermark has passed the traffic, 1,500
    // valid messages two days older. (Before a watermark exists nothing is
    // late, as in Flink: old events that come first are simply events.)
    let mut gen = generator();
    let valid: Vec<Message> = gen.by_ref().collect();
    assert_eq!(gen.stats(), g, "the same input");
    let mut mixed = Vec::with_capacity(valid.len() + 10_000);
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut invalid, mut repeats) = (0usize, 0usize);
    let every = valid.len() / 10_000;
    for (n, m) in valid.iter().enumerate() {
        mixed.push(m.clone());
        if n % every != every - 1 {
            continue;
        }
        if invalid < 7_000 {
            let (kind, payload) = hostile(invalid);
            let why = decoder
                .decode(&payload, contract::Stream::Clickstream, None)
                .expect_err(kind)
                .reason;
            *expected.entry(why.as_str().to_string()).or_default() += 1;
            *kinds.entry(kind).or_default() += 1;
            mixed.push(Message {
                stream: contract::Stream::Clickstream,
                key: format!("hostile-{invalid}"),
                payload,
                ts_ms: m.ts_ms,
            });
            invalid += 1;
        } else if repeats < 1_500 {
            // A repeat of a recent message the decoder accepts.
            let original = valid[..n]
                .iter()
                .rev()
                .skip(20)
                .find(|v| decoder.decode(&v.payload, v.stream, None).is_ok())
                .expect("a valid message before");
            mixed.push(original.clone());
            repeats += 1;
        }
    }
    assert_eq!((invalid, repeats), (7_000, 1_500));
    assert_eq!(kinds.len(), 7, "every kind of malformed input: {kinds:?}");
    let options = ProduceOptions {
        speed: None,
        flush_after_ms: Some(shoplens::generate::flush_horizon_ms(&s)),
    };
    let report = produce_messages(&s.kafka, mixed, START_MS, &options)
        .await
        .expect("produce");
    let pipeline = Pipeline::start(s.clone()).await.expect("pipeline starts");
    let metrics = pipeline.metrics_addr().to_string();
    let dead_letters = g.invalid as usize + 7_000 + 1_500;
    let series = [SESSIONS, INVALID, DUPLICATES];
    let counted = [g.sessions, g.invalid + 7_000, g.duplicates + 1_500];
    wait_for_counts(
        "the traffic and its hostile messages",
        &metrics,
        &series,
        &counted,
    )
    .await;
    let late: Vec<Message> = (0..1_500)
        .map(|i| Message {
            stream: contract::Stream::Clickstream,
            key: format!("late-{i}"),
            payload: format!(
                r#"{{"event_id":"late-{i}","type":"page_view","timestamp":{},"anonymous_id":"late-{i}","context":{{"page":{{"url":"/old"}}}}}}"#,
                START_MS - 2 * 86_400_000
            )
            .into_bytes(),
            ts_ms: START_MS,
        })
        .collect();
    let no_flush = ProduceOptions {
        speed: None,
        flush_after_ms: None,
    };
    produce_messages(&s.kafka, late, START_MS, &no_flush)
        .await
        .expect("produce late");

    let counted = [g.sessions, dead_letters as u64, g.duplicates + 1_500];
    wait_for_counts("every message", &metrics, &series, &counted).await;
    let (_, text) = get(&metrics, "/metrics").await.expect("scrape");
    assert_eq!(
        metric_sum(&text, "shoplens_events_consumed_total", "") as u64,
        g.messages + 10_000 + report.flush_messages
    );

    // Every rejection is in the dead-letter topic with its reason, and the
    // counters agree with the topic, reason by reason.
    let letters = e2e::read_dead_letters(
        3,
        &s.kafka.brokers,
        &s.kafka.topics.dead_letter,
        dead_letters,
    );
    assert_eq!(letters.len(), dead_letters);
    let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
    for h in &letters {
        *by_reason
            .entry(h.get("reason").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    for (reason, count) in &by_reason {
        assert_eq!(
            metric_sum(
                &text,
                "shoplens_events_invalid_total",
                &format!("reason=\"{reason}\"")
            ) as u64,
            *count,
            "{reason}"
        );
    }
    // The hostile ones are rejected for the reasons the decoder gives them
    // (the generator's own invalid messages come on top).
    for (reason, count) in &expected {
        assert!(
            by_reason.get(reason).copied().unwrap_or(0) >= *count,
            "{reason}: {by_reason:?} vs hostile {expected:?}"
        );
    }
    assert_eq!(by_reason.get("late"), Some(&1_500), "{by_reason:?}");

    // And the results are exactly those of the traffic alone.
    settled_dump(&s, Some(&want)).await;
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_down_60_s_mid_stream_pauses_consumption_and_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (g, want) = undisturbed().await;
    let mut ch = OwnClickHouse::create();
    ch.start().await;
    let mut s = run_settings("chdown");
    s.clickhouse.url = ch.url();
    s.clickhouse.retry_max_ms = 2_000;
    // The first half of the traffic now; the rest streams in over about 40 s
    // (event time × 45) from the start, through the outage. Sessions close
    // 30 minutes of event time (40 s) after their last event, so batches
    // pile up behind the stopped writer well before the stream ends.
    let (first_half_messages, second_half) = first_half_now(&s, &g).await;
    let pipeline = Pipeline::start(s.clone()).await.expect("pipeline starts");
    let second_half_messages = second_half.len();
    let producing = stream_in(&s, second_half);
    let metrics = pipeline.metrics_addr().to_string();
    let scrape = || async {
        let (_, text) = get(&metrics, "/metrics").await.expect("scrape");
        text
    };
    let written = some_sessions_written(&metrics).await;
    ch.process.stop();
    let stopped = std::time::Instant::now();
    assert!(
        written < g.sessions,
        "stopped mid-stream: {written} of {} sessions were written",
        g.sessions
    );
    assert!(
        !producing.is_finished(),
        "stopped while traffic still streams in"
    );

    // Inserts fail and are retried; the pipeline says it is not ready.
    eventually(
        "not ready, inserts failing",
        Duration::from_secs(30),
        || async {
            let (status, _) = get(&metrics, "/readyz").await.map_err(|e| e.to_string())?;
            let failures = metric_sum(
                &scrape().await,
                "shoplens_clickhouse_insert_failures_total",
                "",
            );
            if status != 200 && failures > 0.0 {
                Ok(())
            } else {
                Err(format!("readyz {status}, {failures} insert failures"))
            }
        },
    )
    .await;
    // Backpressure: the writer stops taking batches, so consumption stops
    // while traffic keeps arriving; from then on, over the rest of the 60 s
    // outage, nothing more is consumed and no offset is committed.
    let paused = std::sync::Mutex::new((0.0, 0u32));
    let before = eventually("consumption paused", Duration::from_secs(30), || async {
        let text = scrape().await;
        let consumed = metric_sum(&text, "shoplens_events_consumed_total", "");
        let lag = metric_sum(&text, "shoplens_consumer_lag_messages", "");
        let mut paused = paused.lock().expect("not poisoned");
        paused.1 = if consumed == paused.0 && lag > 0.0 {
            paused.1 + 1
        } else {
            0
        };
        paused.0 = consumed;
        if paused.1 >= 10 {
            Ok(text)
        } else {
            Err(format!("{consumed} consumed, lag {lag}"))
        }
    })
    .await;
    // The outage lasts 60 s: this wait is the scenario, not a synchronisation.
    tokio::time::sleep(Duration::from_secs(60).saturating_sub(stopped.elapsed())).await;
    let after = scrape().await;
    for name in [
        "shoplens_events_consumed_total",
        "shoplens_offset_commits_total",
        "shoplens_sessions_total",
    ] {
        assert_eq!(
            metric_sum(&before, name, ""),
            metric_sum(&after, name, ""),
            "{name} moved while ClickHouse was down"
        );
    }
    // Where in the input it paused depends on how fast the writer filled
    // the channel (the machine's load decides whether that is before or
    // after the first half): it paused short of the end.
    let consumed = metric_sum(&after, "shoplens_events_consumed_total", "") as usize;
    assert!(
        consumed > 0 && consumed < first_half_messages + second_half_messages,
        "consumption went on, then paused: {consumed} consumed of {} + {}",
        first_half_messages,
        second_half_messages
    );
    assert!(
        metric_sum(&after, "shoplens_consumer_lag_messages", "") > 0.0,
        "the rest waits in Kafka"
    );

    producing.await.expect("producer");
    // ClickHouse is back: the retries land, every order reaches its
    // customer, nothing was late, and every table equals the undisturbed
    // run's.
    ch.start().await;
    caught_up(&metrics, &g).await;
    settled_dump(&s, Some(&want)).await;
    let (status, _) = get(&metrics, "/readyz").await.expect("readyz");
    assert_eq!(status, 200, "ready again");
    pipeline.stop().await.expect("clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing_and_counts_nothing_twice() {
    let _serial = SERIAL.lock().await;
    let (g, want) = undisturbed().await;
    let mut broker = OwnBroker::create();
    broker.start().await;
    let mut s = run_settings("brokerdown");
    s.kafka.brokers = broker.address();
    // The first half now; the broker is restarted while the pipeline works
    // through it, and the second half streams in after the restart. (Traffic
    // is not produced across the restart itself: tansu answers requests in
    // flight at shutdown with a non-retriable error, and a producer that
    // sends those again after later ones reorders the input by more than
    // the allowed lateness, which would make a different, valid, result.)
    let (_, second_half) = first_half_now(&s, &g).await;
    let pipeline = Pipeline::start(s.clone()).await.expect("pipeline starts");
    let metrics = pipeline.metrics_addr().to_string();
    let written = some_sessions_written(&metrics).await;
    broker.process.stop();
    assert!(
        written < g.sessions,
        "stopped mid-stream: {written} of {} sessions were written",
        g.sessions
    );
    // The outage lasts 10 s: this wait is the scenario, not a
    // synchronisation. The pipeline's own producers (dead letters,
    // triggers, customer facts, markers) hold their messages meanwhile.
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.start().await;
    stream_in(&s, second_half).await.expect("producer");

    // Every session and every order counted exactly once (the pipeline did
    // not restart, so its counters must not count a replay), nothing late,
    // and every table equal to the undisturbed run's.
    caught_up(&metrics, &g).await;
    settled_dump(&s, Some(&want)).await;
    pipeline.stop().await.expect("clean stop");
}
