//! What several aggregator test files share.

/// A small deterministic generator (xorshift64*), so a failure names its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    #[allow(dead_code)] // not every test file draws bounded numbers
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

use aggregator::{Aggregator, AggregatorConfig, Output, Position, Source};
use contract::{Currency, Device, Event, EventKind, Money, Page};

/// 2019-10-01T00:00:00Z, a window start.
#[allow(dead_code)]
pub const T0: i64 = 1_569_888_000_000;
/// A minute, ms.
#[allow(dead_code)]
pub const MIN: i64 = 60_000;

/// `minor` units of `currency`.
#[allow(dead_code)]
pub fn money(minor: i64, currency: &str) -> Money {
    Money {
        minor,
        currency: Currency::parse(currency).expect("a currency"),
    }
}

/// An event `id` of `visitor` at `ts`: no user, no session id, no page, a
/// desktop browser.
#[allow(dead_code)]
pub fn event(id: &str, visitor: &str, ts: i64, kind: EventKind) -> Event {
    Event {
        event_id: id.into(),
        timestamp_ms: ts,
        anonymous_id: visitor.into(),
        user_id: None,
        session_id: None,
        page: None,
        campaign: None,
        device: Device::Desktop,
        experiment: None,
        kind,
    }
}

/// The page `path` of the test shop.
#[allow(dead_code)]
pub fn page(path: &str) -> Page {
    Page {
        path: path.into(),
        host: "shop.example".into(),
        referrer_host: None,
    }
}

/// Pushes `events` (offsets 0, 1, ... of `source`) into a fresh aggregator
/// with `cfg`, then advances it to each of `watermarks`; every row made.
#[allow(dead_code)]
pub fn run(cfg: AggregatorConfig, source: Source, events: &[Event], watermarks: &[i64]) -> Output {
    let mut agg = Aggregator::new(cfg);
    for (i, e) in events.iter().enumerate() {
        let pos = Position {
            source,
            offset: i as i64,
        };
        agg.push(e.clone(), pos).expect("accepted");
    }
    let mut out = Output::default();
    for w in watermarks {
        out.extend(agg.advance(*w));
    }
    out
}
