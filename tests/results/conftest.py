"""Helpers for the results tests: build import CSVs from the round's real questionnaires."""
from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from survey_service.services import ballots, imports, rounds
from tests.conftest import QUESTIONNAIRE_DIR, SECRET, collect_from_today

FORMS = ("CC-CT", "CC-ND", "CC-CH", "LĐ-CP", "LĐX-CH", "HĐ-CT", "LĐH-CH", "LĐS-CT")


def csv_bytes(rows: list[dict], *, bom: bool = True) -> bytes:
    columns = ["form", "agency"]
    for row in rows:
        columns += [c for c in row if c not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig" if bom else "utf-8")


class Builder:
    """Rows for the import file: every rated item of the form answered with ``value`` unless overridden."""

    def __init__(self, session, rnd):
        self.session, self.round = session, rnd
        self.forms = {code: rounds.questionnaire_for(session, rnd, code) for code in FORMS}

    def row(self, form: str, agency: str, value: str = "3", **overrides) -> dict:
        q = self.forms[form]
        row = {"form": form, "agency": agency}
        for item in q.scale_items:
            scale = q.scales[item.scale]
            row[item.code] = value if value in scale.codes else scale.valid_codes[0]
        row.update(overrides)
        return row

    def load(self, rows: list[dict]) -> imports.ImportReport:
        """Import the rows, then release every ballot, as the round's close would: these tests analyse a
        round whose answers are all in."""
        return import_all(self.session, self.round, csv_bytes(rows), today=date(2023, 10, 1))


def import_all(session, rnd, data: bytes, *, today: date) -> imports.ImportReport:
    """Import ``data`` and release every ballot of the round into the responses (committed)."""
    report = imports.import_responses(session, rnd, data, today=today, secret=SECRET, actor="test")
    ballots.release(session, rnd, ballots.opener(rnd, SECRET), today=today, everything=True)
    session.commit()
    return report


@pytest.fixture
def builder(loaded_round, session):
    return Builder(session, loaded_round)


@pytest.fixture
def mixed_pair(session, loaded_round, builder):
    """QNA-2023 where five of six SNV and all six SLĐTBXH respondents are satisfied, DNG-2026 beside it."""
    rows = [builder.row("CC-CT", "SNV", value) for value in "444442"]
    rows += [builder.row("CC-CT", "SLDTBXH", "4") for _ in range(6)]
    collect_from_today(session, loaded_round)
    builder.load(rows)
    rounds.load_round(session, QUESTIONNAIRE_DIR / "rounds" / "DNG-2026", QUESTIONNAIRE_DIR)
    session.commit()
    return loaded_round, rounds.get_round(session, "DNG-2026")
