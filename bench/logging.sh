#!/usr/bin/env bash
# What request logging costs: GET /users/me on two Gatehouse instances side by
# side on SQLite, one at the default level (`info`: a line per request, to a
# file) and one at `warn` (none), in alternating rounds of one run, with the
# ratio. Needs wrk.  Usage: bench/logging.sh [SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
rounds=${3:-2}
port=${GATEHOUSE_BENCH_PORT:-18097}
. bench/lib.sh
work=$(mktemp -d /var/tmp/gatehouse-bench-logging.XXXXXX)
on_exit+=("rm -rf '$work'")

logged_port=$port
GATEHOUSE_LOG="info,sqlx=warn" start_gatehouse "$work/logged" "$logged_port"
quiet_port=$((port + 1))
GATEHOUSE_LOG="warn" start_gatehouse "$work/quiet" "$quiet_port"
logged_token=$(token_for "http://127.0.0.1:$logged_port")
quiet_token=$(token_for "http://127.0.0.1:$quiet_port")

run() { # NAME PORT TOKEN ROUND
  wrk -t2 -c"$conns" -d1s -H "Authorization: Bearer $3" "http://127.0.0.1:$2/users/me" >/dev/null # warm-up
  wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $3" \
    "http://127.0.0.1:$2/users/me" >"$work/$1-$4.txt"
}
for round in $(seq 1 "$rounds"); do
  run logged "$logged_port" "$logged_token" "$round"
  run quiet "$quiet_port" "$quiet_token" "$round"
done
lines=$(grep -c '"request"\| request ' "$work/logged/gatehouse.log" || true)
echo "GET /users/me, SQLite, wrk -c$conns, ${secs}s x $rounds rounds (alternating)"
for round in $(seq 1 "$rounds"); do
  l=$(rps "$work/logged-$round.txt"); q=$(rps "$work/quiet-$round.txt")
  printf "  round %d: info (a line per request) %s rps, p99 %s | warn (no request lines) %s rps, p99 %s | info / warn %.2f\n" \
    "$round" "$l" "$(p99 "$work/logged-$round.txt")" "$q" "$(p99 "$work/quiet-$round.txt")" \
    "$(awk -v l="$l" -v q="$q" 'BEGIN {print l / q}')"
done
echo "  request lines written at info: $lines"
