//! Kafka administration: creating the contract's topics (clickstream and
//! orders co-partitioned), and reading a topic back from its start (dead
//! letters, for operators and tests).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tracing::info;

use crate::settings::KafkaSettings;

/// Topic creation failures.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// The admin request failed.
    #[error("kafka admin: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The broker refused a topic.
    #[error("creating {topic}: {code}")]
    Refused {
        /// Topic name.
        topic: String,
        /// Broker's error.
        code: RDKafkaErrorCode,
    },
}

/// Creates every topic if missing. Input topics get `partitions` each (the
/// same count, so a visitor's clickstream and orders meet in one consumer),
/// each replicated `replication` times.
pub async fn create_topics(
    settings: &KafkaSettings,
    partitions: i32,
    replication: i32,
) -> Result<(), TopicsError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .create()?;
    let t = &settings.topics;
    let topics = [
        NewTopic::new(
            &t.clickstream,
            partitions,
            TopicReplication::Fixed(replication),
        ),
        NewTopic::new(&t.orders, partitions, TopicReplication::Fixed(replication)),
        NewTopic::new(&t.spend, 1, TopicReplication::Fixed(replication)),
        NewTopic::new(
            &t.dead_letter,
            partitions,
            TopicReplication::Fixed(replication),
        ),
        NewTopic::new(
            &t.triggers,
            partitions,
            TopicReplication::Fixed(replication),
        ),
        NewTopic::new(
            &t.customer_facts,
            partitions,
            TopicReplication::Fixed(replication),
        ),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&topics, &opts).await? {
        match result {
            Ok(topic) => info!(topic, "created topic"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                info!(topic, "topic exists")
            }
            Err((topic, code)) => return Err(TopicsError::Refused { topic, code }),
        }
    }
    Ok(())
}

/// Reads `topic` (its `partitions`, from the start) until `want` messages
/// have arrived or `limit` has passed; returns the headers of each, in the
/// order read.
pub fn read_headers(
    brokers: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    limit: Duration,
) -> Result<Vec<BTreeMap<String, String>>, TopicsError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    while out.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut h = BTreeMap::new();
            for header in m.headers().into_iter().flat_map(|h| h.iter()) {
                let value = header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                h.insert(header.key.to_string(), value.unwrap_or_default());
            }
            out.push(h);
        }
    }
    Ok(out)
}
