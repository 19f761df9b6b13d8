#!/usr/bin/env bash
# Set everything up and serve the QNA-2023 demo round on SQLite at http://127.0.0.1:5000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
SURVEY_DEMO=true .venv/bin/survey-service demo setup
echo "Serving on http://127.0.0.1:5000 (Ctrl+C to stop)"
# Plain HTTP on 127.0.0.1: session cookies may not be HTTPS-only here (they are by default).
SURVEY_SESSION_COOKIE_SECURE=false exec .venv/bin/gunicorn --workers 2 --worker-class gthread --threads 8 --bind 127.0.0.1:5000 \
  --access-logfile - "survey_service:create_app()"
