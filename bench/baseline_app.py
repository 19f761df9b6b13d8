"""Baseline for bench_portal.py: the least a server must do to take one online response.

GET /c/<code> answers a tiny page; POST /c/<code> marks the code used and inserts the Response and its
Answer rows, with no forms, no CSRF, no validation, no templates. Not part of the product.
Run: gunicorn -k gthread 'bench.baseline_app:make_app("postgresql+psycopg://...")'
"""
from __future__ import annotations

import uuid
from datetime import date
from urllib.parse import parse_qsl

import sqlalchemy as sa

from survey_service.db import make_engine
from survey_service.models import Answer, InvitationCode, QuotaCell, Response, RoundForm


def make_app(url: str):
    engine = make_engine(url)
    code_t, response_t, answer_t = InvitationCode.__table__, Response.__table__, Answer.__table__

    def app(environ, start_response):
        code = environ["PATH_INFO"].rsplit("/", 1)[-1]
        if environ["REQUEST_METHOD"] == "GET":
            body = b"<form method=post><input name=submission_id value=0></form>"
            start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
            return [body]
        size = int(environ.get("CONTENT_LENGTH") or 0)
        answers = dict(parse_qsl(environ["wsgi.input"].read(size).decode()))
        answers.pop("submission_id", None)
        answers.pop("action", None)
        with engine.begin() as con:
            row = con.execute(
                sa.update(code_t).where(code_t.c.code == code, code_t.c.status == "unused")
                .values(status="used").returning(code_t.c.quota_cell_id)).first()
            if row is None:
                start_response("409 Conflict", [("Content-Length", "0")])
                return [b""]
            cell = con.execute(sa.select(QuotaCell.__table__).where(QuotaCell.__table__.c.id == row[0])).first()
            version = con.execute(sa.select(RoundForm.__table__.c.questionnaire_version_id).where(
                RoundForm.__table__.c.round_id == cell.round_id,
                RoundForm.__table__.c.form_code == cell.form_code)).scalar()
            response_id = con.execute(sa.insert(response_t).values(
                uid=uuid.uuid4().hex, round_id=cell.round_id, quota_cell_id=cell.id, form_code=cell.form_code,
                questionnaire_version_id=version, agency_id=cell.agency_id, channel="online",
                submitted_on=date.today(), respondent_key=uuid.uuid4().hex, surplus=False,
            ).returning(response_t.c.id)).scalar()
            con.execute(sa.insert(answer_t), [
                {"response_id": response_id, "agency_id": cell.agency_id, "item_code": k, "value": v}
                for k, v in answers.items() if v])
        body = b"ok"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [body]

    return app
