//! Product windows: views, cart adds, purchases and revenue per product,
//! in the currency of its price, at most a capped number of products per
//! window (the rest under [`OTHER`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use contract::time::window_start;
use contract::{Currency, EventKind};
use hashbrown::hash_map::RawEntryMut;

use crate::aggregate::{Aggregate, Applied};
use crate::hash::State;
use crate::intern::Interner;
use crate::offsets::HeldOffsets;
use crate::pages::OTHER;
use crate::rows::ProductRow;
use crate::Output;

/// One product's counts in one window.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ProductAcc {
    views: u64,
    cart_adds: u64,
    purchases: u64,
    revenue_minor: i64,
}

/// (product id, currency, partition): shared copies, so a product counted
/// in many windows is allocated once (the checkpoint writes the strings).
pub(super) type ProductKey = (Arc<str>, Arc<str>, i32);

/// One window's products. hashbrown's map rather than std's, to look a
/// product up by its strings ([`Probe`]) and intern them only when it is
/// new to the window; checkpoints hold a map either way.
pub(super) type ProductWindow = hashbrown::HashMap<ProductKey, ProductAcc, State>;

/// A [`ProductKey`] by the event's strings. It hashes as the key does (a
/// tuple hashes its fields in order, and an `Arc<str>` as its `str`).
#[derive(Hash)]
struct Probe<'a>(&'a str, &'a str, i32);

impl hashbrown::Equivalent<ProductKey> for Probe<'_> {
    fn equivalent(&self, k: &ProductKey) -> bool {
        self.2 == k.2 && *self.0 == *k.0 && *self.1 == *k.1
    }
}

/// The product windows.
pub(crate) struct Products {
    pub(super) window_ms: i64,
    pub(super) max_products: usize,
    pub(super) default_currency: String,
    /// A hash table per window; rows are sorted when they leave.
    pub(super) windows: BTreeMap<i64, ProductWindow>,
    /// Product ids and currencies, shared between windows.
    strings: Interner,
}

impl Products {
    pub(super) fn new(window_ms: i64, max_products: usize, default_currency: &str) -> Self {
        Products {
            window_ms,
            max_products,
            default_currency: default_currency.to_string(),
            windows: BTreeMap::new(),
            strings: Interner::default(),
        }
    }

    /// The window's counts for a product, priced in `currency` (the
    /// default currency when `None`).
    fn product(
        &mut self,
        w: i64,
        product_id: &str,
        currency: Option<Currency>,
        partition: i32,
    ) -> &mut ProductAcc {
        let currency = match &currency {
            Some(c) => c.as_str(),
            None => &self.default_currency,
        };
        let win = self.windows.entry(w).or_default();
        let full = win.len() >= self.max_products;
        let id = if full && !win.contains_key(&Probe(product_id, currency, partition)) {
            OTHER
        } else {
            product_id
        };
        // A product the window has: one lookup, no reference counts.
        match win
            .raw_entry_mut()
            .from_key(&Probe(id, currency, partition))
        {
            RawEntryMut::Occupied(o) => o.into_mut(),
            RawEntryMut::Vacant(v) => {
                let key = (self.strings.get(id), self.strings.get(currency), partition);
                v.insert(key, ProductAcc::default()).1
            }
        }
    }
}

impl Aggregate for Products {
    fn apply(&mut self, a: &Applied<'_>, _held: &mut HeldOffsets, _out: &mut Output) {
        let e = a.event;
        let partition = a.pos.source.partition;
        let w = window_start(e.timestamp_ms, self.window_ms);
        match &e.kind {
            EventKind::ProductView { product } => {
                let cur = product.price.map(|p| p.currency);
                self.product(w, &product.product_id, cur, partition).views += 1;
            }
            EventKind::AddToCart { line, .. } => {
                let cur = Some(line.price.currency);
                self.product(w, &line.product_id, cur, partition).cart_adds +=
                    u64::from(line.quantity);
            }
            EventKind::OrderPlaced { products, .. } => {
                for line in products {
                    let cur = Some(line.price.currency);
                    let p = self.product(w, &line.product_id, cur, partition);
                    p.purchases += u64::from(line.quantity);
                    let amount = line.price.minor.saturating_mul(i64::from(line.quantity));
                    p.revenue_minor = p.revenue_minor.saturating_add(amount);
                }
            }
            _ => {}
        }
    }

    /// Rows of every window the watermark has passed, once each, sorted.
    fn flush(&mut self, watermark_ms: i64, out: &mut Output) {
        let cut = super::first_open(watermark_ms, self.window_ms);
        let keep = self.windows.split_off(&cut);
        for (w, win) in std::mem::replace(&mut self.windows, keep) {
            let mut win: Vec<_> = win.into_iter().collect();
            win.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for ((product_id, currency, partition), a) in win {
                out.products.push(ProductRow {
                    window_start_ms: w,
                    product_id,
                    currency,
                    partition,
                    views: a.views,
                    cart_adds: a.cart_adds,
                    purchases: a.purchases,
                    revenue_minor: a.revenue_minor,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_hashes_and_compares_as_its_key() {
        use std::hash::BuildHasher;
        let state = State::default();
        let key: ProductKey = (Arc::from("sku-1"), Arc::from("EUR"), 3);
        let probe = Probe("sku-1", "EUR", 3);
        assert_eq!(state.hash_one(&probe), state.hash_one(&key));
        assert!(hashbrown::Equivalent::equivalent(&probe, &key));
        for other in [
            Probe("sku-2", "EUR", 3),
            Probe("sku-1", "USD", 3),
            Probe("sku-1", "EUR", 4),
        ] {
            assert!(!hashbrown::Equivalent::equivalent(&other, &key));
        }
    }

    #[test]
    fn products_past_the_cap_count_as_other_in_their_currency() {
        let mut c = Products::new(60_000, 2, "USD");
        let decoder = contract::Decoder::default();
        let view = |id: usize, product: &str, price: &str| {
            let json = format!(
                r#"{{"event_id":"e{id}","type":"product_view","timestamp":1569888005000,"anonymous_id":"a","properties":{{"product":{{"product_id":"{product}"{price}}}}}}}"#
            );
            decoder
                .decode(json.as_bytes(), contract::Stream::Clickstream, None)
                .expect("valid")
        };
        let views = [
            view(1, "p1", ""),
            view(2, "p2", r#","price":"1.00""#),
            view(3, "p3", ""),
            view(4, "p1", ""),
            view(5, "p4", ""),
        ];
        let mut held = HeldOffsets::default();
        let mut out = Output::default();
        for e in &views {
            let pos = crate::Position {
                source: crate::Source {
                    stream: 0,
                    partition: 0,
                },
                offset: 0,
            };
            let applied = Applied {
                event: e,
                pos,
                channel: crate::Channel::Direct,
                order_total: None,
                customer: None,
                session: None,
                seen: Default::default(),
            };
            c.apply(&applied, &mut held, &mut out);
        }
        c.flush(i64::MAX / 2, &mut out);
        let mut rows: Vec<_> = out
            .products
            .into_iter()
            .map(|r| (r.product_id.to_string(), r.currency.to_string(), r.views))
            .collect();
        rows.sort();
        let want = [(OTHER, "USD", 2), ("p1", "USD", 2), ("p2", "USD", 1)];
        let want: Vec<_> = want
            .iter()
            .map(|(p, c, n)| (p.to_string(), c.to_string(), *n))
            .collect();
        assert_eq!(rows, want);
    }
}
