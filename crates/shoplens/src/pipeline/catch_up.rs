//! Notices when the pipeline has read a backlog to its end, so that what
//! the backlog's last steps closed is written at once.
//!
//! The writer lingers over a batch with few rows, waiting for the next
//! ones to share its insert: at a live pace that keeps ClickHouse at about
//! one insert per second per table. At the end of a backlog (a restart, a
//! broker or ClickHouse outage, a replay) nothing more is coming, and the
//! linger only delays the results it closed. What follows them does too:
//! the customer books advance on watermark markers that go through Kafka
//! after the rows are durable, so each linger on that path adds up.
//!
//! A backlog is an input lag of at least `pipeline.max_batch_events`
//! messages at a step (a live feed lags by a tick's messages, far fewer).
//! Its end is the first step after it at which every input partition's
//! position is at the end of its log as the broker last reported it. For
//! one linger from then, batches go out without lingering: a handful of
//! inserts, once per backlog. The step at the end also takes a checkpoint,
//! whatever the interval says: the backlog's offsets commit with the state
//! it built, so a restart soon after does not read it all again, and the
//! state is saved while the input is quiet.

use std::time::Duration;

/// Watches the input lag step by step; see the module.
#[derive(Debug)]
pub(super) struct CatchUp {
    /// The lag, in messages, that counts as a backlog.
    backlog: i64,
    /// How long after a backlog's end batches go out at once.
    prompt_for: Duration,
    /// A backlog was seen and has not been read to its end yet.
    behind: bool,
    /// When the last backlog was read to its end.
    caught_up_at: Option<Duration>,
    /// The last step observed was the one that read a backlog to its end.
    ended: bool,
}

impl CatchUp {
    /// A watch counting `backlog` messages of lag as a backlog, whose end
    /// makes batches prompt for `prompt_for`.
    pub(super) fn new(backlog: usize, prompt_for: Duration) -> Self {
        CatchUp {
            backlog: i64::try_from(backlog).unwrap_or(i64::MAX).max(1),
            prompt_for,
            behind: false,
            caught_up_at: None,
            ended: false,
        }
    }

    /// The input lag at a step taken at `now` (time since the pipeline
    /// started): `None` while an input partition's end or position is not
    /// known. Returns whether this step's batch should go out at once.
    pub(super) fn observe(&mut self, lag: Option<i64>, now: Duration) -> bool {
        self.ended = false;
        match lag {
            Some(lag) if lag >= self.backlog => self.behind = true,
            Some(0) if self.behind => {
                self.behind = false;
                self.caught_up_at = Some(now);
                self.ended = true;
            }
            _ => {}
        }
        self.caught_up_at
            .is_some_and(|at| now.saturating_sub(at) < self.prompt_for)
    }

    /// Whether the last step observed read a backlog to its end: a
    /// checkpoint is due then.
    pub(super) fn ended(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn batches_are_prompt_for_one_linger_after_a_backlog_is_read_to_its_end() {
        let mut c = CatchUp::new(1_000, s(1.0));
        assert!(!c.observe(Some(5_000), s(0.0)), "behind");
        assert!(!c.observe(Some(300), s(0.2)), "nearly there");
        assert!(!c.observe(None, s(0.3)), "an end not known is no end");
        assert!(c.observe(Some(0), s(0.4)), "read to the end");
        assert!(c.observe(Some(20), s(1.2)), "a live message meanwhile");
        assert!(c.observe(Some(0), s(1.39)), "within one linger");
        assert!(!c.observe(Some(0), s(1.4)), "one linger later");
    }

    #[test]
    fn a_live_feed_that_lags_by_a_few_messages_is_never_a_backlog() {
        let mut c = CatchUp::new(1_000, s(1.0));
        for step in 0..100 {
            let lag = if step % 2 == 0 { 999 } else { 0 };
            assert!(!c.observe(Some(lag), s(f64::from(step) * 0.2)));
        }
    }

    #[test]
    fn each_backlog_ends_once() {
        let mut c = CatchUp::new(1_000, s(1.0));
        c.observe(Some(1_000), s(0.0));
        assert!(!c.ended(), "behind");
        assert!(c.observe(Some(0), s(1.0)));
        assert!(c.ended(), "the step that reads it to its end");
        assert!(c.observe(Some(0), s(1.5)), "still prompt");
        assert!(!c.ended(), "but ended one step before");
        assert!(!c.observe(Some(0), s(2.0)), "the same end, later");
        c.observe(Some(50_000), s(10.0));
        assert!(!c.observe(Some(10), s(10.2)));
        assert!(!c.ended());
        assert!(c.observe(Some(0), s(10.4)), "the next backlog's end");
        assert!(c.ended());
    }
}
