//! Row encodings for ClickHouse (RowBinary): one struct per table.

use aggregator::attribution::AttributionDayRow;
use aggregator::stage_times::StageTimeRow;
use aggregator::{
    CartRow, CustomerDayRow, CustomerRow, FeedbackRow, OrderRow, OrderWindowRow, PageRow,
    ProductRow, SessionRow, SessionWindowRow, SpendRow,
};
use clickhouse::Row;
use serde::Serialize;

fn days(ms: i64) -> u16 {
    u16::try_from(ms.div_euclid(86_400_000)).unwrap_or(0)
}

fn secs(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(0)
}

/// A row of `sessions`.
#[derive(Debug, Row, Serialize)]
pub struct SessionRecord<'a> {
    session_id: &'a str,
    anonymous_id: &'a str,
    user_id: &'a str,
    start: u32,
    end: u32,
    duration_ms: u64,
    page_views: u32,
    events: u32,
    entry_path: &'a str,
    exit_path: &'a str,
    channel: &'a str,
    source: &'a str,
    medium: &'a str,
    campaign: &'a str,
    device: &'a str,
    experiment_id: &'a str,
    variant: &'a str,
    bounced: u8,
    converted: u8,
    partition: i32,
    version: u64,
    new_visitor: u8,
    stage_reached: u8,
    orders: u32,
    revenue_minor: i64,
    signups: u32,
    referral: u8,
}

impl<'a> From<&'a SessionRow> for SessionRecord<'a> {
    fn from(s: &'a SessionRow) -> Self {
        SessionRecord {
            session_id: &s.session_id,
            anonymous_id: &s.anonymous_id,
            user_id: &s.user_id,
            start: secs(s.start_ms),
            end: secs(s.end_ms),
            duration_ms: s.duration_ms().max(0) as u64,
            page_views: s.page_views,
            events: s.events,
            entry_path: &s.entry_path,
            exit_path: &s.exit_path,
            channel: s.channel.as_str(),
            source: &s.source,
            medium: &s.medium,
            campaign: &s.campaign,
            device: s.device.as_str(),
            experiment_id: &s.experiment_id,
            variant: &s.variant,
            bounced: u8::from(s.bounced),
            converted: u8::from(s.converted),
            partition: s.partition,
            version: u64::from(s.events),
            new_visitor: u8::from(s.new_visitor),
            stage_reached: s.stage_reached,
            orders: s.orders,
            revenue_minor: s.revenue_minor,
            signups: s.signups,
            referral: u8::from(s.referral),
        }
    }
}

/// A row of `session_windows_1m`.
#[derive(Debug, Row, Serialize)]
pub struct SessionWindowRecord<'a> {
    window_start: u32,
    channel: &'a str,
    experiment_id: &'a str,
    variant: &'a str,
    partition: i32,
    sessions: u64,
    visitors: u64,
    new_visitors: u64,
    page_views: u64,
    bounces: u64,
    conversions: u64,
    orders: u64,
    revenue_minor: i64,
    duration_ms: u64,
    signups: u64,
    referral_sessions: u64,
    stages: &'a [String],
    reached: &'a [u64],
    reached_any: &'a [u64],
    version: u64,
}

impl<'a> SessionWindowRecord<'a> {
    /// Encodes `w` with the funnel's stage names.
    pub fn new(w: &'a SessionWindowRow, stages: &'a [String]) -> Self {
        SessionWindowRecord {
            window_start: secs(w.window_start_ms),
            channel: w.channel.as_str(),
            experiment_id: &w.experiment_id,
            variant: &w.variant,
            partition: w.partition,
            sessions: w.sessions,
            visitors: w.visitors,
            new_visitors: w.new_visitors,
            page_views: w.page_views,
            bounces: w.bounces,
            conversions: w.conversions,
            orders: w.orders,
            revenue_minor: w.revenue_minor,
            duration_ms: w.duration_ms,
            signups: w.signups,
            referral_sessions: w.referral_sessions,
            stages,
            reached: &w.reached,
            reached_any: &w.reached_any,
            version: w.version,
        }
    }
}

/// A row of `pages_1m`.
#[derive(Debug, Row, Serialize)]
pub struct PageRecord<'a> {
    window_start: u32,
    path: &'a str,
    partition: i32,
    page_views: u64,
    entrances: u64,
    exits: u64,
    sessions: u64,
    version: u64,
}

impl<'a> From<&'a PageRow> for PageRecord<'a> {
    fn from(p: &'a PageRow) -> Self {
        PageRecord {
            window_start: secs(p.window_start_ms),
            path: &p.path,
            partition: p.partition,
            page_views: p.page_views,
            entrances: p.entrances,
            exits: p.exits,
            sessions: p.sessions,
            version: p.version,
        }
    }
}

/// A row of `products_1m`.
#[derive(Debug, Row, Serialize)]
pub struct ProductRecord<'a> {
    window_start: u32,
    product_id: &'a str,
    currency: &'a str,
    partition: i32,
    views: u64,
    cart_adds: u64,
    purchases: u64,
    revenue_minor: i64,
}

impl<'a> From<&'a ProductRow> for ProductRecord<'a> {
    fn from(p: &'a ProductRow) -> Self {
        ProductRecord {
            window_start: secs(p.window_start_ms),
            product_id: &p.product_id,
            currency: &p.currency,
            partition: p.partition,
            views: p.views,
            cart_adds: p.cart_adds,
            purchases: p.purchases,
            revenue_minor: p.revenue_minor,
        }
    }
}

/// A row of `orders_1m`.
#[derive(Debug, Row, Serialize)]
pub struct OrderRecord<'a> {
    window_start: u32,
    currency: &'a str,
    channel: &'a str,
    partition: i32,
    orders: u64,
    paid: u64,
    cancelled: u64,
    refunds: u64,
    gross_minor: i64,
    cancelled_minor: i64,
    refunded_minor: i64,
    referral_orders: u64,
    referral_minor: i64,
}

impl<'a> From<&'a OrderWindowRow> for OrderRecord<'a> {
    fn from(o: &'a OrderWindowRow) -> Self {
        OrderRecord {
            window_start: secs(o.window_start_ms),
            currency: &o.currency,
            channel: o.channel.as_str(),
            partition: o.partition,
            orders: o.orders,
            paid: o.paid,
            cancelled: o.cancelled,
            refunds: o.refunds,
            gross_minor: o.gross_minor,
            cancelled_minor: o.cancelled_minor,
            refunded_minor: o.refunded_minor,
            referral_orders: o.referral_orders,
            referral_minor: o.referral_minor,
        }
    }
}

/// A row of `feedback_1m`.
#[derive(Debug, Row, Serialize)]
pub struct FeedbackRecord {
    window_start: u32,
    partition: i32,
    nps_responses: u64,
    nps_promoters: u64,
    nps_passives: u64,
    nps_detractors: u64,
    csat_responses: u64,
    csat_satisfied: u64,
    csat_score_milli: u64,
    ces_responses: u64,
    ces_score_milli: u64,
}

impl From<&FeedbackRow> for FeedbackRecord {
    fn from(f: &FeedbackRow) -> Self {
        FeedbackRecord {
            window_start: secs(f.window_start_ms),
            partition: f.partition,
            nps_responses: f.nps_responses,
            nps_promoters: f.nps_promoters,
            nps_passives: f.nps_passives,
            nps_detractors: f.nps_detractors,
            csat_responses: f.csat_responses,
            csat_satisfied: f.csat_satisfied,
            csat_score_milli: f.csat_score_milli,
            ces_responses: f.ces_responses,
            ces_score_milli: f.ces_score_milli,
        }
    }
}

/// A row of `carts`.
#[derive(Debug, Row, Serialize)]
pub struct CartRecord<'a> {
    cart_id: &'a str,
    anonymous_id: &'a str,
    user_id: &'a str,
    status: &'a str,
    opened: u32,
    last_activity: u32,
    at: u32,
    value_minor: i64,
    currency: &'a str,
    items: u32,
    order_id: &'a str,
    partition: i32,
    version: u64,
}

impl<'a> From<&'a CartRow> for CartRecord<'a> {
    fn from(c: &'a CartRow) -> Self {
        CartRecord {
            cart_id: &c.cart_id,
            anonymous_id: &c.anonymous_id,
            user_id: &c.user_id,
            status: c.status.as_str(),
            opened: secs(c.opened_ms),
            last_activity: secs(c.last_activity_ms),
            at: secs(c.at_ms),
            value_minor: c.value_minor,
            currency: &c.currency,
            items: c.items.len() as u32,
            order_id: &c.order_id,
            partition: c.partition,
            version: c.version,
        }
    }
}

/// A row of `customers`.
#[derive(Debug, Row, Serialize)]
pub struct CustomerRecord<'a> {
    customer_id: &'a str,
    first_order: u32,
    last_order: u32,
    orders: u64,
    net_minor: i64,
    median_gap_days: f64,
    first_channel: &'a str,
    lapsed: u8,
    version: u64,
    currency: &'a str,
}

impl<'a> From<&'a CustomerRow> for CustomerRecord<'a> {
    fn from(c: &'a CustomerRow) -> Self {
        CustomerRecord {
            customer_id: &c.customer_id,
            first_order: secs(c.first_order_ms),
            last_order: secs(c.last_order_ms),
            orders: c.orders,
            net_minor: c.net_minor,
            median_gap_days: c.median_gap_ms as f64 / 86_400_000.0,
            first_channel: c.first_channel.as_str(),
            lapsed: u8::from(c.lapsed),
            version: c.version,
            currency: &c.currency,
        }
    }
}

/// A row of `orders` (one per order, replaced by version).
#[derive(Debug, Row, Serialize)]
pub struct OrderFactRecord<'a> {
    order_id: &'a str,
    customer_id: &'a str,
    anonymous_id: &'a str,
    session_id: &'a str,
    placed_at: u32,
    paid_at: Option<u32>,
    cancelled_at: Option<u32>,
    currency: &'a str,
    total_minor: i64,
    refunded_minor: i64,
    net_minor: i64,
    items: u64,
    customer_order_number: u64,
    days_since_previous: Option<u32>,
    channel: &'a str,
    first_touch_channel: &'a str,
    last_non_direct_channel: &'a str,
    first_session_at: Option<u32>,
    sessions_to_order: u32,
    experiment_id: &'a str,
    variant: &'a str,
    partition: i32,
    version: u64,
}

impl<'a> From<&'a OrderRow> for OrderFactRecord<'a> {
    fn from(o: &'a OrderRow) -> Self {
        OrderFactRecord {
            order_id: &o.order_id,
            customer_id: &o.customer_id,
            anonymous_id: &o.anonymous_id,
            session_id: &o.session_id,
            placed_at: secs(o.placed_ms),
            paid_at: o.paid_ms.map(secs),
            cancelled_at: o.cancelled_ms.map(secs),
            currency: &o.currency,
            total_minor: o.total_minor,
            refunded_minor: o.refunded_minor,
            net_minor: o.net_minor,
            items: o.items,
            customer_order_number: o.customer_order_number,
            days_since_previous: o.days_since_previous,
            channel: o.channel.as_str(),
            first_touch_channel: o.first_touch_channel.as_str(),
            last_non_direct_channel: o.last_non_direct_channel.as_str(),
            first_session_at: o.first_session_ms.map(secs),
            sessions_to_order: o.sessions_to_order,
            experiment_id: &o.experiment_id,
            variant: &o.variant,
            partition: o.partition,
            version: o.version,
        }
    }
}

/// A row of `stage_times_1m`.
#[derive(Debug, Row, Serialize)]
pub struct StageTimeRecord<'a> {
    window_start: u32,
    channel: &'a str,
    stage: &'a str,
    stage_index: u8,
    partition: i32,
    buckets: &'a [u64],
    version: u64,
}

impl<'a> From<&'a StageTimeRow> for StageTimeRecord<'a> {
    fn from(r: &'a StageTimeRow) -> Self {
        StageTimeRecord {
            window_start: secs(r.window_start_ms),
            channel: r.channel.as_str(),
            stage: &r.stage,
            stage_index: r.stage_index,
            partition: r.partition,
            buckets: &r.buckets,
            version: r.version,
        }
    }
}

/// A row of `attribution_daily`.
#[derive(Debug, Row, Serialize)]
pub struct AttributionDayRecord<'a> {
    day: u16,
    channel: &'a str,
    model: &'a str,
    currency: &'a str,
    partition: i32,
    conversion_units: i64,
    new_customer_units: i64,
    revenue_minor: i64,
    version: u64,
}

impl<'a> From<&'a AttributionDayRow> for AttributionDayRecord<'a> {
    fn from(a: &'a AttributionDayRow) -> Self {
        AttributionDayRecord {
            day: days(a.day_ms),
            channel: a.channel.as_str(),
            model: a.model.as_str(),
            currency: &a.currency,
            partition: a.partition,
            conversion_units: a.conversion_units,
            new_customer_units: a.new_customer_units,
            revenue_minor: a.revenue_minor,
            version: a.version,
        }
    }
}

/// A row of `customers_daily`.
#[derive(Debug, Row, Serialize)]
pub struct CustomerDayRecord<'a> {
    day: u16,
    channel: &'a str,
    partition: i32,
    new_customers: u64,
    repeat_orders: u64,
    orders: u64,
    version: u64,
    paying_customers: u64,
    repeat_customers: u64,
}

impl<'a> From<&'a CustomerDayRow> for CustomerDayRecord<'a> {
    fn from(d: &'a CustomerDayRow) -> Self {
        CustomerDayRecord {
            day: days(d.day_ms),
            channel: d.channel.as_str(),
            partition: d.partition,
            new_customers: d.new_customers,
            repeat_orders: d.repeat_orders,
            orders: d.orders,
            version: d.version,
            paying_customers: d.paying_customers,
            repeat_customers: d.repeat_customers,
        }
    }
}

/// A row of `ad_spend_daily`.
#[derive(Debug, Row, Serialize)]
pub struct SpendRecord<'a> {
    day: u16,
    channel: &'a str,
    campaign: &'a str,
    event_id: &'a str,
    amount_minor: i64,
    currency: &'a str,
}

impl<'a> From<&'a SpendRow> for SpendRecord<'a> {
    fn from(s: &'a SpendRow) -> Self {
        SpendRecord {
            day: days(s.day_ms),
            channel: &s.channel,
            campaign: &s.campaign,
            event_id: &s.event_id,
            amount_minor: s.amount_minor,
            currency: &s.currency,
        }
    }
}

/// A row type and the table it is written to.
pub trait TableRow: clickhouse::RowWrite {
    /// The table's name.
    const TABLE: &'static str;
}

/// Names the table of each record type, and lists them all.
macro_rules! tables {
    ($($record:ty => $table:literal),* $(,)?) => {
        $(impl TableRow for $record {
            const TABLE: &'static str = $table;
        })*

        /// Every table the pipeline writes rows to (checkpoints aside), for
        /// pre-registered series and sums over tables.
        pub const WRITTEN_TABLES: &[&str] = &[$($table),*];
    };
}

tables! {
    SessionRecord<'_> => "sessions",
    SessionWindowRecord<'_> => "session_windows_1m",
    PageRecord<'_> => "pages_1m",
    ProductRecord<'_> => "products_1m",
    OrderRecord<'_> => "orders_1m",
    FeedbackRecord => "feedback_1m",
    CartRecord<'_> => "carts",
    CustomerRecord<'_> => "customers",
    CustomerDayRecord<'_> => "customers_daily",
    OrderFactRecord<'_> => "orders",
    AttributionDayRecord<'_> => "attribution_daily",
    StageTimeRecord<'_> => "stage_times_1m",
    SpendRecord<'_> => "ad_spend_daily",
}
