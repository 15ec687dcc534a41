//! Checkpoints: a snapshot of one partition's state with the offsets it
//! reflects, kept in ClickHouse (the durable place the pipeline already
//! writes to). The writer stores one after the rows it depends on are
//! durable; a partition's next owner loads the furthest and reads on from
//! its offsets.

use std::collections::BTreeMap;

use clickhouse::{Client, Row};
use serde::{Deserialize, Serialize};

use super::{ClickHouseSettings, SinkError};

/// A snapshot of one store of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which state: `events` (clickstream and orders), `spend` or `customers`.
    pub store: String,
    /// The partition number.
    pub partition: i32,
    /// The next offset to read, per topic.
    pub offsets: BTreeMap<String, i64>,
    /// The latest event time read, per topic (the watermark resumes there).
    pub event_times: BTreeMap<String, i64>,
    /// The watermark the state had reached.
    pub watermark_ms: i64,
    /// The state, as the aggregator encodes it.
    pub state: Vec<u8>,
}

impl Checkpoint {
    /// The sum of the offsets: grows with every message read, so the
    /// furthest snapshot of a partition wins whoever wrote it.
    pub fn version(&self) -> u64 {
        self.offsets.values().map(|o| (*o).max(0) as u64).sum()
    }
}

/// Bytes written as a ClickHouse `String` (not an `Array(UInt8)`).
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Owned bytes read from a ClickHouse `String`.
struct Blob(Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

/// A row of `checkpoints`.
#[derive(Row, Serialize)]
pub struct CheckpointRecord<'a> {
    group_id: &'a str,
    store: &'a str,
    partition: i32,
    version: u64,
    offsets: String,
    event_times: String,
    watermark_ms: i64,
    state: Bytes<'a>,
}

impl super::TableRow for CheckpointRecord<'_> {
    const TABLE: &'static str = "checkpoints";
}

impl<'a> CheckpointRecord<'a> {
    /// The row of `c` for the consumer group `group_id`.
    pub fn new(group_id: &'a str, c: &'a Checkpoint) -> Self {
        CheckpointRecord {
            group_id,
            store: &c.store,
            partition: c.partition,
            version: c.version(),
            offsets: serde_json::to_string(&c.offsets).unwrap_or_default(),
            event_times: serde_json::to_string(&c.event_times).unwrap_or_default(),
            watermark_ms: c.watermark_ms,
            state: Bytes(&c.state),
        }
    }
}

#[derive(Row, Deserialize)]
struct Stored {
    offsets: String,
    event_times: String,
    watermark_ms: i64,
    state: Blob,
}

/// Reads checkpoints back.
pub struct CheckpointStore {
    client: Client,
    group_id: String,
}

impl CheckpointStore {
    /// The checkpoints of consumer group `group_id` in `settings`' database.
    pub fn new(settings: &ClickHouseSettings, group_id: &str) -> Self {
        CheckpointStore {
            client: settings.client().with_database(&settings.database),
            group_id: group_id.to_string(),
        }
    }

    /// The furthest checkpoint of `store` for `partition`, if any.
    pub async fn load(&self, store: &str, partition: i32) -> Result<Option<Checkpoint>, SinkError> {
        let stored: Option<Stored> = self
            .client
            .query(
                "SELECT offsets, event_times, watermark_ms, state FROM checkpoints \
                 WHERE group_id = ? AND store = ? AND partition = ? \
                 ORDER BY version DESC, watermark_ms DESC LIMIT 1",
            )
            .bind(&self.group_id)
            .bind(store)
            .bind(partition)
            .fetch_optional()
            .await?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let json = |text: &str| {
            serde_json::from_str(text)
                .map_err(|e| SinkError::Config(format!("checkpoint of {store}/{partition}: {e}")))
        };
        let (offsets, event_times) = (json(&stored.offsets)?, json(&stored.event_times)?);
        Ok(Some(Checkpoint {
            store: store.to_string(),
            partition,
            offsets,
            event_times,
            watermark_ms: stored.watermark_ms,
            state: stored.state.0,
        }))
    }
}
