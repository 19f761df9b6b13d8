"""Load test: 200 concurrent respondents for 60 s against gunicorn (gthread) on PostgreSQL, beside the bare
baseline (bench/baseline_app.py) driven the same way in the same run.

Each respondent (bench/load_client.py) opens the form behind its invitation code and submits a complete
CC-CT / CC-ND / CC-CH response, then takes the next code. Afterwards the database is counted: every
acknowledged submission must be stored exactly once (responses stored = codes spent = thank-you pages
received), and no request may fail.

    PYTHONPATH=. python bench/bench_load.py --pg-url postgresql+psycopg://survey:survey@127.0.0.1:5432/survey_bench
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load_client  # noqa: E402
from bench.bench_portal import prepare, start_gunicorn  # noqa: E402
from survey_service.db import make_engine  # noqa: E402
from survey_service.models import Ballot, Response, SpentCode  # noqa: E402
from survey_service.services.sealing import code_mark  # noqa: E402

SECRET = "bench-secret"


def stored(url: str, codes: list[str]) -> tuple[int, int]:
    """(responses and sealed ballots in the database, how many of ``codes`` are spent): a CC-* ballot is one
    response waiting for its release."""
    engine = make_engine(url)
    try:
        with engine.connect() as con:
            responses = sum(con.scalar(sa.select(sa.func.count()).select_from(table)) for table in (Response, Ballot))
            marks, spent = [code_mark(SECRET, code) for code in codes], 0
            for i in range(0, len(marks), 5000):
                spent += con.scalar(sa.select(sa.func.count()).select_from(SpentCode).where(
                    SpentCode.mark.in_(marks[i:i + 5000])))
        return responses, spent
    finally:
        engine.dispose()


def server_env(pg_url: str, **extra: str) -> dict[str, str]:
    return {"SURVEY_DATABASE_URL": pg_url, "SURVEY_SECRET_KEY": SECRET,
            "SURVEY_SHEET_SIGNING_KEYS": json.dumps(["bench-sheet-key"]),
            "SURVEY_SESSION_COOKIE_SECURE": "false", **extra}  # plain HTTP on 127.0.0.1


def measure(name: str, spec: str, pg_url: str, codes, answers, args, product: bool) -> dict:
    """Warm up, then drive the server for ``args.seconds`` and count what it stored."""
    proc, port = start_gunicorn(spec, server_env(pg_url), args.workers, args.threads)
    base = f"http://127.0.0.1:{port}"
    try:
        warm, rest = codes[:args.clients], codes[args.clients:]
        asyncio.run(load_client.run(base, warm, answers, clients=args.clients, seconds=5, product=product))
        before, _ = stored(pg_url, [])
        stats, wall = asyncio.run(load_client.run(base, rest, answers, clients=args.clients,
                                                  seconds=args.seconds, product=product))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    after, spent = stored(pg_url, stats.acknowledged)
    result = stats.summary(wall)
    result.update(name=name, stored=after - before, spent=spent)
    return result


def report(results: list[dict], args) -> None:
    print(f"gunicorn gthread -w {args.workers} --threads {args.threads}, {args.clients} concurrent respondents, "
          f"{args.seconds:.0f} s, {os.cpu_count()} CPUs, PostgreSQL; one response = GET form + POST answers")
    print(f"{'':<10}{'acked':>8}{'stored':>8}{'spent':>8}{'failed':>8}{'resp/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}")
    for r in results:
        failed = sum(r["failures"].values())
        print(f"{r['name']:<10}{r['acknowledged']:>8}{r['stored']:>8}{r['spent']:>8}{failed:>8}"
              f"{r['per_second']:>9.1f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}{r['p99_ms']:>9.1f}")
        for kind, detail in r["first_failure"].items():
            print(f"  {r['failures'][kind]} × {kind}; first: {detail}")
    portal, baseline = results
    print(f"throughput ratio portal/baseline: {portal['per_second'] / baseline['per_second']:.2f}")
    once = portal["acknowledged"] == portal["stored"] == portal["spent"]
    print(f"portal: every acknowledged submission stored exactly once: {'yes' if once else 'NO'}; "
          f"failed requests: {sum(portal['failures'].values())}")


#: ``--short``: small sizes, a few seconds; the test suite runs it so that a broken benchmark fails.
SHORT_HELP = "small sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get(
        "BENCH_PG_URL", "postgresql+psycopg://survey:survey@127.0.0.1:5432/survey_bench"))
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--codes", type=int, default=20000, help="codes issued per run (more than it can use)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--short", action="store_true", help=SHORT_HELP)
    args = parser.parse_args()
    if args.short:
        args.clients, args.seconds, args.codes, args.workers, args.threads = 4, 3, 500, 1, 2

    portal_codes, baseline_codes, answers = prepare(args.pg_url, args.codes)
    results = [
        measure("portal", "survey_service:create_app()", args.pg_url, portal_codes, answers, args, True),
        measure("baseline", f"bench.baseline_app:make_app({args.pg_url!r})", args.pg_url, baseline_codes,
                answers, args, False),
    ]
    report(results, args)
    portal = results[0]
    if sum(portal["failures"].values()) or not portal["acknowledged"] == portal["stored"] == portal["spent"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
