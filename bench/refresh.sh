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
port=${GATEHOUSE_BENCH_PORT:-18080}
. bench/lib.sh
cargo bench --quiet --bench refresh_rotation --no-run 2>/dev/null

work=$(mktemp -d /var/tmp/gatehouse-bench.XXXXXX)
start_both_stores "$work" "$port"

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
