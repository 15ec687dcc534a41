//! Noticing a partition whose fetch stalled: messages wait past the
//! consumer's position, the partition is being fetched, and nothing arrives.
//!
//! A broker that answers a fetch from the middle of a record batch with the
//! next batch instead of the one holding the offset (tansu 0.6 does, after a
//! pause, a rebalance or a restart at a committed position) skips the rest
//! of that batch, which [`crate::seek_back`] notices when the next batch
//! arrives. When the batch is the log's last one there is no next batch:
//! every fetch comes back empty and nothing would ever show the gap, while
//! the partition's backlog keeps it holding the watermark. The pipeline
//! then seeks back as it does past a gap. On Kafka this never fires; there
//! it would only cost re-reading (and skipping) the resume overlap.

use std::collections::{HashMap, HashSet};

use aggregator::Source;

/// How long a fetched partition with messages waiting may deliver nothing
/// before it counts as stalled: this long, and at least four fetch waits
/// (`kafka.fetch_wait_max_ms`). A partition the broker merely served late (after another's
/// backlog) costs a re-read of the resume overlap, skipped unapplied,
/// while every second of a real stall holds the watermark of all.
pub const STALL_MS: u64 = 2_000;

/// The same for a partition resumed (by alignment, newly assigned, or
/// sought) that has not moved since. That is where tansu 0.6 answers a
/// fetch from the middle of a batch with nothing, and where a broker has no
/// other reason to be slow: the partitions it was serving instead are the
/// ones just paused. Each stall held the watermark of all for this long; in
/// `../shared/bench` runs the longest wait of a fetched partition that then
/// delivered was 562 ms, and each stall came 2.0-2.1 s after a resume.
pub const RESUMED_STALL_MS: u64 = 750;

/// Where a partition with messages waiting stands.
#[derive(Debug, Clone, Copy)]
struct Wait {
    /// Its position.
    at: i64,
    /// Since when the position has not moved, counting only watched time.
    since_ms: u64,
    /// When it was last watched.
    watched_ms: u64,
}

/// The partitions with messages waiting, and how long each has not moved.
#[derive(Debug)]
pub struct Stalls {
    waits: HashMap<Source, Wait>,
    after_ms: u64,
    after_resumed_ms: u64,
    /// Sources resumed that have neither moved nor caught up since.
    resumed: HashSet<Source>,
}

impl Default for Stalls {
    fn default() -> Self {
        Stalls::new(0)
    }
}

impl Stalls {
    /// Stalls of a consumer whose fetches wait up to `fetch_wait_ms`.
    pub fn new(fetch_wait_ms: u64) -> Self {
        let floor = fetch_wait_ms.saturating_mul(4);
        Stalls {
            waits: HashMap::new(),
            after_ms: STALL_MS.max(floor),
            after_resumed_ms: RESUMED_STALL_MS.max(floor),
            resumed: HashSet::new(),
        }
    }

    /// `source` is fetched again from where it stopped or was sought (a
    /// resume, a new assignment, a seek): until it moves, it stalls after
    /// [`RESUMED_STALL_MS`].
    pub fn resumed(&mut self, source: Source) {
        self.waits.remove(&source);
        self.resumed.insert(source);
    }

    /// Whether `source`, read up to `position` (the next offset to read)
    /// with its log ending at `end`, stalled at `now_ms`: it is `fetching`
    /// (not paused), messages wait, and the position has not moved for
    /// [`STALL_MS`] ([`RESUMED_STALL_MS`] since a resume), or four fetch
    /// waits. Once reported, a stall is reported again only after as long
    /// again without progress.
    ///
    /// Only watched time counts: a gap of half that wait between two calls
    /// means the caller was not reading (blocked on its writer, say), and
    /// the wait starts again.
    pub fn stalled(
        &mut self,
        source: Source,
        position: Option<i64>,
        end: Option<i64>,
        fetching: bool,
        now_ms: u64,
    ) -> bool {
        if position.zip(end).is_some_and(|(at, end)| end <= at) {
            // Caught up: what it reads next starts a batch.
            self.resumed.remove(&source);
        }
        let waiting = position.zip(end).filter(|(at, end)| fetching && end > at);
        let Some((at, _)) = waiting else {
            self.waits.remove(&source);
            return false;
        };
        let fresh = Wait {
            at,
            since_ms: now_ms,
            watched_ms: now_ms,
        };
        let wait = self.waits.entry(source).or_insert(fresh);
        let unwatched = now_ms.saturating_sub(wait.watched_ms) > self.after_ms / 2;
        if wait.at != at || unwatched {
            if wait.at != at {
                self.resumed.remove(&source);
            }
            *wait = fresh;
            return false;
        }
        wait.watched_ms = now_ms;
        let after = if self.resumed.contains(&source) {
            self.after_resumed_ms
        } else {
            self.after_ms
        };
        if now_ms.saturating_sub(wait.since_ms) < after {
            return false;
        }
        wait.since_ms = now_ms;
        true
    }

    /// Forgets the sources `revoked` selects.
    pub fn forget(&mut self, revoked: impl Fn(Source) -> bool) {
        self.waits.retain(|s, _| !revoked(*s));
        self.resumed.retain(|s| !revoked(*s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Source = Source::new(0, 0);
    /// How often the pipeline's steps ask.
    const TICK: u64 = 200;

    /// `A` watched as the consume loop's steps watch it: asked every
    /// [`TICK`] with what it last saw, and at each time a test names.
    struct Steps {
        stalls: Stalls,
        last: Option<(Option<i64>, Option<i64>, bool, u64)>,
    }

    impl Steps {
        fn new(stalls: Stalls) -> Self {
            Steps { stalls, last: None }
        }

        fn at(
            &mut self,
            position: Option<i64>,
            end: Option<i64>,
            fetching: bool,
            now: u64,
        ) -> bool {
            if let Some((p, e, f, last)) = self.last {
                for t in (last + TICK..now).step_by(TICK as usize) {
                    assert!(
                        !self.stalls.stalled(A, p, e, f, t),
                        "reported between steps, at {t}"
                    );
                }
            }
            self.last = Some((position, end, fetching, now));
            self.stalls.stalled(A, position, end, fetching, now)
        }
    }

    #[test]
    fn a_fetched_partition_with_messages_waiting_and_no_progress_stalls() {
        let mut steps = Steps::new(Stalls::default());
        assert!(!steps.at(Some(100), Some(150), true, 0));
        assert!(!steps.at(Some(100), Some(150), true, STALL_MS - 1));
        assert!(steps.at(Some(100), Some(150), true, STALL_MS));
        // Reported once, then again after another period without progress.
        assert!(!steps.at(Some(100), Some(150), true, STALL_MS + 1));
        assert!(steps.at(Some(100), Some(150), true, 2 * STALL_MS));
    }

    #[test]
    fn long_fetch_waits_lengthen_the_wait() {
        let mut steps = Steps::new(Stalls::new(STALL_MS));
        assert!(!steps.at(Some(100), Some(150), true, 0));
        assert!(!steps.at(Some(100), Some(150), true, 3 * STALL_MS));
        assert!(steps.at(Some(100), Some(150), true, 4 * STALL_MS));
    }

    #[test]
    fn progress_restarts_the_wait() {
        let mut steps = Steps::new(Stalls::default());
        assert!(!steps.at(Some(100), Some(150), true, 0));
        assert!(!steps.at(Some(120), Some(150), true, STALL_MS - 1));
        assert!(!steps.at(Some(120), Some(150), true, STALL_MS + 1));
        assert!(steps.at(Some(120), Some(150), true, 2 * STALL_MS));
    }

    #[test]
    fn time_not_watched_does_not_count() {
        // The loop blocked (on its writer, say) between two steps: nothing
        // was read, so nothing says the fetch stalled.
        let mut stalls = Stalls::default();
        assert!(!stalls.stalled(A, Some(100), Some(150), true, 0));
        assert!(!stalls.stalled(A, Some(100), Some(150), true, 3 * STALL_MS));
        // Watched from then on, the wait counts.
        let mut steps = Steps::new(stalls);
        assert!(!steps.at(Some(100), Some(150), true, 3 * STALL_MS + TICK));
        assert!(steps.at(Some(100), Some(150), true, 4 * STALL_MS));
    }

    #[test]
    fn caught_up_paused_or_unknown_partitions_never_stall() {
        let mut steps = Steps::new(Stalls::default());
        for t in [0, STALL_MS, 2 * STALL_MS] {
            assert!(!steps.at(Some(150), Some(150), true, t), "caught up");
            assert!(!steps.at(Some(100), Some(150), false, t), "paused");
            assert!(!steps.at(None, Some(150), true, t), "no position");
            assert!(!steps.at(Some(100), None, true, t), "no end");
        }
        // A pause restarts the wait once fetching again.
        assert!(!steps.at(Some(100), Some(150), true, 3 * STALL_MS));
        assert!(!steps.at(Some(100), Some(150), false, 4 * STALL_MS));
        assert!(!steps.at(Some(100), Some(150), true, 4 * STALL_MS));
        assert!(steps.at(Some(100), Some(150), true, 5 * STALL_MS));
    }

    #[test]
    fn a_resumed_partition_that_delivers_nothing_stalls_sooner() {
        let mut steps = Steps::new(Stalls::default());
        steps.stalls.resumed(A);
        assert!(!steps.at(Some(100), Some(150), true, 0));
        assert!(!steps.at(Some(100), Some(150), true, RESUMED_STALL_MS - 1));
        assert!(steps.at(Some(100), Some(150), true, RESUMED_STALL_MS));
        // Not resumed: the whole wait.
        let mut steps = Steps::new(Stalls::default());
        assert!(!steps.at(Some(100), Some(150), true, 0));
        assert!(!steps.at(Some(100), Some(150), true, RESUMED_STALL_MS));
    }

    #[test]
    fn a_resumed_partition_that_moved_or_caught_up_waits_the_whole_wait_again() {
        // (position, end) when resumed, then a step later: moved on; or
        // caught up, then behind again.
        for (first, then) in [((100, 150), (120, 150)), ((150, 150), (150, 190))] {
            let mut steps = Steps::new(Stalls::default());
            steps.stalls.resumed(A);
            assert!(!steps.at(Some(first.0), Some(first.1), true, 0));
            let (at, end) = (Some(then.0), Some(then.1));
            assert!(!steps.at(at, end, true, TICK));
            assert!(!steps.at(at, end, true, TICK + RESUMED_STALL_MS));
            assert!(steps.at(at, end, true, TICK + STALL_MS));
        }
    }

    #[test]
    fn a_revoked_source_is_forgotten() {
        let mut steps = Steps::new(Stalls::default());
        assert!(!steps.at(Some(100), Some(150), true, 0));
        assert!(!steps.at(Some(100), Some(150), true, STALL_MS - TICK));
        steps.stalls.forget(|s| s == A);
        assert!(!steps.at(Some(100), Some(150), true, STALL_MS));
    }
}
