#!/usr/bin/env bash
# Set everything up and serve a bundled round on SQLite at http://127.0.0.1:5000:
#   bash scripts/demo.sh             # QNA-2023, Quảng Nam 2023
#   bash scripts/demo.sh DNG-2026    # Đà Nẵng, two-tier local government (or DEMO_ROUND=DNG-2026)
#   bash scripts/demo.sh DNG-HL-2026 # Đà Nẵng, citizens' satisfaction survey
set -euo pipefail
cd "$(dirname "$0")/.."
ROUND="${1:-${DEMO_ROUND:-QNA-2023}}"
if [ "$ROUND" = "DNG-2026" ] || [ "$ROUND" = "DNG-HL-2026" ]; then
  # The organiser and the portal are settings of a deployment, not of a round.
  export SURVEY_ORGANISER="${SURVEY_ORGANISER:-Sở Nội vụ thành phố Đà Nẵng}"
  export SURVEY_PORTAL_NAME="${SURVEY_PORTAL_NAME:-Cổng thông tin điện tử cải cách hành chính thành phố Đà Nẵng}"
fi
scripts/setup_env.sh
SURVEY_DEMO=true .venv/bin/survey-service demo setup --round "$ROUND"
echo "Serving $ROUND on http://127.0.0.1:5000 (Ctrl+C to stop)"
# Plain HTTP on 127.0.0.1: session cookies may not be HTTPS-only here (they are by default).
SURVEY_SESSION_COOKIE_SECURE=false exec .venv/bin/gunicorn --workers 2 --worker-class gthread --threads 8 --bind 127.0.0.1:5000 \
  --access-logfile - --logger-class survey_service.accesslog.MaskingLogger "survey_service:create_app()"
