//! The pipeline's internal topic formats: what one instance writes for
//! another to read. The customer-facts topic carries customer facts, keyed
//! by customer, and each input partition's watermark markers, keyed by
//! partition, as JSON. The aggregator maps its facts to and from
//! [`FactWire`]; this module only fixes the bytes.

use serde::{Deserialize, Serialize};

/// A customer fact as the facts topic carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactWire {
    /// The customer (user id, else visitor id): also the message key.
    pub customer_id: String,
    /// `order`, `paid`, `cancel` or `refund`.
    pub kind: String,
    /// The order it is about.
    pub order_id: String,
    /// Event time, ms.
    pub ts_ms: i64,
    /// Amount in minor units of `currency`.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The channel label of the visitor's session.
    pub channel: String,
    /// For an order: what the visitor's side knows of it. Absent in facts
    /// written before the `orders` table, and in other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Box<OrderDetail>>,
}

/// What the visitor's side knows of an order when it is placed, for its row
/// in the `orders` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDetail {
    /// The visitor who placed it.
    pub anonymous_id: String,
    /// The id of the session it was placed in (as the `sessions` table has it).
    pub session_id: String,
    /// Items ordered: the sum of the line items' quantities.
    pub items: u64,
    /// The session's experiment, empty when none.
    pub experiment_id: String,
    /// The session's variant, empty when none.
    pub variant: String,
    /// The channel labels of the visitor's touches within the attribution
    /// window, oldest first (none from an order-only feed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub touches: Vec<String>,
    /// Start of the visitor's first session remembered (none without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_session_ms: Option<i64>,
    /// Sessions the visitor started from then to the order, its own
    /// included.
    #[serde(default)]
    pub sessions: u32,
}

/// An input partition's watermark, written to every facts partition after
/// each durable batch by whichever instance owns the input partition: every
/// fact still to come from it is of an event at or after `watermark_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The input (clickstream and orders) partition.
    pub partition: i32,
    /// Its watermark.
    pub watermark_ms: i64,
}

/// What a message of the facts topic holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactMessage {
    /// A customer fact.
    Fact(FactWire),
    /// A producer's watermark.
    Marker(Marker),
}

/// The Kafka key (the customer) and payload of a fact.
pub fn encode_fact(f: &FactWire) -> (String, Vec<u8>) {
    let payload = serde_json::to_vec(f).unwrap_or_default();
    (f.customer_id.clone(), payload)
}

/// The Kafka key (the input partition) and payload of a marker.
pub fn encode_marker(m: &Marker) -> (String, Vec<u8>) {
    let payload = serde_json::to_vec(m).unwrap_or_default();
    (format!("watermark/{}", m.partition), payload)
}

/// A message of the facts topic read back; `None` for anything this
/// version did not write.
pub fn decode_message(payload: &[u8]) -> Option<FactMessage> {
    if let Ok(fact) = serde_json::from_slice::<FactWire>(payload) {
        return Some(FactMessage::Fact(fact));
    }
    serde_json::from_slice::<Marker>(payload)
        .ok()
        .map(FactMessage::Marker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_and_markers_round_trip_and_garbage_is_refused() {
        let f = FactWire {
            customer_id: "u1".into(),
            kind: "refund".into(),
            order_id: "o".into(),
            ts_ms: 5,
            amount_minor: 100,
            currency: "EUR".into(),
            channel: "Organic Social".into(),
            order: None,
        };
        let (key, bytes) = encode_fact(&f);
        assert_eq!(key, "u1");
        assert!(!String::from_utf8_lossy(&bytes).contains("order\":"));
        assert_eq!(decode_message(&bytes), Some(FactMessage::Fact(f.clone())));
        let placed = FactWire {
            kind: "order".into(),
            order: Some(Box::new(OrderDetail {
                anonymous_id: "a".into(),
                session_id: "a:1".into(),
                items: 3,
                experiment_id: "x".into(),
                variant: "B".into(),
                touches: vec!["Email".into(), "Referral".into()],
                first_session_ms: Some(1),
                sessions: 2,
            })),
            ..f
        };
        let (_, bytes) = encode_fact(&placed);
        assert_eq!(decode_message(&bytes), Some(FactMessage::Fact(placed)));
        // As a build before the `orders` table wrote it.
        let old = br#"{"customer_id":"u","kind":"order","order_id":"o","ts_ms":1,"amount_minor":5,"currency":"USD","channel":"Direct"}"#;
        match decode_message(old) {
            Some(FactMessage::Fact(f)) => assert_eq!((f.kind.as_str(), f.order), ("order", None)),
            other => panic!("an earlier build's fact reads back: {other:?}"),
        }
        let m = Marker {
            partition: 1,
            watermark_ms: 42,
        };
        let (key, bytes) = encode_marker(&m);
        assert_eq!(key, "watermark/1");
        assert_eq!(decode_message(&bytes), Some(FactMessage::Marker(m)));
        assert_eq!(decode_message(b"{}"), None);
        assert_eq!(decode_message(b"\xff"), None);
    }
}
