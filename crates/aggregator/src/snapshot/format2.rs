//! Snapshots of format 2 (and the customer facts of formats 1 and 2), as
//! the releases before format 3 wrote them: read, never written.
//!
//! Format 3 added the orders a book remembers for the `orders` table, each
//! fact's order detail, and each visitor's touches to the aggregator.
//! - A book read from format 2 remembers no order: payments, cancellations
//!   and refunds of orders placed before the upgrade change no row of
//!   `orders` (they are counted as unknown settlements), while customers'
//!   histories continue exactly.
//! - An aggregator read from format 2 knows no touches: an order soon after
//!   the upgrade is attributed to the sessions started since (its own one
//!   at least).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::SnapshotError;
use crate::customers::History;
use crate::hash::Map;
use crate::{Channel, CustomerBook, CustomerDayRow, CustomerFact, FactKind};

/// A customer fact of formats 1 and 2: no order detail.
#[derive(serde::Deserialize)]
pub(super) struct FactV2 {
    customer_id: String,
    kind: FactKind,
    order_id: String,
    ts_ms: i64,
    amount_minor: i64,
    currency: String,
    channel: Channel,
}

/// Pending facts of formats 1 and 2, by the book's key.
pub(super) type PendingV2 = BTreeMap<(i64, String, FactKind), (FactV2, i32)>;

/// Pending facts as format 3 keeps them: an order read back from an
/// earlier book has no detail (its row shows no visitor, session or items).
pub(super) fn pending(v2: PendingV2) -> BTreeMap<(i64, String, FactKind), (CustomerFact, i32)> {
    let fact = |f: FactV2| CustomerFact {
        customer_id: f.customer_id,
        kind: f.kind,
        order_id: f.order_id,
        ts_ms: f.ts_ms,
        amount_minor: f.amount_minor,
        currency: f.currency,
        channel: f.channel,
        order: None,
    };
    v2.into_iter()
        .map(|(key, (f, partition))| (key, (fact(f), partition)))
        .collect()
}

/// The customer book of format 2, field by field.
#[derive(serde::Deserialize)]
struct BookV2 {
    lapse_min_ms: i64,
    max_customers: usize,
    recency: BinaryHeap<Reverse<(i64, String)>>,
    evicted: u64,
    currency: String,
    watermark_ms: i64,
    pending: PendingV2,
    histories: Map<String, History>,
    lapse: BinaryHeap<Reverse<(i64, String)>>,
    days: BTreeMap<(i64, Channel, i32), CustomerDayRow>,
    dirty_days: BTreeSet<(i64, Channel, i32)>,
    new_customers: u64,
    repeat_orders: u64,
    dirty: BTreeSet<String>,
    lapsed_now: u64,
    gaps_clipped: u64,
    foreign_currency_facts: u64,
}

/// A customer book of format 2: it remembers no order yet.
pub(super) fn book(body: &[u8]) -> Result<CustomerBook, SnapshotError> {
    let v2: BookV2 = postcard::from_bytes(body)?;
    let mut book = CustomerBook::bounded(v2.lapse_min_ms, &v2.currency, v2.max_customers);
    book.recency = v2.recency;
    book.evicted = v2.evicted;
    book.watermark_ms = v2.watermark_ms;
    book.pending = pending(v2.pending);
    book.histories = v2.histories;
    book.lapse = v2.lapse;
    book.days = v2.days;
    book.dirty_days = v2.dirty_days;
    book.new_customers = v2.new_customers;
    book.repeat_orders = v2.repeat_orders;
    book.dirty = v2.dirty;
    book.lapsed_now = v2.lapsed_now;
    book.gaps_clipped = v2.gaps_clipped;
    book.foreign_currency_facts = v2.foreign_currency_facts;
    // Orders and attribution days start empty: format 2 kept neither.
    Ok(book)
}

/// The aggregator of format 2: the fields of format 3 but the last.
#[derive(serde::Deserialize)]
struct AggregatorV2 {
    cfg: crate::AggregatorConfig,
    watermark_ms: i64,
    dedup: crate::dedup::Dedup,
    pending: crate::buffer::Buffer,
    pending_len: crate::buffer::StoredLen,
    held: crate::offsets::HeldOffsets,
    sessions: crate::sessions::Sessionizer,
    session_windows: crate::session_windows::SessionWindows,
    pages: crate::pages::Pages,
    commerce: crate::commerce::Commerce,
    carts: crate::carts::Carts,
    stats: crate::Stats,
    early: crate::early::EarlySettlements,
}

/// An aggregator of format 2: no touches were kept then.
pub(super) fn aggregator(body: &[u8]) -> Result<crate::Aggregator, SnapshotError> {
    let v2: AggregatorV2 = postcard::from_bytes(body)?;
    Ok(crate::Aggregator {
        cfg: v2.cfg,
        watermark_ms: v2.watermark_ms,
        dedup: v2.dedup,
        pending: v2.pending,
        released: Vec::new(),
        closing: Vec::new(),
        _pending_len: v2.pending_len,
        held: v2.held,
        sessions: v2.sessions,
        session_windows: v2.session_windows,
        pages: v2.pages,
        commerce: v2.commerce,
        carts: v2.carts,
        stats: v2.stats,
        early: v2.early,
        touches: Default::default(),
        stage_times: Default::default(),
    })
}
