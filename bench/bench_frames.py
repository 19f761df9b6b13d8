"""Sampling frame figures: importing a household list of 200,000 households, drawing its lists (every commune
a stratum, then PPS of 20 communes) and exporting them for printing.

    PYTHONPATH=. python bench/bench_frames.py [--households 200000] [--communes 93]

The real QNA-2023 round is loaded into a temporary SQLite database; the frame's communes are its agencies
(at most ``--communes`` of its 43), 8 villages each. The baseline, in the same run, is the least any import
and draw must do: pandas reading the same CSV and numpy drawing the same number of households per commune,
with no checking and nothing stored.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from survey_service import create_app  # noqa: E402
from survey_service.db import Base, get_session  # noqa: E402
from survey_service.models import Agency, SampleList  # noqa: E402
from survey_service.services import frames, rounds  # noqa: E402

SHORT_HELP = "small sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def households_csv(codes: list[str], households: int) -> bytes:
    rng = np.random.default_rng(0)
    communes = rng.choice(codes, size=households, p=np.linspace(1, 3, len(codes)) / np.linspace(1, 3, len(codes)).sum())
    lines = ["commune,village,ref,label"] + [f"{c},Thôn {i % 8 + 1},H{i:07d},Hộ số {i}" for i, c in enumerate(communes)]
    return ("\n".join(lines) + "\n").encode()


def baseline(data: bytes, sizes: dict[str, int]) -> float:
    start = time.perf_counter()
    table = pd.read_csv(io.BytesIO(data))
    rng = np.random.default_rng(1)
    for commune, group in table.groupby("commune"):
        rng.choice(len(group), size=min(len(group), sizes.get(commune, 0)), replace=False)
    return time.perf_counter() - start


def timed(label: str, job):
    start = time.perf_counter()
    result = job()
    seconds = time.perf_counter() - start
    print(f"  {label:<44}{seconds:8.2f} s")
    return result, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=200_000)
    parser.add_argument("--communes", type=int, default=93)
    parser.add_argument("--short", action="store_true", help=SHORT_HELP)
    args = parser.parse_args()
    if args.short:
        args.households, args.communes = 2_000, 10
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite"})
        Base.metadata.create_all(app.extensions["db_engine"])
        with app.app_context():
            session = get_session()
            qdir = Path(app.config["QUESTIONNAIRE_DIR"])
            rounds.load_round(session, qdir / "rounds" / "QNA-2023", qdir)
            session.commit()
            rnd = rounds.get_round(session, "QNA-2023")
            codes = [a.code for a in session.query(Agency).filter_by(round_id=rnd.id).order_by(Agency.id)]
            codes = (codes * (args.communes // len(codes) + 1))[:args.communes]
            codes = list(dict.fromkeys(codes))
            data = households_csv(codes, args.households)
            print(f"Household frame: {args.households:,} households in {len(codes)} communes "
                  f"({len(data) / 2**20:.1f} MiB CSV), SQLite")
            frame, t_import = timed("import (check every row, store)", lambda: frames.import_frame(
                session, rnd, "households", data, "ho.csv", today=rnd.opens_on, actor="bench"))
            session.commit()
            cells, t_draw = timed("draw, every commune a stratum (e = 0.05)", lambda: frames.draw(
                session, frame, frames.Design(margin=0.05), today=rnd.opens_on, seed=1, actor="bench"))
            session.commit()
            _, t_pps = timed("draw again, PPS of 20 communes", lambda: frames.draw(
                session, frame, frames.Design(margin=0.05, communes=min(20, len(codes) - 1)), today=rnd.opens_on,
                seed=2, actor="bench"))
            session.commit()
            xlsx, t_export = timed("export both lists (XLSX)", lambda: frames.export_lists(session, frame, "xlsx"))
            listed = frames.lists(session, frame)
            sizes = {c.agency: c.sample for c in cells}
    base = baseline(data, sizes)
    total = t_import + t_draw
    print(f"  official {len(listed[SampleList.OFFICIAL]):,}, reserve {len(listed[SampleList.RESERVE]):,}; "
          f"XLSX {len(xlsx) / 2**10:.0f} KiB; PPS draw {t_pps:.2f} s, export {t_export:.2f} s")
    print(f"import + stratified draw {total:.2f} s; baseline (pandas read + numpy draw, no checks, nothing stored) "
          f"{base:.2f} s in the same run; ratio {total / base:.1f}")


if __name__ == "__main__":
    main()
