//! Kafka and event-time settings.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Topic names of the contract.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TopicNames {
    /// Page views and other storefront behaviour.
    pub clickstream: String,
    /// Orders and payments (co-partitioned with clickstream).
    pub orders: String,
    /// Marketing spend, keyed by channel (optional).
    pub spend: String,
    /// Where rejected messages go, unchanged, with reason headers.
    pub dead_letter: String,
    /// Where the pipeline writes triggers (abandoned carts, overdue orders).
    pub triggers: String,
    /// Internal: customer facts re-keyed by customer.
    pub customer_facts: String,
}

impl Default for TopicNames {
    fn default() -> Self {
        TopicNames {
            clickstream: "storefront.clickstream".into(),
            orders: "storefront.orders".into(),
            spend: "marketing.spend".into(),
            dead_letter: "storefront.dead-letter".into(),
            triggers: "storefront.triggers".into(),
            customer_facts: "shoplens.customer-facts".into(),
        }
    }
}

/// How to reach Kafka and how to consume.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group shared by every instance.
    pub group_id: String,
    /// Topic names.
    pub topics: TopicNames,
    /// `session.timeout.ms`: how fast a dead instance's partitions move.
    pub session_timeout_ms: u32,
    /// `max.poll.interval.ms`, also the rebalance timeout a joining member
    /// announces: how long the loop may wait behind the writer (ClickHouse
    /// down) before the instance leaves the group (one hour).
    pub max_poll_interval_ms: u32,
    /// `fetch.wait.max.ms`: low values keep brokers that wait per fetch fast.
    pub fetch_wait_max_ms: u32,
    /// `fetch.queue.backoff.ms`.
    pub fetch_queue_backoff_ms: u32,
    /// Any other librdkafka property, applied last.
    pub librdkafka: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            group_id: "shoplens".into(),
            topics: TopicNames::default(),
            session_timeout_ms: 6000,
            max_poll_interval_ms: 3_600_000,
            fetch_wait_max_ms: 10,
            fetch_queue_backoff_ms: 20,
            librdkafka: BTreeMap::new(),
        }
    }
}

/// Event-time settings of the spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WatermarkSettings {
    /// Allowed lateness: watermark = max event time seen - this (60 s).
    pub allowed_lateness_ms: i64,
    /// A partition without messages for this long (wall clock) stops holding
    /// the watermark back (30 s).
    pub idle_timeout_ms: u64,
    /// A partition whose watermark runs further than this ahead of the
    /// pipeline's is paused until the others catch up (alignment), once
    /// the stores buffer more than `max_buffered_events`.
    pub max_drift_ms: i64,
    /// Alignment pauses a partition that drifted ahead only while the
    /// stores hold more than this many events ahead of their watermarks
    /// (with the customer facts ahead of the books'), and resumes it once
    /// they hold half as many (or it is back within half the drift). It
    /// bounds the memory alignment is for; below it partitions need not
    /// take turns. 0: pause on the drift alone.
    pub max_buffered_events: usize,
}

impl Default for WatermarkSettings {
    fn default() -> Self {
        WatermarkSettings {
            allowed_lateness_ms: 60_000,
            idle_timeout_ms: 30_000,
            max_drift_ms: 120_000,
            max_buffered_events: 200_000,
        }
    }
}
