//! Which offsets may be committed, and which were: the rule that makes the
//! pipeline effectively-once.
//!
//! Offsets move only with a checkpoint. A restart resumes from the state
//! saved with them, never from a position the state lacks. The committed
//! position of a source trails its checkpoint down to the oldest offset the
//! open state still holds, less an overlap: a restart re-reads from there and
//! skips (without applying it) what the restored store already has. Kafka needs
//! no overlap; it covers brokers that resume a fetch at the next record batch
//! rather than inside the one holding the offset asked for.

use std::collections::HashMap;

use aggregator::Source;

/// The positions to commit once a checkpoint is durable: for each source it
/// saved with its next offset, `min(low_water, next) - overlap`, never below
/// 0. `low_water` is the oldest offset the source's open state holds, if it
/// holds any.
pub fn commit_positions(
    saved: impl IntoIterator<Item = (Source, i64)>,
    low_water: impl Fn(Source) -> Option<i64>,
    overlap: i64,
) -> Vec<(Source, i64)> {
    saved
        .into_iter()
        .map(|(source, next)| {
            let low = low_water(source).map_or(next, |l| l.min(next));
            (source, (low - overlap.max(0)).max(0))
        })
        .collect()
}

/// The positions sent to Kafka, so that none is sent twice or moved back.
#[derive(Debug, Default)]
pub struct CommitLedger {
    committed: HashMap<Source, i64>,
}

impl CommitLedger {
    /// Of `positions` (in the order they were made, possibly several per
    /// source from merged writes), the furthest of each source, where it is
    /// past what was committed: what to send now.
    pub fn to_send(&self, positions: &[(Source, i64)]) -> Vec<(Source, i64)> {
        let mut furthest: Vec<(Source, i64)> = Vec::new();
        for &(source, position) in positions {
            match furthest.iter_mut().find(|(s, _)| *s == source) {
                Some(entry) => entry.1 = entry.1.max(position),
                None => furthest.push((source, position)),
            }
        }
        furthest.retain(|(source, position)| {
            self.committed
                .get(source)
                .is_none_or(|committed| committed < position)
        });
        furthest
    }

    /// `positions` were sent.
    pub fn sent(&mut self, positions: &[(Source, i64)]) {
        for &(source, position) in positions {
            self.committed.insert(source, position);
        }
    }

    /// The commit of `positions` failed: the next batch sends its own
    /// positions of those sources whatever they are.
    pub fn failed(&mut self, positions: &[(Source, i64)]) {
        for (source, _) in positions {
            self.committed.remove(source);
        }
    }

    /// Forgets the sources `revoked` selects: their next owner commits them.
    pub fn forget(&mut self, revoked: impl Fn(Source) -> bool) {
        self.committed.retain(|s, _| !revoked(*s));
    }

    /// The last position sent for `source`.
    pub fn get(&self, source: Source) -> Option<i64> {
        self.committed.get(&source).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Source = Source::new(0, 0);
    const B: Source = Source::new(1, 0);

    #[test]
    fn a_position_trails_the_checkpoint_by_the_overlap() {
        assert_eq!(commit_positions([(A, 500)], |_| None, 100), vec![(A, 400)]);
        assert_eq!(commit_positions([(A, 500)], |_| None, 0), vec![(A, 500)]);
    }

    #[test]
    fn open_state_holds_the_position_back_to_its_oldest_offset() {
        let low = |s: Source| (s == A).then_some(120);
        assert_eq!(
            commit_positions([(A, 500), (B, 500)], low, 100),
            vec![(A, 20), (B, 400)],
            "A's open state began at 120; B holds nothing open"
        );
    }

    #[test]
    fn a_low_water_past_the_checkpoint_does_not_move_the_position_ahead() {
        assert_eq!(
            commit_positions([(A, 500)], |_| Some(900), 100),
            vec![(A, 400)]
        );
    }

    #[test]
    fn a_position_is_never_below_the_log_start() {
        assert_eq!(commit_positions([(A, 30)], |_| None, 100), vec![(A, 0)]);
        assert_eq!(commit_positions([(A, 30)], |_| Some(5), 100), vec![(A, 0)]);
        assert_eq!(commit_positions([(A, 30)], |_| None, -5), vec![(A, 30)]);
    }

    #[test]
    fn no_checkpoint_no_position() {
        assert!(commit_positions([], |_| Some(1), 100).is_empty());
    }

    #[test]
    fn a_merged_write_sends_the_furthest_position_of_each_source_once() {
        let ledger = CommitLedger::default();
        assert_eq!(
            ledger.to_send(&[(A, 10), (B, 7), (A, 20)]),
            vec![(A, 20), (B, 7)]
        );
    }

    #[test]
    fn a_position_is_sent_once_and_never_moved_back() {
        let mut ledger = CommitLedger::default();
        let first = ledger.to_send(&[(A, 20)]);
        ledger.sent(&first);
        assert!(ledger.to_send(&[(A, 20)]).is_empty(), "already sent");
        assert!(ledger.to_send(&[(A, 15)]).is_empty(), "never back");
        assert_eq!(ledger.to_send(&[(A, 21)]), vec![(A, 21)]);
        assert_eq!(ledger.get(A), Some(20));
    }

    #[test]
    fn a_failed_commit_is_sent_again_with_the_next_batch() {
        let mut ledger = CommitLedger::default();
        ledger.sent(&[(A, 20)]);
        ledger.failed(&[(A, 20)]);
        assert_eq!(ledger.to_send(&[(A, 20)]), vec![(A, 20)]);
    }

    #[test]
    fn a_revoked_source_is_forgotten_and_the_others_kept() {
        let mut ledger = CommitLedger::default();
        ledger.sent(&[(A, 20), (B, 30)]);
        ledger.forget(|s| s == A);
        assert_eq!(ledger.get(A), None);
        assert_eq!(ledger.to_send(&[(A, 10), (B, 30)]), vec![(A, 10)]);
    }
}
