"""Dashboard and API server time on a round with 100,000 responses, on SQLite and PostgreSQL.

    PYTHONPATH=. python bench/bench_dashboard.py                       # SQLite (a temporary file)
    PYTHONPATH=. python bench/bench_dashboard.py --database-url postgresql+psycopg://survey:survey@127.0.0.1:5432/bench

The PostgreSQL database is emptied first. Responses are bulk-inserted (online and keyed paper, LĐ-CP
respondents rating two departments, drafts and sheets in every state) into a round of 43 agencies. Each
figure is the median of --repeat requests through the Flask test client (server time, no network), next to
a baseline of a bare ``SELECT count(*)`` over the same tables in the same run.
"""
from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

from survey_service import create_app
from survey_service.db import Base, get_session
from survey_service.models import (
    Agency, Channel, CodeBatch, Draft, InvitationCode, QuestionnaireVersion, QuotaCell, Response,
    Round, RoundForm, Sheet, SheetState,
)
from survey_service.services import users
from survey_service.services.sealing import code_mark

FORMS = {  # code: (channel, kinds rated; None = one matrix cell)
    "CC-CT": (Channel.ONLINE, ["department"]), "CC-ND": (Channel.ONLINE, ["vertical"]),
    "CC-CH": (Channel.ONLINE, ["district"]), "LĐ-CP": (Channel.ONLINE, ["district"]),
    "LĐX-CH": (Channel.ONLINE, ["district"]), "HĐ-CT": (Channel.PAPER, None),
    "LĐH-CH": (Channel.PAPER, ["department"]), "LĐS-CT": (Channel.PAPER, ["district"]),
}


def build(session, responses: int, seed: int = 5) -> str:
    rng = random.Random(seed)
    rnd = Round(code="BENCH", name="Benchmark", province="Quảng Nam", year=2025, opens_on=date(2025, 9, 1),
                closes_on=date(2025, 12, 31), settings={}, methodology={}, methodology_hash="x", content_hash="x",
                structure={"kinds": [{"code": k, "label": k, "plural": k}
                                     for k in ("department", "district", "vertical")],
                           "own_staff_forms": ["CC-CT", "CC-ND", "CC-CH"], "supervision": {}})
    session.add(rnd)
    session.flush()
    agencies = ([Agency(round_id=rnd.id, code=f"S{i:02d}", kind="department", name=f"Sở {i}") for i in range(20)]
                + [Agency(round_id=rnd.id, code=f"H{i:02d}", kind="district", name=f"Huyện {i}") for i in range(18)]
                + [Agency(round_id=rnd.id, code=f"N{i:02d}", kind="vertical", name=f"Ngành dọc {i}") for i in range(5)])
    session.add_all(agencies)
    cells, versions = [], {}
    for form, (channel, kinds) in FORMS.items():
        version = QuestionnaireVersion(form_code=form, version="bench", definition={"title": form})
        session.add(version)
        session.flush()
        versions[form] = version.id
        session.add(RoundForm(round_id=rnd.id, form_code=form, questionnaire_version_id=version.id))
        for agency in [None] if kinds is None else [a for a in agencies if a.kind in kinds]:
            cells.append(QuotaCell(round_id=rnd.id, form_code=form, agency=agency, channel=channel, target=600))
    session.add_all(cells)
    session.flush()
    departments = [a.id for a in agencies if a.kind == "department"]

    sheet_rows, response_rows, sheet_id = [], [], 0
    for i in range(responses):
        cell = rng.choice(cells)
        day = date(2025, 9, 1) + timedelta(days=rng.randrange(90))
        row = dict(uid=uuid.uuid4().hex, round_id=rnd.id, quota_cell_id=cell.id, form_code=cell.form_code,
                   questionnaire_version_id=versions[cell.form_code], agency_id=cell.agency_id,
                   channel=cell.channel, submitted_on=day, sheet_id=None, respondent_key=uuid.uuid4().hex,
                   surplus=False)
        if cell.channel is Channel.PAPER:
            sheet_id += 1
            sheet_rows.append(dict(id=sheet_id, serial=f"B{sheet_id:08d}", quota_cell_id=cell.id,
                                   state=rng.choice([SheetState.KEYED, SheetState.VERIFIED, SheetState.VERIFIED])))
            row["sheet_id"] = sheet_id
        elif cell.form_code == "LĐ-CP":
            second = dict(row, uid=uuid.uuid4().hex, agency_id=rng.choice(departments))
            row["agency_id"] = rng.choice(departments)
            response_rows.append(second)
        response_rows.append(row)
    for cell in cells:
        if cell.channel is Channel.PAPER:
            for _ in range(5):
                sheet_id += 1
                sheet_rows.append(dict(id=sheet_id, serial=f"B{sheet_id:08d}", quota_cell_id=cell.id,
                                       state=SheetState.ISSUED))
    session.execute(sa.insert(Sheet), sheet_rows)
    session.execute(sa.insert(Response), response_rows)
    code_rows = []
    for cell in cells:
        if cell.channel is Channel.ONLINE:
            batch = CodeBatch(quota_cell_id=cell.id, count=20)
            session.add(batch)
            session.flush()
            for k in range(20):
                code_rows.append(dict(code=uuid.uuid4().hex[:16], quota_cell_id=cell.id, batch_id=batch.id))
    session.execute(sa.insert(InvitationCode), code_rows)
    # drafts are kept by the code's mark, never by the code: one for every other code
    session.execute(sa.insert(Draft), [dict(code_mark=code_mark("bench-secret", c["code"]),
                                            quota_cell_id=c["quota_cell_id"], answers={})
                                       for c in code_rows[::2]])
    session.flush()
    return rnd.code


def median_ms(fn, repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


#: ``--short``: small sizes, a few seconds; the test suite runs it so that a broken benchmark fails.
SHORT_HELP = "small sizes, a few seconds: checks that the benchmark runs (its figures mean nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--short", action="store_true", help=SHORT_HELP)
    args = parser.parse_args()
    if args.short:
        args.responses, args.repeat = 500, 2
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        app = create_app({"TESTING": True, "DATABASE_URL": url, "WTF_CSRF_ENABLED": False})
        engine = app.extensions["db_engine"]
        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        with app.app_context():
            session = get_session()
            start = time.perf_counter()
            code = build(session, args.responses)
            user = users.create_user(session, "bench", "Tien-do-9271-xem", "supervisor", actor="bench")
            token = users.issue_api_token(session, user)
            session.commit()
            if engine.dialect.name == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as con:
                    con.execute(sa.text("VACUUM ANALYZE"))
            else:
                with engine.begin() as con:
                    con.execute(sa.text("ANALYZE"))
            n_responses = session.scalar(sa.select(sa.func.count()).select_from(Response))
            print(f"{engine.dialect.name}: built {n_responses:,} responses, "
                  f"{session.scalar(sa.select(sa.func.count()).select_from(Sheet)):,} sheets, "
                  f"{session.scalar(sa.select(sa.func.count()).select_from(QuotaCell))} cells "
                  f"in {time.perf_counter() - start:.1f} s")

            def baseline():
                with engine.connect() as con:
                    for table in ("response", "sheet", "draft", "quota_cell"):
                        con.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()

            client = app.test_client()
            client.post("/staff/login", data={"username": "bench", "password": "Tien-do-9271-xem"})
            headers = {"Authorization": f"Bearer {token}"}

            def get(path, **kw):
                def call():
                    response = client.get(path, **kw)
                    assert response.status_code == 200, (path, response.status_code)
                return call

            figures = [
                ("baseline: SELECT count(*) on response, sheet, draft, quota_cell", baseline),
                ("dashboard page  GET /staff/progress/BENCH", get(f"/staff/progress/{code}")),
                ("live update     GET /staff/progress/BENCH/progress.json",
                 get(f"/staff/progress/{code}/progress.json")),
                ("per-day chart   GET /staff/progress/BENCH/curve.svg", get(f"/staff/progress/{code}/curve.svg")),
                ("API             GET /api/v1/rounds/BENCH/quotas",
                 get(f"/api/v1/rounds/{code}/quotas", headers=headers)),
            ]
            for label, fn in figures:
                print(f"  {label:<66} median {median_ms(fn, args.repeat):7.1f} ms  ({args.repeat} runs)")
            get_session().close()
        Base.metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
