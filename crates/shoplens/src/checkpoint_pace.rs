//! How often to checkpoint: whole snapshots cost time and ClickHouse writes
//! in proportion to the open state, so a large state is checkpointed less
//! often, keeping the bytes written per second bounded.

use std::time::{Duration, Instant};

use crate::settings::PipelineSettings;

/// When the next checkpoint is due.
pub(crate) struct Pace {
    last: Instant,
    every: Duration,
    min_ms: u64,
    max_ms: u64,
    bytes_per_sec: u64,
}

impl Pace {
    /// Paced as `settings` say, the first checkpoint one interval from now.
    pub(crate) fn new(settings: &PipelineSettings) -> Self {
        Pace {
            last: Instant::now(),
            every: Duration::from_millis(settings.checkpoint_interval_ms),
            min_ms: settings.checkpoint_interval_ms,
            max_ms: settings.checkpoint_max_interval_ms,
            bytes_per_sec: settings.checkpoint_bytes_per_sec,
        }
    }

    /// Whether a checkpoint is due now (or `force`d).
    pub(crate) fn due(&self, force: bool) -> bool {
        force || self.last.elapsed() >= self.every
    }

    /// A checkpoint of `bytes` was taken now; returns the wait before the
    /// next.
    pub(crate) fn taken(&mut self, bytes: usize) -> Duration {
        self.last = Instant::now();
        self.every = next_interval(self.min_ms, self.max_ms, self.bytes_per_sec, bytes as u64);
        self.every
    }
}

/// The wait before the next checkpoint after one of `last_bytes`: at least
/// `min_ms`, stretched so that checkpoints average at most `bytes_per_sec`
/// (0: no stretch), and at most `max_ms` (never below `min_ms`).
pub(crate) fn next_interval(
    min_ms: u64,
    max_ms: u64,
    bytes_per_sec: u64,
    last_bytes: u64,
) -> Duration {
    // 0 bytes per second: no stretch.
    let stretched = last_bytes
        .saturating_mul(1_000)
        .checked_div(bytes_per_sec)
        .unwrap_or(0);
    Duration::from_millis(stretched.min(max_ms).max(min_ms))
}

#[cfg(test)]
mod tests {
    use super::next_interval;
    use std::time::Duration;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_small_state_keeps_the_interval_and_a_large_one_stretches_it_up_to_the_cap() {
        let ms = Duration::from_millis;
        assert_eq!(next_interval(5_000, 60_000, 2 * MIB, MIB), ms(5_000));
        assert_eq!(next_interval(5_000, 60_000, 2 * MIB, 40 * MIB), ms(20_000));
        assert_eq!(next_interval(5_000, 60_000, 2 * MIB, 400 * MIB), ms(60_000));
        assert_eq!(
            next_interval(5_000, 60_000, 0, 400 * MIB),
            ms(5_000),
            "0: no stretch"
        );
        assert_eq!(
            next_interval(5_000, 1_000, 2 * MIB, 400 * MIB),
            ms(5_000),
            "the cap never shortens it"
        );
        assert_eq!(next_interval(300, 60_000, 2 * MIB, u64::MAX), ms(60_000));
    }
}
