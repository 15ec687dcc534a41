//! The pipeline's state, one store per input partition, so that a partition
//! and its state move together: after a crash, a restart or a rebalance the
//! partition's next owner restores the store from its last checkpoint and
//! reads on from the offsets recorded with it.
//!
//! Clickstream and orders are co-partitioned by visitor, so partition `p` of
//! both feeds one aggregator (store `events`); ad spend has its own
//! (`spend`); each customer-facts partition has a customer book
//! (`customers`). Every store advances with the same watermark.

use std::collections::{BTreeMap, HashMap};

/// Positions and times by source: a handful of entries per store, looked up
/// per message, where a B-tree's few comparisons beat hashing.
type BySource = BTreeMap<Source, i64>;

use aggregator::{Aggregator, AggregatorConfig, CustomerBook, CustomerOutput, Output, Source};
use exporter::Checkpoint;
use ingest::Topology;

mod forget;
mod parked;

use parked::Parked;

/// Which state a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Clickstream and orders of one visitor partition.
    Events,
    /// Ad spend.
    Spend,
    /// Customer histories of one customer-facts partition.
    Customers,
}

impl Kind {
    /// The name checkpoints are stored under.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Spend => "spend",
            Kind::Customers => "customers",
        }
    }
}

/// One store: a kind and a partition number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    /// What it holds.
    pub kind: Kind,
    /// Its partition.
    pub partition: i32,
}

impl Slot {
    /// The store `source` feeds.
    pub fn of(source: Source) -> Slot {
        let kind = match source.stream {
            Topology::FACTS => Kind::Customers,
            Topology::SPEND => Kind::Spend,
            _ => Kind::Events,
        };
        Slot {
            kind,
            partition: source.partition,
        }
    }
}

/// What a message is to its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next one the store needs: apply it.
    Next,
    /// Already in the store's state (a re-delivery after a restore or a
    /// rebalance): skip it.
    Applied,
    /// Past a gap: messages before it are not in the state. Another owner
    /// may have moved the partition on; reload before applying.
    Gap,
}

/// Every store this instance holds, with the next offset each source needs.
pub struct Stores {
    cfg: AggregatorConfig,
    customer_settings: (i64, String, usize),
    aggregators: BTreeMap<Slot, Aggregator>,
    books: BTreeMap<i32, CustomerBook>,
    next: BySource,
    event_times: BySource,
    /// What the last checkpoint of each store recorded (its offsets and
    /// watermark), or what it was restored from.
    saved: HashMap<Slot, Saved>,
    /// Stores of partitions revoked a moment ago, kept in case the
    /// rebalance gives them back (an eager rebalance revokes everything).
    parked: BTreeMap<Slot, Parked>,
    /// The persons erasure requests name (see `forget.rs`).
    forgotten: crate::erasure::Forgotten,
}

/// A store's position as of a checkpoint: its offsets by topic and its
/// watermark. A store is a pure function of what it read and the
/// watermarks it was advanced to, so an unchanged position means an
/// unchanged state.
type Saved = (BTreeMap<String, i64>, i64);

/// The outcome of loading a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// The store this instance held before a rebalance took the partition
    /// away and gave it back, with nothing further saved meanwhile.
    Kept,
    /// Restored from a checkpoint.
    Restored,
    /// No checkpoint: a fresh store, reading from the committed offsets.
    Fresh,
    /// A checkpoint exists but cannot be used (why): a fresh store.
    Refused(String),
}

impl Stores {
    /// No stores yet; aggregators run with `cfg`, customer books with the
    /// lapse minimum, reporting currency and bound given.
    pub fn new(
        cfg: AggregatorConfig,
        lapse_min_ms: i64,
        currency: &str,
        max_customers: usize,
    ) -> Self {
        Stores {
            cfg,
            customer_settings: (lapse_min_ms, currency.to_string(), max_customers),
            aggregators: BTreeMap::new(),
            books: BTreeMap::new(),
            next: BySource::new(),
            event_times: BySource::new(),
            saved: HashMap::new(),
            parked: BTreeMap::new(),
            forgotten: crate::erasure::Forgotten::default(),
        }
    }

    fn new_book(&self) -> CustomerBook {
        let (lapse, currency, max) = &self.customer_settings;
        CustomerBook::bounded(*lapse, currency, *max)
            .with_order_memory(self.cfg.order_rows_retention_ms, self.cfg.max_order_rows)
    }

    /// Whether `slot` is held.
    pub fn holds(&self, slot: Slot) -> bool {
        match slot.kind {
            Kind::Customers => self.books.contains_key(&slot.partition),
            _ => self.aggregators.contains_key(&slot),
        }
    }

    /// Installs `slot` from `checkpoint` (with the sources its offsets name
    /// in `topology`), or fresh when there is none or it cannot be used.
    /// Replaces whatever was held.
    pub fn load(
        &mut self,
        slot: Slot,
        checkpoint: Option<&Checkpoint>,
        topology: &Topology,
    ) -> Loaded {
        let source_of = |topic: &str| topology.source(topic, slot.partition);
        self.drop_slot(slot);
        self.parked.remove(&slot);
        let Some(c) = checkpoint else {
            self.install_fresh(slot);
            return Loaded::Fresh;
        };
        let restored = match slot.kind {
            Kind::Customers => {
                CustomerBook::restore(&self.new_book(), &c.state.contiguous()).map(|b| {
                    self.books.insert(slot.partition, b);
                })
            }
            _ => Aggregator::restore(&self.cfg, &c.state.contiguous()).map(|a| {
                self.aggregators.insert(slot, a);
            }),
        };
        match restored {
            Ok(()) => {
                for (topic, next) in &c.offsets {
                    if let Some(source) = source_of(topic) {
                        self.next.insert(source, *next);
                    }
                }
                for (topic, ts) in &c.event_times {
                    if let Some(source) = source_of(topic) {
                        self.event_times.insert(source, *ts);
                    }
                }
                self.saved.insert(slot, (c.offsets.clone(), c.watermark_ms));
                self.forget_restored(slot);
                Loaded::Restored
            }
            Err(e) => {
                self.install_fresh(slot);
                Loaded::Refused(e.to_string())
            }
        }
    }

    fn install_fresh(&mut self, slot: Slot) {
        match slot.kind {
            Kind::Customers => {
                let book = self.new_book();
                self.books.insert(slot.partition, book);
            }
            _ => {
                self.aggregators
                    .insert(slot, Aggregator::new(self.cfg.clone()));
            }
        }
    }

    /// Forgets `slot` and the offsets of its sources (the partition went to
    /// another owner, or is about to be reloaded).
    pub fn drop_slot(&mut self, slot: Slot) {
        match slot.kind {
            Kind::Customers => {
                self.books.remove(&slot.partition);
            }
            _ => {
                self.aggregators.remove(&slot);
            }
        }
        self.next.retain(|source, _| Slot::of(*source) != slot);
        self.event_times
            .retain(|source, _| Slot::of(*source) != slot);
        self.saved.remove(&slot);
    }

    /// The latest event time read from each source of `slot`.
    pub fn event_times(&self, slot: Slot) -> Vec<(Source, i64)> {
        self.event_times
            .iter()
            .filter(|(s, _)| Slot::of(**s) == slot)
            .map(|(s, t)| (*s, *t))
            .collect()
    }

    /// Records the event time of a message read from `source`.
    pub fn saw_event_time(&mut self, source: Source, ts_ms: i64) {
        let t = self.event_times.entry(source).or_insert(ts_ms);
        *t = (*t).max(ts_ms);
    }

    /// Every slot held.
    pub fn slots(&self) -> Vec<Slot> {
        self.aggregators
            .keys()
            .copied()
            .chain(self.books.keys().map(|p| Slot {
                kind: Kind::Customers,
                partition: *p,
            }))
            .collect()
    }

    /// What the message at `offset` of `source` is to its store.
    pub fn arrival(&self, source: Source, offset: i64) -> Arrival {
        match self.next.get(&source) {
            Some(next) if offset < *next => Arrival::Applied,
            Some(next) if offset > *next => Arrival::Gap,
            _ => Arrival::Next,
        }
    }

    /// The sources of `slot` whose next offset is known.
    pub fn sources(&self, slot: Slot) -> Vec<Source> {
        self.next
            .keys()
            .filter(|s| Slot::of(**s) == slot)
            .copied()
            .collect()
    }

    /// The next offset of `source` the store needs, if known.
    pub fn next_of(&self, source: Source) -> Option<i64> {
        self.next.get(&source).copied()
    }

    /// Accepts a hole in the log of `source`: `offset` is the next one.
    pub fn skip_to(&mut self, source: Source, offset: i64) {
        self.next.insert(source, offset);
    }

    /// Records that the message at `offset` of `source` is in the state.
    pub fn applied(&mut self, source: Source, offset: i64) {
        self.next.insert(source, offset + 1);
    }

    /// The aggregator of `slot` (an events or spend slot that is held).
    pub fn aggregator(&mut self, slot: Slot) -> Option<&mut Aggregator> {
        self.aggregators.get_mut(&slot)
    }

    /// The oldest offset of `source` that the open state still holds, if any
    /// (see [`Aggregator::low_water`]).
    pub fn low_water(&self, source: Source) -> Option<i64> {
        self.aggregators
            .get(&Slot::of(source))
            .and_then(|a| a.low_water(source))
    }

    /// The customer book of facts partition `partition`, if held.
    pub fn book(&mut self, partition: i32) -> Option<&mut CustomerBook> {
        self.books.get_mut(&partition)
    }

    /// Advances each aggregator to the watermark `watermark_of` gives its
    /// slot (none: it holds).
    pub fn advance(&mut self, watermark_of: impl Fn(Slot) -> Option<i64>) -> Output {
        let mut out = Output::default();
        for (slot, agg) in &mut self.aggregators {
            if let Some(w) = watermark_of(*slot) {
                out.extend(agg.advance(w));
            }
        }
        out
    }

    /// The watermark of each events store, by partition (those that have
    /// one): every event before it has been applied.
    pub fn event_watermarks(&self) -> Vec<(i32, i64)> {
        self.aggregators
            .iter()
            .filter(|(slot, agg)| slot.kind == Kind::Events && agg.watermark_ms() != i64::MIN)
            .map(|(slot, agg)| (slot.partition, agg.watermark_ms()))
            .collect()
    }

    /// Advances each customer book to the watermark `watermark_of` gives its
    /// partition (none: it holds).
    pub fn advance_customers(
        &mut self,
        watermark_of: impl Fn(i32) -> Option<i64>,
    ) -> CustomerOutput {
        let mut out = CustomerOutput::default();
        for (partition, book) in &mut self.books {
            let Some(watermark_ms) = watermark_of(*partition) else {
                continue;
            };
            out.extend(book.advance(watermark_ms));
        }
        out
    }

    /// A checkpoint of every store that has read something and changed
    /// since its last checkpoint (or its restore), naming each source's
    /// topic as `topology` does. A store whose offsets and watermark have
    /// not moved holds the state already saved: an idle partition is not
    /// written again every interval.
    pub fn checkpoints(&mut self, topology: &Topology) -> Vec<Checkpoint> {
        let offsets = by_slot(&self.next, topology);
        let times = by_slot(&self.event_times, topology);
        let mut out = Vec::new();
        for (slot, offsets) in offsets {
            let watermark_ms = match slot.kind {
                Kind::Customers => self
                    .books
                    .get(&slot.partition)
                    .map(CustomerBook::watermark_ms),
                _ => self.aggregators.get(&slot).map(Aggregator::watermark_ms),
            };
            let Some(watermark_ms) = watermark_ms else {
                continue;
            };
            let position = (offsets, watermark_ms);
            if self.saved.get(&slot) == Some(&position) {
                continue;
            }
            let state = match slot.kind {
                Kind::Customers => self
                    .books
                    .get(&slot.partition)
                    .map(CustomerBook::snapshot_chunks),
                _ => self.aggregators.get(&slot).map(Aggregator::snapshot_chunks),
            };
            let Some(state) = state else { continue };
            out.push(Checkpoint {
                store: slot.kind.as_str().to_string(),
                partition: slot.partition,
                offsets: position.0.clone(),
                event_times: times.get(&slot).cloned().unwrap_or_default(),
                watermark_ms,
                state: state.into(),
            });
            self.saved.insert(slot, position);
        }
        out
    }

    /// The aggregators, for gauges.
    pub fn aggregators(&self) -> impl Iterator<Item = &Aggregator> {
        self.aggregators.values()
    }

    /// The customer books, for gauges.
    pub fn books(&self) -> impl Iterator<Item = &CustomerBook> {
        self.books.values()
    }
}

/// The values of `by_source`, grouped by store and keyed by topic name.
fn by_slot(by_source: &BySource, topology: &Topology) -> BTreeMap<Slot, BTreeMap<String, i64>> {
    let mut out: BTreeMap<Slot, BTreeMap<String, i64>> = BTreeMap::new();
    for (source, value) in by_source {
        if let Some(topic) = topology.topic(*source) {
            out.entry(Slot::of(*source))
                .or_default()
                .insert(topic.to_string(), *value);
        }
    }
    out
}

#[cfg(test)]
mod tests;
