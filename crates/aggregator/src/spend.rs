//! Ad spend: marketing data, not a visitor's behaviour. Each spend event
//! becomes one row per day of its period, the amount split exactly in minor
//! units (see [`crate::split_by_day`]).

use contract::EventKind;

use crate::aggregate::{Aggregate, Applied};
use crate::offsets::HeldOffsets;
use crate::rows::{split_by_day, SpendRow};
use crate::Output;

/// The spend aggregate; it keeps no state.
#[derive(Default)]
pub(crate) struct Spend;

impl Aggregate for Spend {
    fn apply(&mut self, a: &Applied<'_>, _held: &mut HeldOffsets, out: &mut Output) {
        let EventKind::AdSpend {
            channel,
            campaign,
            amount,
            period_start_ms,
            period_end_ms,
        } = &a.event.kind
        else {
            return;
        };
        for (day_ms, share) in split_by_day(amount.minor, *period_start_ms, *period_end_ms) {
            out.spend.push(SpendRow {
                day_ms,
                channel: channel.to_string(),
                campaign: campaign.as_deref().unwrap_or_default().to_string(),
                event_id: a.event.event_id.to_string(),
                amount_minor: share,
                currency: amount.currency.as_str().to_string(),
            });
        }
    }
}
