//! Fuzzes the contract decoder: no input may panic it, whatever it
//! accepts must satisfy the contract's invariants, and the one-pass reader
//! must give what serde_json alone gives (the same event or rejection).
#![no_main]

use contract::{Decoder, EventKind, Stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoder = Decoder::default();
    let kafka_ts = data.first().map(|b| i64::from(*b) * 1_000_000_000_000 / 255);
    for stream in [Stream::Clickstream, Stream::Orders, Stream::Spend] {
        let decoded = decoder.decode(data, stream, kafka_ts);
        assert_eq!(decoded, decoder.decode_by_serde_json(data, stream, kafka_ts));
        let Ok(e) = decoded else { continue };
        let id_len = e.event_id.chars().count();
        assert!((1..=128).contains(&id_len));
        assert!((1..=128).contains(&e.anonymous_id.chars().count()));
        assert!((contract::time::MIN_MS..contract::time::MAX_MS).contains(&e.timestamp_ms));
        if let Some(p) = &e.page {
            assert!(p.path.len() <= 512);
        }
        let amounts: Vec<i64> = match &e.kind {
            EventKind::OrderPlaced { total, products, .. } => {
                std::iter::once(total.minor).chain(products.iter().map(|l| l.price.minor)).collect()
            }
            EventKind::OrderRefunded { amount, .. } | EventKind::AdSpend { amount, .. } => vec![amount.minor],
            EventKind::AddToCart { line, .. } | EventKind::RemoveFromCart { line, .. } => vec![line.price.minor],
            _ => vec![],
        };
        assert!(amounts.iter().all(|m| *m >= 0), "money is never negative");
    }
});
