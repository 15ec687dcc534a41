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
cleanup() { [ -n "${started_here:-}" ] && deploy/local/stack.sh down || true; }
trap cleanup EXIT

step "lints"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "deploy files"
promtool check config "${SHOPLENS_STATE:-$ROOT/.stack}/prometheus/prometheus.yml"
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.yml
docker-compose -f docker-compose.yml config --quiet
echo "docker-compose.yml is valid"

step "tests"
cargo test --workspace --no-fail-fast
