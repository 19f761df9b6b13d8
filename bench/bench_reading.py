"""Reading sheets from simulated photos: per condition, pages read, answers decided, wrong, sent to the
clerk, refused; and pages per second per core.

    PYTHONPATH=. python bench/bench_reading.py [--pages 400] [--seed 2026] [--jobs 2] [--only NAME…] [--short]
    PYTHONPATH=. python bench/bench_reading.py --form HĐ-CT [--rated 0.3] [--pages 100] ...

Real sheets of the QNA-2023 round (LĐH-CH and LĐS-CT, or with ``--form HĐ-CT`` the delegates' sheet of every
agency, printed by ``printing.sheets_pdf`` and rasterised at 200 dpi) are filled and photographed by
:mod:`survey_service.omr.simulate` with a fixed seed and read back by :mod:`survey_service.omr.reader`
(HĐ-CT blocks settled by :mod:`survey_service.omr.rows`); every automatic answer is compared with what was
meant. The speed is the
CPU time of reading (alignment, QR, marks) per page on one core, against decoding the same JPEG alone,
measured in the same run. The conditions the reader was tuned on come first, then those held out from the
tuning (:data:`survey_service.omr.simulate.HELD_OUT`: other pens, other lenses, other tables and pages).
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import random
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from survey_service import create_app  # noqa: E402
from survey_service.db import Base, get_session  # noqa: E402
from survey_service.omr import reader, rows, simulate  # noqa: E402
from survey_service.services import keying, printing, reading, rounds, sheets  # noqa: E402

KEYS = ["bench-key"]
#: Photos missing half the page are all refused at once: fewer of them say as much.
PARTIAL_PAGES = 100
ONE_AGENCY = ("LĐH-CH", "LĐS-CT")
MATRIX = "HĐ-CT"
#: Answers a machine may never decide: a double mark, and a mark in a block whose "not rated" bubble is filled.
MUST_REVIEW = ("double mark", simulate.CONTRADICTED)
CONDITIONS = simulate.CONDITIONS + simulate.HELD_OUT


@dataclass
class Row:
    condition: simulate.Condition
    pages: int = 0
    refused: int = 0
    decided: int = 0
    wrong: int = 0
    review: int = 0
    doubles: int = 0
    doubles_decided: int = 0
    read_seconds: float = 0.0
    decode_seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)
    #: Way of filling → questions of that way sent to the clerk, and in all.
    styles_review: Counter = field(default_factory=Counter)
    styles: Counter = field(default_factory=Counter)

    @property
    def review_share(self) -> float:
        return self.review / max(1, self.review + self.decided)

    def add(self, other: Row) -> None:
        for name in ("pages", "refused", "decided", "wrong", "review", "doubles", "doubles_decided",
                     "read_seconds", "decode_seconds", "reasons", "styles_review", "styles"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def line(self) -> str:
        return (f"{self.condition.name:<30}{self.pages:>7}{self.refused:>9}{self.decided:>9}{self.wrong:>7}"
                f"{self.review:>8}{100 * self.review_share:>9.1f}%{self.doubles - self.doubles_decided:>9}/"
                f"{self.doubles}")


def real_pages(count: int = 2, forms: tuple[str, ...] = ONE_AGENCY) -> list[tuple[np.ndarray, object]]:
    """(image, layout) of every page of ``count`` printed sheets of each of ``forms``."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite",
                          "SHEET_SIGNING_KEYS": KEYS, "SECRET_KEY": "bench"})
        Base.metadata.create_all(app.extensions["db_engine"])
        with app.app_context():
            session = get_session()
            qdir = Path(app.config["QUESTIONNAIRE_DIR"])
            rounds.load_round(session, qdir / "rounds" / "QNA-2023", qdir)
            rnd = rounds.get_round(session, "QNA-2023")
            found = []
            for form_code in forms:
                plans = sheets.paper_cells(session, rnd, form_code=form_code)
                batch = sheets.issue_sheets(session, rnd, plans[:count], today=rnd.opens_on, actor="bench")[:count]
                for sheet in batch:
                    pdf = printing.sheets_pdf(session, [sheet], base_url="http://x", signing_keys=KEYS)
                    plan = reading.sheet_pages(keying.sheet_form(session, sheet))
                    found += list(zip(reader.images_from_file(pdf), plan))
        app.extensions["db_engine"].dispose()
    return found


_PAGES: dict[str, list] = {}
#: Pages drawn from one seed: a condition is read in chunks of this many, so two processes share one
#: condition and rows come out one condition at a time.
CHUNK = 25


def run_chunk(index: int, first: int, pages: int, seed: int, form: str = "", rated: float = 0.3) -> Row:
    """Pages ``first`` to ``first + pages`` of one condition; each chunk has its own seed, so the table is
    the same whatever the number of processes. ``form`` ``HĐ-CT`` reads the delegates' sheet, filled as
    delegates do (each agency rated with probability ``rated``); else the one-agency forms."""
    if form not in _PAGES:
        _PAGES[form] = real_pages(1, (MATRIX,)) if form == MATRIX else real_pages()
    fill = partial(simulate.fill_delegate, rated=rated) if form == MATRIX else simulate.fill
    condition = CONDITIONS[index]
    rng = random.Random((seed * 1000 + index) * 1000 + first // CHUNK)
    row = Row(condition)
    for n in range(first, first + pages):
        image, plan = _PAGES[form][n % len(_PAGES[form])]
        filled, truth, styles = fill(image, plan, rng, reader.PDF_DPI / 25.4, condition.pens)
        shot = simulate.photograph(filled, rng, condition)
        row.pages += 1
        start = time.process_time()
        cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
        row.decode_seconds += time.process_time() - start
        start = time.process_time()
        try:
            aligned = reader.align(reader.images_from_file(shot)[0])
            marks = reader.read_marks(aligned, plan)
            marks.items = rows.settle(marks.items)
        except reader.PageRefused as exc:
            row.read_seconds += time.process_time() - start
            row.refused += 1
            row.reasons[str(exc).split(":")[0]] += 1
            continue
        row.read_seconds += time.process_time() - start
        for code in rows.answers(marks.items):  # an HĐ-CT "not rated" bubble is no answer
            item = marks.items[code]
            row.doubles += styles[code] in MUST_REVIEW
            row.styles[styles[code]] += 1
            if item.value == reader.REVIEW:
                row.review += 1
                row.styles_review[styles[code]] += 1
                continue
            row.decided += 1
            row.doubles_decided += styles[code] in MUST_REVIEW
            if item.value != truth[code]:
                row.wrong += 1
                print(f"WRONG {condition.name} page {n}: {styles[code]} meant {truth[code]}, read {item}")
    return row


def run_conditions(pages: int, seed: int, jobs: int = 1, only: list[str] | None = None,
                   progress=None, form: str = "", rated: float = 0.3) -> list[Row]:
    """Rows of every condition, or of those named in ``only``; ``progress`` is called with each row as soon
    as its condition is done."""
    tasks = []
    for i, condition in enumerate(CONDITIONS):
        if not only or condition.name in only:
            count = min(pages, PARTIAL_PAGES) if condition.partial else pages
            tasks += [(i, first, min(CHUNK, count - first), seed, form, rated) for first in range(0, count, CHUNK)]
    rows: dict[int, Row] = {}
    left = Counter(task[0] for task in tasks)
    with multiprocessing.Pool(jobs) if jobs > 1 else contextlib.nullcontext() as pool:
        for task, chunk in zip(tasks, pool.imap(_run_task, tasks) if pool else map(_run_task, tasks)):
            rows.setdefault(task[0], Row(chunk.condition)).add(chunk)
            left[task[0]] -= 1
            if not left[task[0]] and progress:
                progress(rows[task[0]])
    return list(rows.values())


def _run_task(task: tuple) -> Row:
    return run_chunk(*task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=400, help="pages per condition")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--jobs", type=int, default=1, help="processes (one condition each); CPU time per page "
                        "is measured in each")
    parser.add_argument("--form", choices=["", MATRIX], default="", help=f"{MATRIX}: the delegates' sheet "
                        "(every agency, over several pages) instead of the one-agency forms")
    parser.add_argument("--rated", type=float, default=0.3, help=f"{MATRIX}: share of agencies a delegate rates")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=[c.name for c in CONDITIONS],
                        help="only these conditions")
    parser.add_argument("--short", action="store_true", help="3 pages per condition: checks that it runs")
    args = parser.parse_args()
    if args.short:
        args.pages = 3
    started = time.perf_counter()
    table = run_conditions(args.pages, args.seed, args.jobs, args.only,
                           progress=lambda row: print("done: " + row.line(), flush=True), form=args.form,
                           rated=args.rated)
    print(f"{'condition':<30}{'pages':>7}{'refused':>9}{'decided':>9}{'wrong':>7}{'review':>8}{'review %':>10}"
          f"{'doubles→review':>16}")
    for row in table:
        if row.condition == simulate.HELD_OUT[0]:
            print("held out from the tuning:")
        print(row.line())
        for reason, n in row.reasons.items():
            print(f"    refused {n}: {reason}")
        if row.review:
            print("    sent to the clerk, by way of filling: " + ", ".join(
                f"{style} {row.styles_review[style]}/{row.styles[style]}"
                for style in (*simulate.STYLES, simulate.CONTRADICTED) if row.styles_review[style]))
    read = [r for r in table if not r.condition.partial]
    pages = sum(r.pages for r in read)
    seconds = sum(r.read_seconds for r in read)
    decode = sum(r.decode_seconds for r in read)
    print(f"reading: {pages / seconds:.1f} pages per second per core ({1000 * seconds / pages:.0f} ms CPU per page); "
          f"baseline, decoding the JPEG alone: {pages / decode:.1f} pages/s ({1000 * decode / pages:.0f} ms)")
    print(f"total {sum(r.decided for r in table)} answers decided automatically, "
          f"{sum(r.wrong for r in table)} wrong; wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
