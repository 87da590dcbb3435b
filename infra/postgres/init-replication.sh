#!/usr/bin/env bash
# Runs once, when the postgres container initialises an empty data directory
# (mounted into /docker-entrypoint-initdb.d/ by compose.yaml).
#
# Creates the replication user from the source article and lets it connect for
# streaming replication from the compose network (the article allows one replica host:
#   host replication replica_user 10.0.2.11/32 scram-sha-256).
# wal_level, max_wal_senders and wal_keep_size are set on the postgres command line.
set -euo pipefail

: "${REPLICATION_USER:=replica_user}"
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD (POSTGRES_REPLICATION_PASSWORD in compose)}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v repl_user="$REPLICATION_USER" -v repl_password="$REPLICATION_PASSWORD" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE :"repl_user" WITH REPLICATION LOGIN ENCRYPTED PASSWORD :'repl_password';
SQL

echo "host replication ${REPLICATION_USER} samenet scram-sha-256" >> "$PGDATA/pg_hba.conf"
