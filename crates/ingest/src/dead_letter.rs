//! The dead-letter topic: rejected messages, unchanged, with reason headers.

use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::consumer::KafkaError;

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
/// has every message sent so far, so their source offsets may be committed.
pub struct DeadLetter {
    producer: FutureProducer,
    topic: String,
    pending: Vec<DeliveryFuture>,
}

impl DeadLetter {
    /// A dead-letter writer to `topic`.
    pub fn new(producer: FutureProducer, topic: impl Into<String>) -> Self {
        DeadLetter {
            producer,
            topic: topic.into(),
            pending: Vec::new(),
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
        let partition = why.partition.to_string();
        let offset = why.offset.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(why.reason),
            })
            .insert(Header {
                key: "detail",
                value: Some(why.detail),
            })
            .insert(Header {
                key: "source_topic",
                value: Some(why.topic),
            })
            .insert(Header {
                key: "source_partition",
                value: Some(&partition),
            })
            .insert(Header {
                key: "source_offset",
                value: Some(&offset),
            });
        if let Some(field) = why.field {
            headers = headers.insert(Header {
                key: "field",
                value: Some(field),
            });
        }
        let topic = self.topic.clone();
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(headers);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = payload {
            record = record.payload(p);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    self.pending.push(delivery);
                    return Ok(());
                }
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The local queue is full: wait for what is in flight.
                    record = back;
                    self.flush().await?;
                }
                Err((e, _)) => return Err(KafkaError::Client(e)),
            }
        }
    }

    /// Waits until every message sent so far is acknowledged by the broker.
    pub async fn flush(&mut self) -> Result<(), KafkaError> {
        for delivery in self.pending.drain(..) {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(KafkaError::Client(e)),
                Err(_) => return Err(KafkaError::Client(RdKafkaError::Canceled)),
            }
        }
        Ok(())
    }

    /// Messages sent but not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}
