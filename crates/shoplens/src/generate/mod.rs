//! The load generator: realistic storefront traffic produced to Kafka.

mod model;
mod rng;

use std::time::Duration;

use contract::time::format_rfc3339;
use contract::Stream;
use ingest::{KafkaError, KafkaSettings, Outbox, Outgoing};
use serde_json::json;
use tokio::time::Instant;
use tracing::info;

pub use model::{GenConfig, GenStats, Generator, Message};
pub use rng::Rng;

/// How to send.
#[derive(Debug, Clone)]
pub struct ProduceOptions {
    /// Event-time milliseconds per wall-clock millisecond; `None` sends as
    /// fast as the broker takes it.
    pub speed: Option<f64>,
    /// After the traffic, send one page view per clickstream partition this
    /// far ahead of the last event (see [`flush_horizon_ms`]), so that every
    /// generated session, cart and payment deadline passes.
    pub flush_after_ms: Option<i64>,
}

/// What was produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProduceReport {
    /// What the generator made.
    pub generated: GenStats,
    /// Flush messages sent after it.
    pub flush_messages: u64,
}

const MAX_IN_FLIGHT: usize = 100_000;

/// How far past the last event the closing page views go: far enough that
/// every session, cart and payment deadline of the traffic has passed.
pub fn flush_horizon_ms(settings: &crate::Settings) -> i64 {
    let a = &settings.aggregator;
    a.session_gap_ms
        .max(a.cart_timeout_ms)
        .max(a.payment_timeout_ms)
        + settings.watermark.allowed_lateness_ms
        + 120_000
}

/// Sends with a bound on what is in flight. Failed deliveries are sent
/// again, as a storefront's producer should: a broker restart loses nothing.
struct Sender {
    outbox: Outbox,
}

impl Sender {
    async fn send(
        &mut self,
        topic: &str,
        key: Option<String>,
        payload: Vec<u8>,
        partition: Option<i32>,
    ) -> Result<(), KafkaError> {
        if self.outbox.in_flight() >= MAX_IN_FLIGHT {
            self.outbox.flush().await?;
        }
        self.outbox
            .send(Outgoing {
                topic: topic.to_string(),
                key: key.map(String::into_bytes),
                payload: Some(payload),
                partition,
                headers: Vec::new(),
            })
            .await
    }

    /// Paced like a storefront, and in order like one: what was sent is
    /// acknowledged (failures sent again) before traffic due at `due` goes
    /// out. A broker that fails requests for a while (starting up) then
    /// delays the stream instead of moving failed messages behind later
    /// ones, which would make them late.
    async fn wait_until(&mut self, due: Instant) -> Result<(), KafkaError> {
        if Instant::now() + Duration::from_millis(5) < due {
            self.outbox.flush().await?;
            tokio::time::sleep_until(due).await;
        }
        Ok(())
    }

    /// One page view per clickstream partition at `ts`, so that every
    /// session, cart and payment deadline before it passes.
    async fn send_flush(&mut self, topic: &str, ts: i64) -> Result<u64, KafkaError> {
        let partitions = self.outbox.partition_count(topic)?;
        for p in 0..partitions {
            let key = format!("flush-{p}");
            let payload = json!({
                "event_id": format!("flush-{ts}-{p}"),
                "type": "page_view",
                "timestamp": ts,
                "anonymous_id": key,
                "context": { "page": { "url": "/flush" } },
            });
            let bytes = serde_json::to_vec(&payload).expect("json");
            self.send(topic, Some(key), bytes, Some(p)).await?;
        }
        Ok(partitions as u64)
    }
}

/// Produces everything `generator` makes, keyed by anonymous id, paced by
/// event time when `opts.speed` is set.
pub async fn produce(
    settings: &KafkaSettings,
    mut generator: Generator,
    start_ms: i64,
    opts: &ProduceOptions,
) -> Result<ProduceReport, KafkaError> {
    let mut report = produce_messages(settings, generator.by_ref(), start_ms, opts).await?;
    report.generated = generator.stats();
    Ok(report)
}

/// Produces `messages` in order to their contract topics, paced by event
/// time when `opts.speed` is set, then the flush page views if asked.
pub async fn produce_messages(
    settings: &KafkaSettings,
    messages: impl IntoIterator<Item = Message>,
    start_ms: i64,
    opts: &ProduceOptions,
) -> Result<ProduceReport, KafkaError> {
    let mut sender = Sender {
        outbox: Outbox::connect(settings)?,
    };
    let topics = &settings.topics;
    let wall_start = Instant::now();
    let mut last_log = Instant::now();
    let mut max_event_ms = 0;
    let mut sent = 0u64;
    for msg in messages {
        if let Some(speed) = opts.speed {
            let due = Duration::from_millis(((msg.ts_ms - start_ms).max(0) as f64 / speed) as u64);
            sender.wait_until(wall_start + due).await?;
        }
        let topic = match msg.stream {
            Stream::Clickstream => &topics.clickstream,
            Stream::Orders => &topics.orders,
            Stream::Spend => &topics.spend,
        };
        let key = (!msg.key.is_empty()).then_some(msg.key);
        sender.send(topic, key, msg.payload, None).await?;
        max_event_ms = max_event_ms.max(msg.ts_ms);
        sent += 1;
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            info!(messages = sent, event_time = %format_rfc3339(msg.ts_ms), "producing");
        }
    }
    let mut flush_messages = 0;
    if let Some(ahead) = opts.flush_after_ms {
        let ts = max_event_ms + ahead;
        flush_messages = sender.send_flush(&topics.clickstream, ts).await?;
    }
    sender.outbox.close(Duration::from_secs(30)).await?;
    Ok(ProduceReport {
        generated: GenStats {
            messages: sent,
            ..GenStats::default()
        },
        flush_messages,
    })
}
