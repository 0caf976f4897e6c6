#!/usr/bin/env bash
# Refresh throughput in one run, on MariaDB: Gatehouse's POST /auth/refresh
# under wrk (../shared/bench's harness: chained rotation, each token
# presented once), next to the FastAPI rotation peer under the same wrk
# settings, and next to the bare refresh transaction (benches/refresh_rotation.rs:
# the same SQL through the store, no HTTP) at the same concurrency. Prints
# each line and the ratios.
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
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  mariadb -uroot -e "DROP DATABASE IF EXISTS $db" || true
}
trap cleanup EXIT

GATEHOUSE_LOG=warn "$CARGO_TARGET_DIR/release/gatehouse" \
  --listen "127.0.0.1:$port" --data-dir "$work" \
  --database-url "mysql://root@127.0.0.1:3306/$db" \
  --login-free-failures 1000000 --address-max-failures 1000000 \
  >"$work/gatehouse.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

out="$work/compare"
"$shared/load/compare.sh" -d "$secs" -c "$conns" -s refresh -p rotation \
  -g "http://127.0.0.1:$port" -n gatehouse -o "$out" | tee "$work/compare.txt"
bare=$(GATEHOUSE_BENCH_TASKS="$conns" GATEHOUSE_BENCH_SECS="$secs" \
  GATEHOUSE_BENCH_MYSQL_URL=mysql://root@127.0.0.1:3306 \
  cargo bench --quiet --bench refresh_rotation 2>/dev/null | grep '^store=mysql')
echo "$bare"

rps_of() { grep -o "scenario=refresh target=$1 rps=[0-9.]*" "$work/compare.txt" | head -1 | sed 's/.*rps=//'; }
gate=$(rps_of gatehouse)
peer=$(rps_of '[a-z_]*rotation[a-z_]*')
floor=$(echo "$bare" | sed -E 's/.*commits_per_s=([0-9.]+).*/\1/')
retries=$(curl -fsS "http://127.0.0.1:$port/metrics" | grep '^gatehouse_db_transaction_retries_total' || true)
awk -v g="$gate" -v p="$peer" -v f="$floor" 'BEGIN {
  printf "refresh on MariaDB: gatehouse %.0f rps, rotation peer %.0f rps, bare transaction %.0f/s\n", g, p, f
  if (p > 0) printf "gatehouse / rotation peer: %.2fx (goal >= 10x)\n", g / p
  if (f > 0) printf "gatehouse / bare transaction: %.2fx (goal >= 0.8x)\n", g / f
}'
echo "${retries:-gatehouse_db_transaction_retries_total ?} (retried transactions during the run)"
