//! The Prometheus registry: pipeline health and business series.
//!
//! Names follow Prometheus conventions (`shoplens_` prefix, base units,
//! `_total` for counters). Labels are bounded sets: topic kinds, rejection
//! reasons, table names, channels. Counters are additive across instances.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Every series the pipeline exports.
pub struct Metrics {
    registry: Registry,
    /// Messages read from Kafka, by topic kind (clickstream, orders, spend).
    pub events_consumed: IntCounterVec,
    /// Messages dead-lettered, by reason (including `late`).
    pub events_invalid: IntCounterVec,
    /// Duplicates dropped inside the dedup horizon.
    pub events_duplicate: IntCounter,
    /// Bot events counted apart from business metrics.
    pub events_bot: IntCounter,
    /// Dedup ids evicted early by the memory bound.
    pub dedup_evicted_early: IntCounter,
    /// Closed sessions.
    pub sessions: IntCounter,
    /// Closed sessions by channel.
    pub sessions_by_channel: IntCounterVec,
    /// Page views of closed sessions.
    pub page_views: IntCounter,
    /// Bounced sessions.
    pub bounces: IntCounter,
    /// Sessions open now.
    pub sessions_open: IntGauge,
    /// Events buffered ahead of the watermark.
    pub buffered_events: IntGauge,
    /// Ids held for deduplication.
    pub dedup_ids: IntGauge,
    /// The pipeline watermark, as Unix seconds.
    pub watermark: prometheus::Gauge,
    /// Partitions held back because they ran ahead of the watermark.
    pub partitions_paused: IntGauge,
    /// Offsets committed, by topic kind.
    pub offsets_committed: IntCounterVec,
    /// Duration of successful ClickHouse inserts, by table.
    pub insert_duration: HistogramVec,
    /// Failed ClickHouse insert attempts, by table.
    pub insert_failures: IntCounterVec,
    /// Rows written to ClickHouse, by table.
    pub rows_written: IntCounterVec,
    /// Events per batch handed from ingest to the aggregator.
    pub batch_events: Histogram,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl Metrics {
    /// A fresh registry with every series registered; labelled series for
    /// known label values start at zero so dashboards see them at once.
    pub fn new() -> Self {
        let r = Registry::new();
        let watermark = prometheus::Gauge::new(
            "shoplens_watermark_timestamp_seconds",
            "The pipeline's event-time watermark as Unix seconds.",
        )
        .expect("valid metric");
        r.register(Box::new(watermark.clone()))
            .expect("unique metric");
        let insert_duration = HistogramVec::new(
            HistogramOpts::new(
                "shoplens_clickhouse_insert_duration_seconds",
                "Duration of successful ClickHouse inserts.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["table"],
        )
        .expect("valid metric");
        r.register(Box::new(insert_duration.clone()))
            .expect("unique metric");
        let batch_events = Histogram::with_opts(
            HistogramOpts::new("shoplens_batch_events", "Events per consumed batch.")
                .buckets(prometheus::exponential_buckets(1.0, 4.0, 9).expect("valid buckets")),
        )
        .expect("valid metric");
        r.register(Box::new(batch_events.clone()))
            .expect("unique metric");

        let m = Metrics {
            events_consumed: counter_vec(
                &r,
                "shoplens_events_consumed_total",
                "Messages read from Kafka, by topic kind.",
                "topic",
            ),
            events_invalid: counter_vec(
                &r,
                "shoplens_events_invalid_total",
                "Messages sent to the dead-letter topic, by reason (late included).",
                "reason",
            ),
            events_duplicate: counter(
                &r,
                "shoplens_events_duplicate_total",
                "Duplicate event ids dropped inside the dedup horizon.",
            ),
            events_bot: counter(
                &r,
                "shoplens_events_bot_total",
                "Bot events, kept out of business metrics.",
            ),
            dedup_evicted_early: counter(
                &r,
                "shoplens_dedup_evicted_early_total",
                "Event ids forgotten before the dedup horizon because of the memory bound.",
            ),
            sessions: counter(&r, "shoplens_sessions_total", "Closed sessions."),
            sessions_by_channel: counter_vec(
                &r,
                "shoplens_channel_sessions_total",
                "Closed sessions by acquisition channel.",
                "channel",
            ),
            page_views: counter(
                &r,
                "shoplens_page_views_total",
                "Page views of closed sessions.",
            ),
            bounces: counter(
                &r,
                "shoplens_bounces_total",
                "Closed sessions that bounced.",
            ),
            sessions_open: gauge(&r, "shoplens_sessions_open", "Sessions open now."),
            buffered_events: gauge(
                &r,
                "shoplens_buffered_events",
                "Events buffered ahead of the watermark.",
            ),
            dedup_ids: gauge(
                &r,
                "shoplens_dedup_ids",
                "Event ids held for deduplication.",
            ),
            watermark,
            partitions_paused: gauge(
                &r,
                "shoplens_partitions_paused",
                "Partitions held back because they ran ahead of the watermark.",
            ),
            offsets_committed: counter_vec(
                &r,
                "shoplens_offset_commits_total",
                "Offset commits sent to Kafka, by topic kind.",
                "topic",
            ),
            insert_duration,
            insert_failures: counter_vec(
                &r,
                "shoplens_clickhouse_insert_failures_total",
                "Failed ClickHouse insert attempts, by table.",
                "table",
            ),
            rows_written: counter_vec(
                &r,
                "shoplens_clickhouse_rows_written_total",
                "Rows written to ClickHouse, by table.",
                "table",
            ),
            batch_events,
            registry: r,
        };
        for reason in contract::Reason::ALL {
            m.events_invalid.with_label_values(&[reason.as_str()]);
        }
        for stream in [contract::Stream::Clickstream, contract::Stream::Orders] {
            m.events_consumed.with_label_values(&[stream.as_str()]);
        }
        for channel in aggregator::Channel::ALL {
            m.sessions_by_channel.with_label_values(&[channel.as_str()]);
        }
        for table in ["sessions", "traffic_1m"] {
            m.insert_failures.with_label_values(&[table]);
            m.rows_written.with_label_values(&[table]);
        }
        m
    }

    /// Counts closed sessions from one batch of aggregator output.
    pub fn record_sessions(&self, sessions: &[aggregator::SessionRow]) {
        for s in sessions {
            self.sessions.inc();
            self.sessions_by_channel
                .with_label_values(&[s.channel.as_str()])
                .inc();
            self.page_views.inc_by(u64::from(s.page_views));
            if s.bounced {
                self.bounces.inc();
            }
        }
    }

    /// The text exposition of every series.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail on a Vec");
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_preregistered_series() {
        let m = Metrics::new();
        m.events_invalid.with_label_values(&["late"]).inc();
        let text = m.render();
        assert!(text.contains("shoplens_events_invalid_total{reason=\"late\"} 1"));
        assert!(text.contains("shoplens_events_invalid_total{reason=\"not_json\"} 0"));
        assert!(text.contains("shoplens_channel_sessions_total{channel=\"Organic Search\"} 0"));
    }
}
