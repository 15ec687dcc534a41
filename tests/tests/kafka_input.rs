//! The pipeline's Kafka input against the real broker: fetches that start
//! in the middle of a record batch, as they do after a pause, a rebalance or
//! a restart at a committed position.

use std::time::{Duration, Instant};

use e2e::{settings, unique};
use ingest::{KafkaInput, Outbox, Outgoing, Topology};

/// Sends `count` messages to partition 0 of `topic` from offset `from`,
/// as one record batch (the producer lingers longer than the sending takes).
async fn one_batch(settings: &ingest::KafkaSettings, topic: &str, from: usize, count: usize) {
    let mut settings = settings.clone();
    settings
        .librdkafka
        .insert("linger.ms".into(), "1000".into());
    let mut outbox = Outbox::connect(&settings).expect("producer");
    for i in from..from + count {
        let message = Outgoing::new(topic, format!("k{i}"), format!("m{i}"));
        outbox.send(message.to_partition(0)).await.expect("send");
    }
    outbox.close(Duration::from_secs(10)).await.expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_resumed_inside_the_log_s_last_batch_is_read_to_the_end() {
    // 51 messages into the last batch (200-699): one seek back by the
    // overlap (100) reaches the batch before it.
    let (stalls, _) = resume_inside_the_last_batch("stall", 250).await;
    assert!(stalls >= 1, "the stall was noticed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_that_stays_inside_the_last_batch_is_followed_by_a_further_one_soon() {
    // 251 messages into the last batch: the first seek (to 351) stays inside
    // it and brings nothing; the next goes four overlaps further back as
    // soon as the stall is noticed again, not after a gap's patience.
    let (stalls, took) = resume_inside_the_last_batch("stall2", 450).await;
    assert!(stalls >= 2, "{stalls} seeks back");
    assert!(
        took < ingest::seek_back::SEEK_PATIENCE,
        "read to the end {took:?} after the stall, the second seek waited a gap's patience"
    );
}

/// Two batches (0-199, 200-699) in a fresh topic; reads to `at`, pauses and
/// resumes, then reads every later offset as the pipeline does, watching
/// for stalls. Returns the seeks back and how long the rest took.
async fn resume_inside_the_last_batch(name: &str, at: i64) -> (usize, Duration) {
    let id = unique(name);
    let settings = settings(&id);
    ingest::admin::create_topics(&settings.kafka, 1, 1)
        .await
        .expect("topics");
    let topic = settings.kafka.topics.clickstream.clone();
    one_batch(&settings.kafka, &topic, 0, 200).await;
    one_batch(&settings.kafka, &topic, 200, 500).await;

    let topology = Topology::new(&settings.kafka.topics);
    let source = topology.source(&topic, 0).expect("clickstream is read");
    let mut input = KafkaInput::connect(&settings.kafka, topology, 100)
        .await
        .expect("consumer");
    let messages = input.messages();
    // Read up to `at`, inside the last batch, then pause and resume: the
    // client fetches again from the middle of that batch.
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let m = messages.recv().await.expect("no consumer error");
            if m.source() == Some(source) && m.offset() == at {
                return;
            }
        }
    });
    first.await.expect("offsets up to `at` delivered");
    input.pause(&[source]);
    input.resume(&[source]);

    // Every later offset arrives, in order (re-reads of what was read are
    // skipped, as the pipeline does). A broker that answers a fetch from
    // the middle of a batch with the next batch has nothing to send here:
    // the stall must be noticed and the partition sought back.
    let started = Instant::now();
    let mut next = at + 1;
    let mut stalls = 0;
    while next < 700 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "stuck at offset {next} of 700 after {stalls} seeks back"
        );
        let now_ms = started.elapsed().as_millis() as u64;
        let fetching = input.watch_stall(source, Some(next), next, true, now_ms);
        stalls += usize::from(fetching);
        let polled = tokio::time::timeout(Duration::from_millis(200), messages.recv()).await;
        let Ok(received) = polled else { continue };
        let m = received.expect("no consumer error");
        if m.source() != Some(source) {
            continue;
        }
        assert!(
            m.offset() <= next,
            "offset {} arrived past {next}",
            m.offset()
        );
        if m.offset() == next {
            next += 1;
        }
    }
    let took = started.elapsed();
    println!("read to the end after {stalls} seeks back for a stalled fetch, in {took:?}");
    (stalls, took)
}
