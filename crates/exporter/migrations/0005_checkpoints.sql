-- The pipeline's own state, not for analysts: a snapshot of each input
-- partition's open state (sessions, carts, orders, windows, the dedup set;
-- or a customer-facts partition's histories) with the offsets it reflects.
-- The partition's next owner restores the furthest one and reads on from
-- its offsets (and the latest event time of each topic, so its watermark
-- resumes where it was). `version` is the sum of those offsets, so a later snapshot of
-- the same log always wins, whichever instance wrote it.
CREATE TABLE IF NOT EXISTS {db}.checkpoints
(
    group_id     String,
    store        String,
    partition    Int32,
    version      UInt64,
    offsets      String,
    event_times  String,
    watermark_ms Int64,
    state        String,
    written_at   DateTime DEFAULT now()
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (group_id, store, partition);
