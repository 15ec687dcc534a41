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
pub const EVICTED_STATES: [&str; 3] = ["open_sessions", "open_carts", "abandoned_carts"];

/// Tables the pipeline writes, for pre-registered series.
pub const TABLES: [&str; 11] = [
    "sessions",
    "session_windows_1m",
    "pages_1m",
    "products_1m",
    "orders_1m",
    "feedback_1m",
    "carts",
    "triggers",
    "customers",
    "customers_daily",
    "ad_spend_daily",
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

fn float_counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> prometheus::CounterVec {
    let c = prometheus::CounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge_vec(r: &Registry, name: &str, help: &str, label: &str) -> prometheus::IntGaugeVec {
    let g = prometheus::IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
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
        let checkpoint_interval = prometheus::Gauge::new(
            "shoplens_checkpoint_interval_seconds",
            "The wait before the next checkpoint: the configured interval, stretched so that whole snapshots of a large state write a bounded number of bytes per second.",
        )
        .expect("valid metric");
        r.register(Box::new(checkpoint_interval.clone()))
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
            HistogramOpts::new(
                "shoplens_batch_events",
                "Messages consumed between two watermark advances.",
            )
            .buckets(prometheus::exponential_buckets(1.0, 4.0, 9).expect("valid buckets")),
        )
        .expect("valid metric");
        r.register(Box::new(batch_events.clone()))
            .expect("unique metric");
        let result_delay = Histogram::with_opts(
            HistogramOpts::new(
                "shoplens_result_delay_seconds",
                "Seconds from the watermark closing rows to their being durable in ClickHouse and counted.",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(result_delay.clone()))
            .expect("unique metric");

        let m = Metrics {
            events_consumed: counter_vec(
                &r,
                "shoplens_events_consumed_total",
                "Messages taken into the state, each offset once, by topic kind.",
                "topic",
            ),
            ingest_seconds: float_counter_vec(
                &r,
                "shoplens_ingest_seconds_total",
                "Wall time of the ingest task by phase: fetch (waiting for the broker), handle, advance, checkpoint, dead_letters, writer (backpressure).",
                "phase",
            ),
            events_reread: counter_vec(
                &r,
                "shoplens_events_reread_total",
                "Messages read again that the state already held (after a seek back, a restore or a rebalance), by topic kind; not applied twice.",
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
            state_evictions: counter_vec(
                &r,
                "shoplens_state_evictions_total",
                "State given up early to stay within a memory bound: open_sessions closed early (aggregator.max_open_sessions), open_carts abandoned early (max_open_carts), abandoned_carts forgotten before their recovery window (max_abandoned_carts).",
                "state",
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
            checkpoint_bytes: gauge(
                &r,
                "shoplens_checkpoint_bytes",
                "Size of the last checkpoint written, over every store of this instance.",
            ),
            offset_gaps: counter(
                &r,
                "shoplens_offset_gaps_total",
                "Messages that arrived past an offset gap no checkpoint covers (records before them were not read).",
            ),
            checkpoints_written: counter(
                &r,
                "shoplens_checkpoints_written_total",
                "Checkpoints written (one per store and partition).",
            ),
            stores_loaded: counter_vec(
                &r,
                "shoplens_stores_loaded_total",
                "Partition stores loaded: kept across a rebalance, restored from a checkpoint, fresh, or refused.",
                "result",
            ),
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
            checkpoint_interval,
            partitions_paused: gauge(
                &r,
                "shoplens_partitions_paused",
                "Partitions held back because they ran ahead of the watermark.",
            ),
            partitions_assigned: gauge(
                &r,
                "shoplens_partitions_assigned",
                "Partitions of the consumed topics (inputs and customer facts) assigned to this instance.",
            ),
            consumer_lag: gauge_vec(
                &r,
                "shoplens_consumer_lag_messages",
                "Messages behind the end of the log on this instance's partitions, by topic kind.",
                "topic",
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
            result_delay,
            new_visitors: counter(
                &r,
                "shoplens_new_visitors_total",
                "Closed sessions that were the visitor's first.",
            ),
            conversions: counter(
                &r,
                "shoplens_conversions_total",
                "Closed sessions that placed an order.",
            ),
            funnel_sessions: counter_vec(
                &r,
                "shoplens_funnel_sessions_total",
                "Closed sessions that reached each funnel stage in order.",
                "stage",
            ),
            orders: counter_vec(&r, "shoplens_orders_total", "Orders placed, by currency.", "currency"),
            revenue: float_counter_vec(
                &r,
                "shoplens_revenue_total",
                "Gross revenue of orders placed, in major units of the currency (exact sums are in ClickHouse).",
                "currency",
            ),
            refunds: float_counter_vec(
                &r,
                "shoplens_refunds_total",
                "Refunded amounts, in major units of the currency.",
                "currency",
            ),
            carts: counter_vec(&r, "shoplens_carts_total", "Cart outcomes, by status.", "status"),
            carts_open: gauge(&r, "shoplens_carts_open", "Carts open now."),
            triggers: counter_vec(
                &r,
                "shoplens_triggers_total",
                "Triggers sent to the triggers topic, by kind.",
                "kind",
            ),
            survey_responses: IntCounterVec::new(
                Opts::new("shoplens_survey_responses_total", "Survey answers, by survey and class."),
                &["survey", "class"],
            )
            .expect("valid metric"),
            new_customers: counter(
                &r,
                "shoplens_new_customers_total",
                "Customers whose first order was seen.",
            ),
            repeat_orders: counter(
                &r,
                "shoplens_repeat_orders_total",
                "Orders from customers with an earlier order.",
            ),
            customer_lapses: counter(
                &r,
                "shoplens_customer_lapses_total",
                "Lapse events: customers with at least 2 orders who became silent for at least 30 days and beyond twice their median gap (again only after a new order).",
            ),
            lapsed_customers: gauge(
                &r,
                "shoplens_lapsed_customers",
                "Customers lapsed now, of the customer histories this instance holds (sum over instances).",
            ),
            customer_foreign_currency_facts: gauge(
                &r,
                "shoplens_customer_foreign_currency_facts",
                "Orders, cancellations and refunds in another currency than their customer's (that of the first order), left out of customer net revenue; of the histories this instance holds.",
            ),
            customers_gaps_clipped: gauge(
                &r,
                "shoplens_customers_gaps_clipped",
                "Customers with more than 10,000 gaps between orders, whose median gap is over the latest 10,000 (sum over instances).",
            ),
            customer_facts: counter(
                &r,
                "shoplens_customer_facts_total",
                "Customer facts re-keyed by customer through the internal topic.",
            ),
            experiment_sessions: IntCounterVec::new(
                Opts::new(
                    "shoplens_experiment_sessions_total",
                    "Closed sessions in an experiment, by experiment and variant.",
                ),
                &["experiment", "variant"],
            )
            .expect("valid metric"),
            experiment_conversions: IntCounterVec::new(
                Opts::new(
                    "shoplens_experiment_conversions_total",
                    "Closed sessions in an experiment that placed an order.",
                ),
                &["experiment", "variant"],
            )
            .expect("valid metric"),
            experiment_labels: std::sync::Mutex::new(std::collections::HashSet::new()),
            registry: r,
        };
        m.registry
            .register(Box::new(m.experiment_sessions.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.experiment_conversions.clone()))
            .expect("unique metric");
        m.registry
            .register(Box::new(m.survey_responses.clone()))
            .expect("unique metric");
        for reason in contract::Reason::ALL {
            m.events_invalid.with_label_values(&[reason.as_str()]);
        }
        for phase in INGEST_PHASES {
            m.ingest_seconds.with_label_values(&[phase]);
        }
        for stream in [contract::Stream::Clickstream, contract::Stream::Orders] {
            m.events_consumed.with_label_values(&[stream.as_str()]);
            m.events_reread.with_label_values(&[stream.as_str()]);
        }
        for channel in aggregator::Channel::ALL {
            m.sessions_by_channel.with_label_values(&[channel.as_str()]);
        }
        for status in ["abandoned", "converted", "recovered"] {
            m.carts.with_label_values(&[status]);
        }
        for kind in ["abandoned_cart", "overdue_order", "lapsed_customer"] {
            m.triggers.with_label_values(&[kind]);
        }
        for (survey, class) in [
            ("nps", "promoter"),
            ("nps", "passive"),
            ("nps", "detractor"),
            ("csat", "satisfied"),
            ("csat", "unsatisfied"),
            ("ces", "answered"),
        ] {
            m.survey_responses.with_label_values(&[survey, class]);
        }
        for state in EVICTED_STATES {
            m.state_evictions.with_label_values(&[state]);
        }
        for table in TABLES {
            m.insert_failures.with_label_values(&[table]);
            m.rows_written.with_label_values(&[table]);
        }
        m
    }

    /// Counts the business figures of one durable batch of aggregator output.
    pub fn record(&self, out: &aggregator::Output, stages: &[String]) {
        let e = out.evictions;
        for (state, n) in EVICTED_STATES
            .into_iter()
            .zip([e.sessions, e.carts, e.abandoned_carts])
        {
            self.state_evictions.with_label_values(&[state]).inc_by(n);
        }
        for s in &out.sessions {
            self.sessions.inc();
            self.sessions_by_channel
                .with_label_values(&[s.channel.as_str()])
                .inc();
            self.page_views.inc_by(u64::from(s.page_views));
            if s.bounced {
                self.bounces.inc();
            }
            if s.new_visitor {
                self.new_visitors.inc();
            }
            if s.converted {
                self.conversions.inc();
            }
            if !s.experiment_id.is_empty() {
                let (e, v) = self.experiment_label(&s.experiment_id, &s.variant);
                self.experiment_sessions.with_label_values(&[&e, &v]).inc();
                if s.converted {
                    self.experiment_conversions
                        .with_label_values(&[&e, &v])
                        .inc();
                }
            }
            for stage in stages.iter().skip(1).take(usize::from(s.stage_reached)) {
                self.funnel_sessions.with_label_values(&[stage]).inc();
            }
        }
        let major = |minor: i64, currency: &str| {
            let exp = contract::Currency::parse(currency).map_or(2, |c| c.exponent());
            minor as f64 / 10f64.powi(exp as i32)
        };
        for o in &out.orders {
            self.orders
                .with_label_values(&[&o.currency])
                .inc_by(o.orders);
            self.revenue
                .with_label_values(&[&o.currency])
                .inc_by(major(o.gross_minor, &o.currency));
            self.refunds
                .with_label_values(&[&o.currency])
                .inc_by(major(o.refunded_minor, &o.currency));
        }
        for c in &out.carts {
            self.carts.with_label_values(&[c.status.as_str()]).inc();
        }
        for f in &out.feedback {
            let s = &self.survey_responses;
            s.with_label_values(&["nps", "promoter"])
                .inc_by(f.nps_promoters);
            s.with_label_values(&["nps", "passive"])
                .inc_by(f.nps_passives);
            s.with_label_values(&["nps", "detractor"])
                .inc_by(f.nps_detractors);
            s.with_label_values(&["csat", "satisfied"])
                .inc_by(f.csat_satisfied);
            s.with_label_values(&["csat", "unsatisfied"])
                .inc_by(f.csat_responses - f.csat_satisfied);
            s.with_label_values(&["ces", "answered"])
                .inc_by(f.ces_responses);
        }
    }

    /// The labels for an experiment variant: its own while fewer than
    /// [`MAX_EXPERIMENT_SERIES`] pairs exist, else `(other)`.
    fn experiment_label(&self, experiment: &str, variant: &str) -> (String, String) {
        let key = (experiment.to_string(), variant.to_string());
        let mut known = self
            .experiment_labels
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if known.contains(&key) || known.len() < MAX_EXPERIMENT_SERIES {
            known.insert(key.clone());
            key
        } else {
            ("(other)".to_string(), "(other)".to_string())
        }
    }

    /// Counts the customer side's figures of one durable batch.
    pub fn record_customers(&self, out: &aggregator::CustomerOutput) {
        self.new_customers.inc_by(out.new_customers);
        self.repeat_orders.inc_by(out.repeat_orders);
        self.customer_lapses.inc_by(out.lapsed.len() as u64);
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
