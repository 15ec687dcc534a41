-- Closed sessions, one row each. A re-emission of the same session replaces
-- the row with the most events (version). The start is part of the key: one
-- storefront session id split by the inactivity gap makes two sessions.
CREATE TABLE IF NOT EXISTS {db}.sessions
(
    session_id    String,
    anonymous_id  String,
    user_id       String,
    start         DateTime,
    end           DateTime,
    duration_ms   UInt64,
    page_views    UInt32,
    events        UInt32,
    entry_path    String,
    exit_path     String,
    channel       String,
    source        String,
    medium        String,
    campaign      String,
    device        String,
    experiment_id String,
    variant       String,
    bounced       UInt8,
    converted     UInt8,
    partition     Int32,
    version       UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(start)
ORDER BY (toDate(start), anonymous_id, session_id, start);

-- Traffic per minute of session start, channel and source partition.
-- Rows are re-emitted with a growing version as sessions close; readers take
-- the last version per key and sum over partitions (see traffic_1m_final).
CREATE TABLE IF NOT EXISTS {db}.traffic_1m
(
    window_start DateTime,
    channel      String,
    partition    Int32,
    sessions     UInt64,
    page_views   UInt64,
    bounces      UInt64,
    conversions  UInt64,
    duration_ms  UInt64,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, partition);

CREATE VIEW IF NOT EXISTS {db}.traffic_1m_final AS
SELECT
    window_start,
    channel,
    sum(s) AS sessions,
    sum(pv) AS page_views,
    sum(b) AS bounces,
    sum(c) AS conversions,
    sum(d) AS duration_ms,
    if(sum(s) = 0, 0, sum(b) / sum(s)) AS bounce_rate
FROM
(
    SELECT
        window_start,
        channel,
        partition,
        argMax(sessions, version) AS s,
        argMax(page_views, version) AS pv,
        argMax(bounces, version) AS b,
        argMax(conversions, version) AS c,
        argMax(duration_ms, version) AS d
    FROM {db}.traffic_1m
    GROUP BY window_start, channel, partition
)
GROUP BY window_start, channel;
