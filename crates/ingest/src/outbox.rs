//! Producing that loses nothing: every message is kept until the broker has
//! acknowledged it, and the failed ones are sent again with backoff.
//!
//! A producer's delivery can fail for reasons that pass: the broker
//! restarts and answers in-flight requests with an error, or it stays away
//! longer than `message.timeout.ms`. Dead letters, triggers, customer facts
//! and watermark markers must all reach Kafka before the offsets behind them
//! are committed, so [`Outbox::flush`] returns only when every message sent
//! through it is acknowledged. While the broker is away it waits, and so does
//! everything behind it (backpressure), as the ClickHouse writer does.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use tracing::warn;

use crate::consumer::{build_producer, KafkaError};
use crate::settings::KafkaSettings;

/// One message to produce, owned so that it can be sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Topic.
    pub topic: String,
    /// Key (partitions the message unless `partition` is set).
    pub key: Option<Vec<u8>>,
    /// Payload.
    pub payload: Option<Vec<u8>>,
    /// An explicit partition.
    pub partition: Option<i32>,
    /// Headers, in order.
    pub headers: Vec<(&'static str, String)>,
}

impl Outgoing {
    /// A keyed message to `topic`.
    pub fn new(topic: &str, key: impl Into<Vec<u8>>, payload: impl Into<Vec<u8>>) -> Self {
        Outgoing {
            topic: topic.to_string(),
            key: Some(key.into()),
            payload: Some(payload.into()),
            partition: None,
            headers: Vec::new(),
        }
    }

    /// The same message sent to `partition` whatever its key.
    pub fn to_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    fn record(&self) -> FutureRecord<'_, [u8], [u8]> {
        let mut record = FutureRecord::to(&self.topic);
        if let Some(k) = &self.key {
            record = record.key(k.as_slice());
        }
        if let Some(p) = &self.payload {
            record = record.payload(p.as_slice());
        }
        if let Some(p) = self.partition {
            record = record.partition(p);
        }
        if !self.headers.is_empty() {
            let headers = self
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |h, (key, value)| {
                    h.insert(Header {
                        key,
                        value: Some(value.as_str()),
                    })
                });
            record = record.headers(headers);
        }
        record
    }
}

/// The first wait before failed messages are sent again; it doubles while
/// failures go on, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest wait between two sends of a failed message.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Messages sent and not yet acknowledged, each kept until it is.
pub struct Outbox {
    producer: FutureProducer,
    pending: VecDeque<(DeliveryFuture, Outgoing)>,
}

impl Outbox {
    /// An outbox on `producer`.
    pub fn new(producer: FutureProducer) -> Self {
        Outbox {
            producer,
            pending: VecDeque::new(),
        }
    }

    /// An outbox on a new producer to the brokers of `settings`.
    pub fn connect(settings: &KafkaSettings) -> Result<Self, KafkaError> {
        Ok(Self::new(build_producer(settings)?))
    }

    /// The number of partitions of `topic`, asked of the brokers for up to
    /// two minutes while they do not answer (a broker restarting).
    pub fn partition_count(&self, topic: &str) -> Result<i32, KafkaError> {
        let mut tries = 0;
        let meta = loop {
            let timeout = Duration::from_secs(10);
            match self.producer.client().fetch_metadata(Some(topic), timeout) {
                Ok(meta) => break meta,
                Err(error) if tries < 12 => {
                    tries += 1;
                    warn!(%error, topic, "no metadata yet; asking again");
                }
                Err(error) => return Err(error.into()),
            }
        };
        Ok(meta.topics().first().map_or(0, |t| t.partitions().len()) as i32)
    }

    /// Flushes (see [`Outbox::flush`]), then waits up to `timeout` for the
    /// producer's own queue to drain.
    pub async fn close(mut self, timeout: Duration) -> Result<(), KafkaError> {
        self.flush().await?;
        Ok(self.producer.flush(timeout)?)
    }

    /// Hands `message` to the producer now; [`Outbox::flush`] waits for it.
    /// Fails only when the producer refuses the message itself (too large,
    /// say), which no retry would change.
    ///
    /// A delivery already known to have failed is sent again first (with
    /// everything in flight settled), so that order is kept up to what was
    /// in flight: a broker restart does not move a message behind the
    /// traffic sent after it.
    pub async fn send(&mut self, message: Outgoing) -> Result<(), KafkaError> {
        if let Some(failed) = self.settle_ready() {
            self.retry(vec![failed]).await?;
        }
        self.enqueue(message).await
    }

    /// Hands `message` to the producer, waiting for room while its local
    /// queue is full (librdkafka drains it on its own).
    async fn enqueue(&mut self, message: Outgoing) -> Result<(), KafkaError> {
        loop {
            match self.producer.send_result(message.record()) {
                Ok(delivery) => {
                    self.pending.push_back((delivery, message));
                    return Ok(());
                }
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => return Err(KafkaError::Client(e)),
            }
        }
    }

    /// Drops the acknowledged deliveries at the front, without waiting;
    /// returns the first one found failed, if any.
    fn settle_ready(&mut self) -> Option<Outgoing> {
        let mut cx = Context::from_waker(Waker::noop());
        while let Some((delivery, _)) = self.pending.front_mut() {
            match Pin::new(delivery).poll(&mut cx) {
                Poll::Pending => return None,
                Poll::Ready(Ok(Ok(_))) => {
                    self.pending.pop_front();
                }
                Poll::Ready(_) => return self.pending.pop_front().map(|(_, m)| m),
            }
        }
        None
    }

    /// Waits until the broker has acknowledged every message sent so far.
    /// Those whose delivery failed are sent again, after a backoff that
    /// doubles while failures go on: this returns once all are delivered.
    pub async fn flush(&mut self) -> Result<(), KafkaError> {
        self.retry(Vec::new()).await
    }

    /// [`Outbox::flush`], with `failed` already known to need sending again.
    async fn retry(&mut self, mut failed: Vec<Outgoing>) -> Result<(), KafkaError> {
        let mut backoff = contract::Backoff::new(FIRST_RETRY, MAX_RETRY);
        let mut last_error = (!failed.is_empty()).then(|| "delivery failed".to_string());
        loop {
            for (delivery, message) in std::mem::take(&mut self.pending) {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        last_error = Some(e.to_string());
                        failed.push(message);
                    }
                    Err(_) => {
                        last_error = Some("delivery cancelled".into());
                        failed.push(message);
                    }
                }
            }
            if failed.is_empty() {
                return Ok(());
            }
            let wait = backoff.next_wait();
            warn!(
                failed = failed.len(),
                error = last_error.as_deref().unwrap_or_default(),
                retry_in_ms = wait.as_millis() as u64,
                "messages not delivered; sending them again"
            );
            tokio::time::sleep(wait).await;
            for message in std::mem::take(&mut failed) {
                self.enqueue(message).await?;
            }
        }
    }

    /// Messages sent but not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_keeps_its_key_payload_partition_and_headers() {
        let mut m = Outgoing::new("t", "k", b"v".to_vec()).to_partition(2);
        m.headers.push(("reason", "late".into()));
        let r = m.record();
        assert_eq!(r.topic, "t");
        assert_eq!(r.key, Some(&b"k"[..]));
        assert_eq!(r.payload, Some(&b"v"[..]));
        assert_eq!(r.partition, Some(2));
        use rdkafka::message::Headers;
        let h = r.headers.expect("headers");
        assert_eq!(h.count(), 1);
        assert_eq!(h.get(0).key, "reason");
        assert_eq!(h.get(0).value, Some(&b"late"[..]));
    }
}
