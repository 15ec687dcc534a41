//! One step of the consume loop, on every tick: the stores follow the
//! assignment, advance to the watermark (holding partitions that run ahead
//! of it), the customer books to their markers, and the closed rows go to
//! the writer with a checkpoint when one is due and the offsets it allows to
//! commit (see docs/architecture.md, "When offsets move").

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aggregator::{Aggregator, CustomerBook, CustomerOutput, Output, Source};
use exporter::Checkpoint;
use ingest::{CommitMode, Feed};
use tokio::sync::mpsc;
use tracing::debug;

use super::batch::{Ack, Batch};
use super::consume::Ingest;
use super::load::PARKED_MAX_AGE_MS;
use super::PipelineError;
use crate::phases::Phase;
use crate::stores::Slot;

impl Ingest {
    /// Advances every store to the watermark and hands the closed rows to
    /// the writer, with a checkpoint of every store when one is due (or
    /// `force`d at shutdown) and the offsets it allows to commit.
    pub(super) async fn step(
        &mut self,
        batches: &mpsc::Sender<Batch>,
        force: bool,
    ) -> Result<(), PipelineError> {
        self.metrics.batch_events.observe(self.since_step as f64);
        self.since_step = 0;
        if self.input.rebalanced() {
            self.apply_assignment();
        }
        self.load_assigned().await;
        self.take_erasures();
        let now = self.now_ms();
        self.stores.expire_parked(now, PARKED_MAX_AGE_MS);
        let lag = self.observe_log_ends(now);
        let prompt = self.catch_up.observe(lag, Duration::from_millis(now));
        self.watch_stalls(now);
        let (mut out, watermark) = self.advance_stores(now);
        let mut customers = self.advance_customers();
        self.withhold(&mut out, &mut customers);
        self.phases.charge(Phase::Advance);
        // Dead letters must be durable before the offsets behind them move.
        self.dead_letter.flush().await?;
        self.phases.charge(Phase::DeadLetters);
        // A drained bounded run's stores stand past every deadline: nothing
        // is saved, and the customer books stop at the end of its input.
        let drained = self.bounded.as_ref().filter(|b| b.drained());
        let drained = drained.map(|b| b.end_ms);
        // The end of a backlog is checkpointed at once (see super::catch_up).
        let due = self.pace.due(force) || self.catch_up.ended();
        let (checkpoints, commits) = if due && drained.is_none() {
            self.checkpoint()
        } else {
            (Vec::new(), Vec::new())
        };
        self.publish_gauges(watermark);
        let customers_empty = customers.rows() == 0;
        let erasures = std::mem::take(&mut self.erasure.jobs);
        if out.is_empty() && customers_empty && checkpoints.is_empty() && erasures.is_empty() {
            return Ok(());
        }
        debug!(
            watermark,
            sessions = out.sessions.len(),
            windows = out.session_windows.len(),
            carts = out.carts.len(),
            "flushing"
        );
        let mut marks = self.stores.event_watermarks();
        if let Some(end_ms) = drained {
            marks.iter_mut().for_each(|m| m.1 = m.1.min(end_ms));
        }
        let batch = Batch {
            outs: vec![out],
            customers,
            commits,
            checkpoints,
            marks,
            closed_at: Instant::now(),
            handed: 1,
            erasures,
            prompt,
        };
        self.send_batch(batches, batch).await
    }

    /// Advances each events store to its watermark, and pauses partitions
    /// that run ahead of the pipeline's (resuming those caught up). Each
    /// store follows its own partitions, so a partition that moves here
    /// from an instance that fell behind is not judged by this instance's
    /// clock; a store whose partitions are all idle follows the pipeline's
    /// watermark. Returns the rows and the pipeline's watermark.
    fn advance_stores(&mut self, now: u64) -> (Output, i64) {
        let watermark = self.clocks.events.watermark(now);
        let tracker = &self.clocks.events;
        let out = self.stores.advance(|slot| {
            match tracker.group(|source| Slot::of(source) == slot, now) {
                ingest::Group::Active(w) => Some(w),
                ingest::Group::Unknown => None,
                ingest::Group::Idle => Some(watermark),
            }
        });
        // What alignment bounds: events ahead of their store's watermark,
        // and customer facts ahead of the books'.
        let events: usize = self
            .stores
            .aggregators()
            .map(Aggregator::buffered_events)
            .sum();
        let facts: usize = self.stores.books().map(CustomerBook::pending_facts).sum();
        let align = self.clocks.events.align(now, events + facts);
        if !align.pause.is_empty() {
            debug!(watermark, partitions = ?align.pause, "pausing partitions ahead of the watermark");
            self.input.pause(&align.pause);
        }
        if !align.resume.is_empty() {
            debug!(partitions = ?align.resume, "resuming partitions");
            self.input.resume(&align.resume);
            self.seek_resumed(&align.resume);
            self.ask_resumed_ends(&align.resume);
        }
        (out, watermark)
    }

    /// Resumed partitions start where the broker skipped part of a batch
    /// before (see [`ingest::KafkaInput::seek_on_resume`]), counted as seeks.
    fn seek_resumed(&mut self, resumed: &[Source]) {
        for &source in resumed {
            let expected = self.stores.next_of(source).or(self.position(source));
            if let Some(expected) = expected {
                if self.input.seek_on_resume(source, expected) {
                    self.metrics.resume_seeks.inc();
                }
            }
        }
    }

    /// The tracker holds resumed partitions until it is known whether
    /// anything waits in them. One paused with unread messages has them
    /// still: the next look at the ends says so. One paused at the end of
    /// its log is asked of the broker at once, since its end was not
    /// fetched while paused. Only those: a ListOffsets request waits in
    /// line with the fetches on the broker's connection, and one asked for
    /// a partition with a backlog would tell nothing new.
    fn ask_resumed_ends(&mut self, resumed: &[Source]) {
        let caught_up: Vec<Source> = resumed
            .iter()
            .copied()
            .filter(|&s| !ingest::may_have_backlog(self.input.end_of_log(s), self.position(s)))
            .collect();
        if !caught_up.is_empty() {
            self.input.log_ends().ask_soon(caught_up);
        }
    }

    /// Advances each customer book to the lowest watermark every input
    /// partition marked (see [`super::clocks::Clocks::customer_watermark`]).
    fn advance_customers(&mut self) -> CustomerOutput {
        let clocks = &self.clocks;
        self.stores
            .advance_customers(|partition| clocks.customer_watermark(partition))
    }

    /// Snapshots of the stores that changed, and the positions they allow
    /// to commit once durable. Offsets move only with a checkpoint: a
    /// restart resumes from the state saved with them, never from a
    /// position the state lacks.
    fn checkpoint(&mut self) -> (Vec<Checkpoint>, Vec<(Source, i64)>) {
        let topology = self.input.topology();
        let checkpoints = self.stores.checkpoints(topology);
        // Only stores that changed are written; their size sets the pace of
        // the next checkpoint.
        let bytes: usize = checkpoints.iter().map(|c| c.state.len()).sum();
        let every = self.pace.taken(bytes);
        self.metrics.checkpoint_interval.set(every.as_secs_f64());
        let saved = checkpoints.iter().flat_map(|c| {
            let offsets = c.offsets.iter();
            offsets.filter_map(|(topic, next)| Some((topology.source(topic, c.partition)?, *next)))
        });
        let overlap = self.settings.pipeline.resume_overlap_messages;
        let stores = &self.stores;
        let commits = ingest::commit_positions(saved, |s| stores.low_water(s), overlap);
        self.phases.charge(Phase::Checkpoint);
        (checkpoints, commits)
    }

    /// The state's gauges: open sessions and carts, buffers, customers,
    /// paused partitions, the watermark.
    fn publish_gauges(&mut self, watermark: i64) {
        let m = &self.metrics;
        let sum =
            |f: fn(&Aggregator) -> usize| self.stores.aggregators().map(f).sum::<usize>() as i64;
        m.sessions_open.set(sum(Aggregator::open_sessions));
        m.carts_open.set(sum(Aggregator::open_carts));
        m.buffered_events.set(sum(Aggregator::buffered_events));
        m.dedup_ids.set(sum(Aggregator::dedup_ids));
        let books = |f: fn(&CustomerBook) -> u64| self.stores.books().map(f).sum::<u64>() as i64;
        m.lapsed_customers.set(books(CustomerBook::lapsed_now));
        m.customers_gaps_clipped
            .set(books(CustomerBook::gaps_clipped));
        m.customer_foreign_currency_facts
            .set(books(CustomerBook::foreign_currency_facts));
        m.orders_remembered
            .set(books(|b| b.orders_remembered() as u64));
        m.order_settlements_unknown
            .set(books(CustomerBook::unknown_settlements));
        m.order_refunds_foreign_currency
            .set(books(CustomerBook::foreign_refunds));
        m.partitions_paused.set(self.clocks.events.paused() as i64);
        if watermark != i64::MIN {
            m.watermark.set(watermark as f64 / 1000.0);
        }
        let evicted: u64 = self
            .stores
            .aggregators()
            .map(|a| a.stats().dedup_evicted_early)
            .sum();
        // A store dropped on a rebalance takes its count along.
        m.dedup_evicted_early
            .inc_by(evicted.saturating_sub(self.evicted_seen));
        self.evicted_seen = evicted;
        self.phases.charge(Phase::Advance);
        self.phases.publish();
    }

    /// Compares each partition's position with the end of its log (as
    /// librdkafka last saw it, or the broker answered): a partition with
    /// unread messages, or whose end of log is not known or not asked
    /// again since an assignment or a consumer error, is starved, not
    /// idle, and the differences are the consumer lag. Returns the input
    /// partitions' lag (customer facts aside), `None` while the end of one
    /// of them is not known.
    pub(super) fn observe_log_ends(&mut self, now: u64) -> Option<i64> {
        let mut lag: BTreeMap<&'static str, i64> = BTreeMap::new();
        let mut input_lag = Some(0);
        self.input.log_ends().poll();
        for source in self.clocks.sources() {
            let Some(feed) = self.input.topology().feed(source) else {
                continue;
            };
            let high = self.input.end_of_log(source);
            let next = self.position(source);
            let pending = self.input.end_pending(source);
            let tracker = self.clocks.of(source);
            if ingest::may_have_backlog(high, next) {
                tracker.has_backlog(source, now);
            } else if pending {
                tracker.end_unknown(source, now);
            } else if high.is_some() {
                // The broker says nothing waits: a partition that never
                // delivered stops holding the watermark now, not after the
                // idle timeout.
                tracker.nothing_to_read(source);
            }
            if let (Some(high), Some(next)) = (high, next) {
                *lag.entry(feed.as_str()).or_default() += (high - next).max(0);
            }
            if let Feed::Input(_) = feed {
                let behind = high.map(|h| (h - next.unwrap_or(0)).max(0));
                input_lag = input_lag.zip(behind).map(|(sum, b)| sum + b);
            }
        }
        // Ends not known since an assignment or a broker error are asked
        // of the broker, every half idle timeout until it answers.
        let every = (self.settings.watermark.idle_timeout_ms / 2).max(50);
        self.input.ask_log_ends(now, every);
        for (kind, messages) in lag {
            let gauge = self.metrics.consumer_lag.with_label_values(&[kind]);
            gauge.set(messages);
        }
        input_lag
    }

    /// Seeks back the partitions whose fetch stalled short of their log's
    /// end (see [`ingest::stall`]). Asked on the steps of the consume loop
    /// only, not while it waits on the writer, when nothing is read;
    /// partitions paused by alignment or by the end of a bounded run are
    /// not fetched, so they cannot stall.
    fn watch_stalls(&mut self, now: u64) {
        let drained = self.bounded.as_ref().is_some_and(|b| b.drained());
        for source in self.clocks.sources() {
            let held = self.stores.next_of(source);
            let position = self.position(source);
            let Some(expected) = held.or(position) else {
                continue;
            };
            let paused = self.clocks.events.is_paused(source)
                || (drained && !ingest::Topology::is_facts(source));
            if self
                .input
                .watch_stall(source, position, expected, !paused, now)
            {
                self.metrics.fetch_stalls.inc();
            }
        }
    }

    /// Where `source` is read to, for its lag, its backlog and its stalls:
    /// the read position, but never past the offset its store needs. Past a
    /// gap the consumer may have read on to the end of the log (messages
    /// fetched before a seek back took effect, dropped unapplied), and a
    /// partition stuck there must still show its backlog and stall (found
    /// on tansu: a run stopped short with a lag of 0 and no gap counted).
    pub(super) fn position(&self, source: Source) -> Option<i64> {
        let read = self.next.get(&source).copied();
        match (read, self.stores.next_of(source)) {
            (Some(read), Some(held)) => Some(read.min(held)),
            (read, held) => read.or(held),
        }
    }

    /// Hands `batch` to the writer, waiting while it is busy.
    pub(super) async fn send_batch(
        &mut self,
        batches: &mpsc::Sender<Batch>,
        batch: Batch,
    ) -> Result<(), PipelineError> {
        let send = batches.send(batch);
        // Blocked here while the writer retries (backpressure): keep the lag
        // gauge current meanwhile, when operators need it most.
        tokio::pin!(send);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                sent = &mut send => {
                    self.phases.charge(Phase::Writer);
                    sent.map_err(|_| PipelineError::Task("writer stopped".into()))?;
                    if let Some(b) = &mut self.bounded {
                        b.in_flight += 1;
                    }
                    return Ok(());
                }
                _ = tick.tick() => {
                    let now = self.now_ms();
                    self.observe_log_ends(now);
                }
            }
        }
    }

    /// The writer made a batch durable: its positions are committed.
    pub(super) fn acknowledged(&mut self, ack: Ack, mode: CommitMode) {
        if let Some(b) = &mut self.bounded {
            b.in_flight = b.in_flight.saturating_sub(ack.handed);
        }
        for (source, _) in self.input.commit(&ack.commits, mode) {
            let feed = self.input.topology().feed(source);
            let label = feed.map_or("unknown", Feed::as_str);
            let counter = self.metrics.offsets_committed.with_label_values(&[label]);
            counter.inc();
        }
    }
}
