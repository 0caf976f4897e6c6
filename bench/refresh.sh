#!/usr/bin/env bash
# Refresh throughput in one run, on MariaDB and on SQLite: Gatehouse's
# POST /auth/refresh under wrk (../shared/bench's harness: chained rotation,
# each token presented once), next to the FastAPI rotation peer on the same
# database under the same wrk settings, and next to the bare refresh
# transaction (benches/refresh_rotation.rs: the same SQL through the store,
# no HTTP) at the same concurrency. Prints each line and the ratios.
#
#   bench/refresh.sh [SECONDS] [CONNECTIONS]      (defaults 5 and 32)
#
# Needs wrk (apt-get install wrk), MariaDB as root on 127.0.0.1:3306, and
# ../shared/bench set up (../shared/bench/setup.sh). Writes only under
# /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
shared=${SHARED_BENCH:-../shared/bench}
port=${GATEHOUSE_BENCH_PORT:-18080}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

cargo build --quiet --release --bin gatehouse
cargo bench --quiet --bench refresh_rotation --no-run 2>/dev/null

work=$(mktemp -d /var/tmp/gatehouse-bench.XXXXXX)
db="gatehouse_bench_$$"
mariadb -uroot -e "CREATE DATABASE $db"
servers=()
cleanup() {
  for server in "${servers[@]}"; do
    kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  done
  mariadb -uroot -e "DROP DATABASE IF EXISTS $db" || true
}
trap cleanup EXIT

# start_gatehouse NAME PORT DATABASE_URL: Gatehouse with the defaults, but
# for the login throttle (the harness logs its users in from one address).
start_gatehouse() {
  mkdir -p "$work/$1"
  "$CARGO_TARGET_DIR/release/gatehouse" \
    --listen "127.0.0.1:$2" --data-dir "$work/$1" --database-url "$3" \
    --login-free-failures 1000000 --address-max-failures 1000000 \
    >"$work/$1/gatehouse.log" 2>&1 &
  servers+=("$!")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$2/health/ready" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "refresh.sh: gatehouse ($1) did not become ready" >&2
  exit 1
}
start_gatehouse mariadb "$port" "mysql://root@127.0.0.1:3306/$db"
start_gatehouse sqlite "$((port + 1))" "sqlite://$work/sqlite/gatehouse.db"

for store in mariadb sqlite; do
  url="http://127.0.0.1:$port"
  [ "$store" = sqlite ] && url="http://127.0.0.1:$((port + 1))"
  "$shared/load/compare.sh" -d "$secs" -c "$conns" -s refresh -p rotation --db "$store" \
    -g "$url" -n "gatehouse" -o "$work/compare-$store" | tee "$work/compare-$store.txt"
done
bare=$(GATEHOUSE_BENCH_TASKS="$conns" GATEHOUSE_BENCH_SECS="$secs" \
  GATEHOUSE_BENCH_MYSQL_URL=mysql://root@127.0.0.1:3306 \
  cargo bench --quiet --bench refresh_rotation 2>/dev/null | grep '^store=')
echo "$bare"

for store in mariadb sqlite; do
  rps_of() { grep -o "scenario=refresh target=$1 rps=[0-9.]*" "$work/compare-$store.txt" | head -1 | sed 's/.*rps=//'; }
  gate=$(rps_of gatehouse)
  peer=$(rps_of '[a-z_]*rotation[a-z_]*')
  label=$store
  [ "$store" = mariadb ] && label=mysql
  floor=$(echo "$bare" | grep "^store=$label " | sed -E 's/.*commits_per_s=([0-9.]+).*/\1/')
  awk -v s="$store" -v g="$gate" -v p="$peer" -v f="$floor" 'BEGIN {
    printf "refresh on %s: gatehouse %.0f rps, rotation peer %.0f rps, bare transaction %.0f/s\n", s, g, p, f
    if (p > 0) printf "  gatehouse / rotation peer: %.2fx (goal >= 10x on MariaDB)\n", g / p
    if (f > 0) printf "  gatehouse / bare transaction: %.2fx (goal >= 0.8x)\n", g / f
  }'
done
retries=$(curl -fsS "http://127.0.0.1:$port/metrics" | grep '^gatehouse_db_transaction_retries_total' || true)
echo "${retries:-gatehouse_db_transaction_retries_total ?} (retried transactions on MariaDB during the run)"
