#!/usr/bin/env bash
# kaquan on more than one machine, rehearsed on one: HAProxy in front of N `kaquan serve` processes and one
# `kaquan worker`, a PostgreSQL primary with a streaming replica, and a six-node Redis Cluster (three
# primaries, three replicas), every part on 127.0.0.1. docs/operations.md "More than one machine" explains it.
#
#   deploy/cluster/up.sh          # state in $KAQUAN_CLUSTER_DIR (default /tmp/kaquan-cluster)
#   deploy/cluster/down.sh        # stops everything and removes the state
#
# Needs (Debian 12): postgresql-15 (initdb, pg_ctl, pg_basebackup), redis-server + redis-cli, and
#   apt-get install -y haproxy
# Run as root (the PostgreSQL clusters run as the `postgres` OS user) or as `postgres` itself.
# The clusters are new ones of their own: the machine's PostgreSQL on 5432 and Redis on 6379 are untouched.
#
# Settings (environment):
#   KAQUAN_CLUSTER_DIR   state, logs, pid files, the env file            default /tmp/kaquan-cluster
#   KAQUAN_CLUSTER_PORT  first port: +0 HAProxy, +1..N serve, +8 HAProxy stats, +10 primary, +11.. replicas,
#                        +20..25 Redis nodes                              default 7400
#   KAQUAN_SERVES        how many `kaquan serve` processes (1-7)          default 2
#   KAQUAN_REPLICAS      how many PostgreSQL streaming replicas (1-9): `pg-replica` on +11, `pg-replica-2` on
#                        +12, …; the first serves the stale-ok reads      default 1
#   KAQUAN_BIN           the kaquan command                               default kaquan
#   PG_BIN               PostgreSQL's programs                            default /usr/lib/postgresql/15/bin
#   KAQUAN_CLUSTER_SETTINGS  more KAQUAN_* lines for the env file of every kaquan process
set -euo pipefail

DIR=${KAQUAN_CLUSTER_DIR:-/tmp/kaquan-cluster}
BASE=${KAQUAN_CLUSTER_PORT:-7400}
SERVES=${KAQUAN_SERVES:-2}
REPLICAS=${KAQUAN_REPLICAS:-1}
KAQUAN_BIN=${KAQUAN_BIN:-kaquan}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
FRONT=$BASE STATS=$((BASE + 8)) PRIMARY=$((BASE + 10)) REPLICA=$((BASE + 11)) REDIS_FIRST=$((BASE + 20))

say() { printf '%s up.sh: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
wait_for() {  # wait_for <seconds> <what> <command...>
  local seconds=$1 what=$2; shift 2
  for _ in $(seq $((seconds * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  say "gave up waiting for $what"; return 1
}

replica_name() { if [ "$1" = 1 ]; then echo pg-replica; else echo "pg-replica-$1"; fi; }

command -v haproxy >/dev/null || { say "haproxy is missing: apt-get install -y haproxy"; exit 1; }
[[ $SERVES =~ ^[1-7]$ ]] || { say "KAQUAN_SERVES must be 1 to 7 (ports +1..+7)"; exit 1; }
[[ $REPLICAS =~ ^[1-9]$ ]] || { say "KAQUAN_REPLICAS must be 1 to 9 (ports +11..+19)"; exit 1; }
[ -e "$DIR/env" ] && { say "$DIR holds a running cluster: deploy/cluster/down.sh first"; exit 1; }
pg_dirs=("$DIR/pg-primary")
replica_hosts=""
for n in $(seq 1 "$REPLICAS"); do
  pg_dirs+=("$DIR/$(replica_name "$n")")
  replica_hosts+="&host=127.0.0.1:$((PRIMARY + n))"
done
mkdir -p "$DIR/run" "$DIR/log" "${pg_dirs[@]}"
chmod 755 "$DIR"
chmod 700 "${pg_dirs[@]}"
if [ "$(id -u)" = 0 ]; then chown postgres "$DIR/run" "$DIR/log" "${pg_dirs[@]}"; fi

# PostgreSQL: a primary with a replication role, then a replica cloned from it -----------------------------
say "PostgreSQL primary on $PRIMARY"
as_postgres "$PG_BIN/initdb" -D "$DIR/pg-primary" -U postgres -A trust --no-sync >"$DIR/log/initdb.log"
cat >>"$DIR/pg-primary/postgresql.conf" <<CONF
port = $PRIMARY
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR/run'
wal_level = replica
max_wal_senders = 5
wal_keep_size = '256MB'
hot_standby = on
# the replica tells the primary what it still reads, so VACUUM never cancels a long export there
hot_standby_feedback = on
CONF
# Replication connections only for the replication role, only from loopback (trust: loopback, drill only;
# production uses scram-sha-256 and a password file).
sed -i '/replication/d' "$DIR/pg-primary/pg_hba.conf"
echo "host replication replicator 127.0.0.1/32 trust" >>"$DIR/pg-primary/pg_hba.conf"
as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg-primary" -l "$DIR/log/pg-primary.log" -w start >/dev/null
as_postgres psql -q -h 127.0.0.1 -p "$PRIMARY" -U postgres -c "CREATE ROLE replicator REPLICATION LOGIN" \
  -c "CREATE DATABASE kaquan"

# kaquan ------------------------------------------------------------------------------------------------------
key_file="$DIR/master.key"
( umask 077; python3 -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())' >"$key_file" )
cat >"$DIR/env" <<ENV
KAQUAN_DATABASE_URL='postgresql://postgres@/kaquan?host=127.0.0.1:$PRIMARY$replica_hosts&target_session_attrs=read-write'
KAQUAN_READ_DATABASE_URL='postgresql://postgres@127.0.0.1:$REPLICA/kaquan'
KAQUAN_REDIS_URL='redis://127.0.0.1:$REDIS_FIRST/0'
KAQUAN_REDIS_CLUSTER='1'
KAQUAN_VAR_DIR='$DIR/var'
KAQUAN_PUBLIC_URL='http://127.0.0.1:$FRONT'
KAQUAN_TRUSTED_PROXIES='127.0.0.1'
KAQUAN_READY_WORKER_MAX_AGE_S='0'
ENV
# more settings for every process, one NAME='value' a line (the tests' throttles and dev gateway)
[ -n "${KAQUAN_CLUSTER_SETTINGS:-}" ] && printf '%s\n' "$KAQUAN_CLUSTER_SETTINGS" >>"$DIR/env"
chmod 600 "$DIR/env"
start_kaquan() {  # start_kaquan <name> <args...>: in the background, environment from $DIR/env
  local name=$1; shift
  ( set -a; . "$DIR/env"; KAQUAN_MASTER_KEY=$(cat "$key_file"); export KAQUAN_MASTER_KEY; set +a
    exec setsid $KAQUAN_BIN "$@" >>"$DIR/log/$name.log" 2>&1 ) &
  echo $! >"$DIR/run/$name.pid"
}
say "kaquan migrate (in the background, while the replica and Redis come up)"
( set -a; . "$DIR/env"; KAQUAN_MASTER_KEY=$(cat "$key_file"); export KAQUAN_MASTER_KEY; set +a
  exec $KAQUAN_BIN migrate >"$DIR/log/migrate.log" 2>&1 ) &
migrating=$!
for n in $(seq 1 "$REPLICAS"); do
  name=$(replica_name "$n") port=$((PRIMARY + n))
  say "PostgreSQL replica $name on $port (pg_basebackup -R)"
  as_postgres "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY" -U replicator -D "$DIR/$name" -R -X stream \
    -c fast --no-sync
  # cluster_name is also the name the replica streams under (pg_stat_replication.application_name)
  printf '%s\n' "port = $port" "cluster_name = 'replica$n'" >>"$DIR/$name/postgresql.conf"
  as_postgres "$PG_BIN/pg_ctl" -D "$DIR/$name" -l "$DIR/log/$name.log" -w start >/dev/null
done
wait_for 30 "the replicas to stream" sh -c "psql -h 127.0.0.1 -p $PRIMARY -U postgres -Atc \
  \"SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'\" | grep -qx $REPLICAS"
# Synchronous: a commit returns once a replica has it on disk, so promoting that replica loses no sale. With
# several, '*' makes one of them synchronous (the others stand by to take its place if it is lost).
# Set on the primary only (after the base backup), so a promoted replica does not wait for a standby it lacks.
as_postgres psql -q -h 127.0.0.1 -p "$PRIMARY" -U postgres -c "ALTER SYSTEM SET synchronous_standby_names = '*'" \
  -c "SELECT pg_reload_conf()" >/dev/null

# Redis Cluster: six nodes, three primaries each with a replica ---------------------------------------------
say "Redis Cluster on $REDIS_FIRST..$((REDIS_FIRST + 5))"
nodes=()
for port in $(seq "$REDIS_FIRST" $((REDIS_FIRST + 5))); do
  mkdir -p "$DIR/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$DIR/redis-$port" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
    --appendonly yes --appendfsync everysec --save "" \
    --pidfile "$DIR/run/redis-$port.pid" --logfile "$DIR/log/redis-$port.log"
  nodes+=("127.0.0.1:$port")
done
for port in $(seq "$REDIS_FIRST" $((REDIS_FIRST + 5))); do wait_for 10 "redis $port" redis-cli -p "$port" ping; done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$DIR/log/redis-cluster-create.log"
wait_for 30 "the Redis Cluster" sh -c "redis-cli -p $REDIS_FIRST cluster info | grep -q 'cluster_state:ok'"

wait "$migrating" || { say "kaquan migrate failed: $DIR/log/migrate.log"; exit 1; }
servers=""
for n in $(seq 1 "$SERVES"); do
  port=$((BASE + n))
  say "kaquan serve $n on $port"
  start_kaquan "serve-$n" serve --no-worker --port "$port"
  servers+="    server serve-$n 127.0.0.1:$port check"$'\n'
done
say "kaquan worker"
start_kaquan worker worker

# HAProxy: round robin over the serve processes that answer /readyz 200 ------------------------------------
# With no process ready (the database restarting), buyers get kaquan's own error shape and a Retry-After.
busy='{"error": {"code": "busy", "message": "no kaquan process is ready; try again shortly", "details": {}}}'
printf '%s\r\n' "HTTP/1.1 503 Service Unavailable" "Content-Type: application/json" "Content-Length: ${#busy}" \
  "Retry-After: 2" "Cache-Control: no-store" "Connection: close" "" >"$DIR/busy.http"
printf '%s' "$busy" >>"$DIR/busy.http"
cat >"$DIR/haproxy.cfg" <<CFG
global
    maxconn 4096
    pidfile $DIR/run/haproxy.pid

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A saturated process answers its probe late, not never: without this the whole check must finish within
    # inter (1 s), and under load the probes of busy processes time out, HAProxy marks them down and moves
    # their load onto the rest (with one process: every buyer gets 503). /readyz bounds its own checks to 2 s.
    timeout check 3s
    option forwardfor
    option http-keep-alive
    # A request whose connection failed never reached kaquan: send it to another process (safe for POSTs).
    retries 3
    option redispatch 1
    errorfile 503 $DIR/busy.http

frontend shop
    bind 127.0.0.1:$FRONT
    default_backend kaquan

backend kaquan
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # At most 32 requests in flight per process; the rest wait in HAProxy's queue (up to 10 s, then kaquan's
    # busy answer), so a saturated process still answers its probe, and a queued request goes to whichever
    # process frees a slot first.
    timeout queue 10s
    default-server inter 1s fastinter 500ms downinter 500ms fall 2 rise 2 maxconn 32
$servers
listen stats
    bind 127.0.0.1:$STATS
    stats enable
    stats uri /
CFG
haproxy -c -q -f "$DIR/haproxy.cfg"
haproxy -D -f "$DIR/haproxy.cfg"
for n in $(seq 1 "$SERVES"); do wait_for 90 "serve $n" curl -fsS "http://127.0.0.1:$((BASE + n))/readyz"; done
wait_for 30 "HAProxy to see the servers" curl -fsS "http://127.0.0.1:$FRONT/readyz"
say "ready: shop http://127.0.0.1:$FRONT, HAProxy stats http://127.0.0.1:$STATS, settings in $DIR/env"
