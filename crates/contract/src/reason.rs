//! Why a message was rejected: a bounded set of reasons, safe as metric labels.

use std::fmt;

/// The reason a message is dead-lettered. Each has a stable label used in
/// dead-letter headers and in the `reason` label of metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Larger than [`crate::MAX_MESSAGE_BYTES`].
    Oversized,
    /// Not UTF-8 or not parseable JSON.
    NotJson,
    /// Valid JSON but not an object.
    NotObject,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type or breaks a length limit.
    WrongType,
    /// `type` names no event of the contract.
    UnknownType,
    /// The event type does not belong on the topic it arrived on.
    WrongTopic,
    /// `timestamp` or `sent_at` is not RFC 3339 or epoch milliseconds in range.
    BadTimestamp,
    /// A money amount is negative, unparsable, too precise or too large.
    BadAmount,
    /// A currency that the configuration does not accept.
    BadCurrency,
    /// A value outside its allowed set or range (device, survey score, ...).
    OutOfRange,
    /// Older than the pipeline's watermark on arrival.
    Late,
}

impl Reason {
    /// Every reason, for pre-registering metric series.
    pub const ALL: [Reason; 12] = [
        Reason::Oversized,
        Reason::NotJson,
        Reason::NotObject,
        Reason::MissingField,
        Reason::WrongType,
        Reason::UnknownType,
        Reason::WrongTopic,
        Reason::BadTimestamp,
        Reason::BadAmount,
        Reason::BadCurrency,
        Reason::OutOfRange,
        Reason::Late,
    ];

    /// The stable label of this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Oversized => "oversized",
            Reason::NotJson => "not_json",
            Reason::NotObject => "not_object",
            Reason::MissingField => "missing_field",
            Reason::WrongType => "wrong_type",
            Reason::UnknownType => "unknown_type",
            Reason::WrongTopic => "wrong_topic",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::BadAmount => "bad_amount",
            Reason::BadCurrency => "bad_currency",
            Reason::OutOfRange => "out_of_range",
            Reason::Late => "late",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected message: the reason, the field at fault and a human detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}{}: {detail}", field.map(|f| format!(" ({f})")).unwrap_or_default())]
pub struct Invalid {
    /// The bounded reason.
    pub reason: Reason,
    /// The JSON path of the offending field, when one is at fault.
    pub field: Option<&'static str>,
    /// What was wrong, for people reading the dead-letter topic.
    pub detail: String,
    /// The message's event time when it has a valid one although the
    /// message is rejected for another reason (a currency not accepted,
    /// say): its partition's clock still moves with it, as with an event
    /// accepted. `None` when the time itself is at fault or unread.
    pub event_ms: Option<i64>,
}

impl Invalid {
    /// A rejection for `reason` at `field`.
    pub fn new(reason: Reason, field: Option<&'static str>, detail: impl Into<String>) -> Self {
        Invalid {
            reason,
            field,
            detail: detail.into(),
            event_ms: None,
        }
    }

    /// A required field is absent.
    pub fn missing(field: &'static str) -> Self {
        Invalid::new(
            Reason::MissingField,
            Some(field),
            "required field is missing",
        )
    }

    /// A field has the wrong type.
    pub fn wrong_type(field: &'static str, expected: &str) -> Self {
        Invalid::new(
            Reason::WrongType,
            Some(field),
            format!("expected {expected}"),
        )
    }
}
