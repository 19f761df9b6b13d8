"""Faults under load, on a throw-away PostgreSQL cluster of its own (created in a temporary folder, on its
own port, and removed afterwards; no other database is touched):

1. ``kill -9`` of a gunicorn worker, twice, while 200 respondents submit: no partial page is ever
   delivered, and respondents who send the same submission again are stored exactly once.
2. PostgreSQL stopped the hard way (``pg_ctl stop -m immediate``, as in a crash) and started again while
   200 respondents submit: the service answers 503 with ``Retry-After``, never 500, recovers by itself,
   and nothing acknowledged is lost.

Respondents (bench/load_client.py) retry a failed request as a person would, with the same submission id.
Afterwards the database is counted: responses stored = codes spent = thank-you pages received.

    PYTHONPATH=. python bench/bench_faults.py           # as root (runs PostgreSQL as the postgres user)
"""
from __future__ import annotations

import argparse
import asyncio
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load_client  # noqa: E402
from bench.bench_load import server_env, stored  # noqa: E402
from bench.bench_portal import prepare, start_gunicorn  # noqa: E402


class Cluster:
    """A PostgreSQL cluster in a temporary folder, run as the ``postgres`` user, trusted on 127.0.0.1."""

    def __init__(self, port: int):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
        if not bins:
            sys.exit("PostgreSQL server binaries not found (apt-get install postgresql).")
        self.bin = Path(bins[-1]).parent
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="survey-faults-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/faults"

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], check=check, capture_output=True,
                              text=True)

    def pg_ctl(self, *args: str) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
                          "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200",
                          "-w", *args)

    def __enter__(self) -> Cluster:
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--locale=C.UTF-8")
        self.pg_ctl("start")
        self._as_postgres(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                          "faults")
        return self

    def __exit__(self, *exc) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def workers_of(master: int) -> list[int]:
    """The gunicorn worker processes (children of the master)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def scenario(name: str, cluster: Cluster, codes, answers, args, fault) -> dict:
    env = server_env(cluster.url, SURVEY_UNAVAILABLE_RETRY_AFTER_SECONDS="2")
    log = cluster.dir / f"gunicorn-{len(list(cluster.dir.glob('gunicorn-*')))}.log"
    with log.open("w") as stderr:
        proc, port = start_gunicorn("survey_service:create_app()", env, args.workers, args.threads, stderr)
    events: list[str] = []

    async def during(start: float):
        await fault(proc, start, events)

    try:
        before, _ = stored(cluster.url, [])
        stats, wall = asyncio.run(load_client.run(
            f"http://127.0.0.1:{port}", codes, answers, clients=args.clients, seconds=args.seconds,
            max_wait=2.0, give_up_after=60.0, during=during))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    after, spent = stored(cluster.url, stats.acknowledged)
    result = stats.summary(wall)
    text = log.read_text()
    gap_start, gap = stats.longest_gap(args.fault_at)
    result.update(name=name, stored=after - before, spent=spent, events=events, gap=(gap_start, gap),
                  logged_503=text.count("Database unavailable"), logged_500=text.count("Unhandled error"),
                  worker_timeouts=text.count("WORKER TIMEOUT"))
    return result


def kill_workers(times: list[float]):
    async def fault(proc, start, events):
        for at in times:
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            victim = workers_of(proc.pid)[0]
            os.kill(victim, signal.SIGKILL)
            events.append(f"t={time.monotonic() - start:.1f}s kill -9 worker {victim}")
    return fault


def restart_database(cluster: Cluster, at: float, down_for: float):
    async def fault(proc, start, events):
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        t0 = time.monotonic()
        await asyncio.to_thread(cluster.pg_ctl, "-m", "immediate", "stop")
        events.append(f"t={t0 - start:.1f}s PostgreSQL stopped (immediate: no clean shutdown)")
        await asyncio.sleep(down_for)
        await asyncio.to_thread(cluster.pg_ctl, "start")
        events.append(f"t={time.monotonic() - start:.1f}s PostgreSQL started again (crash recovery done)")
    return fault


def report(r: dict) -> bool:
    failures = r["failures"]
    ok = (r["acknowledged"] == r["stored"] == r["spent"] and not r["partial"] and not r["logged_500"]
          and not any(k.startswith("5") and k != "503" for k in failures) and "missing" not in r["retry_after"])
    print(f"\n== {r['name']} ==")
    for event in r["events"]:
        print(f"  {event}")
    print(f"  acknowledged {r['acknowledged']}, stored {r['stored']}, codes spent {r['spent']}; "
          f"{r['per_second']:.1f} responses/s over {r['seconds']:.0f} s; p50 {r['p50_ms']:.0f} ms, "
          f"p95 {r['p95_ms']:.0f} ms, max {r['max_ms']:.0f} ms")
    print(f"  failed attempts (retried): {failures or 'none'}; partial pages: {r['partial']}; "
          f"Retry-After on 503s: {r['retry_after'] or '-'}")
    print(f"  longest time without an acknowledgement after the first fault: {r['gap'][1]:.1f} s "
          f"(from t={r['gap'][0]:.1f} s); server log: {r['logged_503']} × database unavailable (503), "
          f"{r['logged_500']} × unhandled error (500), {r['worker_timeouts']} × worker timeout")
    for kind, detail in r["first_failure"].items():
        print(f"    first {kind}: {detail[:200]}")
    print(f"  exactly once, no 500, no partial page: {'yes' if ok else 'NO'}")
    return ok


#: ``--short``: small sizes, a few seconds; the test suite runs it so that a broken benchmark fails.
SHORT_HELP = "small sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=5440, help="port of the throw-away PostgreSQL cluster")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--codes", type=int, default=12000, help="codes per scenario")
    parser.add_argument("--fault-at", type=float, default=10, help="seconds into the load")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--short", action="store_true", help=SHORT_HELP)
    args = parser.parse_args()
    if args.short:
        args.clients, args.seconds, args.codes, args.fault_at, args.workers, args.threads = 4, 6, 300, 1, 2, 2
    if os.geteuid() != 0:
        sys.exit("Run as root: the throw-away PostgreSQL cluster runs as the postgres user.")

    with Cluster(args.port) as cluster:
        kill_codes, restart_codes, answers = prepare(cluster.url, args.codes)
        results = [
            scenario("kill -9 of a gunicorn worker during load", cluster, kill_codes, answers, args,
                     kill_workers([args.fault_at, args.fault_at + args.seconds / 4])),
            scenario("PostgreSQL crash and restart during load", cluster, restart_codes, answers, args,
                     restart_database(cluster, at=args.fault_at, down_for=3.0)),
        ]
    print(f"\n{args.clients} concurrent respondents, gunicorn gthread -w {args.workers} --threads {args.threads}, "
          f"{os.cpu_count()} CPUs")
    if not all([report(r) for r in results]):
        sys.exit(1)


if __name__ == "__main__":
    main()
