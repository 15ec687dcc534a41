//! librdkafka clients configured for this pipeline.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::producer::FutureProducer;

use crate::settings::KafkaSettings;

/// Kafka client errors.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka refused the configuration or the operation.
    #[error("kafka: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// Topics the pipeline reads do not exist on the brokers.
    #[error("topics missing on the brokers: {0:?} (create them with `shoplens topics`)")]
    MissingTopics(Vec<String>),
    /// The brokers did not answer at all.
    #[error(
        "cannot reach the Kafka brokers {brokers} (kafka.brokers, env KAFKA__BROKERS): {cause}"
    )]
    Unreachable {
        /// The bootstrap list tried.
        brokers: String,
        /// What the client reported.
        cause: String,
    },
}

fn base(settings: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.brokers);
    c
}

fn apply_overrides(c: &mut ClientConfig, settings: &KafkaSettings) {
    for (k, v) in &settings.librdkafka {
        c.set(k, v);
    }
}

/// The configuration of a consumer in the group, with manual commits:
/// offsets move only when the results behind them are durable.
pub(crate) fn consumer_config(settings: &KafkaSettings) -> ClientConfig {
    let mut c = base(settings);
    c.set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            settings.session_timeout_ms.to_string(),
        )
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string())
        .set(
            "fetch.queue.backoff.ms",
            settings.fetch_queue_backoff_ms.to_string(),
        )
        .set("enable.partition.eof", "false")
        // While ClickHouse is down the loop waits behind the writer and does
        // not poll. Leaving the group after librdkafka's default 5 minutes
        // would only move the same wait to another instance (they share
        // ClickHouse) and throw away open state: allow an hour by default,
        // `kafka.max_poll_interval_ms` if a stuck instance must be replaced
        // sooner.
        .set(
            "max.poll.interval.ms",
            settings.max_poll_interval_ms.to_string(),
        );
    apply_overrides(&mut c, settings);
    c
}

/// Which of `topics` the brokers' metadata does not list (all of them when
/// the brokers cannot be asked). A subscribed topic the brokers do not know
/// yet is only looked for again at librdkafka's metadata refresh (5 minutes
/// by default), so the pipeline waits for this to be empty before it
/// subscribes.
///
/// Brokers that do not answer are [`KafkaError::Unreachable`], naming
/// `brokers`: an unreachable broker is not a missing topic.
pub(crate) fn missing_topics<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topics: &[String],
    brokers: &str,
) -> Result<Vec<String>, KafkaError> {
    let metadata = consumer
        .fetch_metadata(None, std::time::Duration::from_secs(2))
        .map_err(|e| KafkaError::Unreachable {
            brokers: brokers.to_string(),
            cause: e.to_string(),
        })?;
    let known: Vec<String> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.name().to_string())
        .collect();
    Ok(topics
        .iter()
        .filter(|t| !known.contains(t))
        .cloned()
        .collect())
}

/// The number of partitions of `topic`, from the brokers' metadata.
pub(crate) fn partition_count<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
) -> Result<i32, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(5))?;
    metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0)
        .ok_or_else(|| KafkaError::MissingTopics(vec![topic.to_string()]))
}

/// A producer for the dead-letter and trigger topics, and for load
/// generation. Keys are partitioned with murmur2, as Java clients do, so
/// co-partitioning holds whichever client produced.
pub fn build_producer(settings: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    let mut c = base(settings);
    c.set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "30000");
    apply_overrides(&mut c, settings);
    Ok(c.create()?)
}

/// The high watermark of `topic`/`partition` from librdkafka's local cache
/// (updated by every fetch response; no network round trip), or `None` when
/// it is not known yet.
pub(crate) fn cached_high_watermark<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime, the
    // topic is a NUL-terminated string that outlives the call, and the out
    // parameters are valid i64s. librdkafka only reads its local cache here.
    let err = unsafe {
        rdkafka_sys::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn brokers_that_do_not_answer_are_named_not_taken_for_missing_topics() {
        let settings = KafkaSettings {
            // A port nothing listens on.
            brokers: "127.0.0.1:1".into(),
            ..KafkaSettings::default()
        };
        let consumer: StreamConsumer = consumer_config(&settings)
            .create()
            .expect("a client needs no broker to exist");
        let err = missing_topics(&consumer, &["t".into()], &settings.brokers)
            .expect_err("no broker answers");
        let text = err.to_string();
        assert!(matches!(err, KafkaError::Unreachable { .. }), "{text}");
        assert!(
            text.contains("127.0.0.1:1") && text.contains("KAFKA__BROKERS"),
            "{text}"
        );
    }
}
