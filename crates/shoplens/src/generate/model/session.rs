//! One visit: landing, browsing, the cart, checkout and order, and the
//! occasional signup, referral or survey answer. The order of random draws
//! is the traffic's definition: the same seed gives the same messages.

use contract::Stream;
use serde_json::{json, Value};

use super::{cents, Ctx, Generator};

impl Generator {
    /// Emits one session of a (new or returning) visitor starting at `start`.
    pub(super) fn session(&mut self, start: i64) {
        let vi = self.pick_visitor(start);
        let bot = self.rng.chance(self.cfg.bot_ratio);
        let ctx = self.session_context(vi, bot);
        if !bot {
            self.stats.sessions += 1;
        }
        let (url, referrer) = self.landing();
        let mut page = json!({ "url": url });
        if let Some(r) = referrer {
            page["referrer"] = json!(r);
        }
        let page = json!({ "context": { "page": page } });
        self.event(&ctx, start, "page_view", Stream::Clickstream, page);
        let mut walk = Walk {
            t: start,
            page_views: 1,
            engaged: false,
            cart: Vec::new(),
            cart_id: format!("cart-{}-{}", ctx.anonymous_id, self.seq),
        };
        self.browse(&ctx, &mut walk);
        self.stats.carts += u64::from(!bot && !walk.cart.is_empty());
        if !walk.cart.is_empty() && !self.rng.chance(self.cfg.cart_abandon_ratio) {
            self.checkout(&ctx, &mut walk);
        }
        self.extras(&ctx, vi, &mut walk);
        if !bot && walk.page_views < 2 && !walk.engaged && walk.t - start < 10_000 {
            self.stats.bounces += 1;
        }
        self.visitors[vi].last_ms = walk.t;
    }

    /// Who visits: ids, device, experiment arm. Half of the visitors come
    /// from a storefront that sends session ids.
    fn session_context(&mut self, vi: usize, bot: bool) -> Ctx {
        let device = if bot {
            "bot"
        } else {
            ["desktop", "mobile", "tablet"][self.rng.weighted(&[50, 42, 8])]
        };
        self.visitors[vi].sessions += 1;
        let v = &self.visitors[vi];
        let anon = v.anonymous_id.clone();
        let with_session_ids = vi.is_multiple_of(2);
        Ctx {
            session_id: with_session_ids.then(|| format!("{anon}-s{}", v.sessions)),
            user_id: v.user_id.clone(),
            anonymous_id: anon,
            device,
            experiment: (!vi.is_multiple_of(3)).then_some((
                "exp_checkout_button",
                if vi.is_multiple_of(2) { "A" } else { "B" },
            )),
            bot,
        }
    }

    /// Product pages, some products put in the cart, maybe one taken out.
    fn browse(&mut self, ctx: &Ctx, walk: &mut Walk) {
        let browse = if self.rng.chance(0.4) {
            0
        } else {
            self.rng.range(1, 12)
        };
        for _ in 0..browse {
            walk.t += self.rng.range(3_000, 90_000);
            let pi = self.rng.range(0, self.products.len() as i64 - 1) as usize;
            let (pid, cat, price) = {
                let p = &self.products[pi];
                (p.id.clone(), p.category, p.price_cents)
            };
            let url = format!("https://{}/product/{pid}", self.cfg.host);
            let page = json!({ "context": { "page": { "url": url } } });
            self.event(ctx, walk.t, "page_view", Stream::Clickstream, page);
            walk.page_views += 1;
            walk.t += self.rng.range(200, 2_000);
            let product = json!({ "product_id": pid, "category": cat, "price": cents(price) });
            let props = json!({ "properties": { "product": product } });
            self.event(ctx, walk.t, "product_view", Stream::Clickstream, props);
            walk.engaged = true;
            if self.rng.chance(0.18) {
                walk.t += self.rng.range(2_000, 30_000);
                let qty = self.rng.range(1, 3);
                let line = json!({ "product_id": pid, "price": cents(price), "quantity": qty });
                let props = json!({ "properties": { "cart_id": walk.cart_id, "product": line } });
                self.event(ctx, walk.t, "add_to_cart", Stream::Clickstream, props);
                walk.cart.push((pi, qty));
            }
        }
        if walk.cart.len() > 1 && self.rng.chance(0.3) {
            walk.t += self.rng.range(2_000, 20_000);
            let (pi, qty) = walk.cart.pop().expect("non-empty");
            let p = &self.products[pi];
            let line =
                json!({ "product_id": p.id, "price": cents(p.price_cents), "quantity": qty });
            let props = json!({ "properties": { "cart_id": walk.cart_id, "product": line } });
            self.event(ctx, walk.t, "remove_from_cart", Stream::Clickstream, props);
        }
    }

    /// Checkout, and most of the time an order, most of them paid.
    fn checkout(&mut self, ctx: &Ctx, walk: &mut Walk) {
        let bot = ctx.bot;
        let total: i64 = walk
            .cart
            .iter()
            .map(|(pi, q)| self.products[*pi].price_cents * q)
            .sum();
        walk.t += self.rng.range(5_000, 60_000);
        let props = json!({ "properties": { "cart_id": walk.cart_id, "value": cents(total) } });
        self.event(ctx, walk.t, "checkout_started", Stream::Clickstream, props);
        if !self.rng.chance(0.85) {
            return;
        }
        walk.t += self.rng.range(20_000, 240_000);
        let order_id = format!("order-{}-{}", self.cfg.seed, self.seq);
        let lines: Vec<Value> = walk
            .cart
            .iter()
            .map(|(pi, q)| {
                let p = &self.products[*pi];
                json!({ "product_id": p.id, "price": cents(p.price_cents), "quantity": q })
            })
            .collect();
        self.stats.orders += u64::from(!bot);
        if !bot {
            self.stats.revenue_minor += total;
            let customer = ctx
                .user_id
                .clone()
                .unwrap_or_else(|| ctx.anonymous_id.clone());
            if self.customers.insert(customer) {
                self.stats.customers += 1;
            }
        }
        let props = json!({ "properties": { "order_id": order_id, "cart_id": walk.cart_id, "total": cents(total), "currency": "USD", "products": lines } });
        self.event(ctx, walk.t, "order_placed", Stream::Orders, props);
        if self.rng.chance(0.9) {
            self.stats.paid += u64::from(!bot);
            walk.t += self.rng.range(10_000, 600_000);
            let props = json!({ "properties": { "order_id": order_id } });
            self.event(ctx, walk.t, "order_paid", Stream::Orders, props);
        }
    }

    /// Now and then a signup, a referral or a survey answer.
    fn extras(&mut self, ctx: &Ctx, vi: usize, walk: &mut Walk) {
        let anon = &ctx.anonymous_id;
        if self.rng.chance(0.04) {
            walk.t += self.rng.range(2_000, 30_000);
            let props = json!({ "properties": { "method": "email" } });
            self.event(ctx, walk.t, "signup", Stream::Clickstream, props);
            walk.engaged = true;
            self.visitors[vi].user_id = Some(format!("user-{anon}"));
        }
        if self.rng.chance(0.02) {
            walk.t += self.rng.range(2_000, 30_000);
            let props = json!({ "properties": { "referral_code": format!("ref-{anon}") } });
            self.event(ctx, walk.t, "referral_sent", Stream::Clickstream, props);
        }
        if self.rng.chance(0.03) {
            walk.t += self.rng.range(2_000, 30_000);
            let score = self.rng.range(0, 10);
            self.stats.surveys += u64::from(!ctx.bot);
            let props = json!({ "properties": { "survey": "nps", "score": score } });
            self.event(ctx, walk.t, "survey_response", Stream::Clickstream, props);
        }
    }
}

/// Where a session is: its clock, what it did, its cart.
struct Walk {
    t: i64,
    page_views: u32,
    engaged: bool,
    /// Products (index, quantity) in the cart.
    cart: Vec<(usize, i64)>,
    cart_id: String,
}
