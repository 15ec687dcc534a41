//! The decoded, validated event: what the aggregator consumes.

use crate::money::Money;

/// A string of the event: held inline up to 24 bytes (ids, hosts, paths,
/// most of what storefronts send), so a decoded event allocates only for
/// its longer strings.
pub type Text = compact_str::CompactString;

/// One valid storefront event, with event time already clock-skew corrected.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// Unique per event; repeats inside the dedup horizon are duplicates.
    pub event_id: Text,
    /// Event time, UTC epoch milliseconds.
    pub timestamp_ms: i64,
    /// The visitor's cookie or device id (the Kafka key).
    pub anonymous_id: Text,
    /// The customer's account id, once known.
    pub user_id: Option<Text>,
    /// The storefront's own session id, when it sends one.
    pub session_id: Option<Text>,
    /// Page context; required for `page_view`.
    pub page: Option<Page>,
    /// Campaign: `context.campaign`, else the URL's `utm_*` parameters;
    /// `None` when it has none. Boxed, as are experiments: most events
    /// carry neither, and an event is moved through the buffer whole (see
    /// [`Event::campaign`]). Checkpoints write it as a [`Campaign`] (empty
    /// when `None`), as before it was boxed.
    #[serde(with = "boxed_campaign")]
    pub campaign: Option<Box<Campaign>>,
    /// Device class; `Bot` events are kept out of business metrics.
    pub device: Device,
    /// A/B test assignment.
    pub experiment: Option<Box<Experiment>>,
    /// The type and its properties.
    pub kind: EventKind,
}

/// The campaign of an event that has none.
static NO_CAMPAIGN: Campaign = Campaign {
    source: None,
    medium: None,
    name: None,
    click_id: false,
};

impl Event {
    /// The event's campaign, empty when it has none.
    pub fn campaign(&self) -> &Campaign {
        self.campaign.as_deref().unwrap_or(&NO_CAMPAIGN)
    }

    /// The event's campaign to change (made empty when it had none).
    pub fn campaign_mut(&mut self) -> &mut Campaign {
        self.campaign.get_or_insert_with(Box::default)
    }
}

impl Campaign {
    /// Whether it has no field and no click id.
    pub fn is_empty(&self) -> bool {
        *self == NO_CAMPAIGN
    }

    /// `Some` unless empty: what [`Event::campaign`] holds.
    pub fn boxed(self) -> Option<Box<Campaign>> {
        (!self.is_empty()).then(|| Box::new(self))
    }
}

/// Writes an event's campaign as a [`Campaign`], empty for none, and reads
/// it back: the layout of checkpoints from before the campaign was boxed.
mod boxed_campaign {
    use super::Campaign;

    pub(super) fn serialize<S: serde::Serializer>(
        c: &Option<Box<Campaign>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(c.as_deref().unwrap_or(&super::NO_CAMPAIGN), s)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Box<Campaign>>, D::Error> {
        <Campaign as serde::Deserialize>::deserialize(d).map(Campaign::boxed)
    }
}

/// The page an event happened on.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// Path of the URL, without query or fragment (at most 512 bytes).
    pub path: Text,
    /// Host of the page URL, lower case.
    pub host: Text,
    /// Host of the referrer, lower case, when there is a referrer.
    pub referrer_host: Option<Text>,
}

/// Campaign parameters, from `context.campaign` or the URL's `utm_*`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Campaign {
    /// `utm_source`.
    pub source: Option<Text>,
    /// `utm_medium`.
    pub medium: Option<Text>,
    /// `utm_campaign` / `name`.
    pub name: Option<Text>,
    /// Whether the URL carried an ad click id (gclid, yclid, fbclid, ...).
    pub click_id: bool,
}

/// Device class of `context.device`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Device {
    /// No device given.
    #[default]
    Unknown,
    /// Desktop browser.
    Desktop,
    /// Phone.
    Mobile,
    /// Tablet.
    Tablet,
    /// A crawler or bot, counted apart.
    Bot,
}

impl Device {
    /// Stable label.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Unknown => "unknown",
            Device::Desktop => "desktop",
            Device::Mobile => "mobile",
            Device::Tablet => "tablet",
            Device::Bot => "bot",
        }
    }
}

/// A/B test assignment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Experiment {
    /// Experiment id.
    pub id: Text,
    /// Variant name.
    pub variant: Text,
}

/// A product as seen on a product view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Product {
    /// Product id.
    pub product_id: Text,
    /// Category, when given.
    pub category: Option<Text>,
    /// Unit price, when given.
    pub price: Option<Money>,
}

/// A cart or order line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LineItem {
    /// Product id.
    pub product_id: Text,
    /// Unit price.
    pub price: Money,
    /// Quantity, at least 1.
    pub quantity: u32,
}

/// Which survey a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Survey {
    /// Net Promoter Score, 0-10.
    Nps,
    /// Customer satisfaction, 1..=scale_max (default 5).
    Csat,
    /// Customer effort score, 1..=scale_max (default 7).
    Ces,
}

/// The event type and its type-specific properties.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum EventKind {
    /// A page was viewed.
    PageView,
    /// A product detail was viewed.
    ProductView {
        /// The product.
        product: Product,
    },
    /// Lines were added to a cart.
    AddToCart {
        /// Cart id.
        cart_id: Text,
        /// The line.
        line: LineItem,
    },
    /// Lines were removed from a cart.
    RemoveFromCart {
        /// Cart id.
        cart_id: Text,
        /// The line.
        line: LineItem,
    },
    /// Checkout began.
    CheckoutStarted {
        /// Cart id.
        cart_id: Text,
        /// Cart value, when sent.
        value: Option<Money>,
    },
    /// An account was created.
    Signup,
    /// A referral was sent.
    ReferralSent {
        /// Referral code.
        referral_code: Text,
    },
    /// A survey answer.
    SurveyResponse {
        /// Which survey.
        survey: Survey,
        /// The score as given.
        score: f64,
        /// The top of the scale.
        scale_max: f64,
    },
    /// An order was placed.
    OrderPlaced {
        /// Order id.
        order_id: Text,
        /// Cart it came from.
        cart_id: Option<Text>,
        /// Order total.
        total: Money,
        /// Referral code used.
        referral_code: Option<Text>,
        /// Lines.
        products: Vec<LineItem>,
    },
    /// An order was paid.
    OrderPaid {
        /// Order id.
        order_id: Text,
    },
    /// An order was cancelled.
    OrderCancelled {
        /// Order id.
        order_id: Text,
    },
    /// An order was refunded, in part or whole.
    OrderRefunded {
        /// Order id.
        order_id: Text,
        /// Refunded amount.
        amount: Money,
    },
    /// Ad spend of a channel over a period.
    AdSpend {
        /// Channel the money was spent on.
        channel: Text,
        /// Campaign, when given.
        campaign: Option<Text>,
        /// Amount spent.
        amount: Money,
        /// Start of the period (epoch ms).
        period_start_ms: i64,
        /// End of the period (epoch ms).
        period_end_ms: i64,
    },
}

impl EventKind {
    /// The contract's `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::PageView => "page_view",
            EventKind::ProductView { .. } => "product_view",
            EventKind::AddToCart { .. } => "add_to_cart",
            EventKind::RemoveFromCart { .. } => "remove_from_cart",
            EventKind::CheckoutStarted { .. } => "checkout_started",
            EventKind::Signup => "signup",
            EventKind::ReferralSent { .. } => "referral_sent",
            EventKind::SurveyResponse { .. } => "survey_response",
            EventKind::OrderPlaced { .. } => "order_placed",
            EventKind::OrderPaid { .. } => "order_paid",
            EventKind::OrderCancelled { .. } => "order_cancelled",
            EventKind::OrderRefunded { .. } => "order_refunded",
            EventKind::AdSpend { .. } => "ad_spend",
        }
    }

    /// Whether this is an order, payment, cancellation or refund: events of
    /// the `storefront.orders` topic, which a store's back end sends.
    pub fn is_order_lifecycle(&self) -> bool {
        matches!(
            self,
            EventKind::OrderPlaced { .. }
                | EventKind::OrderPaid { .. }
                | EventKind::OrderCancelled { .. }
                | EventKind::OrderRefunded { .. }
        )
    }

    /// Whether this event makes a session engaged (not a bounce) by itself.
    pub fn is_engagement(&self) -> bool {
        matches!(
            self,
            EventKind::ProductView { .. }
                | EventKind::AddToCart { .. }
                | EventKind::CheckoutStarted { .. }
                | EventKind::OrderPlaced { .. }
                | EventKind::Signup
        )
    }
}

/// Every `type` of the contract, in the order of the spec.
pub const EVENT_TYPES: [&str; 13] = [
    "page_view",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "checkout_started",
    "signup",
    "referral_sent",
    "survey_response",
    "order_placed",
    "order_paid",
    "order_cancelled",
    "order_refunded",
    "ad_spend",
];
