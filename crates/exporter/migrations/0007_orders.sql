-- Orders as facts: one row per order, written by the customer book that owns
-- the order's customer, and replaced (a higher version) as the order is
-- paid, cancelled or refunded. Read it with FINAL (or argMax by version).
--
-- Amounts are minor units of `currency`, the order's: refunds in another
-- currency are not subtracted. net_minor = total_minor - refunded_minor, and
-- 0 once cancelled. customer_order_number is 1 for a customer's first order
-- (a new customer); days_since_previous is NULL then. session_id is empty
-- for an order that came with no storefront session (an order-only feed).
-- channel is the session's; first_touch_channel and last_non_direct_channel
-- come from the sessions the visitor started within the attribution window
-- (30 days) before the order, and are the order's channel without one.
-- first_session_at is the start of the visitor's first session remembered
-- (touches are kept while the visitor comes back within 30 days), and
-- sessions_to_order the sessions they started since, the order's included:
-- for a first order (customer_order_number = 1), the time and sessions it
-- took to convert. NULL and 0 for an order with no session.
CREATE TABLE IF NOT EXISTS {db}.orders
(
    order_id              String,
    customer_id           String,
    anonymous_id          String,
    session_id            String,
    placed_at             DateTime,
    paid_at               Nullable(DateTime),
    cancelled_at          Nullable(DateTime),
    currency              String,
    total_minor           Int64,
    refunded_minor        Int64,
    net_minor             Int64,
    items                 UInt64,
    customer_order_number UInt64,
    days_since_previous   Nullable(UInt32),
    channel               String,
    first_touch_channel   String,
    last_non_direct_channel String,
    first_session_at      Nullable(DateTime),
    sessions_to_order     UInt32,
    experiment_id         String,
    variant               String,
    partition             Int32,
    version               UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(placed_at)
ORDER BY order_id;
