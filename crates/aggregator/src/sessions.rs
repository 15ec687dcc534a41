//! Sessionization: one open session per visitor, split by inactivity,
//! length cap or a new storefront session id.

use crate::hash::{visitor_digest, Set};
use std::cmp::Reverse;
use std::collections::VecDeque;

use contract::Event;

use crate::channel::{Channel, ChannelRules};
use crate::config::AggregatorConfig;
use crate::deadlines::{pop_due, Deadlines, Due};
use crate::offsets::HeldOffsets;
use crate::pages::{VisitPages, Visits};
use crate::rows::SessionRow;
use crate::small_id::SmallId;
use crate::{Position, Source};

#[path = "sessions_in_use.rs"]
mod in_use;
#[path = "sessions_marks.rs"]
mod marks;
#[path = "sessions_open.rs"]
mod open;
#[path = "sessions_parked.rs"]
mod parked;

use crate::intern::Interner;
use in_use::InUse;
use open::Open;

use parked::Parked;
pub(crate) use parked::VisitsRef;

/// A session that ended, with its page state for the exit count.
pub(crate) struct Closed {
    pub row: SessionRow,
    pub visit: Option<Box<VisitPages>>,
}

/// A session an event opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started {
    /// Its start time.
    pub at_ms: i64,
    /// The visitor's digest ([`visitor_digest`]), computed once for the
    /// visitors seen before and the touches.
    pub visitor: u64,
}

/// The visitor of an event applied, with the hash the sessions in use are
/// found by: later lookups for the same event hash nothing again.
pub(crate) use in_use::Key as VisitorKey;

/// What applying one event did.
pub(crate) struct Applied<'a> {
    /// The event's visitor.
    pub visitor: VisitorKey<'a>,
    /// A session this event ended (it started a new one).
    pub closed: Option<Closed>,
    /// Another visitor's session, closed early to keep the open sessions
    /// within their bound.
    pub evicted: Option<Closed>,
    /// The session this event opened, if it opened one.
    pub started: Option<Started>,
    /// The channel of the session the event belongs to.
    pub channel: Channel,
    /// The funnel stage the event took its session to, if it took it on.
    pub reached: Option<crate::stage_times::StageReached>,
}

/// Visitors seen before, as 64-bit digests, bounded (oldest forgotten first).
#[derive(serde::Serialize, serde::Deserialize)]
struct Visitors {
    max: usize,
    seen: Set<u64>,
    order: VecDeque<u64>,
}

impl Visitors {
    /// Records the visitor of digest `h`; true when it was not known.
    fn first_time(&mut self, h: u64) -> bool {
        if !self.seen.insert(h) {
            return false;
        }
        self.order.push_back(h);
        while self.order.len() > self.max {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Forgets `visitor` (an erasure); its entry in `order` is left, and
    /// removes nothing when it comes up.
    fn forget(&mut self, visitor: &str) {
        self.seen.remove(&visitor_digest(visitor));
    }
}

/// Serialized by hand (see `parked`), read by this derive.
#[derive(serde::Deserialize)]
pub(crate) struct Sessionizer {
    gap_ms: i64,
    max_ms: i64,
    bounce_ms: i64,
    stages: Vec<String>,
    currency: String,
    visitors: Visitors,
    rules: ChannelRules,
    /// The session in use of each visitor. Boxed: a table holds up to
    /// twice its length in slots, and an inline `Open` is 188 bytes; a box
    /// is 8.
    open: InUse,
    /// (close_at, visitor): at most one live entry per session, re-pushed when extended.
    deadlines: Deadlines<SmallId>,
    /// Visitors' sessions under other storefront ids than the one in use.
    #[serde(skip)]
    parked: Parked,
    /// Strings the open sessions share.
    #[serde(skip)]
    strings: Interner,
}

impl Sessionizer {
    pub(crate) fn new(cfg: &AggregatorConfig) -> Self {
        Sessionizer {
            gap_ms: cfg.session_gap_ms.max(0),
            // Deadlines are u32 ms after a session's start: 49 days at most.
            max_ms: cfg.session_max_ms.clamp(0, i64::from(u32::MAX)),
            bounce_ms: cfg.bounce_max_duration_ms,
            stages: cfg.funnel_stages.iter().take(31).cloned().collect(),
            currency: cfg.reporting_currency.to_ascii_uppercase(),
            visitors: Visitors {
                max: cfg.max_visitors.max(1),
                seen: Set::default(),
                order: VecDeque::new(),
            },
            rules: cfg.channels.clone(),
            open: InUse::default(),
            deadlines: Deadlines::new(),
            parked: Parked::default(),
            strings: Interner::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.open.len() + self.parked.len()
    }

    /// The user id known in the visitor's open session.
    pub(crate) fn user_of(&self, visitor: &str) -> Option<String> {
        self.open
            .get(self.open.key(visitor))
            .and_then(|s| s.user_id())
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    }

    /// Drops the open and parked sessions of the visitors and users `is`
    /// names (their visitors to `visitors`), releasing their offsets.
    /// Returns each one's start and page state, which the windows still
    /// count as open. Their deadlines are skipped when due.
    pub(crate) fn forget(
        &mut self,
        is: crate::forget::Forgets<'_>,
        held: &mut HeldOffsets,
        visitors: &mut Vec<String>,
    ) -> Vec<(i64, Option<Box<VisitPages>>)> {
        let named =
            |v: &str, s: &Open| is(v) || s.user_id().is_some_and(|u| !u.is_empty() && is(u));
        let mut dropped = self
            .open
            .take_where(|s| s.visitor.with_str(|v| named(v, s)));
        visitors.extend(dropped.iter().map(|s| s.visitor.to_string()));
        dropped.extend(self.parked.forget(&named, visitors));
        dropped
            .into_iter()
            .map(|mut s| {
                s.release_holds(held);
                (s.start_ms, s.visit.take())
            })
            .collect()
    }

    /// Forgets that `visitor` was seen (an erasure).
    pub(crate) fn forget_seen(&mut self, visitor: &str) {
        self.visitors.forget(visitor);
    }

    /// The funnel stages after `session`.
    pub(crate) fn stages(&self) -> &[String] {
        &self.stages
    }

    /// The id, experiment and variant of the visitor's open session.
    pub(crate) fn key_of(&self, visitor: &str) -> Option<crate::aggregate::SessionKey> {
        self.open.get(self.open.key(visitor)).map(|s| s.key())
    }

    /// The offsets the open sessions hold (each its lowest per source).
    pub(crate) fn holds(&self) -> impl Iterator<Item = (Source, i64)> + '_ {
        let restored = self.open.restored.iter().map(|(_, s)| &**s);
        let in_use = self.open.iter().chain(restored);
        let in_use = in_use.flat_map(|s| s.holds());
        in_use.chain(self.parked.holds())
    }

    /// The page state of the session in use of the visitor that
    /// [`Applied::visitor`] names (made on first use).
    pub(crate) fn visit_mut(&mut self, visitor: VisitorKey<'_>) -> Option<&mut VisitPages> {
        let s = self.open.get_mut(visitor)?;
        Some(s.visit.get_or_insert_with(Box::default))
    }

    /// Gives the open sessions back the page state a checkpoint held for
    /// them. A visit whose session is not open (which the aggregator never
    /// writes) has nothing to count an exit for, and is dropped.
    pub(crate) fn rejoin(&mut self, visits: Visits) {
        for (key, visit) in visits {
            if let Some(s) = self.open.restored_mut(&key) {
                s.visit = Some(visit);
            }
        }
        self.unpark_restored();
    }

    /// The open sessions' page state, serialized as the checkpoint's
    /// visitor-keyed map.
    pub(crate) fn visits(&self) -> VisitsRef<'_> {
        VisitsRef(self)
    }

    /// The funnel stage names, `session` first.
    pub(crate) fn stage_names(&self) -> Vec<String> {
        std::iter::once("session".to_string())
            .chain(self.stages.iter().cloned())
            .collect()
    }

    /// Applies one event in event-time order. A new session beyond
    /// `max_open` open ones first closes the session due to close soonest.
    pub(crate) fn apply<'e>(
        &mut self,
        e: &'e Event,
        pos: Position,
        held: &mut HeldOffsets,
        max_open: usize,
    ) -> Applied<'e> {
        // Orders, payments and refunds (the back end's) join the session in
        // use, keeping its channel, or the visitor's open session they name;
        // they never open one.
        let server_side = e.kind.is_order_lifecycle();
        let visitor = self.open.key(e.anonymous_id.as_str());
        let (closed, in_use) = self.place(e, visitor, server_side, held);
        if server_side && !in_use {
            return Applied {
                visitor,
                closed,
                evicted: None,
                started: None,
                channel: self.rules.classify(e.campaign(), e.page.as_ref()),
                reached: None,
            };
        }
        let (evicted, started) = if in_use {
            (None, None)
        } else {
            let full = self.len() >= max_open.max(1);
            let evicted = if full { self.close_soonest(held) } else { None };
            (evicted, Some(self.open_for(e, visitor, pos)))
        };
        let s = self.open.get_mut(visitor).expect("open");
        let reached = s.record(
            e,
            server_side,
            &self.stages,
            &self.currency,
            &mut self.strings,
        );
        s.hold(pos, held);
        Applied {
            visitor,
            closed,
            evicted,
            started,
            channel: s.channel,
            reached,
        }
    }

    /// Puts the session `e` belongs to in use for its visitor: the one in
    /// use closes if `e` is past its deadline, or is parked if `e` names
    /// another storefront session; a parked session `e` names resumes.
    /// Returns the session closed, and whether the visitor has a session in
    /// use now (one lookup, where asking again would hash the id again).
    fn place(
        &mut self,
        e: &Event,
        k: VisitorKey<'_>,
        server_side: bool,
        held: &mut HeldOffsets,
    ) -> (Option<Closed>, bool) {
        let ts = e.timestamp_ms;
        let mut closed = None;
        let visitor = k.id.id();
        let (gap, max) = (self.gap_ms, self.max_ms);
        let live = |s: &Open| ts < s.close_at(gap, max);
        let id = e.session_id.as_deref();
        let mut in_use = false;
        if let Some(s) = self.open.get(k) {
            let other = matches!((id, s.storefront_id()), (Some(a), Some(b)) if !b.is(a));
            // A back-end event switches only to a session it names that the
            // visitor has open (a payment system's own id names none).
            let switch =
                other && (!server_side || id.is_some_and(|id| self.parked.has(visitor, id, live)));
            if !live(s) {
                let s = self.open.remove(k).expect("present");
                closed = Some(self.finish(*s, held));
            } else if switch {
                // Another storefront session of the visitor: this one waits.
                let s = self.open.remove(k).expect("present");
                self.parked.park(s.visitor.to_arc(), s);
            } else {
                in_use = true;
            }
        }
        // Only a visitor with no session in use (and parked ones) resumes one.
        let resume = self.parked.len() > 0 && !in_use;
        if let Some(id) = id.filter(|_| resume) {
            if let Some(s) = self.parked.take(visitor, id, live) {
                self.open.insert(k, s);
                in_use = true;
            }
        }
        (closed, in_use)
    }

    /// Opens a session for `e`'s visitor, who has none in use.
    fn open_for(&mut self, e: &Event, k: VisitorKey<'_>, pos: Position) -> Started {
        // The visitor id, for the session and its deadline entry: no
        // allocation for a UUID or a short id.
        let key = SmallId::new(&e.anonymous_id);
        let channel = self.rules.classify(e.campaign(), e.page.as_ref());
        let mut s = Open::start(e, pos, key.clone(), channel, &mut self.strings);
        let visitor = visitor_digest(&e.anonymous_id);
        s.set_new_visitor(self.visitors.first_time(visitor));
        let at = s.queue(s.close_at(self.gap_ms, self.max_ms));
        self.deadlines.push(Reverse((at, key)));
        self.open.insert(k, Box::new(s));
        Started {
            at_ms: e.timestamp_ms,
            visitor,
        }
    }

    fn finish(&self, mut s: Open, held: &mut HeldOffsets) -> Closed {
        s.release_holds(held);
        Closed {
            row: s.row(s.bounced(self.bounce_ms)),
            visit: s.visit.take(),
        }
    }

    /// Takes out the next open session (in use or parked) whose deadline,
    /// its inactivity gap or length cap, is at or before `until` (the
    /// soonest of all when `None`); its entry comes off the heap. The
    /// visitor is looked up once for the check and the taking.
    fn take_next_due(&mut self, until: Option<i64>) -> Option<Box<Open>> {
        let (open, parked) = (&mut self.open, &mut self.parked);
        let (gap, max) = (self.gap_ms, self.max_ms);
        let mut taken = None;
        pop_due(&mut self.deadlines, until, |visitor, at| {
            visitor.with_str(|visitor| {
                // The session in use, or a parked one; none: closed earlier
                // (by a new session), or an entry of an earlier session.
                let k = open.key(visitor);
                let (s, in_use) = match open.get_mut(k) {
                    Some(s) if s.queued_at() == at => (Some(s), true),
                    _ => (parked.queued_mut(visitor, at), false),
                };
                let Some(s) = s else {
                    return Due::Stale;
                };
                let now_at = s.close_at(gap, max);
                if now_at > at {
                    return Due::Later(s.queue(now_at));
                }
                taken = if in_use {
                    open.remove(k)
                } else {
                    parked.take_queued(visitor, at)
                };
                Due::Now
            })
        })?;
        taken
    }

    /// Closes the open session whose inactivity gap or length cap ends
    /// first: of all open sessions, the one closest to closing anyway.
    fn close_soonest(&mut self, held: &mut HeldOffsets) -> Option<Closed> {
        let s = self.take_next_due(None)?;
        Some(self.finish(*s, held))
    }

    /// Closes every session that no event at or after `watermark_ms` can
    /// extend, into `out` (empty; the caller's room, kept between calls).
    pub(crate) fn close_until(
        &mut self,
        watermark_ms: i64,
        held: &mut HeldOffsets,
        out: &mut Vec<Closed>,
    ) {
        while let Some(s) = self.take_next_due(Some(watermark_ms)) {
            out.push(self.finish(*s, held));
        }
        // Sessions closed in one advance come out in a stable order.
        crate::rows::sort_rows(out, |a, b| {
            (a.row.start_ms, &a.row.anonymous_id).cmp(&(b.row.start_ms, &b.row.anonymous_id))
        });
    }
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
