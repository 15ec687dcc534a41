//! The one retry policy of the pipeline: waits that double from a first
//! delay up to a cap, for whatever is retried until it succeeds (ClickHouse
//! inserts and checkpoint reads, Kafka deliveries). The caller sleeps; the
//! policy only says how long, so it is tested without a clock.

use std::time::Duration;

/// Doubling waits, capped.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Waits of `first`, then twice as long each time, at most `max` (never
    /// below `first`; a zero `first` counts as 1 ms).
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.max(Duration::from_millis(1));
        Backoff {
            next: first,
            max: max.max(first),
        }
    }

    /// [`Backoff::new`] from milliseconds, as settings give them.
    pub fn from_millis(first_ms: u64, max_ms: u64) -> Self {
        Self::new(
            Duration::from_millis(first_ms),
            Duration::from_millis(max_ms),
        )
    }

    /// The wait before the next attempt; the one after is twice as long.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let mut b = Backoff::from_millis(100, 500);
        let waits: Vec<u64> = (0..5).map(|_| b.next_wait().as_millis() as u64).collect();
        assert_eq!(waits, vec![100, 200, 400, 500, 500]);
    }

    #[test]
    fn a_zero_first_wait_and_a_cap_below_it_are_made_sane() {
        let mut b = Backoff::from_millis(0, 0);
        assert_eq!(b.next_wait(), Duration::from_millis(1));
        assert_eq!(b.next_wait(), Duration::from_millis(1));
        let mut b = Backoff::from_millis(300, 100);
        assert_eq!(
            b.next_wait(),
            Duration::from_millis(300),
            "the cap never shortens"
        );
    }
}
