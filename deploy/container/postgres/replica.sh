#!/usr/bin/env bash
# The replica's entrypoint: on an empty volume, clone the primary (pg_basebackup -R: a standby that streams
# from it), then run PostgreSQL as a hot standby. PGPASSWORD is the replicator's password.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -q -h pg-primary -U replicator; do sleep 1; done
  chmod 700 "$PGDATA"
  pg_basebackup -h pg-primary -U replicator -D "$PGDATA" -R -X stream -c fast
  # The primary's synchronous setting came along in postgresql.auto.conf: a promoted replica must not wait
  # for a standby it does not have (docs/operations.md, "Promoting the replica, by hand").
  sed -i '/^synchronous_standby_names/d' "$PGDATA/postgresql.auto.conf"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on
