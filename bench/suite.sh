#!/usr/bin/env bash
# The benchmark suite, in one run per store: login (password grant),
# refresh (chained rotation), me (GET /users/me), each next to the seed app
# that Gatehouse replaces (../shared/bench's peers/fastapi_seed) on the same
# kind of database; the mix (bench/mix.lua: 90% me, 9% refresh, 1% login,
# Gatehouse only) and the floor (GET /health/live, no token, no database);
# with the ratios the performance issue asks for.
#
#   bench/suite.sh [SECONDS] [CONNECTIONS]      (defaults 5 and 32)
#
# Needs wrk, MariaDB as root on 127.0.0.1:3306 and ../shared/bench/setup.sh.
# Writes only under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
py=${BENCH_VENV:-/var/tmp/gatehouse-bench-venv}/bin/python
port=${GATEHOUSE_BENCH_PORT:-18180}
. bench/lib.sh

work=$(mktemp -d /var/tmp/gatehouse-suite.XXXXXX)
start_both_stores "$work" "$port"

# One Argon2id verify with the production parameters, in this run.
verify_ms=$("$py" - <<'EOF'
import time
from argon2 import PasswordHasher
hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
stored = hasher.hash("correct horse battery staple")
started = time.perf_counter()
for _ in range(20):
    hasher.verify(stored, "correct horse battery staple")
print(f"{(time.perf_counter() - started) / 20 * 1000:.2f}")
EOF
)
cores=$(nproc)

# mix URL OUT: bench/mix.lua (90% me, 9% refresh, 1% login) on Gatehouse,
# after a warm-up of the same length as compare.sh's, with fresh tokens.
mix() {
  local url=$1 out=$2
  for phase in warm run; do
    "$py" "$shared/load/prepare.py" mint --base "$url" --flavour gatehouse --kind access \
      --count 50 --out "$work/mix-access.txt" 2>/dev/null
    "$py" "$shared/load/prepare.py" mint --base "$url" --flavour gatehouse --kind refresh \
      --count $((conns * 3)) --out "$work/mix-refresh.txt" 2>/dev/null
    local seconds=$secs
    [ "$phase" = warm ] && seconds=2
    SHARED_BENCH="$shared" wrk -t2 -c"$conns" -d"${seconds}s" --latency -s bench/mix.lua "$url" -- \
      access="$work/mix-access.txt" refresh="$work/mix-refresh.txt" threads=2 \
      password=Bench-Load-7Qx9-Lm2v >"$out" 2>&1
  done
}

for store in mariadb sqlite; do
  url="http://127.0.0.1:$port"
  [ "$store" = sqlite ] && url="http://127.0.0.1:$((port + 1))"
  "$shared/load/compare.sh" -d "$secs" -c "$conns" -s login,refresh,me -p seed --db "$store" \
    -g "$url" -n gatehouse -o "$work/compare-$store" >"$work/compare-$store.txt" 2>&1
  mix "$url" "$work/mix-$store.txt"
  wrk -t2 -c"$conns" -d"${secs}s" --latency "$url/health/live" >"$work/floor-$store.txt" 2>&1
done

rps() { grep -o "scenario=$2 target=$3 rps=[0-9.]*" "$work/compare-$1.txt" | head -1 | sed 's/.*rps=//'; }
p99() { grep -o "scenario=$2 target=$3 rps=[0-9.]* p50_ms=[0-9.]* p99_ms=[0-9.]*" "$work/compare-$1.txt" | head -1 | sed 's/.*p99_ms=//'; }
echo "one Argon2id verify: $verify_ms ms; cores: $cores"
for store in mariadb sqlite; do
  floor=$(awk '/^Requests\/sec:/ {print $2}' "$work/floor-$store.txt")
  echo "== $store"
  for scenario in login refresh me; do
    echo "$scenario: gatehouse $(rps "$store" "$scenario" gatehouse) rps (p99 $(p99 "$store" "$scenario" gatehouse) ms), seed $(rps "$store" "$scenario" seed) rps (p99 $(p99 "$store" "$scenario" seed) ms)"
  done
  result=$(grep -m1 '^WRK_RESULT ' "$work/mix-$store.txt" || echo "WRK_RESULT failed")
  field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${result#WRK_RESULT }"; }
  echo "mix (90% me, 9% refresh, 1% login): $(field rps) rps (p50 $(field p50_ms) ms, p99 $(field p99_ms) ms, goal p99 < 20 ms), unexpected $(field unexpected), starved $(field starved), timeouts $(field timeouts), statuses $(field statuses)"
  echo "floor (/health/live): $floor rps"
  awk -v s="$store" -v me="$(rps "$store" me gatehouse)" -v seed_me="$(rps "$store" me seed)" \
      -v floor="$floor" -v login="$(rps "$store" login gatehouse)" -v v="$verify_ms" -v c="$cores" 'BEGIN {
    goal = (s == "mariadb") ? 25 : 10
    if (seed_me > 0) printf "  me / seed me: %.1fx (goal >= %dx)\n", me / seed_me, goal
    if (floor > 0) printf "  me / floor: %.2fx (goal >= 0.25x)\n", me / floor
    if (v > 0) printf "  login / (cores / verify time): %.2fx (goal >= 0.9x)\n", login / (c * 1000 / v)
  }'
done
echo "results: $work"
