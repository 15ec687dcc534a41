//! The storefront event contract, v1.
//!
//! This crate owns what a storefront may send and what the pipeline accepts:
//! the event types ([`Event`], [`EventKind`]), exact money ([`Money`]),
//! timestamps ([`time`]) and the decoder ([`Decoder`]) that turns one Kafka
//! message into an [`Event`] or an [`Invalid`] with a bounded [`Reason`].
//! It does no I/O. It also holds the one retry policy every crate uses
//! ([`Backoff`]). The human-readable contract lives in `docs/contract.md`
//! and the machine-readable one in `schema/event.v1.schema.json`.

#![warn(missing_docs)]

pub mod backoff;
pub mod decode;
pub mod event;
pub mod internal;
pub mod money;
pub mod reason;
pub mod time;
mod url;

pub use backoff::Backoff;
pub use decode::{DecodeOptions, Decoder, Stream};
pub use event::{
    Campaign, Device, Event, EventKind, Experiment, LineItem, Page, Product, Survey, Text,
    EVENT_TYPES,
};
pub use money::{Currency, Money};
pub use reason::{Invalid, Reason};

/// The largest message the contract accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// The JSON Schema of the contract, for storefront teams and tests.
pub const JSON_SCHEMA: &str = include_str!("../schema/event.v1.schema.json");
