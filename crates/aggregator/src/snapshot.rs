//! Snapshots of the state, so that a partition's next owner (after a crash,
//! a restart or a rebalance) continues exactly where the last one stopped.
//!
//! A snapshot is one format byte followed by the state in postcard's compact
//! binary encoding. It records the settings it was taken under; restoring it
//! under different settings is refused, since the state would not mean what
//! the new settings say.

use serde::Serialize;

use crate::{Aggregator, AggregatorConfig, CustomerBook};

/// The snapshot layout this build writes. It also reads format 1, which
/// lacks the settlements waiting for their order (none were kept then).
pub const FORMAT: u8 = 2;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Written by a build with another layout.
    #[error("snapshot format {found}, this build reads formats 1 and {FORMAT}")]
    Format {
        /// The format byte found.
        found: u8,
    },
    /// The bytes do not decode.
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] postcard::Error),
    /// Taken under other settings.
    #[error("snapshot was taken under other settings ({0})")]
    Settings(&'static str),
}

fn encode<T: Serialize>(state: &T) -> Vec<u8> {
    let mut bytes = vec![FORMAT];
    // Serializing plain data into a Vec cannot fail.
    bytes.extend(postcard::to_stdvec(state).unwrap_or_default());
    bytes
}

/// The format byte and the body of a snapshot this build reads.
fn split(bytes: &[u8]) -> Result<(u8, &[u8]), SnapshotError> {
    match bytes.split_first() {
        Some((&format @ (1 | FORMAT), rest)) => Ok((format, rest)),
        Some((&found, _)) => Err(SnapshotError::Format { found }),
        None => Err(SnapshotError::Format { found: 0 }),
    }
}

/// A day of the customer book in format 1: no distinct customer counts.
#[derive(serde::Deserialize)]
struct DayV1 {
    day_ms: i64,
    channel: crate::Channel,
    partition: i32,
    new_customers: u64,
    repeat_orders: u64,
    orders: u64,
    version: u64,
}

/// A customer's row in format 1: no currency (net revenue was summed in
/// the book's reporting currency).
#[derive(serde::Deserialize)]
struct RowV1 {
    customer_id: String,
    first_order_ms: i64,
    last_order_ms: i64,
    orders: u64,
    net_minor: i64,
    median_gap_ms: i64,
    first_channel: crate::Channel,
    lapsed: bool,
    version: u64,
}

/// A customer's history in format 1.
#[derive(serde::Deserialize)]
struct HistoryV1 {
    row: RowV1,
    gaps: std::collections::VecDeque<i64>,
    queued_at: i64,
}

impl HistoryV1 {
    fn into_history(self, currency: &str) -> crate::customers::History {
        let r = self.row;
        crate::customers::History {
            row: crate::CustomerRow {
                customer_id: r.customer_id,
                first_order_ms: r.first_order_ms,
                last_order_ms: r.last_order_ms,
                orders: r.orders,
                net_minor: r.net_minor,
                median_gap_ms: r.median_gap_ms,
                first_channel: r.first_channel,
                lapsed: r.lapsed,
                version: r.version,
                currency: currency.to_string(),
            },
            gaps: self.gaps,
            queued_at: self.queued_at,
        }
    }
}

/// The customer book of format 1 (its open days are [`DayV1`]).
#[derive(serde::Deserialize)]
struct BookV1 {
    lapse_min_ms: i64,
    max_customers: usize,
    recency: std::collections::BinaryHeap<std::cmp::Reverse<(i64, String)>>,
    evicted: u64,
    currency: String,
    watermark_ms: i64,
    pending: std::collections::BTreeMap<(i64, String, crate::FactKind), (crate::CustomerFact, i32)>,
    histories: crate::hash::Map<String, HistoryV1>,
    lapse: std::collections::BinaryHeap<std::cmp::Reverse<(i64, String)>>,
    days: std::collections::BTreeMap<(i64, crate::Channel, i32), DayV1>,
    dirty_days: std::collections::BTreeSet<(i64, crate::Channel, i32)>,
    new_customers: u64,
    repeat_orders: u64,
    dirty: std::collections::BTreeSet<String>,
}

/// A customer book of format 1 or 2. Days open in a format-1 book count
/// no distinct customers for the orders before the upgrade.
fn decode_book(bytes: &[u8]) -> Result<CustomerBook, SnapshotError> {
    let (format, body) = split(bytes)?;
    if format == FORMAT {
        return Ok(postcard::from_bytes(body)?);
    }
    let v1: BookV1 = postcard::from_bytes(body)?;
    let days = v1.days.into_iter().map(|(key, d)| {
        let day = crate::CustomerDayRow {
            day_ms: d.day_ms,
            channel: d.channel,
            partition: d.partition,
            new_customers: d.new_customers,
            repeat_orders: d.repeat_orders,
            orders: d.orders,
            paying_customers: 0,
            repeat_customers: 0,
            version: d.version,
        };
        (key, day)
    });
    let lapsed_now = v1.histories.values().filter(|h| h.row.lapsed).count() as u64;
    let currency = v1.currency.clone();
    let histories = v1.histories.into_iter();
    let histories = histories.map(|(id, h)| (id, h.into_history(&currency)));
    Ok(CustomerBook {
        lapsed_now,
        gaps_clipped: 0,
        foreign_currency_facts: 0,
        lapse_min_ms: v1.lapse_min_ms,
        max_customers: v1.max_customers,
        recency: v1.recency,
        evicted: v1.evicted,
        currency: v1.currency,
        watermark_ms: v1.watermark_ms,
        pending: v1.pending,
        histories: histories.collect(),
        lapse: v1.lapse,
        days: days.collect(),
        dirty_days: v1.dirty_days,
        new_customers: v1.new_customers,
        repeat_orders: v1.repeat_orders,
        dirty: v1.dirty,
    })
}

/// The aggregator of format 1: the fields of format 2 but the last.
#[derive(serde::Deserialize)]
struct AggregatorV1 {
    cfg: AggregatorConfig,
    watermark_ms: i64,
    dedup: crate::dedup::Dedup,
    pending: std::collections::BTreeMap<i64, Vec<(contract::Event, crate::Position)>>,
    pending_len: usize,
    held: crate::offsets::HeldOffsets,
    sessions: crate::sessions::Sessionizer,
    session_windows: crate::session_windows::SessionWindows,
    pages: crate::event_windows::Pages,
    commerce: crate::event_windows::Commerce,
    carts: crate::carts::Carts,
    stats: crate::Stats,
}

fn decode_aggregator(bytes: &[u8]) -> Result<Aggregator, SnapshotError> {
    let (format, body) = split(bytes)?;
    if format == FORMAT {
        return Ok(postcard::from_bytes(body)?);
    }
    let v1: AggregatorV1 = postcard::from_bytes(body)?;
    Ok(Aggregator {
        cfg: v1.cfg,
        watermark_ms: v1.watermark_ms,
        dedup: v1.dedup,
        pending: v1.pending,
        pending_len: v1.pending_len,
        held: v1.held,
        sessions: v1.sessions,
        session_windows: v1.session_windows,
        pages: v1.pages,
        commerce: v1.commerce,
        carts: v1.carts,
        stats: v1.stats,
        early: Default::default(),
    })
}

/// The checkpoint layout, field by field: the derived `Deserialize` reads
/// the same fields in the same order. The open sessions' page state is
/// written inside the page windows, where earlier builds kept it.
impl Serialize for Aggregator {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Aggregator", 13)?;
        st.serialize_field("cfg", &self.cfg)?;
        st.serialize_field("watermark_ms", &self.watermark_ms)?;
        st.serialize_field("dedup", &self.dedup)?;
        st.serialize_field("pending", &self.pending)?;
        st.serialize_field("pending_len", &self.pending_len)?;
        st.serialize_field("held", &self.held)?;
        st.serialize_field("sessions", &self.sessions)?;
        st.serialize_field("session_windows", &self.session_windows)?;
        st.serialize_field("pages", &self.pages.layout(self.sessions.visits()))?;
        st.serialize_field("commerce", &self.commerce)?;
        st.serialize_field("carts", &self.carts)?;
        st.serialize_field("stats", &self.stats)?;
        st.serialize_field("early", &self.early)?;
        st.end()
    }
}

impl Aggregator {
    /// The whole state (open sessions, carts, orders, windows, the buffer
    /// ahead of the watermark, the dedup and visitor sets) as bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        encode(self)
    }

    /// The aggregator `bytes` were taken from, provided `cfg` is the
    /// configuration it ran under.
    pub fn restore(cfg: &AggregatorConfig, bytes: &[u8]) -> Result<Aggregator, SnapshotError> {
        let mut restored = decode_aggregator(bytes)?;
        if postcard::to_stdvec(restored.config()).ok() != postcard::to_stdvec(cfg).ok() {
            return Err(SnapshotError::Settings("aggregator"));
        }
        restored.cfg.max_open_sessions = cfg.max_open_sessions;
        restored.cfg.max_open_carts = cfg.max_open_carts;
        restored.cfg.max_abandoned_carts = cfg.max_abandoned_carts;
        restored.cfg.settle_grace_ms = cfg.settle_grace_ms;
        restored.carts.reindex();
        let holds =
            (restored.sessions.holds().chain(restored.carts.holds())).chain(restored.early.holds());
        restored.held.rebuild(holds);
        let visits = restored.pages.take_restored();
        restored.sessions.rejoin(visits);
        Ok(restored)
    }
}

impl CustomerBook {
    /// The whole state (histories, pending facts, open days) as bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        encode(self)
    }

    /// The book `bytes` were taken from, provided it was built like `like`
    /// (same lapse minimum, currency and bound).
    pub fn restore(like: &CustomerBook, bytes: &[u8]) -> Result<CustomerBook, SnapshotError> {
        let restored = decode_book(bytes)?;
        if !restored.same_settings(like) {
            return Err(SnapshotError::Settings("customers"));
        }
        Ok(restored)
    }
}
