"""Benchmark the online portal under gunicorn (gthread) on PostgreSQL against a minimal baseline.

Loads the real QNA-2023 round into an empty PostgreSQL database, issues codes, then 32 concurrent
clients each open an invitation link (GET, following the redirect to the form as a browser does, reading
the hidden fields) and submit a complete CC-CT / CC-ND / CC-CH response (POST to the form's action). The
same run drives bench/baseline_app.py, which inserts the same rows with no forms or validation. Prints
responses/s, p50/p95 latency of one complete response and the ratios.

    PYTHONPATH=. python bench/bench_portal.py --pg-url postgresql+psycopg://survey:survey@127.0.0.1:5432/survey_bench

``--before DIR`` also measures, first and in the same run, the product as it is in DIR (an export of an
earlier commit: ``git archive COMMIT | tar -x -C DIR``), on a schema that DIR's own code prepares.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from survey_service import create_app  # noqa: E402
from survey_service.db import Base, get_session  # noqa: E402
from survey_service.models import Channel, QuotaCell  # noqa: E402
from survey_service.services import invitations, rounds  # noqa: E402

FORMS = ("CC-CT", "CC-ND", "CC-CH")
HIDDEN = {name: re.compile(rf'name="{name}" type="hidden" value="([^"]+)"')
          for name in ("csrf_token", "submission_id", "form_tag")}
ACTION = re.compile(r'<form method="post" action="([^"]+)" class="questionnaire"')


def prepare(url: str, per_run: int) -> tuple[list[str], list[str], dict[str, dict[str, str]]]:
    """Fresh schema, the real round open today, targets out of the way; codes for both runs."""
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "SHEET_SIGNING_KEYS": ["bench-sheet"],
                      "TESTING": True})
    engine = app.extensions["db_engine"]
    Base.metadata.drop_all(engine)
    with engine.begin() as con:
        con.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    Base.metadata.create_all(engine)
    with app.app_context():
        session = get_session()
        rounds.load_round(session, REPO / "questionnaires/rounds/QNA-2023", REPO / "questionnaires")
        rnd = rounds.get_round(session, "QNA-2023")
        rnd.opens_on, rnd.closes_on = date.today() - timedelta(days=5), date.today() + timedelta(days=30)
        cells = list(session.scalars(sa.select(QuotaCell).where(
            QuotaCell.channel == Channel.ONLINE, QuotaCell.form_code.in_(FORMS))))
        answers = {}
        for form in FORMS:
            q = rounds.questionnaire_for(session, rnd, form)
            answers[form] = {i.code: ("3" if i.kind == "scale" else "Đề nghị rút ngắn thời gian giải quyết.")
                             for i in q.items}
        codes = []
        per_cell = -(-2 * per_run // len(cells))
        for cell in cells:
            cell.target = 10 ** 6
            batch = invitations.issue_codes(session, cell, per_cell, actor="bench")
            codes += [(c.code, cell.form_code) for c in batch.codes]
        session.commit()
    engine.dispose()
    codes.sort(key=lambda c: c[0])  # random order of cells
    portal_codes, baseline_codes = codes[:per_run], codes[per_run:2 * per_run]
    return portal_codes, baseline_codes, answers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(app_spec: str, env: dict, workers: int, threads: int, stderr=None,
                   repo: Path = REPO) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread", "--threads", str(threads),
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", app_spec],
        cwd=repo, env={**os.environ, **env, "PYTHONPATH": str(repo)}, stderr=stderr)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"gunicorn did not start: {app_spec}")


class Client:
    """One respondent's browser: a keep-alive connection and the session cookie."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str, str | None]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        text = resp.read().decode()
        for cookie in resp.msg.get_all("Set-Cookie") or []:
            name, _, value = cookie.split(";", 1)[0].partition("=")
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return resp.status, text, resp.getheader("Location")


def respond(client: Client, code: str, answers: dict, product: bool) -> None:
    """Open the invitation link (following a redirect, as a browser does), post the form where it says."""
    status, page, location = client.request("GET", f"/c/{code}")
    if status in (302, 303):
        status, page, _ = client.request("GET", urlsplit(location).path)
    assert status == 200, (status, page[:300])
    action = ACTION.search(page)
    fields = {name: match.group(1) for name, pattern in HIDDEN.items() if (match := pattern.search(page))}
    status, page, _ = client.request("POST", action.group(1) if action else f"/c/{code}",
                                     urlencode({**fields, **answers, "action": "submit"}))
    assert status == 200 and (not product or "Cảm ơn" in page), (status, page[:300])


def drive(port: int, codes, answers, clients: int, product: bool) -> dict:
    latencies, errors, lock = [], [], threading.Lock()
    queue = iter(codes)

    def worker():
        client = Client(port)
        while True:
            with lock:
                item = next(queue, None)
            if item is None:
                return
            code, form = item
            start = time.perf_counter()
            try:
                respond(client, code, answers[form], product)
            except Exception as exc:  # counted and shown
                errors.append(repr(exc)[:200])
                client = Client(port)
                continue
            latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {"responses": len(latencies), "errors": len(errors), "first_error": errors[0] if errors else None,
            "per_second": len(latencies) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))], "seconds": wall}


#: ``--short``: small sizes, a few seconds; the test suite runs it so that a broken benchmark fails.
SHORT_HELP = "small sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pg-url", default=os.environ.get(
        "BENCH_PG_URL", "postgresql+psycopg://survey:survey@127.0.0.1:5432/survey_bench"))
    parser.add_argument("--responses", type=int, default=1000, help="complete responses per run")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--short", action="store_true", help=SHORT_HELP)
    parser.add_argument("--before", type=Path, help="also measure the product as exported into this directory")
    args = parser.parse_args()
    if args.short:
        args.responses, args.clients, args.workers, args.threads = 12, 2, 1, 2

    env = {"SURVEY_DATABASE_URL": args.pg_url, "SURVEY_SECRET_KEY": "bench-secret",
           "SURVEY_SHEET_SIGNING_KEYS": json.dumps(["bench-sheet-key"]),
           "SURVEY_SESSION_COOKIE_SECURE": "false"}  # plain HTTP on 127.0.0.1
    results = {}

    def measure(name: str, spec: str, codes, answers, product: bool, repo: Path = REPO) -> None:
        proc, port = start_gunicorn(spec, env, args.workers, args.threads, repo=repo)
        try:
            drive(port, codes[:args.clients], answers, args.clients, product)  # warm-up
            results[name] = drive(port, codes[args.clients:], answers, args.clients, product)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)

    if args.before:
        before = args.before.resolve()
        out = subprocess.run(
            [sys.executable, "-c", "import json, sys; from bench.bench_portal import prepare; "
             "print(json.dumps(prepare(sys.argv[1], int(sys.argv[2]))))", args.pg_url, str(args.responses)],
            cwd=before, env={**os.environ, "PYTHONPATH": str(before)}, capture_output=True, text=True, check=True)
        old_codes, _, old_answers = json.loads(out.stdout.strip().splitlines()[-1])
        measure("before", "survey_service:create_app()", [tuple(c) for c in old_codes], old_answers, True, before)
    portal_codes, baseline_codes, answers = prepare(args.pg_url, args.responses)
    measure("portal", "survey_service:create_app()", portal_codes, answers, True)
    measure("baseline", f"bench.baseline_app:make_app({args.pg_url!r})", baseline_codes, answers, False)
    print(f"gunicorn gthread -w {args.workers} --threads {args.threads}, {args.clients} clients, "
          f"{os.cpu_count()} CPUs, PostgreSQL; one response = open the link + POST answers")
    print(f"{'':<10}{'responses':>10}{'errors':>8}{'resp/s':>9}{'p50 ms':>9}{'p95 ms':>9}")
    for name, r in results.items():
        print(f"{name:<10}{r['responses']:>10}{r['errors']:>8}{r['per_second']:>9.1f}{r['p50_ms']:>9.1f}"
              f"{r['p95_ms']:>9.1f}")
        if r["first_error"]:
            print(f"  first error: {r['first_error']}")
    b = results["baseline"]
    for name in ("before", "portal"):
        if name in results:
            print(f"throughput ratio {name}/baseline: {results[name]['per_second'] / b['per_second']:.2f}")
    if results["portal"]["errors"]:  # a version measured with --before may fail; this one must not
        sys.exit(1)


if __name__ == "__main__":
    main()
