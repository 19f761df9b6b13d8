"""A round's forms as XLSForm workbooks: the questionnaire version the round uses, worded for its province,
with the round's agencies, districts and divisions as choice lists (see
:mod:`survey_service.questionnaires.xlsform` for the workbook itself)."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service import questionnaires as qn
from survey_service.models import Agency, Division, QuotaCell, Round
from survey_service.questionnaires import xlsform
from survey_service.services import rounds
from survey_service.services.errors import ServiceError


class XlsformError(ServiceError):
    """The round has no such form."""


def round_lists(session: Session, rnd: Round, q: qn.Questionnaire) -> xlsform.RoundLists:
    """Who a form of the round can rate, and (supervising forms) the districts and divisions to choose from:
    only agencies with a quota cell of the form, so every submission lands in a cell."""
    agencies = session.scalars(sa.select(Agency).where(Agency.round_id == rnd.id).order_by(Agency.id)).all()
    with_cell = set(session.scalars(sa.select(QuotaCell.agency_id).where(
        QuotaCell.round_id == rnd.id, QuotaCell.form_code == q.code)))
    rated = [a for a in agencies if a.kind in q.rated_kinds]
    kinds = rnd.kind_labels
    who = " / ".join(kinds.get(k, k) for k in q.rated_kinds)
    if q.rates in ("own", "assigned"):
        return xlsform.RoundLists(agencies=[xlsform.Choice(a.code, a.name) for a in rated if a.id in with_cell],
                                  who_label=f"{who} được đánh giá")
    if q.rates == "matrix":
        return xlsform.RoundLists(agencies=[xlsform.Choice(a.code, a.name) for a in rated],
                                  who_label=f"Các {who.lower()} Anh/Chị đánh giá")
    mapping = rnd.supervision(q.code)
    divisions = session.scalars(sa.select(Division).where(
        Division.round_id == rnd.id, Division.form_code == q.code).order_by(Division.code)).all()
    supervised: dict[int, list[str]] = {}
    for d in divisions:
        for a in d.supervised_by:
            supervised.setdefault(a.id, []).append(d.code)
    return xlsform.RoundLists(
        agencies=[xlsform.Choice(a.code, a.name, tuple(supervised[a.id])) for a in rated if a.id in supervised],
        districts=[xlsform.Choice(a.code, a.name) for a in agencies
                   if a.kind == mapping["cells_per"] and a.id in with_cell],
        divisions=[xlsform.Choice(d.code, d.name) for d in divisions],
        who_label=f"Các {mapping['supervisor']} mà {mapping['unit']} của Anh/Chị chịu sự hướng dẫn",
        district_label=kinds.get(mapping["cells_per"], mapping["cells_per"]) + " của Anh/Chị",
        division_label=mapping["unit"][:1].upper() + mapping["unit"][1:] + " của Anh/Chị")


def export_round(session: Session, rnd: Round, out_dir: Path, form_code: str | None = None) -> list[Path]:
    """One workbook per form of the round (or only ``form_code``), named ``<form_id>-<version>.xlsx``."""
    forms = [f for f in rnd.forms if form_code in (None, f.form_code)]
    if not forms:
        raise XlsformError(f"Đợt {rnd.code} không có mẫu phiếu {form_code}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for rf in sorted(forms, key=lambda f: f.form_code):
        raw = qn.Questionnaire.from_definition(rf.questionnaire_version.definition)
        q = rounds.worded(raw, rnd)
        path = out_dir / f"{xlsform.form_id(q.code)}-{q.version}.xlsx"
        xlsform.write_workbook(path, q, raw, round_lists(session, rnd, q))
        paths.append(path)
    return paths

