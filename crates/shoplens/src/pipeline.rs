//! The running pipeline: Kafka -> ingest -> aggregator -> exporter, wired
//! with a bounded channel so a slow ClickHouse slows consumption.
//!
//! One task consumes, decodes, dead-letters and feeds each partition's store
//! (see [`crate::stores`]); on every tick it advances the stores and hands the
//! closed rows to the writer task, with a checkpoint of every store when one
//! is due. The writer makes the rows durable in ClickHouse, produces triggers,
//! customer facts and the partitions' watermark markers, stores the
//! checkpoints, counts in Prometheus, and acknowledges; only then are the
//! offsets committed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::{
    Accepted, Aggregator, CustomerBook, CustomerOutput, Output, Position, Rejected, Source,
};
use contract::{Decoder, Reason};
use exporter::{Checkpoint, CheckpointStore, ClickHouseSink, Health, Metrics};
use ingest::{
    build_consumer, build_producer, DeadLetter, Outbox, Outgoing, Rejection, Streams,
    WatermarkTracker,
};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

mod bounded;

pub use bounded::DRAIN_WATERMARK_MS;

use crate::log_ends::LogEnds;
use crate::phases::{Phase, Phases};
use crate::settings::{Settings, SettingsError};
use crate::stores::{Arrival, Loaded, Slot, Stores, FACTS};

/// Why the pipeline stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Bad configuration.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Kafka refused.
    #[error(transparent)]
    Kafka(#[from] ingest::KafkaError),
    /// ClickHouse refused.
    #[error(transparent)]
    Sink(#[from] exporter::SinkError),
    /// The metrics endpoint could not listen.
    #[error("http listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A task panicked or was cancelled.
    #[error("task failed: {0}")]
    Task(String),
}

/// How long a revoked partition's store is kept in case the rebalance gives
/// the partition back (eager rebalancing revokes every partition, then
/// assigns them again, within seconds).
const PARKED_MAX_AGE_MS: u64 = 60_000;

/// Rows with the offsets that may be committed once they are durable.
struct Batch {
    out: Output,
    customers: CustomerOutput,
    commits: Vec<(Source, i64)>,
    /// Snapshots of the stores as of this batch, written after its rows.
    checkpoints: Vec<Checkpoint>,
    /// The watermark of each events store (by input partition) after this
    /// batch: every customer fact of an event before it is in this batch or
    /// an earlier one.
    marks: Vec<(i32, i64)>,
    /// When the aggregator closed them (for the result delay).
    closed_at: Instant,
    /// Batches handed to the writer that this one holds (merged writes).
    handed: usize,
}

impl Batch {
    /// Rows this batch inserts into ClickHouse (checkpoints aside).
    fn rows(&self) -> usize {
        let o = &self.out;
        o.sessions.len()
            + o.session_windows.len()
            + o.pages.len()
            + o.products.len()
            + o.orders.len()
            + o.feedback.len()
            + o.carts.len()
            + o.spend.len()
            + self.customers.customers.len()
            + self.customers.days.len()
    }

    /// Appends the batch that followed this one: rows, facts and triggers in
    /// order (re-emitted rows carry higher versions, so one insert holding
    /// both versions keeps the later), the later commit positions, the
    /// latest checkpoint of each store and the latest marker of each
    /// partition. The earlier closing time stays, for the result delay.
    fn absorb(&mut self, next: Batch) {
        self.handed += next.handed;
        self.out.extend(next.out);
        let c = &mut self.customers;
        c.customers.extend(next.customers.customers);
        c.days.extend(next.customers.days);
        c.lapsed.extend(next.customers.lapsed);
        c.new_customers += next.customers.new_customers;
        c.repeat_orders += next.customers.repeat_orders;
        self.commits.extend(next.commits);
        for checkpoint in next.checkpoints {
            self.checkpoints
                .retain(|c| (&c.store, c.partition) != (&checkpoint.store, checkpoint.partition));
            self.checkpoints.push(checkpoint);
        }
        for (partition, watermark_ms) in next.marks {
            match self.marks.iter_mut().find(|(p, _)| *p == partition) {
                Some(mark) => mark.1 = mark.1.max(watermark_ms),
                None => self.marks.push((partition, watermark_ms)),
            }
        }
    }
}

/// What the writer reports once a batch is durable.
struct Ack {
    commits: Vec<(Source, i64)>,
    /// Batches handed to the writer that this write made durable.
    handed: usize,
}

/// A started pipeline.
pub struct Pipeline {
    metrics_addr: SocketAddr,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stop: watch::Sender<bool>,
    consume: JoinHandle<Result<(), PipelineError>>,
    http: JoinHandle<()>,
}

impl Pipeline {
    /// Applies migrations, binds the HTTP endpoint, joins the consumer group
    /// and starts consuming.
    pub async fn start(settings: Settings) -> Result<Pipeline, PipelineError> {
        Self::start_with(settings, false).await
    }

    /// As [`Pipeline::start`], for a bounded run: it reads every input
    /// partition up to the end offsets it finds at start, closes
    /// everything as if time had run out, writes it, and stops by itself
    /// ([`Pipeline::run_until`] then returns).
    pub async fn start_until_end(settings: Settings) -> Result<Pipeline, PipelineError> {
        Self::start_with(settings, true).await
    }

    async fn start_with(settings: Settings, until_end: bool) -> Result<Pipeline, PipelineError> {
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::default());
        let sink =
            ClickHouseSink::new(settings.clickhouse.clone(), metrics.clone(), health.clone());
        let applied = sink.migrate().await?;
        health.set_sink_ok(true);
        info!(?applied, database = %settings.clickhouse.database, "clickhouse schema ready");

        let listener = TcpListener::bind(&settings.http.listen)
            .await
            .map_err(|source| PipelineError::Listen {
                addr: settings.http.listen.clone(),
                source,
            })?;
        let metrics_addr = listener
            .local_addr()
            .map_err(|source| PipelineError::Listen {
                addr: settings.http.listen.clone(),
                source,
            })?;
        let http = tokio::spawn(exporter::serve(listener, metrics.clone(), health.clone()));
        info!(%metrics_addr, "serving /metrics, /livez, /readyz");

        let streams = Streams::new(&settings.kafka.topics);
        let consumer = build_consumer(&settings.kafka)?;
        // Every topic must exist before the subscription, or it goes unread
        // until librdkafka's next metadata refresh: wait a few seconds for
        // topics created a moment ago, then refuse to start.
        let topics = ingest::input_topics(&settings.kafka, &streams);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let brokers = &settings.kafka.brokers;
            let missing = match ingest::missing_topics(&consumer, &topics, brokers) {
                Ok(missing) if missing.is_empty() => break,
                Ok(missing) => ingest::KafkaError::MissingTopics(missing),
                Err(unreachable) => unreachable,
            };
            if Instant::now() >= deadline {
                return Err(missing.into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&names)
            .map_err(ingest::KafkaError::from)?;
        let dead_letter = DeadLetter::new(
            build_producer(&settings.kafka)?,
            settings.kafka.topics.dead_letter.clone(),
        );
        let decoder = Decoder::new(settings.decode_options()?);
        let (stop, stop_rx) = watch::channel(false);
        let (batch_tx, batch_rx) = mpsc::channel(settings.pipeline.max_batches_in_flight.max(1));
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let stages = Aggregator::new(settings.aggregator.clone()).funnel_stages();
        let checkpoints = CheckpointStore::new(&settings.clickhouse, &settings.kafka.group_id);
        let writer = Writer {
            sink,
            group_id: settings.kafka.group_id.clone(),
            metrics: metrics.clone(),
            stages,
            outbox: Outbox::new(build_producer(&settings.kafka)?),
            triggers_topic: settings.kafka.topics.triggers.clone(),
            facts_topic: settings.kafka.topics.customer_facts.clone(),
            facts_partitions: ingest::partition_count(
                &consumer,
                &settings.kafka.topics.customer_facts,
            )?,
            min_rows: settings.pipeline.write_min_rows,
            linger: Duration::from_millis(settings.pipeline.write_linger_ms),
        };
        let writer = tokio::spawn(writer.run(batch_rx, ack_tx));
        let ingest = Ingest {
            rewinds: HashMap::new(),
            stores: Stores::new(
                settings.aggregator.clone(),
                30 * 86_400_000,
                &settings.aggregator.reporting_currency,
                settings.aggregator.max_customers,
            ),
            checkpoints,
            to_load: std::collections::BTreeSet::new(),
            last_checkpoint: Instant::now(),
            checkpoint_every: Duration::from_millis(settings.pipeline.checkpoint_interval_ms),
            tracker: WatermarkTracker::new(settings.watermark.clone()),
            facts_tracker: WatermarkTracker::new(settings.watermark.clone()),
            markers: HashMap::new(),
            input_partitions: ingest::partition_count(
                &consumer,
                &settings.kafka.topics.clickstream,
            )?,
            settings,
            consumer: Arc::new(consumer),
            streams,
            dead_letter,
            decoder,
            metrics: metrics.clone(),
            health: health.clone(),
            next: HashMap::new(),
            reject_rate: ingest::RejectRate::default(),
            committed: HashMap::new(),
            clock: Instant::now(),
            since_step: 0,
            evicted_seen: 0,
            phases: Phases::new(&metrics),
            last_assignment_check: None,
            log_ends: LogEnds::new(),
            bounded: until_end.then(bounded::Bounded::new),
        };
        let consume = tokio::spawn(ingest.run(stop_rx, batch_tx, ack_rx, writer));
        Ok(Pipeline {
            metrics_addr,
            metrics,
            health,
            stop,
            consume,
            http,
        })
    }

    /// The bound address of `/metrics`.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The metrics registry (for in-process summaries).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Readiness as `/readyz` reports it.
    pub fn ready(&self) -> bool {
        self.health.ready()
    }

    /// Runs until `signal` completes (then stops cleanly) or the pipeline
    /// fails by itself.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), PipelineError> {
        tokio::select! {
            _ = signal => self.stop().await,
            joined = &mut self.consume => {
                self.http.abort();
                joined.map_err(|e| PipelineError::Task(e.to_string()))?
            }
        }
    }

    /// Stops: flushes what is closed, writes it, commits, and returns.
    pub async fn stop(self) -> Result<(), PipelineError> {
        let _ = self.stop.send(true);
        let result = self
            .consume
            .await
            .map_err(|e| PipelineError::Task(e.to_string()))?;
        self.http.abort();
        result
    }
}

/// The writer task: makes each batch durable, then acknowledges it.
struct Writer {
    sink: ClickHouseSink,
    group_id: String,
    metrics: Arc<Metrics>,
    stages: Vec<String>,
    /// Triggers, customer facts and markers, each kept until delivered.
    outbox: Outbox,
    triggers_topic: String,
    facts_topic: String,
    /// Partitions of the facts topic (each gets every marker).
    facts_partitions: i32,
    /// Rows at which a write goes out without lingering further.
    min_rows: usize,
    /// How long the first batch of a write may wait for more.
    linger: Duration,
}

impl Writer {
    /// The next write: a batch, and those that follow it within the linger
    /// while the rows are fewer than `min_rows`. Fewer, larger inserts are
    /// what ClickHouse merges cheaply; the rows wait at most the linger.
    /// `None` once the channel is closed and drained.
    async fn next_write(&self, batches: &mut mpsc::Receiver<Batch>) -> Option<Batch> {
        let mut batch = batches.recv().await?;
        let deadline = tokio::time::Instant::now() + self.linger;
        while batch.rows() < self.min_rows {
            match tokio::time::timeout_at(deadline, batches.recv()).await {
                Ok(Some(next)) => batch.absorb(next),
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }

    async fn run(mut self, mut batches: mpsc::Receiver<Batch>, acks: mpsc::UnboundedSender<Ack>) {
        while let Some(batch) = self.next_write(&mut batches).await {
            tokio::join!(
                self.sink.write(&batch.out, &self.stages),
                self.sink.write_customers(&batch.customers),
            );
            let mut triggers: Vec<(String, Vec<u8>)> = batch
                .out
                .triggers
                .iter()
                .map(exporter::triggers::encode)
                .collect();
            triggers.extend(
                batch
                    .customers
                    .lapsed
                    .iter()
                    .map(exporter::triggers::encode_lapsed),
            );
            for (key, payload) in triggers {
                self.send(Outgoing::new(&self.triggers_topic, key, payload))
                    .await;
            }
            for t in &batch.out.triggers {
                self.metrics
                    .triggers
                    .with_label_values(&[exporter::triggers::kind(t)])
                    .inc();
            }
            self.metrics
                .triggers
                .with_label_values(&["lapsed_customer"])
                .inc_by(batch.customers.lapsed.len() as u64);
            for (key, payload) in batch.out.customer_facts.iter().map(exporter::facts::encode) {
                self.send(Outgoing::new(&self.facts_topic, key, payload))
                    .await;
            }
            self.metrics
                .customer_facts
                .inc_by(batch.out.customer_facts.len() as u64);
            // The facts are in Kafka before their markers are sent: a fact
            // sent again after its marker would be late to the customer book.
            self.flush_outbox().await;
            // After the facts, in every facts partition: no fact of an event
            // before each input partition's watermark is still to come.
            for (partition, watermark_ms) in &batch.marks {
                let (key, payload) = exporter::facts::encode_marker(&exporter::facts::Marker {
                    partition: *partition,
                    watermark_ms: *watermark_ms,
                });
                for to in 0..self.facts_partitions.max(1) {
                    let marker = Outgoing::new(&self.facts_topic, key.clone(), payload.clone());
                    self.send(marker.to_partition(to)).await;
                }
            }
            self.flush_outbox().await;
            // The state may be saved only once everything it has emitted is
            // durable: rows, triggers and customer facts.
            self.sink
                .write_checkpoints(&self.group_id, &batch.checkpoints)
                .await;
            if !batch.checkpoints.is_empty() {
                let bytes: usize = batch.checkpoints.iter().map(|c| c.state.len()).sum();
                self.metrics.checkpoint_bytes.set(bytes as i64);
                self.metrics
                    .checkpoints_written
                    .inc_by(batch.checkpoints.len() as u64);
            }
            self.metrics.record(&batch.out, &self.stages);
            self.metrics.record_customers(&batch.customers);
            self.metrics
                .result_delay
                .observe(batch.closed_at.elapsed().as_secs_f64());
            let ack = Ack {
                commits: batch.commits,
                handed: batch.handed,
            };
            if acks.send(ack).is_err() {
                break;
            }
        }
    }

    /// Hands `message` to the producer; the batch's flush waits for it. A
    /// message the producer refuses outright (too large for the broker, say)
    /// can never be delivered: it is logged, not retried forever.
    async fn send(&mut self, message: Outgoing) {
        if let Err(error) = self.outbox.send(message).await {
            error!(%error, "a message the producer refuses was dropped");
        }
    }

    /// Waits until the broker has every message sent so far, sending the
    /// failed ones again (with backoff) until it does.
    async fn flush_outbox(&mut self) {
        if let Err(error) = self.outbox.flush().await {
            error!(%error, "a message the producer refuses was dropped");
        }
    }
}

/// A seek back in progress on one source (see [`Ingest::rewind`]).
struct Rewind {
    /// The first offset that arrived past the gap.
    trigger: i64,
    /// Where the seek went.
    target: i64,
    /// When.
    since: Instant,
}

struct Ingest {
    settings: Settings,
    /// Seeks back in progress, by source.
    rewinds: HashMap<Source, Rewind>,
    consumer: Arc<StreamConsumer>,
    streams: Streams,
    dead_letter: DeadLetter,
    decoder: Decoder,
    /// The state, one store per partition (aggregators and customer books).
    stores: Stores,
    /// Where the stores' checkpoints are read from.
    checkpoints: CheckpointStore,
    /// Stores of newly assigned partitions, to load before the next advance.
    to_load: std::collections::BTreeSet<Slot>,
    last_checkpoint: Instant,
    /// The wait before the next checkpoint (see `checkpoint_pace`).
    checkpoint_every: Duration,
    tracker: WatermarkTracker,
    /// Watermarks of the facts partitions (a separate clock: facts are
    /// produced only after the main watermark passes their events).
    facts_tracker: WatermarkTracker,
    /// The latest watermark marker of each input partition, by facts
    /// partition.
    markers: HashMap<i32, HashMap<i32, i64>>,
    /// Partitions of the input (clickstream and orders) topics.
    input_partitions: i32,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Next offset to read, per source.
    next: HashMap<Source, i64>,
    /// Notices partitions whose input is nearly all rejected.
    reject_rate: ingest::RejectRate,
    /// A bounded run's progress (`run --until-end`).
    bounded: Option<bounded::Bounded>,
    /// Highest commit position sent to Kafka, per source.
    committed: HashMap<Source, i64>,
    clock: Instant,
    since_step: usize,
    evicted_seen: u64,
    last_assignment_check: Option<Instant>,
    /// Ends of partitions' logs asked of the broker (after an assignment or
    /// a consumer error).
    log_ends: LogEnds,
    /// Where the task's wall time goes.
    phases: Phases,
}

impl Ingest {
    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        batches: mpsc::Sender<Batch>,
        mut acks: mpsc::UnboundedReceiver<Ack>,
        writer: JoinHandle<()>,
    ) -> Result<(), PipelineError> {
        let mut tick = tokio::time::interval(Duration::from_millis(
            self.settings.pipeline.tick_ms.max(10),
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(group = %self.settings.kafka.group_id, "consuming");
        let consumer = self.consumer.clone();
        let result = loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break Ok(()),
                Some(ack) = acks.recv() => {
                    self.phases.charge(Phase::Fetch);
                    self.acknowledged(ack, CommitMode::Async);
                    self.phases.charge(Phase::Handle);
                }
                _ = tick.tick() => {
                    self.phases.charge(Phase::Fetch);
                    if let Err(e) = self.step(&batches, false).await {
                        break Err(e);
                    }
                    match self.bounded_progress(&batches).await {
                        Ok(true) => break Ok(()),
                        Ok(false) => {}
                        Err(e) => break Err(e),
                    }
                }
                msg = consumer.recv() => {
                    self.phases.charge(Phase::Fetch);
                    match msg {
                        Ok(m) => {
                            if let Err(e) = self.handle(&m).await {
                                break Err(e);
                            }
                        }
                        Err(error) => {
                            warn!(%error, "kafka consumer error");
                            // Ends of logs cached before it may be stale
                            // when the connection comes back.
                            let assigned = self.tracker.sources();
                            self.log_ends
                                .stale(assigned.into_iter().chain(self.facts_tracker.sources()));
                        }
                    }
                    self.phases.charge(Phase::Handle);
                    if self.since_step >= self.settings.pipeline.max_batch_events {
                        if let Err(e) = self.step(&batches, false).await {
                            break Err(e);
                        }
                    }
                }
            }
        };
        // Flush what is closed, wait for the writer, commit what it acknowledged.
        let deadline = Duration::from_millis(self.settings.pipeline.shutdown_timeout_ms);
        let flushed = tokio::time::timeout(deadline, async {
            if result.is_ok() {
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
        result
    }

    async fn handle(
        &mut self,
        m: &rdkafka::message::BorrowedMessage<'_>,
    ) -> Result<(), PipelineError> {
        if m.topic() == self.settings.kafka.topics.customer_facts {
            return self.handle_fact(m).await;
        }
        let Some((index, stream)) = self.streams.of(m.topic()) else {
            return Ok(());
        };
        let source = Source {
            stream: index,
            partition: m.partition(),
        };
        let offset = m.offset();
        self.next.insert(source, offset + 1);
        self.since_step += 1;
        if !self.tracker.is_assigned(source) {
            // A partition we have not seen assigned: learn the whole assignment
            // before this partition alone can move the watermark.
            self.last_assignment_check = None;
            self.refresh_assignment();
        }
        if !self.admit(source, offset).await? {
            self.metrics
                .events_reread
                .with_label_values(&[stream.as_str()])
                .inc();
            return Ok(());
        }
        self.metrics
            .events_consumed
            .with_label_values(&[stream.as_str()])
            .inc();
        let slot = Slot::of(source);
        let now = self.now_ms();
        let payload = m.payload().unwrap_or_default();
        match self
            .decoder
            .decode(payload, stream, m.timestamp().to_millis())
        {
            Err(invalid) => {
                self.tracker.observe(source, None, now);
                self.watch_rejections(source, m.topic(), Some((invalid.reason, invalid.field)));
                debug!(reason = %invalid.reason, topic = m.topic(), partition = m.partition(), offset, "invalid event");
                self.reject(m, invalid.reason, invalid.field, &invalid.detail)
                    .await?;
            }
            Ok(event) => {
                let event_ms = event.timestamp_ms;
                if let Some(b) = &mut self.bounded {
                    b.max_event_ms = b.max_event_ms.max(event_ms);
                }
                self.tracker.observe(source, Some(event_ms), now);
                self.stores.saw_event_time(source, event_ms);
                let Some(aggregator) = self.stores.aggregator(slot) else {
                    return Ok(());
                };
                let pushed = aggregator.push(event, Position { source, offset });
                let late = matches!(pushed, Err(Rejected::Late { .. }));
                let why = late.then_some((Reason::Late, Some("timestamp")));
                self.watch_rejections(source, m.topic(), why);
                match pushed {
                    Ok(Accepted::Buffered) => {}
                    Ok(Accepted::Bot) => self.metrics.events_bot.inc(),
                    Err(Rejected::Duplicate) => self.metrics.events_duplicate.inc(),
                    Err(Rejected::Late { watermark_ms }) => {
                        debug!(?source, offset, event_ms, watermark_ms, "late event");
                        let detail = format!(
                            "event time {event_ms} ms is before the watermark {watermark_ms} ms"
                        );
                        self.reject(m, Reason::Late, Some("timestamp"), &detail)
                            .await?;
                    }
                }
            }
        }
        self.stores.applied(source, offset);
        Ok(())
    }

    /// Whether the message at `offset` of `source` is to be applied: loads
    /// the partition's store first if it is not held, skips what the store
    /// already holds (re-deliveries after a restore or a rebalance), and
    /// after a gap takes over a further checkpoint another owner left.
    async fn admit(&mut self, source: Source, offset: i64) -> Result<bool, PipelineError> {
        let slot = Slot::of(source);
        if !self.stores.holds(slot) {
            self.load(slot, None).await;
        }
        let mut arrival = self.stores.arrival(source, offset);
        if arrival == Arrival::Gap && !self.rewinds.contains_key(&source) {
            self.load(slot, Some((source, offset))).await;
            arrival = self.stores.arrival(source, offset);
        }
        match arrival {
            Arrival::Next | Arrival::Applied => {
                self.rewinds.remove(&source);
                Ok(arrival == Arrival::Next)
            }
            Arrival::Gap => Ok(self.rewind(source, offset)),
        }
    }

    /// Past a gap no checkpoint covers: the fetch went on after the offset
    /// the store needs. Kafka answers a fetch with the whole record batch
    /// holding the offset asked for (the client drops the records before
    /// it); a broker that starts at the next batch instead (tansu 0.6, after
    /// a pause or a rebalance) skips the rest of that batch. So seek back by
    /// the resume overlap, further each time the fetch still starts past the
    /// offset needed, and skip what the store holds. A gap that remains from
    /// the log start, or a seek that does not take effect within 10 s, is a
    /// hole: counted, logged, and read past. Returns whether to apply the
    /// message at `offset`.
    fn rewind(&mut self, source: Source, offset: i64) -> bool {
        let expected = self.stores.next_of(source).unwrap_or(0);
        let step = self.settings.pipeline.resume_overlap_messages.max(1);
        let target = match self.rewinds.get(&source) {
            // Fetched before the seek took effect.
            Some(r) if offset > r.trigger && r.since.elapsed() < Duration::from_secs(10) => {
                return false;
            }
            Some(r) if r.target == 0 || offset > r.trigger => None,
            Some(r) => Some((r.target - step * 4).max(0)),
            None => Some((expected - step).max(0)),
        };
        let topic = self.topic_of(source).map(str::to_string);
        let seek = |target: i64| {
            let topic = topic.as_deref()?;
            self.consumer
                .seek(
                    topic,
                    source.partition,
                    Offset::Offset(target),
                    Duration::from_secs(1),
                )
                .ok()
        };
        match target.and_then(|t| seek(t).map(|()| t)) {
            Some(target) => {
                info!(
                    ?source,
                    offset, expected, target, "fetch resumed past the offset needed: seeking back"
                );
                self.rewinds.insert(
                    source,
                    Rewind {
                        trigger: offset,
                        target,
                        since: Instant::now(),
                    },
                );
                false
            }
            None => {
                warn!(
                    ?source,
                    offset, expected, "offset gap: messages before this one are not in the state"
                );
                self.metrics.offset_gaps.inc();
                self.rewinds.remove(&source);
                self.stores.skip_to(source, offset);
                true
            }
        }
    }

    /// The source a checkpoint's topic names, in `partition`.
    fn source_of(&self, topic: &str, partition: i32) -> Option<Source> {
        if topic == self.settings.kafka.topics.customer_facts {
            return Some(Source {
                stream: FACTS,
                partition,
            });
        }
        self.streams
            .of(topic)
            .map(|(stream, _)| Source { stream, partition })
    }

    /// Loads `slot` from its furthest checkpoint, retrying while ClickHouse
    /// cannot answer (a fresh store instead would count the replay twice).
    /// With `ahead_of` (a source and the offset that arrived past a gap),
    /// only a checkpoint further along that source than the store replaces
    /// it (the partition was moved on by another owner).
    async fn load(&mut self, slot: Slot, ahead_of: Option<(Source, i64)>) {
        let mut delay = Duration::from_millis(self.settings.clickhouse.retry_initial_ms.max(1));
        let max = Duration::from_millis(self.settings.clickhouse.retry_max_ms.max(1));
        let checkpoint = loop {
            match self
                .checkpoints
                .load(slot.kind.as_str(), slot.partition)
                .await
            {
                Ok(c) => break c,
                Err(error) => {
                    warn!(store = slot.kind.as_str(), partition = slot.partition, %error, retry_in_ms = delay.as_millis() as u64, "cannot read the checkpoint");
                    self.health.set_sink_ok(false);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(max);
                }
            }
        };
        self.health.set_sink_ok(true);
        if let Some((source, offset)) = ahead_of {
            let topic = self.topic_of(source).map(str::to_string);
            let further = checkpoint
                .as_ref()
                .zip(topic)
                .and_then(|(c, t)| c.offsets.get(&t).copied())
                .is_some_and(|o| o > self.stores.next_of(source).unwrap_or(i64::MIN));
            if !further {
                debug!(?source, offset, "offset gap without a further checkpoint");
                return;
            }
        }
        let partition = slot.partition;
        // A partition given back after a rebalance took it away: the store
        // parked at the revocation goes on where it was, unless another
        // owner saved it further meanwhile. Nothing is read twice.
        let kept = ahead_of.is_none()
            && self.stores.unpark(
                slot,
                checkpoint.as_ref(),
                topic_names(&self.settings.kafka.topics.customer_facts, &self.streams),
            );
        let loaded = if kept {
            Loaded::Kept
        } else {
            let sources: Vec<(String, Option<Source>)> = checkpoint
                .as_ref()
                .map(|c| {
                    c.offsets
                        .keys()
                        .map(|t| (t.clone(), self.source_of(t, partition)))
                        .collect()
                })
                .unwrap_or_default();
            self.stores.load(slot, checkpoint.as_ref(), |topic| {
                sources
                    .iter()
                    .find(|(t, _)| t == topic)
                    .and_then(|(_, s)| *s)
            })
        };
        // The position and the watermark resume where the store was: a
        // restored (or kept) partition with nothing new to read is caught
        // up (and may go idle), not behind.
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
            self.tracker.observe(source, Some(ts), now);
        }
        let result = match &loaded {
            Loaded::Kept => {
                info!(
                    store = slot.kind.as_str(),
                    partition, "partition back after the rebalance: store kept"
                );
                "kept"
            }
            Loaded::Restored => {
                info!(store = slot.kind.as_str(), partition, offsets = ?checkpoint.as_ref().map(|c| &c.offsets), "store restored from its checkpoint");
                "restored"
            }
            Loaded::Fresh => {
                debug!(
                    store = slot.kind.as_str(),
                    partition, "no checkpoint: fresh store"
                );
                "fresh"
            }
            Loaded::Refused(why) => {
                warn!(store = slot.kind.as_str(), partition, %why, "checkpoint not usable: fresh store from the committed offsets");
                "refused"
            }
        };
        self.metrics
            .stores_loaded
            .with_label_values(&[result])
            .inc();
    }

    async fn handle_fact(
        &mut self,
        m: &rdkafka::message::BorrowedMessage<'_>,
    ) -> Result<(), PipelineError> {
        let source = Source {
            stream: FACTS,
            partition: m.partition(),
        };
        let offset = m.offset();
        self.next.insert(source, offset + 1);
        if !self.facts_tracker.is_assigned(source) {
            self.last_assignment_check = None;
            self.refresh_assignment();
        }
        if !self.admit(source, offset).await? {
            return Ok(());
        }
        self.stores.applied(source, offset);
        let now = self.now_ms();
        let fact = match m.payload().and_then(exporter::facts::decode_message) {
            Some(exporter::facts::FactMessage::Marker(marker)) => {
                self.facts_tracker.observe(source, None, now);
                let latest = self
                    .markers
                    .entry(m.partition())
                    .or_default()
                    .entry(marker.partition)
                    .or_insert(marker.watermark_ms);
                *latest = (*latest).max(marker.watermark_ms);
                return Ok(());
            }
            Some(exporter::facts::FactMessage::Fact(fact)) => Some(fact),
            None => None,
        };
        let Some(fact) = fact else {
            self.facts_tracker.observe(source, None, now);
            warn!(
                partition = m.partition(),
                offset, "unreadable customer fact"
            );
            return self
                .reject(
                    m,
                    Reason::NotJson,
                    None,
                    "not a customer fact of this version",
                )
                .await;
        };
        let ts = fact.ts_ms;
        // The customer side's clock is the partitions' markers, not the
        // facts' own event times.
        self.facts_tracker.observe(source, None, now);
        let Some(book) = self.stores.book(m.partition()) else {
            return Ok(());
        };
        match book.push(fact, m.partition()) {
            Ok(()) => {}
            Err(watermark_ms) => {
                let detail = format!(
                    "customer fact at {ts} ms is before the customer watermark {watermark_ms} ms"
                );
                self.reject(m, Reason::Late, Some("ts_ms"), &detail).await?;
            }
        }
        Ok(())
    }

    /// Counts one message of `source` as accepted or rejected, and logs an
    /// error naming the reason, the field and the setting to look at when
    /// nearly a whole block of the partition was rejected.
    fn watch_rejections(
        &mut self,
        source: Source,
        topic: &str,
        rejected: Option<(Reason, Option<&'static str>)>,
    ) {
        if let Some(a) = self.reject_rate.record(source, rejected) {
            error!(
                topic,
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
        m: &rdkafka::message::BorrowedMessage<'_>,
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
            topic: m.topic(),
            partition: m.partition(),
            offset: m.offset(),
        };
        Ok(self.dead_letter.send(m.key(), m.payload(), why).await?)
    }

    fn topic_of(&self, source: Source) -> Option<&str> {
        topic_name(
            &self.settings.kafka.topics.customer_facts,
            &self.streams,
            source,
        )
    }

    fn refresh_assignment(&mut self) {
        let due = self
            .last_assignment_check
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if !due {
            return;
        }
        self.last_assignment_check = Some(Instant::now());
        match self.consumer.assignment() {
            Ok(tpl) => {
                self.metrics.partitions_assigned.set(tpl.count() as i64);
                let sources: Vec<Source> = tpl
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        self.streams.of(e.topic()).map(|(stream, _)| Source {
                            stream,
                            partition: e.partition(),
                        })
                    })
                    .collect();
                let facts: Vec<Source> = tpl
                    .elements()
                    .iter()
                    .filter(|e| e.topic() == self.settings.kafka.topics.customer_facts)
                    .map(|e| Source {
                        stream: FACTS,
                        partition: e.partition(),
                    })
                    .collect();
                self.health.set_consumer_ok(!sources.is_empty());
                // Stores follow their partitions: those gone to another
                // owner are dropped (it restores them from the checkpoint),
                // new ones are loaded before the next advance.
                let assigned: std::collections::BTreeSet<Slot> =
                    sources.iter().chain(&facts).map(|s| Slot::of(*s)).collect();
                for slot in self.stores.slots() {
                    if !assigned.contains(&slot) {
                        info!(
                            store = slot.kind.as_str(),
                            partition = slot.partition,
                            "partition revoked: store parked"
                        );
                        let now = self.now_ms();
                        self.stores.park(slot, now);
                        self.next.retain(|s, _| Slot::of(*s) != slot);
                        self.committed.retain(|s, _| Slot::of(*s) != slot);
                        self.rewinds.retain(|s, _| Slot::of(*s) != slot);
                    }
                }
                self.to_load.retain(|slot| assigned.contains(slot));
                for slot in assigned {
                    if !self.stores.holds(slot) {
                        self.to_load.insert(slot);
                    }
                }
                let now = self.now_ms();
                let all: std::collections::HashSet<Source> =
                    sources.iter().chain(&facts).copied().collect();
                self.log_ends.retain(|s| all.contains(&s));
                let mut resume = self.tracker.assign(sources, now);
                resume.extend(self.facts_tracker.assign(facts, now));
                // Their ends of log as librdkafka cached them may be stale:
                // they count as backlogged until the broker answers.
                self.log_ends.assigned(&resume);
                // librdkafka keeps a partition's pause across a rebalance: one
                // paused by alignment, revoked and assigned back would never
                // be fetched again. Whatever is new to the trackers runs.
                if !resume.is_empty() {
                    info!(partitions = ?resume, "newly assigned: resuming");
                    if let Err(error) = self.consumer.resume(&self.tpl(&resume)) {
                        warn!(%error, "resume of newly assigned partitions failed");
                    }
                }
            }
            Err(error) => warn!(%error, "cannot read the assignment"),
        }
    }

    fn tpl(&self, sources: &[Source]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for s in sources {
            if let Some(topic) = self.topic_of(*s) {
                tpl.add_partition(topic, s.partition);
            }
        }
        tpl
    }

    /// Compares each partition's position with the end of its log (as
    /// librdkafka last saw it, or the broker answered): a partition with
    /// unread messages, or whose end of log is not known or not asked
    /// again since an assignment or a consumer error, is starved, not
    /// idle, and the differences are the consumer lag.
    fn observe_log_ends(&mut self, now: u64) {
        let mut lag: BTreeMap<&'static str, i64> = BTreeMap::new();
        self.log_ends.poll();
        // Ends not known since an assignment or a broker error are asked
        // of the broker, every half idle timeout until it answers.
        let every = (self.settings.watermark.idle_timeout_ms / 2).max(50);
        let ask: Vec<Source> = self.log_ends.pending().collect();
        let sources = self
            .tracker
            .sources()
            .into_iter()
            .chain(self.facts_tracker.sources());
        for source in sources.collect::<Vec<_>>() {
            let Some(topic) = self.topic_of(source) else {
                continue;
            };
            let kind = if source.stream == FACTS {
                "customer_facts"
            } else {
                self.streams
                    .of(topic)
                    .map_or("unknown", |(_, s)| s.as_str())
            };
            let cached = ingest::cached_high_watermark(&self.consumer, topic, source.partition);
            let high = self.log_ends.end(source, cached);
            let next = self.next.get(&source).copied();
            let tracker = if source.stream == FACTS {
                &mut self.facts_tracker
            } else {
                &mut self.tracker
            };
            if self.log_ends.is_pending(source) || ingest::may_have_backlog(high, next) {
                tracker.has_backlog(source, now);
            } else if high.is_some() {
                // The broker says nothing waits: a partition that never
                // delivered stops holding the watermark now, not after the
                // idle timeout (results came 30 s late after every start).
                tracker.nothing_to_read(source);
            }
            if let (Some(high), Some(next)) = (high, next) {
                *lag.entry(kind).or_default() += (high - next).max(0);
            }
        }
        if !ask.is_empty() && self.log_ends.due(now, every) {
            let parts = ask
                .into_iter()
                .filter_map(|s| Some((s, self.topic_of(s)?.to_string(), s.partition)))
                .collect();
            self.log_ends.ask(&self.consumer, parts, now);
        }
        for (kind, messages) in lag {
            self.metrics
                .consumer_lag
                .with_label_values(&[kind])
                .set(messages);
        }
    }

    /// Advances every store to the watermark and hands the closed rows to
    /// the writer, with a checkpoint of every store when one is due (or
    /// `force`d at shutdown) and the offsets it allows to commit.
    async fn step(
        &mut self,
        batches: &mpsc::Sender<Batch>,
        force: bool,
    ) -> Result<(), PipelineError> {
        self.metrics.batch_events.observe(self.since_step as f64);
        self.since_step = 0;
        self.refresh_assignment();
        while let Some(slot) = self.to_load.pop_first() {
            if !self.stores.holds(slot) {
                self.load(slot, None).await;
            }
        }
        let now = self.now_ms();
        self.stores.expire_parked(now, PARKED_MAX_AGE_MS);
        self.observe_log_ends(now);
        // Each store follows its own partitions, so a partition that moves
        // here from an instance that fell behind is not judged by this
        // instance's clock; a store whose partitions are all idle follows
        // the pipeline's watermark.
        let watermark = self.tracker.watermark(now);
        let tracker = &self.tracker;
        let out = self.stores.advance(|slot| {
            match tracker.group(|source| Slot::of(source) == slot, now) {
                ingest::Group::Active(w) => Some(w),
                ingest::Group::Unknown => None,
                ingest::Group::Idle => Some(watermark),
            }
        });
        let align = self.tracker.align(now);
        if !align.pause.is_empty() {
            debug!(watermark, partitions = ?align.pause, "pausing partitions ahead of the watermark");
            if let Err(error) = self.consumer.pause(&self.tpl(&align.pause)) {
                warn!(%error, "pause failed");
            }
        }
        if !align.resume.is_empty() {
            debug!(partitions = ?align.resume, "resuming partitions");
            if let Err(error) = self.consumer.resume(&self.tpl(&align.resume)) {
                warn!(%error, "resume failed");
            }
        }
        // Each customer book advances to the lowest watermark marked by
        // every input partition (holding until each has marked one): the
        // markers follow their facts in the facts partition, so every fact
        // of an event before it has been read, whichever instance wrote it,
        // however far apart the input partitions run, and across a
        // partition's move to a new owner.
        let markers = &self.markers;
        let inputs = self.input_partitions;
        let customers = self.stores.advance_customers(|partition| {
            let marked = markers.get(&partition)?;
            (0..inputs)
                .map(|p| marked.get(&p).copied())
                .collect::<Option<Vec<i64>>>()?
                .into_iter()
                .min()
        });
        self.phases.charge(Phase::Advance);
        // Dead letters must be durable before the offsets behind them move.
        self.dead_letter.flush().await?;
        self.phases.charge(Phase::DeadLetters);

        // Offsets move only with a checkpoint: a restart resumes from the
        // state saved with them, never from a position the state lacks.
        let mut checkpoints = Vec::new();
        let mut commits = Vec::new();
        // A drained bounded run's stores stand past every deadline: nothing
        // is saved, and the customer books stop at the end of its input.
        let drained = self.bounded.as_ref().filter(|b| b.drained());
        let drained = drained.map(|b| b.end_ms);
        if (force || self.last_checkpoint.elapsed() >= self.checkpoint_every) && drained.is_none() {
            self.last_checkpoint = Instant::now();
            checkpoints = self.stores.checkpoints(topic_names(
                &self.settings.kafka.topics.customer_facts,
                &self.streams,
            ));
            // Only stores that changed are written; their size sets the
            // pace of the next checkpoint.
            let p = &self.settings.pipeline;
            let bytes: usize = checkpoints.iter().map(|c| c.state.len()).sum();
            self.checkpoint_every = crate::checkpoint_pace::next_interval(
                p.checkpoint_interval_ms,
                p.checkpoint_max_interval_ms,
                p.checkpoint_bytes_per_sec,
                bytes as u64,
            );
            self.metrics
                .checkpoint_interval
                .set(self.checkpoint_every.as_secs_f64());
            // The committed position trails the checkpoint down to the oldest
            // offset the open state holds: a restart re-reads from there and
            // skips what the store has (cheaply: before decoding). A broker
            // that resumes at the next record batch rather than inside the
            // one holding the offset asked for then loses nothing; a further
            // overlap covers that batch when nothing is held.
            let overlap = self.settings.pipeline.resume_overlap_messages;
            for c in &checkpoints {
                for (topic, next) in &c.offsets {
                    if let Some(source) = self.source_of(topic, c.partition) {
                        let low = self
                            .stores
                            .low_water(source)
                            .map_or(*next, |l| l.min(*next));
                        commits.push((source, (low - overlap).max(0)));
                    }
                }
            }
            self.phases.charge(Phase::Checkpoint);
        }

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
        m.partitions_paused.set(self.tracker.paused() as i64);
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
        let customers_empty = customers.customers.is_empty() && customers.days.is_empty();
        if out.is_empty() && customers_empty && checkpoints.is_empty() {
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
            out,
            customers,
            commits,
            checkpoints,
            marks,
            closed_at: Instant::now(),
            handed: 1,
        };
        self.send_batch(batches, batch).await
    }

    /// Hands `batch` to the writer, waiting while it is busy.
    async fn send_batch(
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

    fn acknowledged(&mut self, ack: Ack, mode: CommitMode) {
        if let Some(b) = &mut self.bounded {
            b.in_flight = b.in_flight.saturating_sub(ack.handed);
        }
        self.commit(&ack.commits, mode);
    }

    fn commit(&mut self, commits: &[(Source, i64)], mode: CommitMode) {
        let mut tpl = TopicPartitionList::new();
        for (source, position) in commits {
            if self.committed.get(source).is_some_and(|c| c >= position) {
                continue;
            }
            let Some(topic) = self.topic_of(*source).map(str::to_string) else {
                continue;
            };
            if let Err(error) =
                tpl.add_partition_offset(&topic, source.partition, Offset::Offset(*position))
            {
                error!(%error, "bad commit position");
                continue;
            }
            self.committed.insert(*source, *position);
            let label = self
                .streams
                .of(&topic)
                .map_or("customer_facts", |(_, s)| s.as_str());
            self.metrics
                .offsets_committed
                .with_label_values(&[label])
                .inc();
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(error) = self.consumer.commit(&tpl, mode) {
            warn!(%error, "offset commit failed; it will be retried with the next batch");
            for (source, _) in commits {
                self.committed.remove(source);
            }
        }
    }
}

/// The topic `source` is read from: an input stream's, or the customer
/// facts topic.
fn topic_name<'a>(facts_topic: &'a str, streams: &'a Streams, source: Source) -> Option<&'a str> {
    if source.stream == FACTS {
        Some(facts_topic)
    } else {
        streams.topic(source.stream)
    }
}

/// [`topic_name`] as an owned name, for the stores (which name topics in
/// checkpoints) while the pipeline's other fields are borrowed.
fn topic_names<'a>(
    facts_topic: &'a str,
    streams: &'a Streams,
) -> impl Fn(Source) -> Option<String> + 'a {
    move |source| topic_name(facts_topic, streams, source).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(partition_marks: &[(i32, i64)], checkpoint_watermark: i64, commit: i64) -> Batch {
        Batch {
            out: Output::default(),
            customers: CustomerOutput {
                new_customers: 1,
                ..CustomerOutput::default()
            },
            commits: vec![(
                Source {
                    stream: 0,
                    partition: 0,
                },
                commit,
            )],
            checkpoints: vec![Checkpoint {
                store: "events".into(),
                partition: 0,
                offsets: BTreeMap::new(),
                event_times: BTreeMap::new(),
                watermark_ms: checkpoint_watermark,
                state: Vec::new(),
            }],
            marks: partition_marks.to_vec(),
            closed_at: Instant::now(),
            handed: 1,
        }
    }

    #[test]
    fn merged_batches_keep_every_row_the_latest_checkpoint_and_marker_and_the_first_closing() {
        let mut first = batch(&[(0, 100), (1, 50)], 100, 10);
        let closed = first.closed_at;
        first.absorb(batch(&[(1, 70)], 200, 20));
        assert_eq!(first.customers.new_customers, 2);
        assert_eq!(first.commits.len(), 2, "in order: the later position last");
        assert_eq!(first.commits[1].1, 20);
        assert_eq!(first.checkpoints.len(), 1, "one per store and partition");
        assert_eq!(first.checkpoints[0].watermark_ms, 200, "the later one");
        assert_eq!(first.marks, vec![(0, 100), (1, 70)]);
        assert_eq!(first.closed_at, closed);
        assert_eq!(first.handed, 2, "one acknowledgement answers for both");
    }
}
