//! The pure core of the pipeline: events and watermarks in, rows out.
//!
//! [`Aggregator`] takes decoded events tagged with where they came from
//! ([`Position`]) and watermark advances, and returns closed rows
//! ([`Output`]) plus the lowest offset per source it still depends on
//! ([`Aggregator::low_water`]). It has no I/O and never reads a clock: the
//! same input gives the same rows.
//!
//! Events are held in an event-time ordered buffer until the watermark passes
//! them, then applied in time order; the events of one instant in the order
//! they can happen (a view before an add to cart, an order placed before it
//! is paid), whatever their ids (see `same_instant_key`). Any shuffle of the
//! input inside the allowed lateness therefore yields the same rows.

#![warn(missing_docs)]

/// Asserts that `T` takes at most `n` bytes, naming its size when not: the
/// state's compact types are pinned to their allocator size classes.
#[cfg(test)]
macro_rules! assert_size_at_most {
    ($t:ty, $n:expr) => {{
        let size = std::mem::size_of::<$t>();
        assert!(size <= $n, "{} is {size} bytes", stringify!($t));
    }};
}

mod aggregate;
pub mod attribution;
mod buffer;
mod carts;
pub mod channel;
mod commerce;
mod config;
mod customer_facts;
pub mod customers;
mod deadlines;
mod dedup;
mod early;
mod evictions;
pub mod forget;
mod hash;
mod intern;
mod offsets;
mod order_book;
mod pages;
pub mod rows;
mod session_windows;
mod sessions;
mod small_id;
mod snapshot;
mod spend;
pub mod stage_times;
mod touches;

use contract::{Device, Event};

pub use channel::{Channel, ChannelRules};
pub use config::AggregatorConfig;
pub use customers::{
    CustomerBook, CustomerDayRow, CustomerFact, CustomerOutput, CustomerRow, FactKind,
};
pub use evictions::Evictions;
pub use order_book::OrderRow;
pub use pages::OTHER;
pub use rows::{
    split_by_day, CartRow, CartStatus, FeedbackRow, Item, OrderWindowRow, PageRow, ProductRow,
    SessionRow, SessionWindowRow, SpendRow, Trigger,
};

pub use snapshot::{SnapshotError, FORMAT as SNAPSHOT_FORMAT};

use aggregate::Aggregate;
use buffer::Buffer;
use carts::Carts;
use commerce::Commerce;
use customer_facts::CustomerFacts;
use dedup::{Dedup, IdKey};
use early::EarlySettlements;
use offsets::HeldOffsets;
use pages::Pages;
use session_windows::SessionWindows;
use sessions::{Closed, Sessionizer};
use spend::Spend;
use stage_times::{StageTimeRow, StageTimes};
use touches::{TouchBounds, Touches};

/// A source of events: one partition of one input stream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Source {
    /// Index of the input stream (topic) as the caller numbers them.
    pub stream: u8,
    /// Kafka partition.
    pub partition: i32,
}

impl Source {
    /// Partition `partition` of stream `stream`.
    pub const fn new(stream: u8, partition: i32) -> Self {
        Source { stream, partition }
    }
}

/// Where one event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Stream and partition.
    pub source: Source,
    /// Offset in that partition.
    pub offset: i64,
}

/// Why an event was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Older than the watermark: must be dead-lettered with reason `late`.
    Late {
        /// The watermark it missed.
        watermark_ms: i64,
    },
    /// A repeat of an `event_id` inside the dedup horizon: changes nothing.
    Duplicate,
}

/// What an event did when pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Buffered until the watermark passes it.
    Buffered,
    /// A bot event: counted apart, kept out of business metrics.
    Bot,
}

/// Rows made final (or updated) by a watermark advance.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    /// Sessions closed by this advance.
    pub sessions: Vec<SessionRow>,
    /// Session windows changed by this advance, each with a higher version.
    pub session_windows: Vec<SessionWindowRow>,
    /// Page windows changed by this advance.
    pub pages: Vec<PageRow>,
    /// Product windows closed by this advance.
    pub products: Vec<ProductRow>,
    /// Time-to-stage histograms changed by this advance.
    pub stage_times: Vec<StageTimeRow>,
    /// Order windows closed by this advance.
    pub orders: Vec<OrderWindowRow>,
    /// Feedback windows closed by this advance.
    pub feedback: Vec<FeedbackRow>,
    /// Cart outcomes.
    pub carts: Vec<CartRow>,
    /// Abandoned carts and overdue orders to act on.
    pub triggers: Vec<Trigger>,
    /// Customer facts to re-key by customer.
    pub customer_facts: Vec<CustomerFact>,
    /// Ad spend by day.
    pub spend: Vec<SpendRow>,
    /// State given up early to stay within the memory bounds.
    pub evictions: Evictions,
    /// Placements of orders already placed, dropped as duplicates.
    pub repeated_orders: u64,
}

impl Output {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.session_windows.is_empty()
            && self.pages.is_empty()
            && self.products.is_empty()
            && self.stage_times.is_empty()
            && self.orders.is_empty()
            && self.feedback.is_empty()
            && self.carts.is_empty()
            && self.triggers.is_empty()
            && self.customer_facts.is_empty()
            && self.spend.is_empty()
    }

    /// Appends `other`.
    pub fn extend(&mut self, other: Output) {
        use rows::append;
        append(&mut self.sessions, other.sessions);
        append(&mut self.session_windows, other.session_windows);
        append(&mut self.pages, other.pages);
        append(&mut self.products, other.products);
        append(&mut self.stage_times, other.stage_times);
        append(&mut self.orders, other.orders);
        append(&mut self.feedback, other.feedback);
        append(&mut self.carts, other.carts);
        append(&mut self.triggers, other.triggers);
        append(&mut self.customer_facts, other.customer_facts);
        append(&mut self.spend, other.spend);
        self.evictions.add(other.evictions);
        self.repeated_orders += other.repeated_orders;
    }
}

/// Counters the aggregator keeps about itself.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Late events rejected.
    pub late: u64,
    /// Bot events counted apart.
    pub bots: u64,
    /// Dedup ids evicted before their horizon because of the memory bound.
    pub dedup_evicted_early: u64,
}

/// The event-time state machine. See the crate docs.
///
/// Its serde form is the checkpoint layout (written field by field, by
/// [`Aggregator::snapshot`]); read it with [`Aggregator::restore`], which also gives
/// the open sessions back their page state.
#[derive(serde::Deserialize)]
pub struct Aggregator {
    cfg: AggregatorConfig,
    watermark_ms: i64,
    dedup: Dedup,
    /// Events ahead of the watermark by event time; within one millisecond
    /// they are applied in event-id order (sorted when released), so the
    /// order never depends on arrival.
    pending: Buffer,
    /// Room for the events of one instant the watermark releases, kept
    /// between advances.
    #[serde(skip)]
    released: Vec<buffer::Held>,
    /// Room for the sessions an advance closes, kept between advances.
    #[serde(skip)]
    closing: Vec<sessions::Closed>,
    /// The buffer's length in the checkpoint layout (read and dropped).
    #[serde(rename = "pending_len")]
    _pending_len: buffer::StoredLen,
    held: HeldOffsets,
    sessions: Sessionizer,
    session_windows: SessionWindows,
    pages: Pages,
    commerce: Commerce,
    carts: Carts,
    stats: Stats,
    /// Payments and cancellations waiting for their order (format 2 on).
    early: EarlySettlements,
    /// Each visitor's latest touches, for attribution (format 3 on).
    pub(crate) touches: Touches,
    /// Time-to-stage histograms of the open windows (format 3 on).
    pub(crate) stage_times: StageTimes,
}

/// Where an event type falls among the events of one instant: the order
/// in which they can happen, so that a payment integration sending
/// `order_placed` and `order_paid` in the same millisecond is read right.
fn causal_rank(kind: &contract::EventKind) -> u8 {
    use contract::EventKind as K;
    match kind {
        K::PageView => 0,
        K::ProductView { .. } => 1,
        K::AddToCart { .. } => 2,
        K::RemoveFromCart { .. } => 3,
        K::CheckoutStarted { .. } => 4,
        K::OrderPlaced { .. } => 5,
        K::OrderPaid { .. } => 6,
        K::OrderCancelled { .. } => 7,
        K::OrderRefunded { .. } => 8,
        // Not part of the purchase path: after it, in a fixed order.
        K::Signup => 9,
        K::ReferralSent { .. } => 10,
        K::SurveyResponse { .. } => 11,
        K::AdSpend { .. } => 12,
    }
}

/// The order of events of one instant: by visitor; a visitor's storefront
/// events before its orders, payments and refunds; the storefront events
/// grouped by storefront session (so two sessions interleaved within one
/// timestamp do not split each other at every event); then the causal rank
/// and the event id. Only events of one visitor can affect each other here.
fn same_instant_key(e: &Event) -> (&str, bool, Option<&str>, u8, &str) {
    let lifecycle = e.kind.is_order_lifecycle();
    let session = e.session_id.as_deref().filter(|_| !lifecycle);
    let rank = causal_rank(&e.kind);
    (&e.anonymous_id, lifecycle, session, rank, &e.event_id)
}

/// Puts the events of one instant in the order they can happen, whatever
/// order they came in.
fn order_instant(ready: &mut [buffer::Held]) {
    ready.sort_by(|a, b| same_instant_key(&a.0).cmp(&same_instant_key(&b.0)));
}

impl Aggregator {
    /// A fresh aggregator with `cfg`.
    pub fn new(cfg: AggregatorConfig) -> Self {
        let sessions = Sessionizer::new(&cfg);
        Aggregator {
            dedup: Dedup::new(cfg.dedup_horizon_ms, cfg.dedup_max_ids),
            session_windows: SessionWindows::new(cfg.window_ms, sessions.stage_names().len()),
            sessions,
            pages: Pages::new(cfg.window_ms, cfg.max_paths_per_window),
            commerce: Commerce::new(
                cfg.window_ms,
                cfg.max_products_per_window,
                &cfg.reporting_currency,
            ),
            carts: Carts::new(&cfg),
            cfg,
            watermark_ms: i64::MIN,
            pending: Buffer::default(),
            released: Vec::new(),
            closing: Vec::new(),
            _pending_len: buffer::StoredLen,
            held: HeldOffsets::default(),
            stats: Stats::default(),
            early: EarlySettlements::default(),
            touches: Touches::default(),
            stage_times: StageTimes::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &AggregatorConfig {
        &self.cfg
    }

    /// Offers one event. Duplicates and late events are rejected; the rest
    /// is buffered until [`Aggregator::advance`] passes its timestamp.
    /// The buffer holds events boxed: a caller that decodes into a box
    /// (the pipeline does) hands it over as is; an [`Event`] is boxed here.
    pub fn push(
        &mut self,
        event: impl Into<Box<Event>>,
        pos: Position,
    ) -> Result<Accepted, Rejected> {
        let event = event.into();
        let id = IdKey::of(&event.event_id);
        if self.dedup.seen(id) {
            self.stats.duplicates += 1;
            return Err(Rejected::Duplicate);
        }
        // Ad spend is never late: its rows (a share of its amount per day
        // of its period, keyed by its id) are final as it arrives and do
        // not depend on what closed before it, and a platform reports or
        // corrects spend days after the period.
        let spend = matches!(event.kind, contract::EventKind::AdSpend { .. });
        if event.timestamp_ms < self.watermark_ms && !spend {
            self.stats.late += 1;
            return Err(Rejected::Late {
                watermark_ms: self.watermark_ms,
            });
        }
        self.dedup.insert(id, event.timestamp_ms);
        if event.device == Device::Bot {
            self.stats.bots += 1;
            return Ok(Accepted::Bot);
        }
        self.pending.push(event, pos);
        Ok(Accepted::Buffered)
    }

    /// Moves the watermark to `watermark_ms` (never backwards): applies every
    /// buffered event older than it in event-time order, closes sessions whose
    /// inactivity gap or length cap it passes, and returns the rows made.
    pub fn advance(&mut self, watermark_ms: i64) -> Output {
        let mut out = Output::default();
        if watermark_ms <= self.watermark_ms {
            return out;
        }
        self.watermark_ms = watermark_ms;
        let mut ready = std::mem::take(&mut self.released);
        while self.pending.release_instant(watermark_ms, &mut ready) {
            order_instant(&mut ready);
            for (event, pos) in ready.drain(..) {
                let ts = event.timestamp_ms;
                // What expired before this event expires first, so outcomes
                // follow event time, not how advances were batched.
                self.expire_early(ts, &mut out);
                self.each_aggregate(|a, held| a.expire(ts, held, &mut out));
                self.apply(event, pos, &mut out, true);
            }
        }
        self.released = ready;
        self.expire_early(watermark_ms, &mut out);
        let mut closing = std::mem::take(&mut self.closing);
        self.sessions
            .close_until(watermark_ms, &mut self.held, &mut closing);
        for closed in closing.drain(..) {
            self.close_session(closed, &mut out);
        }
        self.closing = closing;
        self.each_aggregate(|a, held| a.expire(watermark_ms, held, &mut out));
        self.dedup.expire(watermark_ms);
        self.touches
            .expire(watermark_ms, TouchBounds::of(&self.cfg));
        self.stats.dedup_evicted_early = self.dedup.evicted_early();
        out.session_windows = self.session_windows.flush(watermark_ms);
        out.pages = self.pages.flush(watermark_ms);
        let windows = &self.session_windows;
        out.stage_times =
            (self.stage_times).flush(watermark_ms, self.cfg.window_ms, |w| windows.has_open(w));
        self.each_aggregate(|a, _| a.flush(watermark_ms, &mut out));
        out
    }

    /// Calls `f` on every aggregate after the sessionizer, in the order
    /// they see an event, with the held offsets.
    fn each_aggregate(&mut self, mut f: impl FnMut(&mut dyn Aggregate, &mut HeldOffsets)) {
        let mut facts = CustomerFacts {
            reporting_currency: &self.cfg.reporting_currency,
        };
        let c = &mut self.commerce;
        let all: [&mut dyn Aggregate; 6] = [
            &mut Spend,
            &mut c.products,
            &mut c.orders,
            &mut c.feedback,
            &mut facts,
            &mut self.carts,
        ];
        for aggregate in all {
            f(aggregate, &mut self.held);
        }
    }

    /// Applies the settlements whose order did not come within the grace,
    /// at the end of it, as settlements of orders never seen.
    fn expire_early(&mut self, until_ms: i64, out: &mut Output) {
        let over = self.cfg.max_orders.max(1);
        while let Some((at_ms, waiting)) = self.early.pop_expired(until_ms, over, &mut self.held) {
            for (mut event, pos) in waiting {
                event.timestamp_ms = event.timestamp_ms.max(at_ms);
                // Rare (a settlement whose order never came): boxed again.
                self.apply(Box::new(event), pos, out, false);
            }
        }
    }

    /// Applies one event in event-time order. A payment or cancellation of
    /// an order not known yet waits for it when `may_wait` (see `early`).
    fn apply(&mut self, event: Box<Event>, pos: Position, out: &mut Output, may_wait: bool) {
        use contract::EventKind as K;
        // An order is placed once: a placement of an order known (a
        // webhook delivered again under a new event id) is a duplicate.
        if let K::OrderPlaced { order_id, .. } = &event.kind {
            if self.carts.knows_order(order_id) {
                self.stats.duplicates += 1;
                out.repeated_orders += 1;
                return;
            }
        }
        if let K::OrderPaid { order_id } | K::OrderCancelled { order_id } = &event.kind {
            if may_wait && !self.carts.knows_order(order_id) {
                let deadline = event.timestamp_ms.saturating_add(self.cfg.settle_grace_ms);
                let order_id = order_id.clone();
                self.early
                    .defer(&order_id, *event, pos, deadline, &mut self.held);
                return;
            }
        }
        self.apply_now(&event, pos, out);
        if let K::OrderPlaced { order_id, .. } = &event.kind {
            for (mut early, early_pos) in self.early.take(order_id, &mut self.held) {
                // Paired: it counts at the order's time, in its currency.
                early.timestamp_ms = event.timestamp_ms;
                self.apply_now(&early, early_pos, out);
            }
        }
    }

    /// The sessionizer places the event (ad spend aside: it is no visitor's
    /// behaviour), then every other aggregate applies it.
    fn apply_now(&mut self, event: &Event, pos: Position, out: &mut Output) {
        let spend = matches!(event.kind, contract::EventKind::AdSpend { .. });
        let channel = if spend {
            Channel::Direct
        } else {
            self.sessionize(event, pos, out)
        };
        let applied = self.applied(event, pos, channel);
        self.each_aggregate(|a, held| a.apply(&applied, held, out));
    }

    /// Applies `event` to the visitor's sessions (closing, evicting and
    /// opening them as it says) and to the page windows of its session;
    /// returns the session's channel.
    fn sessionize(&mut self, event: &Event, pos: Position, out: &mut Output) -> Channel {
        let applied = self
            .sessions
            .apply(event, pos, &mut self.held, self.cfg.max_open_sessions);
        if let Some(evicted) = applied.evicted {
            out.evictions.sessions += 1;
            self.close_session(evicted, out);
        }
        if let Some(closed) = applied.closed {
            self.close_session(closed, out);
        }
        if let Some(r) = applied.reached {
            (self.stage_times).reached(r, self.cfg.window_ms, self.sessions.stages());
        }
        if let Some(start) = applied.started {
            self.session_windows.open(start.at_ms);
            let b = TouchBounds::of(&self.cfg);
            out.evictions.touch_visitors +=
                self.touches
                    .touch_digest(start.visitor, start.at_ms, applied.channel, b);
        }
        if let (contract::EventKind::PageView, Some(page)) = (&event.kind, &event.page) {
            // The event's session is open now, and holds the page state.
            if let Some(visit) = self.sessions.visit_mut(applied.visitor) {
                self.pages
                    .page_view(visit, event.timestamp_ms, &page.path, pos.source.partition);
            }
        }
        applied.channel
    }

    fn close_session(&mut self, closed: Closed, out: &mut Output) {
        self.session_windows.close(&closed.row);
        if let Some(visit) = closed.visit {
            self.pages.close(*visit);
        }
        out.sessions.push(closed.row);
    }

    /// The watermark in force (events older than it are late).
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    /// The lowest offset of `source` that an open session, cart or order,
    /// or a buffered event, still depends on; `None` when nothing from it is
    /// held. Open state keeps its holds as it changes; the buffer is looked
    /// through here, as this is asked only when a checkpoint is taken, not
    /// once per event.
    pub fn low_water(&self, source: Source) -> Option<i64> {
        let buffered = self
            .pending
            .positions()
            .filter(|pos| pos.source == source)
            .map(|pos| pos.offset)
            .min();
        self.held.low(source).into_iter().chain(buffered).min()
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Carts open now.
    pub fn open_carts(&self) -> usize {
        self.carts.open_carts()
    }

    /// The funnel stage names, `session` first, as rows index them.
    pub fn funnel_stages(&self) -> Vec<String> {
        self.sessions.stage_names()
    }

    /// Events buffered ahead of the watermark.
    pub fn buffered_events(&self) -> usize {
        self.pending.len()
    }

    /// Ids held for deduplication.
    pub fn dedup_ids(&self) -> usize {
        self.dedup.len()
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}
