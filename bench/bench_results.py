"""End-to-end benchmark of ``analysis run`` from the database, on SQLite and on PostgreSQL.

Usage: PYTHONPATH=. .venv/bin/python bench/bench_results.py [--responses N] [--db sqlite|postgres|both]
       [--pg-url postgresql+psycopg://survey:survey@127.0.0.1:5432/survey_bench]
       [--sqlite-path bench.sqlite] [--reuse]

Loads the real QNA-2023 round into a fresh database, bulk-inserts N synthetic responses (SQLAlchemy
core, not timed) spread over the round's quota cells (30 HĐ-CT matrix sheets among them), then times
the stages of ``survey-service analysis run --out results.xlsx``: loading the counted answers,
scoring/estimation/ranking, writing the XLSX, and the whole command. The baseline, in the same run,
is the in-memory scoring (``analysis.score_round``) of the very frame that was loaded. The PostgreSQL
database named by --pg-url is emptied first. With --reuse a database that already holds exactly N
responses (from an earlier run with the same --sqlite-path/--pg-url) is kept as it is, which makes
profiling iterations quick; the seed must then be the one it was built with.
"""
from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import analysis  # noqa: E402
from survey_service import create_app  # noqa: E402
from survey_service import questionnaires as qn  # noqa: E402
from survey_service.db import Base, get_session  # noqa: E402
from survey_service.models import Agency, Answer, Division, QuotaCell, Response, RoundForm  # noqa: E402
from survey_service.services import exports, results, rounds  # noqa: E402

QDIR = REPO / "questionnaires"


def populate(session, n: int, seed: int) -> int:
    """Insert n responses with answers; returns the number of answers."""
    rng = random.Random(seed)
    rnd = rounds.get_round(session, "QNA-2023")
    forms = {rf.form_code: (rf.questionnaire_version_id,
                            qn.Questionnaire.from_definition(rf.questionnaire_version.definition))
             for rf in session.scalars(sa.select(RoundForm).where(RoundForm.round_id == rnd.id))}
    agencies = session.scalars(sa.select(Agency).where(Agency.round_id == rnd.id)).all()
    divisions = session.scalars(sa.select(Division).where(Division.round_id == rnd.id)).all()
    cells = session.scalars(sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id)).all()
    matrix = [c for c in cells if c.agency_id is None]
    others = [c for c in cells if c.agency_id is not None]
    weights = [c.target for c in others]
    quality = {a.id: rng.gauss(0, 0.5) for a in agencies}

    def answers_for(q, agency_id):
        out = []
        for item in q.items:
            if item.kind == "text":
                continue
            codes = q.scales[item.scale].valid_codes
            if rng.random() < 0.05:
                value = "K"
            else:
                x = int(round(len(codes) * 0.6 + quality[agency_id] + rng.gauss(0, 0.9)))
                value = str(min(max(x, 1), len(codes)))
            out.append((agency_id, item.code, value))
        return out

    responses, answers = [], []
    next_id = 1
    for i in range(n):
        if i < 30:
            cell, targets = matrix[0], [a.id for a in agencies]
        else:
            cell = rng.choices(others, weights)[0]
            if cell.form_code == "LĐ-CP":
                targets = [rng.choice(rng.choice(divisions).supervised_by).id]
            else:
                targets = [cell.agency_id]
        version_id, q = forms[cell.form_code]
        responses.append({"id": next_id, "uid": uuid.uuid4().hex, "round_id": rnd.id, "quota_cell_id": cell.id,
                          "form_code": cell.form_code, "questionnaire_version_id": version_id,
                          "agency_id": None if cell.agency_id is None else targets[0], "channel": cell.channel,
                          "submitted_on": date(2023, 10, 1), "respondent_key": uuid.uuid4().hex, "surplus": False})
        for agency_id in targets:
            answers.extend({"response_id": next_id, "agency_id": a, "item_code": c, "value": v}
                           for a, c, v in answers_for(q, agency_id))
        next_id += 1
    conn = session.connection()
    for start in range(0, len(responses), 20_000):
        conn.execute(sa.insert(Response), responses[start:start + 20_000])
    for start in range(0, len(answers), 100_000):
        conn.execute(sa.insert(Answer), answers[start:start + 100_000])
    session.commit()
    return len(answers)


def bench_app(db_url: str):
    return create_app({"TESTING": True, "DATABASE_URL": db_url, "QUESTIONNAIRE_DIR": str(QDIR),
                       "SECRET_KEY": "bench", "SHEET_SIGNING_KEYS": ["bench"]})


def prepare(app, n: int, seed: int, reuse: bool) -> dict:
    """Build the bench database (or keep it with ``reuse`` when it holds n responses)."""
    engine = app.extensions["db_engine"]
    if reuse and sa.inspect(engine).has_table(Response.__tablename__):
        with engine.connect() as con:
            if con.execute(sa.select(sa.func.count()).select_from(Response)).scalar() == n:
                answers = con.execute(sa.select(sa.func.count()).select_from(Answer)).scalar()
                return {"answers": answers, "insert (not timed by the target)": 0.0}
    Base.metadata.drop_all(engine)
    with engine.begin() as con:
        con.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    Base.metadata.create_all(engine)
    with app.app_context():
        session = get_session()
        rounds.load_round(session, QDIR / "rounds" / "QNA-2023", QDIR)
        session.commit()
        t = time.perf_counter()
        answers = populate(session, n, seed)
        elapsed = time.perf_counter() - t
        session.close()
    return {"answers": answers, "insert (not timed by the target)": elapsed}


def run(db_url: str, n: int, seed: int, reuse: bool = False) -> dict:
    app = bench_app(db_url)
    engine = app.extensions["db_engine"]
    figures = prepare(app, n, seed, reuse)
    with app.app_context():
        session = get_session()
        rnd = rounds.get_round(session, "QNA-2023")
        session.close()

        session = get_session()
        t = time.perf_counter()
        data = results.load_round_data(session, rnd)
        figures["load from the database"] = time.perf_counter() - t
        t = time.perf_counter()
        res = results.compute_results(data)
        figures["score, estimate, rank"] = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            exports.export(res, Path(tmp) / "results.xlsx")
            figures["write XLSX"] = time.perf_counter() - t
            t = time.perf_counter()
            settings = results.scoring_settings(data.methodology)
            analysis.score_round(data.answers[analysis.ANSWER_COLUMNS],
                                 items=data.items[["item", "scale", "criterion"]],
                                 scales={k: sorted(s.valid_codes, key=int) for k, s in data.scales.items()},
                                 settings=settings)
            figures["baseline: in-memory score_round of the same frame"] = time.perf_counter() - t
            runner = app.test_cli_runner()
            t = time.perf_counter()
            result = runner.invoke(args=["analysis", "run", "--round", "QNA-2023", "--out", str(Path(tmp) / "r.xlsx")])
            figures["`analysis run --out results.xlsx` (whole command)"] = time.perf_counter() - t
            if result.exit_code != 0:
                raise SystemExit(result.output)
        figures["scored answers"] = len(data.answers)
        figures["agencies scored"] = int(res.summary["survey_points"].notna().sum())
    engine.dispose()
    return figures


#: ``--short``: small sizes, a few seconds; the test suite runs it so that a broken benchmark fails.
SHORT_HELP = "small sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default="postgresql+psycopg://survey:survey@127.0.0.1:5432/survey_bench")
    parser.add_argument("--sqlite-path", help="keep the SQLite database in this file (default: a temporary one)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep a database that already holds --responses responses instead of rebuilding it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--short", action="store_true", help=SHORT_HELP)
    args = parser.parse_args()
    if args.short:
        args.responses = 300
    targets = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.db in ("sqlite", "both"):
            sqlite_path = Path(args.sqlite_path).resolve() if args.sqlite_path else Path(tmp) / "bench.sqlite"
            targets.append(("SQLite", f"sqlite:///{sqlite_path}"))
        if args.db in ("postgres", "both"):
            targets.append(("PostgreSQL", args.pg_url))
        table = {name: run(url, args.responses, args.seed, args.reuse) for name, url in targets}
    print(f"\n## analysis run from the database: {args.responses:,} responses\n")
    names = list(table)
    print("| stage | " + " | ".join(f"{n} (s)" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for key in table[names[0]]:
        cells = [f"{table[n][key]:.2f}" if isinstance(table[n][key], float) else f"{table[n][key]:,}" for n in names]
        print(f"| {key} | " + " | ".join(cells) + " |")
    print(f"\npeak memory (ru_maxrss): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.2f} GB")


if __name__ == "__main__":
    main()
