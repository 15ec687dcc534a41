//! The event-time buffer: events ahead of the watermark, released in event
//! time order (equal times in arrival order, which is what checkpoints
//! record: a map from event time to that millisecond's events).
//!
//! Each source (a partition of one topic) delivers its events nearly in
//! order, but the sources of one store do not keep pace with each other
//! (the broker serves one partition's backlog before another's). So each
//! source has its own ring, in time order: an event goes at its back, or a
//! few places in from it; one that would go further in waits in a heap of
//! its own (slots reused once released, so a warm buffer allocates
//! nothing). A watermark releases the
//! earliest fronts of the rings and the heap. A ring is held in chunks
//! that never move and are reused ([`ring`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use contract::Event;

use crate::{Position, Source};

#[path = "buffer_ring.rs"]
mod ring;
use ring::{Ring, Spares};

/// How far in from a ring's back an event may be placed; further goes to
/// the heap (a ring's insert moves the events after it).
const NEAR_BACK: usize = 32;

/// An event as the buffer holds it: boxed, so that placing, releasing and
/// ordering it moves a pointer, not the event's 312 bytes (on the hot path
/// those copies were a sixth of the loop's time, mostly cache misses).
pub(crate) type Held = (Box<Event>, Position);

/// A buffered event with its arrival number.
struct Item {
    seq: u64,
    pair: Held,
}

impl Item {
    fn key(&self) -> (i64, u64) {
        (self.pair.0.timestamp_ms, self.seq)
    }
}

/// Events far behind their ring's back: kept in slots that are reused
/// once released, ordered by a heap of (time, arrival, slot) keys. The heap
/// moves 24-byte keys, not events, and a warm buffer allocates nothing.
#[derive(Default)]
struct Behind {
    slots: Vec<Option<Item>>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(i64, u64, u32)>>,
}

impl Behind {
    fn push(&mut self, item: Item) {
        let (ts, seq) = item.key();
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(item);
                slot
            }
            None => {
                self.slots.push(Some(item));
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((ts, seq, slot)));
    }

    fn first_key(&self) -> Option<(i64, u64)> {
        self.heap.peek().map(|Reverse((ts, seq, _))| (*ts, *seq))
    }

    fn pop(&mut self) -> Option<Item> {
        let Reverse((_, _, slot)) = self.heap.pop()?;
        self.free.push(slot);
        self.slots[slot as usize].take()
    }

    fn len(&self) -> usize {
        self.heap.len()
    }

    fn items(&self) -> impl Iterator<Item = &Item> {
        self.slots.iter().flatten()
    }
}

/// Buffered events.
#[derive(Default)]
pub(crate) struct Buffer {
    /// Each source's events in time order (a store reads a few sources).
    rings: Vec<(Source, Ring)>,
    /// Chunks the rings emptied, for the next they need.
    spares: Spares,
    behind: Behind,
    /// Arrivals so far.
    seq: u64,
}

impl Buffer {
    /// Adds an event.
    pub(crate) fn push(&mut self, event: Box<Event>, pos: Position) {
        self.seq += 1;
        let item = Item {
            seq: self.seq,
            pair: (event, pos),
        };
        let ts = item.pair.0.timestamp_ms;
        let ring = match self.rings.iter().position(|(s, _)| *s == pos.source) {
            Some(i) => &mut self.rings[i].1,
            None => {
                self.rings.push((pos.source, Ring::default()));
                &mut self.rings.last_mut().expect("pushed").1
            }
        };
        let spares = &mut self.spares;
        if ring.back().is_none_or(|b| b.pair.0.timestamp_ms <= ts) {
            ring.push_back(item, spares);
        } else if let Some(place) = ring.place_near_back(ts, NEAR_BACK) {
            ring.insert(place, item, spares);
        } else {
            self.behind.push(item);
        }
    }

    /// The earliest buffered event: `Some(ring index)`, or `None` for the
    /// heap's top; with its time.
    fn earliest(&self) -> Option<(i64, Option<usize>)> {
        let mut best: Option<((i64, u64), Option<usize>)> = None;
        for (i, (_, ring)) in self.rings.iter().enumerate() {
            if let Some(front) = ring.front() {
                if best.is_none_or(|(k, _)| front.key() < k) {
                    best = Some((front.key(), Some(i)));
                }
            }
        }
        if let Some(top) = self.behind.first_key() {
            if best.is_none_or(|(k, _)| top < k) {
                best = Some((top, None));
            }
        }
        best.map(|((ts, _), at)| (ts, at))
    }

    /// Moves the events of the earliest buffered instant, if it is before
    /// `watermark_ms`, to `out` (in arrival order); whether there were any.
    /// The caller applies them before asking for the next instant, so an
    /// event goes from its ring to the aggregates through a list of one
    /// instant that stays in cache, not through one of a whole tick's
    /// events (up to `pipeline.max_batch_events`, 22 MB that the kernel
    /// zeroed as the list grew).
    pub(crate) fn release_instant(&mut self, watermark_ms: i64, out: &mut Vec<Held>) -> bool {
        let mut instant = None;
        while let Some((ts, at)) = self.earliest() {
            if ts >= watermark_ms || instant.is_some_and(|i| i != ts) {
                break;
            }
            instant = Some(ts);
            let item = match at {
                Some(i) => self.rings[i].1.pop_front(&mut self.spares),
                None => self.behind.pop(),
            };
            out.extend(item.map(|i| i.pair));
        }
        instant.is_some()
    }

    /// Drops the events of the persons `is` names (their visitors to
    /// `visitors`); returns how many.
    pub(crate) fn forget(
        &mut self,
        is: crate::forget::Forgets<'_>,
        visitors: &mut Vec<String>,
    ) -> u64 {
        let mut dropped = 0;
        let mut drop = |e: &Event| {
            let gone = crate::forget::event_is_forgotten(e, is);
            if gone {
                dropped += 1;
                visitors.push(e.anonymous_id.to_string());
            }
            gone
        };
        for (_, ring) in &mut self.rings {
            ring.retain(|item| !drop(&item.pair.0), &mut self.spares);
        }
        let b = &mut self.behind;
        for (slot, item) in b.slots.iter_mut().enumerate() {
            if item.as_ref().is_some_and(|i| drop(&i.pair.0)) {
                *item = None;
                b.free.push(slot as u32);
            }
        }
        let slots = &b.slots;
        b.heap
            .retain(|Reverse((_, _, slot))| slots[*slot as usize].is_some());
        dropped
    }

    /// Buffered events.
    pub(crate) fn len(&self) -> usize {
        let rings: usize = self.rings.iter().map(|(_, r)| r.len()).sum();
        rings + self.behind.len()
    }

    fn items(&self) -> impl Iterator<Item = &Item> {
        let rings = self.rings.iter().flat_map(|(_, r)| r.iter());
        rings.chain(self.behind.items())
    }

    /// Every buffered event's position.
    pub(crate) fn positions(&self) -> impl Iterator<Item = Position> + '_ {
        self.items().map(|i| i.pair.1)
    }

    /// Every buffered event in event-time order, equal times in arrival
    /// order.
    fn ordered(&self) -> Vec<&Held> {
        let mut all: Vec<&Item> = self.items().collect();
        all.sort_unstable_by_key(|i| i.key());
        all.into_iter().map(|i| &i.pair).collect()
    }
}

/// The buffer's length, which checkpoints write after the buffer: read and
/// dropped, as the buffer counts its own events.
#[derive(Default)]
pub(crate) struct StoredLen;

impl<'de> serde::Deserialize<'de> for StoredLen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        usize::deserialize(d).map(|_| StoredLen)
    }
}

/// One millisecond's events, as checkpoints write them.
struct Millisecond<'a>(&'a [&'a Held]);

impl serde::Serialize for Millisecond<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().copied())
    }
}

impl serde::Serialize for Buffer {
    /// A map from event time to that millisecond's events, in arrival order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ordered = self.ordered();
        // Collected first: the encoding needs the map's length up front.
        let groups: Vec<(i64, Millisecond<'_>)> = ordered
            .chunk_by(|a, b| a.0.timestamp_ms == b.0.timestamp_ms)
            .map(|g| (g[0].0.timestamp_ms, Millisecond(g)))
            .collect();
        s.collect_map(groups)
    }
}

impl<'de> serde::Deserialize<'de> for Buffer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<i64, Vec<(Event, Position)>>::deserialize(d)?;
        Ok(Buffer::from(map))
    }
}

impl From<BTreeMap<i64, Vec<(Event, Position)>>> for Buffer {
    fn from(map: BTreeMap<i64, Vec<(Event, Position)>>) -> Self {
        let mut buffer = Buffer::default();
        for (event, pos) in map.into_values().flatten() {
            buffer.push(Box::new(event), pos);
        }
        buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_569_888_000_000;

    fn ev(id: &str, ts: i64) -> (Event, Position) {
        let json = format!(
            r#"{{"event_id":"{id}","type":"page_view","timestamp":{ts},"anonymous_id":"a","context":{{"page":{{"url":"https://s/"}}}}}}"#
        );
        let e = contract::Decoder::default()
            .decode(json.as_bytes(), contract::Stream::Clickstream, None)
            .expect("valid");
        (
            e,
            Position {
                source: crate::Source::new(0, 0),
                offset: 0,
            },
        )
    }

    /// Every event before `watermark_ms`, instant after instant.
    fn release(b: &mut Buffer, watermark_ms: i64) -> Vec<Held> {
        let mut out = Vec::new();
        while b.release_instant(watermark_ms, &mut out) {}
        out
    }

    fn ids<'a>(events: impl IntoIterator<Item = &'a Held>) -> Vec<&'a str> {
        events
            .into_iter()
            .map(|(e, _)| e.event_id.as_str())
            .collect()
    }

    fn buffer(arrivals: &[(&str, i64)]) -> (Buffer, BTreeMap<i64, Vec<(Event, Position)>>) {
        let mut b = Buffer::default();
        let mut map: BTreeMap<i64, Vec<(Event, Position)>> = BTreeMap::new();
        for (id, ts) in arrivals {
            let (e, p) = ev(id, T + ts);
            map.entry(T + ts).or_default().push((e.clone(), p));
            b.push(Box::new(e), p);
        }
        (b, map)
    }

    /// Arrivals out of order, with equal times both in order and behind.
    const ARRIVALS: [(&str, i64); 7] = [
        ("a", 5),
        ("b", 3),
        ("c", 5),
        ("d", 1),
        ("e", 9),
        ("f", 5),
        ("g", 9),
    ];

    #[test]
    fn events_leave_in_time_order_equal_times_in_arrival_order() {
        let (mut b, _) = buffer(&ARRIVALS);
        assert_eq!(b.len(), 7);
        assert_eq!(ids(&release(&mut b, T + 6)), ["d", "b", "a", "c", "f"]);
        assert_eq!(b.len(), 2);
        assert!(
            release(&mut b, T + 9).is_empty(),
            "not before the watermark"
        );
        assert_eq!(ids(&release(&mut b, T + 10)), ["e", "g"]);
    }

    #[test]
    fn an_instant_leaves_whole_and_alone() {
        let (mut b, _) = buffer(&ARRIVALS);
        let mut out = Vec::new();
        let mut instants = Vec::new();
        while b.release_instant(T + 9, &mut out) {
            instants.push(ids(&out).join(","));
            out.clear();
        }
        assert_eq!(
            instants,
            ["d", "b", "a,c,f"],
            "9 is not before the watermark"
        );
        assert!(b.release_instant(T + 10, &mut out));
        assert_eq!(ids(&out), ["e", "g"]);
        assert!(!b.release_instant(i64::MAX, &mut out), "empty");
    }

    #[test]
    fn checkpoints_hold_the_map_of_milliseconds_byte_for_byte() {
        let (b, map) = buffer(&ARRIVALS);
        let bytes = postcard::to_stdvec(&b).expect("encodes");
        assert_eq!(bytes, postcard::to_stdvec(&map).expect("encodes"));
        let mut back: Buffer = postcard::from_bytes(&bytes).expect("decodes");
        let all = release(&mut back, i64::MAX);
        assert_eq!(ids(&all), ["d", "b", "a", "c", "f", "e", "g"]);
    }

    #[test]
    fn an_event_far_behind_costs_no_move_of_the_ring_and_sources_keep_their_own() {
        let mut b = Buffer::default();
        for i in 0..10_000 {
            let (e, p) = ev(&format!("r{i}"), T + 1_000 + i);
            b.push(Box::new(e), p);
        }
        let (e, p) = ev("late", T);
        b.push(Box::new(e), p);
        assert_eq!(b.rings[0].1.len(), 10_000, "behind, not into the ring");
        assert_eq!(b.behind.len(), 1);
        // Another source far behind the first: a ring of its own.
        let (e, mut p) = ev("orders", T + 2);
        p.source = Source::new(1, 0);
        b.push(Box::new(e), p);
        assert_eq!((b.rings.len(), b.behind.len()), (2, 1));
        assert_eq!(ids(&release(&mut b, T + 1_001)), ["late", "orders", "r0"]);
    }
}
