#!/usr/bin/env bash
# Silent connections against one release Gatehouse (SQLite, defaults): N TCP
# connections that never send a byte are held open, then a fresh client
# asks for /health/live and for a login; prints how long each took and how
# many silent connections the server still had open after
# --header-read-timeout.
#
#   bench/silent.sh [SILENT] [NOFILE]      (defaults 10000, and the shell's limits)
#
# NOFILE runs the server under `ulimit -n NOFILE` (soft and hard), e.g.
# `bench/silent.sh 1100 1024`. Writes only under /var/tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
silent=${1:-10000}
nofile=${2:-}
port=${GATEHOUSE_BENCH_PORT:-18096}
base="http://127.0.0.1:$port"
. bench/lib.sh

work=$(mktemp -d /var/tmp/gatehouse-silent.XXXXXX)
NOFILE=$nofile start_gatehouse "$work/data" "$port" --header-read-timeout 10s
server=${servers[0]}
curl -fsS -o /dev/null -X POST "$base/users" -H 'content-type: application/json' \
  -d '{"username":"fresh","password":"correct horse battery staple"}'

python3 - "$port" "$silent" "$server" <<'EOF'
import os, socket, subprocess, sys, time
port, count, server = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for _ in range(count):
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    held.append(s)
def open_sockets():
    return len(os.listdir(f"/proc/{server}/fd"))
time.sleep(1)
print(f"{count} silent connections open; the server holds {open_sockets()} file descriptors")
for path, args in [("/health/live", []),
                   ("/oauth/token", ["-X", "POST", "-d", "grant_type=password&username=fresh&password=correct horse battery staple"])]:
    started = time.monotonic()
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
                          f"http://127.0.0.1:{port}{path}", *args], capture_output=True, text=True)
    print(f"fresh client {path}: {out.stdout} in {time.monotonic() - started:.3f} s")
time.sleep(11)
print(f"after the 10 s header-read timeout the server holds {open_sockets()} file descriptors")
EOF
grep -o 'open_file_limit=[0-9]* max_connections=[0-9]*' "$work/data/gatehouse.log" | head -1
