//! The event-time buffer: events ahead of the watermark, kept in event-time
//! order in one ring. Input is nearly ordered, so an arriving event goes at
//! the back, or a short way in from it; a watermark releases the front.
//! Equal times keep their arrival order, which is what checkpoints record
//! (as a map from event time to that millisecond's events, in order).

use std::collections::{BTreeMap, VecDeque};

use contract::Event;

use crate::Position;

/// Buffered events in event-time order.
#[derive(Default)]
pub(crate) struct Buffer {
    events: VecDeque<(Event, Position)>,
}

impl Buffer {
    /// Adds an event after every buffered event not later than it.
    pub(crate) fn push(&mut self, event: Event, pos: Position) {
        let ts = event.timestamp_ms;
        let in_order = self.events.back().is_none_or(|(b, _)| b.timestamp_ms <= ts);
        if in_order {
            self.events.push_back((event, pos));
        } else {
            let at = self.events.partition_point(|(e, _)| e.timestamp_ms <= ts);
            self.events.insert(at, (event, pos));
        }
    }

    /// Takes the events before `watermark_ms`, in event-time order.
    pub(crate) fn release(&mut self, watermark_ms: i64) -> Vec<(Event, Position)> {
        let n = self
            .events
            .partition_point(|(e, _)| e.timestamp_ms < watermark_ms);
        self.events.drain(..n).collect()
    }

    /// Buffered events.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Every buffered event's position.
    pub(crate) fn positions(&self) -> impl Iterator<Item = Position> + '_ {
        self.events.iter().map(|(_, pos)| *pos)
    }
}

/// One millisecond's events, as checkpoints write them.
struct Millisecond<'a>(&'a VecDeque<(Event, Position)>, std::ops::Range<usize>);

impl serde::Serialize for Millisecond<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.1.clone().map(|i| &self.0[i]))
    }
}

impl serde::Serialize for Buffer {
    /// A map from event time to that millisecond's events, in arrival order.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = &self.events;
        let mut groups = Vec::new();
        let mut start = 0;
        for i in 1..=e.len() {
            if i == e.len() || e[i].0.timestamp_ms != e[start].0.timestamp_ms {
                groups.push((e[start].0.timestamp_ms, Millisecond(e, start..i)));
                start = i;
            }
        }
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
            events: map.into_values().flatten().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn ids(events: &[(Event, Position)]) -> Vec<&str> {
        events.iter().map(|(e, _)| e.event_id.as_str()).collect()
    }

    #[test]
    fn events_leave_in_time_order_equal_times_in_arrival_order() {
        let mut b = Buffer::default();
        for (id, ts) in [
            ("a", 1_569_888_000_005),
            ("b", 1_569_888_000_003),
            ("c", 1_569_888_000_005),
            ("d", 1_569_888_000_001),
            ("e", 1_569_888_000_009),
        ] {
            let (e, p) = ev(id, ts);
            b.push(e, p);
        }
        assert_eq!(b.len(), 5);
        assert_eq!(ids(&b.release(1_569_888_000_006)), ["d", "b", "a", "c"]);
        assert_eq!(b.len(), 1);
        assert!(
            b.release(1_569_888_000_009).is_empty(),
            "not before the watermark"
        );
        assert_eq!(ids(&b.release(1_569_888_000_010)), ["e"]);
    }

    #[test]
    fn checkpoints_hold_a_map_of_milliseconds_as_before() {
        let mut b = Buffer::default();
        let mut map: BTreeMap<i64, Vec<(Event, Position)>> = BTreeMap::new();
        for (id, ts) in [
            ("a", 1_569_888_000_005),
            ("b", 1_569_888_000_003),
            ("c", 1_569_888_000_005),
        ] {
            let (e, p) = ev(id, ts);
            map.entry(ts).or_default().push((e.clone(), p));
            b.push(e, p);
        }
        let bytes = postcard::to_stdvec(&b).expect("encodes");
        assert_eq!(bytes, postcard::to_stdvec(&map).expect("encodes"));
        let back: Buffer = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(ids(&Vec::from(back.events)), ["b", "a", "c"]);
    }
}
