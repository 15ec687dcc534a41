//! Per-partition watermarks, idleness and alignment.
//!
//! Each partition's watermark is the largest event time it delivered minus
//! the allowed lateness. The pipeline's watermark is the minimum over the
//! assigned partitions that are not idle. A partition that delivered nothing
//! for the idle timeout (wall clock) stops holding it back; one that runs
//! further ahead than the allowed drift is reported for pausing, as Flink's
//! watermark alignment does, and for resuming once the rest catch up.

use std::collections::BTreeMap;

use aggregator::Source;

use crate::settings::WatermarkSettings;

/// Whether a partition read up to `position` (the next offset to read;
/// `None` before its first message) may have messages waiting, given the
/// end of its log as the client last saw it (`None` while no fetch
/// response has reported it).
///
/// An end of log not known yet counts as a backlog: right after an
/// assignment, a broker that serves one partition's fetches before the
/// others' (tansu does; Kafka may, under `fetch.max.bytes`) leaves the
/// others unheard of for longer than a short idle timeout, and judging
/// them idle then lets their store's other partitions carry the watermark
/// past their whole backlog, which then arrives late. Every fetch response
/// reports the end of each partition it covers, so this lasts until the
/// first one that covers it.
pub fn may_have_backlog(end_of_log: Option<i64>, position: Option<i64>) -> bool {
    end_of_log.is_none_or(|end| end > position.unwrap_or(0))
}

#[derive(Debug, Clone, Copy)]
struct Part {
    max_event_ms: Option<i64>,
    last_seen_ms: u64,
    paused: bool,
    /// The broker reported nothing to read at our position, and nothing
    /// was delivered since.
    empty: bool,
    /// When alignment resumed it, while neither a delivery nor the broker
    /// has told since whether it has anything to read (see
    /// [`WatermarkTracker::align`]).
    resumed_ms: Option<u64>,
    /// Since when every message it delivered had no event time (see
    /// [`WatermarkTracker::observe_untimed`]), if the latest had none.
    untimed_since_ms: Option<u64>,
}

impl Part {
    fn new(now_ms: u64) -> Self {
        Part {
            max_event_ms: None,
            last_seen_ms: now_ms,
            paused: false,
            empty: false,
            resumed_ms: None,
            untimed_since_ms: None,
        }
    }
}

/// Tracks watermarks of the assigned partitions. Wall-clock times are
/// passed in (`now_ms`), never read here.
#[derive(Debug)]
pub struct WatermarkTracker {
    cfg: WatermarkSettings,
    parts: BTreeMap<Source, Part>,
    current: i64,
}

/// The watermark of a group of partitions (see [`WatermarkTracker::group`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The lowest watermark of its active partitions.
    Active(i64),
    /// An active partition has delivered nothing yet: hold.
    Unknown,
    /// None is active: it follows the pipeline's watermark.
    Idle,
}

/// What to do with partitions after an update.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Alignment {
    /// Pause these: they run ahead.
    pub pause: Vec<Source>,
    /// Resume these: the rest caught up.
    pub resume: Vec<Source>,
}

impl WatermarkTracker {
    /// A tracker with no partitions.
    pub fn new(cfg: WatermarkSettings) -> Self {
        WatermarkTracker {
            cfg,
            parts: BTreeMap::new(),
            current: i64::MIN,
        }
    }

    /// Sets the assigned partitions. New ones hold the watermark until they
    /// deliver or go idle; revoked ones are forgotten.
    ///
    /// Returns the partitions new to the tracker: the caller must resume
    /// them in the client. A Kafka client keeps a partition's pause across a
    /// rebalance (librdkafka does), so a partition paused here, revoked and
    /// assigned back later would otherwise stay paused for good while the
    /// tracker, which forgot it, never asks to resume it.
    pub fn assign(
        &mut self,
        sources: impl IntoIterator<Item = Source>,
        now_ms: u64,
    ) -> Vec<Source> {
        let mut added = Vec::new();
        let new: BTreeMap<Source, Part> = sources
            .into_iter()
            .map(|s| {
                let part = self.parts.get(&s).copied().unwrap_or_else(|| {
                    added.push(s);
                    Part::new(now_ms)
                });
                (s, part)
            })
            .collect();
        self.parts = new;
        added
    }

    /// `source` has data waiting to be read: it is not idle, whatever the
    /// wall clock says (a broker may starve a partition for a while).
    pub fn has_backlog(&mut self, source: Source, now_ms: u64) {
        if let Some(p) = self.parts.get_mut(&source) {
            p.last_seen_ms = now_ms;
            p.empty = false;
            p.resumed_ms = None;
        }
    }

    /// The end of `source`'s log is being asked of the broker: until it
    /// answers, `source` may have data waiting. A partition resumed by
    /// alignment waits for that answer without its silence being reset
    /// (it stays active meanwhile, see [`Self::align`]); any other counts
    /// as having a backlog.
    pub fn end_unknown(&mut self, source: Source, now_ms: u64) {
        let resumed = self
            .parts
            .get(&source)
            .is_some_and(|p| p.resumed_ms.is_some());
        if !resumed {
            self.has_backlog(source, now_ms);
        }
    }

    /// The broker reports nothing to read in `source` at our position. One
    /// that never delivered an event (an empty `marketing.spend`, say) then
    /// stops holding the watermark at once, rather than after the idle
    /// timeout; one that delivered events keeps the timeout, as more may
    /// follow within it.
    pub fn nothing_to_read(&mut self, source: Source) {
        if let Some(p) = self.parts.get_mut(&source) {
            p.empty = true;
            p.resumed_ms = None;
        }
    }

    /// Assigned partitions.
    pub fn sources(&self) -> Vec<Source> {
        self.parts.keys().copied().collect()
    }

    /// Whether `source` is among the assigned partitions.
    pub fn is_assigned(&self, source: Source) -> bool {
        self.parts.contains_key(&source)
    }

    /// A message from `source` at `now_ms` carrying event time `event_ms`
    /// (`None` for a message that was not a valid event).
    pub fn observe(&mut self, source: Source, event_ms: Option<i64>, now_ms: u64) {
        let p = self.parts.entry(source).or_insert(Part::new(now_ms));
        p.last_seen_ms = now_ms;
        p.empty = false;
        p.resumed_ms = None;
        if let Some(t) = event_ms {
            p.max_event_ms = Some(p.max_event_ms.map_or(t, |m| m.max(t)));
            p.untimed_since_ms = None;
        }
    }

    /// A message from `source` at `now_ms` that carries no event time to
    /// go by: rejected before its time was read, or for its time. It
    /// answers a resume, but says nothing of how far the partition's clock
    /// got, so its silence still counts from its last event with a time;
    /// and once it has delivered nothing else for an idle timeout, a
    /// backlog of such messages holds the watermark no longer. (Counted
    /// as events, a partition fed only malformed messages held the
    /// watermark for as long as they came.)
    pub fn observe_untimed(&mut self, source: Source, now_ms: u64) {
        let p = self.parts.entry(source).or_insert(Part::new(now_ms));
        p.resumed_ms = None;
        p.untimed_since_ms.get_or_insert(now_ms);
    }

    fn partition_wm(&self, p: &Part) -> Option<i64> {
        p.max_event_ms.map(|m| m - self.cfg.allowed_lateness_ms)
    }

    fn active(&self, p: &Part, now_ms: u64) -> bool {
        // A paused partition is held back by us, not idle, and so is one
        // resumed whose end of log is not known yet; an empty one that
        // never delivered has nothing to hold the watermark for.
        let idle = self.cfg.idle_timeout_ms;
        let unconfirmed = p
            .resumed_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < idle);
        let empty = p.empty && p.max_event_ms.is_none();
        let untimed = p
            .untimed_since_ms
            .is_some_and(|t| now_ms.saturating_sub(t) >= idle);
        p.paused
            || unconfirmed
            || (!empty && !untimed && now_ms.saturating_sub(p.last_seen_ms) < idle)
    }

    /// The pipeline watermark at `now_ms`: never moves backwards, and stays
    /// where it is while an active partition has delivered nothing yet.
    pub fn watermark(&mut self, now_ms: u64) -> i64 {
        let mut min: Option<i64> = None;
        let mut any_active = false;
        for p in self.parts.values() {
            if !self.active(p, now_ms) {
                continue;
            }
            any_active = true;
            match self.partition_wm(p) {
                None => return self.current, // an active partition we know nothing of
                Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
            }
        }
        if !any_active {
            // Every partition is caught up and silent: none holds the
            // watermark back, and it goes as far as the furthest of them
            // reached, so that what all of the input closes is written (a
            // partition's events after a silence of an idle timeout may be
            // late, whichever way this is set). Without this, when they all
            // went idle between two calls before a partition that delivers
            // nothing (say, an empty spend topic) stopped holding it, the
            // watermark stayed unset for good.
            min = self
                .parts
                .values()
                .filter_map(|p| self.partition_wm(p))
                .max();
        }
        if let Some(m) = min {
            self.current = self.current.max(m);
        }
        self.current
    }

    /// Partitions to pause (ahead of the watermark by more than the drift,
    /// while the stores buffer more than `max_buffered_events`, `buffered`
    /// being what they hold now) and to resume (back within half the
    /// drift, or the stores down to half the bound). Call after
    /// [`Self::watermark`].
    ///
    /// Each store has a watermark of its own, so a partition ahead of
    /// another store's partitions buffers nothing for that store: pausing
    /// on the drift alone would cost a resume for no memory.
    ///
    /// While a partition is paused its log is not fetched, so whether it
    /// fell silent is not known. A resumed one stays active until it
    /// delivers, or the broker reports its end (ask it: the caller marks
    /// the end unknown and reports it with [`Self::end_unknown`],
    /// [`Self::has_backlog`] or [`Self::nothing_to_read`]), at most an idle
    /// timeout. Nothing to read then means nothing was appended since its
    /// last delivery, so its silence counts from that delivery: one silent
    /// for the idle timeout stops holding the watermark at once. (A fixed
    /// 2 s grace before made each link of a chain of resumed, silent
    /// partitions hold the watermark 2 s.)
    pub fn align(&mut self, now_ms: u64, buffered: usize) -> Alignment {
        let mut out = Alignment::default();
        let wm = self.current;
        if wm == i64::MIN {
            return out;
        }
        let drift = self.cfg.max_drift_ms;
        let lateness = self.cfg.allowed_lateness_ms;
        let bound = self.cfg.max_buffered_events;
        let full = buffered > bound;
        let drained = bound > 0 && buffered <= bound / 2;
        for (src, p) in self.parts.iter_mut() {
            let Some(max) = p.max_event_ms else { continue };
            let ahead = max - lateness - wm;
            if !p.paused && ahead > drift && full {
                p.paused = true;
                out.pause.push(*src);
            } else if p.paused && (ahead <= drift / 2 || drained) {
                p.paused = false;
                p.resumed_ms = Some(now_ms);
                out.resume.push(*src);
            }
        }
        out
    }

    /// The watermark of the partitions `include` selects (one store's
    /// sources): the lowest over those that are active; [`Group::Unknown`]
    /// while one of them is active but has delivered nothing, and
    /// [`Group::Idle`] when none is active.
    pub fn group(&self, include: impl Fn(Source) -> bool, now_ms: u64) -> Group {
        let mut min: Option<i64> = None;
        for (source, p) in &self.parts {
            if !include(*source) || !self.active(p, now_ms) {
                continue;
            }
            match self.partition_wm(p) {
                None => return Group::Unknown,
                Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
            }
        }
        min.map_or(Group::Idle, Group::Active)
    }

    /// Whether no assigned partition is active (all caught up and silent).
    pub fn all_idle(&self, now_ms: u64) -> bool {
        !self.parts.values().any(|p| self.active(p, now_ms))
    }

    /// Whether `source` is paused by alignment now.
    pub fn is_paused(&self, source: Source) -> bool {
        self.parts.get(&source).is_some_and(|p| p.paused)
    }

    /// Partitions paused now.
    pub fn paused(&self) -> usize {
        self.parts.values().filter(|p| p.paused).count()
    }
}

#[cfg(test)]
#[path = "watermark_tests.rs"]
mod tests;
