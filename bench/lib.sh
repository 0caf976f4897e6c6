# What the bench scripts share; sourced by them from the project root.

shared=${SHARED_BENCH:-../shared/bench}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --quiet --release --bin gatehouse

# The servers started by start_gatehouse, stopped on exit.
servers=()
on_exit=()
stop_servers() {
  for server in "${servers[@]}"; do
    kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  done
  for command in "${on_exit[@]}"; do eval "$command" || true; done
}
trap stop_servers EXIT

# start_gatehouse DIR PORT [FLAGS…]: the release binary on 127.0.0.1:PORT
# with its data and log (gatehouse.log) in DIR, its pid appended to
# `servers`; returns once it is ready. With NOFILE set it runs under
# `ulimit -n NOFILE`; with BINARY set it runs that binary instead.
start_gatehouse() {
  local dir=$1 port=$2
  shift 2
  mkdir -p "$dir"
  local command=("${BINARY:-$CARGO_TARGET_DIR/release/gatehouse}" --listen "127.0.0.1:$port" --data-dir "$dir" "$@")
  if [ -n "${NOFILE:-}" ]; then
    bash -c 'ulimit -n "$0" && exec "$@"' "$NOFILE" "${command[@]}" >"$dir/gatehouse.log" 2>&1 &
  else
    "${command[@]}" >"$dir/gatehouse.log" 2>&1 &
  fi
  servers+=("$!")
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/health/ready" >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "$0: gatehouse in $dir did not become ready" >&2
  exit 1
}

# The login throttle off: the harness logs its users in from one address.
unthrottled=(--login-free-failures 1000000 --address-max-failures 1000000)

# start_both_stores DIR PORT: Gatehouse, unthrottled, on a fresh MariaDB
# database on PORT and on SQLite on PORT+1, with their data under DIR; the
# database is dropped on exit.
start_both_stores() {
  local dir=$1 port=$2
  local db="gatehouse_bench_$$_$port"
  mariadb -uroot -e "CREATE DATABASE $db"
  on_exit+=("mariadb -uroot -e 'DROP DATABASE IF EXISTS $db'")
  start_gatehouse "$dir/mariadb" "$port" --database-url "mysql://root@127.0.0.1:3306/$db" "${unthrottled[@]}"
  start_gatehouse "$dir/sqlite" "$((port + 1))" --database-url "sqlite://$dir/sqlite/gatehouse.db" \
    "${unthrottled[@]}"
}

# token_for URL: registers the user `bench` and prints an access token of it.
token_for() {
  local url=$1
  curl -fsS -X POST "$url/users" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"correct horse battery staple"}' >/dev/null
  curl -fsS -X POST "$url/oauth/token" \
    -d 'grant_type=password&username=bench&password=correct+horse+battery+staple' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# rps FILE, p99 FILE: from wrk's own output (with --latency).
rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1 == "99%" {print $2}' "$1"; }
