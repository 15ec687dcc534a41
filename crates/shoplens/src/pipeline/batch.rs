//! What the consume loop hands the writer: the rows closed by one advance,
//! the checkpoints due with them and the offsets they allow to commit; and
//! what the writer answers once they are durable.

use std::time::Instant;

use aggregator::{CustomerOutput, Output, Source};
use exporter::Checkpoint;

/// Rows with the offsets that may be committed once they are durable.
pub(crate) struct Batch {
    /// The rows, one output per advance in the order closed: merged
    /// batches keep each advance's rows where they are, as copying them
    /// into one output would touch as much fresh memory again.
    pub(crate) outs: Vec<Output>,
    pub(crate) customers: CustomerOutput,
    pub(crate) commits: Vec<(Source, i64)>,
    /// Snapshots of the stores as of this batch, written after its rows.
    pub(crate) checkpoints: Vec<Checkpoint>,
    /// The watermark of each events store (by input partition) after this
    /// batch: every customer fact of an event before it is in this batch or
    /// an earlier one.
    pub(crate) marks: Vec<(i32, i64)>,
    /// When the aggregator closed them (for the result delay).
    pub(crate) closed_at: Instant,
    /// Batches handed to the writer that this one holds (merged writes).
    pub(crate) handed: usize,
    /// Erasure requests to apply once the rows are durable.
    pub(crate) erasures: Vec<super::erasure::ErasureJob>,
    /// Closed just after a backlog was read to its end: written without
    /// lingering for more (see [`super::catch_up`]).
    pub(crate) prompt: bool,
}

impl Batch {
    /// Rows this batch inserts into ClickHouse (checkpoints aside).
    pub(crate) fn rows(&self) -> usize {
        let rows = |o: &Output| {
            o.sessions.len()
                + o.session_windows.len()
                + o.pages.len()
                + o.products.len()
                + o.stage_times.len()
                + o.orders.len()
                + o.feedback.len()
                + o.carts.len()
                + o.spend.len()
        };
        self.outs.iter().map(rows).sum::<usize>() + self.customers.rows()
    }

    /// Appends the batch that followed this one: rows, facts and triggers in
    /// order (re-emitted rows carry higher versions, so one insert holding
    /// both versions keeps the later), the later commit positions, the
    /// latest checkpoint of each store and the latest marker of each
    /// partition. The earlier closing time stays, for the result delay.
    pub(crate) fn absorb(&mut self, next: Batch) {
        self.handed += next.handed;
        self.prompt |= next.prompt;
        self.erasures.extend(next.erasures);
        self.outs.extend(next.outs);
        self.customers.extend(next.customers);
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
pub(crate) struct Ack {
    pub(crate) commits: Vec<(Source, i64)>,
    /// Batches handed to the writer that this write made durable.
    pub(crate) handed: usize,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn batch(partition_marks: &[(i32, i64)], checkpoint_watermark: i64, commit: i64) -> Batch {
        Batch {
            outs: vec![Output {
                feedback: vec![aggregator::FeedbackRow::default(); 2],
                ..Output::default()
            }],
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
                state: Default::default(),
            }],
            marks: partition_marks.to_vec(),
            closed_at: Instant::now(),
            handed: 1,
            erasures: Vec::new(),
            prompt: false,
        }
    }

    #[test]
    fn merged_batches_keep_every_row_in_place_the_latest_checkpoint_and_marker_and_the_first_closing(
    ) {
        let mut first = batch(&[(0, 100), (1, 50)], 100, 10);
        let closed = first.closed_at;
        first.absorb(batch(&[(1, 70)], 200, 20));
        assert_eq!(first.outs.len(), 2, "each advance's rows where they were");
        assert_eq!(first.rows(), 4);
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
