#!/usr/bin/env bash
# The authorization code round trip (sign-in page → form with the password
# → code → token) beside the password grant, on SQLite and MariaDB, as a
# ratio in one run (bench/authorize.py). Both are bounded by the password
# hash (Argon2id with the production parameters); the goal is ≥ 0.8.
#
#   bench/authorize.sh [SECONDS] [THREADS]
#
# Needs MariaDB as root on 127.0.0.1:3306. Writes only under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
threads=${2:-4}
port=${GATEHOUSE_BENCH_PORT:-18420}
. bench/lib.sh
work=$(mktemp -d /var/tmp/gatehouse-bench-authorize.XXXXXX)
on_exit+=("rm -rf '$work'")
start_both_stores "$work" "$port"
bin="$CARGO_TARGET_DIR/release/gatehouse"
for p in "$((port + 1))" "$port"; do
  store=$([ "$p" = "$port" ] && echo mariadb || echo sqlite)
  if [ "$store" = mariadb ]; then
    url_flag=(--database-url "mysql://root@127.0.0.1:3306/gatehouse_bench_$$_$port")
  else
    url_flag=(--database-url "sqlite://$work/sqlite/gatehouse.db")
  fi
  client=$("$bin" client create --name "bench app" --first-party --scope profile \
    --redirect-uri http://127.0.0.1/callback "${url_flag[@]}" --data-dir "$work/$store")
  id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$client")
  printf '%-8s ' "$store"
  python3 bench/authorize.py "http://127.0.0.1:$p" "$id" "$secs" "$threads"
done
