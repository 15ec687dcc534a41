//! Where the ingest task's wall time goes, as Flink reports busy, idle and
//! back-pressured time: `shoplens_ingest_seconds_total{phase}`.
//!
//! The task charges the time since its last mark to the phase it just
//! finished. Charges add up locally and reach the counters once per step,
//! so a message costs two clock reads and no atomic operation.

use std::time::{Duration, Instant};

use exporter::metrics::INGEST_PHASES;
use exporter::Metrics;

/// One phase of the ingest task; the index into [`INGEST_PHASES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for messages from the read-ahead thread (the broker), or a
    /// tick: idle.
    Fetch = 0,
    /// Admitting, validating and buffering a message (the read-ahead thread
    /// decoded it).
    Handle = 1,
    /// The watermark's work: closing sessions and windows.
    Advance = 2,
    /// Serializing checkpoints.
    Checkpoint = 3,
    /// Waiting for the dead-letter topic to confirm.
    DeadLetters = 4,
    /// Waiting for the writer to take a batch: backpressure.
    Writer = 5,
}

/// Time charged to each phase since the last [`Phases::publish`].
pub(crate) struct Phases {
    mark: Instant,
    pending: [Duration; INGEST_PHASES.len()],
    counters: Vec<prometheus::Counter>,
}

impl Phases {
    /// Starts the clock now.
    pub(crate) fn new(metrics: &Metrics) -> Self {
        Phases {
            mark: Instant::now(),
            pending: [Duration::ZERO; INGEST_PHASES.len()],
            counters: INGEST_PHASES
                .iter()
                .map(|p| metrics.ingest_seconds.with_label_values(&[p]))
                .collect(),
        }
    }

    /// Charges the time since the last mark to `phase` and marks now.
    pub(crate) fn charge(&mut self, phase: Phase) {
        let now = Instant::now();
        self.pending[phase as usize] += now.saturating_duration_since(self.mark);
        self.mark = now;
    }

    /// When the last phase was charged: a clock read the caller can reuse.
    pub(crate) fn mark(&self) -> Instant {
        self.mark
    }

    /// Adds what was charged to the counters.
    pub(crate) fn publish(&mut self) {
        for (pending, counter) in self.pending.iter_mut().zip(&self.counters) {
            if !pending.is_zero() {
                counter.inc_by(pending.as_secs_f64());
                *pending = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_goes_to_the_phase_charged_and_reaches_the_counters_on_publish() {
        let metrics = Metrics::new();
        let mut phases = Phases::new(&metrics);
        phases.mark -= Duration::from_millis(300);
        phases.charge(Phase::Writer);
        let writer = metrics.ingest_seconds.with_label_values(&["writer"]);
        assert_eq!(writer.get(), 0.0, "nothing before publish");
        phases.publish();
        assert!(writer.get() >= 0.3, "{}", writer.get());
        let fetch = metrics.ingest_seconds.with_label_values(&["fetch"]);
        assert!(fetch.get() < 0.3, "only the phase charged moves");
    }
}
