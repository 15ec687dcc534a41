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
    let id = unique("stall");
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
    // Read up to offset 250, inside the last batch, then pause and resume:
    // the client fetches again from 251, in the middle of that batch.
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let m = messages.recv().await.expect("no consumer error");
            if m.source() == Some(source) && m.offset() == 250 {
                return;
            }
        }
    });
    first.await.expect("offsets up to 250 delivered");
    input.pause(&[source]);
    input.resume(&[source]);

    // Every later offset arrives, in order (re-reads of what was read are
    // skipped, as the pipeline does). A broker that answers a fetch from
    // the middle of a batch with the next batch has nothing to send here:
    // the stall must be noticed and the partition sought back.
    let started = Instant::now();
    let mut next = 251;
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
    println!("read to the end after {stalls} seeks back for a stalled fetch");
}
