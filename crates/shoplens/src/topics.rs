//! Creates the contract's topics: clickstream and orders co-partitioned.

use std::time::Duration;

use ingest::KafkaSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use tracing::info;

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
