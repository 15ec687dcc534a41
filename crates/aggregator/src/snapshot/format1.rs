//! Snapshot format 1, as the release before format 2 wrote it: read, never
//! written. Every type here is the layout of that release, field by field;
//! each reader fills what format 2 added with what format 1 meant.
//!
//! - Aggregator: format 2 added the settlements waiting for their order
//!   (none waited in format 1).
//! - Customer book: format 3 added the orders (see `format2`); format 2 added each customer's currency (format 1
//!   summed one, the reporting currency), the distinct paying and repeat
//!   customers of each open day, and three gauges' counts.

use super::SnapshotError;
use crate::{Aggregator, AggregatorConfig, CustomerBook};

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
    pending: super::format2::PendingV2,
    histories: crate::hash::Map<String, HistoryV1>,
    lapse: std::collections::BinaryHeap<std::cmp::Reverse<(i64, String)>>,
    days: std::collections::BTreeMap<(i64, crate::Channel, i32), DayV1>,
    dirty_days: std::collections::BTreeSet<(i64, crate::Channel, i32)>,
    new_customers: u64,
    repeat_orders: u64,
    dirty: std::collections::BTreeSet<String>,
}

/// A customer book of format 1. Days open in it count no distinct
/// customers for the orders before the upgrade.
pub(super) fn book(body: &[u8]) -> Result<CustomerBook, SnapshotError> {
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
        pending: super::format2::pending(v1.pending),
        histories: histories.collect(),
        lapse: v1.lapse,
        days: days.collect(),
        dirty_days: v1.dirty_days,
        new_customers: v1.new_customers,
        repeat_orders: v1.repeat_orders,
        dirty: v1.dirty,
        orders: Default::default(),
        attribution: Default::default(),
    })
}

/// The aggregator of format 1: the fields of format 2 but the last.
#[derive(serde::Deserialize)]
struct AggregatorV1 {
    cfg: AggregatorConfig,
    watermark_ms: i64,
    dedup: crate::dedup::Dedup,
    pending: std::collections::BTreeMap<i64, Vec<(contract::Event, crate::Position)>>,
    pending_len: crate::buffer::StoredLen,
    held: crate::offsets::HeldOffsets,
    sessions: crate::sessions::Sessionizer,
    session_windows: crate::session_windows::SessionWindows,
    pages: crate::pages::Pages,
    commerce: crate::commerce::Commerce,
    carts: crate::carts::Carts,
    stats: crate::Stats,
}

/// An aggregator of format 1: nothing waited for its order then.
pub(super) fn aggregator(body: &[u8]) -> Result<Aggregator, SnapshotError> {
    let v1: AggregatorV1 = postcard::from_bytes(body)?;
    Ok(Aggregator {
        cfg: v1.cfg,
        watermark_ms: v1.watermark_ms,
        dedup: v1.dedup,
        pending: v1.pending.into(),
        released: Vec::new(),
        closing: Vec::new(),
        _pending_len: v1.pending_len,
        held: v1.held,
        sessions: v1.sessions,
        session_windows: v1.session_windows,
        pages: v1.pages,
        commerce: v1.commerce,
        carts: v1.carts,
        stats: v1.stats,
        early: Default::default(),
        touches: Default::default(),
        stage_times: Default::default(),
    })
}
