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
}

impl Part {
    fn new(now_ms: u64) -> Self {
        Part {
            max_event_ms: None,
            last_seen_ms: now_ms,
            paused: false,
            empty: false,
            resumed_ms: None,
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
        }
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
        p.paused || unconfirmed || (!empty && now_ms.saturating_sub(p.last_seen_ms) < idle)
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
mod tests {
    use super::*;

    const A: Source = Source::new(0, 0);
    const B: Source = Source::new(0, 1);

    fn tracker() -> WatermarkTracker {
        WatermarkTracker::new(WatermarkSettings {
            allowed_lateness_ms: 60_000,
            idle_timeout_ms: 30_000,
            max_drift_ms: 120_000,
            max_buffered_events: 0,
        })
    }

    #[test]
    fn the_slowest_active_partition_sets_the_watermark() {
        let mut t = tracker();
        t.assign([A, B], 0);
        t.observe(A, Some(1_000_000), 0);
        assert_eq!(t.watermark(0), i64::MIN, "B has delivered nothing yet");
        t.observe(B, Some(900_000), 0);
        assert_eq!(t.watermark(0), 840_000);
        t.observe(B, Some(2_000_000), 1);
        assert_eq!(t.watermark(1), 940_000);
    }

    #[test]
    fn a_partition_with_nothing_to_read_that_never_delivered_holds_nothing() {
        let mut t = tracker();
        t.assign([A, B], 0);
        t.observe(A, Some(1_000_000), 10);
        assert_eq!(t.watermark(10), i64::MIN, "B's end of log not known yet");
        // The broker reports B empty at our position: no idle timeout wait.
        t.nothing_to_read(B);
        assert_eq!(t.watermark(20), 940_000);
        // A partition that delivered keeps holding until its idle timeout.
        t.nothing_to_read(A);
        t.observe(B, Some(500_000), 30);
        assert_eq!(t.watermark(40), 940_000, "B is behind but so is the floor");
        t.observe(A, Some(3_000_000), 50);
        t.nothing_to_read(A);
        assert_eq!(t.watermark(60), 940_000, "B delivered: it holds again");
    }

    #[test]
    fn a_call_after_every_partition_went_idle_still_sets_the_watermark() {
        let mut t = tracker();
        // B delivers nothing (an empty topic): it holds the watermark until
        // idle. A's events all came at once, and both went idle before the
        // next call.
        t.assign([A, B], 0);
        t.observe(A, Some(1_000_000), 10);
        assert_eq!(t.watermark(10), i64::MIN, "B not heard from yet");
        assert_eq!(t.watermark(30_011), 940_000, "A's events count");
        t.observe(A, Some(2_000_000), 40_000);
        assert_eq!(t.watermark(40_000), 1_940_000);
        assert_eq!(t.watermark(100_000), 1_940_000, "all idle: it stays");
    }

    #[test]
    fn once_every_partition_is_idle_the_watermark_goes_as_far_as_the_furthest() {
        let mut t = tracker();
        t.assign([A, B], 0);
        t.observe(A, Some(1_000_000), 0);
        t.observe(B, Some(5_000_000), 0);
        assert_eq!(t.watermark(10), 940_000, "both active: the slower");
        t.observe(A, Some(1_500_000), 20_000);
        assert_eq!(t.watermark(30_000), 1_440_000, "B idle: A alone");
        assert_eq!(t.watermark(50_000), 4_940_000, "both idle: B's");
        t.observe(A, Some(1_600_000), 50_001);
        assert_eq!(t.watermark(50_001), 4_940_000, "never backwards");
    }

    #[test]
    fn idle_partitions_stop_holding_it_back_and_it_never_regresses() {
        let mut t = tracker();
        t.assign([A, B], 0);
        t.observe(A, Some(1_000_000), 0);
        t.observe(B, Some(500_000), 0);
        assert_eq!(t.watermark(29_999), 440_000);
        t.observe(A, Some(1_100_000), 30_000);
        assert_eq!(t.watermark(30_000), 1_040_000, "B idle for 30 s");
        t.observe(B, Some(600_000), 30_001);
        assert_eq!(t.watermark(30_001), 1_040_000, "never backwards");
    }

    #[test]
    fn partitions_running_ahead_are_paused_then_resumed() {
        let mut t = tracker();
        t.assign([A, B], 0);
        t.observe(A, Some(1_000_000), 0);
        t.observe(B, Some(1_000_000 + 121_000), 0);
        t.watermark(0);
        assert_eq!(
            t.align(0, 1),
            Alignment {
                pause: vec![B],
                resume: vec![]
            }
        );
        // B is paused: it stays active however long it is silent.
        t.observe(A, Some(1_000_000 + 62_000), 60_000);
        assert_eq!(t.watermark(60_000), 1_002_000);
        assert_eq!(
            t.align(60_000, 1),
            Alignment {
                pause: vec![],
                resume: vec![B]
            }
        );
        assert_eq!(t.paused(), 0);
        // Resumed after a minute paused, B is not idle: it holds the watermark.
        t.observe(A, Some(1_000_000 + 500_000), 60_001);
        assert_eq!(t.watermark(60_001), 1_061_000);
    }

    #[test]
    fn a_partition_ahead_is_paused_only_while_the_buffer_is_over_its_bound() {
        let mut t = tracker();
        t.cfg.max_buffered_events = 1_000;
        t.assign([A, B], 0);
        t.observe(A, Some(1_000_000), 0);
        t.observe(B, Some(1_000_000 + 600_000), 0);
        t.watermark(0);
        // Ten minutes ahead, but little is buffered: B runs on.
        assert_eq!(t.align(0, 1_000), Alignment::default());
        // Over the bound: paused.
        assert_eq!(t.align(1, 1_001).pause, vec![B]);
        // Still more than half the drift ahead; the buffer drains to half
        // the bound, and B goes on.
        assert_eq!(t.align(2, 501), Alignment::default());
        assert_eq!(t.align(3, 500).resume, vec![B]);
        // Not paused again before the buffer is over the bound again.
        assert_eq!(t.align(4, 1_000), Alignment::default());
        assert_eq!(t.align(5, 1_001).pause, vec![B]);
        // Back within half the drift, B resumes whatever is buffered.
        t.observe(A, Some(1_000_000 + 540_000), 6);
        t.watermark(6);
        assert_eq!(t.align(6, 5_000).resume, vec![B]);
    }

    /// Three partitions: A behind, B and C running ahead and paused. A
    /// falls silent at `now`; B, paused, then sets the watermark and is
    /// resumed.
    fn b_resumed_at(now: u64) -> WatermarkTracker {
        const C: Source = Source::new(0, 2);
        let mut t = tracker();
        t.assign([A, B, C], 0);
        t.observe(A, Some(1_000_000), 0);
        t.observe(B, Some(1_000_000 + 150_000), 0);
        t.observe(C, Some(2_000_000), 0);
        assert_eq!(t.watermark(0), 940_000);
        assert_eq!(t.align(0, 1).pause, vec![B, C]);
        assert_eq!(t.watermark(now), 1_090_000);
        assert_eq!(t.align(now, 1).resume, vec![B]);
        t
    }

    #[test]
    fn a_resumed_partition_holds_until_its_end_is_known_then_counts_its_real_silence() {
        let now = 30_000;
        // While the broker's answer is awaited, B holds the watermark, and
        // the wait does not count as a backlog that resets its silence.
        let mut t = b_resumed_at(now);
        t.end_unknown(B, now + 100);
        assert_eq!(t.watermark(now + 20_000), 1_090_000);
        // The broker reports nothing to read: nothing was appended to B
        // since its last delivery, 30 s ago, so it is idle at once and C
        // (still paused, so active) sets the watermark.
        t.nothing_to_read(B);
        assert_eq!(t.watermark(now + 20_001), 1_940_000);

        // A resumed partition that delivered recently stays active for the
        // rest of its idle timeout, counted from that delivery.
        let mut t = b_resumed_at(now);
        t.observe(B, Some(1_150_000), now - 10_000);
        t.nothing_to_read(B);
        assert_eq!(t.watermark(now + 19_999), 1_090_000);
        assert_eq!(t.watermark(now + 20_000), 1_940_000);

        // An answer that never comes holds it for one idle timeout at most.
        let mut t = b_resumed_at(now);
        assert_eq!(t.watermark(now + 29_999), 1_090_000);
        assert_eq!(t.watermark(now + 30_000), 1_940_000);

        // With data waiting, a resumed partition stays active.
        let mut t = b_resumed_at(now);
        t.has_backlog(B, now + 1);
        assert_eq!(t.watermark(now + 29_000), 1_090_000);
        // A partition that was not resumed counts an unknown end as a
        // backlog, as before: A, silent, is active again and holds the
        // watermark where it is (without it, C would set it).
        let mut t = b_resumed_at(now);
        t.nothing_to_read(B);
        t.end_unknown(A, now + 25_000);
        assert_eq!(t.watermark(now + 25_001), 1_090_000);
    }

    #[test]
    fn a_partition_assigned_back_after_a_revoke_is_to_be_resumed() {
        let mut t = tracker();
        assert_eq!(t.assign([A, B], 0), vec![A, B], "new: resume in the client");
        t.observe(A, Some(1_000_000), 0);
        t.observe(B, Some(1_000_000 + 121_000), 0);
        t.watermark(0);
        assert_eq!(t.align(0, 1).pause, vec![B]);
        // A rebalance seen while it lasts: B goes, then comes back. The
        // client still holds it paused; the tracker forgot it: resume.
        assert_eq!(t.assign([A], 1), Vec::<Source>::new());
        assert_eq!(t.assign([A, B], 2), vec![B]);
        assert_eq!(t.paused(), 0);
        // A rebalance not seen (B never left the tracker): the pause stays
        // on both sides, and alignment resumes it as usual.
        t.observe(B, Some(1_000_000 + 121_000), 3);
        t.watermark(3);
        assert_eq!(t.align(3, 1).pause, vec![B]);
        assert_eq!(t.assign([A, B], 4), Vec::<Source>::new());
        assert_eq!(t.paused(), 1);
    }

    #[test]
    fn an_end_of_log_not_reported_yet_is_a_backlog() {
        assert!(may_have_backlog(None, None), "assigned, never fetched");
        assert!(may_have_backlog(None, Some(40)), "reported by no fetch yet");
        assert!(may_have_backlog(Some(10), None), "messages, none read");
        assert!(may_have_backlog(Some(10), Some(9)));
        assert!(!may_have_backlog(Some(10), Some(10)), "caught up");
        assert!(!may_have_backlog(Some(0), None), "an empty partition");
    }

    #[test]
    fn a_partition_with_a_backlog_is_never_idle() {
        let mut t = tracker();
        t.assign([A, B], 0);
        t.observe(A, Some(1_000_000), 0);
        t.observe(B, Some(500_000), 0);
        t.has_backlog(B, 40_000);
        t.observe(A, Some(1_100_000), 40_000);
        assert_eq!(t.watermark(40_000), 440_000, "B is starved, not idle");
    }

    #[test]
    fn a_group_follows_its_own_active_partitions() {
        let mut t = tracker();
        t.assign([A, B], 0);
        assert_eq!(t.group(|s| s == A, 0), Group::Unknown);
        t.observe(A, Some(100_000), 0);
        t.observe(B, Some(900_000), 0);
        let lateness = 60_000;
        assert_eq!(t.group(|s| s == B, 0), Group::Active(900_000 - lateness));
        assert_eq!(t.group(|_| true, 0), Group::Active(100_000 - lateness));
        // A goes silent past the idle timeout: its group follows the pipeline.
        t.observe(B, Some(900_000), 300_000);
        assert_eq!(t.group(|s| s == A, 300_000), Group::Idle);
    }
}
