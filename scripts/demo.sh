#!/usr/bin/env bash
# The demo: installs what it needs, then serves the demo app in automatic
# mode. SQLite under instance/ and no Redis unless DATABASE_URL / REDIS_URL
# say otherwise; PORT (default 5000), HOST (default 127.0.0.1) and
# LSMIGRATE_SECRET_KEY are honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh demo

export LSMIGRATE_DEMO=1
port=${PORT:-5000}
host=${HOST:-127.0.0.1}
# SQLite takes one writer at a time: one worker with threads. With a real
# database, two sync workers, one request at a time each: the ingest is
# CPU-bound Python (see server/gunicorn_conf.py).
workers=(--workers 1 --threads 4)
[ -n "${DATABASE_URL:-}" ] && workers=(--workers 2)

.venv/bin/flask --app lsmigrate.server db upgrade
echo
echo "lsmigrate demo: open http://$host:$port/demo?user=alice"
echo "(seed localStorage with the button on the page; the page migrates it on reload)"
echo
exec .venv/bin/gunicorn --config python:lsmigrate.server.gunicorn_conf --bind "$host:$port" "${workers[@]}" \
  --access-logfile - 'lsmigrate.server:create_app()'
