//! Decoding and validation of one Kafka message into an [`Event`].
//!
//! The envelope is read with borrowed raw JSON values, so each field is
//! checked on its own and a rejection names the field and the reason.

use std::collections::HashSet;

mod context;
mod kinds;
mod raw;
mod scan;
mod scan_keys;

use crate::event::{Event, Text};
use crate::money::Currency;
use crate::reason::{Invalid, Reason};
use crate::time::{MAX_MS, MIN_MS, MIN_TIME_MS};
use crate::MAX_MESSAGE_BYTES;
use raw::{opt_str, out_of_range, owned, req_str, timestamp, Envelope, Props};

/// Which contract topic a message came from; each accepts its own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// `storefront.clickstream`.
    Clickstream,
    /// `storefront.orders`.
    Orders,
    /// `marketing.spend`.
    Spend,
}

impl Stream {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Clickstream => "clickstream",
            Stream::Orders => "orders",
            Stream::Spend => "spend",
        }
    }
}

/// Settings the decoder needs from the configuration.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Currency assumed when `properties.currency` is absent.
    pub default_currency: Currency,
    /// Currencies accepted; others are [`Reason::BadCurrency`].
    pub currencies: HashSet<Currency>,
    /// Clock skew (|Kafka timestamp - sent_at|) above which event time is corrected.
    pub skew_threshold_ms: i64,
    /// Earliest accepted event time, epoch ms (default 1990-01-01, which
    /// still rejects epoch seconds sent as milliseconds: those read as 1970).
    pub earliest_ms: i64,
    /// Latest accepted event time, epoch ms, exclusive (default 2100-01-01).
    pub latest_ms: i64,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        let usd = Currency::parse("USD").expect("valid code");
        DecodeOptions {
            default_currency: usd,
            currencies: [usd].into_iter().collect(),
            skew_threshold_ms: 60_000,
            earliest_ms: MIN_MS,
            latest_ms: MAX_MS,
        }
    }
}

/// Decodes messages under [`DecodeOptions`].
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    opts: DecodeOptions,
}

impl Decoder {
    /// A decoder with `opts`.
    pub fn new(opts: DecodeOptions) -> Self {
        Decoder { opts }
    }

    /// Decodes one message from `stream`. `kafka_ts_ms` is the message's
    /// Kafka timestamp, used for clock-skew correction with `sent_at`.
    /// Fields are checked in the order of the envelope, so a message with
    /// several faults is rejected for the first.
    pub fn decode(
        &self,
        payload: &[u8],
        stream: Stream,
        kafka_ts_ms: Option<i64>,
    ) -> Result<Event, Invalid> {
        self.decode_reading(payload, true, stream, kafka_ts_ms)
    }

    /// [`Decoder::decode`] with every message read by serde_json alone,
    /// without the one-pass reader: the reference that reader is tested
    /// against (the same events, the same rejections).
    #[doc(hidden)]
    pub fn decode_by_serde_json(
        &self,
        payload: &[u8],
        stream: Stream,
        kafka_ts_ms: Option<i64>,
    ) -> Result<Event, Invalid> {
        self.decode_reading(payload, false, stream, kafka_ts_ms)
    }

    /// Decodes `payload`, its envelope read in one pass when `scan` is set.
    fn decode_reading(
        &self,
        payload: &[u8],
        scan: bool,
        stream: Stream,
        kafka_ts_ms: Option<i64>,
    ) -> Result<Event, Invalid> {
        let mut env = Envelope::default();
        envelope(payload, scan, &mut env)?;
        self.checked(&env, stream, kafka_ts_ms)
            .map_err(|mut invalid| {
                // A message rejected for something other than its time still
                // says how far its producer's clock got.
                invalid.event_ms = self.event_time(&env, kafka_ts_ms).ok();
                invalid
            })
    }

    /// The event of a read envelope, each field checked.
    fn checked(
        &self,
        env: &Envelope<'_>,
        stream: Stream,
        kafka_ts_ms: Option<i64>,
    ) -> Result<Event, Invalid> {
        let event_id = Text::from(req_str(env.event_id, "event_id", 128)?);
        let type_name = req_str(env.kind, "type", 64)?;
        let anonymous_id = Text::from(req_str(env.anonymous_id, "anonymous_id", 128)?);
        let timestamp_ms = self.event_time(env, kafka_ts_ms)?;
        let user_id = owned(opt_str(env.user_id, "user_id", 128)?);
        let session_id = owned(opt_str(env.session_id, "session_id", 128)?);
        let ctx = self.context(&env.context)?;
        let no_props = Props::default();
        let props = env.properties.in_place("properties")?.unwrap_or(&no_props);
        let kind = self.kind(&type_name, stream, props, ctx.page.is_some())?;
        Ok(Event {
            event_id,
            timestamp_ms,
            anonymous_id,
            user_id,
            session_id,
            page: ctx.page,
            campaign: ctx.campaign.boxed(),
            device: ctx.device,
            experiment: ctx.experiment.map(Box::new),
            kind,
        })
    }

    /// The event time of an envelope: its `timestamp` inside the accepted
    /// range, corrected for the client's clock (see [`Self::corrected`]).
    fn event_time(&self, env: &Envelope<'_>, kafka_ts_ms: Option<i64>) -> Result<i64, Invalid> {
        let range = self.opts.earliest_ms..self.opts.latest_ms;
        let client_ts = timestamp(env.timestamp, "timestamp", range)?
            .ok_or_else(|| Invalid::missing("timestamp"))?;
        // sent_at is only compared with the broker's clock: any readable time.
        let sent_at = timestamp(env.sent_at, "sent_at", MIN_TIME_MS..MAX_MS)?;
        self.corrected(client_ts, sent_at, kafka_ts_ms)
    }

    /// The event time: the client's, unless its clock is off by more than
    /// the skew threshold (its `sent_at` against the broker's timestamp),
    /// then shifted by that difference, and still inside the accepted range.
    ///
    /// Whatever the client says, an event does not happen after the message
    /// that carries it was produced: a time further than the threshold
    /// past the broker's timestamp is the broker's timestamp. (A client
    /// clock a day fast and no `sent_at` to correct it with would otherwise
    /// move its partition's watermark a day ahead, and make the next day of
    /// every partition's events late once each had met such a client.)
    fn corrected(
        &self,
        client_ts: i64,
        sent_at: Option<i64>,
        kafka_ts_ms: Option<i64>,
    ) -> Result<i64, Invalid> {
        let range = self.opts.earliest_ms..self.opts.latest_ms;
        let threshold = self.opts.skew_threshold_ms;
        // A broker timestamp outside the accepted range (a producer that
        // sets 0, say) is no clock to correct with.
        let kafka_ts_ms = kafka_ts_ms.filter(|k| range.contains(k));
        let t = match (sent_at, kafka_ts_ms) {
            (Some(sent), Some(kafka))
                if kafka.saturating_sub(sent).saturating_abs() > threshold =>
            {
                let corrected = kafka.saturating_sub(sent - client_ts);
                if !range.contains(&corrected) {
                    return Err(out_of_range("sent_at", &range));
                }
                corrected
            }
            _ => client_ts,
        };
        Ok(match kafka_ts_ms {
            Some(kafka) if t > kafka.saturating_add(threshold) => kafka,
            _ => t,
        })
    }
}

/// The envelope of `payload`: at most [`MAX_MESSAGE_BYTES`] of UTF-8 JSON
/// holding an object. Read in one pass when `scan` is set and the message
/// is one [`scan`] reads; by serde_json otherwise, which also words every
/// rejection.
fn envelope<'a>(payload: &'a [u8], scan: bool, env: &mut Envelope<'a>) -> Result<(), Invalid> {
    if payload.len() > MAX_MESSAGE_BYTES {
        return Err(Invalid::new(
            Reason::Oversized,
            None,
            format!("{} bytes, limit {MAX_MESSAGE_BYTES}", payload.len()),
        ));
    }
    let text = std::str::from_utf8(payload)
        .map_err(|e| Invalid::new(Reason::NotJson, None, format!("not UTF-8: {e}")))?;
    if scan && scan::envelope(text, env).is_some() {
        return Ok(());
    }
    let first = text.trim_start().as_bytes().first().copied();
    match serde_json::from_str(text) {
        Ok(read) if first == Some(b'{') => {
            *env = read;
            Ok(())
        }
        Ok(_) => Err(Invalid::new(Reason::NotObject, None, "not a JSON object")),
        Err(e) if e.is_data() && first != Some(b'{') => {
            Err(Invalid::new(Reason::NotObject, None, "not a JSON object"))
        }
        Err(e) if e.is_data() => Err(Invalid::new(Reason::WrongType, None, e.to_string())),
        Err(e) => Err(Invalid::new(Reason::NotJson, None, e.to_string())),
    }
}
