//! The message as read: every field a borrowed raw JSON value, checked on
//! its own by the decoder, and the helpers that read one field each
//! (strings, timestamps, numbers), naming the field when they reject it.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::reason::{Invalid, Reason};
use crate::time::parse_rfc3339;

/// A field as read: its JSON text, or `None` when absent or `null`.
pub(super) type Raw<'a> = Option<Json<'a>>;

/// A field's JSON text as it stands in the message (what serde_json's
/// `RawValue` gives), with whether the reader already knows it holds no
/// escape, so that reading its string need not look for one again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Json<'a> {
    text: &'a str,
    plain: bool,
}

impl<'a> Json<'a> {
    /// The text of a value that holds no backslash (checked by the reader).
    pub(super) fn plain(text: &'a str) -> Self {
        Json { text, plain: true }
    }

    /// The value's JSON text.
    pub(super) fn get(self) -> &'a str {
        self.text
    }
}

/// Values are equal when their text is: how they were read does not matter.
impl PartialEq for Json<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(d).map(|r| Json {
            text: r.get(),
            plain: false,
        })
    }
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct Envelope<'a> {
    #[serde(borrow, default)]
    pub(super) event_id: Raw<'a>,
    #[serde(borrow, default, rename = "type")]
    pub(super) kind: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) timestamp: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) sent_at: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) anonymous_id: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) user_id: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) session_id: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) context: Nested<Context<'a>>,
    #[serde(borrow, default)]
    pub(super) properties: Nested<Props<'a>>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct Context<'a> {
    #[serde(borrow, default)]
    pub(super) page: Nested<PageRaw<'a>>,
    #[serde(borrow, default)]
    pub(super) campaign: Nested<CampaignRaw<'a>>,
    #[serde(borrow, default)]
    pub(super) device: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) experiment: Nested<ExperimentRaw<'a>>,
}

#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq)]
pub(super) struct PageRaw<'a> {
    #[serde(borrow, default)]
    pub(super) url: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) referrer: Raw<'a>,
}

#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq)]
pub(super) struct CampaignRaw<'a> {
    #[serde(borrow, default)]
    pub(super) source: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) medium: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) name: Raw<'a>,
}

#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq)]
pub(super) struct ExperimentRaw<'a> {
    #[serde(borrow, default)]
    pub(super) id: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) variant: Raw<'a>,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
pub(super) struct Props<'a> {
    #[serde(borrow, default)]
    pub(super) currency: Raw<'a>,
    /// Read in the envelope's pass, not re-parsed from raw text.
    #[serde(borrow, default)]
    pub(super) product: Nested<ProductRaw<'a>>,
    #[serde(borrow, default)]
    pub(super) products: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) cart_id: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) order_id: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) value: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) total: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) amount: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) referral_code: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) survey: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) score: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) scale_max: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) channel: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) campaign: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) period_start: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) period_end: Raw<'a>,
}

#[derive(Deserialize, Default, Clone, Copy, Debug, PartialEq)]
pub(super) struct ProductRaw<'a> {
    #[serde(borrow, default)]
    pub(super) product_id: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) category: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) price: Raw<'a>,
    #[serde(borrow, default)]
    pub(super) quantity: Raw<'a>,
}

/// A nested object read in the same pass as its parent (its own fields stay
/// raw), so no byte of the message is parsed twice. Absent or `null` is
/// [`Nested::Absent`]; any other JSON type is kept as [`Nested::NotObject`]
/// for the decoder to reject with the field's name.
#[derive(Default, Clone, Copy, Debug, PartialEq)]
pub(super) enum Nested<T> {
    #[default]
    Absent,
    Object(T),
    NotObject,
}

impl<T: Default> Nested<T> {
    /// The object, its default when absent, or a wrong-type rejection of `field`.
    pub(super) fn get(self, field: &'static str) -> Result<T, Invalid>
    where
        T: Copy,
    {
        Ok(self.present(field)?.unwrap_or_default())
    }

    /// The object in place if present (`None` when absent), or a
    /// wrong-type rejection: for the large ones, which are not copied.
    pub(super) fn in_place(&self, field: &'static str) -> Result<Option<&T>, Invalid> {
        match self {
            Nested::Absent => Ok(None),
            Nested::Object(t) => Ok(Some(t)),
            Nested::NotObject => Err(Invalid::wrong_type(field, "object")),
        }
    }

    /// The object if present (`None` when absent), or a wrong-type rejection.
    pub(super) fn present(self, field: &'static str) -> Result<Option<T>, Invalid>
    where
        T: Copy,
    {
        self.in_place(field).map(Option::<&T>::copied)
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
pub(super) fn present(raw: Raw<'_>) -> Raw<'_> {
    raw.filter(|r| !matches!(r.get(), "null" | "\"\""))
}

/// Parses a nested object field, absent or null giving the default.
pub(super) fn object<'a, T: Deserialize<'a> + Default>(
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
pub(super) fn json_str(r: Json<'_>) -> Option<Cow<'_, str>> {
    let text = r.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if !r.plain && inner.contains('\\') {
        serde_json::from_str(text).ok()
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// An optional string of at most `max` characters; empty means absent (see
/// [`present`]).
pub(super) fn opt_str<'a>(
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

pub(super) fn req_str<'a>(
    raw: Raw<'a>,
    field: &'static str,
    max: usize,
) -> Result<Cow<'a, str>, Invalid> {
    opt_str(raw, field, max)?.ok_or_else(|| Invalid::missing(field))
}

pub(super) fn owned(s: Option<Cow<'_, str>>) -> Option<crate::event::Text> {
    s.map(crate::event::Text::from)
}

/// `s` in ASCII lower case.
pub(super) fn lower(s: &str) -> crate::event::Text {
    let mut t = crate::event::Text::new(s);
    t.make_ascii_lowercase();
    t
}

/// A timestamp: RFC 3339 string with offset, or integer epoch milliseconds,
/// inside `range` (the configured accepted event times).
pub(super) fn timestamp(
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
        // Epoch milliseconds; a fraction (a float's `.0`, as pandas writes
        // one) is truncated, as an RFC 3339 fraction past milliseconds is.
        whole(text, false)
            .and_then(|w| w.parse::<i64>().ok())
            .ok_or_else(bad)?
    };
    if !range.contains(&ms) {
        return Err(out_of_range(field, &range));
    }
    Ok(Some(ms))
}

/// The whole part of a decimal number's text (`12` of `12.0`), when what
/// follows it is a fraction of digits: only zeros when `exact` is set.
/// An exponent form is not read.
pub(super) fn whole(text: &str, exact: bool) -> Option<&str> {
    let (int, frac) = text.split_once('.').unwrap_or((text, "0"));
    let ok = !frac.is_empty()
        && frac
            .bytes()
            .all(|c| if exact { c == b'0' } else { c.is_ascii_digit() });
    ok.then_some(int)
}

/// The rejection of a time outside the accepted range, naming the settings.
pub(super) fn out_of_range(field: &'static str, range: &std::ops::Range<i64>) -> Invalid {
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
pub(super) fn number_text<'a>(r: Json<'a>, field: &'static str) -> Result<Cow<'a, str>, Invalid> {
    let text = r.get();
    if text.starts_with('"') {
        json_str(r).ok_or_else(|| Invalid::wrong_type(field, "number"))
    } else if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        Ok(Cow::Borrowed(text))
    } else {
        Err(Invalid::wrong_type(field, "number or decimal string"))
    }
}
