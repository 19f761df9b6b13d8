"""Paper channel figures: printing 1,000 sheets into one PDF, and the keystrokes of keying an 18-item sheet.

    PYTHONPATH=. python bench/bench_paper.py [--sheets 1000] [--out /tmp/sheets.pdf]

Printing: the real QNA-2023 round is loaded into a temporary SQLite database and sheets are issued across
every paper quota cell (the plan's 106 plus spares, so the HĐ-CT matrix keeps its share); the figure is the
wall time of ``printing.sheets_pdf`` alone (serials are issued before the clock starts), then a second run
under ``tracemalloc`` gives the peak Python memory of the same job.

Keystrokes: the count recorded by the browser test ``test_keyboard_only_keying_of_an_ldh_sheet`` (from the
moment the keying screen is open to the saved sheet). If that test has not run yet, it is run here on
SQLite first.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from survey_service import create_app  # noqa: E402
from survey_service.db import Base, get_session  # noqa: E402
from survey_service.services import printing, rounds, sheets  # noqa: E402
from survey_service.services.pdf import register_fonts  # noqa: E402

KEYSTROKE_TEST = "tests/test_paper_browser.py::test_keyboard_only_keying_of_an_ldh_sheet"


def issue(session, count: int):
    rnd = rounds.get_round(session, "QNA-2023")
    plans = sheets.paper_cells(session, rnd)
    extra = max(0, math.ceil((count - sum(p.missing for p in plans)) / len(plans)))
    batch = sheets.issue_sheets(session, rnd, plans, extra=extra, today=rnd.opens_on, actor="bench")
    session.commit()
    return sorted(batch, key=lambda s: s.id)[:count]


def print_figures(count: int, out: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite",
                          "SHEET_SIGNING_KEYS": ["bench-key"], "PUBLIC_BASE_URL": "https://cchc.quangnam.gov.vn"})
        Base.metadata.create_all(app.extensions["db_engine"])
        with app.app_context():
            session = get_session()
            qdir = Path(app.config["QUESTIONNAIRE_DIR"])
            rounds.load_round(session, qdir / "rounds" / "QNA-2023", qdir)
            session.commit()
            batch = issue(session, count)
            mix = Counter(s.quota_cell.form_code for s in batch)
            register_fonts()

            def job() -> bytes:
                return printing.sheets_pdf(session, batch, base_url=app.config["PUBLIC_BASE_URL"],
                                           signing_keys=app.config["SHEET_SIGNING_KEYS"])

            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            start = time.perf_counter()
            pdf = job()
            seconds = time.perf_counter() - start
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            tracemalloc.start()
            job()
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    path = out or Path(tempfile.gettempdir()) / "bench_sheets.pdf"
    path.write_bytes(pdf)
    pages = int(subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
                .stdout.split("Pages:")[1].split()[0])
    print(f"Printing {len(batch)} sheets ({', '.join(f'{k} {v}' for k, v in sorted(mix.items()))}) "
          f"= {pages} A4 pages into one PDF")
    print(f"  time            {seconds:.2f} s")
    print(f"  sheets/second   {len(batch) / seconds:.0f}   (pages/second {pages / seconds:.0f})")
    print(f"  peak memory     {peak / 2**20:.1f} MiB Python heap (tracemalloc); process max RSS "
          f"{rss_after / 1024:.0f} MiB (grew {(rss_after - rss_before) / 1024:.0f} MiB while printing)")
    print(f"  PDF size        {len(pdf) / 2**20:.1f} MiB ({len(pdf) / len(batch) / 1024:.1f} KiB per sheet), "
          f"written to {path}")


def keystroke_figure() -> None:
    files = sorted((REPO / "test-artifacts").glob("test_keyboard_only_keying_of_an_ldh_sheet*/keystrokes.json"))
    if not files:
        print(f"Running {KEYSTROKE_TEST} (SQLite) to count keystrokes ...")
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "not postgres", KEYSTROKE_TEST],
                       cwd=REPO, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        files = sorted((REPO / "test-artifacts").glob("test_keyboard_only_keying_of_an_ldh_sheet*/keystrokes.json"))
    figure = json.loads(files[0].read_text())
    print(f"Keying one {figure['form']} sheet ({figure['rated_items']} rated items + {figure['text_items']} free "
          f"text left empty) in Chromium, keyboard only: {figure['keystrokes']} keystrokes after the screen opens "
          f"(recorded by {KEYSTROKE_TEST})")


#: ``--short``: small sizes, a few seconds; the test suite runs it so that a broken benchmark fails.
SHORT_HELP = "small sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheets", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skip-keystrokes", action="store_true")
    parser.add_argument("--short", action="store_true", help=SHORT_HELP)
    args = parser.parse_args()
    if args.short:  # the keystroke count is a browser test of its own
        args.sheets, args.skip_keystrokes = 10, True
    print_figures(args.sheets, args.out)
    if not args.skip_keystrokes:
        keystroke_figure()


if __name__ == "__main__":
    main()
