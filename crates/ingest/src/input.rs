//! The pipeline's Kafka input: one consumer in the group, subscribed to every
//! topic of the [`Topology`], that reports rebalances through its context's
//! callbacks, pauses and resumes sources, seeks back past gaps, keeps the
//! ends of partitions' logs and commits positions once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aggregator::Source;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, info, warn};

pub use rdkafka::consumer::CommitMode;

use crate::commits::CommitLedger;
use crate::consumer::{consumer_config, KafkaError};
use crate::log_ends::LogEnds;
use crate::seek_back::{Gap, SeekBack};
use crate::settings::KafkaSettings;
use crate::stall::Stalls;
use crate::topology::Topology;

/// How long a new topic may take to show in the brokers' metadata.
const TOPICS_WAIT: Duration = Duration::from_secs(10);

/// The consumer's context: notes every rebalance, so that the pipeline reads
/// the assignment when (and only when) it changed.
#[derive(Default)]
pub struct Rebalances {
    changed: AtomicBool,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Error(error) = rebalance {
            warn!(%error, "rebalance failed");
        }
        self.changed.store(true, Ordering::Release);
    }
}

/// The consumer type of the input.
pub type InputConsumer = StreamConsumer<Rebalances>;

/// One message read, with the source it came from.
pub struct Received<'a> {
    message: BorrowedMessage<'a>,
    source: Option<Source>,
}

impl Received<'_> {
    /// The source, if the topic is one the pipeline reads.
    pub fn source(&self) -> Option<Source> {
        self.source
    }
    /// The topic's name.
    pub fn topic(&self) -> &str {
        self.message.topic()
    }
    /// The partition.
    pub fn partition(&self) -> i32 {
        self.message.partition()
    }
    /// The offset.
    pub fn offset(&self) -> i64 {
        self.message.offset()
    }
    /// The payload (empty when there is none).
    pub fn payload(&self) -> &[u8] {
        self.message.payload().unwrap_or_default()
    }
    /// The key, if any.
    pub fn key(&self) -> Option<&[u8]> {
        self.message.key()
    }
    /// The broker's timestamp of the message, in ms.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.message.timestamp().to_millis()
    }
}

/// The messages of a [`KafkaInput`], one at a time.
pub struct Messages {
    consumer: Arc<InputConsumer>,
    topology: Topology,
    seeks_made: Arc<AtomicU64>,
}

impl Messages {
    /// [`KafkaInput::seeks_made`], read on this side: taken before a read
    /// begins, it tells the input which seeks the message comes after.
    pub fn seeks_made(&self) -> u64 {
        self.seeks_made.load(Ordering::Acquire)
    }

    /// The next message, or the consumer's error.
    pub async fn recv(&self) -> Result<Received<'_>, KafkaError> {
        let message = self.consumer.recv().await?;
        let source = self.topology.source(message.topic(), message.partition());
        Ok(Received { message, source })
    }

    /// Which topic is which source.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }
}

/// The Kafka input of one pipeline instance.
pub struct KafkaInput {
    consumer: Arc<InputConsumer>,
    topology: Topology,
    ledger: CommitLedger,
    seeks: SeekBack,
    stalls: Stalls,
    log_ends: LogEnds,
    /// Seeks made, shared with [`Messages`] (see [`KafkaInput::seeks_made`]).
    seeks_made: Arc<AtomicU64>,
}

impl KafkaInput {
    /// Joins the group and subscribes to every topic of `topology` once the
    /// brokers list them all: a subscribed topic the brokers do not know yet
    /// would go unread until librdkafka's next metadata refresh, so topics
    /// created a moment ago get [`TOPICS_WAIT`], then the start is refused.
    /// `seek_step` is the first step of a seek back, in messages.
    pub async fn connect(
        settings: &KafkaSettings,
        topology: Topology,
        seek_step: i64,
    ) -> Result<Self, KafkaError> {
        let consumer: InputConsumer =
            consumer_config(settings).create_with_context(Rebalances::default())?;
        let topics = topology.topics();
        let deadline = Instant::now() + TOPICS_WAIT;
        loop {
            let missing =
                match crate::consumer::missing_topics(&consumer, &topics, &settings.brokers) {
                    Ok(missing) if missing.is_empty() => break,
                    Ok(missing) => KafkaError::MissingTopics(missing),
                    Err(unreachable) => unreachable,
                };
            if Instant::now() >= deadline {
                return Err(missing);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        Ok(KafkaInput {
            consumer: Arc::new(consumer),
            topology,
            ledger: CommitLedger::default(),
            seeks: SeekBack::new(seek_step),
            stalls: Stalls::new(u64::from(settings.fetch_wait_max_ms)),
            log_ends: LogEnds::new(),
            seeks_made: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Which topic is which source.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The stream of messages, for the consume loop (it holds the consumer
    /// apart from the input, which the loop's handlers change).
    pub fn messages(&self) -> Messages {
        Messages {
            consumer: Arc::clone(&self.consumer),
            topology: self.topology.clone(),
            seeks_made: Arc::clone(&self.seeks_made),
        }
    }

    /// Seeks made so far. A read that began after a seek returned is served
    /// after it (librdkafka drops what it fetched before), so a message read
    /// with an older count may come from before a seek.
    pub fn seeks_made(&self) -> u64 {
        self.seeks_made.load(Ordering::Acquire)
    }

    /// The consumer reported an error (a broker gone away, say): the ends of
    /// the `assigned` logs count as unknown until the broker answers again.
    pub fn consumer_error(&mut self, assigned: impl IntoIterator<Item = Source>) {
        self.log_ends.stale(assigned);
    }

    /// Whether a rebalance happened since the last call.
    pub fn rebalanced(&self) -> bool {
        let changed = &self.consumer.context().changed;
        changed.load(Ordering::Acquire) && changed.swap(false, Ordering::AcqRel)
    }

    /// The sources assigned to this instance now.
    pub fn assignment(&self) -> Result<Vec<Source>, KafkaError> {
        let tpl = self.consumer.assignment()?;
        Ok(tpl
            .elements()
            .iter()
            .filter_map(|e| self.topology.source(e.topic(), e.partition()))
            .collect())
    }

    /// Partitions newly assigned (`resume`) are fetched, whatever pause
    /// librdkafka kept for them across the rebalance; those revoked are
    /// forgotten (their next owner commits them and knows their ends).
    pub fn assigned(&mut self, all: &[Source], new: &[Source]) {
        self.ledger.forget(|s| !all.contains(&s));
        self.seeks.forget(|s| !all.contains(&s));
        self.stalls.forget(|s| !all.contains(&s));
        self.log_ends.retain(|s| all.contains(&s));
        // Their ends as librdkafka cached them may be stale: they count as
        // backlogged until the broker answers.
        self.log_ends.assigned(new);
        if !new.is_empty() {
            info!(partitions = ?new, "newly assigned: resuming");
            self.resume(new);
        }
    }

    fn tpl(&self, sources: &[Source]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for s in sources {
            if let Some(topic) = self.topology.topic(*s) {
                tpl.add_partition(topic, s.partition);
            }
        }
        tpl
    }

    /// Stops fetching `sources` (alignment, or the end of a bounded run).
    pub fn pause(&self, sources: &[Source]) {
        if let Err(error) = self.consumer.pause(&self.tpl(sources)) {
            warn!(%error, ?sources, "pause failed");
        }
    }

    /// Fetches `sources` again, from where each stopped: a position that
    /// may fall inside a record batch, so a resumed source that delivers
    /// nothing is sought back sooner (see [`crate::stall`]).
    pub fn resume(&mut self, sources: &[Source]) {
        if let Err(error) = self.consumer.resume(&self.tpl(sources)) {
            warn!(%error, ?sources, "resume failed");
        }
        for source in sources {
            self.stalls.resumed(*source);
        }
    }

    /// The offset its store needs arrived on `source`: any seek back there
    /// is over.
    pub fn in_order(&mut self, source: Source) {
        self.seeks.arrived(source);
    }

    /// Whether a seek back is in progress on `source`.
    pub fn seeking(&self, source: Source) -> bool {
        self.seeks.in_progress(source)
    }

    /// `offset` arrived on `source` past `expected`, the offset its store
    /// needs (see [`crate::seek_back`]): seeks back, and says whether to
    /// drop the message or to read past a hole.
    /// `read_epoch` is [`KafkaInput::seeks_made`] as of when the message's
    /// read began ([`Messages::seeks_made`] on the reading thread).
    pub fn past_gap(&mut self, source: Source, offset: i64, expected: i64, read_epoch: u64) -> Gap {
        let now = Instant::now();
        let target = match self.seeks.decide(source, offset, expected, now, read_epoch) {
            Gap::Seek(target) => target,
            Gap::Hole => {
                self.seeks.closed(source);
                return Gap::Hole;
            }
            Gap::Drop => return Gap::Drop,
        };
        if !self.seek(source, target) {
            self.seeks.closed(source);
            return Gap::Hole;
        }
        info!(
            ?source,
            offset, expected, target, "fetch resumed past the offset needed: seeking back"
        );
        self.seeks
            .sought(source, (offset, expected), target, now, self.seeks_made());
        Gap::Drop
    }

    /// Watches `source`'s fetch for a stall (see [`crate::stall`]): read up
    /// to `position`, `fetching` unless paused, its store needing
    /// `expected`. A stalled source is sought back as past a gap; returns
    /// whether it was.
    pub fn watch_stall(
        &mut self,
        source: Source,
        position: Option<i64>,
        expected: i64,
        fetching: bool,
        now_ms: u64,
    ) -> bool {
        let end = self.end_of_log(source);
        if !self.stalls.stalled(source, position, end, fetching, now_ms) {
            return false;
        }
        let now = Instant::now();
        let Some(target) = self.seeks.stalled(source, expected, now) else {
            return false;
        };
        if !self.seek(source, target) {
            return false;
        }
        warn!(
            ?source,
            position,
            end,
            expected,
            target,
            "nothing fetched for a while with messages waiting: seeking back"
        );
        self.seeks
            .sought_stalled(source, expected, target, now, self.seeks_made());
        true
    }

    /// `source` was just resumed with its store needing `expected`. On a
    /// broker that has answered a fetch past the offset asked for on this
    /// source before (tansu 0.6, from the middle of a record batch), the
    /// resumed fetch would too: seek back as far as the furthest seek that
    /// worked went, at once, instead of after a gap or a stall. Returns
    /// whether it did; never on a broker that never needed a seek.
    pub fn seek_on_resume(&mut self, source: Source, expected: i64) -> bool {
        let Some(back) = self.seeks.learned(source) else {
            return false;
        };
        let target = expected.saturating_sub(back).max(0);
        if !self.seek(source, target) {
            return false;
        }
        debug!(
            ?source,
            expected, target, "resumed: seeking back as far as a seek had to"
        );
        let now = Instant::now();
        self.seeks
            .sought_stalled(source, expected, target, now, self.seeks_made());
        true
    }

    /// Seeks `source` to `target`; whether the consumer took the seek. The
    /// fetch then starts afresh, maybe inside a batch again, so the stall
    /// watch treats it as resumed.
    fn seek(&mut self, source: Source, target: i64) -> bool {
        let Some(topic) = self.topology.topic(source) else {
            return false;
        };
        let to = Offset::Offset(target);
        let timeout = Duration::from_secs(1);
        match self.consumer.seek(topic, source.partition, to, timeout) {
            Ok(()) => {
                // After the seek returned: a read that begins now is served
                // after it.
                self.seeks_made.fetch_add(1, Ordering::AcqRel);
                self.stalls.resumed(source);
                true
            }
            Err(error) => {
                warn!(%error, ?source, target, "seek failed");
                false
            }
        }
    }

    /// Commits those of `positions` that move a source forward; returns
    /// them. A failed commit is sent again with the next positions.
    pub fn commit(&mut self, positions: &[(Source, i64)], mode: CommitMode) -> Vec<(Source, i64)> {
        let mut send = self.ledger.to_send(positions);
        let mut tpl = TopicPartitionList::new();
        send.retain(|(source, position)| {
            let Some(topic) = self.topology.topic(*source) else {
                return false;
            };
            let at = Offset::Offset(*position);
            match tpl.add_partition_offset(topic, source.partition, at) {
                Ok(()) => true,
                Err(error) => {
                    warn!(%error, ?source, position, "bad commit position");
                    false
                }
            }
        });
        if send.is_empty() {
            return send;
        }
        self.ledger.sent(&send);
        if let Err(error) = self.consumer.commit(&tpl, mode) {
            warn!(%error, "offset commit failed; it will be retried with the next batch");
            self.ledger.failed(&send);
            return Vec::new();
        }
        send
    }

    /// The last position committed for `source` by this instance.
    pub fn committed(&self, source: Source) -> Option<i64> {
        self.ledger.get(source)
    }

    /// The ends of logs asked of the broker.
    pub fn log_ends(&mut self) -> &mut LogEnds {
        &mut self.log_ends
    }

    /// Whether the end of `source`'s log is being asked of the broker (it
    /// counts as unknown meanwhile).
    pub fn end_pending(&self, source: Source) -> bool {
        self.log_ends.is_pending(source)
    }

    /// The latest end of `source`'s log known: the broker's last answer or
    /// librdkafka's cache (updated by every fetch response).
    pub fn end_of_log(&self, source: Source) -> Option<i64> {
        let topic = self.topology.topic(source)?;
        let cached =
            crate::consumer::cached_high_watermark(&self.consumer, topic, source.partition);
        self.log_ends.end(source, cached)
    }

    /// Asks the broker for the ends still unknown, at most every `every_ms`.
    pub fn ask_log_ends(&mut self, now_ms: u64, every_ms: u64) {
        let pending: Vec<Source> = self.log_ends.pending().collect();
        if pending.is_empty() || !self.log_ends.due(now_ms, every_ms) {
            return;
        }
        let parts = pending
            .into_iter()
            .filter_map(|s| Some((s, self.topology.topic(s)?.to_string(), s.partition)))
            .collect();
        self.log_ends.ask(&self.consumer, parts, now_ms);
    }

    /// The number of partitions of `topic`.
    pub fn partition_count(&self, topic: &str) -> Result<i32, KafkaError> {
        crate::consumer::partition_count(&self.consumer, topic)
    }

    /// The first and the next offset of `source`'s log, asked of the broker.
    pub fn fetch_bounds(&self, source: Source) -> Result<(i64, i64), KafkaError> {
        let topic = self.topology.topic(source).unwrap_or_default();
        let timeout = Duration::from_secs(10);
        Ok(self
            .consumer
            .fetch_watermarks(topic, source.partition, timeout)?)
    }
}
