#!/usr/bin/env bash
# Run every benchmark in bench/ (each measures its own baseline in the same run) and print the figures
# quoted in the README. Needs PostgreSQL like the test command; takes 10 to 20 minutes on 2 cores.
# Usage: scripts/bench.sh [--short] [analysis|paper|frames|reading|dashboard|results|portal|load|faults ...]   (default: all)
# --short: small sizes, a minute or two in all: checks that every benchmark runs (tests/test_bench.py does this).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh "test,postgres,bench"   # test brings svy, the cross-check of bench_analysis; bench: aiohttp
url=$(scripts/start_postgres.sh) || { echo "PostgreSQL is needed for the benchmarks." >&2; exit 1; }
bench_url="${url%/*}/survey_bench"
PGPASSWORD=survey dropdb -h 127.0.0.1 -U survey --if-exists survey_bench 2>/dev/null || true
PGPASSWORD=survey createdb -h 127.0.0.1 -U survey survey_bench
export PYTHONPATH=.
py=.venv/bin/python
short=(); if [ "${1:-}" = "--short" ]; then short=(--short); shift; fi
which=("$@"); [ ${#which[@]} -gt 0 ] || which=(analysis paper frames reading dashboard results portal load faults)
for name in "${which[@]}"; do
  echo; echo "=== bench/bench_$name.py ==="
  case "$name" in
    analysis)  $py bench/bench_analysis.py --rows 1000000 "${short[@]}" ;;
    paper)     $py bench/bench_paper.py --sheets 1000 "${short[@]}" ;;
    frames)    $py bench/bench_frames.py --households 200000 "${short[@]}" ;;
    reading)   $py bench/bench_reading.py --pages 400 --jobs 2 "${short[@]}"
               $py bench/bench_reading.py --form HĐ-CT --pages 100 --jobs 2 "${short[@]}"
               $py bench/bench_reading.py --form HĐ-CT --rated 1 --pages 80 --jobs 2 "${short[@]}" ;;
    dashboard) $py bench/bench_dashboard.py --responses 100000 "${short[@]}"
               $py bench/bench_dashboard.py --responses 100000 --database-url "$bench_url" "${short[@]}" ;;
    results)   $py bench/bench_results.py --responses 100000 --db both --pg-url "$bench_url" "${short[@]}" ;;
    portal)    $py bench/bench_portal.py --pg-url "$bench_url" "${short[@]}" ;;
    load)      $py bench/bench_load.py --pg-url "$bench_url" "${short[@]}" ;;
    faults)    $py bench/bench_faults.py "${short[@]}" ;;   # its own throw-away PostgreSQL cluster on port 5440
    *) echo "unknown benchmark: $name" >&2; exit 2 ;;
  esac
done
