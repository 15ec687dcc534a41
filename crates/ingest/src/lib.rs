//! Kafka reading: the consumer, decoding into the contract, dead-lettering,
//! per-partition watermarks with idleness and alignment, and the offsets that
//! may be committed.
//!
//! The event-time logic here ([`watermark`]) takes the wall clock as an
//! argument, so it is tested without Kafka or sleeps.

#![warn(missing_docs)]

pub mod consumer;
pub mod dead_letter;
pub mod outbox;
pub mod reject_rate;
pub mod settings;
pub mod streams;
pub mod watermark;

pub use consumer::{
    build_consumer, build_producer, cached_high_watermark, input_topics, missing_topics,
    partition_count, KafkaError,
};
pub use dead_letter::{DeadLetter, Rejection};
pub use outbox::{Outbox, Outgoing};
pub use reject_rate::{Alarm, RejectRate};
pub use settings::{KafkaSettings, TopicNames, WatermarkSettings};
pub use streams::Streams;
pub use watermark::{may_have_backlog, Group, WatermarkTracker};
