//! Stores follow their partitions: the assignment (read when a rebalance
//! changed it) parks the stores of revoked partitions and queues those of
//! new ones; a store is loaded from its furthest checkpoint before its first
//! message applies; messages the store already holds are skipped, and a gap
//! past the offset it needs is sought back over (see [`ingest::seek_back`]).

use std::collections::BTreeSet;

use aggregator::Source;
use exporter::Checkpoint;
use ingest::Gap;
use tracing::{debug, info, warn};

use super::consume::Ingest;
use super::PipelineError;
use crate::stores::{Arrival, Loaded, Slot};

/// How long a revoked partition's store is kept in case the rebalance gives
/// the partition back (eager rebalancing revokes every partition, then
/// assigns them again, within seconds).
pub(super) const PARKED_MAX_AGE_MS: u64 = 60_000;

impl Ingest {
    /// Reads the assignment and makes the stores and clocks follow it:
    /// stores of partitions gone to another owner are parked (it restores
    /// them from the checkpoint), new ones queued to load before the next
    /// advance, and newly assigned partitions resumed.
    pub(super) fn apply_assignment(&mut self) {
        let assigned = match self.input.assignment() {
            Ok(assigned) => assigned,
            Err(error) => return warn!(%error, "cannot read the assignment"),
        };
        self.metrics.partitions_assigned.set(assigned.len() as i64);
        let inputs = assigned.iter().any(|s| !ingest::Topology::is_facts(*s));
        self.health.set_consumer_ok(inputs);
        let slots: BTreeSet<Slot> = assigned.iter().map(|s| Slot::of(*s)).collect();
        for slot in self.stores.slots() {
            if !slots.contains(&slot) {
                info!(
                    store = slot.kind.as_str(),
                    partition = slot.partition,
                    "partition revoked: store parked"
                );
                let now = self.now_ms();
                self.stores.park(slot, now);
                self.next.retain(|s, _| Slot::of(*s) != slot);
            }
        }
        self.to_load.retain(|slot| slots.contains(slot));
        for slot in slots {
            if !self.stores.holds(slot) {
                self.to_load.insert(slot);
            }
        }
        let now = self.now_ms();
        let new = self.clocks.assign(&assigned, now);
        self.input.assigned(&assigned, &new);
    }

    /// Loads the stores queued by the assignment.
    pub(super) async fn load_assigned(&mut self) {
        while let Some(slot) = self.to_load.pop_first() {
            if !self.stores.holds(slot) {
                self.load(slot, None).await;
            }
        }
    }

    /// Whether the message at `offset` of `source` is to be applied: loads
    /// the partition's store first if it is not held, skips what the store
    /// already holds (re-deliveries after a restore or a rebalance), and
    /// after a gap takes over a further checkpoint another owner left, or
    /// seeks back.
    pub(super) async fn admit(
        &mut self,
        source: Source,
        offset: i64,
        read_epoch: u64,
    ) -> Result<bool, PipelineError> {
        let slot = Slot::of(source);
        if !self.stores.holds(slot) {
            self.load(slot, None).await;
        }
        let mut arrival = self.stores.arrival(source, offset);
        if arrival == Arrival::Gap && !self.input.seeking(source) {
            self.load(slot, Some((source, offset))).await;
            arrival = self.stores.arrival(source, offset);
        }
        match arrival {
            Arrival::Next | Arrival::Applied => {
                self.input.in_order(source);
                Ok(arrival == Arrival::Next)
            }
            Arrival::Gap => Ok(self.past_gap(source, offset, read_epoch)),
        }
    }

    /// A gap no checkpoint covers: seek back, or read past a hole (counted
    /// and logged). Returns whether to apply the message at `offset`.
    fn past_gap(&mut self, source: Source, offset: i64, read_epoch: u64) -> bool {
        let expected = self.stores.next_of(source).unwrap_or(0);
        match self.input.past_gap(source, offset, expected, read_epoch) {
            Gap::Drop | Gap::Seek(_) => false,
            Gap::Hole => {
                warn!(
                    ?source,
                    offset, expected, "offset gap: messages before this one are not in the state"
                );
                self.metrics.offset_gaps.inc();
                self.stores.skip_to(source, offset);
                true
            }
        }
    }

    /// Loads `slot` from its furthest checkpoint. With `ahead_of` (a source
    /// and the offset that arrived past a gap), only a checkpoint further
    /// along that source than the store replaces it (the partition was
    /// moved on by another owner).
    async fn load(&mut self, slot: Slot, ahead_of: Option<(Source, i64)>) {
        let checkpoint = self.read_checkpoint(slot).await;
        if let Some((source, offset)) = ahead_of {
            let topic = self.input.topology().topic(source);
            let saved = checkpoint.as_ref().zip(topic);
            let further = saved
                .and_then(|(c, t)| c.offsets.get(t).copied())
                .is_some_and(|o| o > self.stores.next_of(source).unwrap_or(i64::MIN));
            if !further {
                debug!(?source, offset, "offset gap without a further checkpoint");
                return;
            }
        }
        // A partition given back after a rebalance took it away: the store
        // parked at the revocation goes on where it was, unless another
        // owner saved it further meanwhile. Nothing is read twice.
        let topology = self.input.topology();
        let kept = ahead_of.is_none() && self.stores.unpark(slot, checkpoint.as_ref(), topology);
        let loaded = if kept {
            Loaded::Kept
        } else {
            self.stores.load(slot, checkpoint.as_ref(), topology)
        };
        self.resume_where_loaded(slot, &loaded);
        self.count_loaded(slot, &loaded, checkpoint.as_ref());
    }

    /// The furthest checkpoint of `slot`, retried while ClickHouse cannot
    /// answer (a fresh store instead would count the replay twice).
    async fn read_checkpoint(&mut self, slot: Slot) -> Option<Checkpoint> {
        let s = &self.settings.clickhouse;
        let mut backoff = contract::Backoff::from_millis(s.retry_initial_ms, s.retry_max_ms);
        let store = slot.kind.as_str();
        loop {
            match self.checkpoints.load(store, slot.partition).await {
                Ok(c) => {
                    self.health.set_sink_ok(true);
                    return c;
                }
                Err(error) => {
                    let wait = backoff.next_wait();
                    let retry_in_ms = wait.as_millis() as u64;
                    warn!(store, partition = slot.partition, %error, retry_in_ms, "cannot read the checkpoint");
                    self.health.set_sink_ok(false);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// The position and the watermark resume where the store was: a
    /// restored (or kept) partition with nothing new to read is caught up
    /// (and may go idle), not behind.
    fn resume_where_loaded(&mut self, slot: Slot, loaded: &Loaded) {
        if matches!(loaded, Loaded::Restored | Loaded::Kept) {
            for source in self.stores.sources(slot) {
                if let Some(next) = self.stores.next_of(source) {
                    let position = self.next.entry(source).or_insert(next);
                    *position = (*position).max(next);
                }
            }
        }
        let now = self.now_ms();
        for (source, ts) in self.stores.event_times(slot) {
            self.clocks.of(source).observe(source, Some(ts), now);
        }
    }

    fn count_loaded(&self, slot: Slot, loaded: &Loaded, checkpoint: Option<&Checkpoint>) {
        let (store, partition) = (slot.kind.as_str(), slot.partition);
        let result = match loaded {
            Loaded::Kept => {
                info!(
                    store,
                    partition, "partition back after the rebalance: store kept"
                );
                "kept"
            }
            Loaded::Restored => {
                let offsets = checkpoint.map(|c| &c.offsets);
                info!(
                    store,
                    partition,
                    ?offsets,
                    "store restored from its checkpoint"
                );
                "restored"
            }
            Loaded::Fresh => {
                debug!(store, partition, "no checkpoint: fresh store");
                "fresh"
            }
            Loaded::Refused(why) => {
                warn!(store, partition, %why, "checkpoint not usable: fresh store from the committed offsets");
                "refused"
            }
        };
        self.metrics
            .stores_loaded
            .with_label_values(&[result])
            .inc();
    }
}
