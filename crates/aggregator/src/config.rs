use serde::Deserialize;

use crate::channel::ChannelRules;

/// Every threshold of the metric definitions, with the spec's defaults.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
#[serde(default)]
pub struct AggregatorConfig {
    /// Tumbling window width (1 minute).
    pub window_ms: i64,
    /// Inactivity that ends a session (30 minutes).
    pub session_gap_ms: i64,
    /// Longest session (24 hours; at most 49 days, longer is taken as 49 days).
    pub session_max_ms: i64,
    /// A session shorter than this, with under 2 page views and no engagement, is a bounce (10 s).
    pub bounce_max_duration_ms: i64,
    /// How long an `event_id` is remembered for deduplication (1 hour).
    pub dedup_horizon_ms: i64,
    /// Memory bound of the dedup set, in ids (about 40 bytes each).
    pub dedup_max_ids: usize,
    /// Funnel stages after `session`, as event types, in order.
    pub funnel_stages: Vec<String>,
    /// Distinct paths kept per window; the rest count as `(other)`.
    pub max_paths_per_window: usize,
    /// Distinct products kept per window; the rest count as `(other)`.
    pub max_products_per_window: usize,
    /// A cart with no activity and no order for this long is abandoned (60 minutes).
    pub cart_timeout_ms: i64,
    /// An abandoned cart is recovered by an order within this time (7 days).
    pub recovery_window_ms: i64,
    /// An order not paid within this time is overdue (60 minutes).
    pub payment_timeout_ms: i64,
    /// How long order ids are remembered for payments, cancellations and refunds (30 days).
    pub order_retention_ms: i64,
    /// Memory bound of remembered orders.
    pub max_orders: usize,
    /// Memory bound of the set of visitors seen (new vs returning), in visitors.
    pub max_visitors: usize,
    /// Memory bound of customer histories; the least recently ordering go first.
    pub max_customers: usize,
    /// Currency whose order totals are summed per session (experiments, AOV per variant).
    pub reporting_currency: String,
    /// Channel grouping rules.
    pub channels: ChannelRules,
    /// Memory bound of the open sessions (about 1 KiB each). A new session
    /// beyond it first closes the one due to close soonest, and counts it.
    /// A bound, not a definition: it is not part of checkpoints, and a
    /// checkpoint restores under any value. Read from the settings'
    /// `[aggregator]` section by the application.
    #[serde(skip)]
    pub max_open_sessions: usize,
    /// Memory bound of the open carts. A new cart beyond it first abandons
    /// the one due soonest (its row and trigger come out then), and counts
    /// it. Not part of checkpoints, as `max_open_sessions`.
    #[serde(skip)]
    pub max_open_carts: usize,
    /// Memory bound of the abandoned carts remembered for recovery. Beyond
    /// it the oldest is forgotten (an order can no longer recover it), and
    /// counted. Not part of checkpoints, as `max_open_sessions`.
    #[serde(skip)]
    pub max_abandoned_carts: usize,
    /// How long a payment or cancellation whose order is not known yet
    /// waits for it (the application sets the allowed lateness): event
    /// times of payment systems and storefronts differ by that much. Not
    /// part of checkpoints, as `max_open_sessions`.
    #[serde(skip)]
    pub settle_grace_ms: i64,
    /// How long the customer books remember an order after it was placed,
    /// to update its row of `orders` as it is paid, cancelled or refunded
    /// (120 days: return windows and card chargebacks). A settlement after
    /// it changes no row and is counted. Not part of checkpoints.
    #[serde(skip)]
    pub order_rows_retention_ms: i64,
    /// Memory bound of the orders each customer book remembers (the oldest
    /// is forgotten first). Not part of checkpoints.
    #[serde(skip)]
    pub max_order_rows: usize,
    /// An order's touches are the sessions its visitor started within this
    /// time before it (30 days). Not part of checkpoints: a new value
    /// applies to the orders from then on.
    #[serde(skip)]
    pub attribution_window_ms: i64,
    /// At most this many touches, the latest, are kept per visitor (32).
    /// Not part of checkpoints.
    #[serde(skip)]
    pub attribution_max_touches: usize,
    /// Memory bound of the visitors whose touches are kept (the least
    /// recently touched is forgotten first, and counted). Not part of
    /// checkpoints.
    #[serde(skip)]
    pub max_touch_visitors: usize,
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
            funnel_stages: [
                "product_view",
                "add_to_cart",
                "checkout_started",
                "order_placed",
            ]
            .map(String::from)
            .to_vec(),
            max_paths_per_window: 1000,
            max_products_per_window: 10_000,
            cart_timeout_ms: 60 * 60_000,
            recovery_window_ms: 7 * 24 * 3_600_000,
            payment_timeout_ms: 60 * 60_000,
            order_retention_ms: 30 * 24 * 3_600_000,
            max_orders: 1_000_000,
            max_visitors: 5_000_000,
            max_customers: 2_000_000,
            reporting_currency: "USD".into(),
            channels: ChannelRules::default(),
            max_open_sessions: 1_000_000,
            max_open_carts: 1_000_000,
            max_abandoned_carts: 1_000_000,
            settle_grace_ms: 60_000,
            order_rows_retention_ms: 120 * 24 * 3_600_000,
            max_order_rows: 1_000_000,
            attribution_window_ms: 30 * 24 * 3_600_000,
            attribution_max_touches: 32,
            max_touch_visitors: 2_000_000,
        }
    }
}
