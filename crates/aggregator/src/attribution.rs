//! Attribution of orders to the channels of their touches, by three models,
//! per day: what `attribution_daily` holds.
//!
//! An order's touches are the channels of the sessions its visitor started
//! within the attribution window before it, oldest first (see `touches`);
//! an order with none has its own channel as its one touch.
//! - first touch: all credit to the earliest touch;
//! - last non-direct (GA4's default): all credit to the latest touch that
//!   is not Direct, else Direct;
//! - linear: equal shares. Money is split exactly in minor units, and the
//!   remainder goes to the latest touch; so are conversions, counted in
//!   millionths ([`UNITS`] per order).
//!
//! The customer book applies it, as only it knows whether the order was
//! the customer's first (a new customer). Revenue is the order's total when
//! placed: later refunds are in `orders`, per order, with its channels.

use std::collections::{BTreeMap, BTreeSet};

use contract::time::window_start;

use crate::channel::Channel;

const DAY_MS: i64 = 86_400_000;

/// One order's worth of conversions: credits are whole millionths.
pub const UNITS: i64 = 1_000_000;

/// An attribution model.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Model {
    /// All credit to the earliest touch.
    FirstTouch,
    /// All credit to the latest touch that is not Direct, else Direct.
    LastNonDirect,
    /// Equal shares, the remainder to the latest touch.
    Linear,
}

impl Model {
    /// Every model.
    pub const ALL: [Model; 3] = [Model::FirstTouch, Model::LastNonDirect, Model::Linear];

    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::FirstTouch => "first_touch",
            Model::LastNonDirect => "last_non_direct",
            Model::Linear => "linear",
        }
    }
}

/// The earliest touch.
pub(crate) fn first_touch(touches: &[Channel]) -> Option<Channel> {
    touches.first().copied()
}

/// The latest touch that is not Direct, else Direct.
pub(crate) fn last_non_direct(touches: &[Channel]) -> Option<Channel> {
    let last = touches.iter().rev().find(|c| **c != Channel::Direct);
    (!touches.is_empty()).then(|| last.copied().unwrap_or(Channel::Direct))
}

/// One channel's credit for one order under one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credit {
    /// The model.
    pub model: Model,
    /// The channel credited.
    pub channel: Channel,
    /// Conversions, in millionths of an order.
    pub units: i64,
    /// Revenue, in minor units.
    pub minor: i64,
}

/// The credit every model gives each channel of `touches` (oldest first,
/// not empty) for an order of `total_minor`. Per model, units sum to
/// [`UNITS`] and money to `total_minor`, exactly; a channel appears once
/// per model.
pub fn credit(touches: &[Channel], total_minor: i64) -> Vec<Credit> {
    let whole = |model, channel| Credit {
        model,
        channel,
        units: UNITS,
        minor: total_minor,
    };
    let mut out = Vec::with_capacity(2 + touches.len());
    out.extend(first_touch(touches).map(|c| whole(Model::FirstTouch, c)));
    out.extend(last_non_direct(touches).map(|c| whole(Model::LastNonDirect, c)));
    let n = touches.len() as i64;
    if n == 0 {
        return out;
    }
    let (units, minor) = (UNITS.div_euclid(n), total_minor.div_euclid(n));
    let mut linear: Vec<Credit> = Vec::new();
    for (i, &channel) in touches.iter().enumerate() {
        let latest = i as i64 == n - 1;
        let share = Credit {
            model: Model::Linear,
            channel,
            units: units + if latest { UNITS.rem_euclid(n) } else { 0 },
            minor: minor + if latest { total_minor.rem_euclid(n) } else { 0 },
        };
        match linear.iter_mut().find(|c| c.channel == channel) {
            Some(c) => {
                c.units += share.units;
                c.minor += share.minor;
            }
            None => linear.push(share),
        }
    }
    out.extend(linear);
    out
}

/// Per day (UTC), channel, model, currency and facts partition: the credit
/// of the orders placed that day.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttributionDayRow {
    /// Day start (UTC).
    pub day_ms: i64,
    /// The channel credited.
    pub channel: Channel,
    /// The model.
    pub model: Model,
    /// Currency of `revenue_minor`.
    pub currency: String,
    /// Partition of the facts topic.
    pub partition: i32,
    /// Conversions credited, in millionths.
    pub conversion_units: i64,
    /// New customers credited (their first orders' conversions), in
    /// millionths.
    pub new_customer_units: i64,
    /// Revenue credited, minor units.
    pub revenue_minor: i64,
    /// Grows with each re-emission.
    pub version: u64,
}

type DayKey = (i64, Channel, Model, String, i32);

/// The open days of a customer book's attribution.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct AttributionDays {
    days: BTreeMap<DayKey, AttributionDayRow>,
    dirty: BTreeSet<DayKey>,
}

impl AttributionDays {
    /// An order placed at `ts_ms` (a new customer's when `new`), credited
    /// to `touches` (oldest first, not empty).
    pub(crate) fn order(&mut self, o: &PlacedOrder<'_>, touches: &[Channel]) {
        let day = window_start(o.ts_ms, DAY_MS);
        for c in credit(touches, o.total_minor) {
            let key = (day, c.channel, c.model, o.currency.to_string(), o.partition);
            let row = self
                .days
                .entry(key.clone())
                .or_insert_with(|| AttributionDayRow {
                    day_ms: day,
                    channel: c.channel,
                    model: c.model,
                    currency: o.currency.to_string(),
                    partition: o.partition,
                    conversion_units: 0,
                    new_customer_units: 0,
                    revenue_minor: 0,
                    version: 0,
                });
            row.conversion_units += c.units;
            row.new_customer_units += if o.new_customer { c.units } else { 0 };
            row.revenue_minor = row.revenue_minor.saturating_add(c.minor);
            row.version += 1;
            self.dirty.insert(key);
        }
    }

    /// The days changed since the last call; days `watermark_ms` has
    /// passed are closed after.
    pub(crate) fn take_changed(&mut self, watermark_ms: i64, out: &mut Vec<AttributionDayRow>) {
        for key in std::mem::take(&mut self.dirty) {
            out.extend(self.days.get(&key).cloned());
        }
        let first_open = window_start(watermark_ms, DAY_MS);
        self.days.retain(|k, _| k.0 >= first_open);
    }
}

/// What attribution needs of a placed order.
pub(crate) struct PlacedOrder<'a> {
    pub(crate) ts_ms: i64,
    pub(crate) total_minor: i64,
    pub(crate) currency: &'a str,
    pub(crate) partition: i32,
    pub(crate) new_customer: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use Channel::{Direct, Email, PaidSearch, Referral};

    fn by(model: Model, credits: &[Credit]) -> Vec<(Channel, i64, i64)> {
        let of = credits.iter().filter(|c| c.model == model);
        of.map(|c| (c.channel, c.units, c.minor)).collect()
    }

    #[test]
    fn each_model_credits_as_defined_to_the_minor_unit() {
        let c = credit(&[PaidSearch, Direct, Direct], 5_000);
        assert_eq!(by(Model::FirstTouch, &c), [(PaidSearch, UNITS, 5_000)]);
        assert_eq!(by(Model::LastNonDirect, &c), [(PaidSearch, UNITS, 5_000)]);
        // 5,000 / 3 = 1,666 each, the remainder of 2 to the latest touch
        // (Direct, which holds two of the three shares).
        assert_eq!(
            by(Model::Linear, &c),
            [(PaidSearch, 333_333, 1_666), (Direct, 666_667, 3_334)]
        );
        let only_direct = credit(&[Direct, Direct], 7);
        assert_eq!(by(Model::LastNonDirect, &only_direct), [(Direct, UNITS, 7)]);
        assert_eq!(by(Model::Linear, &only_direct), [(Direct, UNITS, 7)]);
        let latest_not_direct = credit(&[Email, Referral, Direct], 100);
        assert_eq!(
            by(Model::LastNonDirect, &latest_not_direct),
            [(Referral, UNITS, 100)]
        );
        assert_eq!(credit(&[], 100), []);
    }

    /// For many random touch lists and totals (negative ones too: a
    /// storefront's correction), every model's credit sums to one order
    /// and to the total exactly, and names each channel once.
    #[test]
    fn every_models_credit_sums_to_the_order_and_its_revenue() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..20_000 {
            let n = 1 + next(32) as usize;
            let touches: Vec<Channel> = (0..n).map(|_| Channel::ALL[next(8) as usize]).collect();
            let total = next(10_000_000) as i64 - 1_000;
            let credits = credit(&touches, total);
            for model in Model::ALL {
                let mine: Vec<&Credit> = credits.iter().filter(|c| c.model == model).collect();
                let units: i64 = mine.iter().map(|c| c.units).sum();
                let minor: i64 = mine.iter().map(|c| c.minor).sum();
                assert_eq!(
                    (units, minor),
                    (UNITS, total),
                    "{model:?} {touches:?} {total}"
                );
                let mut channels: Vec<Channel> = mine.iter().map(|c| c.channel).collect();
                channels.sort();
                channels.dedup();
                assert_eq!(channels.len(), mine.len(), "{model:?} {touches:?}");
                assert!(mine.iter().all(|c| touches.contains(&c.channel)));
            }
        }
    }

    #[test]
    fn days_add_up_their_orders_and_close_behind_the_watermark() {
        const DAY: i64 = DAY_MS;
        let mut days = AttributionDays::default();
        let order = |ts_ms, total_minor, new_customer| PlacedOrder {
            ts_ms,
            total_minor,
            currency: "USD",
            partition: 1,
            new_customer,
        };
        days.order(&order(DAY + 5, 900, true), &[Email, Direct]);
        days.order(&order(DAY + 9, 100, false), &[Email]);
        let mut out = Vec::new();
        days.take_changed(DAY + 10, &mut out);
        let email_linear = out
            .iter()
            .find(|r| r.model == Model::Linear && r.channel == Email)
            .expect("a row");
        assert_eq!(
            (
                email_linear.conversion_units,
                email_linear.new_customer_units
            ),
            (UNITS / 2 + UNITS, UNITS / 2)
        );
        assert_eq!(
            (email_linear.revenue_minor, email_linear.version),
            (450 + 100, 2)
        );
        // Email under each model, and Direct under linear.
        assert_eq!(out.len(), 4);
        let mut again = Vec::new();
        days.take_changed(2 * DAY, &mut again);
        assert!(again.is_empty());
        days.order(&order(2 * DAY, 1, false), &[Email]);
        days.take_changed(3 * DAY, &mut again);
        assert_eq!(days.days.len(), 0, "both days closed");
    }
}
