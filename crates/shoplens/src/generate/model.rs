//! Realistic storefront traffic as a deterministic iterator of Kafka messages.
//!
//! Visitors arrive as a Poisson process in event time. Each session lands on
//! a page from a channel (direct, search, social including VK and Telegram,
//! email, referral, paid), browses categories and products, may fill a cart,
//! check out, place and pay an order, or abandon the cart. Some visitors
//! return after more than 30 minutes; some are bots. Messages are emitted in
//! send order: event time plus a random delay (out of order, inside the
//! allowed lateness), with a share sent twice and a share of invalid extras.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use contract::time::format_rfc3339;
use contract::Stream;
use serde_json::{json, Value};

use super::rng::Rng;

mod session;

/// What traffic to make.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// PRNG seed.
    pub seed: u64,
    /// Event time of the first session (epoch ms).
    pub start_ms: i64,
    /// Event time span in which sessions start.
    pub duration_ms: i64,
    /// New sessions per minute of event time.
    pub sessions_per_minute: f64,
    /// Products in the catalogue.
    pub products: usize,
    /// Extra invalid messages per valid event.
    pub invalid_ratio: f64,
    /// Share of events sent twice.
    pub duplicate_ratio: f64,
    /// Largest delay between event time and send order.
    pub max_disorder_ms: i64,
    /// Share of carts that are abandoned.
    pub cart_abandon_ratio: f64,
    /// Share of sessions by bots.
    pub bot_ratio: f64,
    /// Share of sessions by a returning visitor.
    pub returning_ratio: f64,
    /// The store's host.
    pub host: String,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 1,
            start_ms: 1_700_000_000_000,
            duration_ms: 3_600_000,
            sessions_per_minute: 100.0,
            products: 500,
            invalid_ratio: 0.005,
            duplicate_ratio: 0.01,
            max_disorder_ms: 5_000,
            cart_abandon_ratio: 0.7,
            bot_ratio: 0.01,
            returning_ratio: 0.3,
            host: "shop.example".into(),
        }
    }
}

/// One message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Which topic.
    pub stream: Stream,
    /// Kafka key (the anonymous id).
    pub key: String,
    /// JSON payload.
    pub payload: Vec<u8>,
    /// Event time (for pacing).
    pub ts_ms: i64,
}

/// What the generator made, for checking the pipeline's numbers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GenStats {
    /// Messages emitted.
    pub messages: u64,
    /// Distinct valid events from humans.
    pub valid_events: u64,
    /// Valid events from bots.
    pub bot_events: u64,
    /// Repeated sends of an already sent event.
    pub duplicates: u64,
    /// Invalid messages.
    pub invalid: u64,
    /// Human sessions started.
    pub sessions: u64,
    /// Their page views.
    pub page_views: u64,
    /// Sessions that bounced by the spec's rule.
    pub bounces: u64,
    /// Orders placed (by humans).
    pub orders: u64,
    /// Of those, orders paid.
    pub paid: u64,
    /// Their gross revenue, minor units (USD).
    pub revenue_minor: i64,
    /// Carts with items (by humans); each is ordered or abandoned.
    pub carts: u64,
    /// Survey answers (by humans).
    pub surveys: u64,
    /// Distinct customers (user id once known, else visitor) with an order.
    pub customers: u64,
    /// Largest event time of any valid event.
    pub max_event_ms: i64,
}

const CATEGORIES: [&str; 8] = [
    "electronics.smartphone",
    "electronics.audio",
    "appliances.kitchen",
    "computers.notebook",
    "apparel.shoes",
    "furniture.living_room",
    "kids.toys",
    "sport.bicycle",
];

struct Product {
    id: String,
    category: &'static str,
    price_cents: i64,
}

struct Visitor {
    anonymous_id: String,
    user_id: Option<String>,
    last_ms: i64,
    sessions: u32,
}

struct Queued {
    order: (i64, u64),
    msg: Message,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.order == o.order
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.order.cmp(&o.order)
    }
}

/// The traffic iterator. See the module docs.
pub struct Generator {
    cfg: GenConfig,
    rng: Rng,
    products: Vec<Product>,
    visitors: Vec<Visitor>,
    next_session_ms: f64,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    next_visitor: u64,
    customers: std::collections::HashSet<String>,
    stats: GenStats,
}

/// Per-session context shared by its events.
struct Ctx {
    anonymous_id: String,
    user_id: Option<String>,
    session_id: Option<String>,
    device: &'static str,
    experiment: Option<(&'static str, &'static str)>,
    bot: bool,
}

impl Generator {
    /// A generator for `cfg`.
    pub fn new(cfg: GenConfig) -> Self {
        let mut rng = Rng::new(cfg.seed);
        let products = (0..cfg.products.max(1))
            .map(|i| Product {
                id: format!("p{}", 1_000_000 + i),
                category: CATEGORIES[rng.range(0, CATEGORIES.len() as i64 - 1) as usize],
                price_cents: rng.range(199, 99_999),
            })
            .collect();
        Generator {
            next_session_ms: cfg.start_ms as f64,
            cfg,
            rng,
            products,
            visitors: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            next_visitor: 0,
            customers: std::collections::HashSet::new(),
            stats: GenStats::default(),
        }
    }

    /// What was made so far.
    pub fn stats(&self) -> GenStats {
        self.stats
    }

    fn push(&mut self, stream: Stream, key: &str, ts_ms: i64, payload: Vec<u8>) {
        let delay = self.rng.range(0, self.cfg.max_disorder_ms.max(0));
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            order: (ts_ms + delay, self.seq),
            msg: Message {
                stream,
                key: key.to_string(),
                payload,
                ts_ms,
            },
        }));
    }

    fn event(&mut self, ctx: &Ctx, ts: i64, kind: &str, stream: Stream, extra: Value) {
        self.seq += 1;
        let mut e = json!({
            "event_id": format!("{}-{}-{}", self.cfg.seed, ctx.anonymous_id, self.seq),
            "type": kind,
            "timestamp": format_rfc3339(ts),
            "anonymous_id": ctx.anonymous_id,
            "context": { "device": ctx.device },
        });
        if let Some(u) = &ctx.user_id {
            e["user_id"] = json!(u);
        }
        if let (Some(s), Stream::Clickstream) = (&ctx.session_id, stream) {
            e["session_id"] = json!(s);
        }
        if let Some((id, variant)) = ctx.experiment {
            e["context"]["experiment"] = json!({ "id": id, "variant": variant });
        }
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                if k == "context" {
                    if let Value::Object(c) = v {
                        for (ck, cv) in c {
                            e["context"][ck] = cv;
                        }
                    }
                } else {
                    e[k] = v;
                }
            }
        }
        let payload = serde_json::to_vec(&e).expect("json");
        if ctx.bot {
            self.stats.bot_events += 1;
        } else {
            self.stats.valid_events += 1;
            if kind == "page_view" {
                self.stats.page_views += 1;
            }
        }
        self.stats.max_event_ms = self.stats.max_event_ms.max(ts);
        if self.rng.chance(self.cfg.duplicate_ratio) {
            self.stats.duplicates += 1;
            self.push(stream, &ctx.anonymous_id, ts, payload.clone());
        }
        if self.rng.chance(self.cfg.invalid_ratio) {
            self.stats.invalid += 1;
            let bad = self.invalid(ctx, ts);
            self.push(stream, &ctx.anonymous_id, ts, bad);
        }
        self.push(stream, &ctx.anonymous_id, ts, payload);
    }

    fn invalid(&mut self, ctx: &Ctx, ts: i64) -> Vec<u8> {
        let v = match self.rng.range(0, 5) {
            0 => return b"{\"event_id\": \"truncated".to_vec(),
            1 => json!({ "type": "page_view", "timestamp": ts, "anonymous_id": ctx.anonymous_id }),
            2 => {
                json!({ "event_id": format!("bad-{}", self.seq), "type": "teleport", "timestamp": ts, "anonymous_id": ctx.anonymous_id })
            }
            3 => {
                json!({ "event_id": format!("bad-{}", self.seq), "type": "page_view", "timestamp": "yesterday", "anonymous_id": ctx.anonymous_id, "context": {"page": {"url": "/"}} })
            }
            4 => {
                json!({ "event_id": format!("bad-{}", self.seq), "type": "add_to_cart", "timestamp": ts, "anonymous_id": ctx.anonymous_id, "properties": {"cart_id": "c", "product": {"product_id": "p", "price": -5}} })
            }
            _ => json!([1, 2, 3]),
        };
        serde_json::to_vec(&v).expect("json")
    }

    fn pick_visitor(&mut self, start: i64) -> usize {
        if !self.visitors.is_empty() && self.rng.chance(self.cfg.returning_ratio) {
            let i = self.rng.range(0, self.visitors.len() as i64 - 1) as usize;
            // Only a visitor silent for over 30 minutes starts a new session.
            if self.visitors[i].last_ms + 31 * 60_000 < start {
                return i;
            }
        }
        self.next_visitor += 1;
        let visitor = Visitor {
            anonymous_id: format!("anon-{}-{}", self.cfg.seed, self.next_visitor),
            user_id: None,
            last_ms: 0,
            sessions: 0,
        };
        if self.visitors.len() >= 50_000 {
            let i = self.rng.range(0, self.visitors.len() as i64 - 1) as usize;
            self.visitors[i] = visitor;
            i
        } else {
            self.visitors.push(visitor);
            self.visitors.len() - 1
        }
    }

    fn landing(&mut self) -> (String, Option<String>) {
        const CHANNELS: [u32; 10] = [25, 18, 10, 12, 7, 5, 8, 7, 5, 3];
        let path = match self.rng.range(0, 3) {
            0 => "/".to_string(),
            1 => format!("/category/{}", CATEGORIES[self.rng.range(0, 7) as usize]),
            2 => format!(
                "/product/{}",
                self.products[self.rng.range(0, self.products.len() as i64 - 1) as usize].id
            ),
            _ => "/sale".to_string(),
        };
        let base = format!("https://{}{}", self.cfg.host, path);
        let (query, referrer) = match self.rng.weighted(&CHANNELS) {
            0 => ("", None),
            1 => ("", Some("https://www.google.com/")),
            2 => ("", Some("https://yandex.ru/search/?text=shop")),
            3 => (
                "?utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=abc",
                Some("https://www.google.com/"),
            ),
            4 => ("", Some("https://vk.com/feed")),
            5 => ("", Some("https://t.me/s/deals")),
            6 => (
                "?utm_source=newsletter&utm_medium=email&utm_campaign=weekly",
                None,
            ),
            7 => ("", Some("https://blog.example.org/review")),
            8 => (
                "?utm_source=vk&utm_medium=paid_social&utm_campaign=retarget",
                Some("https://vk.com/"),
            ),
            _ => ("", Some("https://dzen.ru/a/123")),
        };
        (format!("{base}{query}"), referrer.map(str::to_string))
    }
}

fn cents(c: i64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

impl Iterator for Generator {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        let end = (self.cfg.start_ms + self.cfg.duration_ms) as f64;
        let mean = 60_000.0 / self.cfg.sessions_per_minute.max(1e-6);
        loop {
            let head = self.queue.peek().map(|Reverse(q)| q.order.0 as f64);
            let start_next =
                self.next_session_ms < end && head.is_none_or(|h| h >= self.next_session_ms);
            if !start_next {
                break;
            }
            let at = self.next_session_ms as i64;
            self.session(at);
            self.next_session_ms += self.rng.exp(mean).max(1.0);
        }
        let Reverse(q) = self.queue.pop()?;
        self.stats.messages += 1;
        Some(q.msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::Decoder;

    fn cfg() -> GenConfig {
        GenConfig {
            duration_ms: 20 * 60_000,
            sessions_per_minute: 30.0,
            ..GenConfig::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_traffic() {
        let a: Vec<Message> = Generator::new(cfg()).collect();
        let b: Vec<Message> = Generator::new(cfg()).collect();
        assert_eq!(a, b);
        let c: Vec<Message> = Generator::new(GenConfig { seed: 2, ..cfg() }).collect();
        assert_ne!(a, c);
    }

    #[test]
    fn every_message_is_accounted_for_by_the_contract() {
        let mut g = Generator::new(cfg());
        let d = Decoder::default();
        let (mut valid, mut invalid) = (0u64, 0u64);
        let mut ids = std::collections::HashSet::new();
        let mut max_disorder = 0i64;
        let mut max_seen = 0;
        for m in g.by_ref() {
            match d.decode(&m.payload, m.stream, None) {
                Ok(e) => {
                    assert_eq!(e.anonymous_id, m.key);
                    max_disorder = max_disorder.max(max_seen - e.timestamp_ms);
                    max_seen = max_seen.max(e.timestamp_ms);
                    if ids.insert(e.event_id) {
                        valid += 1;
                    }
                }
                Err(_) => invalid += 1,
            }
        }
        let s = g.stats();
        assert_eq!(valid, s.valid_events + s.bot_events);
        assert_eq!(invalid, s.invalid);
        assert_eq!(s.messages, valid + invalid + s.duplicates);
        assert!(
            s.sessions > 400 && s.orders > 0 && s.invalid > 0 && s.duplicates > 0,
            "{s:?}"
        );
        assert!(
            max_disorder > 0 && max_disorder <= 5_000,
            "disorder {max_disorder}"
        );
    }
}
