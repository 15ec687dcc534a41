//! Checkpoints through the real ClickHouse: a state of several chunks is
//! sent chunk after chunk behind its row's head, and reads back whole.

use std::collections::BTreeMap;
use std::sync::Arc;

use e2e::{settings, unique};
use exporter::clickhouse::{migrate, State};
use exporter::{Checkpoint, CheckpointStore, ClickHouseSink, Health, Metrics};

/// A state of `n` bytes in chunks of `chunk`, not all alike.
fn state(n: usize, chunk: usize) -> Vec<Vec<u8>> {
    let bytes: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
    bytes.chunks(chunk).map(<[u8]>::to_vec).collect()
}

#[tokio::test]
async fn a_state_in_chunks_reads_back_whole_and_the_furthest_checkpoint_wins() {
    let s = settings(&unique("ckpt"));
    migrate(&s.clickhouse).await.expect("migrate");
    let sink = ClickHouseSink::new(
        s.clickhouse.clone(),
        Arc::new(Metrics::new()),
        Arc::new(Health::default()),
    );
    let checkpoint = |offset: i64, chunks: Vec<Vec<u8>>| Checkpoint {
        store: "events".into(),
        partition: 1,
        offsets: BTreeMap::from([("clickstream".to_string(), offset)]),
        event_times: BTreeMap::from([("clickstream".to_string(), 1_700_000_000_000)]),
        watermark_ms: 1_699_999_999_000,
        state: State::from(chunks),
    };
    // 2.5 MiB in 1 MiB chunks (as snapshots are cut), then one of 200
    // bytes whose length takes two LEB128 bytes, in one insert.
    let big = checkpoint(500, state(5 << 19, 1 << 20));
    let small = checkpoint(400, state(200, 64));
    assert_eq!(big.state.chunks().len(), 3);
    // The sink retries until ClickHouse takes the insert: a row it refused
    // would never be written.
    let both = [small, big.clone()];
    let write = sink.write_checkpoints("g", &both);
    tokio::time::timeout(std::time::Duration::from_secs(60), write)
        .await
        .expect("written within a minute");

    let store = CheckpointStore::new(&s.clickhouse, "g");
    let loaded = store
        .load("events", 1)
        .await
        .expect("loads")
        .expect("found");
    assert_eq!(loaded, big, "the furthest, byte for byte");
    assert_eq!(loaded.state.contiguous().len(), 5 << 19);
    assert!(store.load("events", 2).await.expect("loads").is_none());
}
