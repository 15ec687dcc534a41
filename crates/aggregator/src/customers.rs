//! Customers: history, new and repeat customers, lapsed customers.
//!
//! Fed by customer facts (orders, cancellations, refunds) re-keyed by
//! customer through an internal topic, so that exactly one owner holds each
//! customer's history, whatever devices (anonymous ids) they used. Pure:
//! facts and watermarks in, rows out. Facts are applied in event-time order
//! once the (facts) watermark passes them.

use crate::hash::Map;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use contract::time::window_start;

use crate::attribution::{AttributionDayRow, AttributionDays, PlacedOrder};
use crate::channel::Channel;
pub use crate::customer_facts::{CustomerFact, FactKind};
use crate::order_book::{touches_of, OrderBook, OrderRow};

const DAY_MS: i64 = 86_400_000;
/// Gaps kept per customer for the median: all of them up to this many (the
/// most recent ones beyond), far above what real wholesale customers reach.
const MAX_GAPS: usize = 10_000;

/// A customer's history as of a change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CustomerRow {
    /// Customer.
    pub customer_id: String,
    /// First order.
    pub first_order_ms: i64,
    /// Latest order.
    pub last_order_ms: i64,
    /// Orders placed.
    pub orders: u64,
    /// Net revenue in `currency`, minor units.
    pub net_minor: i64,
    /// Median days between orders, in ms (0 with fewer than 2 orders).
    pub median_gap_ms: i64,
    /// Channel of the first order.
    pub first_channel: Channel,
    /// Lapsed now (emitted once, again only after a new order).
    pub lapsed: bool,
    /// Grows with every change.
    pub version: u64,
    /// Currency of `net_minor`: that of the customer's first order. Money in
    /// another currency is not added (it is counted in
    /// [`CustomerBook::foreign_currency_facts`]).
    pub currency: String,
}

/// New and repeat customers per day and channel of acquisition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CustomerDayRow {
    /// Day start (UTC).
    pub day_ms: i64,
    /// Channel of the order.
    pub channel: Channel,
    /// Partition of the facts topic.
    pub partition: i32,
    /// Customers whose first order this was.
    pub new_customers: u64,
    /// Orders from customers with an earlier order.
    pub repeat_orders: u64,
    /// All orders.
    pub orders: u64,
    /// Distinct customers who ordered this day (each in the channel of
    /// their first order of the day, so channels add up to the day's).
    pub paying_customers: u64,
    /// Distinct customers who ordered this day and had ordered before
    /// (each in the channel of their first such order of the day).
    pub repeat_customers: u64,
    /// Grows with each re-emission (the orders counted).
    pub version: u64,
}

/// Rows made by one advance.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CustomerOutput {
    /// Customers that changed.
    pub customers: Vec<CustomerRow>,
    /// Days that changed (re-emitted with a higher version until they close).
    pub days: Vec<CustomerDayRow>,
    /// Customers that lapsed (also in `customers`, with `lapsed` set).
    pub lapsed: Vec<CustomerRow>,
    /// First orders applied by this advance.
    pub new_customers: u64,
    /// Repeat orders applied by this advance.
    pub repeat_orders: u64,
    /// Orders placed or changed (rows of `orders`).
    pub orders: Vec<OrderRow>,
    /// Attribution days that changed (re-emitted with a higher version
    /// until they close).
    pub attribution: Vec<AttributionDayRow>,
}

impl CustomerOutput {
    /// Appends `next`, the output of a later advance (or another book's).
    pub fn extend(&mut self, next: CustomerOutput) {
        use crate::rows::append;
        append(&mut self.customers, next.customers);
        append(&mut self.days, next.days);
        append(&mut self.lapsed, next.lapsed);
        append(&mut self.orders, next.orders);
        append(&mut self.attribution, next.attribution);
        self.new_customers += next.new_customers;
        self.repeat_orders += next.repeat_orders;
    }

    /// Rows to write: customers, days and orders.
    pub fn rows(&self) -> usize {
        self.customers.len() + self.days.len() + self.orders.len() + self.attribution.len()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct History {
    pub(crate) row: CustomerRow,
    pub(crate) gaps: VecDeque<i64>,
    pub(crate) queued_at: i64,
}

/// Customer histories of the facts partitions this instance owns.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct CustomerBook {
    pub(crate) lapse_min_ms: i64,
    pub(crate) max_customers: usize,
    /// Customers by last order time, oldest first (lazily cleaned).
    pub(crate) recency: BinaryHeap<Reverse<(i64, String)>>,
    pub(crate) evicted: u64,
    pub(crate) currency: String,
    pub(crate) watermark_ms: i64,
    pub(crate) pending: BTreeMap<(i64, String, FactKind), (CustomerFact, i32)>,
    pub(crate) histories: Map<String, History>,
    pub(crate) lapse: BinaryHeap<Reverse<(i64, String)>>,
    pub(crate) days: BTreeMap<(i64, Channel, i32), CustomerDayRow>,
    pub(crate) dirty_days: BTreeSet<(i64, Channel, i32)>,
    pub(crate) new_customers: u64,
    pub(crate) repeat_orders: u64,
    pub(crate) dirty: BTreeSet<String>,
    /// Customers lapsed now (format 2 on; counted from the histories when
    /// a format-1 book is read).
    pub(crate) lapsed_now: u64,
    /// Customers whose median gap is over their latest gaps only (format 2
    /// on; 0 when a format-1 book is read, which kept 64 gaps).
    pub(crate) gaps_clipped: u64,
    /// Orders, cancellations and refunds in another currency than their
    /// customer's, left out of net revenue (format 2 on).
    pub(crate) foreign_currency_facts: u64,
    /// The orders of the customers (format 3 on; empty when an earlier
    /// book is read).
    pub(crate) orders: OrderBook,
    /// The open days of attribution (format 3 on).
    pub(crate) attribution: AttributionDays,
}

fn median(gaps: &VecDeque<i64>) -> i64 {
    if gaps.is_empty() {
        return 0;
    }
    let mut v: Vec<i64> = gaps.iter().copied().collect();
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

impl CustomerBook {
    /// A book where a customer lapses after at least `lapse_min_ms` (30 days)
    /// and twice their median gap, summing net revenue in `currency`.
    pub fn new(lapse_min_ms: i64, currency: &str) -> Self {
        Self::bounded(lapse_min_ms, currency, usize::MAX)
    }

    /// Whether `other` was built with the same lapse minimum, currency and bound.
    pub(crate) fn same_settings(&self, other: &CustomerBook) -> bool {
        self.lapse_min_ms == other.lapse_min_ms
            && self.max_customers == other.max_customers
            && self.currency == other.currency
    }

    /// As [`CustomerBook::new`], holding at most `max_customers` histories:
    /// past that, the customer whose last order is oldest is forgotten (and
    /// counted in [`CustomerBook::evicted`]).
    pub fn bounded(lapse_min_ms: i64, currency: &str, max_customers: usize) -> Self {
        CustomerBook {
            lapse_min_ms,
            max_customers: max_customers.max(1),
            recency: BinaryHeap::new(),
            evicted: 0,
            currency: currency.to_ascii_uppercase(),
            watermark_ms: i64::MIN,
            pending: BTreeMap::new(),
            histories: Map::default(),
            lapse: BinaryHeap::new(),
            days: BTreeMap::new(),
            dirty_days: BTreeSet::new(),
            new_customers: 0,
            repeat_orders: 0,
            dirty: BTreeSet::new(),
            lapsed_now: 0,
            gaps_clipped: 0,
            foreign_currency_facts: 0,
            orders: OrderBook::default(),
            attribution: AttributionDays::default(),
        }
    }

    /// Remembers orders (to update their rows) for `retention_ms` after they
    /// were placed, at most `max_orders` of them (120 days and a million
    /// unless set). Not a setting of the state: a restored book takes the
    /// bounds in force.
    pub fn with_order_memory(mut self, retention_ms: i64, max_orders: usize) -> Self {
        self.set_order_memory(retention_ms, max_orders);
        self
    }

    /// See [`CustomerBook::with_order_memory`].
    pub fn set_order_memory(&mut self, retention_ms: i64, max_orders: usize) {
        self.orders.set_bounds(retention_ms, max_orders);
    }

    /// Orders remembered for their rows.
    pub fn orders_remembered(&self) -> usize {
        self.orders.len()
    }

    /// Payments, cancellations and refunds of orders not remembered (placed
    /// before the retention, or never seen): their rows did not change.
    pub fn unknown_settlements(&self) -> u64 {
        self.orders.unknown_settlements()
    }

    /// Refunds in another currency than their order's, not subtracted from
    /// its row.
    pub fn foreign_refunds(&self) -> u64 {
        self.orders.foreign_refunds()
    }

    /// Offers one fact from facts partition `partition`. A fact older than the
    /// watermark is late and returned as an error; a repeat changes nothing.
    pub fn push(&mut self, fact: CustomerFact, partition: i32) -> Result<(), i64> {
        if fact.ts_ms < self.watermark_ms {
            return Err(self.watermark_ms);
        }
        let key = (
            fact.ts_ms,
            format!("{}:{}", fact.customer_id, fact.order_id),
            fact.kind,
        );
        self.pending.entry(key).or_insert((fact, partition));
        Ok(())
    }

    /// Facts waiting for the watermark to pass them.
    pub fn pending_facts(&self) -> usize {
        self.pending.len()
    }

    /// Customers known.
    pub fn len(&self) -> usize {
        self.histories.len()
    }

    /// Customers lapsed now: a state, where the rows' `lapsed` events are
    /// what happened.
    pub fn lapsed_now(&self) -> u64 {
        self.lapsed_now
    }

    /// Customers with more gaps than kept for the median (10,000): their
    /// median is over the latest ones.
    pub fn gaps_clipped(&self) -> u64 {
        self.gaps_clipped
    }

    /// Orders, cancellations and refunds in another currency than their
    /// customer's (the currency of the first order), left out of net revenue.
    pub fn foreign_currency_facts(&self) -> u64 {
        self.foreign_currency_facts
    }

    /// Histories forgotten because of the memory bound.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The watermark in force (facts older than it are late).
    pub fn watermark_ms(&self) -> i64 {
        self.watermark_ms
    }

    /// Whether no customer is known.
    pub fn is_empty(&self) -> bool {
        self.histories.is_empty()
    }

    /// When a customer with 2 orders or more lapses: the time since their
    /// last order exceeds twice their median gap and is at least the
    /// minimum (30 days).
    fn lapse_at(&self, h: &History) -> Option<i64> {
        (h.row.orders >= 2 && !h.row.lapsed).then(|| {
            let last = h.row.last_order_ms;
            (last + 2 * h.row.median_gap_ms + 1).max(last + self.lapse_min_ms)
        })
    }

    fn apply(&mut self, f: CustomerFact, partition: i32) {
        match f.kind {
            FactKind::Order => self.apply_order(&f, partition),
            // A payment changes the order's row, not the customer's.
            FactKind::Paid => return self.orders.settled(&f),
            FactKind::Cancel | FactKind::Refund => {
                self.orders.settled(&f);
                let Some(h) = self.histories.get_mut(&f.customer_id) else {
                    return;
                };
                if f.currency == h.row.currency {
                    h.row.net_minor = h.row.net_minor.saturating_sub(f.amount_minor);
                } else {
                    self.foreign_currency_facts += 1;
                }
                h.row.version += 1;
            }
        }
        let id = f.customer_id;
        if f.kind == FactKind::Order {
            self.recency.push(Reverse((f.ts_ms, id.clone())));
            self.evict();
        }
        if let Some(at) = self.histories.get(&id).and_then(|h| self.lapse_at(h)) {
            let h = self.histories.get_mut(&id).expect("present");
            if h.queued_at != at {
                h.queued_at = at;
                self.lapse.push(Reverse((at, id.clone())));
            }
        }
        self.dirty.insert(id);
    }

    /// An order: the day's counts, and the customer's history (created at
    /// their first order, in that order's currency).
    fn apply_order(&mut self, f: &CustomerFact, partition: i32) {
        let day = (window_start(f.ts_ms, DAY_MS), f.channel, partition);
        let d = self.days.entry(day).or_insert_with(|| CustomerDayRow {
            day_ms: day.0,
            channel: f.channel,
            partition,
            new_customers: 0,
            repeat_orders: 0,
            orders: 0,
            paying_customers: 0,
            repeat_customers: 0,
            version: 0,
        });
        d.orders += 1;
        d.version = d.orders;
        self.dirty_days.insert(day);
        let h = self
            .histories
            .entry(f.customer_id.clone())
            .or_insert_with(|| History {
                row: CustomerRow {
                    customer_id: f.customer_id.clone(),
                    first_order_ms: f.ts_ms,
                    last_order_ms: f.ts_ms,
                    orders: 0,
                    net_minor: 0,
                    median_gap_ms: 0,
                    first_channel: f.channel,
                    lapsed: false,
                    version: 0,
                    currency: f.currency.clone(),
                },
                gaps: VecDeque::new(),
                queued_at: i64::MIN,
            });
        // Facts apply in event time: the last order is the one before.
        let previous = (h.row.orders > 0).then(|| f.ts_ms - h.row.last_order_ms);
        self.orders.placed(f, partition, h.row.orders + 1, previous);
        let placed = PlacedOrder {
            ts_ms: f.ts_ms,
            total_minor: f.amount_minor,
            currency: &f.currency,
            partition,
            new_customer: h.row.orders == 0,
        };
        self.attribution.order(&placed, &touches_of(f));
        let ordered_today = h.row.orders > 0 && window_start(h.row.last_order_ms, DAY_MS) == day.0;
        d.paying_customers += u64::from(!ordered_today);
        let repeat_counted_today = ordered_today && h.row.orders >= 2;
        d.repeat_customers += u64::from(h.row.orders > 0 && !repeat_counted_today);
        if h.row.orders == 0 {
            d.new_customers += 1;
            self.new_customers += 1;
        } else {
            d.repeat_orders += 1;
            self.repeat_orders += 1;
            h.gaps.push_back(f.ts_ms - h.row.last_order_ms);
            if h.gaps.len() > MAX_GAPS {
                h.gaps.pop_front();
                // Counted once per customer: the order that first clips.
                self.gaps_clipped += u64::from(h.row.orders == MAX_GAPS as u64 + 1);
            }
            h.row.median_gap_ms = median(&h.gaps);
        }
        h.row.orders += 1;
        h.row.last_order_ms = f.ts_ms;
        self.lapsed_now -= u64::from(h.row.lapsed);
        h.row.lapsed = false;
        if f.currency == h.row.currency {
            h.row.net_minor = h.row.net_minor.saturating_add(f.amount_minor);
        } else {
            self.foreign_currency_facts += 1;
        }
        h.row.version += 1;
    }

    /// Forgets the least recently ordering customers beyond the bound.
    fn evict(&mut self) {
        while self.histories.len() > self.max_customers {
            let Some(Reverse((ts, id))) = self.recency.pop() else {
                break;
            };
            let current = self
                .histories
                .get(&id)
                .is_some_and(|h| h.row.last_order_ms == ts);
            if current {
                if let Some(h) = self.histories.remove(&id) {
                    self.lapsed_now -= u64::from(h.row.lapsed);
                }
                self.evicted += 1;
            }
        }
        // Keep the recency heap from growing past a few entries per customer.
        if self.recency.len() > 4 * self.histories.len() + 1024 {
            let live: Vec<Reverse<(i64, String)>> = self
                .histories
                .values()
                .map(|h| Reverse((h.row.last_order_ms, h.row.customer_id.clone())))
                .collect();
            self.recency = live.into_iter().collect();
        }
    }

    /// Applies every fact older than `watermark_ms`, marks customers that
    /// lapsed by then, and returns changed customers and closed days.
    pub fn advance(&mut self, watermark_ms: i64) -> CustomerOutput {
        let mut out = CustomerOutput::default();
        if watermark_ms <= self.watermark_ms {
            return out;
        }
        self.watermark_ms = watermark_ms;
        let rest = self
            .pending
            .split_off(&(watermark_ms, String::new(), FactKind::Order));
        for ((ts, ..), (fact, partition)) in std::mem::replace(&mut self.pending, rest) {
            self.lapse_until(ts, &mut out);
            self.apply(fact, partition);
        }
        self.lapse_until(watermark_ms, &mut out);
        for id in std::mem::take(&mut self.dirty) {
            if let Some(h) = self.histories.get(&id) {
                out.customers.push(h.row.clone());
            }
        }
        for key in std::mem::take(&mut self.dirty_days) {
            if let Some(d) = self.days.get(&key) {
                out.days.push(d.clone());
            }
        }
        // Days the watermark has passed can no longer change.
        let keep = self
            .days
            .split_off(&(watermark_ms - DAY_MS + 1, Channel::PaidSearch, i32::MIN));
        self.days = keep;
        self.orders.take_changed(watermark_ms, &mut out.orders);
        self.attribution
            .take_changed(watermark_ms, &mut out.attribution);
        out.new_customers = std::mem::take(&mut self.new_customers);
        out.repeat_orders = std::mem::take(&mut self.repeat_orders);
        out
    }

    /// Marks customers whose lapse time is at or before `ts`.
    fn lapse_until(&mut self, ts: i64, out: &mut CustomerOutput) {
        while let Some(Reverse((at, _))) = self.lapse.peek() {
            if *at > ts {
                break;
            }
            let Reverse((at, id)) = self.lapse.pop().expect("peeked");
            let Some(h) = self.histories.get_mut(&id) else {
                continue;
            };
            if h.queued_at != at || h.row.lapsed {
                continue;
            }
            h.row.lapsed = true;
            self.lapsed_now += 1;
            h.row.version += 1;
            out.lapsed.push(h.row.clone());
            self.dirty.insert(id);
        }
    }
}

#[cfg(test)]
#[path = "customers_tests.rs"]
mod tests;
