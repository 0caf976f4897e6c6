#!/usr/bin/env bash
# Password reset requests: is the answer for an account that exists (and has
# an address, so a mail goes) timed like the answer for one that does not?
# And does a slow SMTP server slow the request path?
#
# 1. Known against unknown: wrk POSTs /auth/password-reset naming the same
#    existing account, then naming accounts that do not exist, in
#    alternating rounds, on SQLite and on MariaDB; the median (wrk's 50%)
#    of each, and their ratio. The mailer runs meanwhile, looking the
#    requests up and sending (to an SMTP server that takes 1 s per message).
# 2. 100 reset requests for 100 existing accounts, 10 at a time, while the
#    SMTP server takes 1 s per message: each request's time (p50, p99), and
#    how long the 100 mails took to arrive.
#
#   bench/reset.sh [SECONDS] [CONNECTIONS] [ROUNDS]
#
# Needs wrk, python3 and MariaDB as root on 127.0.0.1:3306; the SMTP server
# is tests/mail/smtp_sink.py (aiosmtpd), installed into a virtualenv if
# python3 lacks it.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=${2:-16}
rounds=${3:-3}
port=${GATEHOUSE_BENCH_PORT:-18290}
. bench/lib.sh
work=$(mktemp -d /var/tmp/gatehouse-bench-reset.XXXXXX)
on_exit+=("rm -rf '$work'")

python=python3
if ! python3 -c 'import aiosmtpd, trustme' 2>/dev/null; then
  venv=/var/tmp/gatehouse-bench-smtp-venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/mail/requirements.txt
  python=$venv/bin/python
fi
smtp_port=$((port + 10))
mkdir -p "$work/mail"
echo "slow 1" >"$work/mail/mode"
"$python" tests/mail/smtp_sink.py --port "$smtp_port" --dir "$work/mail" >/dev/null &
servers+=("$!")
sleep 1

mail_flags=(--smtp-url "smtp://127.0.0.1:$smtp_port" --mail-from "Bench <bench@example.org>"
  --address-max-failures 100000000)
db="gatehouse_bench_reset_$$"
mariadb -uroot -e "CREATE DATABASE $db"
on_exit+=("mariadb -uroot -e 'DROP DATABASE IF EXISTS $db'")
start_gatehouse "$work/mariadb" "$port" --database-url "mysql://root@127.0.0.1:3306/$db" "${mail_flags[@]}"
start_gatehouse "$work/sqlite" "$((port + 1))" "${mail_flags[@]}"

register() { # URL NAME
  curl -fsS -X POST "$1/users" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$2\",\"password\":\"correct horse battery staple\",\"email\":\"$2@example.org\"}" >/dev/null
}

median_ms() { # wrk output → its 50% latency in ms
  awk '$1 == "50%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
                     else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
                     print v }' "$1"
}

echo "== known against unknown accounts (${rounds} rounds of ${secs}s each, ${conns} connections)"
printf '%-8s %-6s %10s %10s %8s\n' store round known_ms unknown_ms ratio
for store in sqlite mariadb; do
  url="http://127.0.0.1:$port"
  [ "$store" = sqlite ] && url="http://127.0.0.1:$((port + 1))"
  register "$url" known
  for round in $(seq 1 "$rounds"); do
    for who in known unknown; do
      wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/reset.lua "$url" -- "$who" \
        >"$work/$store-$round-$who.txt" 2>&1
    done
    known=$(median_ms "$work/$store-$round-known.txt")
    unknown=$(median_ms "$work/$store-$round-unknown.txt")
    printf '%-8s %-6s %10s %10s %8s\n' "$store" "$round" "$known" "$unknown" \
      "$(python3 -c "print(f'{$known / $unknown:.3f}')")"
  done
done

echo "== 100 reset requests while the SMTP server takes 1 s per message (SQLite)"
url="http://127.0.0.1:$((port + 1))"
for n in $(seq 1 100); do register "$url" "slow$n"; done
sleep 2
URL=$url MAILDIR="$work/mail" python3 - <<'PY'
import concurrent.futures, http.client, json, os, time
url = os.environ["URL"].removeprefix("http://")
def reset(n):
    conn = http.client.HTTPConnection(url)
    started = time.perf_counter()
    conn.request("POST", "/auth/password-reset", json.dumps({"username": f"slow{n}"}),
                 {"Content-Type": "application/json"})
    status = conn.getresponse().status
    elapsed = time.perf_counter() - started
    assert status == 202, status
    return elapsed * 1000
started = time.perf_counter()
with concurrent.futures.ThreadPoolExecutor(10) as pool:
    times = sorted(pool.map(reset, range(1, 101)))
answered = time.perf_counter() - started
print(f"requests: p50 {times[49]:.1f} ms, p99 {times[98]:.1f} ms, max {times[-1]:.1f} ms; "
      f"all 100 answered in {answered:.2f} s")
def resets():
    # The registrations' verification mails go too (1 s each as well).
    count = 0
    for name in os.listdir(os.environ["MAILDIR"]):
        if name.endswith(".json"):
            with open(os.path.join(os.environ["MAILDIR"], name)) as f:
                mail = json.load(f)
            count += mail["subject"].startswith("Reset") and mail["rcpt_tos"][0].startswith("slow")
    return count
while (count := resets()) < 100 and time.perf_counter() - started < 180:
    time.sleep(0.5)
print(f"mails: {count} of the 100 reset mails delivered {time.perf_counter() - started:.1f} s "
      "after the first request (with the 100 registrations' verification mails, 4 at a time)")
PY
