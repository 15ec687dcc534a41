//! Decoding and validation of one Kafka message into an [`Event`].
//!
//! The envelope is read with borrowed raw JSON values, so each field is
//! checked on its own and a rejection names the field and the reason.

use std::borrow::Cow;
use std::collections::HashSet;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::event::{
    Campaign, Device, Event, EventKind, Experiment, LineItem, Page, Product, Survey,
};
use crate::money::{parse_minor, AmountError, Currency, Money};
use crate::reason::{Invalid, Reason};
use crate::time::{parse_rfc3339, MAX_MS, MIN_MS, MIN_TIME_MS};
use crate::url;
use crate::MAX_MESSAGE_BYTES;

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

type Raw<'a> = Option<&'a RawValue>;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    event_id: Raw<'a>,
    #[serde(borrow, default, rename = "type")]
    kind: Raw<'a>,
    #[serde(borrow, default)]
    timestamp: Raw<'a>,
    #[serde(borrow, default)]
    sent_at: Raw<'a>,
    #[serde(borrow, default)]
    anonymous_id: Raw<'a>,
    #[serde(borrow, default)]
    user_id: Raw<'a>,
    #[serde(borrow, default)]
    session_id: Raw<'a>,
    #[serde(borrow, default)]
    context: Nested<Context<'a>>,
    #[serde(borrow, default)]
    properties: Nested<Props<'a>>,
}

#[derive(Deserialize, Default)]
struct Context<'a> {
    #[serde(borrow, default)]
    page: Nested<PageRaw<'a>>,
    #[serde(borrow, default)]
    campaign: Nested<CampaignRaw<'a>>,
    #[serde(borrow, default)]
    device: Raw<'a>,
    #[serde(borrow, default)]
    experiment: Nested<ExperimentRaw<'a>>,
}

#[derive(Deserialize, Default)]
struct PageRaw<'a> {
    #[serde(borrow, default)]
    url: Raw<'a>,
    #[serde(borrow, default)]
    referrer: Raw<'a>,
}

#[derive(Deserialize, Default)]
struct CampaignRaw<'a> {
    #[serde(borrow, default)]
    source: Raw<'a>,
    #[serde(borrow, default)]
    medium: Raw<'a>,
    #[serde(borrow, default)]
    name: Raw<'a>,
}

#[derive(Deserialize, Default)]
struct ExperimentRaw<'a> {
    #[serde(borrow, default)]
    id: Raw<'a>,
    #[serde(borrow, default)]
    variant: Raw<'a>,
}

#[derive(Deserialize, Default)]
struct Props<'a> {
    #[serde(borrow, default)]
    currency: Raw<'a>,
    /// Read in the envelope's pass, not re-parsed from raw text.
    #[serde(borrow, default)]
    product: Nested<ProductRaw<'a>>,
    #[serde(borrow, default)]
    products: Raw<'a>,
    #[serde(borrow, default)]
    cart_id: Raw<'a>,
    #[serde(borrow, default)]
    order_id: Raw<'a>,
    #[serde(borrow, default)]
    value: Raw<'a>,
    #[serde(borrow, default)]
    total: Raw<'a>,
    #[serde(borrow, default)]
    amount: Raw<'a>,
    #[serde(borrow, default)]
    referral_code: Raw<'a>,
    #[serde(borrow, default)]
    survey: Raw<'a>,
    #[serde(borrow, default)]
    score: Raw<'a>,
    #[serde(borrow, default)]
    scale_max: Raw<'a>,
    #[serde(borrow, default)]
    channel: Raw<'a>,
    #[serde(borrow, default)]
    campaign: Raw<'a>,
    #[serde(borrow, default)]
    period_start: Raw<'a>,
    #[serde(borrow, default)]
    period_end: Raw<'a>,
}

#[derive(Deserialize, Default, Clone, Copy)]
struct ProductRaw<'a> {
    #[serde(borrow, default)]
    product_id: Raw<'a>,
    #[serde(borrow, default)]
    category: Raw<'a>,
    #[serde(borrow, default)]
    price: Raw<'a>,
    #[serde(borrow, default)]
    quantity: Raw<'a>,
}

/// A nested object read in the same pass as its parent (its own fields stay
/// raw), so no byte of the message is parsed twice. Absent or `null` is
/// [`Nested::Absent`]; any other JSON type is kept as [`Nested::NotObject`]
/// for the decoder to reject with the field's name.
#[derive(Default, Clone, Copy)]
enum Nested<T> {
    #[default]
    Absent,
    Object(T),
    NotObject,
}

impl<T: Default> Nested<T> {
    /// The object, its default when absent, or a wrong-type rejection of `field`.
    fn get(self, field: &'static str) -> Result<T, Invalid> {
        match self {
            Nested::Absent => Ok(T::default()),
            Nested::Object(t) => Ok(t),
            Nested::NotObject => Err(Invalid::wrong_type(field, "object")),
        }
    }

    /// The object if present (`None` when absent), or a wrong-type rejection.
    fn present(self, field: &'static str) -> Result<Option<T>, Invalid> {
        match self {
            Nested::Absent => Ok(None),
            other => other.get(field).map(Some),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct Any<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Any<T> {
            type Value = Nested<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Nested<T>, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Nested::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nested<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Nested::NotObject)
            }
            fn visit_unit<E>(self) -> Result<Nested<T>, E> {
                Ok(Nested::Absent)
            }
            fn visit_none<E>(self) -> Result<Nested<T>, E> {
                Ok(Nested::Absent)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Nested<T>, E> {
                Ok(Nested::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Nested<T>, E> {
                Ok(Nested::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Nested<T>, E> {
                Ok(Nested::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Nested<T>, E> {
                Ok(Nested::NotObject)
            }
            fn visit_str<E>(self, s: &str) -> Result<Nested<T>, E> {
                // `""` means absent, as for every optional field.
                Ok(if s.is_empty() {
                    Nested::Absent
                } else {
                    Nested::NotObject
                })
            }
        }
        d.deserialize_any(Any(std::marker::PhantomData))
    }
}

/// Treats JSON `null` and the empty string as absent: browsers and the
/// usual tracking libraries send `""` for what they do not have (a direct
/// visit's referrer, a guest's user id, an unset campaign field).
fn present(raw: Raw<'_>) -> Raw<'_> {
    raw.filter(|r| !matches!(r.get(), "null" | "\"\""))
}

/// Parses a nested object field, absent or null giving the default.
fn object<'a, T: Deserialize<'a> + Default>(
    raw: Raw<'a>,
    field: &'static str,
) -> Result<T, Invalid> {
    match present(raw) {
        None => Ok(T::default()),
        Some(r) if r.get().starts_with('{') => {
            serde_json::from_str(r.get()).map_err(|_| Invalid::wrong_type(field, "object"))
        }
        Some(_) => Err(Invalid::wrong_type(field, "object")),
    }
}

/// The text of a raw JSON string: borrowed when it has no escapes (the raw
/// value is already validated JSON, so the bytes between the quotes are the
/// string), unescaped otherwise. `None` when the value is not a string.
fn json_str(r: &RawValue) -> Option<Cow<'_, str>> {
    let text = r.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str(text).ok()
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// An optional string of at most `max` characters; empty means absent (see
/// [`present`]).
fn opt_str<'a>(
    raw: Raw<'a>,
    field: &'static str,
    max: usize,
) -> Result<Option<Cow<'a, str>>, Invalid> {
    let Some(r) = present(raw) else {
        return Ok(None);
    };
    let s = json_str(r).ok_or_else(|| Invalid::wrong_type(field, "string"))?;
    // Characters never outnumber bytes: count them only when the bytes
    // exceed the limit.
    let n = if s.len() <= max {
        s.len()
    } else {
        s.chars().count()
    };
    if n > max {
        return Err(Invalid::new(
            Reason::WrongType,
            Some(field),
            format!("length {n} above {max}"),
        ));
    }
    Ok(Some(s))
}

fn req_str<'a>(raw: Raw<'a>, field: &'static str, max: usize) -> Result<Cow<'a, str>, Invalid> {
    opt_str(raw, field, max)?.ok_or_else(|| Invalid::missing(field))
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

/// A timestamp: RFC 3339 string with offset, or integer epoch milliseconds,
/// inside `range` (the configured accepted event times).
fn timestamp(
    raw: Raw<'_>,
    field: &'static str,
    range: std::ops::Range<i64>,
) -> Result<Option<i64>, Invalid> {
    let Some(r) = present(raw) else {
        return Ok(None);
    };
    let text = r.get();
    let bad = || {
        Invalid::new(
            Reason::BadTimestamp,
            Some(field),
            format!("cannot read {text:.40}"),
        )
    };
    let ms = if text.starts_with('"') {
        let s = json_str(r).ok_or_else(bad)?;
        parse_rfc3339(&s).ok_or_else(bad)?
    } else {
        text.parse::<i64>().map_err(|_| bad())?
    };
    if !range.contains(&ms) {
        return Err(out_of_range(field, &range));
    }
    Ok(Some(ms))
}

/// The rejection of a time outside the accepted range, naming the settings.
fn out_of_range(field: &'static str, range: &std::ops::Range<i64>) -> Invalid {
    Invalid::new(
        Reason::BadTimestamp,
        Some(field),
        format!(
            "outside the accepted event times {}..{} (settings contract.earliest_event_time, contract.latest_event_time)",
            crate::time::format_rfc3339(range.start),
            crate::time::format_rfc3339(range.end)
        ),
    )
}

/// A number given as JSON number or string, as text.
fn number_text<'a>(r: &'a RawValue, field: &'static str) -> Result<Cow<'a, str>, Invalid> {
    let text = r.get();
    if text.starts_with('"') {
        json_str(r).ok_or_else(|| Invalid::wrong_type(field, "number"))
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Ok(Cow::Borrowed(text))
    } else {
        Err(Invalid::wrong_type(field, "number or decimal string"))
    }
}

impl Decoder {
    /// A decoder with `opts`.
    pub fn new(opts: DecodeOptions) -> Self {
        Decoder { opts }
    }

    /// Decodes one message from `stream`. `kafka_ts_ms` is the message's
    /// Kafka timestamp, used for clock-skew correction with `sent_at`.
    pub fn decode(
        &self,
        payload: &[u8],
        stream: Stream,
        kafka_ts_ms: Option<i64>,
    ) -> Result<Event, Invalid> {
        if payload.len() > MAX_MESSAGE_BYTES {
            return Err(Invalid::new(
                Reason::Oversized,
                None,
                format!("{} bytes, limit {MAX_MESSAGE_BYTES}", payload.len()),
            ));
        }
        let text = std::str::from_utf8(payload)
            .map_err(|e| Invalid::new(Reason::NotJson, None, format!("not UTF-8: {e}")))?;
        let first = text.trim_start().as_bytes().first().copied();
        let env: Envelope<'_> = match serde_json::from_str(text) {
            Ok(env) if first == Some(b'{') => env,
            Ok(_) => return Err(Invalid::new(Reason::NotObject, None, "not a JSON object")),
            Err(e) if e.is_data() && first != Some(b'{') => {
                return Err(Invalid::new(Reason::NotObject, None, "not a JSON object"))
            }
            Err(e) if e.is_data() => {
                return Err(Invalid::new(Reason::WrongType, None, e.to_string()))
            }
            Err(e) => return Err(Invalid::new(Reason::NotJson, None, e.to_string())),
        };

        let event_id = req_str(env.event_id, "event_id", 128)?.into_owned();
        let type_name = req_str(env.kind, "type", 64)?;
        let anonymous_id = req_str(env.anonymous_id, "anonymous_id", 128)?.into_owned();
        let range = self.opts.earliest_ms..self.opts.latest_ms;
        let client_ts = timestamp(env.timestamp, "timestamp", range.clone())?
            .ok_or_else(|| Invalid::missing("timestamp"))?;
        // sent_at is only compared with the broker's clock: any readable time.
        let sent_at = timestamp(env.sent_at, "sent_at", MIN_TIME_MS..MAX_MS)?;
        let user_id = owned(opt_str(env.user_id, "user_id", 128)?);
        let session_id = owned(opt_str(env.session_id, "session_id", 128)?);

        let timestamp_ms = match (sent_at, kafka_ts_ms) {
            (Some(sent), Some(kafka))
                if kafka.saturating_sub(sent).saturating_abs() > self.opts.skew_threshold_ms =>
            {
                let corrected = kafka.saturating_sub(sent - client_ts);
                if !range.contains(&corrected) {
                    return Err(out_of_range("sent_at", &range));
                }
                corrected
            }
            _ => client_ts,
        };

        let ctx: Context<'_> = env.context.get("context")?;
        // The page's URL is read once, for the page and the URL's campaign
        // parameters.
        let page_raw = ctx.page.present("context.page")?;
        let url = match &page_raw {
            Some(p) => opt_str(p.url, "context.page.url", 8192)?,
            None => None,
        };
        let parts = url.as_deref().map(url::split);
        let page = self.page(parts.as_ref(), page_raw.as_ref())?;
        let campaign = self.campaign(ctx.campaign, parts.as_ref().map(|p| p.query))?;
        let device = match opt_str(ctx.device, "context.device", 16)?.as_deref() {
            None => Device::Unknown,
            Some("desktop") => Device::Desktop,
            Some("mobile") => Device::Mobile,
            Some("tablet") => Device::Tablet,
            Some("bot") => Device::Bot,
            Some(other) => {
                return Err(Invalid::new(
                    Reason::OutOfRange,
                    Some("context.device"),
                    format!("unknown device {other:.16}"),
                ))
            }
        };
        let experiment = match ctx.experiment.present("context.experiment")? {
            // An experiment object with every field empty is no experiment.
            Some(e) if present(e.id).is_none() && present(e.variant).is_none() => None,
            None => None,
            Some(e) => Some(Experiment {
                id: req_str(e.id, "context.experiment.id", 128)?.into_owned(),
                variant: req_str(e.variant, "context.experiment.variant", 128)?.into_owned(),
            }),
        };

        let props: Props<'_> = env.properties.get("properties")?;
        let kind = self.kind(&type_name, stream, &props, page.is_some())?;

        Ok(Event {
            event_id,
            timestamp_ms,
            anonymous_id,
            user_id,
            session_id,
            page,
            campaign,
            device,
            experiment,
            kind,
        })
    }

    fn page(
        &self,
        parts: Option<&url::UrlParts<'_>>,
        p: Option<&PageRaw<'_>>,
    ) -> Result<Option<Page>, Invalid> {
        let (Some(parts), Some(p)) = (parts, p) else {
            return Ok(None);
        };
        let mut path = parts.path.to_string();
        if path.len() > 512 {
            let mut cut = 512;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path.truncate(cut);
        }
        let referrer_host = opt_str(p.referrer, "context.page.referrer", 8192)?
            .map(|r| url::split(&r).host.to_ascii_lowercase())
            .filter(|h| !h.is_empty());
        Ok(Some(Page {
            path,
            host: parts.host.to_ascii_lowercase(),
            referrer_host,
        }))
    }

    fn campaign(
        &self,
        raw: Nested<CampaignRaw<'_>>,
        page_query: Option<&str>,
    ) -> Result<Campaign, Invalid> {
        let mut c = Campaign::default();
        // utm_* from the page URL first; context.campaign overrides.
        if let Some(query) = page_query {
            for (k, v) in url::query_pairs(query) {
                let v = || Some(url::decode_component(v)).filter(|v| !v.is_empty());
                match k {
                    "utm_source" => c.source = v(),
                    "utm_medium" => c.medium = v(),
                    "utm_campaign" => c.name = v(),
                    "gclid" | "gbraid" | "wbraid" | "dclid" | "msclkid" | "yclid" | "fbclid"
                    | "ttclid" | "vkclid" => c.click_id = true,
                    _ => {}
                }
            }
        }
        let cr: CampaignRaw<'_> = raw.get("context.campaign")?;
        if let Some(s) = opt_str(cr.source, "context.campaign.source", 256)? {
            c.source = Some(s.into_owned());
        }
        if let Some(s) = opt_str(cr.medium, "context.campaign.medium", 256)? {
            c.medium = Some(s.into_owned());
        }
        if let Some(s) = opt_str(cr.name, "context.campaign.name", 256)? {
            c.name = Some(s.into_owned());
        }
        for s in [&mut c.source, &mut c.medium].into_iter().flatten() {
            if !s.is_ascii() || s.bytes().any(|b| b.is_ascii_uppercase()) {
                *s = s.to_lowercase();
            }
        }
        Ok(c)
    }

    fn currency(&self, props: &Props<'_>) -> Result<Currency, Invalid> {
        match opt_str(props.currency, "properties.currency", 3)? {
            None => Ok(self.opts.default_currency),
            Some(code) => Currency::parse(&code)
                .filter(|c| self.opts.currencies.contains(c))
                .ok_or_else(|| {
                    Invalid::new(
                        Reason::BadCurrency,
                        Some("properties.currency"),
                        format!("currency {code:.3} is not configured"),
                    )
                }),
        }
    }

    fn money(
        &self,
        raw: Raw<'_>,
        field: &'static str,
        cur: Currency,
    ) -> Result<Option<Money>, Invalid> {
        let Some(r) = present(raw) else {
            return Ok(None);
        };
        let text = number_text(r, field)?;
        let minor = parse_minor(&text, cur.exponent()).map_err(|e| {
            let why = match e {
                AmountError::Syntax => "not a plain decimal",
                AmountError::Negative => "negative",
                AmountError::TooPrecise => "more decimals than the currency has",
                AmountError::Overflow => "too large",
            };
            Invalid::new(Reason::BadAmount, Some(field), why)
        })?;
        Ok(Some(Money {
            minor,
            currency: cur,
        }))
    }

    fn req_money(
        &self,
        raw: Raw<'_>,
        field: &'static str,
        cur: Currency,
    ) -> Result<Money, Invalid> {
        self.money(raw, field, cur)?
            .ok_or_else(|| Invalid::missing(field))
    }

    fn line(&self, raw: Raw<'_>, field: &'static str, cur: Currency) -> Result<LineItem, Invalid> {
        if present(raw).is_none() {
            return Err(Invalid::missing(field));
        }
        self.line_of(object(raw, field)?, field, cur)
    }

    fn line_of(
        &self,
        p: ProductRaw<'_>,
        field: &'static str,
        cur: Currency,
    ) -> Result<LineItem, Invalid> {
        let quantity = match present(p.quantity) {
            None => 1,
            // A number, or an integer in a string (as some platforms send it).
            Some(q) => json_str(q)
                .unwrap_or(Cow::Borrowed(q.get()))
                .parse::<u32>()
                .ok()
                .filter(|q| (1..=100_000).contains(q))
                .ok_or_else(|| {
                    Invalid::new(
                        Reason::OutOfRange,
                        Some(field),
                        "quantity must be an integer 1..=100000",
                    )
                })?,
        };
        Ok(LineItem {
            product_id: req_str(p.product_id, field, 128)?.into_owned(),
            price: self.req_money(p.price, field, cur)?,
            quantity,
        })
    }

    fn kind(
        &self,
        type_name: &str,
        stream: Stream,
        props: &Props<'_>,
        has_page: bool,
    ) -> Result<EventKind, Invalid> {
        let expected = match type_name {
            "page_view" | "product_view" | "add_to_cart" | "remove_from_cart"
            | "checkout_started" | "signup" | "referral_sent" | "survey_response" => {
                Stream::Clickstream
            }
            "order_placed" | "order_paid" | "order_cancelled" | "order_refunded" => Stream::Orders,
            "ad_spend" => Stream::Spend,
            other => {
                return Err(Invalid::new(
                    Reason::UnknownType,
                    Some("type"),
                    format!("unknown type {other:.64}"),
                ))
            }
        };
        if expected != stream {
            return Err(Invalid::new(
                Reason::WrongTopic,
                Some("type"),
                format!("{type_name} belongs on the {} topic", expected.as_str()),
            ));
        }
        let cur = self.currency(props)?;
        let cart_id = |req: bool| -> Result<Option<String>, Invalid> {
            let v = owned(opt_str(props.cart_id, "properties.cart_id", 128)?);
            if req && v.is_none() {
                return Err(Invalid::missing("properties.cart_id"));
            }
            Ok(v)
        };
        let order_id = || -> Result<String, Invalid> {
            Ok(req_str(props.order_id, "properties.order_id", 128)?.into_owned())
        };
        Ok(match type_name {
            "page_view" if !has_page => return Err(Invalid::missing("context.page.url")),
            "page_view" => EventKind::PageView,
            "product_view" => {
                let p = props
                    .product
                    .present("properties.product")?
                    .ok_or_else(|| Invalid::missing("properties.product"))?;
                EventKind::ProductView {
                    product: Product {
                        product_id: req_str(p.product_id, "properties.product.product_id", 128)?
                            .into_owned(),
                        category: owned(opt_str(p.category, "properties.product.category", 256)?),
                        price: self.money(p.price, "properties.product.price", cur)?,
                    },
                }
            }
            "add_to_cart" | "remove_from_cart" => {
                let cart_id = cart_id(true)?.unwrap_or_default();
                let p = props
                    .product
                    .present("properties.product")?
                    .ok_or_else(|| Invalid::missing("properties.product"))?;
                let line = self.line_of(p, "properties.product", cur)?;
                if type_name == "add_to_cart" {
                    EventKind::AddToCart { cart_id, line }
                } else {
                    EventKind::RemoveFromCart { cart_id, line }
                }
            }
            "checkout_started" => EventKind::CheckoutStarted {
                cart_id: cart_id(true)?.unwrap_or_default(),
                value: self.money(props.value, "properties.value", cur)?,
            },
            "signup" => EventKind::Signup,
            "referral_sent" => EventKind::ReferralSent {
                referral_code: req_str(props.referral_code, "properties.referral_code", 128)?
                    .into_owned(),
            },
            "survey_response" => self.survey(props)?,
            "order_placed" => {
                let products = match present(props.products) {
                    None => return Err(Invalid::missing("properties.products")),
                    Some(r) => {
                        let items: Vec<Option<&RawValue>> = serde_json::from_str(r.get())
                            .map_err(|_| Invalid::wrong_type("properties.products", "array"))?;
                        if items.len() > 1000 {
                            return Err(Invalid::new(
                                Reason::OutOfRange,
                                Some("properties.products"),
                                "more than 1000 lines",
                            ));
                        }
                        items
                            .into_iter()
                            .map(|i| self.line(i, "properties.products[]", cur))
                            .collect::<Result<Vec<_>, _>>()?
                    }
                };
                EventKind::OrderPlaced {
                    order_id: order_id()?,
                    cart_id: cart_id(false)?,
                    total: self.req_money(props.total, "properties.total", cur)?,
                    referral_code: owned(opt_str(
                        props.referral_code,
                        "properties.referral_code",
                        128,
                    )?),
                    products,
                }
            }
            "order_paid" => EventKind::OrderPaid {
                order_id: order_id()?,
            },
            "order_cancelled" => EventKind::OrderCancelled {
                order_id: order_id()?,
            },
            "order_refunded" => EventKind::OrderRefunded {
                order_id: order_id()?,
                amount: self.req_money(props.amount, "properties.amount", cur)?,
            },
            _ => {
                let range = self.opts.earliest_ms..self.opts.latest_ms;
                let start =
                    timestamp(props.period_start, "properties.period_start", range.clone())?
                        .ok_or_else(|| Invalid::missing("properties.period_start"))?;
                let end = timestamp(props.period_end, "properties.period_end", range)?
                    .ok_or_else(|| Invalid::missing("properties.period_end"))?;
                if end <= start {
                    return Err(Invalid::new(
                        Reason::OutOfRange,
                        Some("properties.period_end"),
                        "period_end must be after period_start",
                    ));
                }
                EventKind::AdSpend {
                    channel: req_str(props.channel, "properties.channel", 64)?.into_owned(),
                    campaign: owned(opt_str(props.campaign, "properties.campaign", 256)?),
                    amount: self.req_money(props.amount, "properties.amount", cur)?,
                    period_start_ms: start,
                    period_end_ms: end,
                }
            }
        })
    }

    fn survey(&self, props: &Props<'_>) -> Result<EventKind, Invalid> {
        let survey = match req_str(props.survey, "properties.survey", 8)?.as_ref() {
            "nps" => Survey::Nps,
            "csat" => Survey::Csat,
            "ces" => Survey::Ces,
            other => {
                return Err(Invalid::new(
                    Reason::OutOfRange,
                    Some("properties.survey"),
                    format!("unknown survey {other:.8}"),
                ))
            }
        };
        let num = |raw: Raw<'_>, field: &'static str| -> Result<Option<f64>, Invalid> {
            match present(raw) {
                None => Ok(None),
                Some(r) => r
                    .get()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(Some)
                    .ok_or_else(|| Invalid::wrong_type(field, "number")),
            }
        };
        let score = num(props.score, "properties.score")?
            .ok_or_else(|| Invalid::missing("properties.score"))?;
        let default_max = match survey {
            Survey::Nps => 10.0,
            Survey::Csat => 5.0,
            Survey::Ces => 7.0,
        };
        let scale_max = match survey {
            Survey::Nps => 10.0,
            _ => num(props.scale_max, "properties.scale_max")?.unwrap_or(default_max),
        };
        let min = if survey == Survey::Nps { 0.0 } else { 1.0 };
        if !(2.0..=100.0).contains(&scale_max) || score < min || score > scale_max {
            return Err(Invalid::new(
                Reason::OutOfRange,
                Some("properties.score"),
                format!("score outside {min}..={scale_max}"),
            ));
        }
        Ok(EventKind::SurveyResponse {
            survey,
            score,
            scale_max,
        })
    }
}
