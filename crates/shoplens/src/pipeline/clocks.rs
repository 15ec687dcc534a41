//! The pipeline's two event-time clocks: the input partitions' watermark,
//! which the events stores follow, and the customer-facts partitions', whose
//! customer books follow the input partitions' watermark markers (facts are
//! produced only after the input watermark passes their events).

use std::collections::HashMap;

use aggregator::Source;
use ingest::{Topology, WatermarkSettings, WatermarkTracker};

/// Both clocks and the markers read so far.
pub(super) struct Clocks {
    /// Input partitions (clickstream, orders, spend).
    pub(super) events: WatermarkTracker,
    /// Customer-facts partitions.
    pub(super) facts: WatermarkTracker,
    /// The latest watermark marker of each input partition, by facts
    /// partition.
    markers: HashMap<i32, HashMap<i32, i64>>,
    /// Partitions of the input topics: every one must have marked.
    input_partitions: i32,
}

impl Clocks {
    pub(super) fn new(settings: &WatermarkSettings, input_partitions: i32) -> Self {
        Clocks {
            events: WatermarkTracker::new(settings.clone()),
            facts: WatermarkTracker::new(settings.clone()),
            markers: HashMap::new(),
            input_partitions,
        }
    }

    /// The clock `source` moves.
    pub(super) fn of(&mut self, source: Source) -> &mut WatermarkTracker {
        if Topology::is_facts(source) {
            &mut self.facts
        } else {
            &mut self.events
        }
    }

    /// Whether `source` is assigned to either clock.
    pub(super) fn is_assigned(&self, source: Source) -> bool {
        self.events.is_assigned(source) || self.facts.is_assigned(source)
    }

    /// Every source assigned, input first.
    pub(super) fn sources(&self) -> Vec<Source> {
        let mut all = self.events.sources();
        all.extend(self.facts.sources());
        all
    }

    /// The input partitions' numbers.
    pub(super) fn input_partitions(&self) -> std::ops::Range<i32> {
        0..self.input_partitions
    }

    /// `assigned` is the whole assignment now; returns the sources new to
    /// it.
    pub(super) fn assign(&mut self, assigned: &[Source], now_ms: u64) -> Vec<Source> {
        let (facts, inputs): (Vec<Source>, Vec<Source>) =
            assigned.iter().partition(|s| Topology::is_facts(**s));
        let mut new = self.events.assign(inputs, now_ms);
        new.extend(self.facts.assign(facts, now_ms));
        new
    }

    /// Facts partition `facts_partition` carried input partition
    /// `partition`'s watermark `watermark_ms`.
    pub(super) fn marked(&mut self, facts_partition: i32, partition: i32, watermark_ms: i64) {
        let by_input = self.markers.entry(facts_partition).or_default();
        let latest = by_input.entry(partition).or_insert(watermark_ms);
        *latest = (*latest).max(watermark_ms);
    }

    /// The watermark of the customer book of `facts_partition`: the lowest
    /// marked by every input partition, once each has marked one. The
    /// markers follow their facts, so every fact of an event before it has
    /// been read, whichever instance wrote it, however far apart the input
    /// partitions run, and across a partition's move to a new owner.
    pub(super) fn customer_watermark(&self, facts_partition: i32) -> Option<i64> {
        let marked = self.markers.get(&facts_partition)?;
        (0..self.input_partitions)
            .map(|p| marked.get(&p).copied())
            .collect::<Option<Vec<i64>>>()?
            .into_iter()
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_book_waits_for_every_input_partition_then_follows_the_lowest() {
        let mut clocks = Clocks::new(&WatermarkSettings::default(), 2);
        assert_eq!(clocks.customer_watermark(0), None);
        clocks.marked(0, 0, 500);
        assert_eq!(
            clocks.customer_watermark(0),
            None,
            "partition 1 has not marked"
        );
        clocks.marked(0, 1, 300);
        assert_eq!(clocks.customer_watermark(0), Some(300));
        clocks.marked(0, 1, 200);
        assert_eq!(clocks.customer_watermark(0), Some(300), "never back");
        clocks.marked(0, 1, 900);
        assert_eq!(clocks.customer_watermark(0), Some(500));
        assert_eq!(clocks.customer_watermark(1), None, "per facts partition");
    }
}
