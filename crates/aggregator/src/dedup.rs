//! A bounded set of recently seen event ids.

use crate::hash::{Map, Set};
use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Remembers 64-bit hashes of event ids for `horizon_ms` of event time, at
/// most `max_ids` of them; ids pushed out by the bound early are counted.
///
/// Each id is in the set once and in the queue once, with its event time:
/// an id is added only when it is not in the set (the aggregator asks
/// [`Dedup::seen`] first), and leaves both when its queue entry does. So
/// the set holds the hashes alone (8 bytes each, where a map to the time
/// took 16). Checkpoints write it as before: a map from hash to time
/// (from the queue), then the queue.
#[derive(serde::Deserialize)]
#[serde(from = "Stored")]
pub(crate) struct Dedup {
    horizon_ms: i64,
    max_ids: usize,
    ids: Set<u64>,
    order: VecDeque<(i64, u64)>,
    evicted_early: u64,
}

/// [`Dedup`] as checkpoints hold it.
#[derive(serde::Deserialize)]
struct Stored {
    horizon_ms: i64,
    max_ids: usize,
    ids: Map<u64, i64>,
    order: VecDeque<(i64, u64)>,
    evicted_early: u64,
}

impl From<Stored> for Dedup {
    fn from(s: Stored) -> Self {
        Dedup {
            horizon_ms: s.horizon_ms,
            max_ids: s.max_ids,
            ids: s.ids.into_keys().collect(),
            order: s.order,
            evicted_early: s.evicted_early,
        }
    }
}

impl serde::Serialize for Dedup {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Ids<'a>(&'a VecDeque<(i64, u64)>);
        impl serde::Serialize for Ids<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(ts, h)| (h, ts)))
            }
        }
        let mut st = serializer.serialize_struct("Dedup", 5)?;
        st.serialize_field("horizon_ms", &self.horizon_ms)?;
        st.serialize_field("max_ids", &self.max_ids)?;
        st.serialize_field("ids", &Ids(&self.order))?;
        st.serialize_field("order", &self.order)?;
        st.serialize_field("evicted_early", &self.evicted_early)?;
        st.end()
    }
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
            ids: Set::default(),
            order: VecDeque::new(),
            evicted_early: 0,
        }
    }

    pub(crate) fn seen(&self, id: IdKey) -> bool {
        self.ids.contains(&id.0)
    }

    pub(crate) fn insert(&mut self, id: IdKey, ts: i64) {
        let h = id.0;
        if !self.ids.insert(h) {
            return; // known already: its entry stays where it is
        }
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
        let Some((_, h)) = self.order.pop_front() else {
            return false;
        };
        self.ids.remove(&h);
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
    fn checkpoints_hold_the_map_of_ids_to_times_then_the_queue() {
        #[derive(serde::Serialize)]
        struct Before {
            horizon_ms: i64,
            max_ids: usize,
            ids: std::collections::BTreeMap<u64, i64>,
            order: VecDeque<(i64, u64)>,
            evicted_early: u64,
        }
        let mut d = Dedup::new(1000, 10);
        d.insert(IdKey::of("a"), 7);
        let before = Before {
            horizon_ms: 1000,
            max_ids: 10,
            ids: [(IdKey::of("a").0, 7)].into(),
            order: [(7, IdKey::of("a").0)].into(),
            evicted_early: 0,
        };
        let bytes = postcard::to_allocvec(&d).expect("encodes");
        assert_eq!(bytes, postcard::to_allocvec(&before).expect("encodes"));
        let back: Dedup = postcard::from_bytes(&bytes).expect("decodes");
        assert!(back.seen(IdKey::of("a")) && !back.seen(IdKey::of("b")));
        assert_eq!(postcard::to_allocvec(&back).expect("encodes"), bytes);
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
