//! Every series the pipeline exports, with its help text: one table, so
//! that names and help are read in one place and each is registered once.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// The name and help text of every series.
pub const SERIES: [(&str, &str); 59] = [
    (
        "shoplens_events_consumed_total",
        "Messages taken into the state, each offset once, by topic kind.",
    ),
    (
        "shoplens_events_reread_total",
        "Messages read again that the state already held (after a seek back, a restore or a rebalance), by topic kind; not applied twice.",
    ),
    (
        "shoplens_events_invalid_total",
        "Messages sent to the dead-letter topic, by reason (late included).",
    ),
    (
        "shoplens_ingest_seconds_total",
        "Wall time of the ingest task by phase: fetch (waiting for the broker), handle, advance, checkpoint, dead_letters, writer (backpressure).",
    ),
    (
        "shoplens_events_duplicate_total",
        "Duplicate event ids dropped inside the dedup horizon.",
    ),
    (
        "shoplens_events_bot_total",
        "Bot events, kept out of business metrics.",
    ),
    (
        "shoplens_events_forgotten_total",
        "Events and customer facts of persons an erasure request names, dropped unread.",
    ),
    (
        "shoplens_erasure_requests",
        "Erasure requests this instance honours.",
    ),
    (
        "shoplens_erasures_applied_total",
        "Erasure requests this instance applied: open state dropped, rows deleted, audit written.",
    ),
    (
        "shoplens_erasures_failed_total",
        "Erasure requests whose deletion ClickHouse refused this instance's user (see the log).",
    ),
    (
        "shoplens_erasure_rows_withheld_total",
        "Rows of forgotten persons kept out of a write (built before their state was dropped).",
    ),
    (
        "shoplens_dedup_evicted_early_total",
        "Event ids forgotten before the dedup horizon because of the memory bound.",
    ),
    (
        "shoplens_state_evictions_total",
        "State given up early to stay within a memory bound: open_sessions closed early (aggregator.max_open_sessions), open_carts abandoned early (max_open_carts), abandoned_carts forgotten before their recovery window (max_abandoned_carts), touch_visitors whose touches were forgotten before their attribution window (max_touch_visitors).",
    ),
    (
        "shoplens_sessions_total",
        "Closed sessions.",
    ),
    (
        "shoplens_channel_sessions_total",
        "Closed sessions by acquisition channel.",
    ),
    (
        "shoplens_page_views_total",
        "Page views of closed sessions.",
    ),
    (
        "shoplens_bounces_total",
        "Closed sessions that bounced.",
    ),
    (
        "shoplens_sessions_open",
        "Sessions open now.",
    ),
    (
        "shoplens_buffered_events",
        "Events buffered ahead of the watermark.",
    ),
    (
        "shoplens_dedup_ids",
        "Event ids held for deduplication.",
    ),
    (
        "shoplens_watermark_timestamp_seconds",
        "The pipeline's event-time watermark as Unix seconds.",
    ),
    (
        "shoplens_checkpoint_interval_seconds",
        "The wait before the next checkpoint: the configured interval, stretched so that whole snapshots of a large state write a bounded number of bytes per second.",
    ),
    (
        "shoplens_partitions_paused",
        "Partitions held back because they ran ahead of the watermark.",
    ),
    (
        "shoplens_partitions_assigned",
        "Partitions of the consumed topics (inputs and customer facts) assigned to this instance.",
    ),
    (
        "shoplens_consumer_lag_messages",
        "Messages behind the end of the log on this instance's partitions, by topic kind.",
    ),
    (
        "shoplens_offset_commits_total",
        "Offset commits sent to Kafka, by topic kind.",
    ),
    (
        "shoplens_checkpoint_bytes",
        "Size of the last checkpoint written, over every store of this instance.",
    ),
    (
        "shoplens_offset_gaps_total",
        "Messages that arrived past an offset gap no checkpoint covers (records before them were not read).",
    ),
    (
        "shoplens_fetch_stalls_total",
        "Partitions sought back because nothing arrived for a while with messages waiting past the position (a broker that skipped a batch's tail).",
    ),
    (
        "shoplens_resume_seeks_total",
        "Partitions sought back as they resumed, as far as the furthest seek that worked went (a broker that answers a fetch from inside a batch past it).",
    ),
    (
        "shoplens_checkpoints_written_total",
        "Checkpoints written (one per store and partition).",
    ),
    (
        "shoplens_stores_loaded_total",
        "Partition stores loaded: kept across a rebalance, restored from a checkpoint, fresh, or refused.",
    ),
    (
        "shoplens_clickhouse_insert_duration_seconds",
        "Duration of successful ClickHouse inserts.",
    ),
    (
        "shoplens_clickhouse_insert_failures_total",
        "Failed ClickHouse insert attempts, by table.",
    ),
    (
        "shoplens_clickhouse_rows_written_total",
        "Rows written to ClickHouse, by table.",
    ),
    (
        "shoplens_batch_events",
        "Messages consumed between two watermark advances.",
    ),
    (
        "shoplens_result_delay_seconds",
        "Seconds from the watermark closing rows to their being durable in ClickHouse and counted.",
    ),
    (
        "shoplens_new_visitors_total",
        "Closed sessions that were the visitor's first.",
    ),
    (
        "shoplens_conversions_total",
        "Closed sessions that placed an order.",
    ),
    (
        "shoplens_funnel_sessions_total",
        "Closed sessions that reached each funnel stage in order.",
    ),
    (
        "shoplens_orders_total",
        "Orders placed, by currency.",
    ),
    (
        "shoplens_revenue_total",
        "Gross revenue of orders placed, in major units of the currency (exact sums are in ClickHouse).",
    ),
    (
        "shoplens_refunds_total",
        "Refunded amounts, in major units of the currency.",
    ),
    (
        "shoplens_carts_total",
        "Cart outcomes, by status.",
    ),
    (
        "shoplens_carts_open",
        "Carts open now.",
    ),
    (
        "shoplens_triggers_total",
        "Triggers sent to the triggers topic, by kind.",
    ),
    (
        "shoplens_survey_responses_total",
        "Survey answers, by survey and class.",
    ),
    (
        "shoplens_new_customers_total",
        "Customers whose first order was seen.",
    ),
    (
        "shoplens_repeat_orders_total",
        "Orders from customers with an earlier order.",
    ),
    (
        "shoplens_customer_lapses_total",
        "Lapse events: customers with at least 2 orders who became silent for at least 30 days and beyond twice their median gap (again only after a new order).",
    ),
    (
        "shoplens_lapsed_customers",
        "Customers lapsed now, of the customer histories this instance holds (sum over instances).",
    ),
    (
        "shoplens_customers_gaps_clipped",
        "Customers with more than 10,000 gaps between orders, whose median gap is over the latest 10,000 (sum over instances).",
    ),
    (
        "shoplens_customer_foreign_currency_facts",
        "Orders, cancellations and refunds in another currency than their customer's (that of the first order), left out of customer net revenue; of the histories this instance holds.",
    ),
    (
        "shoplens_orders_remembered",
        "Orders the customer books this instance holds remember, to update their rows of `orders` (aggregator.order_retention_ms, aggregator.max_orders).",
    ),
    (
        "shoplens_order_settlements_unknown",
        "Payments, cancellations and refunds of orders the customer books do not remember (placed before the retention or never seen): no row of `orders` changed; of the books this instance holds.",
    ),
    (
        "shoplens_order_refunds_foreign_currency",
        "Refunds in another currency than their order's, not subtracted in `orders`; of the books this instance holds.",
    ),
    (
        "shoplens_customer_facts_total",
        "Customer facts re-keyed by customer through the internal topic.",
    ),
    (
        "shoplens_experiment_sessions_total",
        "Closed sessions in an experiment, by experiment and variant.",
    ),
    (
        "shoplens_experiment_conversions_total",
        "Closed sessions in an experiment that placed an order.",
    ),
];

/// The help text of series `name`.
///
/// # Panics
/// When `name` is not in [`SERIES`]: a series added without its help text
/// is a programming error the unit tests catch.
pub fn help(name: &str) -> &'static str {
    SERIES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, h)| *h)
        .unwrap_or_else(|| panic!("series {name} is not in metrics::catalogue::SERIES"))
}

/// Registers series in one registry, each with its help from [`SERIES`].
pub(crate) struct Registrar<'a>(pub(crate) &'a Registry);

impl Registrar<'_> {
    fn register<M: prometheus::core::Collector + Clone + 'static>(&self, metric: M) -> M {
        self.0
            .register(Box::new(metric.clone()))
            .expect("each series is registered once");
        metric
    }

    fn opts(name: &str) -> Opts {
        Opts::new(name, help(name))
    }

    /// An integer counter.
    pub(crate) fn counter(&self, name: &str) -> IntCounter {
        self.register(IntCounter::with_opts(Self::opts(name)).expect("valid metric"))
    }

    /// Integer counters by `labels`.
    pub(crate) fn counters(&self, name: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Self::opts(name), labels).expect("valid metric"))
    }

    /// Float counters by `label` (seconds, major currency units).
    pub(crate) fn float_counters(&self, name: &str, label: &str) -> prometheus::CounterVec {
        let vec = prometheus::CounterVec::new(Self::opts(name), &[label]);
        self.register(vec.expect("valid metric"))
    }

    /// An integer gauge.
    pub(crate) fn gauge(&self, name: &str) -> IntGauge {
        self.register(IntGauge::with_opts(Self::opts(name)).expect("valid metric"))
    }

    /// Integer gauges by `label`.
    pub(crate) fn gauges(&self, name: &str, label: &str) -> IntGaugeVec {
        self.register(IntGaugeVec::new(Self::opts(name), &[label]).expect("valid metric"))
    }

    /// A float gauge.
    pub(crate) fn float_gauge(&self, name: &str) -> prometheus::Gauge {
        self.register(prometheus::Gauge::with_opts(Self::opts(name)).expect("valid metric"))
    }

    /// A histogram with `buckets`.
    pub(crate) fn histogram(&self, name: &str, buckets: Vec<f64>) -> Histogram {
        let opts = HistogramOpts::new(name, help(name)).buckets(buckets);
        self.register(Histogram::with_opts(opts).expect("valid metric"))
    }

    /// Histograms with `buckets`, by `label`.
    pub(crate) fn histograms(&self, name: &str, buckets: Vec<f64>, label: &str) -> HistogramVec {
        let opts = HistogramOpts::new(name, help(name)).buckets(buckets);
        self.register(HistogramVec::new(opts, &[label]).expect("valid metric"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_named_once_with_help() {
        let mut names: Vec<&str> = SERIES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SERIES.len(), "a name twice");
        for (name, help) in SERIES {
            assert!(name.starts_with("shoplens_"), "{name}");
            assert!(!help.is_empty(), "{name}");
        }
    }
}
