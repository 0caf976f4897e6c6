#!/usr/bin/env bash
# This build against another Gatehouse binary (an older commit, say), side by
# side on SQLite in one run: GET /users/me (or, with SCENARIO=login,
# password logins with ../shared/bench's login.lua; with SCENARIO=refresh,
# chained refreshes with its refresh.lua, each token presented once), in
# alternating rounds, with the ratio. Needs wrk (and for logins and
# refreshes ../shared/bench/setup.sh).
#
#   [SCENARIO=login|refresh] bench/ab.sh OTHER_BINARY [SECONDS] [CONNECTIONS] [ROUNDS]
#
# To build an older commit without disturbing this tree's build:
#   git worktree add /var/tmp/gatehouse-old COMMIT
#   CARGO_TARGET_DIR=/var/tmp/gatehouse-old-target cargo build --release \
#     --manifest-path /var/tmp/gatehouse-old/Cargo.toml
set -euo pipefail
cd "$(dirname "$0")/.."
other=$(realpath "$1")
secs=${2:-5}
conns=${3:-32}
rounds=${4:-2}
port=${GATEHOUSE_BENCH_PORT:-18190}
. bench/lib.sh
work=$(mktemp -d /var/tmp/gatehouse-bench-ab.XXXXXX)
on_exit+=("rm -rf '$work'")

scenario=${SCENARIO:-me}
start_gatehouse "$work/this" "$port" "${unthrottled[@]}"
BINARY=$other start_gatehouse "$work/other" "$((port + 1))" "${unthrottled[@]}"
this_token=$(token_for "http://127.0.0.1:$port")
other_token=$(token_for "http://127.0.0.1:$((port + 1))")
if [ "$scenario" = login ]; then
  for p in "$port" "$((port + 1))"; do
    "${BENCH_VENV:-/var/tmp/gatehouse-bench-venv}/bin/python" "$shared/load/prepare.py" users \
      --base "http://127.0.0.1:$p" --flavour gatehouse 2>/dev/null
  done
fi

run() { # NAME PORT TOKEN ROUND
  if [ "$scenario" = refresh ]; then
    # The harness mints its own token chains (one login each), warms up,
    # and writes wrk's report beside its summary line.
    "$shared/load/run.sh" "$1=gatehouse@http://127.0.0.1:$2" refresh "$secs" "$conns" \
      >"$work/$1-$4.line"
    return
  fi
  local load=(-H "Authorization: Bearer $3" "http://127.0.0.1:$2/users/me")
  if [ "$scenario" = login ]; then
    load=(-s "$shared/load/login.lua" "http://127.0.0.1:$2" -- flavour=gatehouse threads=2 users=50
      prefix=bench password=Bench-Load-7Qx9-Lm2v)
  fi
  wrk -t2 -c"$conns" -d1s "${load[@]}" >/dev/null # warm-up
  wrk -t2 -c"$conns" -d"${secs}s" --latency "${load[@]}" >"$work/$1-$4.txt"
}
for round in $(seq 1 "$rounds"); do
  run this "$port" "$this_token" "$round"
  run other "$((port + 1))" "$other_token" "$round"
done
echo "$scenario, SQLite, wrk -c$conns, ${secs}s x $rounds rounds (alternating); other: $other"
if [ "$scenario" = refresh ]; then
  for round in $(seq 1 "$rounds"); do
    field() { grep -o " $2=[0-9.]*" "$work/$1-$round.line" | head -1 | cut -d= -f2; }
    t=$(field this rps); o=$(field other rps)
    printf "  round %d: this build %s rps, p99 %s ms, errors %s | other %s rps, p99 %s ms, errors %s | this / other %.2f\n" \
      "$round" "$t" "$(field this p99_ms)" "$(field this errors)" "$o" "$(field other p99_ms)" \
      "$(field other errors)" "$(awk -v t="$t" -v o="$o" 'BEGIN {print t / o}')"
  done
  exit 0
fi
for round in $(seq 1 "$rounds"); do
  t=$(rps "$work/this-$round.txt"); o=$(rps "$work/other-$round.txt")
  printf "  round %d: this build %s rps, p99 %s | other %s rps, p99 %s | this / other %.2f\n" \
    "$round" "$t" "$(p99 "$work/this-$round.txt")" "$o" "$(p99 "$work/other-$round.txt")" \
    "$(awk -v t="$t" -v o="$o" 'BEGIN {print t / o}')"
  grep -H 'Non-2xx\|Socket errors' "$work/this-$round.txt" "$work/other-$round.txt" || true
done
