#!/usr/bin/env bash
# Start a local PostgreSQL cluster for the tests and write its URL to .postgres-url.
set -euo pipefail
[ "${1:-start}" = start ] || { echo "usage: postgres.sh start" >&2; exit 2; }
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
cluster=main
if ! pg_lsclusters -h | grep -q "^$version $cluster"; then
  pg_createcluster "$version" "$cluster" >/dev/null
fi
pg_ctlcluster "$version" "$cluster" start 2>/dev/null || true
port=$(pg_lsclusters -h | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $3}')
su postgres -c "psql -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname='carelens'\"" | grep -q 1 \
  || su postgres -c "psql -p $port -c \"CREATE ROLE carelens LOGIN SUPERUSER PASSWORD 'carelens'\"" >/dev/null
su postgres -c "psql -p $port -tAc \"SELECT 1 FROM pg_database WHERE datname='carelens_test'\"" | grep -q 1 \
  || su postgres -c "createdb -p $port -O carelens carelens_test"
echo "postgresql+psycopg://carelens:carelens@127.0.0.1:$port/carelens_test" > .postgres-url
echo "PostgreSQL $version running on port $port" >&2
