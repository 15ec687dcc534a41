//! Kafka reading: the consumer, decoding into the contract, dead-lettering,
//! per-partition watermarks with idleness and alignment, and the offsets that
//! may be committed.
//!
//! The event-time logic here ([`watermark`]) takes the wall clock as an
//! argument, so it is tested without Kafka or sleeps.

#![warn(missing_docs)]

pub mod admin;
pub mod commits;
pub mod consumer;
pub mod dead_letter;
pub mod input;
pub mod log_ends;
pub mod outbox;
pub mod reject_rate;
pub mod seek_back;
pub mod settings;
pub mod stall;
pub mod topology;
pub mod watermark;

pub use commits::{commit_positions, CommitLedger};
pub use consumer::{build_producer, KafkaError};
pub use dead_letter::{DeadLetter, Rejection};
pub use input::{CommitMode, KafkaInput, Messages, Received};
pub use log_ends::LogEnds;
pub use outbox::{Outbox, Outgoing};
pub use reject_rate::{Alarm, RejectRate};
pub use seek_back::Gap;
pub use settings::{KafkaSettings, TopicNames, WatermarkSettings};
pub use topology::{Feed, Topology};
pub use watermark::{may_have_backlog, Group, WatermarkTracker};
