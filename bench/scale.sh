#!/usr/bin/env bash
# Does throughput hold as the data grows? `me` and `refresh` on a database
# holding a few sessions and on one holding many, on each store, in one
# run: for each size a fresh database and instance, filled by
# bench/scale.py (a fifth of the sessions live, the rest revoked or
# expired, one refresh token each), then ../shared/bench's me.lua and
# refresh.lua with tokens of TOKENS live sessions spread across all the
# live ones, then the cache counters from /metrics.
#
#   bench/scale.sh [SECONDS] [CONNECTIONS] [SIZES] [TOKENS]
#       defaults: 5, 32, "1000 1000000", 10000 (at most the live sessions)
#
# Needs wrk, MariaDB as root on 127.0.0.1:3306, openssl and
# ../shared/bench/setup.sh. Writes only under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
sizes=${3:-1000 1000000}
tokens=${4:-10000}
py=${BENCH_VENV:-/var/tmp/gatehouse-bench-venv}/bin/python
port=${GATEHOUSE_BENCH_PORT:-18200}
. bench/lib.sh

work=$(mktemp -d /var/tmp/gatehouse-scale.XXXXXX)
on_exit+=("rm -rf '$work'")
openssl genpkey -algorithm ed25519 -out "$work/key.pem" 2>/dev/null

# wrk_run SCENARIO URL TOKENS OUT SECONDS: the shared script, as run.sh runs it.
wrk_run() {
  SHARED_BENCH="$shared" wrk -t2 -c"$conns" -d"$5s" --latency -s "$shared/load/$1.lua" "$2" -- \
    flavour=gatehouse threads=2 tokens="$3" >"$4" 2>&1
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $(grep -m1 '^WRK_RESULT ' "$1")"; }
metric() { awk -v name="$2" '$1 == name {print $2}' "$1"; }

for store in mariadb sqlite; do
  for size in $sizes; do
    live=$((size / 5))
    picked=$((tokens < live ? tokens : live))
    dir="$work/$store-$size"
    mkdir -p "$dir"
    if [ "$store" = mariadb ]; then
      db="gatehouse_scale_$$_$size"
      mariadb -uroot -e "CREATE DATABASE $db"
      on_exit+=("mariadb -uroot -e 'DROP DATABASE IF EXISTS $db'")
      url_db="mysql://root@127.0.0.1:3306/$db"
    else
      url_db="sqlite://$dir/gatehouse.db"
    fi
    start_gatehouse "$dir" "$port" --database-url "$url_db" --signing-key-file "$work/key.pem" \
      "${unthrottled[@]}"
    url="http://127.0.0.1:$port"
    "$py" "$shared/load/prepare.py" users --base "$url" --flavour gatehouse 2>/dev/null
    seeded=$("$py" bench/scale.py --base "$url" --db "$url_db" --key "$work/key.pem" \
      --sessions "$size" --active "$live" --tokens "$picked" \
      --access-out "$dir/access.txt" --refresh-out "$dir/refresh.txt")
    # Refresh tokens: the first half warms up, the second half is measured.
    half=$((picked / 2))
    head -n "$half" "$dir/refresh.txt" >"$dir/refresh-warm.txt"
    tail -n +"$((half + 1))" "$dir/refresh.txt" >"$dir/refresh-run.txt"
    wrk_run me "$url" "$dir/access.txt" "$dir/me-warm.txt" 2
    wrk_run me "$url" "$dir/access.txt" "$dir/me.txt" "$secs"
    curl -fsS "$url/metrics" >"$dir/metrics-me.txt"
    wrk_run refresh "$url" "$dir/refresh-warm.txt" "$dir/refresh-warm.out" 2
    wrk_run refresh "$url" "$dir/refresh-run.txt" "$dir/refresh.out" "$secs"
    hits=$(metric "$dir/metrics-me.txt" gatehouse_session_cache_hits_total)
    misses=$(metric "$dir/metrics-me.txt" gatehouse_session_cache_misses_total)
    vhits=$(metric "$dir/metrics-me.txt" gatehouse_verified_token_cache_hits_total)
    vmisses=$(metric "$dir/metrics-me.txt" gatehouse_verified_token_cache_misses_total)
    echo "== $store, $size sessions ($live live; $seeded)"
    for scenario in me refresh; do
      out="$dir/$scenario.txt"
      [ "$scenario" = refresh ] && out="$dir/refresh.out"
      echo "$scenario: $(field "$out" rps) rps (p50 $(field "$out" p50_ms) ms, p99 $(field "$out" p99_ms) ms), unexpected $(field "$out" unexpected), statuses $(field "$out" statuses)"
    done
    awk -v h="${hits:-0}" -v m="${misses:-0}" -v vh="${vhits:-0}" -v vm="${vmisses:-0}" 'BEGIN {
      printf "  cache hit rate over the me runs: sessions %.1f%% (%d of %d), verified tokens %.1f%% (%d of %d)\n",
        100 * h / (h + m + 1e-9), h, h + m, 100 * vh / (vh + vm + 1e-9), vh, vh + vm }'
    kill "${servers[-1]}" && wait "${servers[-1]}" 2>/dev/null || true
    unset 'servers[-1]'
  done
done
