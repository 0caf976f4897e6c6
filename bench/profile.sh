#!/usr/bin/env bash
# Where a scenario's CPU goes: perf samples of a release Gatehouse on SQLite
# while wrk drives GET /users/me (`me`), chained refreshes (`refresh`) or
# password logins (`login`) with ../shared/bench's scripts, then the costliest functions by their own
# time and the share of a few families of them (signatures, SQLite, the
# kernel's network and scheduling, allocation, logging).
#
#   bench/profile.sh me|refresh|login [SECONDS] [BINARY]
#
# Needs perf (linux-perf), wrk and ../shared/bench/setup.sh. Writes only
# under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=$1
secs=${2:-5}
py=${BENCH_VENV:-/var/tmp/gatehouse-bench-venv}/bin/python
port=${GATEHOUSE_BENCH_PORT:-18210}
. bench/lib.sh
[ -n "${3:-}" ] && BINARY=$(realpath "$3")
work=$(mktemp -d /var/tmp/gatehouse-profile.XXXXXX)
start_gatehouse "$work" "$port" "${unthrottled[@]}"
url="http://127.0.0.1:$port"
"$py" "$shared/load/prepare.py" users --base "$url" --flavour gatehouse 2>/dev/null
case $scenario in
  me) args=(tokens="$work/tokens.txt") kind=access ;;
  refresh) args=(tokens="$work/tokens.txt") kind=refresh ;;
  login) args=(users=50 prefix=bench password=Bench-Load-7Qx9-Lm2v) kind= ;;
  *) echo "usage: $0 me|refresh|login [SECONDS] [BINARY]" >&2; exit 2 ;;
esac
[ -n "$kind" ] && "$py" "$shared/load/prepare.py" mint --base "$url" --flavour gatehouse \
  --kind "$kind" --count 64 --out "$work/tokens.txt" 2>/dev/null
wrk -t2 -c32 -d"$((secs + 2))s" --latency -s "$shared/load/$scenario.lua" "$url" -- \
  flavour=gatehouse threads=2 "${args[@]}" >"$work/wrk.txt" 2>&1 &
wrk_pid=$!
sleep 1
perf record -q -F 1999 -g -p "${servers[0]}" -o "$work/perf.data" -- sleep "$secs" 2>/dev/null
wait "$wrk_pid"
perf report -i "$work/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
  grep '%' | grep -v '^#' >"$work/self.txt"
echo "$scenario: $(grep -m1 '^WRK_RESULT' "$work/wrk.txt" | grep -o 'rps=[0-9.]*') while sampled; perf data in $work"
echo "top functions by own time:"
head -n 10 "$work/self.txt" | cut -c1-120
family() { # NAME REGEX
  awk -v name="$1" -v re="$2" '$3 ~ re || $0 ~ re { sum += $1 } END { printf "  %-34s %5.1f%%\n", name, sum }' "$work/self.txt"
}
echo "by family (own time):"
family "Ed25519 (curve25519, sha512)" 'curve25519|ed25519|sha512'
family "SQLite" 'sqlite3|Vdbe|btree|pager'
family "kernel (network, scheduling)" '[[]k[]]'
family "allocation (malloc, free)" 'malloc|free|_int_|cfree|realloc'
family "logging (tracing)" 'tracing|fmt::|Formatter|write_fmt'
family "JSON (serde_json)" 'serde_json'
family "SHA-256" 'sha256|sha2::'
family "Argon2 (blake2)" 'argon2|blake2'
