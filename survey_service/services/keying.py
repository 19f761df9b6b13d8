"""Keying paper sheets: one pass creates the response, a blind second pass checks a sample of them.

Answers are handled as a *slot map* ``{row: {item code: value}}`` where ``row`` is an agency code (a row
of the HĐ-CT matrix) or ``"*"`` (the sheet's own items); values are option codes or free text, and an item
left blank on paper is simply absent. This is also what a :class:`Keying` row stores, so two passes are
compared slot by slot.
"""
from __future__ import annotations

import random
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, object_session

from survey_service import questionnaires as qn
from survey_service.models import (
    KEYER_CLERK, KEYER_READER, Agency, Answer, AuditEvent, Channel, Keying, QuestionnaireVersion, QuotaCell,
    Response, Round, RoundForm, Sheet, SheetState, StaffUser, utcnow,
)
from survey_service.services import audit, ballots, phuctra, quotas, rounds, storable
from survey_service.services.sealing import Sealer
from survey_service.services.sheets import STATE_LABELS, SheetError, transition
from survey_service.vietnamese import VIETNAM, date_time

SHEET_ROW = "*"
#: Times in messages to clerks are Vietnamese local time (stored times are UTC).
#: What a clerk may type for an item left blank on paper.
BLANK_KEYS = ("-",)
#: Typed for the excluded option ("Không biết / không đánh giá").
UNKNOWN_KEYS = ("0", "K")


class KeyingError(SheetError):
    """Keyed values that cannot be stored; ``problems`` lists each slot and why."""

    def __init__(self, message: str, status: int = 422, problems: dict[str, str] | None = None):
        super().__init__(message, status)
        self.problems = problems or {}


@dataclass(frozen=True)
class Row:
    """One row of the keying grid: the sheet's own items, or one agency of the HĐ-CT matrix."""

    key: str
    label: str
    agency_id: int | None = None
    group: str = ""


@dataclass
class SheetForm:
    """What the keying screen and the printed sheet need to lay a sheet out."""

    sheet: Sheet
    round: Round
    questionnaire: qn.Questionnaire
    questionnaire_version_id: int
    agency: Agency | None
    rows: list[Row]

    @property
    def matrix(self) -> bool:
        return self.questionnaire.rates == "matrix"


def sheet_form(session: Session, sheet: Sheet, cache: dict | None = None) -> SheetForm:
    """The questionnaire version printed on a sheet and its rows (agencies for HĐ-CT).

    A sheet printed before the questionnaire changed is keyed and recorded with the version on the paper.
    ``cache`` (any dict) shares the questionnaire and matrix rows between sheets of one version.
    """
    cell = sheet.quota_cell
    rnd = cell.round
    cache = {} if cache is None else cache
    version_id = sheet.questionnaire_version_id or session.get(
        RoundForm, (rnd.id, cell.form_code)).questionnaire_version_id
    key = (rnd.id, version_id)
    if key not in cache:
        version = session.get(QuestionnaireVersion, version_id)
        questionnaire = qn.Questionnaire.from_definition(version.definition).worded_for(
            rnd.province, rnd.province_type)
        cache[key] = (questionnaire, matrix_rows(session, rnd, questionnaire))
    questionnaire, rows = cache[key]
    if questionnaire.rates != "matrix":
        rows = [Row(SHEET_ROW, cell.agency.name if cell.agency else "", cell.agency_id)]
    return SheetForm(sheet, rnd, questionnaire, version_id, cell.agency, rows)


def matrix_rows(session: Session, rnd: Round, questionnaire: qn.Questionnaire) -> list[Row]:
    """The HĐ-CT rows: the round's agencies of the kinds the form rates, grouped by kind in the round's
    order under the kind's plural label."""
    if questionnaire.rates != "matrix":
        return []
    groups = rnd.kind_plurals
    kinds = [k for k in groups if k in questionnaire.rated_kinds]
    agencies = session.scalars(sa.select(Agency).where(Agency.round_id == rnd.id, Agency.kind.in_(kinds))
                               .order_by(Agency.id))
    by_kind = sorted(agencies, key=lambda a: kinds.index(a.kind))
    return [Row(a.code, a.name, a.id, groups[a.kind]) for a in by_kind]


def slot_name(row: str, item: str) -> str:
    """The form field name of a slot: ``"*:Q01"`` or ``"SNV:Q01"``."""
    return f"{row}:{item}"


def parse_slots(form: SheetForm, data) -> dict[str, dict[str, str]]:
    """Validate keyed values into a slot map.

    Every scale slot must be keyed (an option code, ``0``/``K`` for "không biết", ``-`` for blank); text
    items may be empty. :raises KeyingError: listing every slot that is missing or off the scale.
    """
    q = form.questionnaire
    slots: dict[str, dict[str, str]] = {}
    problems: dict[str, str] = {}
    # As the screen numbers them: questions in form order, grid columns in rated-item order.
    numbers = {item.code: n for n, item in enumerate(q.scale_items if form.matrix else q.items, 1)}
    for row in form.rows:
        for item in q.scale_items:
            name = slot_name(row.key, item.code)
            raw = (data.get(name) or "").strip().upper()
            label = (f"{row.label} – cột {numbers[item.code]} ({item.code})" if form.matrix
                     else f"Câu {numbers[item.code]} ({item.code})")
            if not raw:
                # The grid has a box to type "-" in; a single sheet has a "Để trống" option to pick.
                blank = "gõ “-”" if form.matrix else "chọn “Để trống”"
                problems[name] = f"{label}: chưa nhập ({blank} nếu trên phiếu để trống)."
                continue
            if raw in BLANK_KEYS:
                continue
            value = _option_code(q.scales[item.scale], raw)
            if value is None:
                problems[name] = (f"{label}: “{raw[:5]}” không thuộc thang trả lời "
                                  f"({', '.join(q.scales[item.scale].codes)}).")
                continue
            slots.setdefault(row.key, {})[item.code] = value
    for item in q.text_items:
        name = slot_name(SHEET_ROW, item.code)
        text = " ".join(unicodedata.normalize("NFC", data.get(name) or "").split())
        limit = item.max_length or 2000
        if len(text) > limit:
            problems[name] = f"Câu {item.code}: dài quá {limit} ký tự."
        elif problem := storable.unstorable(text):
            problems[name] = f"Câu {item.code}: {problem}, không lưu được."
        elif text:
            slots.setdefault(SHEET_ROW, {})[item.code] = text
    if problems:
        raise KeyingError(f"Chưa lưu: {len(problems)} ô chưa nhập hoặc không hợp lệ.", 422, problems)
    return slots


def _option_code(scale: qn.Scale, raw: str) -> str | None:
    if raw in scale.codes:
        return raw
    if raw in UNKNOWN_KEYS and scale.excluded_codes:
        return scale.excluded_codes[0]
    return None


# --- who may key what --------------------------------------------------------------------------------
def keying_pass(sheet: Sheet, clerk: StaffUser) -> int:
    """1 or 2: the pass this clerk would key now.

    :raises SheetError: 409 for a void sheet or one already keyed (saying by whom and when) or imported, 403 when the
        second pass would be keyed by the clerk of the first.
    """
    if sheet.state is SheetState.VOID:
        replaced = f" Phiếu thay thế: {sheet_replacement(sheet)}." if sheet.replaced_by_id else ""
        raise SheetError(f"Phiếu {sheet.serial} đã bị hủy và không được nhập.{replaced}", 409)
    keyings = {k.pass_no: k for k in sheet.keyings}
    if 1 not in keyings and sheet.state in (SheetState.ISSUED, SheetState.RETURNED):
        return 1
    if 1 not in keyings:  # answered in a field tool and imported (services.imports)
        raise SheetError(f"Phiếu {sheet.serial} đã có câu trả lời nhập từ tệp của ODK/KoboToolbox (trạng thái: "
                         f"{STATE_LABELS[sheet.state]}). Không nhập lại; nếu có sai sót, báo giám sát viên.", 409)
    first = keyings[1]
    if sheet.double_entry and 2 not in keyings and sheet.state is SheetState.KEYED:
        if first.clerk_id == clerk.id:
            raise SheetError(f"Phiếu {sheet.serial} cần được nhập lần hai bởi một nhân viên khác "
                             "(nhập kép độc lập).", 403)
        return 2
    second = (f"; nhập lần hai bởi {_name(keyings[2].clerk)} lúc {_local(keyings[2].keyed_at)}"
              if 2 in keyings else "")
    raise SheetError(f"Phiếu {sheet.serial} đã được nhập bởi {_name(first.clerk)} lúc "
                     f"{_local(first.keyed_at)}{second} (trạng thái: {STATE_LABELS[sheet.state]}). "
                     "Không nhập lại; nếu có sai sót, báo giám sát viên.", 409)


def sheet_replacement(sheet: Sheet) -> str:
    new = object_session(sheet).get(Sheet, sheet.replaced_by_id)
    return new.serial if new else ""


def _name(user: StaffUser) -> str:
    return f"{user.full_name} ({user.username})" if user.full_name else user.username


def _local(at: datetime) -> str:
    return "lúc " + date_time(at, VIETNAM)


# --- keying ------------------------------------------------------------------------------------------
def key_sheet(session: Session, sheet: Sheet, clerk: StaffUser, data, *, today: date | None = None,
              rng: random.Random | None = None, keyer: str = KEYER_CLERK, reading: dict | None = None,
              secret: str | None = None) -> Keying:
    """Store one keying pass of a sheet.

    Pass 1 creates the response and decides whether the sheet is double-entered; pass 2 (another clerk,
    blind) is compared with pass 1: agreement verifies the sheet, disagreement waits for reconciliation.
    An issued sheet keyed directly is recorded as returned first. Nothing is stored on any error.
    ``keyer`` :data:`KEYER_READER` is a machine reading confirmed by ``clerk`` (``reading``: its audit
    trail, see :mod:`survey_service.services.reading`).

    A citizens' round's sheet is keyed once and its answers sealed into the ballot box (with ``secret``,
    the server's) under its investigator, not kept as a response of the sheet: phúc tra holds names and
    phone numbers by serial, and no answer may be joined to them.
    """
    pass_no = keying_pass(sheet, clerk)
    form = sheet_form(session, sheet)
    _check_collecting(form.round, today)
    slots = parse_slots(form, data)
    keying = Keying(pass_no=pass_no, clerk=clerk, answers=slots, keyed_at=utcnow(), keyer=keyer, reading=reading)
    sheet.keyings.append(keying)
    if pass_no == 1 and rounds.is_citizens(form.round):
        _seal_sheet(session, form, clerk, slots, today or utcnow().date(), secret)
        keying.answers = {}
    elif pass_no == 1:
        _first_pass(session, form, keying, slots, today or utcnow().date(), rng or secrets.SystemRandom())
    else:
        session.flush()
        if not disagreements(sheet):
            transition(session, sheet, SheetState.VERIFIED, by=clerk)
    audit.record(session, "sheet.key", user=clerk, object_type="sheet", object_id=sheet.serial,
                 new={"pass": pass_no, "double_entry": sheet.double_entry, "keyer": keyer})
    session.flush()
    return keying


def _first_pass(session: Session, form: SheetForm, keying: Keying, slots, today: date,
                rng: random.Random) -> None:
    """The response, and the double-entry draw: a keyer's first sheets of the round (each clerk's, or the
    reader's) and a random share of the rest get a blind second keying. A reading not drawn is verified
    at once (the clerk has confirmed what it was unsure of); a clerk's, if the round says so."""
    sheet, rnd, clerk = form.sheet, form.round, keying.clerk
    if sheet.state is SheetState.ISSUED:
        transition(session, sheet, SheetState.RETURNED, by=clerk)
    transition(session, sheet, SheetState.KEYED, by=clerk)
    cell = sheet.quota_cell
    response = Response(
        uid=uuid.uuid4().hex, round_id=rnd.id, quota_cell_id=cell.id, form_code=cell.form_code,
        questionnaire_version_id=form.questionnaire_version_id, agency_id=cell.agency_id,
        channel=Channel.PAPER, submitted_on=today, sheet_id=sheet.id, respondent_key=uuid.uuid4().hex,
        surplus=quotas.new_paper_response_is_surplus(session, cell),
    )
    response.answers = [Answer(agency_id=agency_id, item_code=item, value=value)
                        for (agency_id, item), value in _answer_values(form, slots).items()]
    session.add(response)
    settings = rnd.settings or {}
    same_keyer = (Keying.keyer == KEYER_READER if keying.keyer == KEYER_READER
                  else sa.and_(Keying.keyer == KEYER_CLERK, Keying.clerk_id == clerk.id))
    keyed_before = session.scalar(
        sa.select(sa.func.count()).select_from(Keying).join(Sheet).join(QuotaCell)
        .where(same_keyer, Keying.pass_no == 1, Keying.sheet_id != sheet.id, QuotaCell.round_id == rnd.id)
    )
    sheet.double_entry = (keyed_before < int(settings.get("double_entry_first_sheets", 20))
                          or rng.random() < float(settings.get("double_entry_rate", 0.10)))
    if not sheet.double_entry and (keying.keyer == KEYER_READER
                                   or settings.get("unsampled_keyed_count_as_verified", False)):
        transition(session, sheet, SheetState.VERIFIED, by=clerk)


def _seal_sheet(session: Session, form: SheetForm, clerk: StaffUser, slots, today: date, secret: str | None) -> None:
    """A citizens' round's sheet: verified at its one keying, its answers cast as a paper ballot under the
    sheet's investigator, released like online ballots (at least k of a cell, and of an investigator)."""
    if not secret:
        raise KeyingError("Thiếu khóa bí mật của máy chủ (SECRET_KEY) để niêm phong phiếu.", 500)
    sheet, rnd = form.sheet, form.round
    if not sheet.investigator:
        raise KeyingError(f"Phiếu {sheet.serial} chưa ghi điều tra viên đã phát phiếu: ghi điều tra viên trước "
                          "khi nhập (lệnh survey-service sheets assign).", 409)
    if sheet.state is SheetState.ISSUED:
        transition(session, sheet, SheetState.RETURNED, by=clerk)
    transition(session, sheet, SheetState.KEYED, by=clerk)
    transition(session, sheet, SheetState.VERIFIED, by=clerk)
    box = ballots.box(secret, rnd.code, rnd.ballot_public_key)
    values = {item: value for (_, item), value in _answer_values(form, slots).items()}
    ballots.cast(session, box, cell_id=sheet.quota_cell_id, questionnaire=form.questionnaire,
                 version_id=form.questionnaire_version_id, division_id=None,
                 answers=[(sheet.quota_cell.agency_id, values)], channel=Channel.PAPER,
                 investigator=sheet.investigator, commune=sheet.commune)
    phuctra.record_pattern(session, sheet, slots, secret=secret)  # for the identical-answers flag
    if isinstance(box, Sealer):
        ballots.release_cell(session, rnd.id, sheet.quota_cell_id, box, today=today)


def _check_collecting(rnd: Round, today: date | None = None) -> None:
    try:
        rounds.check_collecting(rnd, today or rounds.local_today())
    except rounds.RoundError as exc:
        raise KeyingError(str(exc), 409) from None


def _answer_values(form: SheetForm, slots) -> dict[tuple[int | None, str], str]:
    """Slot map -> {(Answer.agency_id, item code): value}."""
    return {(_answer_agency(form, row_key), item): value
            for row_key, items in slots.items() for item, value in items.items()}


def _answer_agency(form: SheetForm, row_key: str) -> int | None:
    """The agency an answer is about: the matrix row (HĐ-CT's sheet-level text has none), else the sheet's."""
    if not form.matrix:
        return form.sheet.quota_cell.agency_id
    return None if row_key == SHEET_ROW else next(r.agency_id for r in form.rows if r.key == row_key)


# --- double entry ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Disagreement:
    row: str
    item: str
    first: str
    second: str

    @property
    def name(self) -> str:
        return slot_name(self.row, self.item)


def disagreements(sheet: Sheet) -> list[Disagreement]:
    """Slots where the two keying passes differ ("" = left blank)."""
    keyings = {k.pass_no: k.answers for k in sheet.keyings}
    if 1 not in keyings or 2 not in keyings:
        return []
    first, second = keyings[1], keyings[2]
    found = []
    for row in sorted(set(first) | set(second)):
        a, b = first.get(row, {}), second.get(row, {})
        for item in sorted(set(a) | set(b)):
            if a.get(item, "") != b.get(item, ""):
                found.append(Disagreement(row, item, a.get(item, ""), b.get(item, "")))
    return found


#: A reconciliation choice naming a value neither keying had: ``v:<option code>`` (``v:`` = blank) for a
#: rated item, ``t`` with the text in ``<slot>:text`` for a free-text item.
OTHER_VALUE, OTHER_TEXT = "v:", "t"


def reconcile(session: Session, sheet: Sheet, supervisor: StaffUser, choices) -> list[Disagreement]:
    """Settle a double-entry disagreement: per slot, keep the first or the second keying's value, or the
    value read on the paper when both clerks were wrong (see :data:`OTHER_VALUE`).

    The response's answers are corrected to the chosen values, each change audited with old and new value,
    and the sheet becomes verified. :raises KeyingError: if a slot has no valid choice.
    """
    _check_collecting(sheet.quota_cell.round)
    found = disagreements(sheet)
    if sheet.state is not SheetState.KEYED or not found:
        raise SheetError(f"Phiếu {sheet.serial} không có bất đồng nào cần đối chiếu.", 409)
    form = sheet_form(session, sheet)
    decisions, problems = {}, {}
    for d in found:
        where = f"{d.row if d.row != SHEET_ROW else ''} câu {d.item}".strip().capitalize()
        try:
            decisions[d.name] = _decision(form.questionnaire, d, choices)
        except ValueError as exc:
            problems[d.name] = f"{where}: {exc}"
    if problems:
        raise KeyingError("Chưa lưu: hãy chọn giá trị đúng cho mọi ô khác nhau.", 422, problems)
    response = session.scalar(sa.select(Response).where(Response.sheet_id == sheet.id))
    for d in found:
        _set_answer(session, response, _answer_agency(form, d.row), d.item, decisions[d.name], supervisor)
    audit.record(session, "sheet.reconcile", user=supervisor, object_type="sheet", object_id=sheet.serial,
                 old={d.name: [d.first, d.second] for d in found}, new=decisions)
    transition(session, sheet, SheetState.VERIFIED, by=supervisor)
    return found


def _decision(q: qn.Questionnaire, d: Disagreement, choices) -> str:
    """The value a supervisor chose for one slot. :raises ValueError: with the reason, in Vietnamese."""
    choice = choices.get(d.name) or ""
    if choice == "1":
        return d.first
    if choice == "2":
        return d.second
    item = q.item(d.item)
    if item.kind == "scale" and choice.startswith(OTHER_VALUE):
        code = choice[len(OTHER_VALUE):]
        if code == "" or code in q.scales[item.scale].codes:
            return code
        raise ValueError(f"“{code[:5]}” không thuộc thang trả lời ({', '.join(q.scales[item.scale].codes)}).")
    if item.kind == "text" and choice == OTHER_TEXT:
        text = " ".join(unicodedata.normalize("NFC", choices.get(f"{d.name}:text") or "").split())
        if len(text) > (item.max_length or 2000):
            raise ValueError(f"dài quá {item.max_length or 2000} ký tự.")
        if problem := storable.unstorable(text):
            raise ValueError(f"{problem}, không lưu được.")
        return text
    raise ValueError("chưa chọn giá trị đúng.")


def _set_answer(session: Session, response: Response, agency_id: int | None, item: str, value: str,
                by: StaffUser) -> None:
    answer = next((a for a in response.answers if a.agency_id == agency_id and a.item_code == item), None)
    old = answer.value if answer else ""
    if old == value:
        return
    if answer is None:
        response.answers.append(Answer(agency_id=agency_id, item_code=item, value=value))
    elif value == "":
        response.answers.remove(answer)
    else:
        answer.value = value
    audit.record(session, "answer.reconcile", user=by, object_type="response", object_id=response.uid,
                 old={"agency_id": agency_id, "item": item, "value": old},
                 new={"agency_id": agency_id, "item": item, "value": value})
    session.flush()


def verify(session: Session, sheet: Sheet, supervisor: StaffUser) -> None:
    """A supervisor confirms a keyed sheet that was not sampled for double entry."""
    _check_collecting(sheet.quota_cell.round)
    if sheet.state is not SheetState.KEYED or (sheet.double_entry and len(sheet.keyings) < 2):
        raise SheetError(f"Phiếu {sheet.serial} chưa thể xác nhận: cần nhập (và nhập kép nếu được chọn) "
                         "trước.", 409)
    if disagreements(sheet):
        raise SheetError(f"Phiếu {sheet.serial} có bất đồng giữa hai lần nhập: hãy đối chiếu.", 409)
    transition(session, sheet, SheetState.VERIFIED, by=supervisor)


# --- work lists and agreement ------------------------------------------------------------------------
def _round_sheets(rnd: Round):
    return sa.select(Sheet).join(QuotaCell).where(QuotaCell.round_id == rnd.id)


def awaiting_second_keying(session: Session, rnd: Round, clerk: StaffUser) -> list[Sheet]:
    """Sheets sampled for double entry whose first pass another clerk keyed (nothing of it is shown)."""
    first_by_other = sa.select(Keying.sheet_id).where(Keying.pass_no == 1, Keying.clerk_id != clerk.id)
    second = sa.select(Keying.sheet_id).where(Keying.pass_no == 2)
    return list(session.scalars(
        _round_sheets(rnd).where(Sheet.double_entry.is_(True), Sheet.state == SheetState.KEYED,
                                 Sheet.id.in_(first_by_other), Sheet.id.not_in(second)).order_by(Sheet.id)
    ))


def awaiting_reconciliation(session: Session, rnd: Round) -> list[Sheet]:
    both = sa.select(Keying.sheet_id).where(Keying.pass_no == 2)
    return list(session.scalars(
        _round_sheets(rnd).where(Sheet.state == SheetState.KEYED, Sheet.id.in_(both)).order_by(Sheet.id)
    ))


def awaiting_verification(session: Session, rnd: Round) -> list[Sheet]:
    return list(session.scalars(
        _round_sheets(rnd).where(Sheet.state == SheetState.KEYED, Sheet.double_entry.is_(False)).order_by(Sheet.id)
    ))


@dataclass
class ClerkAgreement:
    """A keyer's agreement: a clerk's, or (``clerk`` None) the machine reader's."""

    clerk: StaffUser | None
    keyed_first: int = 0
    keyed_second: int = 0
    double_sheets: int = 0
    agreed_sheets: int = 0
    slots: int = 0
    agreed_slots: int = 0
    overruled: int = 0

    @property
    def rate(self) -> float | None:
        return self.agreed_slots / self.slots if self.slots else None

    @property
    def label(self) -> str:
        return _name(self.clerk) if self.clerk else "Máy đọc phiếu (ảnh chụp, bản quét)"


def agreement_by_clerk(session: Session, rnd: Round) -> list[ClerkAgreement]:
    """Per keyer (each clerk, and the machine reader as one): sheets keyed, double-entered sheets and the
    share of slots both passes agreed on, and how many of the keyer's values the supervisor's
    reconciliation overruled. A read sheet drawn for double entry is keyed blind by a person, so the
    reader's row measures its agreement with people."""
    sheets = session.scalars(_round_sheets(rnd).where(Sheet.id.in_(sa.select(Keying.sheet_id)))).all()
    stats: dict[int | str, ClerkAgreement] = {}

    def keyer(k: Keying) -> int | str:
        return KEYER_READER if k.keyer == KEYER_READER else k.clerk_id

    for sheet in sheets:
        keyings = {k.pass_no: k for k in sheet.keyings}
        for k in keyings.values():
            entry = stats.setdefault(keyer(k), ClerkAgreement(None if k.keyer == KEYER_READER else k.clerk))
            if k.pass_no == 1:
                entry.keyed_first += 1
            else:
                entry.keyed_second += 1
        if 2 not in keyings:
            continue
        differing = disagreements(sheet)
        compared = _slot_count(keyings[1].answers, keyings[2].answers)
        decided = _decisions(session, sheet) if differing and sheet.state is SheetState.VERIFIED else {}
        for k in keyings.values():
            entry = stats[keyer(k)]
            entry.double_sheets += 1
            entry.agreed_sheets += not differing
            entry.slots += compared
            entry.agreed_slots += compared - len(differing)
            entry.overruled += sum(
                1 for d in differing if d.name in decided
                and decided[d.name] != (d.first if k.pass_no == 1 else d.second)
            )
    return sorted(stats.values(), key=lambda s: (s.clerk is None, s.clerk.username if s.clerk else ""))


def _slot_count(first: dict, second: dict) -> int:
    return sum(len(set(first.get(r, {})) | set(second.get(r, {}))) for r in set(first) | set(second))


def _decisions(session: Session, sheet: Sheet) -> dict[str, str]:
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "sheet.reconcile",
                                                       AuditEvent.object_id == sheet.serial)
                           .order_by(AuditEvent.id.desc()).limit(1))
    return dict(event.new_value) if event and isinstance(event.new_value, dict) else {}
