-- Customers (re-keyed by customer through the internal facts topic), new and
-- repeat customers per day and channel, ad spend per day, CAC and profit.

CREATE TABLE IF NOT EXISTS {db}.customers
(
    customer_id     String,
    first_order     DateTime,
    last_order      DateTime,
    orders          UInt64,
    net_minor       Int64,
    median_gap_days Float64,
    first_channel   String,
    lapsed          UInt8,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY customer_id;

CREATE TABLE IF NOT EXISTS {db}.customers_daily
(
    day            Date,
    channel        String,
    partition      Int32,
    new_customers  UInt64,
    repeat_orders  UInt64,
    orders         UInt64,
    version        UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, channel, partition);

-- One row per ad_spend event and day of its period: a replay replaces.
CREATE TABLE IF NOT EXISTS {db}.ad_spend_daily
(
    day          Date,
    channel      String,
    campaign     String,
    event_id     String,
    amount_minor Int64,
    currency     String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, channel, campaign, event_id);

-- CAC = spend / new customers; profit per customer = (net revenue - spend) /
-- new customers; per day and channel (spend channels use the channel names).
-- Both sides are aggregated to one row per key, so ALL FULL JOIN is exact
-- (current ClickHouse has no ANY FULL JOIN).
CREATE VIEW IF NOT EXISTS {db}.cac_daily_final AS
SELECT
    day, channel, currency, spend_minor, net_revenue_minor, new_customers,
    if(new_customers = 0, 0, spend_minor / new_customers) AS cac_minor,
    if(new_customers = 0, 0, (net_revenue_minor - spend_minor) / new_customers) AS profit_per_customer_minor
FROM
(
    SELECT day, channel, currency, spend_minor, net_revenue_minor
    FROM
    (
        SELECT day, channel, currency, sum(amount_minor) AS spend_minor
        FROM {db}.ad_spend_daily FINAL
        GROUP BY day, channel, currency
    ) AS spend
    ALL FULL JOIN
    (
        SELECT toDate(window_start) AS day, channel, currency, sum(net_minor) AS net_revenue_minor
        FROM {db}.revenue_1m_final
        GROUP BY day, channel, currency
    ) AS revenue USING (day, channel, currency)
) AS money
ANY LEFT JOIN
(
    SELECT day, channel, sum(new_customers) AS new_customers
    FROM {db}.customers_daily FINAL
    GROUP BY day, channel
) AS customers USING (day, channel);
