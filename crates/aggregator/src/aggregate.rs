//! The one interface of the aggregates that follow the sessionizer: each
//! sees every event in event-time order, with what the sessionizer and the
//! order memory made of it ([`Applied`]), expires what event time passes,
//! and emits its windows when the watermark passes them.
//!
//! The sessionizer itself (with the session windows and the page windows,
//! which live and die with the sessions) runs first, as every other
//! aggregate reads the channel of the visitor's session.

use contract::internal::OrderDetail;
use contract::{Event, EventKind};

use crate::channel::Channel;
use crate::offsets::HeldOffsets;
use crate::touches::Seen;
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
    /// For an order, payment, cancellation or refund: the customer it is
    /// about.
    pub(crate) customer: Option<String>,
    /// For an order: the visitor's open session it was placed in.
    pub(crate) session: Option<SessionKey>,
    /// For an order: what it learns of the visitor's sessions (nothing
    /// otherwise).
    pub(crate) seen: Seen,
}

/// What an order records of the session it was placed in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionKey {
    /// The session's id, as its row has it.
    pub(crate) session_id: String,
    /// Its experiment and variant, empty when none.
    pub(crate) experiment_id: String,
    pub(crate) variant: String,
}

impl Applied<'_> {
    /// For an order: its visitor, session, items and variant, as its row in
    /// `orders` shows them.
    pub(crate) fn order_detail(&self) -> Option<Box<OrderDetail>> {
        let EventKind::OrderPlaced { products, .. } = &self.event.kind else {
            return None;
        };
        let items = products.iter().map(|l| u64::from(l.quantity)).sum();
        let s = self.session.clone().unwrap_or_default();
        Some(Box::new(OrderDetail {
            anonymous_id: self.event.anonymous_id.to_string(),
            session_id: s.session_id,
            items,
            experiment_id: s.experiment_id,
            variant: s.variant,
            touches: self
                .seen
                .channels
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            first_session_ms: self.seen.first_session_ms,
            sessions: self.seen.sessions,
        }))
    }
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
