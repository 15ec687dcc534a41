//! The internal customer-facts topic: facts re-keyed by customer, as JSON.

use aggregator::{Channel, CustomerFact, FactKind};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Wire {
    customer_id: String,
    kind: String,
    order_id: String,
    ts_ms: i64,
    amount_minor: i64,
    currency: String,
    channel: String,
}

/// The Kafka key (the customer) and payload of a fact.
pub fn encode(f: &CustomerFact) -> (String, Vec<u8>) {
    let wire = Wire {
        customer_id: f.customer_id.clone(),
        kind: f.kind.as_str().to_string(),
        order_id: f.order_id.clone(),
        ts_ms: f.ts_ms,
        amount_minor: f.amount_minor,
        currency: f.currency.clone(),
        channel: f.channel.as_str().to_string(),
    };
    (
        f.customer_id.clone(),
        serde_json::to_vec(&wire).unwrap_or_default(),
    )
}

/// An input partition's watermark, written to every facts partition after
/// each durable batch by whichever instance owns the input partition: every
/// fact still to come from it is of an event at or after `watermark_ms`
/// (see the pipeline's customer side).
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
    Fact(CustomerFact),
    /// A producer's watermark.
    Marker(Marker),
}

/// The Kafka key (the input partition) and payload of a watermark marker.
pub fn encode_marker(m: &Marker) -> (String, Vec<u8>) {
    (
        format!("watermark/{}", m.partition),
        serde_json::to_vec(m).unwrap_or_default(),
    )
}

/// A message of the facts topic read back; `None` for anything this
/// version did not write.
pub fn decode_message(payload: &[u8]) -> Option<FactMessage> {
    decode(payload).map(FactMessage::Fact).or_else(|| {
        serde_json::from_slice::<Marker>(payload)
            .ok()
            .map(FactMessage::Marker)
    })
}

/// A fact read back; `None` for anything this version did not write.
pub fn decode(payload: &[u8]) -> Option<CustomerFact> {
    let w: Wire = serde_json::from_slice(payload).ok()?;
    Some(CustomerFact {
        customer_id: w.customer_id,
        kind: FactKind::parse(&w.kind)?,
        order_id: w.order_id,
        ts_ms: w.ts_ms,
        amount_minor: w.amount_minor,
        currency: w.currency,
        channel: Channel::ALL.into_iter().find(|c| c.as_str() == w.channel)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_round_trip_and_garbage_is_refused() {
        let f = CustomerFact {
            customer_id: "u1".into(),
            kind: FactKind::Refund,
            order_id: "o".into(),
            ts_ms: 5,
            amount_minor: 100,
            currency: "EUR".into(),
            channel: Channel::OrganicSocial,
        };
        let (key, bytes) = encode(&f);
        assert_eq!(key, "u1");
        assert_eq!(decode(&bytes), Some(f.clone()));
        assert_eq!(decode(b"{}"), None);
        assert_eq!(decode(b"\\xff"), None);
        assert_eq!(decode_message(&bytes), Some(FactMessage::Fact(f)));
        let m = Marker {
            partition: 1,
            watermark_ms: 42,
        };
        let (key, bytes) = encode_marker(&m);
        assert_eq!(key, "watermark/1");
        assert_eq!(decode(&bytes), None);
        assert_eq!(decode_message(&bytes), Some(FactMessage::Marker(m)));
        assert_eq!(decode_message(b"{}"), None);
    }
}
