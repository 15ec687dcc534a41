//! Touches: the sessions each visitor started lately, with their channel,
//! so that an order can be attributed to them (see `attribution`).
//!
//! A touch is recorded when a session opens (an order-only feed makes
//! none). A visitor keeps at most `attribution_max_touches` (32), the
//! latest; an order looks at those that started within
//! `attribution_window_ms` (30 days) before it. Visitors are kept by a
//! 64-bit digest of their id (as the visitors seen before are): two ids
//! share touches only if their digests collide, about once in 2^64 / n
//! pairs. A visitor untouched for the window is forgotten, and at most
//! `max_touch_visitors` are kept (the least recently touched go first,
//! counted in the output's evictions).

use std::collections::VecDeque;

use thin_vec::ThinVec;

use crate::channel::Channel;
use crate::hash::Map;
use std::collections::hash_map::Entry;

/// The settings touches are kept under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TouchBounds {
    pub(crate) window_ms: i64,
    pub(crate) per_visitor: usize,
    pub(crate) visitors: usize,
}

impl TouchBounds {
    /// The bounds `cfg` sets.
    pub(crate) fn of(cfg: &crate::AggregatorConfig) -> Self {
        TouchBounds {
            window_ms: cfg.attribution_window_ms,
            per_visitor: cfg.attribution_max_touches,
            visitors: cfg.max_touch_visitors,
        }
    }
}

/// What is kept of one visitor: the latest touch in place, and what a
/// visitor with more than one session has besides, boxed. Most visitors
/// start one session in the window, so most keep 24 bytes in the table and
/// no heap memory of their own (32 bytes when the first session's start
/// and the count sat in every entry; the table holds a million).
///
/// Checkpoints write it as before: `touches` (oldest first), `first_ms`,
/// `sessions`.
#[derive(serde::Deserialize)]
#[serde(try_from = "VisitorRepr")]
struct Visitor {
    /// The latest touch's session start, and (below) its channel: apart,
    /// not as a pair, which alignment would pad to 16 bytes.
    latest_ms: i64,
    /// Made at the second session; none: the latest touch is the only one
    /// and the first session's.
    earlier: Option<Box<Earlier>>,
    latest_channel: Channel,
}

/// What a visitor with more than one session keeps besides the latest
/// touch.
struct Earlier {
    /// Start of the first session remembered.
    first_ms: i64,
    /// Sessions started since then.
    sessions: u32,
    /// The touches before the latest, oldest first (a thin vector, which
    /// allocates only when it holds one).
    older: ThinVec<(i64, Channel)>,
}

impl Visitor {
    /// A visitor's first touch.
    fn first(touch: (i64, Channel)) -> Self {
        Visitor {
            latest_ms: touch.0,
            earlier: None,
            latest_channel: touch.1,
        }
    }

    /// Start of the first session remembered.
    fn first_ms(&self) -> i64 {
        self.earlier.as_ref().map_or(self.latest_ms, |e| e.first_ms)
    }

    /// Sessions started since the first remembered.
    fn sessions(&self) -> u32 {
        self.earlier.as_ref().map_or(1, |e| e.sessions)
    }

    /// The visitor's touches, oldest first (an exact size hint, which
    /// checkpoints write before them).
    fn touches(&self) -> impl Iterator<Item = (i64, Channel)> + '_ {
        let older = self.earlier.as_ref().map_or(&[][..], |e| &e.older[..]);
        let latest = std::iter::once((self.latest_ms, self.latest_channel));
        older.iter().copied().chain(latest)
    }

    /// Records one more session's touch after the others, keeping at most
    /// `max` touches.
    fn push(&mut self, touch: (i64, Channel), max: usize) {
        let before = (self.latest_ms, self.latest_channel);
        (self.latest_ms, self.latest_channel) = touch;
        let e = self.earlier.get_or_insert_with(|| {
            Box::new(Earlier {
                first_ms: before.0,
                sessions: 1,
                older: ThinVec::new(),
            })
        });
        e.sessions = e.sessions.saturating_add(1);
        let older_max = max.max(1) - 1;
        if older_max > 0 {
            // One place at a time: a thin vector's first push reserves four.
            e.older.reserve_exact(1);
            e.older.push(before);
            if e.older.len() > older_max {
                e.older.remove(0);
            }
        }
    }
}

/// A [`Visitor`] as checkpoints hold it.
#[derive(serde::Deserialize)]
struct VisitorRepr {
    touches: Vec<(i64, Channel)>,
    first_ms: i64,
    sessions: u32,
}

impl TryFrom<VisitorRepr> for Visitor {
    type Error = &'static str;

    /// Every visitor kept has a touch: one is recorded as it is made.
    fn try_from(mut r: VisitorRepr) -> Result<Self, Self::Error> {
        let latest = r.touches.pop().ok_or("a visitor without touches")?;
        let mut v = Visitor::first(latest);
        if !r.touches.is_empty() || r.first_ms != latest.0 || r.sessions != 1 {
            v.earlier = Some(Box::new(Earlier {
                first_ms: r.first_ms,
                sessions: r.sessions,
                older: r.touches.into_iter().collect(),
            }));
        }
        Ok(v)
    }
}

impl serde::Serialize for Visitor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        struct Touches<'a>(&'a Visitor);
        impl serde::Serialize for Touches<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.touches())
            }
        }
        let mut st = serializer.serialize_struct("Visitor", 3)?;
        st.serialize_field("touches", &Touches(self))?;
        st.serialize_field("first_ms", &self.first_ms())?;
        st.serialize_field("sessions", &self.sessions())?;
        st.end()
    }
}

/// What an order learns of its visitor's sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The channels of the touches within the window, oldest first.
    pub(crate) channels: Vec<Channel>,
    /// Start of the visitor's first session remembered (none without one).
    pub(crate) first_session_ms: Option<i64>,
    /// Sessions the visitor started from then to the order, its own
    /// included.
    pub(crate) sessions: u32,
}

/// Every visitor's latest touches.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Touches {
    /// Visitor digest -> what is kept of them.
    by_visitor: Map<u64, Visitor>,
    /// (touch time, visitor digest), in the order touched: what expires and
    /// what the bound evicts first (entries of visitors touched again since
    /// are skipped).
    queue: VecDeque<(i64, u64)>,
}

use crate::hash::visitor_digest as digest;

impl Touches {
    /// Visitors with touches.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_visitor.len()
    }

    /// [`Touches::touch_digest`] for `visitor` by its id.
    #[cfg(test)]
    pub(crate) fn touch(
        &mut self,
        visitor: &str,
        start_ms: i64,
        channel: Channel,
        b: TouchBounds,
    ) -> u64 {
        self.touch_digest(digest(visitor), start_ms, channel, b)
    }

    /// The visitor of digest `d` ([`crate::hash::visitor_digest`]) started
    /// a session at `start_ms` from `channel`; returns how many visitors
    /// the bound made it forget.
    pub(crate) fn touch_digest(
        &mut self,
        d: u64,
        start_ms: i64,
        channel: Channel,
        b: TouchBounds,
    ) -> u64 {
        let mut evicted = 0;
        match self.by_visitor.entry(d) {
            Entry::Occupied(mut v) => {
                v.get_mut().push((start_ms, channel), b.per_visitor);
            }
            Entry::Vacant(v) => {
                v.insert(Visitor::first((start_ms, channel)));
            }
        }
        self.queue.push_back((start_ms, d));
        while self.by_visitor.len() > b.visitors.max(1) {
            let Some((at, d)) = self.queue.pop_front() else {
                break;
            };
            if self.is_latest(d, at) {
                self.by_visitor.remove(&d);
                evicted += 1;
            }
        }
        evicted
    }

    /// Whether `at` is the latest touch of visitor digest `d`.
    fn is_latest(&self, d: u64, at: i64) -> bool {
        let latest = self.by_visitor.get(&d).map(|v| v.latest_ms);
        latest == Some(at)
    }

    /// What an order of `visitor` at `at_ms` learns: the channels of the
    /// touches that started within the window before it (that instant
    /// included), oldest first, and the visitor's first session and
    /// sessions since, as remembered.
    pub(crate) fn seen(&self, visitor: &str, at_ms: i64, b: TouchBounds) -> Seen {
        let Some(v) = self.by_visitor.get(&digest(visitor)) else {
            return Seen::default();
        };
        let from = at_ms.saturating_sub(b.window_ms);
        let channels = v.touches().filter(|(t, _)| (from..=at_ms).contains(t));
        Seen {
            channels: channels.map(|(_, c)| c).collect(),
            first_session_ms: Some(v.first_ms()),
            sessions: v.sessions(),
        }
    }

    /// The channels of the touches of `visitor` within the window before
    /// `at_ms`, oldest first (see [`Touches::seen`]).
    #[cfg(test)]
    fn within(&self, visitor: &str, at_ms: i64, b: TouchBounds) -> Vec<Channel> {
        self.seen(visitor, at_ms, b).channels
    }

    /// Forgets `visitor` (an erasure); the queue's entries are skipped.
    pub(crate) fn forget(&mut self, visitor: &str) {
        self.by_visitor.remove(&digest(visitor));
    }

    /// Forgets visitors whose latest touch is more than the window before
    /// `watermark_ms`: no order from now on can count it.
    pub(crate) fn expire(&mut self, watermark_ms: i64, b: TouchBounds) {
        while let Some(&(at, d)) = self.queue.front() {
            if at.saturating_add(b.window_ms) >= watermark_ms {
                break;
            }
            self.queue.pop_front();
            if self.is_latest(d, at) {
                self.by_visitor.remove(&d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    const B: TouchBounds = TouchBounds {
        window_ms: 30 * DAY,
        per_visitor: 32,
        visitors: 1000,
    };

    #[test]
    fn an_order_counts_the_touches_of_the_window_only() {
        let mut t = Touches::default();
        t.touch("v", 0, Channel::Email, B);
        t.touch("v", 15 * DAY, Channel::PaidSearch, B);
        t.touch("v", 35 * DAY, Channel::Direct, B);
        t.touch("v", 40 * DAY, Channel::Direct, B);
        use Channel::{Direct, Email, PaidSearch};
        let at = |ms| t.within("v", ms, B);
        // The e-mail touch is 40 days old by day 40.
        assert_eq!(at(40 * DAY), [PaidSearch, Direct, Direct]);
        assert_eq!(at(20 * DAY), [Email, PaidSearch]);
        assert_eq!(
            at(30 * DAY),
            [Email, PaidSearch],
            "day 0 to 30, both ends in"
        );
        assert!(t.within("w", 40 * DAY, B).is_empty());
        let seen = t.seen("v", 40 * DAY, B);
        assert_eq!((seen.first_session_ms, seen.sessions), (Some(0), 4));
    }

    #[test]
    fn a_visitor_keeps_the_latest_touches_and_the_bounds_hold() {
        let mut t = Touches::default();
        let b = TouchBounds {
            per_visitor: 3,
            visitors: 2,
            ..B
        };
        for (i, c) in [
            Channel::Email,
            Channel::Referral,
            Channel::Direct,
            Channel::Direct,
        ]
        .into_iter()
        .enumerate()
        {
            t.touch("v", i as i64 * DAY, c, b);
        }
        assert_eq!(
            t.within("v", 4 * DAY, b),
            [Channel::Referral, Channel::Direct, Channel::Direct],
            "the oldest of four went"
        );
        assert_eq!(t.touch("w", 5 * DAY, Channel::Email, b), 0);
        assert_eq!(t.touch("x", 6 * DAY, Channel::Email, b), 1);
        assert_eq!(t.len(), 2, "v, touched least recently, went");
        assert!(t.within("v", 6 * DAY, b).is_empty());
        t.expire(6 * DAY + 31 * DAY, b);
        assert_eq!(t.len(), 0, "nobody touched within 30 days");
        t.touch("w", 40 * DAY, Channel::Email, b);
        let seen = t.seen("w", 40 * DAY, b);
        assert_eq!(
            (seen.first_session_ms, seen.sessions),
            (Some(40 * DAY), 1),
            "w starts over"
        );
    }

    #[test]
    fn a_visitor_fits_24_bytes() {
        assert_size_at_most!(Visitor, 24);
    }

    #[test]
    fn a_visitor_is_written_as_the_list_of_touches_it_was() {
        // The layout before touches were kept in place: a list, oldest first.
        #[derive(serde::Serialize)]
        struct Before {
            touches: Vec<(i64, Channel)>,
            first_ms: i64,
            sessions: u32,
        }
        let b = TouchBounds {
            per_visitor: 2,
            ..B
        };
        let mut t = Touches::default();
        t.touch("v", DAY, Channel::Email, b);
        t.touch("w", DAY, Channel::Direct, b);
        for (i, c) in [Channel::Referral, Channel::PaidSearch]
            .into_iter()
            .enumerate()
        {
            t.touch("v", (i as i64 + 2) * DAY, c, b);
        }
        let bytes = |v: &Visitor| postcard::to_allocvec(v).expect("encodes");
        let v = &t.by_visitor[&digest("v")];
        let before = Before {
            touches: vec![(2 * DAY, Channel::Referral), (3 * DAY, Channel::PaidSearch)],
            first_ms: DAY,
            sessions: 3,
        };
        assert_eq!(bytes(v), postcard::to_allocvec(&before).expect("encodes"));
        let w = &t.by_visitor[&digest("w")];
        let one = Before {
            touches: vec![(DAY, Channel::Direct)],
            first_ms: DAY,
            sessions: 1,
        };
        assert_eq!(bytes(w), postcard::to_allocvec(&one).expect("encodes"));
        let back: Visitor = postcard::from_bytes(&bytes(v)).expect("decodes");
        assert_eq!(bytes(&back), bytes(v), "read back as written");
        let back: Visitor = postcard::from_bytes(&bytes(w)).expect("decodes");
        assert!(back.earlier.is_none(), "one session: nothing boxed");
        assert_eq!(bytes(&back), bytes(w));
        // Keeping one touch, a visitor's later sessions still count.
        let one_touch = TouchBounds {
            per_visitor: 1,
            ..B
        };
        t.touch("u", DAY, Channel::Email, one_touch);
        t.touch("u", 2 * DAY, Channel::Direct, one_touch);
        let u = &t.by_visitor[&digest("u")];
        let twice = Before {
            touches: vec![(2 * DAY, Channel::Direct)],
            first_ms: DAY,
            sessions: 2,
        };
        assert_eq!(bytes(u), postcard::to_allocvec(&twice).expect("encodes"));
        let back: Visitor = postcard::from_bytes(&bytes(u)).expect("decodes");
        assert_eq!(bytes(&back), bytes(u), "read back as written");
        let none = postcard::to_allocvec(&Before {
            touches: vec![],
            first_ms: 0,
            sessions: 0,
        })
        .expect("encodes");
        assert!(
            postcard::from_bytes::<Visitor>(&none).is_err(),
            "a visitor has a touch"
        );
    }
}
