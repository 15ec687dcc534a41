//! Offsets that buffered events and open sessions still depend on.

use crate::hash::Map;
use std::collections::BTreeMap;

use crate::Source;

/// A multiset of held offsets per source; its minimum is the source's low water.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct HeldOffsets {
    by_source: Map<Source, BTreeMap<i64, u32>>,
}

impl HeldOffsets {
    pub(crate) fn hold(&mut self, source: Source, offset: i64) {
        *self
            .by_source
            .entry(source)
            .or_default()
            .entry(offset)
            .or_insert(0) += 1;
    }

    pub(crate) fn release(&mut self, source: Source, offset: i64) {
        if let Some(m) = self.by_source.get_mut(&source) {
            if let Some(n) = m.get_mut(&offset) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&offset);
                }
            }
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
        self.by_source
            .get(&source)
            .and_then(|m| m.keys().next().copied())
    }
}
