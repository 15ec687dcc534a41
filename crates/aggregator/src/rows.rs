//! Rows the aggregator emits: plain data, ready for any sink.

use crate::channel::Channel;

/// One closed session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// The storefront's session id, else `<anonymous_id>:<start_ms>`.
    pub session_id: String,
    /// Visitor.
    pub anonymous_id: String,
    /// Last user id seen in the session, empty when none.
    pub user_id: String,
    /// First event time (epoch ms).
    pub start_ms: i64,
    /// Last event time (epoch ms).
    pub end_ms: i64,
    /// Page views.
    pub page_views: u32,
    /// Events of any type.
    pub events: u32,
    /// Path of the first page view, empty when none.
    pub entry_path: String,
    /// Path of the last page view, empty when none.
    pub exit_path: String,
    /// Channel of the first event.
    pub channel: Channel,
    /// `utm_source` (or referrer host) of the first event.
    pub source: String,
    /// `utm_medium` of the first event.
    pub medium: String,
    /// `utm_campaign` of the first event.
    pub campaign: String,
    /// Device of the first event.
    pub device: &'static str,
    /// Experiment id of the first event that had one.
    pub experiment_id: String,
    /// Its variant.
    pub variant: String,
    /// Under 2 page views, no engagement event and shorter than the bounce threshold.
    pub bounced: bool,
    /// Placed an order.
    pub converted: bool,
    /// Kafka partition of the visitor.
    pub partition: i32,
}

impl SessionRow {
    /// Last event - first event.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// Traffic of one window (by session start), channel and partition.
///
/// Sessions are counted when they close, so a window's row is re-emitted
/// with a higher `version` (its session count) each time another session
/// that started in it closes; the last version is the final value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficRow {
    /// Window start (epoch ms, UTC aligned).
    pub window_start_ms: i64,
    /// Channel.
    pub channel: Channel,
    /// Kafka partition the sessions came from.
    pub partition: i32,
    /// Closed sessions that started in the window.
    pub sessions: u64,
    /// Their page views.
    pub page_views: u64,
    /// Their bounces.
    pub bounces: u64,
    /// Those that placed an order.
    pub conversions: u64,
    /// Sum of their durations.
    pub duration_ms: u64,
    /// Grows with each re-emission: the number of sessions counted.
    pub version: u64,
}
