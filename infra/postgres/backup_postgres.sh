#!/usr/bin/env bash
# Full PostgreSQL backup for clawdesk: pg_dump | gzip, keep the last 7 days.
# (Backup script of the source article, parametrised by the environment.)
#
# Cron — every day at 02:00, as in the article:
#   0 2 * * * /opt/clawdesk/infra/postgres/backup_postgres.sh >> /var/log/clawdesk-backup.log 2>&1
#
# Environment:
#   DATABASE_URL           postgresql://user:password@host:5432/db (wins over the PG* variables)
#   PGHOST PGPORT PGUSER PGDATABASE PGPASSWORD   used when DATABASE_URL is empty
#                          (defaults: postgres 5432 clawdesk clawdesk; or use ~/.pgpass)
#   BACKUP_DIR             where dumps go                         (default /backup/postgres)
#   BACKUP_RETENTION_DAYS  delete *.sql.gz older than this many days      (default 7)
#   BACKUP_PREFIX          file name prefix                        (default: database name)
#
# Restore:  gunzip -c FILE.sql.gz | psql "$DATABASE_URL"
set -euo pipefail

BACKUP_DIR="${BACKUP_DIR:-/backup/postgres}"
RETENTION_DAYS="${BACKUP_RETENTION_DAYS:-7}"
DATE="$(date +%Y%m%d_%H%M%S)"

if [[ -n "${DATABASE_URL:-}" ]]; then
    target=("--dbname=${DATABASE_URL}")
    dbname="${DATABASE_URL##*/}"
    dbname="${dbname%%\?*}"
else
    export PGHOST="${PGHOST:-postgres}" PGPORT="${PGPORT:-5432}"
    export PGUSER="${PGUSER:-clawdesk}" PGDATABASE="${PGDATABASE:-clawdesk}"
    target=()
    dbname="$PGDATABASE"
fi
prefix="${BACKUP_PREFIX:-${dbname:-clawdesk}}"

mkdir -p "$BACKUP_DIR"
umask 077
file="${BACKUP_DIR}/${prefix}_full_${DATE}.sql.gz"
partial="${file}.partial"
trap 'rm -f "$partial"' EXIT

# Full backup + compression; written under a temporary name so that a failed dump
# never looks like a good backup (and is never counted by the retention rule).
pg_dump --no-password "${target[@]}" | gzip -9 > "$partial"
mv "$partial" "$file"
echo "$(date -Iseconds) backup written: $file ($(du -h "$file" | cut -f1))"

# Delete backups older than the retention period.
find "$BACKUP_DIR" -maxdepth 1 -name "${prefix}_full_*.sql.gz" -mtime "+${RETENTION_DAYS}" -print -delete
