#!/usr/bin/env bash
# Third parties' hot paths beside GET /users/me and the /health/live floor,
# on SQLite and MariaDB, as ratios in one run:
#
# - POST /oauth/introspect of a live access token (a resource server's
#   call on every request it serves), which reads the session from the
#   database each time so that a revocation shows at once: of one user's
#   token (`introspect`), and of 64 users' tokens in turn (`intro64`,
#   where concurrent lookups cannot share a session);
# - POST /oauth/token with grant_type=client_credentials;
# - GET /users/me with the same user's token (its session check cached);
# - GET /health/live (the floor: the server's own overhead).
#
#   bench/clients.sh [SECONDS] [CONNECTIONS]
#
# Needs wrk and MariaDB as root on 127.0.0.1:3306.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-32}
port=${GATEHOUSE_BENCH_PORT:-18390}
. bench/lib.sh
work=$(mktemp -d /var/tmp/gatehouse-bench-clients.XXXXXX)
on_exit+=("rm -rf '$work'")
start_both_stores "$work" "$port"
bin="$CARGO_TARGET_DIR/release/gatehouse"
db_of() { # PORT → the --database-url of that instance
  if [ "$1" = "$port" ]; then
    echo "mysql://root@127.0.0.1:3306/gatehouse_bench_$$_$port"
  else
    echo "sqlite://$work/sqlite/gatehouse.db"
  fi
}

printf '%-8s %10s %10s %10s %10s %10s %9s %9s %9s\n' store live_rps me_rps introspect \
  intro64 cc_grant intro/me i64/me cc/live
for p in "$((port + 1))" "$port"; do
  store=$([ "$p" = "$port" ] && echo mariadb || echo sqlite)
  url="http://127.0.0.1:$p"
  token=$(token_for "$url")
  for n in $(seq 64); do
    curl -fsS -X POST "$url/users" -H 'Content-Type: application/json' \
      -d "{\"username\":\"bench$n\",\"password\":\"correct horse battery staple\"}" >/dev/null
    curl -fsS -X POST "$url/oauth/token" \
      -d "grant_type=password&username=bench$n&password=correct+horse+battery+staple" |
      python3 -c 'import json,sys; print("token=" + json.load(sys.stdin)["access_token"])'
  done >"$work/$store-tokens.txt"
  client=$("$bin" client create --name "bench $store" --confidential --scope profile \
    --database-url "$(db_of "$p")" --data-dir "$work/$store")
  id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])' <<<"$client")
  secret=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])' <<<"$client")
  basic="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  wrk -t2 -c"$conns" -d"${secs}s" --latency "$url/health/live" >"$work/$store-live.txt" 2>&1
  wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $token" "$url/users/me" \
    >"$work/$store-me.txt" 2>&1
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/post.lua "$url" -- \
    /oauth/introspect "$basic" "token=$token" >"$work/$store-introspect.txt" 2>&1
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/post.lua "$url" -- \
    /oauth/introspect "$basic" "@$work/$store-tokens.txt" >"$work/$store-intro64.txt" 2>&1
  wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/post.lua "$url" -- \
    /oauth/token "$basic" "grant_type=client_credentials" >"$work/$store-cc.txt" 2>&1
  # Every answer was a success (wrk counts other statuses as errors).
  for f in live me introspect intro64 cc; do
    if grep -q "Non-2xx" "$work/$store-$f.txt"; then
      echo "$store $f: non-2xx answers" >&2
      cat "$work/$store-$f.txt" >&2
      exit 1
    fi
  done
  live=$(rps "$work/$store-live.txt")
  me=$(rps "$work/$store-me.txt")
  intro=$(rps "$work/$store-introspect.txt")
  intro64=$(rps "$work/$store-intro64.txt")
  cc=$(rps "$work/$store-cc.txt")
  ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
  printf '%-8s %10s %10s %10s %10s %10s %9s %9s %9s\n' "$store" "$live" "$me" "$intro" \
    "$intro64" "$cc" "$(ratio "$intro" "$me")" "$(ratio "$intro64" "$me")" "$(ratio "$cc" "$live")"
done
