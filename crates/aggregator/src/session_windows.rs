//! Closed sessions per window of session start, channel, experiment variant
//! and partition: traffic, funnel and experiment figures.

use crate::hash::Set;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use contract::time::window_start;

use crate::channel::Channel;
use crate::rows::{SessionRow, SessionWindowRow};

type Key = (i64, Channel, Arc<str>, Arc<str>, i32);

#[derive(serde::Serialize, serde::Deserialize)]
struct Acc {
    row: SessionWindowRow,
    visitors: Set<std::sync::Arc<str>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct SessionWindows {
    window_ms: i64,
    stages: usize,
    /// Sessions still open, by the window they started in.
    open: BTreeMap<i64, u64>,
    acc: BTreeMap<Key, Acc>,
    dirty: BTreeSet<Key>,
}

impl Acc {
    /// A window's empty accumulator for `key`, with `stages` funnel stages.
    fn new(key: &Key, stages: usize) -> Acc {
        let (w, channel, experiment_id, variant, partition) = key;
        Acc {
            row: SessionWindowRow {
                window_start_ms: *w,
                channel: *channel,
                experiment_id: experiment_id.to_string(),
                variant: variant.to_string(),
                partition: *partition,
                sessions: 0,
                visitors: 0,
                new_visitors: 0,
                page_views: 0,
                bounces: 0,
                conversions: 0,
                orders: 0,
                revenue_minor: 0,
                duration_ms: 0,
                signups: 0,
                referral_sessions: 0,
                reached: vec![0; stages],
                reached_any: vec![0; stages],
                version: 0,
            },
            visitors: Set::default(),
        }
    }

    /// Counts the closed session `s` in.
    fn add(&mut self, s: &SessionRow) {
        let r = &mut self.row;
        let stages = r.reached.len();
        r.sessions += 1;
        if self.visitors.insert(s.anonymous_id.clone()) {
            r.visitors += 1;
        }
        r.new_visitors += u64::from(s.new_visitor);
        r.page_views += u64::from(s.page_views);
        r.bounces += u64::from(s.bounced);
        r.conversions += u64::from(s.converted);
        r.orders += u64::from(s.orders);
        r.revenue_minor = r.revenue_minor.saturating_add(s.revenue_minor);
        r.duration_ms += s.duration_ms().max(0) as u64;
        r.signups += u64::from(s.signups);
        r.referral_sessions += u64::from(s.referral);
        for i in 0..stages {
            if i == 0 || i <= usize::from(s.stage_reached) {
                r.reached[i] += 1;
            }
            if i == 0 || s.stages_any & (1 << (i - 1)) != 0 {
                r.reached_any[i] += 1;
            }
        }
        r.version = r.sessions;
    }
}

impl SessionWindows {
    /// `stages` counts funnel stages including `session`.
    pub(crate) fn new(window_ms: i64, stages: usize) -> Self {
        SessionWindows {
            window_ms,
            stages,
            open: BTreeMap::new(),
            acc: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// A session started at `start_ms`.
    /// Whether a session started in window `w` is still open.
    pub(crate) fn has_open(&self, w: i64) -> bool {
        self.open.contains_key(&w)
    }

    pub(crate) fn open(&mut self, start_ms: i64) {
        *self
            .open
            .entry(window_start(start_ms, self.window_ms))
            .or_insert(0) += 1;
    }

    /// A session started at `start_ms` was dropped (an erasure): it is
    /// not open any more, and is not counted.
    pub(crate) fn forget_open(&mut self, start_ms: i64) {
        let w = window_start(start_ms, self.window_ms);
        if let Some(n) = self.open.get_mut(&w) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&w);
            }
        }
    }

    /// A session closed: count it in its start window.
    pub(crate) fn close(&mut self, s: &SessionRow) {
        let w = window_start(s.start_ms, self.window_ms);
        if let Some(n) = self.open.get_mut(&w) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&w);
            }
        }
        let key = (
            w,
            s.channel,
            s.experiment_id.clone(),
            s.variant.clone(),
            s.partition,
        );
        // Looked up before it is cloned: most sessions land in a window
        // already open (a clone is two reference counts up and down).
        match self.acc.get_mut(&key) {
            Some(a) => a.add(s),
            None => {
                let mut a = Acc::new(&key, self.stages);
                a.add(s);
                self.acc.insert(key.clone(), a);
            }
        }
        self.dirty.insert(key);
    }

    /// Rows changed since the last flush; forgets windows that can no longer change.
    pub(crate) fn flush(&mut self, watermark_ms: i64) -> Vec<SessionWindowRow> {
        let rows = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|k| self.acc.get(&k).map(|a| a.row.clone()))
            .collect();
        // A window is done once no session can start in it and none is open.
        let window_ms = self.window_ms;
        let open = &self.open;
        self.acc
            .retain(|(w, ..), _| w + window_ms > watermark_ms || open.contains_key(w));
        rows
    }
}
