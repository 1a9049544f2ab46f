#!/usr/bin/env bash
# Runs once, when the postgres image initialises the primary's data directory (docker-entrypoint-initdb.d):
# a replication role for the replica, allowed in by password, and synchronous commits (from the real start on,
# a commit returns once the replica has it on disk, so promoting the replica loses no sale).
set -euo pipefail
psql -v ON_ERROR_STOP=1 -v password="$REPLICATION_PASSWORD" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
ALTER SYSTEM SET synchronous_standby_names = '*';
SQL
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
