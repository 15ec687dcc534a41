//! The event types: which topic each belongs on, and the properties each
//! requires, with exact money in the event's currency.

use std::borrow::Cow;

use crate::event::{EventKind, LineItem, Product, Survey, Text};
use crate::money::{parse_minor, AmountError, Currency, Money};
use crate::reason::{Invalid, Reason};

use super::raw::{
    json_str, number_text, object, opt_str, owned, present, req_str, timestamp, whole,
};
use super::raw::{ProductRaw, Props, Raw};
use super::{Decoder, Stream};

impl Decoder {
    /// The event type `type_name` with its properties, if it belongs on
    /// `stream`.
    pub(super) fn kind(
        &self,
        type_name: &str,
        stream: Stream,
        props: &Props<'_>,
        has_page: bool,
    ) -> Result<EventKind, Invalid> {
        let expected = expected_stream(type_name)?;
        if expected != stream {
            return Err(Invalid::new(
                Reason::WrongTopic,
                Some("type"),
                format!("{type_name} belongs on the {} topic", expected.as_str()),
            ));
        }
        let cur = self.currency(props)?;
        match expected {
            Stream::Clickstream => self.storefront(type_name, props, cur, has_page),
            Stream::Orders => self.order(type_name, props, cur),
            Stream::Spend => self.ad_spend(props, cur),
        }
    }

    /// A clickstream event's properties.
    fn storefront(
        &self,
        type_name: &str,
        props: &Props<'_>,
        cur: Currency,
        has_page: bool,
    ) -> Result<EventKind, Invalid> {
        let cart_id = || -> Result<Text, Invalid> {
            owned(opt_str(props.cart_id, "properties.cart_id", 128)?)
                .ok_or_else(|| Invalid::missing("properties.cart_id"))
        };
        let product = || {
            props
                .product
                .present("properties.product")?
                .ok_or_else(|| Invalid::missing("properties.product"))
        };
        Ok(match type_name {
            "page_view" if !has_page => return Err(Invalid::missing("context.page.url")),
            "page_view" => EventKind::PageView,
            "product_view" => {
                let p = product()?;
                EventKind::ProductView {
                    product: Product {
                        product_id: req_str(p.product_id, "properties.product.product_id", 128)?
                            .into(),
                        category: owned(opt_str(p.category, "properties.product.category", 256)?),
                        price: self.money(p.price, "properties.product.price", cur)?,
                    },
                }
            }
            "add_to_cart" | "remove_from_cart" => {
                let cart_id = cart_id()?;
                let line = self.line_of(product()?, "properties.product", cur)?;
                if type_name == "add_to_cart" {
                    EventKind::AddToCart { cart_id, line }
                } else {
                    EventKind::RemoveFromCart { cart_id, line }
                }
            }
            "checkout_started" => EventKind::CheckoutStarted {
                cart_id: cart_id()?,
                value: self.money(props.value, "properties.value", cur)?,
            },
            "signup" => EventKind::Signup,
            "referral_sent" => EventKind::ReferralSent {
                referral_code: req_str(props.referral_code, "properties.referral_code", 128)?
                    .into(),
            },
            _ => self.survey(props)?,
        })
    }

    /// An orders-topic event's properties.
    fn order(
        &self,
        type_name: &str,
        props: &Props<'_>,
        cur: Currency,
    ) -> Result<EventKind, Invalid> {
        let order_id = || -> Result<Text, Invalid> {
            Ok(req_str(props.order_id, "properties.order_id", 128)?.into())
        };
        Ok(match type_name {
            "order_placed" => {
                let products = self.lines(props.products, cur)?;
                EventKind::OrderPlaced {
                    order_id: order_id()?,
                    cart_id: owned(opt_str(props.cart_id, "properties.cart_id", 128)?),
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
            _ => EventKind::OrderRefunded {
                order_id: order_id()?,
                amount: self.req_money(props.amount, "properties.amount", cur)?,
            },
        })
    }

    /// An order's lines: an array of at most 1,000 products.
    fn lines(&self, raw: Raw<'_>, cur: Currency) -> Result<Vec<LineItem>, Invalid> {
        let Some(r) = present(raw) else {
            return Err(Invalid::missing("properties.products"));
        };
        let items: Vec<Raw<'_>> = serde_json::from_str(r.get())
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
            .collect()
    }

    /// An ad spend's properties: a channel's amount over a period.
    fn ad_spend(&self, props: &Props<'_>, cur: Currency) -> Result<EventKind, Invalid> {
        let range = self.opts.earliest_ms..self.opts.latest_ms;
        let start = period_bound(props.period_start, "properties.period_start", &range, 0)?;
        let end = period_bound(props.period_end, "properties.period_end", &range, DAY_MS)?;
        if end <= start {
            return Err(Invalid::new(
                Reason::OutOfRange,
                Some("properties.period_end"),
                "period_end must be after period_start",
            ));
        }
        Ok(EventKind::AdSpend {
            channel: req_str(props.channel, "properties.channel", 64)?.into(),
            campaign: owned(opt_str(props.campaign, "properties.campaign", 256)?),
            amount: self.req_money(props.amount, "properties.amount", cur)?,
            period_start_ms: start,
            period_end_ms: end,
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
            // A number, or an integer in a string (as some platforms send
            // it), or one written as a float (`2.0`, as pandas writes one).
            Some(q) => whole(&json_str(q).unwrap_or(Cow::Borrowed(q.get())), true)
                .and_then(|w| w.parse::<u32>().ok())
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
            product_id: req_str(p.product_id, field, 128)?.into(),
            price: self.req_money(p.price, field, cur)?,
            quantity,
        })
    }
}

/// The topic each event type belongs on.
fn expected_stream(type_name: &str) -> Result<Stream, Invalid> {
    Ok(match type_name {
        "page_view" | "product_view" | "add_to_cart" | "remove_from_cart" | "checkout_started"
        | "signup" | "referral_sent" | "survey_response" => Stream::Clickstream,
        "order_placed" | "order_paid" | "order_cancelled" | "order_refunded" => Stream::Orders,
        "ad_spend" => Stream::Spend,
        other => {
            return Err(Invalid::new(
                Reason::UnknownType,
                Some("type"),
                format!("unknown type {other:.64}"),
            ))
        }
    })
}

const DAY_MS: i64 = 86_400_000;

/// A bound of an ad spend's period: a timestamp, or a UTC date
/// (`2019-10-01`, what ad platforms report) standing for its midnight
/// plus `day_end` (a whole day for an end: platforms' date ranges include
/// their last day, so a day's report has the same start and end date).
fn period_bound(
    raw: Raw<'_>,
    field: &'static str,
    range: &std::ops::Range<i64>,
    day_end: i64,
) -> Result<i64, Invalid> {
    let date = present(raw)
        .and_then(json_str)
        .filter(|s| s.len() == 10)
        .and_then(|s| crate::time::parse_rfc3339(&format!("{s}T00:00:00Z")));
    let ms = match date {
        Some(midnight) => midnight + day_end,
        None => timestamp(raw, field, range.clone())?.ok_or_else(|| Invalid::missing(field))?,
    };
    if !range.contains(&ms) {
        return Err(super::raw::out_of_range(field, range));
    }
    Ok(ms)
}
