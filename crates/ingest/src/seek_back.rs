//! Seeking back past a gap: the fetch went on after the offset a partition's
//! store needs.
//!
//! Kafka answers a fetch with the whole record batch holding the offset asked
//! for (the client drops the records before it). A broker that starts at the
//! next batch instead (tansu 0.6, after a pause or a rebalance) skips the rest
//! of that batch. So the pipeline seeks back by the resume overlap, further
//! each time the fetch still starts past the offset needed, and skips what the
//! store holds. A gap that remains from the log start, or a seek that does not
//! take effect within [`SEEK_PATIENCE`], is a hole: counted, logged and read
//! past. This module decides; [`crate::KafkaInput`] seeks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aggregator::Source;

/// How long a seek may take to show in what is fetched.
pub const SEEK_PATIENCE: Duration = Duration::from_secs(10);

/// How long any seek back may take to bring something once the fetch has
/// stalled: the stall's own wait after a fresh start of the fetch.
/// [`crate::stall`] reports a stall of a sought partition only after that
/// long with nothing applied at the store's offset, so a report that long
/// after a seek means the seek brought nothing, whether it was made for a
/// stall (the batch holding the offset began further back than the seek
/// went) or for a gap (tansu 0.6 then answered the seek's fetches with
/// nothing at all). Waiting [`SEEK_PATIENCE`] on top only held the
/// watermark longer: 10 s in a benchmark run where the last batch held over
/// 1,000 messages, and 10 s in 1 of 2 `../shared/bench` runs after a gap.
/// A fetch that starts afresh and works delivers within a few fetch waits.
pub const STALL_SEEK_PATIENCE: Duration = Duration::from_millis(crate::stall::RESUMED_STALL_MS);

/// What to do with a message that arrived past a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// Drop it: fetched before the seek in progress took effect.
    Drop,
    /// Seek back to this offset (and drop the message).
    Seek(i64),
    /// A hole nothing can fill: apply the message and read on.
    Hole,
}

#[derive(Debug, Clone, Copy)]
struct Seek {
    /// The first offset that arrived past the gap (`i64::MAX` for a stalled
    /// fetch, where nothing arrived).
    trigger: i64,
    /// Where the seek went.
    target: i64,
    /// How far back from the offset needed it went.
    back: i64,
    since: Instant,
    /// The input's seek count once this seek was made (see
    /// [`crate::KafkaInput::seeks_made`]): a message whose read began
    /// before it was fetched before the seek.
    epoch: u64,
}

/// The seeks back in progress, by source.
#[derive(Debug)]
pub struct SeekBack {
    seeks: HashMap<Source, Seek>,
    /// The first step back, in messages (the resume overlap).
    step: i64,
    /// By source, the furthest back a seek that brought the offset needed
    /// went: a broker that answered a fetch past the offset asked for once
    /// does so again at the next resume, by up to a batch.
    learned: HashMap<Source, i64>,
}

impl SeekBack {
    /// Seeks that step back `step` messages first, four times as far after.
    pub fn new(step: i64) -> Self {
        SeekBack {
            seeks: HashMap::new(),
            step: step.max(1),
            learned: HashMap::new(),
        }
    }

    /// Whether a seek back is in progress on `source`.
    pub fn in_progress(&self, source: Source) -> bool {
        self.seeks.contains_key(&source)
    }

    /// The offset the store needed arrived: no seek is in progress, and
    /// the one that was (if any) went back far enough.
    pub fn arrived(&mut self, source: Source) {
        // Asked for every message in order: nothing to hash when no seek is
        // in progress, which is nearly always.
        if !self.seeks.is_empty() {
            if let Some(s) = self.seeks.remove(&source) {
                // The furthest needed: batches vary, and a distance that
                // fell short costs a round trip more than re-reading.
                let back = self.learned.entry(source).or_insert(self.step);
                *back = (*back).max(s.back);
            }
        }
    }

    /// No seek is in progress on `source` (it was given up).
    pub fn closed(&mut self, source: Source) {
        self.seeks.remove(&source);
    }

    /// How far back to seek `source` when it is fetched again from the
    /// offset needed (a resume): as far as the furthest of its seeks that
    /// worked went, or, before it needed one, the furthest any partition of
    /// its topic needed (one broker, one producer: batches of a kind).
    /// `None` on a broker that never answered a fetch past the offset asked
    /// for (Apache Kafka).
    pub fn learned(&self, source: Source) -> Option<i64> {
        self.learned.get(&source).copied().or_else(|| {
            let same_topic = self
                .learned
                .iter()
                .filter(|(s, _)| s.stream == source.stream);
            same_topic.map(|(_, back)| *back).max()
        })
    }

    /// What to do with `offset` of `source`, which arrived past `expected`,
    /// the offset its store needs, at `now`; `read_epoch` is the input's
    /// seek count when its read began. A message read before the seek in
    /// progress is dropped whatever its offset: a queue ahead of the loop
    /// (the pipeline's read-ahead) can still hold the very message that
    /// triggered the seek, and taking it again for the seek's answer would
    /// seek further, then call a hole.
    pub fn decide(
        &self,
        source: Source,
        offset: i64,
        expected: i64,
        now: Instant,
        read_epoch: u64,
    ) -> Gap {
        match self.seeks.get(&source) {
            None => Gap::Seek((expected - self.step).max(0)),
            Some(s) if read_epoch < s.epoch => Gap::Drop,
            Some(s) if offset > s.trigger && now.duration_since(s.since) < SEEK_PATIENCE => {
                Gap::Drop
            }
            Some(s) if s.target == 0 || offset > s.trigger => Gap::Hole,
            Some(s) => Gap::Seek((s.target - self.step * 4).max(0)),
        }
    }

    /// Where to seek `source`, whose fetch stalled (see [`crate::stall`])
    /// short of `expected`, the offset its store needs, at `now`: back by
    /// the overlap first, four times as far each time a seek (made for a
    /// stall or for a gap) brought nothing within [`STALL_SEEK_PATIENCE`];
    /// `None` while a seek may still take effect. Record the seek with [`SeekBack::sought_stalled`].
    pub fn stalled(&self, source: Source, expected: i64, now: Instant) -> Option<i64> {
        match self.seeks.get(&source) {
            None => Some((expected - self.step).max(0)),
            Some(s) if now.duration_since(s.since) < STALL_SEEK_PATIENCE => None,
            Some(s) => Some((s.target - self.step * 4).max(0)),
        }
    }

    /// A seek to `target` went out for a stalled fetch: nothing was fetched
    /// before it, so a message that arrives past the gap afterwards means
    /// the seek did not reach back far enough.
    /// `expected` is the offset the store needs.
    pub fn sought_stalled(
        &mut self,
        source: Source,
        expected: i64,
        target: i64,
        now: Instant,
        epoch: u64,
    ) {
        self.sought(source, (i64::MAX, expected), target, now, epoch);
    }

    /// A seek to `target` went out for `(offset, expected)`: `offset`
    /// arrived past the gap (`i64::MAX` when nothing did), `expected` is the
    /// offset the store needs; `epoch` is the input's seek count with it.
    pub fn sought(
        &mut self,
        source: Source,
        (offset, expected): (i64, i64),
        target: i64,
        now: Instant,
        epoch: u64,
    ) {
        let seek = Seek {
            trigger: offset,
            target,
            back: expected.saturating_sub(target),
            since: now,
            epoch,
        };
        self.seeks.insert(source, seek);
    }

    /// Forgets the sources `revoked` selects.
    pub fn forget(&mut self, revoked: impl Fn(Source) -> bool) {
        self.seeks.retain(|s, _| !revoked(*s));
        self.learned.retain(|s, _| !revoked(*s));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Source = Source::new(0, 0);

    #[test]
    fn a_first_gap_seeks_back_by_the_overlap_then_four_times_as_far() {
        let now = Instant::now();
        let mut seeks = SeekBack::new(100);
        assert_eq!(seeks.decide(A, 1_000, 950, now, 1), Gap::Seek(850));
        seeks.sought(A, (1_000, 950), 850, now, 1);
        assert!(seeks.in_progress(A));
        // The seek took effect and the fetch starts past the gap again.
        assert_eq!(seeks.decide(A, 1_000, 950, now, 1), Gap::Seek(450));
        seeks.closed(A);
        assert!(!seeks.in_progress(A));
    }

    #[test]
    fn what_was_fetched_before_the_seek_took_effect_is_dropped_for_a_while() {
        let now = Instant::now();
        let mut seeks = SeekBack::new(100);
        seeks.sought(A, (1_000, 950), 850, now, 1);
        assert_eq!(seeks.decide(A, 1_001, 950, now, 1), Gap::Drop);
        let later = now + SEEK_PATIENCE;
        assert_eq!(
            seeks.decide(A, 1_001, 950, later, 1),
            Gap::Hole,
            "never took effect"
        );
    }

    #[test]
    fn a_gap_from_the_log_start_is_a_hole() {
        let now = Instant::now();
        let mut seeks = SeekBack::new(100);
        assert_eq!(seeks.decide(A, 60, 50, now, 1), Gap::Seek(0));
        seeks.sought(A, (60, 50), 0, now, 1);
        assert_eq!(seeks.decide(A, 60, 50, now, 1), Gap::Hole);
    }

    #[test]
    fn a_stalled_fetch_seeks_back_by_the_overlap_then_further_if_nothing_came() {
        let now = Instant::now();
        let mut seeks = SeekBack::new(100);
        assert_eq!(seeks.stalled(A, 950, now), Some(850));
        seeks.sought_stalled(A, 950, 850, now, 1);
        assert_eq!(
            seeks.stalled(A, 950, now),
            None,
            "the seek may still take effect"
        );
        // Stalled again a whole stall wait later: the seek brought nothing,
        // so further back without waiting a gap's patience.
        let later = now + STALL_SEEK_PATIENCE;
        assert!(STALL_SEEK_PATIENCE < SEEK_PATIENCE);
        assert_eq!(seeks.stalled(A, 950, later), Some(450));
        // The seek took effect but the fetch started past the gap again:
        // further back at once, nothing dropped.
        assert_eq!(seeks.decide(A, 1_000, 950, now, 1), Gap::Seek(450));
        // Something the store held arrived: the seek is over.
        seeks.arrived(A);
        assert_eq!(seeks.stalled(A, 950, later), Some(850));
    }

    #[test]
    fn a_stall_a_stall_wait_after_a_seek_past_a_gap_seeks_further_back() {
        let now = Instant::now();
        let mut seeks = SeekBack::new(100);
        seeks.sought(A, (1_000, 950), 850, now, 1);
        let soon = now + STALL_SEEK_PATIENCE / 2;
        assert_eq!(
            seeks.stalled(A, 950, soon),
            None,
            "the seek may still take effect"
        );
        // Nothing applied for a whole stall wait after the seek: it brought
        // nothing, and a gap's patience would only hold the watermark.
        assert_eq!(seeks.stalled(A, 950, now + STALL_SEEK_PATIENCE), Some(450));
    }

    #[test]
    fn a_message_read_before_the_seek_is_dropped_whatever_its_offset() {
        let now = Instant::now();
        let mut seeks = SeekBack::new(100);
        assert_eq!(seeks.decide(A, 1_000, 950, now, 0), Gap::Seek(850));
        seeks.sought(A, (1_000, 950), 850, now, 1);
        // The trigger again, read before the seek (a queue ahead of the
        // loop held a second copy): not a sign the seek fell short.
        assert_eq!(seeks.decide(A, 1_000, 950, now, 0), Gap::Drop);
        assert_eq!(
            seeks.decide(A, 1_000, 950, now + SEEK_PATIENCE, 0),
            Gap::Drop
        );
        // Read after the seek and still past the gap: further back.
        assert_eq!(seeks.decide(A, 1_000, 950, now, 1), Gap::Seek(450));
    }

    #[test]
    fn a_seek_that_brought_the_offset_teaches_how_far_to_go_at_the_next_resume() {
        let now = Instant::now();
        let mut seeks = SeekBack::new(100);
        seeks.arrived(A);
        assert_eq!(seeks.learned(A), None, "no seek was ever needed");
        seeks.sought(A, (1_000, 950), 850, now, 1);
        assert_eq!(seeks.decide(A, 1_000, 950, now, 1), Gap::Seek(450));
        seeks.sought(A, (1_000, 950), 450, now, 1);
        seeks.arrived(A);
        assert_eq!(seeks.learned(A), Some(500));
        // A seek given up (a hole) teaches nothing.
        seeks.sought(A, (2_000, 1_950), 1_900, now, 1);
        seeks.closed(A);
        assert_eq!(seeks.learned(A), Some(500));
        // The furthest so far, never less than the overlap.
        seeks.sought(A, (3_000, 2_990), 2_980, now, 1);
        seeks.arrived(A);
        assert_eq!(seeks.learned(A), Some(500));
        let b = Source::new(0, 2);
        seeks.sought(b, (3_000, 2_990), 2_980, now, 1);
        seeks.arrived(b);
        assert_eq!(seeks.learned(b), Some(100));
        // Another partition of the topic starts from what this one needed;
        // another topic does not.
        assert_eq!(seeks.learned(Source::new(0, 1)), Some(500));
        assert_eq!(seeks.learned(Source::new(1, 0)), None);
        seeks.forget(|s| s == A);
        assert_eq!(
            seeks.learned(A),
            Some(100),
            "from the topic's other partition"
        );
        seeks.forget(|s| s == b);
        assert_eq!(seeks.learned(Source::new(0, 1)), None);
    }

    #[test]
    fn a_revoked_source_has_no_seek_in_progress() {
        let mut seeks = SeekBack::new(100);
        seeks.sought(A, (60, 50), 0, Instant::now(), 1);
        seeks.forget(|s| s == A);
        assert!(!seeks.in_progress(A));
    }
}
