//! Offsets that buffered events and open sessions still depend on.
//!
//! Every session start and close holds and releases an offset, so these are
//! per-event costs, while the minimum is asked only when a checkpoint is
//! taken. Offsets held arrive nearly in order (a session holds its first
//! event's offset), so each source keeps a sorted ring of (offset, holds):
//! a hold is mostly a push at the back, a release a binary search in
//! contiguous memory. A B-tree multiset did the same with a node walk per
//! operation.

use std::collections::{BTreeMap, VecDeque};

use serde::ser::{SerializeMap, SerializeStruct};

use crate::Source;

/// One source's held offsets: (offset, holds) in ascending offset order.
/// A step whose holds fell to zero stays in place (a tombstone) until it
/// reaches the front, where it is dropped, or until tombstones are more
/// than half the steps, when they are swept. The front step is always held.
#[derive(Debug, Default)]
struct Ladder {
    steps: VecDeque<(i64, u32)>,
    /// Steps with no holds.
    empty: usize,
}

impl Ladder {
    /// Tombstones tolerated before a sweep is considered.
    const SWEEP_AFTER: usize = 64;

    fn hold(&mut self, offset: i64) {
        if self.steps.back().is_none_or(|last| last.0 < offset) {
            self.steps.push_back((offset, 1));
            return;
        }
        match self.steps.binary_search_by_key(&offset, |s| s.0) {
            Ok(i) => {
                let step = &mut self.steps[i];
                if step.1 == 0 {
                    self.empty -= 1;
                }
                step.1 += 1;
            }
            Err(i) => self.steps.insert(i, (offset, 1)),
        }
    }

    fn release(&mut self, offset: i64) {
        let Ok(i) = self.steps.binary_search_by_key(&offset, |s| s.0) else {
            return;
        };
        let step = &mut self.steps[i];
        if step.1 == 0 {
            return;
        }
        step.1 -= 1;
        if step.1 > 0 {
            return;
        }
        self.empty += 1;
        while self.steps.front().is_some_and(|s| s.1 == 0) {
            self.steps.pop_front();
            self.empty -= 1;
        }
        if self.empty > Self::SWEEP_AFTER && self.empty * 2 > self.steps.len() {
            self.steps.retain(|s| s.1 > 0);
            self.empty = 0;
        }
    }

    fn low(&self) -> Option<i64> {
        self.steps.front().map(|s| s.0)
    }

    /// The held steps, ascending.
    fn held(&self) -> impl Iterator<Item = (i64, u32)> + '_ {
        self.steps.iter().copied().filter(|s| s.1 > 0)
    }
}

/// A multiset of held offsets per source; its minimum is the source's low
/// water. Checkpoints carry it as a map of source to (offset -> holds), as
/// they did when it was kept that way; a restore rebuilds it from the
/// restored state's holds anyway.
#[derive(Debug, Default)]
pub(crate) struct HeldOffsets {
    /// A handful of sources per store: a scan beats hashing.
    by_source: Vec<(Source, Ladder)>,
}

impl HeldOffsets {
    fn ladder(&mut self, source: Source) -> &mut Ladder {
        let i = match self.by_source.iter().position(|(s, _)| *s == source) {
            Some(i) => i,
            None => {
                self.by_source.push((source, Ladder::default()));
                self.by_source.len() - 1
            }
        };
        &mut self.by_source[i].1
    }

    pub(crate) fn hold(&mut self, source: Source, offset: i64) {
        self.ladder(source).hold(offset);
    }

    pub(crate) fn release(&mut self, source: Source, offset: i64) {
        if let Some((_, l)) = self.by_source.iter_mut().find(|(s, _)| *s == source) {
            l.release(offset);
        }
    }

    /// The holds of `holds` alone (checkpoints written before the buffered
    /// events stopped holding theirs also held those).
    pub(crate) fn rebuild(&mut self, holds: impl IntoIterator<Item = (Source, i64)>) {
        self.by_source.clear();
        for (source, offset) in holds {
            self.hold(source, offset);
        }
    }

    pub(crate) fn low(&self, source: Source) -> Option<i64> {
        let (_, l) = self.by_source.iter().find(|(s, _)| *s == source)?;
        l.low()
    }
}

/// One source's steps, written as a map of offset to holds.
struct Steps<'a>(&'a Ladder);

impl serde::Serialize for Steps<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.steps.len() - self.0.empty))?;
        for (offset, holds) in self.0.held() {
            map.serialize_entry(&offset, &holds)?;
        }
        map.end()
    }
}

/// Every source's steps, written as a map of source to [`Steps`].
struct BySource<'a>(&'a [(Source, Ladder)]);

impl serde::Serialize for BySource<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (source, ladder) in self.0 {
            map.serialize_entry(source, &Steps(ladder))?;
        }
        map.end()
    }
}

impl serde::Serialize for HeldOffsets {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("HeldOffsets", 1)?;
        st.serialize_field("by_source", &BySource(&self.by_source))?;
        st.end()
    }
}

/// The layout checkpoints carry (see [`HeldOffsets`]).
#[derive(serde::Deserialize)]
struct Wire {
    by_source: BTreeMap<Source, BTreeMap<i64, u32>>,
}

impl<'de> serde::Deserialize<'de> for HeldOffsets {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(d)?;
        let mut held = HeldOffsets::default();
        for (source, steps) in wire.by_source {
            let ladder = held.ladder(source);
            for (offset, holds) in steps.into_iter().filter(|s| s.1 > 0) {
                ladder.steps.push_back((offset, holds));
            }
        }
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Source = Source {
        stream: 0,
        partition: 3,
    };
    const B: Source = Source {
        stream: 1,
        partition: 3,
    };

    /// The multiset the ladder replaced, as the oracle.
    #[derive(Default)]
    struct Model(BTreeMap<Source, BTreeMap<i64, u32>>);

    impl Model {
        fn hold(&mut self, s: Source, o: i64) {
            *self.0.entry(s).or_default().entry(o).or_insert(0) += 1;
        }
        fn release(&mut self, s: Source, o: i64) {
            if let Some(m) = self.0.get_mut(&s) {
                if let Some(n) = m.get_mut(&o) {
                    *n -= 1;
                    if *n == 0 {
                        m.remove(&o);
                    }
                }
            }
        }
        fn low(&self, s: Source) -> Option<i64> {
            self.0.get(&s).and_then(|m| m.keys().next().copied())
        }
    }

    /// A deterministic xorshift, so a failure replays.
    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn the_low_water_is_the_least_offset_still_held_as_the_multiset_said() {
        let (mut held, mut model) = (HeldOffsets::default(), Model::default());
        let mut live: Vec<(Source, i64)> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for step in 0..200_000i64 {
            let r = rng(&mut seed);
            let source = if r & 1 == 0 { A } else { B };
            if r % 5 < 3 || live.is_empty() {
                // Mostly ascending, with some jitter back and repeats.
                let offset = (step / 2 - (r >> 8) as i64 % 40).max(0);
                held.hold(source, offset);
                model.hold(source, offset);
                live.push((source, offset));
            } else {
                let (s, o) = live.swap_remove((r >> 16) as usize % live.len());
                held.release(s, o);
                model.release(s, o);
            }
            // Releasing what is not held changes nothing, as before.
            if r.is_multiple_of(97) {
                held.release(source, -5);
            }
            assert_eq!(held.low(A), model.low(A), "step {step}");
            assert_eq!(held.low(B), model.low(B), "step {step}");
        }
        for (s, o) in live.drain(..) {
            held.release(s, o);
        }
        assert_eq!((held.low(A), held.low(B)), (None, None));
        let ladder = &held.by_source[0].1;
        assert!(ladder.steps.is_empty() && ladder.empty == 0);
    }

    #[test]
    fn tombstones_are_swept_once_they_outnumber_the_held_steps() {
        let mut held = HeldOffsets::default();
        for o in 0..1_000 {
            held.hold(A, o);
        }
        // Release every offset but the first: none reaches the front.
        for o in 1..1_000 {
            held.release(A, o);
        }
        let ladder = &held.by_source[0].1;
        assert!(ladder.steps.len() <= 2 * Ladder::SWEEP_AFTER + 2);
        assert_eq!(held.low(A), Some(0));
    }

    #[test]
    fn checkpoints_carry_the_map_the_multiset_wrote() {
        let (mut held, mut model) = (HeldOffsets::default(), Model::default());
        for (s, o) in [(A, 7), (A, 3), (A, 7), (B, 1), (A, 9)] {
            held.hold(s, o);
            model.hold(s, o);
        }
        held.release(A, 9);
        model.release(A, 9);
        #[derive(serde::Serialize)]
        struct Was<'a> {
            by_source: &'a BTreeMap<Source, BTreeMap<i64, u32>>,
        }
        let bytes = postcard::to_stdvec(&held).expect("encodes");
        assert_eq!(
            bytes,
            postcard::to_stdvec(&Was {
                by_source: &model.0
            })
            .expect("encodes")
        );
        let back: HeldOffsets = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!((back.low(A), back.low(B)), (Some(3), Some(1)));
        assert_eq!(postcard::to_stdvec(&back).expect("encodes"), bytes);
    }
}
