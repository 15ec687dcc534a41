#!/usr/bin/env bash
# The test command: installs and starts what the tests need (broker,
# ClickHouse, Prometheus), checks formatting, lints, validates the deploy
# files, runs every test, and stops the services again.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n== %s\n' "$*"; }

step "formatting"
cargo fmt --all -- --check

step "local stack"
deploy/local/stack.sh up
started_here=1
cleanup() { [ -n "${started_here:-}" ] && deploy/local/stack.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "lints"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "deploy files"
promtool check config "${SHOPLENS_STATE:-$ROOT/.stack}/prometheus/prometheus.yml"
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.yml
docker-compose -f docker-compose.yml config --quiet
echo "docker-compose.yml is valid"
py=$(deploy/local/stack.sh pytools)
(cd deploy/kubernetes && "$py" -m kubernetes_validate --strict --quiet \
    $(sed -n 's/^  - \([a-z-]*\.yaml\)$/\1/p' kustomization.yaml))
echo "deploy/kubernetes is valid (Kubernetes schemas, strict)"

step "SQL on current ClickHouse"
"$py" deploy/local/current_clickhouse.py "$CARGO_TARGET_DIR/debug/shoplens"

step "tests"
# The broker-restart test runs a broker of its own with durable storage.
SHOPLENS_TANSU=$(deploy/local/stack.sh tansu)
export SHOPLENS_TANSU
log=$(mktemp)
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
cleanup
started_here=
# One closing line with the totals of every test binary.
passed=$(grep -Eo 'test result: [A-Za-z]+\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s += $1} END {print s + 0}')
rm -f "$log"
echo
echo "cargo: $passed passed, $failed failed"
exit "$status"
