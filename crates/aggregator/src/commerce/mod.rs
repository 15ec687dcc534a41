//! Event-time windows of what is sold and said: products, orders and
//! revenue, feedback. Each is an aggregate of its own; checkpoints save them
//! together in one layout: the window length, the product cap and the
//! default currency, then the products', orders' and feedback's windows.

mod feedback;
mod orders;
mod products;

use std::collections::BTreeMap;

use crate::rows::{FeedbackRow, OrderWindowRow};

pub(crate) use feedback::Feedback;
pub(crate) use orders::OrderWindows;
pub(crate) use products::Products;

use orders::OrderKey;
use products::ProductWindow;

/// The first window start the watermark has not passed: windows before it
/// are final.
fn first_open(watermark_ms: i64, window_ms: i64) -> i64 {
    watermark_ms.saturating_sub(window_ms).saturating_add(1)
}

/// Products, orders and feedback per event-time window.
pub(crate) struct Commerce {
    pub(crate) products: Products,
    pub(crate) orders: OrderWindows,
    pub(crate) feedback: Feedback,
}

impl Commerce {
    /// Windows of `window_ms`, at most `max_products` products each (the
    /// rest under [`crate::OTHER`]); prices without a currency are in
    /// `default_currency`.
    pub(crate) fn new(window_ms: i64, max_products: usize, default_currency: &str) -> Self {
        let currency = default_currency.to_ascii_uppercase();
        Commerce {
            products: Products::new(window_ms, max_products.max(1), &currency),
            orders: OrderWindows::new(window_ms, &currency),
            feedback: Feedback::new(window_ms),
        }
    }
}

/// The checkpoint layout (field order is the format).
#[derive(serde::Deserialize)]
struct Layout {
    window_ms: i64,
    max_products: usize,
    default_currency: String,
    products: BTreeMap<i64, ProductWindow>,
    orders: BTreeMap<i64, BTreeMap<OrderKey, OrderWindowRow>>,
    feedback: BTreeMap<(i64, i32), FeedbackRow>,
}

/// [`Layout`], borrowed to write it.
#[derive(serde::Serialize)]
struct LayoutRef<'a> {
    window_ms: i64,
    max_products: usize,
    default_currency: &'a str,
    products: &'a BTreeMap<i64, ProductWindow>,
    orders: &'a BTreeMap<i64, BTreeMap<OrderKey, OrderWindowRow>>,
    feedback: &'a BTreeMap<(i64, i32), FeedbackRow>,
}

impl serde::Serialize for Commerce {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LayoutRef {
            window_ms: self.products.window_ms,
            max_products: self.products.max_products,
            default_currency: &self.products.default_currency,
            products: &self.products.windows,
            orders: &self.orders.windows,
            feedback: &self.feedback.windows,
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Commerce {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let l = Layout::deserialize(d)?;
        let mut c = Commerce::new(l.window_ms, l.max_products, &l.default_currency);
        c.products.windows = l.products;
        c.orders.windows = l.orders;
        c.feedback.windows = l.feedback;
        Ok(c)
    }
}
