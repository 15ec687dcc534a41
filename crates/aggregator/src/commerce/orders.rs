//! Order windows: orders, payments, cancellations and refunds, and their
//! money, per window, currency, channel and partition.

use std::collections::BTreeMap;

use contract::time::window_start;
use contract::EventKind;

use crate::aggregate::{Aggregate, Applied};
use crate::channel::Channel;
use crate::offsets::HeldOffsets;
use crate::rows::OrderWindowRow;
use crate::Output;

/// (currency, channel, partition).
pub(super) type OrderKey = (String, Channel, i32);

/// The order windows.
pub(crate) struct OrderWindows {
    window_ms: i64,
    default_currency: String,
    pub(super) windows: BTreeMap<i64, BTreeMap<OrderKey, OrderWindowRow>>,
}

impl OrderWindows {
    pub(super) fn new(window_ms: i64, default_currency: &str) -> Self {
        OrderWindows {
            window_ms,
            default_currency: default_currency.to_string(),
            windows: BTreeMap::new(),
        }
    }

    fn row(
        &mut self,
        w: i64,
        currency: &str,
        channel: Channel,
        partition: i32,
    ) -> &mut OrderWindowRow {
        self.windows
            .entry(w)
            .or_default()
            .entry((currency.to_string(), channel, partition))
            .or_insert_with(|| OrderWindowRow {
                window_start_ms: w,
                currency: currency.to_string(),
                channel,
                partition,
                orders: 0,
                paid: 0,
                cancelled: 0,
                refunds: 0,
                gross_minor: 0,
                cancelled_minor: 0,
                refunded_minor: 0,
                referral_orders: 0,
                referral_minor: 0,
            })
    }
}

impl Aggregate for OrderWindows {
    /// Counts an order event in the channel of the visitor's session; a
    /// payment or cancellation in its order's currency (the default one
    /// when the order is not known).
    fn apply(&mut self, a: &Applied<'_>, _held: &mut HeldOffsets, _out: &mut Output) {
        let e = a.event;
        let (channel, partition) = (a.channel, a.pos.source.partition);
        let w = window_start(e.timestamp_ms, self.window_ms);
        match &e.kind {
            EventKind::OrderPlaced {
                total,
                referral_code,
                ..
            } => {
                let r = self.row(w, total.currency.as_str(), channel, partition);
                r.orders += 1;
                r.gross_minor = r.gross_minor.saturating_add(total.minor);
                if referral_code.is_some() {
                    r.referral_orders += 1;
                    r.referral_minor = r.referral_minor.saturating_add(total.minor);
                }
            }
            EventKind::OrderPaid { .. } => {
                let cur = a.order_total.as_ref().map(|(_, c)| c.clone());
                let cur = cur.unwrap_or_else(|| self.default_currency.clone());
                self.row(w, &cur, channel, partition).paid += 1;
            }
            EventKind::OrderCancelled { .. } => {
                let known = a.order_total.clone();
                let (minor, cur) = known.unwrap_or((0, self.default_currency.clone()));
                let r = self.row(w, &cur, channel, partition);
                r.cancelled += 1;
                r.cancelled_minor = r.cancelled_minor.saturating_add(minor);
            }
            EventKind::OrderRefunded { amount, .. } => {
                let r = self.row(w, amount.currency.as_str(), channel, partition);
                r.refunds += 1;
                r.refunded_minor = r.refunded_minor.saturating_add(amount.minor);
            }
            _ => {}
        }
    }

    fn flush(&mut self, watermark_ms: i64, out: &mut Output) {
        let keep = self
            .windows
            .split_off(&super::first_open(watermark_ms, self.window_ms));
        for (_, win) in std::mem::replace(&mut self.windows, keep) {
            out.orders.extend(win.into_values());
        }
    }
}
