//! The end of each partition's log, asked of the broker.
//!
//! Idleness must not be mistaken for starvation: a partition is idle only
//! when it has nothing to read. librdkafka caches a partition's end of log
//! (its high watermark) from fetch responses, but that cache can be empty
//! (before the first fetch response after an assignment) or stale (it
//! survives a rebalance and a broker outage, and a broker that serves other
//! partitions' fetches first, as tansu does and Kafka may under
//! `fetch.max.bytes`, leaves it unrefreshed for longer than a short idle
//! timeout). A partition caught up with a stale end looks idle; its store's
//! other partitions then carry the watermark past its backlog, which
//! arrives late. So the broker is asked (ListOffsets, as
//! `kafka-consumer-groups --describe` does) for the end of each newly
//! assigned partition, and of every assigned partition after the consumer
//! reports an error (a broker going away, a connection lost), and until it
//! answers the partition counts as having a backlog. Asking only then, not
//! for every quiet partition all the time, keeps these requests off the
//! connection that carries the fetches: a broker answers one connection's
//! requests in order, and a slow ListOffsets (tansu's SQLite storage) holds
//! the fetches behind it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aggregator::Source;
use rdkafka::consumer::Consumer;

use crate::input::InputConsumer;
use tokio::sync::mpsc;
use tracing::warn;

/// How long one ListOffsets request may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// Unanswered asks (with no consumer error since) before a partition stops
/// counting as backlogged: a broker that never answers ListOffsets leaves
/// the cached end.
const MAX_FAILURES: u32 = 12;

type Answers = Vec<(Source, Option<i64>)>;

/// Ends of partitions' logs as the broker last answered.
pub struct LogEnds {
    /// Ends to ask: newly assigned, or stale since a consumer error, with
    /// failed asks so far.
    pending: HashMap<Source, u32>,
    /// The latest end the broker answered.
    known: HashMap<Source, i64>,
    in_flight: bool,
    last_ask_ms: Option<u64>,
    answers_tx: mpsc::UnboundedSender<Answers>,
    answers: mpsc::UnboundedReceiver<Answers>,
}

impl Default for LogEnds {
    fn default() -> Self {
        Self::new()
    }
}

impl LogEnds {
    /// Nothing asked yet.
    pub fn new() -> Self {
        let (answers_tx, answers) = mpsc::unbounded_channel();
        LogEnds {
            pending: HashMap::new(),
            known: HashMap::new(),
            in_flight: false,
            last_ask_ms: None,
            answers_tx,
            answers,
        }
    }

    /// `sources` are newly assigned: unknown until the broker answers.
    pub fn assigned(&mut self, sources: &[Source]) {
        for s in sources {
            self.known.remove(s);
        }
        self.stale(sources.iter().copied());
    }

    /// The consumer reported an error: the ends of `sources` count as
    /// unknown until the broker answers again.
    pub fn stale(&mut self, sources: impl IntoIterator<Item = Source>) {
        for s in sources {
            self.pending.insert(s, 0);
        }
    }

    /// `sources` were resumed after a pause, in which their ends were not
    /// fetched: unknown until the broker answers, asked at the next
    /// chance rather than after the usual interval. Resumes are rare (the
    /// alignment of partitions that drift apart), and the watermark waits
    /// for these answers.
    pub fn ask_soon(&mut self, sources: impl IntoIterator<Item = Source>) {
        self.stale(sources);
        self.last_ask_ms = None;
    }

    /// Forgets partitions no longer assigned.
    pub fn retain(&mut self, assigned: impl Fn(Source) -> bool) {
        self.pending.retain(|s, _| assigned(*s));
        self.known.retain(|s, _| assigned(*s));
    }

    /// Partitions whose answer is still awaited.
    pub fn pending(&self) -> impl Iterator<Item = Source> + '_ {
        self.pending.keys().copied()
    }

    /// Whether a new ask may go out at `now_ms`: none in flight, and the
    /// last one `every_ms` ago or more.
    pub fn due(&self, now_ms: u64, every_ms: u64) -> bool {
        !self.in_flight
            && self
                .last_ask_ms
                .is_none_or(|t| now_ms.saturating_sub(t) >= every_ms)
    }

    /// Asks the broker for the ends of `parts` (source, topic, partition)
    /// on a blocking thread, one ask at a time.
    pub fn ask(
        &mut self,
        consumer: &Arc<InputConsumer>,
        parts: Vec<(Source, String, i32)>,
        now_ms: u64,
    ) {
        if parts.is_empty() || self.in_flight {
            return;
        }
        self.in_flight = true;
        self.last_ask_ms = Some(now_ms);
        let consumer = Arc::clone(consumer);
        let answers = self.answers_tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut ends = Vec::with_capacity(parts.len());
            for (source, topic, partition) in parts {
                let end = consumer
                    .fetch_watermarks(&topic, partition, ASK_TIMEOUT)
                    .ok()
                    .map(|(_, high)| high);
                ends.push((source, end));
                if end.is_none() {
                    // The broker is away: the rest would wait as long each.
                    break;
                }
            }
            // The pipeline may have stopped meanwhile.
            let _ = answers.send(ends);
        });
    }

    /// Takes in the answers that came.
    pub fn poll(&mut self) {
        while let Ok(ends) = self.answers.try_recv() {
            self.in_flight = false;
            for (source, end) in ends {
                self.answer(source, end);
            }
        }
    }

    fn answer(&mut self, source: Source, end: Option<i64>) {
        match end {
            Some(end) => {
                self.pending.remove(&source);
                let known = self.known.entry(source).or_insert(end);
                *known = (*known).max(end);
            }
            None => {
                if let Some(failures) = self.pending.get_mut(&source) {
                    *failures += 1;
                    if *failures >= MAX_FAILURES {
                        self.pending.remove(&source);
                        warn!(
                            ?source,
                            "the broker does not answer for the end of its log; the cached one is used"
                        );
                    }
                }
            }
        }
    }

    /// Whether `source`'s end is being asked: it counts as unknown.
    pub fn is_pending(&self, source: Source) -> bool {
        self.pending.contains_key(&source)
    }

    /// The latest end of `source`'s log known: the later of the broker's
    /// last answer and librdkafka's `cached` end (either may be stale while
    /// [`Self::is_pending`]).
    pub fn end(&self, source: Source, cached: Option<i64>) -> Option<i64> {
        match (cached, self.known.get(&source).copied()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Source = Source::new(0, 0);

    #[test]
    fn a_new_partition_is_unknown_until_answered_then_the_later_end_counts() {
        let mut ends = LogEnds::new();
        ends.assigned(&[A]);
        assert!(ends.is_pending(A), "a stale cached end is not trusted");
        ends.answer(A, Some(150));
        assert!(!ends.is_pending(A));
        assert_eq!(ends.end(A, Some(99)), Some(150));
        assert_eq!(
            ends.end(A, Some(170)),
            Some(170),
            "fetches report later ends"
        );
        assert_eq!(ends.end(A, None), Some(150));
        ends.answer(A, Some(120));
        assert_eq!(ends.end(A, None), Some(150), "an end never goes back");
        ends.retain(|_| false);
        assert_eq!(ends.end(A, Some(99)), Some(99), "forgotten: the cache only");
    }

    #[test]
    fn resumed_partitions_are_asked_at_the_next_chance() {
        let mut ends = LogEnds::new();
        ends.last_ask_ms = Some(1_000);
        assert!(!ends.due(1_500, 2_500), "asked 0.5 s ago");
        ends.ask_soon([A]);
        assert!(ends.is_pending(A));
        assert!(
            ends.due(1_500, 2_500),
            "a resume does not wait the interval"
        );
        ends.in_flight = true;
        assert!(!ends.due(1_500, 2_500), "one ask at a time");
    }

    #[test]
    fn a_broker_that_never_answers_leaves_the_cached_end() {
        let mut ends = LogEnds::new();
        ends.assigned(&[A]);
        for _ in 1..MAX_FAILURES {
            ends.answer(A, None);
            assert!(ends.is_pending(A));
        }
        ends.answer(A, None);
        assert!(!ends.is_pending(A));
        assert_eq!(ends.end(A, Some(99)), Some(99));
    }

    #[test]
    fn after_a_consumer_error_the_end_is_unknown_until_answered_again() {
        let mut ends = LogEnds::new();
        ends.answer(A, Some(150));
        ends.stale([A]);
        assert!(ends.is_pending(A), "stale while the broker was away");
        assert_eq!(ends.pending().collect::<Vec<_>>(), vec![A]);
        ends.answer(A, Some(400));
        assert!(!ends.is_pending(A));
        assert_eq!(ends.end(A, Some(150)), Some(400));
    }

    #[test]
    fn one_ask_at_a_time_and_no_more_often_than_asked() {
        let mut ends = LogEnds::new();
        assert!(ends.due(0, 250));
        ends.in_flight = true;
        ends.last_ask_ms = Some(0);
        assert!(!ends.due(1_000, 250), "one in flight");
        ends.answers_tx.send(vec![(A, Some(5))]).unwrap();
        ends.poll();
        assert!(ends.due(250, 250));
        assert!(!ends.due(249, 250));
        assert_eq!(ends.end(A, None), Some(5));
    }
}
