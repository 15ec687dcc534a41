//! The dead-letter topic: rejected messages, unchanged, with reason headers.

use rdkafka::producer::FutureProducer;

use crate::consumer::KafkaError;
use crate::outbox::{Outbox, Outgoing};

/// Where a rejected message came from and why it was rejected.
#[derive(Debug, Clone, Copy)]
pub struct Rejection<'a> {
    /// Bounded reason label (`contract::Reason::as_str`).
    pub reason: &'a str,
    /// Field at fault, if any.
    pub field: Option<&'a str>,
    /// Human-readable detail.
    pub detail: &'a str,
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
}

/// Produces rejected messages to the dead-letter topic. Sends are pipelined:
/// [`DeadLetter::send`] enqueues, [`DeadLetter::flush`] waits until the broker
/// has every message sent so far (sending failed ones again), so their source
/// offsets may be committed.
pub struct DeadLetter {
    outbox: Outbox,
    topic: String,
}

impl DeadLetter {
    /// A dead-letter writer to `topic`.
    pub fn new(producer: FutureProducer, topic: impl Into<String>) -> Self {
        DeadLetter {
            outbox: Outbox::new(producer),
            topic: topic.into(),
        }
    }

    /// Enqueues `payload` (unchanged, with its original key) with headers
    /// naming the reason and the source position.
    pub async fn send(
        &mut self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        why: Rejection<'_>,
    ) -> Result<(), KafkaError> {
        let mut headers = vec![
            ("reason", why.reason.to_string()),
            ("detail", why.detail.to_string()),
            ("source_topic", why.topic.to_string()),
            ("source_partition", why.partition.to_string()),
            ("source_offset", why.offset.to_string()),
        ];
        if let Some(field) = why.field {
            headers.push(("field", field.to_string()));
        }
        self.outbox
            .send(Outgoing {
                topic: self.topic.clone(),
                key: key.map(<[u8]>::to_vec),
                payload: payload.map(<[u8]>::to_vec),
                partition: None,
                headers,
            })
            .await
    }

    /// Waits until every message sent so far is acknowledged by the broker,
    /// sending again those whose delivery failed.
    pub async fn flush(&mut self) -> Result<(), KafkaError> {
        self.outbox.flush().await
    }

    /// Messages sent but not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.outbox.in_flight()
    }
}
