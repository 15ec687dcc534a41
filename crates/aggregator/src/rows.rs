//! Rows the aggregator emits: plain data, ready for any sink.

use std::sync::Arc;

use crate::channel::Channel;

/// Appends `more` to `rows`. When `rows` is empty it takes `more`'s
/// allocation instead of copying into its own: most outputs are merged
/// into an empty one (one store of several has rows), and a copy would
/// touch as much fresh memory again.
pub(crate) fn append<T>(rows: &mut Vec<T>, more: Vec<T>) {
    if rows.is_empty() {
        *rows = more;
    } else {
        rows.extend(more);
    }
}

/// One closed session. Its strings shared with other sessions (paths,
/// campaign fields, experiments) are shared copies, not owned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRow {
    /// The storefront's session id, else `<anonymous_id>:<start_ms>`.
    pub session_id: String,
    /// Visitor (shared with the aggregator's maps while the session is open).
    pub anonymous_id: Arc<str>,
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
    pub entry_path: Arc<str>,
    /// Path of the last page view, empty when none.
    pub exit_path: Arc<str>,
    /// Channel of the first event.
    pub channel: Channel,
    /// `utm_source` (or referrer host) of the first event.
    pub source: Arc<str>,
    /// `utm_medium` of the first event.
    pub medium: Arc<str>,
    /// `utm_campaign` of the first event.
    pub campaign: Arc<str>,
    /// Device of the first event.
    pub device: contract::Device,
    /// Experiment id of the first event that had one.
    pub experiment_id: Arc<str>,
    /// Its variant.
    pub variant: Arc<str>,
    /// Under 2 page views, no engagement event and shorter than the bounce threshold.
    pub bounced: bool,
    /// Placed an order.
    pub converted: bool,
    /// The visitor's first session since the pipeline has known them.
    pub new_visitor: bool,
    /// Funnel stages reached in order (0 = only the session itself).
    pub stage_reached: u8,
    /// Funnel stages seen in any order, bit `i` for stage `i + 1`.
    pub stages_any: u32,
    /// Orders placed in the session.
    pub orders: u32,
    /// Their totals in the reporting currency, minor units.
    pub revenue_minor: i64,
    /// Signups in the session.
    pub signups: u32,
    /// Sent a referral or ordered with a referral code.
    pub referral: bool,
    /// Kafka partition of the visitor.
    pub partition: i32,
}

impl SessionRow {
    /// Last event - first event.
    pub fn duration_ms(&self) -> i64 {
        self.end_ms - self.start_ms
    }
}

/// Closed sessions of one window of session start, channel, experiment
/// variant and partition: traffic, funnel and experiment figures in one row.
///
/// Sessions are counted when they close, so a row is re-emitted with a higher
/// `version` (its session count) each time another session that started in
/// its window closes; the last version is the final value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionWindowRow {
    /// Window start (epoch ms, UTC aligned).
    pub window_start_ms: i64,
    /// Channel.
    pub channel: Channel,
    /// Experiment id, empty when none.
    pub experiment_id: String,
    /// Variant, empty when none.
    pub variant: String,
    /// Kafka partition the sessions came from.
    pub partition: i32,
    /// Closed sessions that started in the window.
    pub sessions: u64,
    /// Distinct visitors among them.
    pub visitors: u64,
    /// Sessions that were a visitor's first.
    pub new_visitors: u64,
    /// Their page views.
    pub page_views: u64,
    /// Their bounces.
    pub bounces: u64,
    /// Sessions that placed an order.
    pub conversions: u64,
    /// Orders placed in them.
    pub orders: u64,
    /// Order totals in the reporting currency, minor units.
    pub revenue_minor: i64,
    /// Sum of session durations.
    pub duration_ms: u64,
    /// Signups.
    pub signups: u64,
    /// Sessions with a referral sent or a referral order.
    pub referral_sessions: u64,
    /// Sessions reaching each funnel stage in order; index 0 is `session`.
    pub reached: Vec<u64>,
    /// Sessions with each stage's event in any order; index 0 is `session`.
    pub reached_any: Vec<u64>,
    /// Grows with each re-emission: the number of sessions counted.
    pub version: u64,
}

/// Page figures of one event-time window, path and partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageRow {
    /// Window start (epoch ms).
    pub window_start_ms: i64,
    /// Path, or `(other)` past the per-window cap.
    pub path: String,
    /// Partition.
    pub partition: i32,
    /// Page views in the window.
    pub page_views: u64,
    /// Sessions whose first page view this was.
    pub entrances: u64,
    /// Closed sessions whose last page view this was.
    pub exits: u64,
    /// Distinct sessions that viewed the page in the window.
    pub sessions: u64,
    /// Grows with each re-emission (sum of the counts).
    pub version: u64,
}

/// Product figures of one event-time window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProductRow {
    /// Window start (epoch ms).
    pub window_start_ms: i64,
    /// Product id, or `(other)` past the per-window cap.
    pub product_id: Arc<str>,
    /// Currency of `revenue_minor`.
    pub currency: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Product views.
    pub views: u64,
    /// Units added to carts.
    pub cart_adds: u64,
    /// Units in placed orders.
    pub purchases: u64,
    /// Price x quantity of those units, minor units.
    pub revenue_minor: i64,
}

/// Order and revenue figures of one event-time window.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderWindowRow {
    /// Window start (epoch ms).
    pub window_start_ms: i64,
    /// Currency of the amounts.
    pub currency: String,
    /// Channel of the session the order was placed in (`Direct` without one).
    pub channel: Channel,
    /// Partition.
    pub partition: i32,
    /// Orders placed.
    pub orders: u64,
    /// Orders paid.
    pub paid: u64,
    /// Orders cancelled.
    pub cancelled: u64,
    /// Refund events.
    pub refunds: u64,
    /// Totals of orders placed (gross revenue), minor units.
    pub gross_minor: i64,
    /// Totals of orders cancelled in the window, minor units.
    pub cancelled_minor: i64,
    /// Amounts refunded in the window, minor units.
    pub refunded_minor: i64,
    /// Orders placed with a referral code.
    pub referral_orders: u64,
    /// Their totals, minor units.
    pub referral_minor: i64,
}

/// Survey figures of one event-time window.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedbackRow {
    /// Window start (epoch ms).
    pub window_start_ms: i64,
    /// Partition.
    pub partition: i32,
    /// NPS answers.
    pub nps_responses: u64,
    /// Scores 9-10.
    pub nps_promoters: u64,
    /// Scores 7-8.
    pub nps_passives: u64,
    /// Scores 0-6.
    pub nps_detractors: u64,
    /// CSAT answers.
    pub csat_responses: u64,
    /// Satisfied answers (4-5 of 5; the top 40% of another scale).
    pub csat_satisfied: u64,
    /// Sum of CSAT scores normalised to a 5-point scale, in thousandths.
    pub csat_score_milli: u64,
    /// CES answers.
    pub ces_responses: u64,
    /// Sum of CES scores, in thousandths.
    pub ces_score_milli: u64,
}

/// How a cart ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CartStatus {
    /// An order for it arrived in time.
    Converted,
    /// No order within the cart timeout, value above zero.
    Abandoned,
    /// Abandoned, then the visitor or customer ordered within the recovery window.
    Recovered,
}

impl CartStatus {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            CartStatus::Converted => "converted",
            CartStatus::Abandoned => "abandoned",
            CartStatus::Recovered => "recovered",
        }
    }
}

/// One line of a cart or order, for triggers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    /// Product id.
    pub product_id: String,
    /// Quantity.
    pub quantity: i64,
    /// Unit price, minor units.
    pub price_minor: i64,
}

/// The outcome of one cart (re-emitted with version 2 when recovered).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CartRow {
    /// Cart id.
    pub cart_id: String,
    /// Visitor.
    pub anonymous_id: String,
    /// Customer, when known.
    pub user_id: String,
    /// Outcome.
    pub status: CartStatus,
    /// First add to cart.
    pub opened_ms: i64,
    /// Last cart activity.
    pub last_activity_ms: i64,
    /// Value of the lines still in it, minor units.
    pub value_minor: i64,
    /// Currency of the value.
    pub currency: String,
    /// Lines still in it.
    pub items: Vec<Item>,
    /// The order that converted or recovered it.
    pub order_id: String,
    /// When it was abandoned or recovered or converted (event time).
    pub at_ms: i64,
    /// Partition.
    pub partition: i32,
    /// 1 for the first outcome, 2 for a recovery.
    pub version: u64,
}

/// What an e-mail or SMS system is told to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A cart was abandoned.
    AbandonedCart(CartRow),
    /// An order was not paid in time.
    OverdueOrder {
        /// Order id.
        order_id: String,
        /// Visitor.
        anonymous_id: String,
        /// Customer, when known.
        user_id: String,
        /// Order total, minor units.
        total_minor: i64,
        /// Currency.
        currency: String,
        /// Lines.
        items: Vec<Item>,
        /// When it was placed.
        placed_ms: i64,
        /// When it became overdue.
        at_ms: i64,
        /// Partition.
        partition: i32,
    },
}

impl Trigger {
    /// The visitor and the user (empty when unknown) the trigger is about.
    pub fn person(&self) -> (&str, &str) {
        match self {
            Trigger::AbandonedCart(row) => (&row.anonymous_id, &row.user_id),
            Trigger::OverdueOrder {
                anonymous_id,
                user_id,
                ..
            } => (anonymous_id, user_id),
        }
    }
}

/// Ad spend allocated to one day of its period (exactly: the remainder of
/// the integer split goes to the last day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendRow {
    /// Day start (UTC).
    pub day_ms: i64,
    /// Channel the money was spent on, as sent.
    pub channel: String,
    /// Campaign, empty when none.
    pub campaign: String,
    /// The `ad_spend` event this share comes from.
    pub event_id: String,
    /// The day's share, minor units.
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
}

/// Splits `amount` over the UTC days of `[start, end)` in proportion to the
/// time in each day; the shares add up to `amount` exactly.
pub fn split_by_day(amount: i64, start_ms: i64, end_ms: i64) -> Vec<(i64, i64)> {
    const DAY: i64 = 86_400_000;
    let total = (end_ms - start_ms).max(1) as i128;
    let mut out = Vec::new();
    let mut day = start_ms - start_ms.rem_euclid(DAY);
    let mut given = 0i64;
    while day < end_ms {
        let overlap = (end_ms.min(day + DAY) - start_ms.max(day)).max(0) as i128;
        let share = (i128::from(amount) * overlap / total) as i64;
        out.push((day, share));
        given += share;
        day += DAY;
    }
    if let Some(last) = out.last_mut() {
        last.1 += amount - given;
    }
    out
}

/// Sorts `rows` by `cmp`, moving each row twice instead of O(n log n)
/// times: the indices are sorted, then the rows taken in that order. Rows
/// are a few hundred bytes, and sorting them in place was 6 % of the
/// in-process profile in `memcpy`.
pub(crate) fn sort_rows<T>(rows: &mut Vec<T>, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    if rows.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&a, &b| cmp(&rows[a], &rows[b]));
    let mut slots: Vec<Option<T>> = rows.drain(..).map(Some).collect();
    rows.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

#[cfg(test)]
mod sort_tests {
    use super::{append, sort_rows};

    #[test]
    fn rows_come_out_in_order_and_none_is_lost() {
        let mut rows: Vec<(i64, String)> = [(3, "c"), (1, "b"), (3, "a"), (1, "a"), (2, "z")]
            .into_iter()
            .map(|(t, s)| (t, s.to_string()))
            .collect();
        let mut want = rows.clone();
        want.sort();
        sort_rows(&mut rows, |a, b| a.cmp(b));
        assert_eq!(rows, want);
    }

    #[test]
    fn append_takes_the_rows_into_an_empty_output_and_keeps_the_order() {
        let more = vec![1, 2];
        let at = more.as_ptr();
        let mut rows = Vec::new();
        append(&mut rows, more);
        assert_eq!(rows.as_ptr(), at, "the same allocation, not a copy");
        append(&mut rows, vec![3]);
        assert_eq!(rows, [1, 2, 3]);
    }
}
