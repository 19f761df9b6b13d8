#!/usr/bin/env bash
# Start a local PostgreSQL cluster (Debian's pg_ctlcluster, no systemd needed) and create the test
# database. Prints the URL to use as TEST_PG_URL; prints nothing and exits 1 when it cannot.
set -euo pipefail
command -v pg_lsclusters >/dev/null || exit 1
[ "$(id -u)" = 0 ] || exit 1
version=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1{print $1}')
if [ -z "$version" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -1)
  pg_createcluster "$version" main >/dev/null
fi
cluster=$(pg_lsclusters -h | awk 'NR==1{print $2}')
port=$(pg_lsclusters -h | awk 'NR==1{print $3}')
pg_ctlcluster "$version" "$cluster" start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do
  su postgres -c "psql -p $port -tAc 'select 1'" >/dev/null 2>&1 && break
  sleep 1
done
su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qc \"DO \\\$\\\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='survey') THEN CREATE ROLE survey LOGIN PASSWORD 'survey' CREATEDB; END IF; END\\\$\\\$;\"" >/dev/null
su postgres -c "dropdb -p $port --if-exists survey_test 2>/dev/null; createdb -p $port -O survey -E UTF8 -T template0 survey_test" >/dev/null
echo "postgresql+psycopg://survey:survey@127.0.0.1:$port/survey_test"
