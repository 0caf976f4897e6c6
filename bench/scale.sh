#!/usr/bin/env bash
# Does throughput hold as the data grows? `me` and `refresh` on a database
# holding a few sessions and on one holding many, on each store, in one
# run: for each size a fresh database and instance, filled by
# bench/scale.py (a fifth of the sessions live, the rest revoked or
# expired, one refresh token each), then ../shared/bench's me.lua and
# refresh.lua with the tokens of COUNT live sessions drawn at random across
# all the live ones, for each COUNT of TOKENS, and the cache hit rates of
# the measured me run from /metrics. The same COUNT on each size compares
# the same load on more data; a larger COUNT shows what the 5 s session
# check costs when more sessions are in use than it keeps fresh.
#
#   bench/scale.sh [SECONDS] [CONNECTIONS] [SIZES] [TOKENS]
#       defaults: 5, 32, "1000 1000000", "200 10000" (at most the live
#       sessions)
#
# Needs wrk, MariaDB as root on 127.0.0.1:3306, openssl and
# ../shared/bench/setup.sh. Writes only under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
sizes=${3:-1000 1000000}
tokens=${4:-200 10000}
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
    # One token pair for each session a run uses, none used twice (a
    # refresh token presented again would be reuse).
    counts=()
    for count in $tokens; do
      count=$((count < live ? count : live))
      [[ " ${counts[*]} " == *" $count "* ]] || counts+=("$count")
    done
    needed=0
    for count in "${counts[@]}"; do needed=$((needed + count)); done
    if [ "$needed" -gt "$live" ]; then
      echo "$0: the runs need the tokens of $needed sessions; $size sessions have $live live" >&2
      exit 2
    fi
    seeded=$("$py" bench/scale.py --base "$url" --db "$url_db" --key "$work/key.pem" \
      --sessions "$size" --active "$live" --tokens "$needed" \
      --access-out "$dir/access.txt" --refresh-out "$dir/refresh.txt")
    # Let the database write the rows out before measuring.
    if [ "$store" = mariadb ]; then
      for _ in $(seq 1 60); do
        dirty=$(mariadb -uroot -N -e "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'" | awk '{print $2}')
        [ "${dirty:-0}" -lt 500 ] && break
        sleep 1
      done
    fi
    echo "== $store, $size sessions ($live live; $seeded)"
    offset=0
    for count in "${counts[@]}"; do
      run="$dir/$count"
      mkdir -p "$run"
      # The tokens of `count` sessions drawn across all the live ones (the
      # files are shuffled); refresh: the first half warms up.
      sed -n "$((offset + 1)),$((offset + count))p" "$dir/access.txt" >"$run/access.txt"
      sed -n "$((offset + 1)),$((offset + count))p" "$dir/refresh.txt" >"$run/refresh.txt"
      offset=$((offset + count))
      half=$((count / 2))
      head -n "$half" "$run/refresh.txt" >"$run/refresh-warm.txt"
      tail -n +"$((half + 1))" "$run/refresh.txt" >"$run/refresh-run.txt"
      wrk_run me "$url" "$run/access.txt" "$run/me-warm.txt" 3
      curl -fsS "$url/metrics" >"$run/metrics-before.txt"
      wrk_run me "$url" "$run/access.txt" "$run/me.txt" "$secs"
      curl -fsS "$url/metrics" >"$run/metrics-after.txt"
      wrk_run refresh "$url" "$run/refresh-warm.txt" "$run/refresh-warm.out" 2
      wrk_run refresh "$url" "$run/refresh-run.txt" "$run/refresh.out" "$secs"
      delta() {
        echo $(($(metric "$run/metrics-after.txt" "$1") - $(metric "$run/metrics-before.txt" "$1")))
      }
      hits=$(delta gatehouse_session_cache_hits_total)
      misses=$(delta gatehouse_session_cache_misses_total)
      vhits=$(delta gatehouse_verified_token_cache_hits_total)
      vmisses=$(delta gatehouse_verified_token_cache_misses_total)
      echo "-- tokens of $count sessions"
      for out in "$run/me.txt" "$run/refresh.out"; do
        echo "$(basename "${out%.*}"): $(field "$out" rps) rps (p50 $(field "$out" p50_ms) ms, p99 $(field "$out" p99_ms) ms), unexpected $(field "$out" unexpected), statuses $(field "$out" statuses)"
      done
      awk -v h="$hits" -v m="$misses" -v vh="$vhits" -v vm="$vmisses" 'BEGIN {
        printf "  cache hit rate over the measured me run: sessions %.1f%% (%d of %d), verified tokens %.1f%% (%d of %d)\n",
          100 * h / (h + m + 1e-9), h, h + m, 100 * vh / (vh + vm + 1e-9), vh, vh + vm }'
    done
    kill "${servers[-1]}" && wait "${servers[-1]}" 2>/dev/null || true
    unset 'servers[-1]'
  done
done
