//! Notices a partition whose input is nearly all rejected: a feed that the
//! settings do not fit (an old history before the accepted event times,
//! a currency not configured, events on the wrong topic), which would
//! otherwise show only as a moving counter and empty tables.

use std::collections::BTreeMap;

use aggregator::Source;
use contract::Reason;

/// Messages per judged block of a partition.
pub const BLOCK: u32 = 1_000;
/// Share of a block rejected (per mille) above which it is reported.
pub const ALARM_PER_MILLE: u32 = 900;

#[derive(Default)]
struct Block {
    seen: u32,
    rejected: u32,
    /// Rejections by (reason, field) in this block.
    why: BTreeMap<(Reason, Option<&'static str>), u32>,
}

/// A block of one partition that was nearly all rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// The partition.
    pub source: Source,
    /// Messages rejected of the block's [`BLOCK`].
    pub rejected: u32,
    /// The most frequent reason.
    pub reason: Reason,
    /// Its field.
    pub field: Option<&'static str>,
    /// The setting or document to look at for that reason.
    pub look_at: &'static str,
}

/// Rejection shares per partition, judged a block of [`BLOCK`] messages at a time.
#[derive(Default)]
pub struct RejectRate {
    blocks: BTreeMap<Source, Block>,
}

/// Where to look when `reason` rejects nearly a whole feed.
pub fn look_at(reason: Reason) -> &'static str {
    match reason {
        Reason::BadTimestamp => {
            "contract.earliest_event_time / contract.latest_event_time (env CONTRACT__EARLIEST_EVENT_TIME), and whether times are epoch milliseconds"
        }
        Reason::BadCurrency => "contract.currencies and contract.default_currency (env CONTRACT__CURRENCIES)",
        Reason::WrongTopic => "kafka.topics (each event type has its topic, docs/contract.md)",
        Reason::Late => "watermark.allowed_lateness_ms (env WATERMARK__ALLOWED_LATENESS_MS)",
        _ => "the event contract (docs/contract.md) against what the producer sends",
    }
}

impl RejectRate {
    /// Counts one message of `source`: `rejected` with its reason and
    /// field, or accepted (`None`). Returns an alarm when this message
    /// completes a block that was nearly all rejected.
    pub fn record(
        &mut self,
        source: Source,
        rejected: Option<(Reason, Option<&'static str>)>,
    ) -> Option<Alarm> {
        let b = self.blocks.entry(source).or_default();
        b.seen += 1;
        if let Some(why) = rejected {
            b.rejected += 1;
            *b.why.entry(why).or_default() += 1;
        }
        if b.seen < BLOCK {
            return None;
        }
        let done = std::mem::take(b);
        if done.rejected * 1000 < ALARM_PER_MILLE * done.seen {
            return None;
        }
        let ((reason, field), _) = done.why.into_iter().max_by_key(|(_, n)| *n)?;
        Some(Alarm {
            source,
            rejected: done.rejected,
            reason,
            field,
            look_at: look_at(reason),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Source = Source::new(1, 3);

    #[test]
    fn a_block_nearly_all_rejected_names_the_reason_field_and_setting() {
        let mut r = RejectRate::default();
        let bad = Some((Reason::BadTimestamp, Some("timestamp")));
        let mut alarms = Vec::new();
        for i in 0..BLOCK {
            let why = if i % 20 == 0 { None } else { bad };
            alarms.extend(r.record(S, why));
        }
        assert_eq!(alarms.len(), 1);
        let a = &alarms[0];
        assert_eq!(
            (a.reason, a.field, a.rejected),
            (Reason::BadTimestamp, Some("timestamp"), 950)
        );
        assert!(a.look_at.contains("contract.earliest_event_time"));
    }

    #[test]
    fn a_feed_with_some_rejections_raises_nothing() {
        let mut r = RejectRate::default();
        let bad = Some((Reason::MissingField, Some("anonymous_id")));
        for i in 0..(3 * BLOCK) {
            let why = if i % 2 == 0 { bad } else { None };
            assert_eq!(r.record(S, why), None);
        }
    }
}
