//! Time to convert, per funnel stage: how long sessions took from their
//! start to each sequential stage they reached, as a histogram per window
//! of session start, channel, stage and partition (`stage_times_1m`).
//!
//! A session reaching stage k (in order, as the funnel counts it) adds one
//! to the bucket of the time from its start to that stage's event. A
//! window of session start is final, like the session windows, once the
//! watermark has passed it and every session started in it has closed;
//! until then its rows are re-emitted with a higher version as sessions
//! reach stages.

use std::collections::{BTreeMap, BTreeSet};

use contract::time::window_start;

use crate::channel::Channel;

/// Upper bounds of the buckets, in ms (a time equal to a bound falls in its
/// bucket): 10 s, 30 s, 1, 2, 5, 10, 30 min, 1, 3, 24 h; one more bucket
/// holds what is longer.
pub const BUCKET_BOUNDS_MS: [i64; 10] = [
    10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000, 10_800_000, 86_400_000,
];

/// The buckets: one per bound, and one past the last.
pub const BUCKETS: usize = BUCKET_BOUNDS_MS.len() + 1;

/// The bucket of a time.
pub fn bucket_of(elapsed_ms: i64) -> usize {
    BUCKET_BOUNDS_MS
        .iter()
        .position(|&b| elapsed_ms <= b)
        .unwrap_or(BUCKET_BOUNDS_MS.len())
}

/// A session reached a funnel stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StageReached {
    /// The stage's index, as `funnel_1m_final` numbers it (`session` is 1,
    /// the first stage after it 2).
    pub(crate) stage: u8,
    /// When the session started.
    pub(crate) start_ms: i64,
    /// From the start to the stage's event.
    pub(crate) elapsed_ms: i64,
    /// The session's channel and partition.
    pub(crate) channel: Channel,
    pub(crate) partition: i32,
}

/// Per window of session start, channel, stage and partition: the sessions
/// per bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StageTimeRow {
    /// Window of session start.
    pub window_start_ms: i64,
    /// The sessions' channel.
    pub channel: Channel,
    /// The stage's index, as `funnel_1m_final` numbers it (`session` is 1,
    /// the first stage after it 2).
    pub stage_index: u8,
    /// Its name.
    pub stage: String,
    /// Partition of the input.
    pub partition: i32,
    /// Sessions per bucket of [`BUCKET_BOUNDS_MS`], and past the last.
    pub buckets: [u64; BUCKETS],
    /// Grows with each re-emission.
    pub version: u64,
}

type Key = (i64, Channel, u8, i32);

/// The open windows' histograms.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct StageTimes {
    acc: BTreeMap<Key, StageTimeRow>,
    dirty: BTreeSet<Key>,
}

impl StageTimes {
    /// Counts `r` in its window of `window_ms`; `stages` names the funnel
    /// stages after `session`.
    pub(crate) fn reached(&mut self, r: StageReached, window_ms: i64, stages: &[String]) {
        let w = window_start(r.start_ms, window_ms);
        let key = (w, r.channel, r.stage, r.partition);
        let row = self.acc.entry(key).or_insert_with(|| StageTimeRow {
            window_start_ms: w,
            channel: r.channel,
            stage_index: r.stage,
            stage: (usize::from(r.stage).checked_sub(2))
                .and_then(|i| stages.get(i))
                .cloned()
                .unwrap_or_default(),
            partition: r.partition,
            buckets: [0; BUCKETS],
            version: 0,
        });
        row.buckets[bucket_of(r.elapsed_ms)] += 1;
        row.version += 1;
        self.dirty.insert(key);
    }

    /// The rows changed since the last call; windows the watermark has
    /// passed whose sessions have all closed (`open` says which still
    /// have one) are dropped after.
    pub(crate) fn flush(
        &mut self,
        watermark_ms: i64,
        window_ms: i64,
        open: impl Fn(i64) -> bool,
    ) -> Vec<StageTimeRow> {
        let rows = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|k| self.acc.get(&k).cloned())
            .collect();
        self.acc
            .retain(|(w, ..), _| w + window_ms > watermark_ms || open(*w));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_falls_in_the_bucket_of_the_first_bound_it_does_not_exceed() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(10_000), 0, "10 s is in the 10 s bucket");
        assert_eq!(bucket_of(10_001), 1);
        assert_eq!(bucket_of(86_400_000), 9);
        assert_eq!(bucket_of(86_400_001), 10, "more than 24 h");
    }

    #[test]
    fn a_window_counts_its_sessions_until_they_have_all_closed() {
        let stages = ["product_view", "add_to_cart"].map(String::from);
        let mut t = StageTimes::default();
        let r = |stage, start_ms, elapsed_ms| StageReached {
            stage,
            start_ms,
            elapsed_ms,
            channel: Channel::Email,
            partition: 0,
        };
        t.reached(r(2, 1_000, 5_000), 60_000, &stages);
        t.reached(r(2, 2_000, 45_000), 60_000, &stages);
        t.reached(r(3, 2_000, 90_000), 60_000, &stages);
        let rows = t.flush(60_000, 60_000, |_| true);
        let views = rows.iter().find(|r| r.stage_index == 2).expect("a row");
        assert_eq!(views.stage, "product_view");
        assert_eq!(&views.buckets[..3], [1, 0, 1]);
        assert_eq!(views.version, 2);
        assert_eq!(rows.len(), 2);
        assert!(t.flush(120_000, 60_000, |_| true).is_empty());
        t.reached(r(3, 1_000, 3_600_000), 60_000, &stages);
        let later = t.flush(4_000_000, 60_000, |_| false);
        assert_eq!(later[0].buckets[7], 1, "1 h exactly");
        assert_eq!(later[0].buckets[3], 1, "the earlier one stays");
        assert!(t.acc.is_empty(), "closed: every session ended");
    }
}
