"""Staff preview of a round's forms, as a respondent sees them online and as the paper sheet is printed,
without spending an invitation code or issuing a sheet: nothing is stored.

The online preview is an :class:`portal.Access` that belongs to no code, so the portal's own checks
(:func:`portal.check_answers`) say exactly what a respondent would be told; the printed preview is a sheet
that is never added to the ledger.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service import questionnaires as qn
from survey_service.models import Agency, CodeStatus, Division, QuotaCell, Round, RoundForm, Sheet
from survey_service.services import portal
from survey_service.services.errors import ServiceError

#: Shown where a respondent sees their code; it is not a code (codes never contain a dash inside a group).
PREVIEW_CODE = "XEM-TRƯỚC"
PREVIEW_SERIAL = "MẪU-XEM-TRƯỚC"


class PreviewError(ServiceError):
    """A form, agency or division the round does not have; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 404):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class FormChoice:
    """A form of the round and the agencies (LĐ-CP: districts) it has quota cells for."""

    code: str
    questionnaire: qn.Questionnaire
    channel: str
    agencies: tuple[tuple[str, str], ...]

    @property
    def online(self) -> bool:
        return self.channel == "online"


def round_forms(session: Session, rnd: Round) -> list[FormChoice]:
    """Every form of the round in the order of the round's files, online first."""
    forms = []
    for rf in session.scalars(sa.select(RoundForm).where(RoundForm.round_id == rnd.id)):
        q = qn.Questionnaire.from_definition(rf.questionnaire_version.definition).worded_for(
            rnd.province, rnd.province_type)
        agencies = session.execute(
            sa.select(Agency.code, Agency.name).join(QuotaCell, QuotaCell.agency_id == Agency.id)
            .where(QuotaCell.round_id == rnd.id, QuotaCell.form_code == rf.form_code).order_by(Agency.id)).all()
        forms.append(FormChoice(rf.form_code, q, q.channel, tuple((a.code, a.name) for a in agencies)))
    return sorted(forms, key=lambda f: (not f.online, f.code))


def form_choice(session: Session, rnd: Round, form_code: str) -> FormChoice:
    choice = next((f for f in round_forms(session, rnd) if f.code == form_code), None)
    if choice is None:
        raise PreviewError(f"Đợt {rnd.code} không có phiếu {form_code[:16]}.")
    return choice


def _cell(session: Session, rnd: Round, form: FormChoice, agency_code: str | None) -> QuotaCell:
    """The quota cell shown: the agency asked for, else the form's first."""
    query = sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id, QuotaCell.form_code == form.code)
    if form.agencies:
        code = agency_code or form.agencies[0][0]
        if code not in dict(form.agencies):
            raise PreviewError(f"Phiếu {form.code} không có chỉ tiêu cho cơ quan {code[:32]}.")
        query = query.join(Agency, Agency.id == QuotaCell.agency_id).where(Agency.code == code)
    cell = session.scalar(query.limit(1))
    if cell is None:
        raise PreviewError(f"Phiếu {form.code} không có ô chỉ tiêu nào trong đợt {rnd.code}.")
    return cell


def access(session: Session, rnd: Round, form_code: str, *, agency_code: str | None = None,
           division_code: str | None = None) -> portal.Access:
    """What the portal would give a respondent of this form and agency (LĐ-CP: district and division)."""
    form = form_choice(session, rnd, form_code)
    if not form.online:
        raise PreviewError(f"Phiếu {form.code} là phiếu giấy: xem bản in.", 404)
    cell = _cell(session, rnd, form, agency_code)
    rated = portal.RatedAgency(cell.agency.id, cell.agency.code, cell.agency.name) if cell.agency else None
    result = portal.Access(
        invitation=portal.CodeInfo(0, PREVIEW_CODE, CodeStatus.UNUSED, None),
        cell=portal.CellInfo(cell.id, cell.target, cell.soft_closed, rated),
        round=portal.round_snapshot(rnd.id, rnd.code, rnd.name, rnd.opens_on, rnd.closes_on, rnd.closed_at,
                                    rnd.simulated, rnd.province, rnd.structure),
        questionnaire=form.questionnaire,
        version_id=session.get(RoundForm, (rnd.id, form.code)).questionnaire_version_id,
        draft=None,
    )
    if form.questionnaire.rates == "supervising":
        result.supervision = rnd.supervision(form.code)
        division = _division(session, rnd, form.code, division_code)
        supervisors = tuple(portal.RatedAgency(a.id, a.code, a.name) for a in division.supervised_by)
        result.division = portal.DivisionInfo(division.id, division.code, division.name, supervisors)
        result.rated_agencies = list(supervisors)
    else:
        result.rated_agencies = [rated]
    return result


def _division(session: Session, rnd: Round, form_code: str, code: str | None) -> Division:
    query = (sa.select(Division).where(Division.round_id == rnd.id, Division.form_code == form_code)
             .order_by(Division.id))
    if code:
        query = query.where(Division.code == code)
    division = session.scalar(query.limit(1))
    if division is None:
        unit = rnd.supervision(form_code)["unit"]
        raise PreviewError(f"Đợt {rnd.code} không có {unit} {code[:32] if code else ''} của phiếu {form_code}.")
    return division


def divisions(session: Session, rnd: Round) -> list[Division]:
    return list(session.scalars(sa.select(Division).where(Division.round_id == rnd.id).order_by(Division.id)))


def sample_sheet(session: Session, rnd: Round, form_code: str, *, agency_code: str | None = None) -> Sheet:
    """A sheet of the form as it would be printed, never added to the session (no serial is used up)."""
    form = form_choice(session, rnd, form_code)
    cell = _cell(session, rnd, form, agency_code)
    sheet = Sheet(serial=PREVIEW_SERIAL, quota_cell=cell,
                  questionnaire_version_id=session.get(RoundForm, (rnd.id, form.code)).questionnaire_version_id)
    if sheet in session:
        session.expunge(sheet)
    return sheet
