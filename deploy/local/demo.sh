#!/usr/bin/env bash
# The main job, locally: starts the stack (broker, ClickHouse, Prometheus),
# runs the pipeline, feeds it realistic storefront traffic from the load
# generator, and prints live metrics, then what landed in ClickHouse and
# what Prometheus scraped. The stack stays up afterwards for exploring;
# `deploy/local/stack.sh down` stops it.
#
# DEMO_SECONDS (60): how long the generator runs. DEMO_RATE (3000): events/s.
# DEMO_SPEED (60): event time runs this much faster than the clock, so that
# sessions (closed after 30 idle minutes of event time) close during the demo.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
STATE=${SHOPLENS_STATE:-$ROOT/.stack}
SECONDS_TO_RUN=${DEMO_SECONDS:-60}
RATE=${DEMO_RATE:-3000}
SPEED=${DEMO_SPEED:-60}
PROM_PORT=${PROMETHEUS_PORT:-9090}
CH_HTTP=${CLICKHOUSE_HTTP_PORT:-8123}

# A fresh broker each demo (its storage is in memory): earlier demos'
# events would otherwise be replayed by the new consumer group.
deploy/local/stack.sh down >/dev/null 2>&1 || true
deploy/local/stack.sh up

# The demo's tables show this run only (the broker restarted empty too).
clickhouse-client --port "${CLICKHOUSE_TCP_PORT:-9000}" --query "DROP DATABASE IF EXISTS shoplens"

echo "[demo] building the release binary"
cargo build --release --quiet --bin shoplens
BIN=$CARGO_TARGET_DIR/release/shoplens

# A demo's traffic ends: a 5 s idle timeout (30 s in production) lets the
# partitions that fall silent stop holding the watermark, so the last
# sessions and carts close while you watch.
WATERMARK__IDLE_TIMEOUT_MS=${WATERMARK__IDLE_TIMEOUT_MS:-5000} "$BIN" run >"$STATE/logs/pipeline.log" 2>&1 &
PIPELINE=$!
trap 'kill $PIPELINE 2>/dev/null || true' EXIT
for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/9464) 2>/dev/null && break
    kill -0 $PIPELINE 2>/dev/null || { tail -20 "$STATE/logs/pipeline.log"; exit 1; }
    sleep 0.1
done
echo "[demo] pipeline up: http://127.0.0.1:9464/metrics (log: $STATE/logs/pipeline.log)"

"$BIN" generate --rate "$RATE" --duration "$SECONDS_TO_RUN" --speed "$SPEED" --seed "$(date +%s)" \
    >"$STATE/logs/generator.out" 2>"$STATE/logs/generator.log" &
GENERATOR=$!

echo "[demo] generator: $RATE events/s for $SECONDS_TO_RUN s, event time x$SPEED"
"$BIN" summary --every 5 --for "$((SECONDS_TO_RUN + 45))" --prometheus "127.0.0.1:$PROM_PORT"
wait $GENERATOR
echo
echo "[demo] generator: $(cat "$STATE/logs/generator.out")"

echo
echo "[demo] ClickHouse, sessions by channel (shoplens.traffic_1m_final):"
clickhouse-client --port "${CLICKHOUSE_TCP_PORT:-9000}" --query "
    SELECT channel, sum(sessions) AS s, sum(page_views) AS pv,
           round(sum(bounces) / s, 3) AS bounce_rate, round(sum(conversions) / s, 4) AS conversion_rate
    FROM shoplens.traffic_1m_final GROUP BY channel ORDER BY s DESC
    FORMAT PrettyCompactMonoBlock"
echo
echo "[demo] ClickHouse, revenue and carts:"
clickhouse-client --port "${CLICKHOUSE_TCP_PORT:-9000}" --query "
    SELECT currency, sum(orders) AS o, sum(net_minor) / 100 AS net_revenue, round(sum(net_minor) / o / 100, 2) AS aov
    FROM shoplens.revenue_1m_final GROUP BY currency FORMAT PrettyCompactMonoBlock"
clickhouse-client --port "${CLICKHOUSE_TCP_PORT:-9000}" --query "
    SELECT status, count() AS carts, sum(value_minor) / 100 AS value FROM shoplens.carts FINAL
    GROUP BY status FORMAT PrettyCompactMonoBlock"


kill -TERM $PIPELINE
wait $PIPELINE || true
trap - EXIT
echo
echo "[demo] done. The stack is still up: Prometheus http://127.0.0.1:$PROM_PORT, ClickHouse http://127.0.0.1:$CH_HTTP"
echo "[demo] stop it with: deploy/local/stack.sh down"
