-- The metric set: session windows (traffic, funnel, experiments), pages,
-- products, orders and revenue, feedback, carts. Money is Int64 minor units.

DROP TABLE IF EXISTS {db}.traffic_1m_final;
DROP TABLE IF EXISTS {db}.traffic_1m;

-- One column per statement: a rerun after a partial apply skips what exists.
ALTER TABLE {db}.sessions ADD COLUMN new_visitor UInt8 DEFAULT 0;
ALTER TABLE {db}.sessions ADD COLUMN stage_reached UInt8 DEFAULT 0;
ALTER TABLE {db}.sessions ADD COLUMN orders UInt32 DEFAULT 0;
ALTER TABLE {db}.sessions ADD COLUMN revenue_minor Int64 DEFAULT 0;
ALTER TABLE {db}.sessions ADD COLUMN signups UInt32 DEFAULT 0;
ALTER TABLE {db}.sessions ADD COLUMN referral UInt8 DEFAULT 0;

-- Closed sessions per minute of session start, channel, experiment variant
-- and partition; re-emitted with a growing version as sessions close.
CREATE TABLE IF NOT EXISTS {db}.session_windows_1m
(
    window_start      DateTime,
    channel           String,
    experiment_id     String,
    variant           String,
    partition         Int32,
    sessions          UInt64,
    visitors          UInt64,
    new_visitors      UInt64,
    page_views        UInt64,
    bounces           UInt64,
    conversions       UInt64,
    orders            UInt64,
    revenue_minor     Int64,
    duration_ms       UInt64,
    signups           UInt64,
    referral_sessions UInt64,
    stages            Array(String),
    reached           Array(UInt64),
    reached_any       Array(UInt64),
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, channel, experiment_id, variant, partition);

-- Final values: the last version per partition, summed over partitions.
CREATE VIEW IF NOT EXISTS {db}.session_windows_1m_final AS
SELECT
    window_start, channel, experiment_id, variant,
    sum(s) AS sessions, sum(vi) AS visitors, sum(nv) AS new_visitors, sum(pv) AS page_views,
    sum(b) AS bounces, sum(c) AS conversions, sum(o) AS orders, sum(r) AS revenue_minor,
    sum(d) AS duration_ms, sum(su) AS signups, sum(rs) AS referral_sessions,
    any(st) AS stages, sumForEach(re) AS reached, sumForEach(ra) AS reached_any
FROM
(
    SELECT
        window_start, channel, experiment_id, variant, partition,
        argMax(sessions, version) AS s, argMax(visitors, version) AS vi,
        argMax(new_visitors, version) AS nv, argMax(page_views, version) AS pv,
        argMax(bounces, version) AS b, argMax(conversions, version) AS c,
        argMax(orders, version) AS o, argMax(revenue_minor, version) AS r,
        argMax(duration_ms, version) AS d, argMax(signups, version) AS su,
        argMax(referral_sessions, version) AS rs, argMax(stages, version) AS st,
        argMax(reached, version) AS re, argMax(reached_any, version) AS ra
    FROM {db}.session_windows_1m
    GROUP BY window_start, channel, experiment_id, variant, partition
)
GROUP BY window_start, channel, experiment_id, variant;

-- Acquisition and engagement per minute and channel. (Inner columns are
-- renamed: an alias equal to a column name would nest the aggregates.)
CREATE VIEW IF NOT EXISTS {db}.traffic_1m_final AS
SELECT
    window_start, channel,
    sum(s) AS sessions, sum(vi) AS visitors, sum(nv) AS new_visitors,
    sum(pv) AS page_views, sum(b) AS bounces, sum(c) AS conversions,
    sum(d) AS duration_ms, sum(su) AS signups, sum(rs) AS referral_sessions,
    if(sum(s) = 0, 0, sum(b) / sum(s)) AS bounce_rate,
    if(sum(s) = 0, 0, sum(c) / sum(s)) AS conversion_rate
FROM
(
    SELECT window_start, channel, sessions AS s, visitors AS vi, new_visitors AS nv,
           page_views AS pv, bounces AS b, conversions AS c, duration_ms AS d,
           signups AS su, referral_sessions AS rs
    FROM {db}.session_windows_1m_final
)
GROUP BY window_start, channel;

-- The funnel, one row per stage: sequential and any-order counts.
CREATE VIEW IF NOT EXISTS {db}.funnel_1m_final AS
SELECT window_start, channel, experiment_id, variant, stage, stage_index, sequential, any_order
FROM
(
    SELECT window_start, channel, experiment_id, variant, stages, reached, reached_any,
           arrayEnumerate(stages) AS idx
    FROM {db}.session_windows_1m_final
)
ARRAY JOIN stages AS stage, reached AS sequential, reached_any AS any_order, idx AS stage_index;

-- Experiments: totals per variant and a two-proportion z-test of the
-- conversion rate against the first variant (alphabetically) of each experiment.
CREATE VIEW IF NOT EXISTS {db}.experiments_final AS
SELECT
    experiment_id, variant, sessions, conversions, revenue_minor, orders,
    conversions / sessions AS conversion_rate,
    if(orders = 0, 0, revenue_minor / orders) AS aov_minor,
    control_variant,
    if(variant = control_variant OR sessions = 0 OR control_sessions = 0, 1,
       erfc(abs(conversions / sessions - control_conversions / control_sessions)
            / sqrt(greatest(pooled * (1 - pooled) * (1 / sessions + 1 / control_sessions), 1e-18))
            / sqrt(2))) AS p_value
FROM
(
    SELECT experiment_id, variant, sessions, conversions, revenue_minor, orders,
           control_variant, control_sessions, control_conversions,
           (conversions + control_conversions) / (sessions + control_sessions) AS pooled
    FROM
    (
        SELECT experiment_id, variant, sum(sessions) AS sessions, sum(conversions) AS conversions,
               sum(revenue_minor) AS revenue_minor, sum(orders) AS orders
        FROM {db}.session_windows_1m_final
        WHERE experiment_id != ''
        GROUP BY experiment_id, variant
    ) AS totals
    ANY LEFT JOIN
    (
        SELECT experiment_id, argMin(variant, variant) AS control_variant,
               argMin(s, variant) AS control_sessions, argMin(c, variant) AS control_conversions
        FROM
        (
            SELECT experiment_id, variant, sum(sessions) AS s, sum(conversions) AS c
            FROM {db}.session_windows_1m_final
            WHERE experiment_id != ''
            GROUP BY experiment_id, variant
        )
        GROUP BY experiment_id
    ) AS control USING experiment_id
);

CREATE TABLE IF NOT EXISTS {db}.pages_1m
(
    window_start DateTime,
    path         String,
    partition    Int32,
    page_views   UInt64,
    entrances    UInt64,
    exits        UInt64,
    sessions     UInt64,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, path, partition);

-- Both exit rates: exits / page views (Plausible), exits / sessions with the page (Matomo).
CREATE VIEW IF NOT EXISTS {db}.pages_1m_final AS
SELECT
    window_start, path,
    sum(pv) AS page_views, sum(en) AS entrances, sum(ex) AS exits, sum(se) AS sessions,
    if(sum(pv) = 0, 0, sum(ex) / sum(pv)) AS exit_rate_views,
    if(sum(se) = 0, 0, sum(ex) / sum(se)) AS exit_rate_sessions
FROM
(
    SELECT window_start, path, partition,
           argMax(page_views, version) AS pv, argMax(entrances, version) AS en,
           argMax(exits, version) AS ex, argMax(sessions, version) AS se
    FROM {db}.pages_1m
    GROUP BY window_start, path, partition
)
GROUP BY window_start, path;

CREATE TABLE IF NOT EXISTS {db}.products_1m
(
    window_start  DateTime,
    product_id    String,
    currency      String,
    partition     Int32,
    views         UInt64,
    cart_adds     UInt64,
    purchases     UInt64,
    revenue_minor Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, product_id, currency, partition);

CREATE TABLE IF NOT EXISTS {db}.orders_1m
(
    window_start    DateTime,
    currency        String,
    channel         String,
    partition       Int32,
    orders          UInt64,
    paid            UInt64,
    cancelled       UInt64,
    refunds         UInt64,
    gross_minor     Int64,
    cancelled_minor Int64,
    refunded_minor  Int64,
    referral_orders UInt64,
    referral_minor  Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, currency, channel, partition);

-- Revenue: net = gross - cancelled - refunded; AOV = net / orders not cancelled.
CREATE VIEW IF NOT EXISTS {db}.revenue_1m_final AS
SELECT
    window_start, currency, channel,
    sum(o) AS orders, sum(p) AS paid, sum(c) AS cancelled, sum(r) AS refunds,
    sum(g) AS gross_minor, sum(cm) AS cancelled_minor, sum(rm) AS refunded_minor,
    sum(g) - sum(cm) - sum(rm) AS net_minor,
    if(sum(o) <= sum(c), 0, (sum(g) - sum(cm) - sum(rm)) / (sum(o) - sum(c))) AS aov_minor,
    sum(ro) AS referral_orders, sum(rmi) AS referral_minor
FROM
(
    SELECT window_start, currency, channel, orders AS o, paid AS p, cancelled AS c,
           refunds AS r, gross_minor AS g, cancelled_minor AS cm, refunded_minor AS rm,
           referral_orders AS ro, referral_minor AS rmi
    FROM {db}.orders_1m FINAL
)
GROUP BY window_start, currency, channel;

CREATE TABLE IF NOT EXISTS {db}.feedback_1m
(
    window_start     DateTime,
    partition        Int32,
    nps_responses    UInt64,
    nps_promoters    UInt64,
    nps_passives     UInt64,
    nps_detractors   UInt64,
    csat_responses   UInt64,
    csat_satisfied   UInt64,
    csat_score_milli UInt64,
    ces_responses    UInt64,
    ces_score_milli  UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, partition);

CREATE VIEW IF NOT EXISTS {db}.feedback_1m_final AS
SELECT
    window_start,
    sum(n) AS nps_responses,
    if(sum(n) = 0, 0, 100 * (sum(np) - sum(nd)) / sum(n)) AS nps,
    sum(cs) AS csat_responses,
    if(sum(cs) = 0, 0, sum(csm) / 1000 / sum(cs)) AS csat_mean,
    if(sum(cs) = 0, 0, sum(css) / sum(cs)) AS csat_satisfied_share,
    sum(ce) AS ces_responses,
    if(sum(ce) = 0, 0, sum(cem) / 1000 / sum(ce)) AS ces_mean
FROM
(
    SELECT window_start, nps_responses AS n, nps_promoters AS np, nps_detractors AS nd,
           csat_responses AS cs, csat_score_milli AS csm, csat_satisfied AS css,
           ces_responses AS ce, ces_score_milli AS cem
    FROM {db}.feedback_1m FINAL
)
GROUP BY window_start;

-- One row per cart outcome; a recovery replaces the abandonment (version 2).
-- A cart id used again after its order is a new cart: `opened` is in the key.
CREATE TABLE IF NOT EXISTS {db}.carts
(
    cart_id          String,
    anonymous_id     String,
    user_id          String,
    status           String,
    opened           DateTime,
    last_activity    DateTime,
    at               DateTime,
    value_minor      Int64,
    currency         String,
    items            UInt32,
    order_id         String,
    partition        Int32,
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(opened)
ORDER BY (cart_id, opened);
