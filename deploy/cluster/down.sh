#!/usr/bin/env bash
# Stops what deploy/cluster/up.sh started (HAProxy, kaquan, Redis Cluster, both PostgreSQL clusters) and removes
# its state directory. `--keep` leaves the state (logs, data) in place for a look afterwards.
set -uo pipefail

DIR=${KAQUAN_CLUSTER_DIR:-/tmp/kaquan-cluster}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

[ -d "$DIR" ] || exit 0
for pidfile in "$DIR"/run/haproxy.pid "$DIR"/run/serve-*.pid "$DIR"/run/worker.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  # kaquan processes run in sessions of their own (setsid): the group takes uvicorn's children with it
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
done
for pidfile in "$DIR"/run/redis-*.pid; do
  [ -f "$pidfile" ] || continue
  kill -TERM "$(cat "$pidfile")" 2>/dev/null
done
for data in "$DIR"/pg-*; do
  [ -f "$data/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
done
sleep 0.5
for pidfile in "$DIR"/run/*.pid; do  # anything that ignored TERM
  [ -f "$pidfile" ] || continue
  pid=$(head -1 "$pidfile")
  kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null; }
done
[ "${1:-}" = "--keep" ] || rm -rf "$DIR"
