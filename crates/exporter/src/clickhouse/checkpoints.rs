//! Checkpoints: a snapshot of one partition's state with the offsets it
//! reflects, kept in ClickHouse (the durable place the pipeline already
//! writes to). The writer stores one after the rows it depends on are
//! durable; a partition's next owner loads the furthest and reads on from
//! its offsets.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use clickhouse::{Client, Row};
use serde::Deserialize;

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
    pub state: State,
}

/// A checkpoint's state: the chunks the aggregator encoded it in, shared,
/// so that an insert (and each retry of it) sends them without copying.
/// Equal states hold the same bytes, however they are cut.
#[derive(Debug, Clone, Default)]
pub struct State(Vec<Bytes>);

impl State {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.0
    }

    /// The whole state in one piece: a copy only when it is in several
    /// chunks (a restore reads one piece).
    pub fn contiguous(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.0[..] {
            [] => std::borrow::Cow::Borrowed(&[]),
            [one] => std::borrow::Cow::Borrowed(one),
            more => std::borrow::Cow::Owned(more.concat()),
        }
    }
}

impl PartialEq for State {
    fn eq(&self, other: &State) -> bool {
        self.contiguous() == other.contiguous()
    }
}

impl Eq for State {}

impl From<Vec<u8>> for State {
    fn from(bytes: Vec<u8>) -> State {
        State(vec![Bytes::from(bytes)])
    }
}

impl From<Vec<Vec<u8>>> for State {
    fn from(chunks: Vec<Vec<u8>>) -> State {
        State(chunks.into_iter().map(Bytes::from).collect())
    }
}

impl Checkpoint {
    /// The sum of the offsets: grows with every message read, so the
    /// furthest snapshot of a partition wins whoever wrote it.
    pub fn version(&self) -> u64 {
        self.offsets.values().map(|o| (*o).max(0) as u64).sum()
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

/// The columns of a `checkpoints` row, in the order [`row_head`] and the
/// state encode them.
pub(super) const COLUMNS: &str =
    "group_id, store, partition, version, offsets, event_times, watermark_ms, state";

/// The RowBinary encoding of `c`'s row for consumer group `group_id` up to
/// its state: every column before it, then the state's length. The state
/// follows as it is, so a snapshot of tens of MB is not copied into the
/// insert's buffer (fresh memory the kernel zeroes first; Round 15 of
/// docs/performance.md).
pub(super) fn row_head(group_id: &str, c: &Checkpoint) -> Bytes {
    let offsets = serde_json::to_string(&c.offsets).unwrap_or_default();
    let event_times = serde_json::to_string(&c.event_times).unwrap_or_default();
    let mut head = BytesMut::with_capacity(64 + offsets.len() + event_times.len());
    put_string(&mut head, group_id.as_bytes());
    put_string(&mut head, c.store.as_bytes());
    head.put_i32_le(c.partition);
    head.put_u64_le(c.version());
    put_string(&mut head, offsets.as_bytes());
    put_string(&mut head, event_times.as_bytes());
    head.put_i64_le(c.watermark_ms);
    put_length(&mut head, c.state.len());
    head.freeze()
}

/// A RowBinary `String`: its length, then its bytes.
fn put_string(out: &mut BytesMut, s: &[u8]) {
    put_length(out, s.len());
    out.put_slice(s);
}

/// A length as RowBinary writes it: unsigned LEB128.
fn put_length(out: &mut BytesMut, mut n: usize) {
    while n >= 0x80 {
        out.put_u8((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
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
            state: stored.state.0.into(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head encodes each column as RowBinary does: LEB128 lengths
    /// (one byte below 128, more above), little-endian integers.
    #[test]
    fn the_row_head_is_rowbinary_up_to_the_state() {
        let c = Checkpoint {
            store: "events".into(),
            partition: 3,
            offsets: [("t".to_string(), 7)].into(),
            event_times: BTreeMap::new(),
            watermark_ms: -2,
            state: vec![vec![9; 100], vec![9; 200]].into(),
        };
        let head = row_head("g", &c);
        let mut want = vec![1, b'g', 6];
        want.extend_from_slice(b"events");
        want.extend_from_slice(&3_i32.to_le_bytes());
        want.extend_from_slice(&7_u64.to_le_bytes());
        want.push(7);
        want.extend_from_slice(br#"{"t":7}"#);
        want.push(2);
        want.extend_from_slice(b"{}");
        want.extend_from_slice(&(-2_i64).to_le_bytes());
        // 300 = 0b10_0101100: 0xac, then 0x02.
        want.extend_from_slice(&[0xac, 0x02]);
        assert_eq!(&head[..], &want[..]);
    }
}
