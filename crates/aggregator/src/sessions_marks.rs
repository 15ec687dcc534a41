//! An open session's yes-or-no facts and the offsets it holds, packed so
//! that [`super::open::Open`] stays within its 192-byte size class.
//!
//! A session holds the lowest offset of each source among its events so
//! that the consumer does not commit past it (see [`HeldOffsets`]). Nearly
//! every session reads one source, of its own partition, so the first
//! source's offset is kept in place: its stream, plus one, in three bits of
//! the facts' byte, and the offset beside it. Any other source (or a first
//! one that does not fit those bits) goes to a thin vector that allocates
//! only then. A vector for every session cost 32 bytes of heap each.

use thin_vec::ThinVec;

use crate::offsets::HeldOffsets;
use crate::{Position, Source};

/// Five facts of a session and the stream of its first held offset, in one
/// byte: bits 0-4 the facts, bits 5-7 the stream plus one (0: none in
/// place).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Marks(u8);

/// One of the facts [`Marks`] keeps.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
pub(super) enum Fact {
    /// The storefront gave a session id, and the row's id is it.
    StorefrontIdIsRowId = 1,
    /// An order was placed.
    Converted = 1 << 1,
    /// The visitor's first session.
    NewVisitor = 1 << 2,
    /// An order with a referral code, or a referral sent.
    Referral = 1 << 3,
    /// An engagement event.
    Engaged = 1 << 4,
}

const STREAM_SHIFT: u32 = 5;
/// The largest stream kept in place (its tag, plus one, fills the bits).
const MAX_STREAM_IN_PLACE: u8 = (u8::MAX >> STREAM_SHIFT) - 1;

impl Marks {
    /// Whether `fact` holds.
    pub(super) fn has(self, fact: Fact) -> bool {
        self.0 & fact as u8 != 0
    }

    /// Sets `fact` to `on`.
    pub(super) fn set(&mut self, fact: Fact, on: bool) {
        if on {
            self.0 |= fact as u8;
        } else {
            self.0 &= !(fact as u8);
        }
    }

    fn stream_in_place(self) -> Option<u8> {
        (self.0 >> STREAM_SHIFT).checked_sub(1)
    }

    fn set_stream_in_place(&mut self, stream: Option<u8>) {
        let tag = stream.map_or(0, |s| s + 1);
        self.0 = (self.0 & ((1 << STREAM_SHIFT) - 1)) | (tag << STREAM_SHIFT);
    }
}

/// The offsets a session holds, in the order it first held each source:
/// the first in place when it is of `partition` and a stream the tag can
/// name, the rest (or all, when the first is not) in `more`.
#[derive(Debug, Default)]
pub(super) struct Holds {
    /// The first source's lowest offset, when [`Marks`] names its stream.
    first: i64,
    more: ThinVec<(Source, i64)>,
}

impl Holds {
    /// What is held, in the order the sources were first held.
    pub(super) fn iter(
        &self,
        marks: Marks,
        partition: i32,
    ) -> impl Iterator<Item = (Source, i64)> + '_ {
        let first = marks
            .stream_in_place()
            .map(|stream| (Source { stream, partition }, self.first));
        first.into_iter().chain(self.more.iter().copied())
    }

    /// Holds `pos` unless an earlier offset of its source is held already;
    /// a later one held is released for it.
    pub(super) fn hold(
        &mut self,
        marks: &mut Marks,
        partition: i32,
        pos: Position,
        held: &mut HeldOffsets,
    ) {
        let in_place = marks.stream_in_place();
        let current = if in_place == Some(pos.source.stream) && pos.source.partition == partition {
            Some(&mut self.first)
        } else {
            let entry = self.more.iter_mut().find(|(src, _)| *src == pos.source);
            entry.map(|(_, off)| off)
        };
        match current {
            Some(off) if pos.offset < *off => {
                held.release(pos.source, *off);
                held.hold(pos.source, pos.offset);
                *off = pos.offset;
            }
            Some(_) => {}
            None => {
                held.hold(pos.source, pos.offset);
                self.add(marks, partition, pos.source, pos.offset);
            }
        }
    }

    /// Adds a source not held yet, after those held.
    fn add(&mut self, marks: &mut Marks, partition: i32, source: Source, offset: i64) {
        let fits = source.partition == partition && source.stream <= MAX_STREAM_IN_PLACE;
        if marks.stream_in_place().is_none() && self.more.is_empty() && fits {
            marks.set_stream_in_place(Some(source.stream));
            self.first = offset;
        } else {
            // One more place at a time: a thin vector's first push reserves
            // four.
            self.more.reserve_exact(1);
            self.more.push((source, offset));
        }
    }

    /// Holds as read from a checkpoint, in their order (not held in
    /// `HeldOffsets`, which a restore rebuilds from every session).
    pub(super) fn restored(
        marks: &mut Marks,
        partition: i32,
        holds: impl IntoIterator<Item = (Source, i64)>,
    ) -> Holds {
        let mut out = Holds::default();
        for (source, offset) in holds {
            out.add(marks, partition, source, offset);
        }
        out
    }

    /// Releases everything held.
    pub(super) fn release_all(
        &mut self,
        marks: &mut Marks,
        partition: i32,
        held: &mut HeldOffsets,
    ) {
        for (source, offset) in self.iter(*marks, partition) {
            held.release(source, offset);
        }
        marks.set_stream_in_place(None);
        self.more = ThinVec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(stream: u8, partition: i32, offset: i64) -> Position {
        Position {
            source: Source { stream, partition },
            offset,
        }
    }

    #[test]
    fn facts_and_the_stream_in_place_do_not_disturb_each_other() {
        let mut m = Marks::default();
        for stream in [None, Some(0), Some(MAX_STREAM_IN_PLACE), Some(3)] {
            m.set_stream_in_place(stream);
            m.set(Fact::Converted, true);
            m.set(Fact::Engaged, true);
            m.set(Fact::NewVisitor, false);
            assert_eq!(m.stream_in_place(), stream);
            assert!(m.has(Fact::Converted) && m.has(Fact::Engaged));
            assert!(!m.has(Fact::NewVisitor) && !m.has(Fact::Referral));
            m.set(Fact::Converted, false);
            assert!(!m.has(Fact::Converted) && m.has(Fact::Engaged));
        }
    }

    #[test]
    fn holds_keep_each_sources_lowest_offset_in_first_held_order() {
        /// The session's partition, its events' positions, and what it
        /// holds then: (stream, partition, offset).
        type Case = (i32, Vec<Position>, Vec<(u8, i32, i64)>);
        let cases: [Case; 4] = [
            // One source of the session's partition: in place, lowest kept.
            (
                0,
                vec![at(0, 0, 9), at(0, 0, 7), at(0, 0, 8)],
                vec![(0, 0, 7)],
            ),
            // A second stream after it, in the vector.
            (
                2,
                vec![at(0, 2, 5), at(1, 2, 3), at(1, 2, 1)],
                vec![(0, 2, 5), (1, 2, 1)],
            ),
            // A first source of another partition: everything in the vector,
            // in order, even a later one of the session's partition.
            (
                0,
                vec![at(1, 4, 6), at(0, 0, 2), at(1, 4, 4)],
                vec![(1, 4, 4), (0, 0, 2)],
            ),
            // A stream the tag cannot name.
            (
                0,
                vec![at(200, 0, 6), at(0, 0, 2)],
                vec![(200, 0, 6), (0, 0, 2)],
            ),
        ];
        for (partition, positions, want) in cases {
            let (mut marks, mut holds, mut held) =
                (Marks::default(), Holds::default(), HeldOffsets::default());
            marks.set(Fact::Referral, true);
            for pos in &positions {
                holds.hold(&mut marks, partition, *pos, &mut held);
            }
            let got: Vec<_> = holds
                .iter(marks, partition)
                .map(|(s, o)| (s.stream, s.partition, o))
                .collect();
            assert_eq!(got, want, "{positions:?}");
            for &(stream, p, o) in &want {
                assert_eq!(
                    held.low(Source {
                        stream,
                        partition: p
                    }),
                    Some(o)
                );
            }
            // A checkpoint's holds come back in the same order.
            let mut marks2 = Marks::default();
            let again = Holds::restored(&mut marks2, partition, holds.iter(marks, partition));
            assert!(again
                .iter(marks2, partition)
                .eq(holds.iter(marks, partition)));
            holds.release_all(&mut marks, partition, &mut held);
            assert_eq!(holds.iter(marks, partition).count(), 0);
            assert!(marks.has(Fact::Referral), "facts survive the release");
            for &(stream, p, _) in &want {
                assert_eq!(
                    held.low(Source {
                        stream,
                        partition: p
                    }),
                    None
                );
            }
        }
    }
}
