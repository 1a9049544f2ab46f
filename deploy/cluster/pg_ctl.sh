#!/usr/bin/env bash
# pg_ctl on one of up.sh's PostgreSQL clusters, as the postgres OS user, the server logging to its file:
#   deploy/cluster/pg_ctl.sh pg-primary restart -m fast -w
#   deploy/cluster/pg_ctl.sh pg-replica promote -w
set -euo pipefail
DIR=${KAQUAN_CLUSTER_DIR:-/tmp/kaquan-cluster}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cluster=$1; shift
command=("$PG_BIN/pg_ctl" -D "$DIR/$cluster" -l "$DIR/log/$cluster.log" "$@")
if [ "$(id -u)" = 0 ]; then exec runuser -u postgres -- "${command[@]}" >/dev/null; else exec "${command[@]}" >/dev/null; fi
