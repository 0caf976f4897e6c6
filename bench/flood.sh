#!/usr/bin/env bash
# A login flood against one release Gatehouse (SQLite, default settings but
# the login throttle): GET /users/me alone and during the flood, then five
# 15 s rounds of the flood; the peak resident size through all of it and the
# resident size once idle again. Uses ../shared/bench's wrk scripts and set-up.
#
#   bench/flood.sh [FLOOD_CONNECTIONS] [ME_CONNECTIONS]    (defaults 256 and 16)
#
# Needs wrk and ../shared/bench/setup.sh. Writes only under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
flood=${1:-256}
me_conns=${2:-16}
py=${BENCH_VENV:-/var/tmp/gatehouse-bench-venv}/bin/python
port=${GATEHOUSE_BENCH_PORT:-18095}
base="http://127.0.0.1:$port"
. bench/lib.sh

work=$(mktemp -d /var/tmp/gatehouse-flood.XXXXXX)
start_gatehouse "$work/data" "$port" "${unthrottled[@]}"
server=${servers[0]}

rss() { awk -v key="$1:" '$1 == key {print int($2 / 1024)}' "/proc/$server/status"; }
prep() { "$py" "$shared/load/prepare.py" "$@" --base "$base" --flavour gatehouse >/dev/null; }
# wrk_run SCENARIO CONNECTIONS SECONDS OUT [ARGS…]
wrk_run() {
  wrk -t2 -c"$2" -d"$3s" --timeout 10s --latency -s "$shared/load/$1.lua" "$base" \
    -- flavour=gatehouse threads=2 "${@:5}" >"$4" 2>&1
}
rps_of() { awk '/^Requests\/sec:/ {print $2}' "$1"; }
p99_of() { awk '$1 == "99%" {print $2}' "$1"; }

prep users
prep mint --kind access --count 50 --out "$work/tokens.txt"
idle_before=$(rss VmRSS)

wrk_run me "$me_conns" 10 "$work/me-alone.txt" "tokens=$work/tokens.txt"
wrk_run login "$flood" 16 "$work/flood-0.txt" &
flooding=$!
sleep 3
wrk_run me "$me_conns" 10 "$work/me-during.txt" "tokens=$work/tokens.txt"
wait "$flooding"
for round in 1 2 3 4; do
  wrk_run login "$flood" 15 "$work/flood-$round.txt"
done
peak=$(rss VmHWM)
sleep 5
idle_after=$(rss VmRSS)

alone=$(rps_of "$work/me-alone.txt")
during=$(rps_of "$work/me-during.txt")
echo "me alone: $alone rps, p99 $(p99_of "$work/me-alone.txt") ($me_conns connections)"
echo "me during a login flood of $flood connections: $during rps, p99 $(p99_of "$work/me-during.txt")"
awk -v a="$alone" -v d="$during" 'BEGIN { if (a > 0) printf "me during / alone: %.2f (goal >= 0.5, p99 < 50 ms)\n", d / a }'
for round in 0 1 2 3 4; do
  echo "login flood round $round: $(rps_of "$work/flood-$round.txt") rps, $(grep -c . "$work/flood-$round.txt" >/dev/null && awk '/Non-2xx/ {print $NF}' "$work/flood-$round.txt") non-2xx"
done
echo "resident size: idle ${idle_before} MB before, peak ${peak} MB through five flood rounds (goal < 150), idle ${idle_after} MB after (goal < 100)"
