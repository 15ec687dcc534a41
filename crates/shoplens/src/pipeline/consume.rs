//! The consume loop: reads each message, decodes it (or dead-letters it
//! with its reason) and pushes it into its partition's store; on every tick
//! (or after `pipeline.max_batch_events`) it steps the stores (see
//! [`super::step`]), and it commits what the writer acknowledges.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::{Accepted, CustomerFact, Position, Rejected, Source};
use contract::internal::FactMessage;
use contract::{Decoder, Reason};
use exporter::{CheckpointStore, Health, Metrics};
use ingest::{build_producer, CommitMode, DeadLetter, KafkaInput, Rejection, Topology};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::batch::{Ack, Batch};
use super::bounded::Bounded;
use super::clocks::Clocks;
use super::read_ahead::{self, Delivery, Message, Read, ReadBatch};
use super::PipelineError;
use crate::checkpoint_pace::Pace;
use crate::phases::{Phase, Phases};
use crate::settings::Settings;
use crate::stores::{Slot, Stores};

/// The consume side of the pipeline: its input, its stores and clocks.
pub(super) struct Ingest {
    pub(super) settings: Settings,
    pub(super) input: KafkaInput,
    pub(super) dead_letter: DeadLetter,
    pub(super) decoder: Decoder,
    /// The state, one store per partition (aggregators and customer books).
    pub(super) stores: Stores,
    /// Where the stores' checkpoints are read from.
    pub(super) checkpoints: CheckpointStore,
    /// Stores of newly assigned partitions, to load before the next advance.
    pub(super) to_load: BTreeSet<Slot>,
    pub(super) pace: Pace,
    pub(super) clocks: Clocks,
    pub(super) metrics: Arc<Metrics>,
    pub(super) health: Arc<Health>,
    /// Next offset to read, per source.
    pub(super) next: BTreeMap<Source, i64>,
    /// Notices partitions whose input is nearly all rejected.
    pub(super) reject_rate: ingest::RejectRate,
    /// A bounded run's progress (`run --until-end`).
    pub(super) bounded: Option<Bounded>,
    /// Erasure requests arriving, and jobs for the writer.
    pub(super) erasure: super::erasure::Erasure,
    clock: Instant,
    /// Messages read since the last step.
    pub(super) since_step: usize,
    /// Notices a backlog read to its end (its last rows go out at once).
    pub(super) catch_up: super::catch_up::CatchUp,
    /// Dedup evictions already counted.
    pub(super) evicted_seen: u64,
    /// Where the task's wall time goes.
    pub(super) phases: Phases,
    /// Per-message counters, resolved once.
    counters: InputCounters,
}

/// The per-message counters of each input stream (by stream index),
/// resolved from their labels once rather than per message.
struct InputCounters {
    consumed: [prometheus::IntCounter; 3],
    reread: [prometheus::IntCounter; 3],
}

impl InputCounters {
    fn new(metrics: &Metrics) -> Self {
        use contract::Stream;
        let streams = [Stream::Clickstream, Stream::Orders, Stream::Spend];
        let of =
            |vec: &prometheus::IntCounterVec| streams.map(|s| vec.with_label_values(&[s.as_str()]));
        InputCounters {
            consumed: of(&metrics.events_consumed),
            reread: of(&metrics.events_reread),
        }
    }
}

impl Ingest {
    /// Joins the consumer group and subscribes (see
    /// [`KafkaInput::connect`]); the stores load as partitions arrive.
    pub(super) async fn connect(
        settings: Settings,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        until_end: bool,
        erasure: super::erasure::Erasure,
    ) -> Result<Self, PipelineError> {
        let topology = Topology::new(&settings.kafka.topics);
        let overlap = settings.pipeline.resume_overlap_messages;
        let input = KafkaInput::connect(&settings.kafka, topology, overlap).await?;
        let dead_letter = DeadLetter::new(
            build_producer(&settings.kafka)?,
            settings.kafka.topics.dead_letter.clone(),
        );
        let aggregator = &settings.aggregator;
        let stores = Stores::new(
            aggregator.clone(),
            30 * 86_400_000,
            &aggregator.reporting_currency,
            aggregator.max_customers,
        );
        let input_partitions = input.partition_count(&settings.kafka.topics.clickstream)?;
        Ok(Ingest {
            input,
            dead_letter,
            decoder: Decoder::new(settings.decode_options()?),
            stores,
            checkpoints: CheckpointStore::new(&settings.clickhouse, &settings.kafka.group_id),
            to_load: BTreeSet::new(),
            pace: Pace::new(&settings.pipeline),
            clocks: Clocks::new(&settings.watermark, input_partitions),
            phases: Phases::new(&metrics),
            counters: InputCounters::new(&metrics),
            metrics,
            health,
            next: BTreeMap::new(),
            reject_rate: ingest::RejectRate::default(),
            bounded: until_end.then(Bounded::new),
            erasure,
            clock: Instant::now(),
            since_step: 0,
            catch_up: super::catch_up::CatchUp::new(
                settings.pipeline.max_batch_events,
                Duration::from_millis(settings.pipeline.write_linger_ms),
            ),
            evicted_seen: 0,
            settings,
        })
    }

    pub(super) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(super) fn input(&self) -> &KafkaInput {
        &self.input
    }

    /// Milliseconds since the loop began: the watermarks' idle clock.
    pub(super) fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// [`Ingest::now_ms`] as of the last phase charged (the message's
    /// arrival), without reading the clock again: a message costs the two
    /// clock reads of its phases and no more.
    fn arrival_ms(&self) -> u64 {
        let at = self.phases.mark().saturating_duration_since(self.clock);
        at.as_millis() as u64
    }

    /// The loop, until `stop` or an error; then a last step, the writer
    /// drained and what it acknowledged committed.
    pub(super) async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        batches: mpsc::Sender<Batch>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        writer: JoinHandle<()>,
    ) -> Result<(), PipelineError> {
        let tick_ms = self.settings.pipeline.tick_ms.max(10);
        let mut tick = tokio::time::interval(Duration::from_millis(tick_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(group = %self.settings.kafka.group_id, "consuming");
        let mut reads = read_ahead::start(self.input.messages(), self.decoder.clone())
            .map_err(|e| PipelineError::Task(format!("cannot start the read-ahead thread: {e}")))?;
        let result = loop {
            let stepped = tokio::select! {
                biased;
                _ = stop.changed() => break Ok(()),
                Some(ack) = acks.recv() => {
                    self.phases.charge(Phase::Fetch);
                    self.acknowledged(ack, CommitMode::Async);
                    Ok(false)
                }
                _ = tick.tick() => {
                    self.phases.charge(Phase::Fetch);
                    match self.step(&batches, false).await {
                        Ok(()) => self.bounded_progress(&batches).await,
                        Err(e) => Err(e),
                    }
                }
                delivery = reads.recv() => {
                    self.phases.charge(Phase::Fetch);
                    match delivery {
                        Some(d) => self.received(d, &batches).await.map(|batch| {
                            batch.into_iter().for_each(|b| reads.recycle(b));
                            false
                        }),
                        None => Err(PipelineError::Task("the read-ahead thread ended".into())),
                    }
                }
            };
            self.phases.charge(Phase::Handle);
            match stepped {
                Ok(false) => {}
                Ok(true) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        // The read-ahead stage shares the consumer: end it before the stop
        // so that the consumer closes with the pipeline.
        reads.stop().await;
        self.shut_down(result.is_ok(), batches, acks, writer)
            .await?;
        result
    }

    /// Messages read ahead, or a consumer error; a step whenever enough
    /// were read. Returns the batch, emptied, to be filled again.
    async fn received(
        &mut self,
        delivery: Delivery,
        batches: &mpsc::Sender<Batch>,
    ) -> Result<Option<ReadBatch>, PipelineError> {
        match delivery {
            Ok(mut batch) => {
                let mut reads = batch.take();
                for r in reads.drain(..) {
                    self.handle(&batch, r).await?;
                    if self.since_step >= self.settings.pipeline.max_batch_events {
                        self.step(batches, false).await?;
                    }
                }
                batch.put_back(reads);
                return Ok(Some(batch));
            }
            Err(error) => {
                warn!(%error, "kafka consumer error");
                // Ends of logs cached before it may be stale when the
                // connection comes back.
                let assigned = self.clocks.sources();
                self.input.consumer_error(assigned);
            }
        }
        Ok(None)
    }

    /// Flushes what is closed (after a clean stop), waits for the writer
    /// and commits what it acknowledged, within the shutdown timeout.
    async fn shut_down(
        &mut self,
        clean: bool,
        batches: mpsc::Sender<Batch>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        writer: JoinHandle<()>,
    ) -> Result<(), PipelineError> {
        let deadline = Duration::from_millis(self.settings.pipeline.shutdown_timeout_ms);
        let flushed = tokio::time::timeout(deadline, async {
            if clean {
                self.step(&batches, true).await?;
            }
            drop(batches);
            let _ = writer.await;
            while let Some(ack) = acks.recv().await {
                self.acknowledged(ack, CommitMode::Sync);
            }
            Ok::<(), PipelineError>(())
        })
        .await;
        match flushed {
            Ok(r) => r?,
            Err(_) => warn!("shutdown timed out; uncommitted work will be replayed"),
        }
        self.health.set_consumer_ok(false);
        info!("stopped");
        Ok(())
    }

    /// Where `m` goes: its store, once it is the next offset that store
    /// needs. `None` for messages to skip: a re-read, or one of a partition
    /// revoked since the read-ahead stage read it.
    async fn admitted(
        &mut self,
        source: Source,
        offset: i64,
        read_epoch: u64,
    ) -> Result<Option<Source>, PipelineError> {
        if !self.clocks.is_assigned(source) {
            // A partition not seen assigned: learn the whole assignment
            // before this partition alone can move the watermark (the step
            // reads it after every other rebalance).
            self.apply_assignment();
            if !self.clocks.is_assigned(source) {
                // Read ahead before a rebalance took its partition away:
                // its new owner reads it. Applying it here would load the
                // store again, and write and commit for a partition this
                // instance no longer owns.
                debug!(?source, offset, "message of a revoked partition dropped");
                return Ok(None);
            }
        }
        self.next.insert(source, offset + 1);
        Ok(self
            .admit(source, offset, read_epoch)
            .await?
            .then_some(source))
    }

    async fn handle(&mut self, batch: &ReadBatch, mut r: Read) -> Result<(), PipelineError> {
        let decoded = r.decoded.take();
        let m = &batch.message(&r);
        // Only input streams' messages are decoded ahead.
        let Some(decoded) = decoded else {
            return self.handle_fact(r.source, m, r.read_epoch).await;
        };
        self.since_step += 1;
        let counter = usize::from(r.source.stream);
        let Some(source) = self.admitted(r.source, m.offset, r.read_epoch).await? else {
            self.counters.reread[counter].inc();
            return Ok(());
        };
        self.counters.consumed[counter].inc();
        let now = self.arrival_ms();
        match decoded {
            Err(invalid) => {
                match invalid.event_ms {
                    Some(event_ms) => self.saw_time(source, event_ms, now),
                    None => self.clocks.events.observe_untimed(source, now),
                }
                self.watch_rejections(source, Some((invalid.reason, invalid.field)));
                debug!(reason = %invalid.reason, ?source, offset = m.offset, "invalid event");
                self.reject(m, invalid.reason, invalid.field, &invalid.detail)
                    .await?;
            }
            Ok(event) => self.push(m, source, event, now).await?,
        }
        self.stores.applied(source, m.offset);
        Ok(())
    }

    /// Pushes a decoded event into its store; dead-letters it if late.
    async fn push(
        &mut self,
        m: &Message<'_>,
        source: Source,
        event: Box<contract::Event>,
        now: u64,
    ) -> Result<(), PipelineError> {
        // First: a forgotten person's event moves no clock either, as if
        // it had never been sent.
        if self.stores.drops_event(Slot::of(source), &event) {
            self.metrics.events_forgotten.inc();
            return Ok(());
        }
        let event_ms = event.timestamp_ms;
        self.saw_time(source, event_ms, now);
        let Some(aggregator) = self.stores.aggregator(Slot::of(source)) else {
            return Ok(());
        };
        let offset = m.offset;
        let pushed = aggregator.push(event, Position { source, offset });
        let late = matches!(pushed, Err(Rejected::Late { .. }));
        let why = late.then_some((Reason::Late, Some("timestamp")));
        self.watch_rejections(source, why);
        match pushed {
            Ok(Accepted::Buffered) => Ok(()),
            Ok(Accepted::Bot) => {
                self.metrics.events_bot.inc();
                Ok(())
            }
            Err(Rejected::Duplicate) => {
                self.metrics.events_duplicate.inc();
                Ok(())
            }
            Err(Rejected::Late { watermark_ms }) => {
                debug!(?source, offset, event_ms, watermark_ms, "late event");
                let detail =
                    format!("event time {event_ms} ms is before the watermark {watermark_ms} ms");
                self.reject(m, Reason::Late, Some("timestamp"), &detail)
                    .await
            }
        }
    }

    /// `source` delivered a message of event time `event_ms` (accepted or
    /// not, late or not): its partition's clock, its store's and a bounded
    /// run's latest time move with it.
    fn saw_time(&mut self, source: Source, event_ms: i64, now: u64) {
        if let Some(b) = &mut self.bounded {
            b.max_event_ms = b.max_event_ms.max(event_ms);
        }
        self.clocks.events.observe(source, Some(event_ms), now);
        self.stores.saw_event_time(source, event_ms);
    }

    /// A message of the customer-facts topic: a watermark marker moves the
    /// customer clock; a fact goes to its partition's customer book.
    async fn handle_fact(
        &mut self,
        source: Source,
        m: &Message<'_>,
        read_epoch: u64,
    ) -> Result<(), PipelineError> {
        let Some(source) = self.admitted(source, m.offset, read_epoch).await? else {
            return Ok(());
        };
        self.stores.applied(source, m.offset);
        // The customer side's clock is the partitions' markers, not the
        // facts' own event times.
        let now = self.arrival_ms();
        self.clocks.facts.observe(source, None, now);
        let fact = match contract::internal::decode_message(m.payload) {
            Some(FactMessage::Marker(marker)) => {
                let (partition, ms) = (marker.partition, marker.watermark_ms);
                self.clocks.marked(source.partition, partition, ms);
                return Ok(());
            }
            Some(FactMessage::Fact(wire)) => CustomerFact::from_wire(wire),
            None => None,
        };
        let Some(fact) = fact else {
            warn!(
                partition = source.partition,
                offset = m.offset,
                "unreadable customer fact"
            );
            let detail = "not a customer fact of this version";
            return self.reject(m, Reason::NotJson, None, detail).await;
        };
        if self.stores.drops_fact(&fact) {
            self.metrics.events_forgotten.inc();
            return Ok(());
        }
        let ts = fact.ts_ms;
        let Some(book) = self.stores.book(source.partition) else {
            return Ok(());
        };
        if let Err(watermark_ms) = book.push(fact, source.partition) {
            let detail = format!(
                "customer fact at {ts} ms is before the customer watermark {watermark_ms} ms"
            );
            self.reject(m, Reason::Late, Some("ts_ms"), &detail).await?;
        }
        Ok(())
    }

    /// Counts one message of `source` as accepted or rejected, and logs an
    /// error naming the reason, the field and the setting to look at when
    /// nearly a whole block of the partition was rejected.
    fn watch_rejections(
        &mut self,
        source: Source,
        rejected: Option<(Reason, Option<&'static str>)>,
    ) {
        if let Some(a) = self.reject_rate.record(source, rejected) {
            error!(
                topic = self.input.topology().topic(source).unwrap_or_default(),
                partition = source.partition,
                rejected = a.rejected,
                of = ingest::reject_rate::BLOCK,
                reason = %a.reason,
                field = a.field.unwrap_or("-"),
                look_at = a.look_at,
                "nearly every message of this partition is dead-lettered"
            );
        }
    }

    /// Dead-letters `m` unchanged with `reason` and counts it.
    async fn reject(
        &mut self,
        m: &Message<'_>,
        reason: Reason,
        field: Option<&str>,
        detail: &str,
    ) -> Result<(), PipelineError> {
        self.metrics
            .events_invalid
            .with_label_values(&[reason.as_str()])
            .inc();
        let why = Rejection {
            reason: reason.as_str(),
            field,
            detail,
            topic: self.input.topology().topic(m.source).unwrap_or_default(),
            partition: m.source.partition,
            offset: m.offset,
        };
        Ok(self.dead_letter.send(m.key, Some(m.payload), why).await?)
    }
}
