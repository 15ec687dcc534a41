//! A backlog read to its end is checkpointed at once, whatever the
//! checkpoint interval: its offsets commit with the state it built.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::{eventually, produce_backlog, rows, settings, unique};
use shoplens::Pipeline;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_of_a_backlog_is_checkpointed_without_waiting_for_the_interval() {
    let id = unique("catchup");
    let mut settings = settings(&id);
    // Ten minutes between checkpoints: only the end of the backlog can
    // bring one within the test's limit.
    settings.pipeline.checkpoint_interval_ms = 600_000;
    settings.pipeline.checkpoint_max_interval_ms = 600_000;
    // A backlog is a lag of at least this many messages at a step.
    settings.pipeline.max_batch_events = 500;
    ingest::admin::create_topics(&settings.kafka, 2, 1)
        .await
        .expect("topics (is the stack up? deploy/local/stack.sh up)");
    let generated = produce_backlog(&settings.kafka, 11, 10, 40.0).await;
    assert!(generated.messages > 2_000, "{generated:?}");

    let pipeline = Pipeline::start(settings.clone())
        .await
        .expect("pipeline starts");
    let database = settings.clickhouse.database.clone();
    let group = settings.kafka.group_id.clone();
    let inputs = [
        settings.kafka.topics.clickstream.clone(),
        settings.kafka.topics.orders.clone(),
    ];
    let input = generated.messages;
    // The latest checkpoint of each store holds the next offset of each
    // topic it reads: summed over the input topics, the messages read.
    let saved = eventually(
        "a checkpoint of the backlog",
        Duration::from_secs(60),
        || {
            let (database, group, inputs) = (database.clone(), group.clone(), inputs.clone());
            async move {
                let sql = format!(
                    "SELECT argMax(offsets, version) FROM checkpoints \
                 WHERE group_id = '{group}' GROUP BY store, partition"
                );
                let text = rows(&database, &sql).await;
                let read: i64 = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<BTreeMap<String, i64>>(l).ok())
                    .flat_map(|o| inputs.iter().filter_map(move |t| o.get(t).copied()))
                    .sum();
                match u64::try_from(read) {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(text),
                }
            }
        },
    )
    .await;
    // Taken at the step that read the backlog to its end: all of it.
    assert_eq!(saved, input, "offsets saved for {input} messages");
    pipeline.stop().await.expect("clean shutdown");
}
