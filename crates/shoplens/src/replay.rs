//! Backfills: events as JSON lines (a file or stdin) produced to Kafka,
//! each to its contract topic and keyed as the contract says.

use std::io::BufRead;

use ingest::{KafkaError, KafkaSettings};
use serde::Deserialize;

use crate::generate::{Message, ProduceOptions, ProduceReport};

/// The fields that route a line: its type and its key.
#[derive(Deserialize)]
struct Route<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    anonymous_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<&'a serde_json::value::RawValue>,
    properties: Option<SpendRoute>,
}

#[derive(Deserialize)]
struct SpendRoute {
    channel: Option<String>,
}

/// Routes one line: orders types to the orders topic, `ad_spend` to spend
/// (keyed by channel), everything else, unreadable lines included, to the
/// clickstream topic, where the pipeline dead-letters what is invalid.
pub fn route(line: &str) -> Message {
    let parsed: Option<Route<'_>> = serde_json::from_str(line).ok();
    let kind = parsed
        .as_ref()
        .and_then(|r| r.kind.as_deref())
        .unwrap_or("");
    let stream = match kind {
        "order_placed" | "order_paid" | "order_cancelled" | "order_refunded" => {
            contract::Stream::Orders
        }
        "ad_spend" => contract::Stream::Spend,
        _ => contract::Stream::Clickstream,
    };
    let key = match (stream, &parsed) {
        (contract::Stream::Spend, Some(r)) => r.properties.as_ref().and_then(|p| p.channel.clone()),
        (_, Some(r)) => r.anonymous_id.as_deref().map(str::to_string),
        _ => None,
    };
    let ts_ms = parsed
        .as_ref()
        .and_then(|r| r.timestamp)
        .and_then(|t| {
            let text = t.get();
            match text.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                Some(s) => contract::time::parse_rfc3339(s),
                None => text.parse().ok(),
            }
        })
        .unwrap_or(0);
    Message {
        stream,
        key: key.unwrap_or_default(),
        payload: line.as_bytes().to_vec(),
        ts_ms,
    }
}

/// Reads JSON lines from `input` and produces them in order.
pub async fn replay(
    settings: &KafkaSettings,
    input: impl BufRead,
    opts: &ProduceOptions,
) -> Result<ProduceReport, ReplayError> {
    let mut messages = Vec::new();
    for line in input.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            messages.push(route(line.trim()));
        }
    }
    let start = messages
        .iter()
        .map(|m| m.ts_ms)
        .filter(|t| *t > 0)
        .min()
        .unwrap_or(0);
    Ok(crate::generate::produce_messages(settings, messages, start, opts).await?)
}

/// Replay failures.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The input could not be read.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    /// Kafka refused.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::Stream;

    #[test]
    fn routes_by_type_and_keys_by_visitor_or_channel() {
        let m = route(
            r#"{"type":"order_paid","anonymous_id":"v1","timestamp":"2019-10-01T00:00:00Z"}"#,
        );
        assert_eq!(
            (m.stream, m.key.as_str(), m.ts_ms),
            (Stream::Orders, "v1", 1_569_888_000_000)
        );
        let m = route(
            r#"{"type":"ad_spend","anonymous_id":"x","properties":{"channel":"Paid Search"}}"#,
        );
        assert_eq!((m.stream, m.key.as_str()), (Stream::Spend, "Paid Search"));
        let m = route(r#"{"type":"page_view","anonymous_id":"v2","timestamp":1569888000000}"#);
        assert_eq!(
            (m.stream, m.key.as_str(), m.ts_ms),
            (Stream::Clickstream, "v2", 1_569_888_000_000)
        );
        let m = route("not json");
        assert_eq!(
            (m.stream, m.key.as_str(), m.payload.as_slice()),
            (Stream::Clickstream, "", &b"not json"[..])
        );
    }
}
