//! The writer task: makes each batch durable, stage by stage, then
//! acknowledges it so that its offsets may be committed.
//!
//! The stages, in the order that makes a restart safe at any point:
//! 1. rows (and customer rows) durable in ClickHouse; then erasure
//!    requests applied (after the rows, so none of a person lands after
//!    their deletion);
//! 2. triggers and customer facts delivered to Kafka;
//! 3. the partitions' watermark markers, after the facts they cover;
//! 4. the checkpoints, which may be saved only once everything they have
//!    emitted is durable;
//! 5. metrics, then the acknowledgement.

use std::sync::Arc;
use std::time::Duration;

use exporter::{ClickHouseSink, Metrics};
use ingest::{build_producer, Outbox, Outgoing};
use tokio::sync::mpsc;
use tracing::error;

use super::batch::{Ack, Batch};
use super::PipelineError;
use crate::settings::Settings;

/// How batches are coalesced into writes: fewer, larger inserts are what
/// ClickHouse merges cheaply, and rows wait at most the linger.
struct Coalesce {
    /// Rows at which a write goes out without lingering further.
    min_rows: usize,
    /// How long the first batch of a write may wait for more.
    linger: Duration,
}

impl Coalesce {
    /// The next write: a batch, and those that follow it within the linger
    /// while the rows are fewer than `min_rows` and none of them is prompt
    /// (closed as a backlog ended). `None` once the channel is closed and
    /// drained.
    async fn next(&self, batches: &mut mpsc::Receiver<Batch>) -> Option<Batch> {
        let mut batch = batches.recv().await?;
        let deadline = tokio::time::Instant::now() + self.linger;
        while batch.rows() < self.min_rows && !batch.prompt {
            match tokio::time::timeout_at(deadline, batches.recv()).await {
                Ok(Some(next)) => batch.absorb(next),
                Ok(None) | Err(_) => break,
            }
        }
        Some(batch)
    }
}

/// Makes batches durable; see the module's stages.
pub(crate) struct Writer {
    sink: ClickHouseSink,
    group_id: String,
    metrics: Arc<Metrics>,
    /// The funnel's stage names, for its rows and gauges.
    stages: Vec<String>,
    /// Triggers, customer facts and markers, each kept until delivered.
    outbox: Outbox,
    triggers_topic: String,
    facts_topic: String,
    /// Partitions of the facts topic (each gets every marker).
    facts_partitions: i32,
    coalesce: Coalesce,
    /// Applies erasure requests (stage 1b).
    eraser: super::erasure::Eraser,
}

impl Writer {
    /// A writer to `sink` and to the triggers and facts topics of
    /// `settings`.
    pub(crate) fn new(
        settings: &Settings,
        sink: ClickHouseSink,
        metrics: Arc<Metrics>,
        stages: Vec<String>,
        facts_partitions: i32,
    ) -> Result<Self, PipelineError> {
        let topics = &settings.kafka.topics;
        Ok(Writer {
            sink,
            group_id: settings.kafka.group_id.clone(),
            metrics,
            stages,
            outbox: Outbox::new(build_producer(&settings.kafka)?),
            triggers_topic: topics.triggers.clone(),
            facts_topic: topics.customer_facts.clone(),
            facts_partitions,
            eraser: super::erasure::Eraser::new(settings),
            coalesce: Coalesce {
                min_rows: settings.pipeline.write_min_rows,
                linger: Duration::from_millis(settings.pipeline.write_linger_ms),
            },
        })
    }

    /// Writes every batch received, in order, acknowledging each once
    /// durable; returns when the channel closes or nobody listens.
    pub(crate) async fn run(
        mut self,
        mut batches: mpsc::Receiver<Batch>,
        acks: mpsc::UnboundedSender<Ack>,
    ) {
        while let Some(batch) = self.coalesce.next(&mut batches).await {
            self.write_rows(&batch).await;
            self.eraser.apply(&batch.erasures, &self.metrics).await;
            self.send_triggers(&batch).await;
            self.send_facts(&batch).await;
            self.send_markers(&batch.marks).await;
            self.write_checkpoints(&batch).await;
            self.record(&batch);
            let ack = Ack {
                commits: batch.commits,
                handed: batch.handed,
            };
            if acks.send(ack).is_err() {
                break;
            }
        }
    }

    /// Stage 1: the rows, retried until ClickHouse has them.
    async fn write_rows(&self, batch: &Batch) {
        tokio::join!(
            self.sink.write(&batch.outs, &self.stages),
            self.sink.write_customers(&batch.customers),
        );
    }

    /// Stage 2a: triggers (abandoned carts, overdue orders, lapsed customers).
    async fn send_triggers(&mut self, batch: &Batch) {
        let carts = batch.outs.iter().flat_map(|o| &o.triggers);
        let carts = carts.map(exporter::triggers::encode);
        let lapsed = batch.customers.lapsed.iter();
        let triggers: Vec<(String, Vec<u8>)> = carts
            .chain(lapsed.map(exporter::triggers::encode_lapsed))
            .collect();
        for (key, payload) in triggers {
            self.send(Outgoing::new(&self.triggers_topic, key, payload))
                .await;
        }
    }

    /// Stage 2b: customer facts, flushed with the triggers: a fact sent
    /// again after its marker would be late to the customer book.
    async fn send_facts(&mut self, batch: &Batch) {
        let facts = batch.outs.iter().flat_map(|o| &o.customer_facts);
        let encode = |f: &aggregator::CustomerFact| contract::internal::encode_fact(&f.to_wire());
        for (key, payload) in facts.map(encode) {
            self.send(Outgoing::new(&self.facts_topic, key, payload))
                .await;
        }
        self.flush_outbox().await;
    }

    /// Stage 3: in every facts partition, after the facts, each input
    /// partition's watermark: no fact of an event before it is still to
    /// come.
    async fn send_markers(&mut self, marks: &[(i32, i64)]) {
        for (partition, watermark_ms) in marks {
            let (key, payload) = contract::internal::encode_marker(&contract::internal::Marker {
                partition: *partition,
                watermark_ms: *watermark_ms,
            });
            for to in 0..self.facts_partitions.max(1) {
                let marker = Outgoing::new(&self.facts_topic, key.clone(), payload.clone());
                self.send(marker.to_partition(to)).await;
            }
        }
        self.flush_outbox().await;
    }

    /// Stage 4: the stores' snapshots, once all they emitted is durable.
    async fn write_checkpoints(&self, batch: &Batch) {
        let checkpoints = &batch.checkpoints;
        self.sink
            .write_checkpoints(&self.group_id, checkpoints)
            .await;
        if !checkpoints.is_empty() {
            let bytes: usize = checkpoints.iter().map(|c| c.state.len()).sum();
            self.metrics.checkpoint_bytes.set(bytes as i64);
            self.metrics
                .checkpoints_written
                .inc_by(checkpoints.len() as u64);
        }
    }

    /// Stage 5: what the batch made durable, counted.
    fn record(&self, batch: &Batch) {
        let m = &self.metrics;
        for out in &batch.outs {
            for t in &out.triggers {
                let kind = exporter::triggers::kind(t);
                m.triggers.with_label_values(&[kind]).inc();
            }
            m.customer_facts.inc_by(out.customer_facts.len() as u64);
            m.record(out, &self.stages);
        }
        m.triggers
            .with_label_values(&["lapsed_customer"])
            .inc_by(batch.customers.lapsed.len() as u64);
        m.record_customers(&batch.customers);
        m.result_delay
            .observe(batch.closed_at.elapsed().as_secs_f64());
    }

    /// Hands `message` to the producer; the next flush waits for it. A
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use aggregator::{CustomerOutput, Output};

    use super::*;

    fn batch(prompt: bool) -> Batch {
        Batch {
            outs: vec![Output::default()],
            customers: CustomerOutput::default(),
            commits: Vec::new(),
            checkpoints: Vec::new(),
            marks: Vec::new(),
            closed_at: Instant::now(),
            handed: 1,
            erasures: Vec::new(),
            prompt,
        }
    }

    /// A coalescer that would linger an hour over a batch of few rows.
    fn lingering() -> Coalesce {
        Coalesce {
            min_rows: 100_000,
            linger: Duration::from_secs(3_600),
        }
    }

    /// `next` within a minute, or the test fails (it lingered).
    async fn next_soon(c: &Coalesce, rx: &mut mpsc::Receiver<Batch>) -> Batch {
        let next = tokio::time::timeout(Duration::from_secs(60), c.next(rx));
        let batch = next.await.expect("written without lingering");
        batch.expect("a batch")
    }

    #[tokio::test]
    async fn a_prompt_batch_goes_out_without_lingering_with_those_before_it() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.send(batch(false)).await.expect("open");
        tx.send(batch(true)).await.expect("open");
        tx.send(batch(false)).await.expect("open");
        let c = lingering();
        let first = next_soon(&c, &mut rx).await;
        assert_eq!(first.handed, 2, "the lingering batch and the prompt one");
        assert!(first.prompt);
        // The batch after it lingers as any other: here until the channel
        // closes.
        drop(tx);
        let second = next_soon(&c, &mut rx).await;
        assert_eq!((second.handed, second.prompt), (1, false));
    }

    #[tokio::test]
    async fn a_batch_that_is_not_prompt_waits_for_more() {
        let (tx, mut rx) = mpsc::channel(4);
        tx.send(batch(false)).await.expect("open");
        let c = lingering();
        let waited = tokio::time::timeout(Duration::from_millis(200), c.next(&mut rx)).await;
        assert!(waited.is_err(), "still lingering for more rows");
    }
}
