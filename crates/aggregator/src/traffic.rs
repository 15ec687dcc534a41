//! Traffic windows: sessions, page views and bounces per window of session start.

use std::collections::{BTreeMap, BTreeSet};

use contract::time::window_start;

use crate::channel::Channel;
use crate::rows::{SessionRow, TrafficRow};

#[derive(Default)]
struct Acc {
    sessions: u64,
    page_views: u64,
    bounces: u64,
    conversions: u64,
    duration_ms: u64,
}

type Key = (i64, Channel, i32);

pub(crate) struct Traffic {
    window_ms: i64,
    /// Sessions still open, by the window they started in.
    open: BTreeMap<i64, u64>,
    acc: BTreeMap<Key, Acc>,
    dirty: BTreeSet<Key>,
}

impl Traffic {
    pub(crate) fn new(window_ms: i64) -> Self {
        Traffic {
            window_ms,
            open: BTreeMap::new(),
            acc: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// A session started at `start_ms`.
    pub(crate) fn open(&mut self, start_ms: i64) {
        *self
            .open
            .entry(window_start(start_ms, self.window_ms))
            .or_insert(0) += 1;
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
        let key = (w, s.channel, s.partition);
        let a = self.acc.entry(key).or_default();
        a.sessions += 1;
        a.page_views += u64::from(s.page_views);
        a.bounces += u64::from(s.bounced);
        a.conversions += u64::from(s.converted);
        a.duration_ms += s.duration_ms().max(0) as u64;
        self.dirty.insert(key);
    }

    /// Rows changed since the last flush; forgets windows that can no longer change.
    pub(crate) fn flush(&mut self, watermark_ms: i64) -> Vec<TrafficRow> {
        let rows = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|k| {
                self.acc.get(&k).map(|a| TrafficRow {
                    window_start_ms: k.0,
                    channel: k.1,
                    partition: k.2,
                    sessions: a.sessions,
                    page_views: a.page_views,
                    bounces: a.bounces,
                    conversions: a.conversions,
                    duration_ms: a.duration_ms,
                    version: a.sessions,
                })
            })
            .collect();
        // A window is done once no session can start in it and none is open.
        let window_ms = self.window_ms;
        let open = &self.open;
        self.acc
            .retain(|(w, _, _), _| w + window_ms > watermark_ms || open.contains_key(w));
        rows
    }
}
