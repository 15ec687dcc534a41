//! A bounded set of recently seen event ids.

use crate::hash::Map;
use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Remembers 64-bit hashes of event ids for `horizon_ms` of event time, at
/// most `max_ids` of them; ids pushed out by the bound early are counted.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Dedup {
    horizon_ms: i64,
    max_ids: usize,
    ids: Map<u64, i64>,
    order: VecDeque<(i64, u64)>,
    evicted_early: u64,
}

/// An event id as the set keeps it: hashed once per event, then looked up
/// and inserted.
#[derive(Clone, Copy)]
pub(crate) struct IdKey(u64);

impl IdKey {
    pub(crate) fn of(id: &str) -> IdKey {
        // SipHash with fixed keys: the same id hashes the same in every process.
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        IdKey(h.finish())
    }
}

impl Dedup {
    pub(crate) fn new(horizon_ms: i64, max_ids: usize) -> Self {
        Dedup {
            horizon_ms,
            max_ids: max_ids.max(1),
            ids: Map::default(),
            order: VecDeque::new(),
            evicted_early: 0,
        }
    }

    pub(crate) fn seen(&self, id: IdKey) -> bool {
        self.ids.contains_key(&id.0)
    }

    pub(crate) fn insert(&mut self, id: IdKey, ts: i64) {
        let h = id.0;
        self.ids.insert(h, ts);
        self.order.push_back((ts, h));
        while self.ids.len() > self.max_ids {
            if !self.pop_front() {
                break;
            }
            self.evicted_early += 1;
        }
    }

    /// Forgets ids older than the horizon behind `watermark_ms`.
    pub(crate) fn expire(&mut self, watermark_ms: i64) {
        let cutoff = watermark_ms.saturating_sub(self.horizon_ms);
        while self.order.front().is_some_and(|(ts, _)| *ts < cutoff) {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) -> bool {
        let Some((ts, h)) = self.order.pop_front() else {
            return false;
        };
        if self.ids.get(&h) == Some(&ts) {
            self.ids.remove(&h);
        }
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn evicted_early(&self) -> u64 {
        self.evicted_early
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_ids_for_the_horizon_then_forgets() {
        let mut d = Dedup::new(1000, 10);
        d.insert(IdKey::of("a"), 0);
        assert!(d.seen(IdKey::of("a")));
        d.expire(1000);
        assert!(d.seen(IdKey::of("a")));
        d.expire(1001);
        assert!(!d.seen(IdKey::of("a")));
    }

    #[test]
    fn the_memory_bound_evicts_oldest_first_and_counts_it() {
        let mut d = Dedup::new(1_000_000, 2);
        d.insert(IdKey::of("a"), 0);
        d.insert(IdKey::of("b"), 1);
        d.insert(IdKey::of("c"), 2);
        assert!(!d.seen(IdKey::of("a")));
        assert!(d.seen(IdKey::of("b")) && d.seen(IdKey::of("c")));
        assert_eq!(d.evicted_early(), 1);
        assert_eq!(d.len(), 2);
    }
}
