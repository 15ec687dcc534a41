#!/usr/bin/env bash
# The local stack: a Kafka-protocol broker (tansu), ClickHouse and Prometheus
# as plain processes with project-owned configs and data under $STATE.
#
#   stack.sh install   install what is missing (apt packages, tansu binary; cached)
#   stack.sh up        install, start the services, create topics, apply migrations
#   stack.sh down      stop the services
#   stack.sh status    show what runs
#   stack.sh pytools   print the Python of the deploy-check tools (installed)
#   stack.sh tansu     print the path of the broker binary (installed)
#
# Environment: SHOPLENS_STATE (default <repo>/.stack), KAFKA_PORT (9092),
# CLICKHOUSE_HTTP_PORT (8123), CLICKHOUSE_TCP_PORT (9000), PROMETHEUS_PORT (9090),
# METRICS_TARGET (127.0.0.1:9464), PARTITIONS (4), ZOOKEEPER_PORT (2181).
#
# Besides the main ClickHouse server, a second one (HTTP port + 1, TCP port + 1)
# and ZooKeeper run, so that the two servers form `shoplens_cluster` (two
# shards) for the cluster layout's tests. Nothing uses them otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${SHOPLENS_STATE:-$ROOT/.stack}
CACHE=${SHOPLENS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shoplens}
TANSU_VERSION=0.6.0
# Built with two storage engines: memory (the stack's broker) and SQLite
# (a broker whose topics survive a restart, for the broker-restart test).
TANSU_FEATURES=dynostore,libsql
TANSU=$CACHE/tansu-$TANSU_VERSION-${TANSU_FEATURES//,/-}/bin/tansu
KAFKA_PORT=${KAFKA_PORT:-9092}
CH_HTTP=${CLICKHOUSE_HTTP_PORT:-8123}
CH_TCP=${CLICKHOUSE_TCP_PORT:-9000}
PROM_PORT=${PROMETHEUS_PORT:-9090}
ZK_PORT=${ZOOKEEPER_PORT:-2181}
ZK_SERVER=/usr/share/zookeeper/bin/zkServer.sh
METRICS_TARGET=${METRICS_TARGET:-127.0.0.1:9464}
PARTITIONS=${PARTITIONS:-4}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

log() { printf '[stack] %s\n' "$*" >&2; }

need_apt() {
    local missing=()
    command -v clickhouse-server >/dev/null || missing+=(clickhouse-server)
    command -v clickhouse-client >/dev/null || missing+=(clickhouse-client)
    command -v prometheus >/dev/null || missing+=(prometheus)
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    [ -x "$ZK_SERVER" ] || missing+=(zookeeper)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} from Debian"
        apt-get update -qq
        # The packages' init scripts must not start system-wide services.
        DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null
    fi
}

need_tansu() {
    if [ ! -x "$TANSU" ]; then
        log "building tansu $TANSU_VERSION once into $CACHE (about 10 minutes)"
        cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" \
            --root "${TANSU%/bin/tansu}" --quiet
    fi
}

# Python tools for the deploy checks: chdb (current ClickHouse, embedded) and
# kubernetes-validate (the manifests against the Kubernetes schemas).
PYTOOLS=$CACHE/pytools-1
need_pytools() {
    if ! "$PYTOOLS/bin/python" -c 'import chdb, kubernetes_validate' 2>/dev/null; then
        log "installing chdb and kubernetes-validate into $PYTOOLS"
        python3 -m venv "$PYTOOLS"
        "$PYTOOLS/bin/pip" install --quiet --disable-pip-version-check \
            chdb==4.4.0 kubernetes-validate==1.37.0
    fi
}

install() {
    need_apt
    need_tansu
    need_pytools
}

wait_port() { # name port seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "$1 did not open port $2 in $3 s; see $STATE/logs/$1.log"
    tail -n 20 "$STATE/logs/$1.log" >&2 || true
    return 1
}

wait_zookeeper() {
    local i reply
    for ((i = 0; i < 600; i++)); do
        reply=$( (exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" && printf ruok >&3 && timeout 1 cat <&3) 2>/dev/null || true)
        [ "$reply" = imok ] && return 0
        sleep 0.1
    done
    log "zookeeper does not answer on port $ZK_PORT; see $STATE/logs/zookeeper.log"
    return 1
}

running() { [ -f "$STATE/run/$1.pid" ] && kill -0 "$(cat "$STATE/run/$1.pid")" 2>/dev/null; }

start() { # name command...
    local name=$1
    shift
    if running "$name"; then
        log "$name already running"
        return 0
    fi
    nohup "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/run/$name.pid"
}

render() { # template output [node]
    local node=${3:-1}
    sed -e "s|@STATE@|$STATE|g" -e "s|@HTTP_PORT@|$((CH_HTTP + node - 1))|g" \
        -e "s|@TCP_PORT@|$((CH_TCP + node - 1))|g" -e "s|@TCP_PORT_1@|$CH_TCP|g" \
        -e "s|@TCP_PORT_2@|$((CH_TCP + 1))|g" -e "s|@INTERSERVER_PORT@|$((CH_TCP + 8 + node))|g" \
        -e "s|@SHARD@|0$node|g" -e "s|@ZK_PORT@|$ZK_PORT|g" -e "s|@NODE@|$node|g" \
        -e "s|shoplens:9464|$METRICS_TARGET|g" "$1" >"$2"
}

clickhouse_node() { # node: state dir, configs, process
    local node=$1 dir=$STATE/clickhouse
    [ "$node" = 1 ] || dir=$STATE/clickhouse$node
    mkdir -p "$dir"/{log,data,tmp}
    render "$ROOT/deploy/local/clickhouse/config.xml" "$dir/config.xml" "$node"
    sed -i "s|$STATE/clickhouse/|$dir/|g" "$dir/config.xml"
    render "$ROOT/deploy/local/clickhouse/users.xml" "$dir/users.xml" "$node"
    if [ "$node" = 1 ]; then
        start clickhouse clickhouse-server --config-file="$dir/config.xml"
    else
        start "clickhouse$node" clickhouse-server --config-file="$dir/config.xml"
    fi
}

# Waits for ClickHouse node N's HTTP port. A node with replicated tables can
# still exit at start if ZooKeeper is not serving sessions yet although it
# answers `ruok`: such a node is started again (three tries).
wait_clickhouse() {
    local node=$1 name=clickhouse port=$CH_HTTP try i
    [ "$node" = 1 ] || { name=clickhouse$node; port=$((CH_HTTP + node - 1)); }
    for try in 1 2 3; do
        for ((i = 0; i < 600; i++)); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
            running "$name" || break
            sleep 0.1
        done
        log "$name is not up (try $try); see $STATE/logs/$name.log"
        rm -f "$STATE/run/$name.pid"
        sleep 2
        clickhouse_node "$node"
    done
    wait_port "$name" "$port" 60
}

zookeeper() {
    mkdir -p "$STATE/zookeeper/conf" "$STATE/zookeeper/data"
    printf 'tickTime=2000\ndataDir=%s\nclientPort=%s\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n' \
        "$STATE/zookeeper/data" "$ZK_PORT" >"$STATE/zookeeper/conf/zoo.cfg"
    cp /etc/zookeeper/conf_example/log4j.properties "$STATE/zookeeper/conf/" 2>/dev/null || true
    ZOOCFGDIR=$STATE/zookeeper/conf ZOO_LOG_DIR=$STATE/zookeeper start zookeeper "$ZK_SERVER" start-foreground "$STATE/zookeeper/conf/zoo.cfg"
}

up() {
    install
    mkdir -p "$STATE"/{logs,run,prometheus}
    start tansu "$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/
    zookeeper
    # ClickHouse 18.16 gives up at start when its replicated tables find no
    # ZooKeeper serving yet: wait for `ruok` to be answered, not just the port.
    wait_zookeeper
    clickhouse_node 1
    clickhouse_node 2
    render "$ROOT/deploy/prometheus/prometheus.yml" "$STATE/prometheus/prometheus.yml"
    rm -rf "$STATE/prometheus/rules" && cp -r "$ROOT/deploy/prometheus/rules" "$STATE/prometheus/rules"
    start prometheus prometheus --config.file="$STATE/prometheus/prometheus.yml" \
        --storage.tsdb.path="$STATE/prometheus/data" --web.listen-address="127.0.0.1:$PROM_PORT"
    wait_port tansu "$KAFKA_PORT" 30
    wait_clickhouse 1
    wait_clickhouse 2
    wait_port prometheus "$PROM_PORT" 30
    log "building shoplens"
    cargo build --quiet --bin shoplens
    local bin=$CARGO_TARGET_DIR/debug/shoplens
    KAFKA__BROKERS=127.0.0.1:$KAFKA_PORT "$bin" topics --partitions "$PARTITIONS"
    CLICKHOUSE__URL=http://127.0.0.1:$CH_HTTP "$bin" migrate
    log "up: kafka 127.0.0.1:$KAFKA_PORT, clickhouse http://127.0.0.1:$CH_HTTP, prometheus http://127.0.0.1:$PROM_PORT (state $STATE)"
}

down() {
    local name pid
    for name in prometheus clickhouse clickhouse2 zookeeper tansu; do
        if running "$name"; then
            pid=$(cat "$STATE/run/$name.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            log "stopped $name"
        fi
        rm -f "$STATE/run/$name.pid"
    done
}

status() {
    local name
    for name in tansu clickhouse clickhouse2 zookeeper prometheus; do
        if running "$name"; then echo "$name: running (pid $(cat "$STATE/run/$name.pid"))"; else echo "$name: stopped"; fi
    done
}

case "${1:-}" in
    install) install ;;
    up) up ;;
    down) down ;;
    status) status ;;
    pytools) need_pytools >&2 && echo "$PYTOOLS/bin/python" ;;
    tansu) need_tansu >&2 && echo "$TANSU" ;;
    *) echo "usage: $0 install|up|down|status|pytools|tansu" >&2; exit 2 ;;
esac
