use serde::Deserialize;

use crate::channel::ChannelRules;

/// Every threshold of the metric definitions, with the spec's defaults.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AggregatorConfig {
    /// Tumbling window width (1 minute).
    pub window_ms: i64,
    /// Inactivity that ends a session (30 minutes).
    pub session_gap_ms: i64,
    /// Longest session (24 hours).
    pub session_max_ms: i64,
    /// A session shorter than this, with under 2 page views and no engagement, is a bounce (10 s).
    pub bounce_max_duration_ms: i64,
    /// How long an `event_id` is remembered for deduplication (1 hour).
    pub dedup_horizon_ms: i64,
    /// Memory bound of the dedup set, in ids (about 40 bytes each).
    pub dedup_max_ids: usize,
    /// Channel grouping rules.
    pub channels: ChannelRules,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            window_ms: 60_000,
            session_gap_ms: 30 * 60_000,
            session_max_ms: 24 * 3_600_000,
            bounce_max_duration_ms: 10_000,
            dedup_horizon_ms: 3_600_000,
            dedup_max_ids: 2_000_000,
            channels: ChannelRules::default(),
        }
    }
}
