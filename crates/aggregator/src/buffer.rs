//! The event-time buffer: events ahead of the watermark, released in event
//! time order. Input is nearly ordered: an event not earlier than the
//! latest in order goes at the back of a ring; one that arrives behind it
//! (the orders topic read after the clickstream, a partition that lags)
//! goes into a min-heap instead of deep into the ring. A watermark releases
//! both fronts. Equal times keep their arrival order, which is what
//! checkpoints record (a map from event time to that millisecond's events).

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use contract::Event;

use crate::Position;

/// An event that arrived behind the ring's back, in the heap.
struct Behind {
    /// Arrival order among the events behind.
    seq: u64,
    pair: (Event, Position),
}

impl Behind {
    fn key(&self) -> (i64, u64) {
        (self.pair.0.timestamp_ms, self.seq)
    }
}

impl PartialEq for Behind {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Behind {}

impl PartialOrd for Behind {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Behind {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// Buffered events.
#[derive(Default)]
pub(crate) struct Buffer {
    /// Events in arrival order, which is event-time order.
    in_order: VecDeque<(Event, Position)>,
    /// Events that arrived behind `in_order`'s back. Of equal times, every
    /// one in `in_order` arrived before every one here.
    behind: BinaryHeap<Reverse<Behind>>,
    seq: u64,
}

impl Buffer {
    /// Adds an event.
    pub(crate) fn push(&mut self, event: Event, pos: Position) {
        let ts = event.timestamp_ms;
        if self
            .in_order
            .back()
            .is_none_or(|(b, _)| b.timestamp_ms <= ts)
        {
            self.in_order.push_back((event, pos));
        } else {
            self.seq += 1;
            let seq = self.seq;
            let pair = (event, pos);
            self.behind.push(Reverse(Behind { seq, pair }));
        }
    }

    /// Takes the events before `watermark_ms`, in event-time order (equal
    /// times in arrival order).
    pub(crate) fn release(&mut self, watermark_ms: i64) -> Vec<(Event, Position)> {
        let mut out = Vec::new();
        loop {
            let ring = self.in_order.front().map(|(e, _)| e.timestamp_ms);
            let heap = self.behind.peek().map(|b| b.0.pair.0.timestamp_ms);
            let from_ring = match (ring, heap) {
                (Some(r), Some(h)) => r <= h,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let ts = if from_ring { ring } else { heap };
            if ts.is_none_or(|ts| ts >= watermark_ms) {
                break;
            }
            if from_ring {
                out.extend(self.in_order.pop_front());
            } else if let Some(Reverse(b)) = self.behind.pop() {
                out.push(b.pair);
            }
        }
        out
    }

    /// Buffered events.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.in_order.len() + self.behind.len()
    }

    /// Every buffered event's position.
    pub(crate) fn positions(&self) -> impl Iterator<Item = Position> + '_ {
        let ring = self.in_order.iter().map(|(_, pos)| *pos);
        ring.chain(self.behind.iter().map(|b| b.0.pair.1))
    }

    /// Every buffered event in event-time order, equal times in arrival
    /// order.
    fn ordered(&self) -> Vec<&(Event, Position)> {
        let mut behind: Vec<&Behind> = self.behind.iter().map(|b| &b.0).collect();
        behind.sort_unstable_by_key(|b| b.key());
        let mut out = Vec::with_capacity(self.in_order.len() + behind.len());
        let mut ring = self.in_order.iter().peekable();
        let mut late = behind.into_iter().peekable();
        loop {
            let take_ring = match (ring.peek(), late.peek()) {
                (Some(r), Some(l)) => r.0.timestamp_ms <= l.pair.0.timestamp_ms,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if take_ring {
                out.extend(ring.next());
            } else if let Some(b) = late.next() {
                out.push(&b.pair);
            }
        }
        out
    }
}

/// One millisecond's events, as checkpoints write them.
struct Millisecond<'a>(&'a [&'a (Event, Position)]);

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
        Buffer {
            in_order: map.into_values().flatten().collect(),
            ..Buffer::default()
        }
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

    fn ids<'a>(events: impl IntoIterator<Item = &'a (Event, Position)>) -> Vec<&'a str> {
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
            b.push(e, p);
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
        assert_eq!(ids(&b.release(T + 6)), ["d", "b", "a", "c", "f"]);
        assert_eq!(b.len(), 2);
        assert!(b.release(T + 9).is_empty(), "not before the watermark");
        assert_eq!(ids(&b.release(T + 10)), ["e", "g"]);
    }

    #[test]
    fn checkpoints_hold_the_map_of_milliseconds_byte_for_byte() {
        let (b, map) = buffer(&ARRIVALS);
        let bytes = postcard::to_stdvec(&b).expect("encodes");
        assert_eq!(bytes, postcard::to_stdvec(&map).expect("encodes"));
        let mut back: Buffer = postcard::from_bytes(&bytes).expect("decodes");
        let all = back.release(i64::MAX);
        assert_eq!(ids(&all), ["d", "b", "a", "c", "f", "e", "g"]);
    }

    #[test]
    fn an_event_far_behind_costs_no_move_of_the_ring() {
        let mut b = Buffer::default();
        for i in 0..10_000 {
            let (e, p) = ev(&format!("r{i}"), T + 1_000 + i);
            b.push(e, p);
        }
        let (e, p) = ev("late", T);
        b.push(e, p);
        assert_eq!(
            b.in_order.len(),
            10_000,
            "behind, not inserted into the ring"
        );
        assert_eq!(ids(&b.release(T + 1_001)), ["late", "r0"]);
    }
}
