"""Every benchmark the README quotes runs in its short mode (small sizes, a few seconds each), so that a
change that breaks a benchmark fails the suite instead of the next measurement. The figures of a short run
mean nothing; only that it runs to the end and exits 0 is checked, with the lines it must print."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import pg_or_skip

REPO = Path(__file__).resolve().parent.parent


def run_bench(name: str, *args: str, timeout: int = 240) -> str:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([sys.executable, f"bench/bench_{name}.py", "--short", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"bench_{name}.py failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def bench_pg_url():
    """A database of its own beside the tests' PostgreSQL database, dropped afterwards."""
    url = sa.engine.make_url(pg_or_skip())
    bench_url = url.set(database=f"{url.database}_bench")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{bench_url.database}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{bench_url.database}"'))
    yield bench_url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{bench_url.database}" WITH (FORCE)'))
    admin.dispose()


def _needs_aiohttp():
    if importlib.util.find_spec("aiohttp") is None:
        pytest.skip("aiohttp is not installed (the bench extra: pip install -e '.[bench]')")


def test_analysis(tmp_path):
    out = run_bench("analysis")
    assert "20,000 responses" in out and "-> OK" in out


def test_paper(tmp_path):
    out = run_bench("paper", "--out", str(tmp_path / "sheets.pdf"))
    assert (tmp_path / "sheets.pdf").read_bytes().startswith(b"%PDF") and "PDF size" in out


def test_frames():
    out = run_bench("frames")
    assert "import + stratified draw" in out and "baseline" in out


def test_reading():
    out = run_bench("reading")
    assert "pages per second per core" in out and "photo missing half the page" in out
    out = run_bench("reading", "--form", "HĐ-CT", "--rated", "0.5")
    assert "pages per second per core" in out and "photo missing half the page" in out


def test_dashboard_on_sqlite():
    out = run_bench("dashboard")
    assert "dashboard page" in out and "API" in out


def test_dashboard_on_postgresql(bench_pg_url):
    assert "dashboard page" in run_bench("dashboard", "--database-url", bench_pg_url)


def test_results(bench_pg_url):
    out = run_bench("results", "--db", "both", "--pg-url", bench_pg_url)
    assert "SQLite" in out and "PostgreSQL" in out and "analysis run" in out


def test_portal(bench_pg_url):
    assert "throughput ratio portal/baseline" in run_bench("portal", "--pg-url", bench_pg_url)


def test_load(bench_pg_url):
    _needs_aiohttp()
    assert "stored exactly once: yes" in run_bench("load", "--pg-url", bench_pg_url)


def test_faults():
    _needs_aiohttp()
    servers = list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if os.geteuid() != 0 or not shutil.which("runuser") or not servers:
        pytest.skip("bench_faults.py runs its own PostgreSQL cluster: it needs root and the server binaries")
    out = run_bench("faults")
    assert out.count("exactly once, no 500, no partial page: yes") == 2
