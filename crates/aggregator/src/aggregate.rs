//! The one interface of the aggregates that follow the sessionizer: each
//! sees every event in event-time order, with what the sessionizer and the
//! order memory made of it ([`Applied`]), expires what event time passes,
//! and emits its windows when the watermark passes them.
//!
//! The sessionizer itself (with the session windows and the page windows,
//! which live and die with the sessions) runs first, as every other
//! aggregate reads the channel of the visitor's session.

use contract::Event;

use crate::channel::Channel;
use crate::offsets::HeldOffsets;
use crate::{Output, Position};

/// One event as the aggregates see it.
pub(crate) struct Applied<'a> {
    /// The event.
    pub(crate) event: &'a Event,
    /// Where it came from.
    pub(crate) pos: Position,
    /// The channel of the visitor's open session (of the first touch of
    /// ad spend, which opens none: unused there).
    pub(crate) channel: Channel,
    /// For a payment or cancellation: the total and currency of its order,
    /// when the order is known.
    pub(crate) order_total: Option<(i64, String)>,
    /// For an order, cancellation or refund: the customer it is about.
    pub(crate) customer: Option<String>,
}

/// An aggregate after the sessionizer.
pub(crate) trait Aggregate {
    /// Applies one event, in event-time order. Offsets the aggregate's open
    /// state depends on are held in `held`.
    fn apply(&mut self, e: &Applied<'_>, held: &mut HeldOffsets, out: &mut Output);

    /// Event time reached `now_ms` (before the event at that time applies,
    /// and at every watermark): what expires by then closes.
    fn expire(&mut self, _now_ms: i64, _held: &mut HeldOffsets, _out: &mut Output) {}

    /// The watermark moved to `watermark_ms`: the windows it passed are
    /// emitted.
    fn flush(&mut self, _watermark_ms: i64, _out: &mut Output) {}
}
