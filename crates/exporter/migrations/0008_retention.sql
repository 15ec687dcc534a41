-- Cohort retention, built on `orders` so that it always agrees with it.
--
-- A customer's cohort is the UTC calendar month (ISO week: Monday 00:00 UTC)
-- of their first order (customer_order_number = 1); first_channel and
-- currency are that order's. Period k counts whole months (weeks) from the
-- cohort's start to an order's. Per cohort, first channel, currency and k:
-- cohort_size customers, `active` of them with at least one order in period
-- k (cancelled orders count: the customer ordered), their orders, and their
-- net revenue in the cohort's currency (orders in other currencies are not
-- added, as in `customers`). retention = active / cohort_size.
--
-- Each customer has one first channel and currency, so summing active,
-- orders and net over them gives the cohort overall. A row exists only
-- where someone was active: take a whole cohort's size from its period-0
-- rows (everyone orders in period 0), sumIf(cohort_size, period = 0). A
-- customer whose first order has left the table (retention TTL, or a
-- customer book that forgot them) is in no cohort.

-- Monthly cohorts.
CREATE VIEW IF NOT EXISTS {db}.retention_monthly_final AS
SELECT
    cohort, first_channel, currency, period, cohort_size, active,
    o AS orders, net AS net_minor, active / cohort_size AS retention
FROM
(
    SELECT cohort, first_channel, currency, period,
           uniqExact(customer_id) AS active, count() AS o,
           sumIf(order_net, order_currency = currency) AS net
    FROM
    (
        SELECT customer_id, order_net, order_currency, cohort, first_channel, currency,
               toRelativeMonthNum(day) - toRelativeMonthNum(cohort) AS period
        FROM
        (
            SELECT customer_id, toDate(placed_at, 'UTC') AS day,
                   net_minor AS order_net, currency AS order_currency
            FROM {db}.orders FINAL
        ) AS placed
        ANY INNER JOIN
        (
        SELECT customer_id,
               toStartOfMonth(toDate(min(placed_at), 'UTC')) AS cohort,
               argMin(channel, placed_at) AS first_channel,
               argMin(currency, placed_at) AS currency
        FROM {db}.orders FINAL
        WHERE customer_order_number = 1
        GROUP BY customer_id
        ) AS firsts USING (customer_id)
    )
    GROUP BY cohort, first_channel, currency, period
) AS cells
ANY LEFT JOIN
(
    SELECT cohort, first_channel, currency, count() AS cohort_size
    FROM
    (
        SELECT customer_id,
               toStartOfMonth(toDate(min(placed_at), 'UTC')) AS cohort,
               argMin(channel, placed_at) AS first_channel,
               argMin(currency, placed_at) AS currency
        FROM {db}.orders FINAL
        WHERE customer_order_number = 1
        GROUP BY customer_id
    )
    GROUP BY cohort, first_channel, currency
) AS sizes USING (cohort, first_channel, currency);

-- Weekly (ISO week) cohorts.
CREATE VIEW IF NOT EXISTS {db}.retention_weekly_final AS
SELECT
    cohort, first_channel, currency, period, cohort_size, active,
    o AS orders, net AS net_minor, active / cohort_size AS retention
FROM
(
    SELECT cohort, first_channel, currency, period,
           uniqExact(customer_id) AS active, count() AS o,
           sumIf(order_net, order_currency = currency) AS net
    FROM
    (
        SELECT customer_id, order_net, order_currency, cohort, first_channel, currency,
               intDiv(toRelativeDayNum(toMonday(day)) - toRelativeDayNum(cohort), 7) AS period
        FROM
        (
            SELECT customer_id, toDate(placed_at, 'UTC') AS day,
                   net_minor AS order_net, currency AS order_currency
            FROM {db}.orders FINAL
        ) AS placed
        ANY INNER JOIN
        (
        SELECT customer_id,
               toMonday(toDate(min(placed_at), 'UTC')) AS cohort,
               argMin(channel, placed_at) AS first_channel,
               argMin(currency, placed_at) AS currency
        FROM {db}.orders FINAL
        WHERE customer_order_number = 1
        GROUP BY customer_id
        ) AS firsts USING (customer_id)
    )
    GROUP BY cohort, first_channel, currency, period
) AS cells
ANY LEFT JOIN
(
    SELECT cohort, first_channel, currency, count() AS cohort_size
    FROM
    (
        SELECT customer_id,
               toMonday(toDate(min(placed_at), 'UTC')) AS cohort,
               argMin(channel, placed_at) AS first_channel,
               argMin(currency, placed_at) AS currency
        FROM {db}.orders FINAL
        WHERE customer_order_number = 1
        GROUP BY customer_id
    )
    GROUP BY cohort, first_channel, currency
) AS sizes USING (cohort, first_channel, currency);
