#!/usr/bin/env bash
# A 3-node MariaDB Galera cluster on loopback, with fresh data directories,
# for the multi-primary tests and benchmarks.
#
#   tests/galera/cluster.sh start     # prints the nodes' addresses when all are synced
#   tests/galera/cluster.sh stop      # stops the nodes and removes their data
#   tests/galera/cluster.sh status
#
# Nodes listen for SQL on 127.0.0.1:13306, :13307 and :13308 (user root, no
# password), and for replication on 14567/14577/14587 (IST one above, SST
# two above). Data lives under $GALERA_DIR (default /var/tmp/gatehouse-galera).
# Needs galera-4, rsync and MariaDB; run as root (the nodes run as `mysql`,
# which rsync state transfer needs).
set -euo pipefail
dir=${GALERA_DIR:-/var/tmp/gatehouse-galera}
nodes=(0 1 2)
sql_port() { echo $((13306 + $1)); }
repl_port() { echo $((14567 + 10 * $1)); }
provider=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
members=$(for n in "${nodes[@]}"; do printf '127.0.0.1:%s,' "$(repl_port "$n")"; done)
members=${members%,}

client() { mariadb --protocol=tcp -h127.0.0.1 -P"$(sql_port "$1")" -uroot "${@:2}"; }

write_config() {
  local n=$1 base=$dir/node$1 repl
  repl=$(repl_port "$n")
  cat >"$base/my.cnf" <<EOF
[mysqld]
user=mysql
datadir=$base/data
socket=$base/mysqld.sock
pid-file=$base/mysqld.pid
log-error=$base/error.log
port=$(sql_port "$n")
bind-address=127.0.0.1
skip-name-resolve
binlog_format=ROW
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
innodb_buffer_pool_size=64M
innodb_log_file_size=32M
max_connections=300
wsrep_on=ON
wsrep_provider=$provider
wsrep_cluster_name=gatehouse_test
wsrep_cluster_address=gcomm://$members
wsrep_node_name=node$n
wsrep_node_address=127.0.0.1:$repl
wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:$repl;ist.recv_addr=127.0.0.1:$((repl + 1));gcache.size=64M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S"
wsrep_sst_receive_address=127.0.0.1:$((repl + 2))
wsrep_sst_method=rsync
EOF
}

start_node() {
  local n=$1 base=$dir/node$1
  shift
  /usr/sbin/mariadbd --defaults-file="$base/my.cnf" "$@" >>"$base/stdout.log" 2>&1 &
  echo $! >"$base/launcher.pid"
}

wait_synced() {
  local n=$1 deadline=$((SECONDS + 120))
  until [ "$(client "$n" -Nse "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = Synced ]; do
    if ((SECONDS > deadline)); then
      echo "cluster.sh: node$n did not sync; see $dir/node$n/error.log" >&2
      tail -20 "$dir/node$n/error.log" >&2 || true
      exit 1
    fi
    sleep 0.3
  done
}

stop() {
  for n in "${nodes[@]}"; do
    local pidfile=$dir/node$n/mysqld.pid
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  for n in "${nodes[@]}"; do
    local pidfile=$dir/node$n/mysqld.pid
    for _ in $(seq 1 100); do
      [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.2
    done
    [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  done
  rm -rf "$dir"
}

start() {
  local began=$SECONDS
  stop
  for n in "${nodes[@]}"; do
    mkdir -p "$dir/node$n/data"
    write_config "$n"
  done
  chown -R mysql:mysql "$dir"
  mariadb-install-db --defaults-file="$dir/node0/my.cnf" --auth-root-authentication-method=normal \
    >"$dir/node0/install.log" 2>&1
  start_node 0 --wsrep-new-cluster
  wait_synced 0
  client 0 -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; \
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
  # The joiners take the first node's state by rsync (SST), one at a time.
  for n in 1 2; do
    start_node "$n"
    wait_synced "$n"
  done
  local size
  size=$(client 0 -Nse "SHOW STATUS LIKE 'wsrep_cluster_size'" | cut -f2)
  echo "galera cluster of $size nodes synced in $((SECONDS - began)) s:" \
    "$(for n in "${nodes[@]}"; do printf '127.0.0.1:%s ' "$(sql_port "$n")"; done)"
}

status() {
  for n in "${nodes[@]}"; do
    printf 'node%s 127.0.0.1:%s ' "$n" "$(sql_port "$n")"
    client "$n" -Nse "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2 || echo down
  done
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
