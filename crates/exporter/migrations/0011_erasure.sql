-- Erasure (the right to be forgotten). A request names a person by one id;
-- only a salted hash of it is kept: hex(SHA-256(salt || id)), upper case,
-- with the salt from `erasure.salt`. Every instance reads the requests at
-- start and every `erasure.poll_interval_ms`, drops the person's open state,
-- ignores their events from then on (a replay of the raw topics included),
-- and deletes the rows that carry the id in any id column of `sessions`,
-- `carts`, `customers` and `orders`. Window aggregates hold no ids and stay.
CREATE TABLE IF NOT EXISTS {db}.erasure_requests
(
    request_id    String,
    id_kind       String,
    id_hash       String,
    salt_check    String,
    requested_at  DateTime,
    requested_ms  Int64
)
ENGINE = ReplacingMergeTree
ORDER BY (id_hash, request_id);

-- What each instance did for a request: the open state it dropped and the
-- rows it deleted per table. An instance running when a request arrives
-- writes one row; a request recorded while none ran is applied by the
-- first to start. Sum per request for the whole.
CREATE TABLE IF NOT EXISTS {db}.erasure_audit
(
    request_id    String,
    id_kind       String,
    id_hash       String,
    requested_at  DateTime,
    applied_at    DateTime,
    instance      String,
    open_state    UInt64,
    sessions      UInt64,
    carts         UInt64,
    customers     UInt64,
    orders        UInt64
)
ENGINE = MergeTree
ORDER BY (request_id, applied_at);
