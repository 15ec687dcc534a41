-- Time to convert per funnel stage: per window of session start, channel,
-- stage and partition, the sessions that reached the stage (in funnel
-- order), by the time from the session's start to the stage's event.
-- buckets[i] counts times up to the i-th bound (10 s, 30 s, 1, 2, 5, 10,
-- 30 min, 1, 3, 24 h), the last one those longer. A window is final once
-- every session started in it has closed. stage_index numbers stages as
-- funnel_1m_final does (`session` is 1, the first stage after it 2).
CREATE TABLE IF NOT EXISTS {db}.stage_times_1m
(
    window_start DateTime,
    channel      String,
    stage        String,
    stage_index  UInt8,
    partition    Int32,
    buckets      Array(UInt64),
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, stage_index, partition);

-- Per day of session start, channel and stage: the sessions, the share in
-- each bucket, and the median and 90th percentile in seconds, interpolated
-- linearly within the bucket they fall in. A quantile in the last bucket
-- (over 24 h) reads 86400: at least a day.
CREATE VIEW IF NOT EXISTS {db}.time_to_stage_1d_final AS
SELECT
    day, channel, stage, stage_index, sessions, share,
    lows[im] + (highs[im] - lows[im]) * (0.5 * sessions - (cum[im] - b[im])) / b[im] AS median_seconds,
    lows[ip] + (highs[ip] - lows[ip]) * (0.9 * sessions - (cum[ip] - b[ip])) / b[ip] AS p90_seconds
FROM
(
    SELECT
        day, channel, stage, stage_index, b, sessions,
        arrayMap(x -> x / sessions, b) AS share,
        arrayCumSum(b) AS cum,
        arrayFirstIndex(c -> c >= 0.5 * sessions, cum) AS im,
        arrayFirstIndex(c -> c >= 0.9 * sessions, cum) AS ip,
        [0, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800, 86400] AS lows,
        [10, 30, 60, 120, 300, 600, 1800, 3600, 10800, 86400, 86400] AS highs
    FROM
    (
        SELECT d AS day, ch AS channel, st AS stage, si AS stage_index,
               sumForEach(bk) AS b, arraySum(b) AS sessions
        FROM
        (
            SELECT toDate(window_start) AS d, channel AS ch, stage AS st,
                   stage_index AS si, buckets AS bk
            FROM {db}.stage_times_1m FINAL
        )
        GROUP BY day, channel, stage, stage_index
    )
);
