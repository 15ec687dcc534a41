//! One source's buffered events, in time order, held in chunks of
//! [`CHUNK`] events.
//!
//! A single ring grew by doubling: each step copied every event into a
//! fresh allocation twice the size, and a backlog that buffered 200,000
//! events made the kernel zero about twice that many events' worth of new
//! memory (docs/performance.md, Round 14). Chunks never move once written,
//! and a chunk emptied at the front goes to the buffer's spares, from which
//! the back takes its next one: memory is touched once, up to the most
//! events the source ever buffered, and then reused.

use std::collections::VecDeque;

use super::Item;

/// Events a chunk holds (about 350 KB of events).
pub(super) const CHUNK: usize = 1024;

/// Chunks emptied and kept for reuse, shared by a buffer's rings.
#[derive(Default)]
pub(super) struct Spares(Vec<VecDeque<Item>>);

impl Spares {
    fn take(&mut self) -> VecDeque<Item> {
        self.0
            .pop()
            .unwrap_or_else(|| VecDeque::with_capacity(CHUNK))
    }

    fn give(&mut self, chunk: VecDeque<Item>) {
        debug_assert!(chunk.is_empty());
        self.0.push(chunk);
    }
}

/// Where an event goes in a ring: at its back, or at a place in a chunk.
#[derive(Debug, Clone, Copy)]
pub(super) enum Place {
    Back,
    At(usize, usize),
}

/// One source's events in time order (equal times in arrival order).
/// No chunk is empty; the back one may be full.
#[derive(Default)]
pub(super) struct Ring {
    chunks: VecDeque<VecDeque<Item>>,
    len: usize,
}

impl Ring {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn front(&self) -> Option<&Item> {
        self.chunks.front().and_then(VecDeque::front)
    }

    pub(super) fn back(&self) -> Option<&Item> {
        self.chunks.back().and_then(VecDeque::back)
    }

    /// Every event, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Item> + '_ {
        self.chunks.iter().flatten()
    }

    /// Adds `item` at the back (its time is at or after the back's).
    pub(super) fn push_back(&mut self, item: Item, spares: &mut Spares) {
        if self.chunks.back().is_none_or(|c| c.len() >= CHUNK) {
            self.chunks.push_back(spares.take());
        }
        self.chunks.back_mut().expect("a chunk").push_back(item);
        self.len += 1;
    }

    /// Where an event of time `ts` goes: after every event of its time or
    /// earlier, provided at most `near` events are later than it (`None`
    /// when more are).
    pub(super) fn place_near_back(&self, ts: i64, near: usize) -> Option<Place> {
        let mut later = 0;
        let mut at = Place::Back;
        for (ci, chunk) in self.chunks.iter().enumerate().rev() {
            for (ii, e) in chunk.iter().enumerate().rev() {
                if e.pair.0.timestamp_ms <= ts {
                    return Some(Place::At(ci, ii + 1));
                }
                later += 1;
                if later > near {
                    return None;
                }
            }
            at = Place::At(ci, 0);
        }
        Some(at)
    }

    /// Puts `item` where [`Ring::place_near_back`] said.
    pub(super) fn insert(&mut self, at: Place, item: Item, spares: &mut Spares) {
        let Place::At(ci, ii) = at else {
            return self.push_back(item, spares);
        };
        self.len += 1;
        if self.chunks[ci].len() >= CHUNK {
            // A full chunk makes room by passing its last event to the
            // next (which holds only events later than `item`, fewer than
            // the `near` of the place), or to a new one.
            if ci == self.chunks.len() - 1 {
                self.chunks.push_back(spares.take());
            }
            let moved = self.chunks[ci].pop_back().expect("full");
            self.chunks[ci + 1].push_front(moved);
            let kept = self.chunks[ci].len();
            if ii > kept {
                return self.chunks[ci + 1].insert(ii - kept, item);
            }
        }
        self.chunks[ci].insert(ii, item);
    }

    /// Takes the first event.
    pub(super) fn pop_front(&mut self, spares: &mut Spares) -> Option<Item> {
        let chunk = self.chunks.front_mut()?;
        let item = chunk.pop_front();
        if chunk.is_empty() {
            let chunk = self.chunks.pop_front().expect("front");
            spares.give(chunk);
        }
        self.len -= usize::from(item.is_some());
        item
    }

    /// Keeps the events `keep` accepts.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&Item) -> bool, spares: &mut Spares) {
        for chunk in &mut self.chunks {
            chunk.retain(&mut keep);
        }
        for chunk in std::mem::take(&mut self.chunks) {
            if chunk.is_empty() {
                spares.give(chunk);
            } else {
                self.chunks.push_back(chunk);
            }
        }
        self.len = self.chunks.iter().map(VecDeque::len).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Position, Source};

    /// An item of time `ts` and arrival `seq`.
    fn item(template: &contract::Event, ts: i64, seq: u64) -> Item {
        let mut e = template.clone();
        e.timestamp_ms = ts;
        let pos = Position {
            source: Source::new(0, 0),
            offset: seq as i64,
        };
        Item {
            seq,
            pair: (Box::new(e), pos),
        }
    }

    /// Nearly ordered arrivals across many chunk boundaries, some a few
    /// places behind the back and some too far, with the front taken now
    /// and then and a retain: the ring holds exactly what a sorted list
    /// with the same rule holds, and reuses its chunks.
    #[test]
    fn the_ring_keeps_time_order_across_chunks_as_a_sorted_list_does() {
        let json = r#"{"event_id":"e","type":"page_view","timestamp":1569888000000,"anonymous_id":"a","context":{"page":{"url":"https://s/"}}}"#;
        let template = contract::Decoder::default()
            .decode(json.as_bytes(), contract::Stream::Clickstream, None)
            .expect("valid");
        let (mut ring, mut spares) = (Ring::default(), Spares::default());
        let mut model: Vec<(i64, u64)> = Vec::new();
        let mut state = 7_u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            state >> 33
        };
        let near = 32;
        let keys = |r: &Ring| -> Vec<(i64, u64)> { r.iter().map(Item::key).collect() };
        for seq in 0..(CHUNK as u64 * 6) {
            let r = next();
            // Mostly in order; one in eight up to 40 ms behind.
            let ts = seq as i64 * 2 - if r % 8 == 0 { (r % 41) as i64 } else { 0 };
            let at = model.partition_point(|&(t, _)| t <= ts);
            let fits = model.len() - at <= near;
            let it = item(&template, ts, seq);
            let place = ring.place_near_back(ts, near);
            let placed = place.is_some();
            if let Some(place) = place {
                ring.insert(place, it, &mut spares);
            }
            assert_eq!(placed, fits, "arrival {seq} at {ts}");
            if fits {
                model.insert(at, (ts, seq));
            }
            if r % 5 == 0 {
                let front = ring.pop_front(&mut spares).map(|i| i.key());
                assert_eq!(front, (!model.is_empty()).then(|| model.remove(0)));
            }
            assert_eq!(ring.len(), model.len());
        }
        assert_eq!(keys(&ring), model);
        ring.retain(|i| i.seq % 3 != 0, &mut spares);
        model.retain(|(_, seq)| seq % 3 != 0);
        assert_eq!(keys(&ring), model);
        let held = ring.chunks.len();
        while ring.pop_front(&mut spares).is_some() {}
        assert_eq!((ring.len(), ring.chunks.len()), (0, 0));
        assert!(spares.0.len() >= held, "emptied chunks are kept for reuse");
    }
}
