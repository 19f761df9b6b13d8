"""Small factories for quota and progress tests: a round built directly through the models, and online
responses, drafts, paper sheets and keyed responses as the portal and the keying screens would store them."""
from __future__ import annotations

import uuid
from datetime import date

import sqlalchemy as sa

from survey_service.models import (
    Agency,
    Channel,
    CodeBatch,
    Draft,
    InvitationCode,
    QuestionnaireVersion,
    QuotaCell,
    Response,
    Round,
    RoundForm,
    Sheet,
    SheetState,
)
from survey_service.services.sealing import code_mark

AGENCIES = [
    ("SNV", "department", "Sở Nội vụ"),
    ("STC", "department", "Sở Tài chính"),
    ("BDT", "department", "Ban Dân tộc"),
    ("DLO", "district", "Đại Lộc"),
    ("DXU", "district", "Duy Xuyên"),
    ("TKY", "district", "Tam Kỳ"),
    ("CAT", "vertical", "Công an tỉnh"),
]
# form code → (channel, title, agency kinds with a cell; None = one matrix cell)
FORMS = {
    "CC-CT": (Channel.ONLINE, "Phiếu công chức sở", ["department"]),
    "CC-CH": (Channel.ONLINE, "Phiếu công chức huyện", ["district"]),
    "LĐ-CP": (Channel.ONLINE, "Phiếu lãnh đạo phòng cấp huyện", ["district"]),
    "HĐ-CT": (Channel.PAPER, "Phiếu đại biểu HĐND tỉnh", None),
    "LĐS-CT": (Channel.PAPER, "Phiếu lãnh đạo sở", ["district"]),
}


#: The three-tier structure of the QNA-2023 round, for rounds built directly in the database.
STRUCTURE = {
    "kinds": [{"code": "department", "label": "Sở, ban, ngành", "plural": "Các sở, ban, ngành"},
              {"code": "district", "label": "UBND cấp huyện", "plural": "UBND các huyện, thị xã, thành phố"},
              {"code": "vertical", "label": "Cơ quan ngành dọc", "plural": "Các cơ quan ngành dọc cấp tỉnh"}],
    "own_staff_forms": ["CC-CT", "CC-ND", "CC-CH"],
    "supervision": {"LĐ-CP": {"cells_per": "district", "unit": "phòng chuyên môn", "supervisor": "sở quản lý"}},
}


def make_round(session, code: str = "T-2025", *, target: int = 5, extra_agencies: int = 0,
               settings: dict | None = None, methodology: dict | None = None) -> Round:
    rnd = Round(code=code, name=f"Đợt thử {code}", province="Quảng Nam", year=2025, opens_on=date(2025, 9, 1),
                closes_on=date(2025, 12, 31), settings=settings or {}, methodology=methodology or {},
                methodology_hash="x", content_hash="x", structure=STRUCTURE)
    session.add(rnd)
    session.flush()
    agencies = [Agency(round_id=rnd.id, code=c, kind=k, name=n) for c, k, n in AGENCIES]
    agencies += [Agency(round_id=rnd.id, code=f"X{i:03d}", kind="department", name=f"Sở số {i}")
                 for i in range(extra_agencies)]
    session.add_all(agencies)
    for form, (channel, title, kinds) in FORMS.items():
        version = session.scalar(sa.select(QuestionnaireVersion).where(QuestionnaireVersion.form_code == form))
        if version is None:
            version = QuestionnaireVersion(form_code=form, version="v1",
                                           definition={"code": form, "title": title, "channel": channel.value})
            session.add(version)
            session.flush()
        session.add(RoundForm(round_id=rnd.id, form_code=form, questionnaire_version_id=version.id))
        targets = [None] if kinds is None else [a for a in agencies if a.kind in kinds]
        for agency in targets:
            session.add(QuotaCell(round_id=rnd.id, form_code=form, agency=agency, channel=channel, target=target))
    session.flush()
    return rnd


def cell(session, rnd: Round, form: str, agency_code: str | None = None) -> QuotaCell:
    query = sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id, QuotaCell.form_code == form)
    if agency_code is None:
        return session.scalar(query.where(QuotaCell.agency_id.is_(None)))
    return session.scalar(query.join(Agency, Agency.id == QuotaCell.agency_id).where(Agency.code == agency_code))


def _version_id(session, form: str) -> int:
    return session.scalar(sa.select(QuestionnaireVersion.id).where(QuestionnaireVersion.form_code == form))


def respond(session, quota_cell: QuotaCell, *, agency_ids: list[int | None] | None = None,
            day: date = date(2025, 10, 1), sheet: Sheet | None = None, surplus: bool = False) -> str:
    """One respondent's responses (several for LĐ-CP); returns the respondent key."""
    key = uuid.uuid4().hex
    if agency_ids is None:
        agency_ids = [quota_cell.agency_id]
    for agency_id in agency_ids:
        session.add(Response(
            uid=uuid.uuid4().hex, round_id=quota_cell.round_id, quota_cell_id=quota_cell.id,
            form_code=quota_cell.form_code, questionnaire_version_id=_version_id(session, quota_cell.form_code),
            agency_id=agency_id, channel=quota_cell.channel, submitted_on=day,
            sheet_id=sheet.id if sheet is not None else None, respondent_key=key, surplus=surplus,
        ))
    session.flush()
    return key


def start_online(session, quota_cell: QuotaCell, *, with_draft: bool = True) -> InvitationCode:
    batch = CodeBatch(quota_cell_id=quota_cell.id, count=1)
    session.add(batch)
    session.flush()
    code = InvitationCode(code=uuid.uuid4().hex[:12], quota_cell_id=quota_cell.id, batch_id=batch.id)
    session.add(code)
    session.flush()
    if with_draft:
        session.add(Draft(code_mark=code_mark("test-secret", code.code), quota_cell_id=quota_cell.id,
                          answers={"*": {"Q1": "4"}}))
        session.flush()
    return code


def paper_sheet(session, quota_cell: QuotaCell, state: SheetState, *, day: date = date(2025, 10, 2),
                surplus: bool = False) -> Sheet:
    """A sheet in ``state``; keyed and verified sheets get their response, as the keying screen stores it."""
    sheet = Sheet(serial=uuid.uuid4().hex[:16], quota_cell_id=quota_cell.id, state=state)
    session.add(sheet)
    session.flush()
    if state in (SheetState.KEYED, SheetState.VERIFIED):
        respond(session, quota_cell, sheet=sheet, day=day, surplus=surplus)
    return sheet


def mixed_run(session, rnd: Round) -> None:
    """Online responses, drafts and keyed paper sheets in every state, over several days."""
    snv, stc = (cell(session, rnd, "CC-CT", code) for code in ("SNV", "STC"))
    for i in range(3):
        respond(session, snv, day=date(2025, 10, 1 + i))
    start_online(session, snv)
    start_online(session, snv)
    start_online(session, snv, with_draft=False)  # a code handed out, never opened: not "started"
    for i in range(7):  # over its target of 5
        respond(session, stc, day=date(2025, 10, 3))
    departments = [stc.agency_id, snv.agency_id]
    lđ_cp = cell(session, rnd, "LĐ-CP", "DLO")
    respond(session, lđ_cp, agency_ids=departments, day=date(2025, 10, 4))
    respond(session, lđ_cp, agency_ids=departments, day=date(2025, 10, 4))
    matrix = cell(session, rnd, "HĐ-CT")
    for state in [SheetState.VERIFIED] * 2 + [SheetState.KEYED] + [SheetState.ISSUED] * 3 + [
            SheetState.VOID, SheetState.RETURNED]:
        paper_sheet(session, matrix, state)
    tky = cell(session, rnd, "LĐS-CT", "TKY")
    paper_sheet(session, tky, SheetState.VERIFIED)
    paper_sheet(session, tky, SheetState.VERIFIED, surplus=True)
    paper_sheet(session, tky, SheetState.ISSUED)
    cell(session, rnd, "CC-CH", "DXU").soft_closed = True
    session.flush()


def expected_figures(session, rnd: Round) -> dict[int, dict[str, int]]:
    """The counting rules applied row by row in Python, straight from the tables."""
    cells = session.scalars(sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id)).all()
    responses = session.scalars(sa.select(Response).where(Response.round_id == rnd.id)).all()
    sheets = {s.id: s for s in session.scalars(sa.select(Sheet))}
    drafts = session.scalars(sa.select(Draft)).all()
    out = {}
    for c in cells:
        mine = [r for r in responses if r.quota_cell_id == c.id]
        verified = len({r.respondent_key for r in mine
                        if r.channel is Channel.ONLINE or r.sheet_id is None
                        or sheets[r.sheet_id].state is SheetState.VERIFIED})
        flagged = len({r.respondent_key for r in mine if r.surplus})
        out[c.id] = {
            "target": c.target,
            "verified": verified,
            "keyed": sum(1 for s in sheets.values() if s.quota_cell_id == c.id and s.state is SheetState.KEYED),
            "started": sum(1 for d in drafts if d.quota_cell_id == c.id),
            "issued": sum(1 for s in sheets.values() if s.quota_cell_id == c.id and s.state is SheetState.ISSUED),
            "surplus": flagged + (max(0, verified - flagged - c.target) if c.channel is Channel.ONLINE else 0),
            "shortfall": max(0, c.target - verified),
        }
    return out
