-- Hourly and daily rollups of the minute views, for dashboards and analysts
-- who want longer ranges. They read the *_final minute views, so replacement
-- is already resolved; rates are recomputed from the summed counts, never
-- averaged. (Inner columns are renamed: an alias equal to a column name would
-- nest the aggregates.)

CREATE VIEW IF NOT EXISTS {db}.traffic_1h_final AS
SELECT
    toStartOfHour(ws) AS hour, ch AS channel,
    sum(s) AS sessions, sum(vi) AS visitors, sum(nv) AS new_visitors,
    sum(pv) AS page_views, sum(b) AS bounces, sum(c) AS conversions,
    sum(d) AS duration_ms, sum(su) AS signups, sum(rs) AS referral_sessions,
    if(sum(s) = 0, 0, sum(b) / sum(s)) AS bounce_rate,
    if(sum(s) = 0, 0, sum(c) / sum(s)) AS conversion_rate
FROM
(
    SELECT window_start AS ws, channel AS ch, sessions AS s, visitors AS vi,
           new_visitors AS nv, page_views AS pv, bounces AS b, conversions AS c,
           duration_ms AS d, signups AS su, referral_sessions AS rs
    FROM {db}.traffic_1m_final
)
GROUP BY hour, channel;

CREATE VIEW IF NOT EXISTS {db}.traffic_1d_final AS
SELECT
    toDate(ws) AS day, ch AS channel,
    sum(s) AS sessions, sum(vi) AS visitors, sum(nv) AS new_visitors,
    sum(pv) AS page_views, sum(b) AS bounces, sum(c) AS conversions,
    sum(d) AS duration_ms, sum(su) AS signups, sum(rs) AS referral_sessions,
    if(sum(s) = 0, 0, sum(b) / sum(s)) AS bounce_rate,
    if(sum(s) = 0, 0, sum(c) / sum(s)) AS conversion_rate
FROM
(
    SELECT window_start AS ws, channel AS ch, sessions AS s, visitors AS vi,
           new_visitors AS nv, page_views AS pv, bounces AS b, conversions AS c,
           duration_ms AS d, signups AS su, referral_sessions AS rs
    FROM {db}.traffic_1m_final
)
GROUP BY day, channel;

CREATE VIEW IF NOT EXISTS {db}.revenue_1h_final AS
SELECT
    toStartOfHour(ws) AS hour, cur AS currency, ch AS channel,
    sum(o) AS orders, sum(p) AS paid, sum(c) AS cancelled, sum(r) AS refunds,
    sum(g) AS gross_minor, sum(n) AS net_minor,
    if(sum(o) <= sum(c), 0, sum(n) / (sum(o) - sum(c))) AS aov_minor
FROM
(
    SELECT window_start AS ws, currency AS cur, channel AS ch, orders AS o, paid AS p,
           cancelled AS c, refunds AS r, gross_minor AS g, net_minor AS n
    FROM {db}.revenue_1m_final
)
GROUP BY hour, currency, channel;

CREATE VIEW IF NOT EXISTS {db}.revenue_1d_final AS
SELECT
    toDate(ws) AS day, cur AS currency, ch AS channel,
    sum(o) AS orders, sum(p) AS paid, sum(c) AS cancelled, sum(r) AS refunds,
    sum(g) AS gross_minor, sum(n) AS net_minor,
    if(sum(o) <= sum(c), 0, sum(n) / (sum(o) - sum(c))) AS aov_minor
FROM
(
    SELECT window_start AS ws, currency AS cur, channel AS ch, orders AS o, paid AS p,
           cancelled AS c, refunds AS r, gross_minor AS g, net_minor AS n
    FROM {db}.revenue_1m_final
)
GROUP BY day, currency, channel;

CREATE VIEW IF NOT EXISTS {db}.funnel_1d_final AS
SELECT
    toDate(ws) AS day, ch AS channel, st AS stage, si AS stage_index,
    sum(sq) AS sequential, sum(ao) AS any_order
FROM
(
    SELECT window_start AS ws, channel AS ch, stage AS st, stage_index AS si,
           sequential AS sq, any_order AS ao
    FROM {db}.funnel_1m_final
)
GROUP BY day, channel, stage, stage_index;
