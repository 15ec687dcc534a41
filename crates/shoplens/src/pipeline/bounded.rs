//! Bounded runs (`shoplens run --until-end`): read every input partition up
//! to the end offsets found at start, then close everything as if time had
//! run out, write it, and stop.
//!
//! The steps, each taken on a tick once the previous one holds:
//! 1. `Starting`: once every partition of the input and facts topics is
//!    assigned, the end of each input partition is asked of the broker.
//! 2. `Reading`: the pipeline runs as a streaming one until every input
//!    partition is read up to its end. Then one last regular step writes,
//!    checkpoints and commits the state as of the end of the input: a later
//!    run of the same group continues from there as if this one had been
//!    stopped, not drained.
//! 3. `Draining`: every events store advances past every deadline (the
//!    watermark [`DRAIN_WATERMARK_MS`]): sessions, carts, unpaid orders and
//!    windows close. Those rows and their customer facts are written, with
//!    markers that bring the customer books to the end of the input (not
//!    to the end of time: a history that ends is not a store whose
//!    customers all lapsed). Nothing after this point is checkpointed.
//! 4. `Facts`: once that is durable, the facts topic is read up to its end.
//! 5. `Settling`: the customer books advance and their rows are written;
//!    once nothing is in flight the run is `Done`.

use std::collections::HashMap;
use std::time::Instant;

use aggregator::{CustomerOutput, Source};
use tokio::sync::mpsc;
use tracing::info;

use super::batch::Batch;
use super::consume::Ingest;
use super::PipelineError;

/// The watermark that closes everything: a year past the latest event time
/// the contract accepts, so no deadline is later.
pub const DRAIN_WATERMARK_MS: i64 = contract::time::MAX_MS + 366 * 86_400_000;

/// Where a bounded run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Starting,
    Reading,
    Draining,
    Facts,
    Settling,
    Done,
}

/// The state of a bounded run.
pub(crate) struct Bounded {
    pub(crate) step: Step,
    /// End offset of each input (or facts) partition to read up to.
    targets: HashMap<Source, i64>,
    /// Latest event time read, for the customer books' final watermark.
    pub(crate) max_event_ms: i64,
    /// Batches handed to the writer and not acknowledged yet.
    pub(crate) in_flight: usize,
    /// The customer books' final watermark, fixed when the stores drain.
    pub(crate) end_ms: i64,
    started: Instant,
}

impl Bounded {
    pub(crate) fn new() -> Self {
        Bounded {
            step: Step::Starting,
            targets: HashMap::new(),
            max_event_ms: i64::MIN,
            in_flight: 0,
            end_ms: i64::MIN,
            started: Instant::now(),
        }
    }

    /// Whether the state is drained: it must not be checkpointed any more,
    /// and markers carry at most [`Bounded::end_ms`].
    pub(crate) fn drained(&self) -> bool {
        !matches!(self.step, Step::Starting | Step::Reading)
    }

    /// Whether every target is reached, given the next offset of each source.
    fn reached(&self, next: impl Fn(Source) -> Option<i64>) -> bool {
        self.targets
            .iter()
            .all(|(s, end)| next(*s).is_some_and(|n| n >= *end))
    }
}

impl Ingest {
    /// The customer books' final watermark: just past the latest event read
    /// (and any payment waiting for its order, applied at its grace's end).
    /// Asked before the stores drain, as their watermarks are then past it.
    fn bounded_end_ms(&self) -> i64 {
        let b = self.bounded.as_ref().map_or(i64::MIN, |b| b.max_event_ms);
        let stores = self.stores.event_watermarks().into_iter().map(|(_, w)| w);
        let latest = stores
            .map(|w| w.saturating_add(self.settings.watermark.allowed_lateness_ms))
            .chain([b])
            .max()
            .unwrap_or(i64::MIN);
        latest.saturating_add(self.settings.aggregator.settle_grace_ms + 1)
    }

    /// Moves a bounded run on by one step when it can; `Ok(true)` once done.
    pub(super) async fn bounded_progress(
        &mut self,
        batches: &mpsc::Sender<Batch>,
    ) -> Result<bool, PipelineError> {
        let Some(step) = self.bounded.as_ref().map(|b| b.step) else {
            return Ok(false);
        };
        match step {
            Step::Starting => self.bounded_targets(false)?,
            Step::Reading => {
                if self.bounded_reached() {
                    // The state as of the end of the input, saved and committed.
                    self.step(batches, true).await?;
                    self.bounded_drain(batches).await?;
                }
            }
            Step::Draining => {
                if self.bounded_idle() {
                    self.bounded_targets(true)?;
                }
            }
            Step::Facts => {
                if self.bounded_reached() {
                    self.set_bounded_step(Step::Settling);
                }
            }
            Step::Settling => {
                if self.bounded_idle() {
                    self.set_bounded_step(Step::Done);
                }
            }
            Step::Done => return Ok(true),
        }
        Ok(false)
    }

    fn set_bounded_step(&mut self, step: Step) {
        if let Some(b) = &mut self.bounded {
            info!(
                ?step,
                elapsed_ms = b.started.elapsed().as_millis() as u64,
                "bounded run"
            );
            b.step = step;
        }
    }

    fn bounded_idle(&self) -> bool {
        self.bounded.as_ref().is_some_and(|b| b.in_flight == 0)
    }

    /// Whether every target is reached, and the fetches agree that nothing
    /// more waits there: a broker's answer to ListOffsets may trail the end
    /// its fetch responses report (tansu's did, once in a few runs).
    fn bounded_reached(&self) -> bool {
        let next = |s: Source| {
            // What the store applied, not what was read: past a gap the
            // consumer may have read to the end and dropped it all.
            let read = self.next.get(&s).copied();
            let next = self
                .stores
                .next_of(s)
                .or(read)
                .or(self.input.committed(s))?;
            let end = self.input.end_of_log(s);
            let caught_up =
                !self.input.end_pending(s) && !ingest::may_have_backlog(end, Some(next));
            caught_up.then_some(next)
        };
        self.bounded.as_ref().is_some_and(|b| b.reached(next))
    }

    /// Asks the broker for the end of every input partition (or, with
    /// `facts`, of every facts partition), once all of them are assigned;
    /// a partition already read to its end (or empty) needs nothing more.
    fn bounded_targets(&mut self, facts: bool) -> Result<(), PipelineError> {
        let topology = self.input.topology();
        let names: Vec<String> = if facts {
            vec![topology.facts_topic().to_string()]
        } else {
            topology.input_topics()
        };
        let mut wanted = Vec::new();
        for topic in &names {
            for partition in 0..self.input.partition_count(topic)? {
                wanted.extend(self.input.topology().source(topic, partition));
            }
        }
        let assigned = self.clocks.sources();
        if !wanted.iter().all(|s| assigned.contains(s)) {
            return Ok(()); // not every partition is ours yet
        }
        let mut targets = HashMap::new();
        for source in wanted {
            let (low, high) = self.input.fetch_bounds(source)?;
            if high > low {
                targets.insert(source, high);
            }
        }
        info!(
            facts,
            partitions = targets.len(),
            "bounded run: reading up to the end offsets"
        );
        if let Some(b) = &mut self.bounded {
            b.targets = targets;
        }
        self.set_bounded_step(if facts { Step::Facts } else { Step::Reading });
        Ok(())
    }

    /// Closes every events store as if time had run out and hands the rows
    /// to the writer, with markers at the end of the input.
    async fn bounded_drain(&mut self, batches: &mpsc::Sender<Batch>) -> Result<(), PipelineError> {
        let read_until = self.bounded_end_ms();
        let inputs = self.clocks.events.sources();
        // Nothing past the ends is read now: it would only come late.
        self.input.pause(&inputs);
        self.set_bounded_step(Step::Draining);
        let mut out = self.stores.advance(|_| Some(DRAIN_WATERMARK_MS));
        self.withhold(&mut out, &mut CustomerOutput::default());
        // A store restored from a checkpoint may hold events this run never
        // read (buffered ahead of its watermark then): the books must reach
        // the facts they make too, or those would wait past the end.
        let facts_until = out.customer_facts.iter().map(|f| f.ts_ms + 1).max();
        let end_ms = read_until.max(facts_until.unwrap_or(i64::MIN));
        if let Some(b) = &mut self.bounded {
            b.end_ms = end_ms;
        }
        info!(
            sessions = out.sessions.len(),
            carts = out.carts.len(),
            end_ms,
            "bounded run: input read, every deadline passed"
        );
        let batch = Batch {
            outs: vec![out],
            customers: CustomerOutput::default(),
            commits: Vec::new(),
            checkpoints: Vec::new(),
            marks: self
                .clocks
                .input_partitions()
                .map(|p| (p, end_ms))
                .collect(),
            closed_at: Instant::now(),
            handed: 1,
            erasures: std::mem::take(&mut self.erasure.jobs),
            // Nothing follows a bounded run's end: no reason to linger.
            prompt: true,
        };
        self.send_batch(batches, batch).await
    }
}
