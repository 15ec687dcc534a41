//! The Prometheus registry: pipeline health and business series.
//!
//! Names follow Prometheus conventions (`shoplens_` prefix, base units,
//! `_total` for counters). Labels are bounded sets: topic kinds, rejection
//! reasons, table names, channels. Counters are additive across instances.

use prometheus::{
    Encoder, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry, TextEncoder,
};

pub mod catalogue;
mod record;

use catalogue::Registrar;

/// Every series the pipeline exports.
pub struct Metrics {
    registry: Registry,
    /// Messages taken into the state, each offset once, by topic kind
    /// (clickstream, orders, spend): every one ends valid, dead-lettered,
    /// a duplicate or a bot event.
    pub events_consumed: IntCounterVec,
    /// Messages read again that the state already held (a seek back, a
    /// restore or a partition given back), by topic kind; not applied twice.
    pub events_reread: IntCounterVec,
    /// Messages dead-lettered, by reason (including `late`).
    pub events_invalid: IntCounterVec,
    /// Wall time of the ingest task, by what it was doing (see
    /// [`INGEST_PHASES`]): where a slow pipeline waits.
    pub ingest_seconds: prometheus::CounterVec,
    /// Duplicates dropped inside the dedup horizon.
    pub events_duplicate: IntCounter,
    /// Bot events counted apart from business metrics.
    pub events_bot: IntCounter,
    /// Events and facts of forgotten persons, dropped unread.
    pub events_forgotten: IntCounter,
    /// Erasure requests honoured.
    pub erasure_requests: IntGauge,
    /// Erasure requests applied by this instance.
    pub erasures_applied: IntCounter,
    /// Erasure requests whose deletion ClickHouse refused this user.
    pub erasures_failed: IntCounter,
    /// Rows of forgotten persons kept out of writes.
    pub erasure_rows_withheld: IntCounter,
    /// Dedup ids evicted early by the memory bound.
    pub dedup_evicted_early: IntCounter,
    /// State given up early by a memory bound, by kind.
    pub state_evictions: IntCounterVec,
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
    /// The wait before the next checkpoint, seconds: the configured interval,
    /// stretched for a large state.
    pub checkpoint_interval: prometheus::Gauge,
    /// Partitions held back because they ran ahead of the watermark.
    pub partitions_paused: IntGauge,
    /// Partitions of the consumed topics assigned to this instance.
    pub partitions_assigned: IntGauge,
    /// Messages behind the end of the log (librdkafka's last seen high
    /// watermark minus the position), summed over this instance's
    /// partitions, by topic kind.
    pub consumer_lag: prometheus::IntGaugeVec,
    /// Offsets committed, by topic kind.
    pub offsets_committed: IntCounterVec,
    /// Bytes of the last checkpoint written (every store of this instance).
    pub checkpoint_bytes: IntGauge,
    /// Messages that arrived past a gap no checkpoint covers.
    pub offset_gaps: IntCounter,
    /// Partitions sought back after their fetch stalled.
    pub fetch_stalls: IntCounter,
    /// Partitions sought back as they resumed (`shoplens_resume_seeks_total`).
    pub resume_seeks: IntCounter,
    /// Checkpoints written.
    pub checkpoints_written: IntCounter,
    /// Partition stores loaded, by outcome: `restored` from a checkpoint,
    /// `fresh` (none found), `refused` (unreadable or other settings).
    pub stores_loaded: IntCounterVec,
    /// Duration of successful ClickHouse inserts, by table.
    pub insert_duration: HistogramVec,
    /// Failed ClickHouse insert attempts, by table.
    pub insert_failures: IntCounterVec,
    /// Rows written to ClickHouse, by table.
    pub rows_written: IntCounterVec,
    /// Events per batch handed from ingest to the aggregator.
    pub batch_events: Histogram,
    /// Wall time from the watermark closing rows (in the aggregator) to
    /// those rows being durable in ClickHouse and counted here.
    pub result_delay: Histogram,
    /// Closed sessions that were a visitor's first.
    pub new_visitors: IntCounter,
    /// Closed sessions that placed an order.
    pub conversions: IntCounter,
    /// Closed sessions reaching each funnel stage in order.
    pub funnel_sessions: IntCounterVec,
    /// Orders placed, by currency.
    pub orders: IntCounterVec,
    /// Gross revenue of orders placed, in major currency units, by currency.
    pub revenue: prometheus::CounterVec,
    /// Refunded amounts, in major currency units, by currency.
    pub refunds: prometheus::CounterVec,
    /// Cart outcomes, by status.
    pub carts: IntCounterVec,
    /// Carts open now.
    pub carts_open: IntGauge,
    /// Triggers sent, by kind.
    pub triggers: IntCounterVec,
    /// Survey answers, by survey and class.
    pub survey_responses: IntCounterVec,
    /// Customers whose first order was seen.
    pub new_customers: IntCounter,
    /// Orders from customers with an earlier order.
    pub repeat_orders: IntCounter,
    /// Lapse events: customers who became lapsed (again only after a new order).
    pub customer_lapses: IntCounter,
    /// Customers lapsed now, of the histories this instance holds.
    pub lapsed_customers: IntGauge,
    /// Customers with more order gaps than kept for their median.
    pub customers_gaps_clipped: IntGauge,
    /// Customer facts in another currency than their customer's.
    pub customer_foreign_currency_facts: IntGauge,
    /// Orders the customer books remember for their rows.
    pub orders_remembered: IntGauge,
    /// Settlements of orders the customer books do not remember.
    pub order_settlements_unknown: IntGauge,
    /// Refunds in another currency than their order's.
    pub order_refunds_foreign_currency: IntGauge,
    /// Customer facts re-keyed through the internal topic.
    pub customer_facts: IntCounter,
    /// Closed sessions in an experiment, by experiment and variant.
    pub experiment_sessions: IntCounterVec,
    /// Of those, sessions that placed an order.
    pub experiment_conversions: IntCounterVec,
    /// Experiment/variant pairs with series of their own (bounded).
    experiment_labels: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

/// Most experiment/variant pairs with series of their own; later ones are
/// counted under `experiment="(other)"` so labels stay bounded.
pub const MAX_EXPERIMENT_SERIES: usize = 50;

/// The `state` label values of `shoplens_state_evictions_total`, in the
/// order of [`aggregator::Evictions`]' fields.
pub const EVICTED_STATES: [&str; 4] = [
    "open_sessions",
    "open_carts",
    "abandoned_carts",
    "touch_visitors",
];

/// The phases of `shoplens_ingest_seconds_total`: `fetch` (waiting for the
/// broker), `handle` (decode, validate, buffer), `advance` (the watermark's
/// work: closing sessions and windows), `checkpoint` (serializing state),
/// `dead_letters` (waiting for the dead-letter topic to confirm) and
/// `writer` (waiting for ClickHouse to take a batch: backpressure).
pub const INGEST_PHASES: [&str; 6] = [
    "fetch",
    "handle",
    "advance",
    "checkpoint",
    "dead_letters",
    "writer",
];

/// Buckets of `shoplens_clickhouse_insert_duration_seconds`.
const INSERT_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
/// Buckets of `shoplens_result_delay_seconds`.
const DELAY_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0];

/// Buckets of `shoplens_batch_events`: 1 to 65,536 messages, by fours.
fn batch_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(1.0, 4.0, 9).expect("valid buckets")
}

impl Metrics {
    /// A fresh registry with every series of [`catalogue::SERIES`]
    /// registered; labelled series for known label values start at zero so
    /// dashboards see them at once.
    pub fn new() -> Self {
        let r = Registry::new();
        let reg = Registrar(&r);
        let m = Metrics {
            events_consumed: reg.counters("shoplens_events_consumed_total", &["topic"]),
            events_reread: reg.counters("shoplens_events_reread_total", &["topic"]),
            events_invalid: reg.counters("shoplens_events_invalid_total", &["reason"]),
            ingest_seconds: reg.float_counters("shoplens_ingest_seconds_total", "phase"),
            events_duplicate: reg.counter("shoplens_events_duplicate_total"),
            events_bot: reg.counter("shoplens_events_bot_total"),
            events_forgotten: reg.counter("shoplens_events_forgotten_total"),
            erasure_requests: reg.gauge("shoplens_erasure_requests"),
            erasures_applied: reg.counter("shoplens_erasures_applied_total"),
            erasures_failed: reg.counter("shoplens_erasures_failed_total"),
            erasure_rows_withheld: reg.counter("shoplens_erasure_rows_withheld_total"),
            dedup_evicted_early: reg.counter("shoplens_dedup_evicted_early_total"),
            state_evictions: reg.counters("shoplens_state_evictions_total", &["state"]),
            sessions: reg.counter("shoplens_sessions_total"),
            sessions_by_channel: reg.counters("shoplens_channel_sessions_total", &["channel"]),
            page_views: reg.counter("shoplens_page_views_total"),
            bounces: reg.counter("shoplens_bounces_total"),
            sessions_open: reg.gauge("shoplens_sessions_open"),
            buffered_events: reg.gauge("shoplens_buffered_events"),
            dedup_ids: reg.gauge("shoplens_dedup_ids"),
            watermark: reg.float_gauge("shoplens_watermark_timestamp_seconds"),
            checkpoint_interval: reg.float_gauge("shoplens_checkpoint_interval_seconds"),
            partitions_paused: reg.gauge("shoplens_partitions_paused"),
            partitions_assigned: reg.gauge("shoplens_partitions_assigned"),
            consumer_lag: reg.gauges("shoplens_consumer_lag_messages", "topic"),
            offsets_committed: reg.counters("shoplens_offset_commits_total", &["topic"]),
            checkpoint_bytes: reg.gauge("shoplens_checkpoint_bytes"),
            offset_gaps: reg.counter("shoplens_offset_gaps_total"),
            fetch_stalls: reg.counter("shoplens_fetch_stalls_total"),
            resume_seeks: reg.counter("shoplens_resume_seeks_total"),
            checkpoints_written: reg.counter("shoplens_checkpoints_written_total"),
            stores_loaded: reg.counters("shoplens_stores_loaded_total", &["result"]),
            insert_duration: reg.histograms(
                "shoplens_clickhouse_insert_duration_seconds",
                INSERT_BUCKETS.to_vec(),
                "table",
            ),
            insert_failures: reg.counters("shoplens_clickhouse_insert_failures_total", &["table"]),
            rows_written: reg.counters("shoplens_clickhouse_rows_written_total", &["table"]),
            batch_events: reg.histogram("shoplens_batch_events", batch_buckets()),
            result_delay: reg.histogram("shoplens_result_delay_seconds", DELAY_BUCKETS.to_vec()),
            new_visitors: reg.counter("shoplens_new_visitors_total"),
            conversions: reg.counter("shoplens_conversions_total"),
            funnel_sessions: reg.counters("shoplens_funnel_sessions_total", &["stage"]),
            orders: reg.counters("shoplens_orders_total", &["currency"]),
            revenue: reg.float_counters("shoplens_revenue_total", "currency"),
            refunds: reg.float_counters("shoplens_refunds_total", "currency"),
            carts: reg.counters("shoplens_carts_total", &["status"]),
            carts_open: reg.gauge("shoplens_carts_open"),
            triggers: reg.counters("shoplens_triggers_total", &["kind"]),
            survey_responses: reg.counters("shoplens_survey_responses_total", &["survey", "class"]),
            new_customers: reg.counter("shoplens_new_customers_total"),
            repeat_orders: reg.counter("shoplens_repeat_orders_total"),
            customer_lapses: reg.counter("shoplens_customer_lapses_total"),
            lapsed_customers: reg.gauge("shoplens_lapsed_customers"),
            customers_gaps_clipped: reg.gauge("shoplens_customers_gaps_clipped"),
            customer_foreign_currency_facts: reg.gauge("shoplens_customer_foreign_currency_facts"),
            orders_remembered: reg.gauge("shoplens_orders_remembered"),
            order_settlements_unknown: reg.gauge("shoplens_order_settlements_unknown"),
            order_refunds_foreign_currency: reg.gauge("shoplens_order_refunds_foreign_currency"),
            customer_facts: reg.counter("shoplens_customer_facts_total"),
            experiment_sessions: reg.counters(
                "shoplens_experiment_sessions_total",
                &["experiment", "variant"],
            ),
            experiment_conversions: reg.counters(
                "shoplens_experiment_conversions_total",
                &["experiment", "variant"],
            ),
            experiment_labels: std::sync::Mutex::new(std::collections::HashSet::new()),
            registry: r,
        };
        m.preregister();
        m
    }

    /// Creates the series of every known label value, at zero.
    fn preregister(&self) {
        for reason in contract::Reason::ALL {
            self.events_invalid.with_label_values(&[reason.as_str()]);
        }
        for phase in INGEST_PHASES {
            self.ingest_seconds.with_label_values(&[phase]);
        }
        for stream in [contract::Stream::Clickstream, contract::Stream::Orders] {
            self.events_consumed.with_label_values(&[stream.as_str()]);
            self.events_reread.with_label_values(&[stream.as_str()]);
        }
        for channel in aggregator::Channel::ALL {
            self.sessions_by_channel
                .with_label_values(&[channel.as_str()]);
        }
        for status in ["abandoned", "converted", "recovered"] {
            self.carts.with_label_values(&[status]);
        }
        for kind in ["abandoned_cart", "overdue_order", "lapsed_customer"] {
            self.triggers.with_label_values(&[kind]);
        }
        for (survey, class) in [
            ("nps", "promoter"),
            ("nps", "passive"),
            ("nps", "detractor"),
            ("csat", "satisfied"),
            ("csat", "unsatisfied"),
            ("ces", "answered"),
        ] {
            self.survey_responses.with_label_values(&[survey, class]);
        }
        for state in EVICTED_STATES {
            self.state_evictions.with_label_values(&[state]);
        }
        for table in crate::clickhouse::WRITTEN_TABLES {
            self.insert_failures.with_label_values(&[table]);
            self.rows_written.with_label_values(&[table]);
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
