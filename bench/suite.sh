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

# One Argon2id verify with the production parameters, in this run: by
# Gatehouse's own hasher (benches/argon2_verify.rs, which also counts the
# verifies per second of every core verifying at once), and by argon2-cffi
# (the reference C implementation the seed uses), for comparison.
# Timed before and after the scenarios; the faster of the two counts (the
# machine is shared, and a slow moment would flatter the ratio).
cargo bench --quiet --bench argon2_verify >"$work/verify.txt" 2>/dev/null
c_verify_ms=$("$py" - <<'EOF'
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

# mix URL OUT [LOGINS]: bench/mix.lua (90% me, 9% refresh, 1% login) on
# Gatehouse, after a warm-up of the same length as compare.sh's, with fresh
# tokens. With LOGINS=split the logins come instead from a second wrk on 2
# of the connections (../shared/bench's login.lua, written to OUT.logins),
# so that the p99 of the first is that of me and refresh while logins hash.
mix() {
  local url=$1 out=$2 split=${3:-}
  local mixed=(logins=1) connections=$conns
  [ -n "$split" ] && mixed=(logins=0) connections=$((conns - 2))
  for phase in warm run; do
    "$py" "$shared/load/prepare.py" mint --base "$url" --flavour gatehouse --kind access \
      --count 50 --out "$work/mix-access.txt" 2>/dev/null
    "$py" "$shared/load/prepare.py" mint --base "$url" --flavour gatehouse --kind refresh \
      --count $((conns * 3)) --out "$work/mix-refresh.txt" 2>/dev/null
    local seconds=$secs
    [ "$phase" = warm ] && seconds=2
    if [ -n "$split" ]; then
      wrk -t2 -c2 -d"${seconds}s" --latency -s "$shared/load/login.lua" "$url" -- \
        flavour=gatehouse threads=2 users=50 prefix=bench password=Bench-Load-7Qx9-Lm2v \
        >"$out.logins" 2>&1 &
      logins_pid=$!
    fi
    SHARED_BENCH="$shared" wrk -t2 -c"$connections" -d"${seconds}s" --latency -s bench/mix.lua "$url" -- \
      access="$work/mix-access.txt" refresh="$work/mix-refresh.txt" threads=2 \
      password=Bench-Load-7Qx9-Lm2v "${mixed[@]}" >"$out" 2>&1
    if [ -n "$split" ]; then wait "$logins_pid"; fi
  done
}

for store in mariadb sqlite; do
  url="http://127.0.0.1:$port"
  [ "$store" = sqlite ] && url="http://127.0.0.1:$((port + 1))"
  "$shared/load/compare.sh" -d "$secs" -c "$conns" -s login,refresh,me -p seed --db "$store" \
    -g "$url" -n gatehouse -o "$work/compare-$store" >"$work/compare-$store.txt" 2>&1
  mix "$url" "$work/mix-$store.txt"
  mix "$url" "$work/split-$store.txt" split
  wrk -t2 -c"$conns" -d"${secs}s" --latency "$url/health/live" >"$work/floor-$store.txt" 2>&1
done

rps() { grep -o "scenario=$2 target=$3 rps=[0-9.]*" "$work/compare-$1.txt" | head -1 | sed 's/.*rps=//'; }
p99() { grep -o "scenario=$2 target=$3 rps=[0-9.]* p50_ms=[0-9.]* p99_ms=[0-9.]*" "$work/compare-$1.txt" | head -1 | sed 's/.*p99_ms=//'; }
cargo bench --quiet --bench argon2_verify >>"$work/verify.txt" 2>/dev/null
verify_ms=$(awk '{print $1}' "$work/verify.txt" | sort -n | head -n 1)
together=$(awk '{print $2}' "$work/verify.txt" | sort -n | tail -n 1)
echo "one Argon2id verify: $verify_ms ms (Gatehouse's hasher; before and after: $(awk '{print $1}' "$work/verify.txt" | paste -sd/)), $c_verify_ms ms (argon2-cffi); cores: $cores; $together verifies/s with every core verifying"
for store in mariadb sqlite; do
  floor=$(awk '/^Requests\/sec:/ {print $2}' "$work/floor-$store.txt")
  echo "== $store"
  for scenario in login refresh me; do
    echo "$scenario: gatehouse $(rps "$store" "$scenario" gatehouse) rps (p99 $(p99 "$store" "$scenario" gatehouse) ms), seed $(rps "$store" "$scenario" seed) rps (p99 $(p99 "$store" "$scenario" seed) ms)"
  done
  field() { # FILE NAME
    sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $(grep -m1 '^WRK_RESULT ' "$1" || echo failed)"
  }
  m=$work/mix-$store.txt s=$work/split-$store.txt l=$work/split-$store.txt.logins
  echo "mix (90% me, 9% refresh, 1% login): $(field "$m" rps) rps (p50 $(field "$m" p50_ms) ms, p99 $(field "$m" p99_ms) ms, goal p99 < 20 ms), unexpected $(field "$m" unexpected), starved $(field "$m" starved), timeouts $(field "$m" timeouts), statuses $(field "$m" statuses)"
  echo "mix with the logins on 2 connections of their own: me and refresh $(field "$s" rps) rps (p50 $(field "$s" p50_ms) ms, p99 $(field "$s" p99_ms) ms), unexpected $(field "$s" unexpected); logins $(field "$l" rps) rps (p99 $(field "$l" p99_ms) ms), unexpected $(field "$l" unexpected)"
  echo "floor (/health/live): $floor rps"
  awk -v s="$store" -v me="$(rps "$store" me gatehouse)" -v seed_me="$(rps "$store" me seed)" \
      -v floor="$floor" -v login="$(rps "$store" login gatehouse)" -v v="$verify_ms" -v cv="$c_verify_ms" -v t="$together" \
      -v c="$cores" 'BEGIN {
    goal = (s == "mariadb") ? 25 : 10
    if (seed_me > 0) printf "  me / seed me: %.1fx (goal >= %dx)\n", me / seed_me, goal
    if (floor > 0) printf "  me / floor: %.2fx (goal >= 0.25x)\n", me / floor
    if (v > 0) printf "  login / (cores / verify time): %.2fx (goal >= 0.9x); with argon2-cffi'"'"'s time %.2fx\n",
      login / (c * 1000 / v), login / (c * 1000 / cv)
    if (t > 0) printf "  login / verifies per second with every core verifying: %.2fx\n", login / t
  }'
done
echo "results: $work"
