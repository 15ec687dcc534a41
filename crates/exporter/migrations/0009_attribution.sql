-- Attribution of orders to the channels of their touches (the sessions the
-- visitor started within 30 days before the order), by three models:
-- first_touch, last_non_direct (GA4's default) and linear (equal shares,
-- the remainder to the latest touch). Per day the orders were placed,
-- channel, model, currency and facts partition. Conversions and new
-- customers are credited in millionths of an order (conversion_units /
-- 1e6), so that linear shares add up exactly; revenue is the orders'
-- totals when placed, split exactly in minor units.
CREATE TABLE IF NOT EXISTS {db}.attribution_daily
(
    day                Date,
    channel            String,
    model              String,
    currency           String,
    partition          Int32,
    conversion_units   Int64,
    new_customer_units Int64,
    revenue_minor      Int64,
    version            UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, channel, model, currency, partition);

-- Summed over partitions, in orders.
CREATE VIEW IF NOT EXISTS {db}.attribution_1d_final AS
SELECT
    d AS day, ch AS channel, m AS model, cur AS currency,
    sum(cu) / 1000000 AS conversions, sum(nu) / 1000000 AS new_customers,
    sum(rm) AS revenue_minor
FROM
(
    SELECT day AS d, channel AS ch, model AS m, currency AS cur,
           conversion_units AS cu, new_customer_units AS nu, revenue_minor AS rm
    FROM {db}.attribution_daily FINAL
)
GROUP BY day, channel, model, currency;

-- CAC and profit per new customer by model, beside cac_daily_final (which
-- credits the channel of the first order's session and uses net revenue):
-- spend of the day and channel over the new customers the model credits
-- it, and (attributed revenue - spend) over them. A row exists where the
-- model credits a conversion; spend without any is in cac_daily_final.
CREATE VIEW IF NOT EXISTS {db}.cac_by_model_daily_final AS
SELECT
    day, channel, model, currency, spend_minor, new_customers, revenue_minor,
    if(new_customers = 0, 0, spend_minor / new_customers) AS cac_minor,
    if(new_customers = 0, 0, (revenue_minor - spend_minor) / new_customers) AS profit_per_customer_minor
FROM
(
    SELECT day, channel, model, currency, new_customers, revenue_minor
    FROM {db}.attribution_1d_final
) AS credited
ANY LEFT JOIN
(
    SELECT day, channel, currency, sum(amount_minor) AS spend_minor
    FROM {db}.ad_spend_daily FINAL
    GROUP BY day, channel, currency
) AS spend USING (day, channel, currency);
