"""Simulated responses for a demonstration round, so a newcomer sees a dashboard, a ledger and results.

The data go through the same services as real data: invitation codes are issued and answered through the
portal service (drafts saved, divisions chosen, codes spent), paper sheets are issued, returned and keyed
by two clerks with the blind double entry and its reconciliation. So they obey every rule real data obey
(no code on a response, only the day, surplus flags, double-entry sampling). They are written only into a
round marked simulated, never into a real one.
"""
from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service import questionnaires as qn
from survey_service.models import (
    Agency, Channel, ContactKind, QuotaCell, Response, Role, Round, Sheet, SheetState, StaffUser,
)
from survey_service.services import (
    ballots, demo, frames, invitations, keying, phuctra, portal, receipts, rounds, sheets, users,
)
from survey_service.services.errors import ServiceError

#: Share of an online cell's target that answers, drawn per agency: a few hundred respondents in QNA-2023.
ONLINE_SHARE = (0.03, 0.25)
#: Of the online codes handed out beyond those answered, how many were opened and saved but not sent.
DRAFTS_PER_CELL = (0, 2)
SHEETS_RETURNED = 0.85
RETURNED_KEYED = 0.85
#: Of the sheets drawn for double entry, the share keyed a second time, and of those the share the
#: second clerk keys differently somewhere (a disagreement), of which about half are settled.
SECOND_KEYED = 0.8
SECOND_DIFFERS = 0.25
DISAGREEMENTS_SETTLED = 0.5
UNKNOWN_SHARE = 0.05
SUGGESTIONS = (
    "Đề nghị công khai rõ hơn thời hạn giải quyết hồ sơ.",
    "Cần rút ngắn thời gian xử lý thủ tục trực tuyến.",
    "Mong cán bộ hướng dẫn tận tình hơn khi tiếp nhận hồ sơ.",
    "Nên tăng cường ứng dụng công nghệ thông tin trong chỉ đạo, điều hành.",
)


class SimulationError(ServiceError):
    """Simulated data that may not be written; the message says why."""


@dataclass
class SimulationReport:
    online_respondents: int = 0
    online_responses: int = 0
    drafts: int = 0
    sheets_issued: int = 0
    sheets_keyed: int = 0
    second_keyed: int = 0
    disagreements: int = 0
    reconciled: int = 0
    by_form: dict[str, int] = field(default_factory=dict)
    #: Citizens' rounds: frames drawn and signed off, sheets re-checked by phúc tra, investigators quarantined.
    frames: int = 0
    rechecked: int = 0
    quarantined: list[str] = field(default_factory=list)


#: The earlier simulated round of the same structure (:func:`rounds.previous_demo_code`), so that a change
#: of known size can be shown and recovered: every agency's quality is :data:`PREVIOUS_SHIFT` lower there
#: (on the logit scale of :func:`_option`), its answers drawn afresh.
PREVIOUS_SHIFT = -0.4


def demo_round(session: Session, round_dir: Path, questionnaire_dir: str | Path, code: str, *,
               accounts: dict[str, StaffUser], today: date, signing_keys: list[str], secret: str,
               quality_shift: float = 0.0, answers_seed: int | None = None) -> tuple[Round, SimulationReport]:
    """A demonstration round: the real round's agencies and forms loaded under *code* (:func:`demo_code` or
    :func:`previous_demo_code`), opened around *today*, and filled with simulated responses through the
    portal and keying services by the demo accounts. :raises SimulationError: as :func:`simulate` (the round
    stays loaded). The caller commits."""
    rounds.load_round(session, round_dir, questionnaire_dir, actor="demo", simulated_code=code)
    rnd = rounds.get_round(session, code)
    demo.open_for_demo(session, rnd, today)
    report = simulate(session, rnd, clerks=(accounts["buudien"], accounts["buudien2"]),
                      supervisor=accounts["giamsat"], today=today, signing_keys=signing_keys, secret=secret,
                      quality_shift=quality_shift, answers_seed=answers_seed, observer=accounts.get("quansat"),
                      auditor=accounts.get("phuctra"))
    return rnd, report


def simulate(session: Session, rnd: Round, *, clerks: tuple[StaffUser, StaffUser], supervisor: StaffUser,
             today: date, signing_keys: list[str], secret: str, seed: int = 2023,
             online_share: tuple[float, float] = ONLINE_SHARE, quality_shift: float = 0.0,
             answers_seed: int | None = None, returned_share: float = SHEETS_RETURNED,
             observer: StaffUser | None = None, auditor: StaffUser | None = None) -> SimulationReport:
    """Fill a simulated round with online responses (over the days it has been open) and keyed sheets.

    The same ``seed`` gives the same agency qualities and, without ``answers_seed``, the same answers;
    ``quality_shift`` moves every agency's quality by the same amount (the earlier round of a pair: the true
    satisfaction of each agency is then :func:`true_share` at its quality). ``secret`` (the server's) seals
    the drafts and ballots. ``returned_share``: the paper sheets that come back (the demo's 85 %; a test keys fewer).
    :raises SimulationError: for a real round, one that already has responses, or one not open today (the
    portal would refuse every code).
    """
    if not rnd.simulated:
        raise SimulationError(f"Đợt {rnd.code} là đợt khảo sát thật: không sinh dữ liệu mô phỏng vào đó.")
    if session.scalar(sa.select(sa.func.count()).select_from(Response).where(Response.round_id == rnd.id)):
        raise SimulationError(f"Đợt {rnd.code} đã có phiếu trả lời; không sinh thêm dữ liệu mô phỏng.")
    if rounds.round_state(rnd, today) != "open":
        raise SimulationError(f"Đợt {rnd.code} không mở vào ngày {today:%d/%m/%Y}; hãy đặt lịch thu phiếu trước.")
    rng = random.Random(seed)
    agencies = list(session.scalars(sa.select(Agency).where(Agency.round_id == rnd.id).order_by(Agency.id)))
    quality = dict(zip((a.id for a in agencies), _draw_qualities(rng, len(agencies), quality_shift)))
    if answers_seed is not None:
        rng = random.Random(answers_seed)
    days = [rnd.opens_on + timedelta(days=i) for i in range((today - rnd.opens_on).days + 1)]
    report = SimulationReport()
    if rounds.is_citizens(rnd):
        _sample(session, rnd, rng, days, supervisor, observer or supervisor, report)
        _households(session, rnd, rng, quality, days, clerks, signing_keys, secret, report)
        _phuc_tra(session, rnd, rng, days, auditor, secret, report)
        _receipts(session, rnd, rng, quality, days, secret, report)
    else:
        _online(session, rnd, rng, quality, days, online_share, secret, report)
        _paper(session, rnd, rng, quality, days, clerks, supervisor, signing_keys, returned_share, report)
    session.flush()
    return report


# --- answers -----------------------------------------------------------------------------------------
def agency_qualities(n_agencies: int, seed: int = 2023, quality_shift: float = 0.0) -> list[float]:
    """The qualities :func:`simulate` draws for a round's agencies in their order (by id)."""
    return _draw_qualities(random.Random(seed), n_agencies, quality_shift)


def _draw_qualities(rng: random.Random, n_agencies: int, quality_shift: float) -> list[float]:
    return [rng.gauss(0.0, 0.7) + quality_shift for _ in range(n_agencies)]


def _option_weights(scale: qn.Scale, quality: float) -> tuple[list[qn.ScaleOption], list[float]]:
    scored = [o for o in scale.options if not o.excluded]
    centre = 1 / (1 + math.exp(-(0.9 + quality)))  # about 0.7 for an average agency
    return scored, [math.exp(-((o.coefficient - centre) ** 2) / 0.08) for o in scored]


def true_share(scale: qn.Scale, positive: list[str], quality: float) -> float:
    """The share of scored answers among ``positive`` options that an agency of ``quality`` draws: the true
    satisfaction every form's respondents share in the simulation."""
    scored, weights = _option_weights(scale, quality)
    return sum(w for o, w in zip(scored, weights) if o.code in positive) / sum(weights)


def _option(scale: qn.Scale, quality: float, rng: random.Random) -> str:
    """An option of ``scale``: better agencies draw higher coefficients; now and then "không biết"."""
    if scale.excluded_codes and rng.random() < UNKNOWN_SHARE:
        return scale.excluded_codes[0]
    scored, weights = _option_weights(scale, quality)
    return rng.choices(scored, weights)[0].code


def _answers(q: qn.Questionnaire, quality: float, rng: random.Random) -> dict[str, str]:
    answers = {item.code: _option(q.scales[item.scale], quality, rng) for item in q.scale_items}
    for item in q.text_items:
        if rng.random() < 0.15:
            answers[item.code] = rng.choice(SUGGESTIONS)
    return answers


# --- online ------------------------------------------------------------------------------------------
def _online(session: Session, rnd: Round, rng: random.Random, quality: dict[int, float], days: list[date],
            online_share: tuple[float, float], secret: str, report: SimulationReport) -> None:
    cells = list(session.scalars(
        sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id, QuotaCell.channel == Channel.ONLINE)
        .order_by(QuotaCell.form_code, QuotaCell.agency_id)))
    share = {a: rng.uniform(*online_share) for a in quality}
    divisions: dict[str, list[str]] = {}  # per supervising form, in the round's order
    for cell in cells:
        answered = min(cell.target, round(cell.target * share[cell.agency_id]))
        drafts = rng.randint(*DRAFTS_PER_CELL)
        if answered + drafts == 0:
            continue
        batch = invitations.issue_codes(session, cell, answered + drafts, today=days[-1], actor="demo")
        for i, code in enumerate(batch.codes):
            day = rng.choice(days)
            access = portal.open_code(session, code.code, today=day, secret=secret, start=True)
            if access.needs_division:
                form = access.questionnaire.code
                if form not in divisions:
                    divisions[form] = [d.code for d in portal.division_choices(session, access)]
                access = portal.choose_division(session, access, rng.choice(divisions[form]), today=day)
            answers = {t.code: _answers(access.questionnaire, quality[t.id], rng) for t in access.rated_agencies}
            if i >= answered:  # opened, partly answered and saved, never sent
                partial = {c: dict(list(a.items())[: len(a) // 2]) for c, a in answers.items()}
                portal.save_draft(session, access, partial, today=day)
                report.drafts += 1
                continue
            portal.submit(session, access, answers, portal.new_submission_id(), today=day)
            # Simulated answers have nobody to protect: each ballot goes into the responses at once, on its
            # day, so the demonstration's results and daily curve show every simulated respondent.
            ballots.release(session, rnd, ballots.opener(rnd, secret), today=day, everything=True)
            report.online_respondents += 1
            report.online_responses += len(access.rated_agencies)
            report.by_form[cell.form_code] = report.by_form.get(cell.form_code, 0) + 1


# --- paper -------------------------------------------------------------------------------------------
def _paper(session: Session, rnd: Round, rng: random.Random, quality: dict[int, float], days: list[date],
           clerks: tuple[StaffUser, StaffUser], supervisor: StaffUser, signing_keys: list[str],
           returned_share: float, report: SimulationReport) -> None:
    issued = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd), today=days[-1], actor="demo")
    report.sheets_issued = len(issued)
    returned = [s for s in issued if rng.random() < returned_share]
    if returned:
        sheets.record_returns(session, rnd, [s.serial for s in returned], signing_keys, today=days[-1],
                              by=clerks[0])
    cache: dict = {}
    for n, sheet in enumerate(s for s in returned if rng.random() < RETURNED_KEYED):
        form = keying.sheet_form(session, sheet, cache)
        first, second = clerks[n % 2], clerks[1 - n % 2]
        slots = _sheet_keys(form, quality, rng)
        keying.key_sheet(session, sheet, first, slots, today=max(rng.choice(days), days[-1] - timedelta(days=3)),
                         rng=rng)
        report.sheets_keyed += 1
        report.by_form[form.questionnaire.code] = report.by_form.get(form.questionnaire.code, 0) + 1
        if not sheet.double_entry or rng.random() >= SECOND_KEYED:
            continue
        if rng.random() < SECOND_DIFFERS:
            slots = _mistype(form, slots, rng)
        keying.key_sheet(session, sheet, second, slots, rng=rng)
        report.second_keyed += 1
        found = keying.disagreements(sheet)
        if found:
            report.disagreements += 1
            if rng.random() < DISAGREEMENTS_SETTLED:
                keying.reconcile(session, sheet, supervisor, {d.name: "1" for d in found})
                report.reconciled += 1


# --- citizens' rounds --------------------------------------------------------------------------------
#: The demonstration's Post Office investigators (staff accounts, created when missing); the last one
#: fills in their sheets themselves (every sheet alike), which phúc tra finds.
INVESTIGATORS = ("dtv01", "dtv02", "dtv03", "dtv04")
CARELESS_INVESTIGATOR = INVESTIGATORS[-1]
#: Share of each agency's online quota reached by receipt codes spent online, and codes printed but unused.
RECEIPTS_ANSWERED = (0.4, 0.9)
RECEIPTS_UNUSED = 0.3


def _citizen_answers(q: qn.Questionnaire, quality: float, rng: random.Random) -> dict[str, str]:
    """A household's answers: up to three different improvements, a few not eligible (no procedure done)."""
    answers = _answers(q, quality, rng)
    wanted = rng.sample([o.code for o in q.scales[q.item("H1").scale].options], k=rng.randint(0, 3))
    for n, code in enumerate(("H1", "H2", "H3")):
        answers.pop(code, None)
        if n < len(wanted):
            answers[code] = wanted[n]
    answers["S1"] = "1" if rng.random() < 0.04 else "2"
    return answers


#: The simulated frames: households per village (3 villages a commune) and dossiers per department's field.
HOUSEHOLDS_PER_VILLAGE = (60, 140)
DOSSIERS_PER_FIELD = (150, 400)
#: The demonstration's sample design: Yamane's e, which gives about 20 to 25 units a cell.
DEMO_DESIGN = {"margin": 0.2, "reserve_share": 0.25}
#: Share of drawn respondents phúc tra reaches by phone.
REACHED = 0.85
SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Phan", "Huỳnh")
GIVEN = ("Văn An", "Thị Bình", "Minh Châu", "Thị Dung", "Quốc Hùng", "Thị Lan", "Đức Long", "Thị Mai")


def _sample(session: Session, rnd: Round, rng: random.Random, days: list[date], supervisor: StaffUser,
            observer: StaffUser, report: SimulationReport) -> None:
    """Frames imported (households of the communes, dossier registers of the departments), sized, drawn,
    signed off by an observer, and the paper targets set to the official lists."""
    fields = list(receipts.fields(session, rnd))[:3]
    lines = {"households": ["commune,village,ref"], "dossiers": ["agency,field,ref"]}
    for agency in session.scalars(sa.select(Agency).where(Agency.round_id == rnd.id).order_by(Agency.id)):
        if agency.kind == "commune":
            for village in ("Thôn 1", "Tổ dân phố 2", "Tổ dân phố 3"):
                lines["households"] += [f"{agency.code},{village},{agency.code}-{village[-1]}-{n:04d}"
                                        for n in range(1, rng.randint(*HOUSEHOLDS_PER_VILLAGE) + 1)]
        else:
            for field_code in rng.sample(fields, 1):
                lines["dossiers"] += [f"{agency.code},{field_code},H17.{agency.code}-{field_code}-{n:05d}"
                                      for n in range(1, rng.randint(*DOSSIERS_PER_FIELD) + 1)]
    for kind, rows in lines.items():
        if len(rows) == 1:
            continue
        frame = frames.import_frame(session, rnd, kind, "\n".join(rows).encode(), f"{kind}.csv", today=days[0],
                                    by=supervisor, actor="demo")
        frames.draw(session, frame, frames.Design(**DEMO_DESIGN), today=days[0], seed=rng.randrange(2 ** 62),
                    by=supervisor, actor="demo")
        frames.sign_off(session, frame, organisation="MTTQ", by=observer, today=days[0])
        frames.set_paper_targets(session, frame, _paper_form(session, rnd), by=supervisor, actor="demo")
        report.frames += 1


def _paper_form(session: Session, rnd: Round) -> str:
    return session.scalar(sa.select(QuotaCell.form_code).where(QuotaCell.round_id == rnd.id,
                                                               QuotaCell.channel == Channel.PAPER).limit(1))


def _phuc_tra(session: Session, rnd: Round, rng: random.Random, days: list[date], auditor: StaffUser | None,
              secret: str, report: SimulationReport) -> None:
    """The respondents' contacts kept in the vault, phúc tra drawn and its calls recorded: the careless
    investigator's respondents say they did not fill in the sheet themselves, and that investigator is
    quarantined."""
    returned = list(session.scalars(sa.select(Sheet).join(QuotaCell).where(
        QuotaCell.round_id == rnd.id, Sheet.state == SheetState.VERIFIED)))
    phuctra.store_contacts(session, rnd, [phuctra.ContactEntry(
        s.serial, ContactKind.RESPONDENT, f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}",
        f"09{rng.randrange(10 ** 8):08d}") for s in returned], secret=secret, by=auditor, actor="demo")
    phuctra.draw(session, rnd, today=days[-1], secret=secret, seed=rng.randrange(2 ** 62), by=auditor, actor="demo")
    for item in phuctra.items(session, rnd):
        reached = rng.random() < REACHED
        careless = item.investigator == CARELESS_INVESTIGATOR
        phuctra.record_outcome(session, item, reached=reached, received=True if reached else None,
                               self_filled=not careless if reached else None, prompted=False if reached else None,
                               today=days[-1], by=auditor, actor="demo")
        report.rechecked += 1
    report.quarantined = sorted(phuctra.quarantined_investigators(session, rnd.id))


def _investigators(session: Session) -> list[StaffUser]:
    """The demonstration's investigators' accounts (Post Office staff: clerks), created when missing with a
    random password nobody is told: they log in only through a password reset."""
    accounts = []
    for n, username in enumerate(INVESTIGATORS, 1):
        user = session.scalar(sa.select(StaffUser).where(StaffUser.username == username))
        accounts.append(user or users.create_user(session, username, secrets.token_urlsafe(16), Role.CLERK,
                                                  full_name=f"Điều tra viên Bưu điện {n:02d}", actor="demo"))
    return accounts


def _households(session: Session, rnd: Round, rng: random.Random, quality: dict[int, float], days: list[date],
                clerks: tuple[StaffUser, StaffUser], signing_keys: list[str], secret: str,
                report: SimulationReport) -> None:
    """Sheets issued per agency, handed to the investigators in turn, most returned and keyed once each
    (sealed into the ballot box with their investigator); the careless investigator's sheets all alike."""
    issued = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd), today=days[-1], actor="demo")
    report.sheets_issued = len(issued)
    returned = []
    for n, investigator in enumerate(_investigators(session)):
        theirs = issued[n::len(INVESTIGATORS)]
        sheets.assign_investigator(session, rnd, [s.serial for s in theirs], investigator.username, signing_keys,
                                   actor="demo")
        back = [s.serial for s in theirs if rng.random() < SHEETS_RETURNED]
        sheets.record_returns(session, rnd, back, signing_keys, today=days[-1], by=investigator)
        returned += [s for s in theirs if s.serial in back]
    cache: dict = {}
    alike = None
    for n, sheet in enumerate(returned):
        form = keying.sheet_form(session, sheet, cache)
        answers = _citizen_answers(form.questionnaire, quality[sheet.quota_cell.agency_id], rng)
        if sheet.investigator == CARELESS_INVESTIGATOR:
            alike = alike or {**answers, "S1": "2"}
            answers = alike
        slots = {keying.slot_name(keying.SHEET_ROW, item.code): answers.get(item.code, "-")  # "-": left blank
                 for item in form.questionnaire.scale_items}
        keying.key_sheet(session, sheet, clerks[n % 2], slots, today=days[-1], secret=secret)
        report.sheets_keyed += 1
        report.by_form[form.questionnaire.code] = report.by_form.get(form.questionnaire.code, 0) + 1
    ballots.release(session, rnd, ballots.opener(rnd, secret), today=days[-1], everything=True)


def _receipts(session: Session, rnd: Round, rng: random.Random, quality: dict[int, float], days: list[date],
              secret: str, report: SimulationReport) -> None:
    """Receipt codes printed on result slips by each agency's one-stop office, some spent online."""
    fields = list(receipts.fields(session, rnd))
    cells = session.scalars(sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id,
                                                       QuotaCell.channel == Channel.ONLINE).order_by(QuotaCell.id))
    for cell in cells:
        answered = round(cell.target * rng.uniform(*RECEIPTS_ANSWERED))
        printed = answered + round(answered * RECEIPTS_UNUSED)
        field_code = rng.choice(fields)
        dossiers = [f"H17.{cell.agency.code}-{days[0]:%y%m%d}-{n:04d}" for n in range(1, printed + 1)]
        slips = receipts.issue(session, rnd, secret=secret, base_url="http://127.0.0.1:5000", agency=cell.agency.code,
                               field=field_code, dossiers=dossiers, actor="demo")
        for slip in slips[:answered]:
            day = rng.choice(days)
            access = portal.open_code(session, slip.code, today=day, secret=secret, start=True)
            answers = _citizen_answers(access.questionnaire, quality[cell.agency_id], rng)
            answers["S2"] = field_code
            portal.submit(session, access, {cell.agency.code: answers}, portal.new_submission_id(), today=day)
            report.online_respondents += 1
            report.online_responses += 1
            report.by_form[cell.form_code] = report.by_form.get(cell.form_code, 0) + 1
    ballots.release(session, rnd, ballots.opener(rnd, secret), today=days[-1], everything=True)


def _sheet_keys(form: keying.SheetForm, quality: dict[int, float], rng: random.Random) -> dict[str, str]:
    """What a clerk types for a sheet filled in by a respondent: a key per scale slot, the free text."""
    q = form.questionnaire
    keys = {}
    for row in form.rows:
        answers = _answers(q, quality.get(row.agency_id, 0.0), rng)
        for item in q.scale_items:
            keys[keying.slot_name(row.key, item.code)] = answers[item.code]
    for item in q.text_items:
        if rng.random() < 0.2:
            keys[keying.slot_name(keying.SHEET_ROW, item.code)] = rng.choice(SUGGESTIONS)
    return keys


def _mistype(form: keying.SheetForm, keys: dict[str, str], rng: random.Random) -> dict[str, str]:
    """The same sheet keyed with one or two slots wrong, as a tired second clerk would."""
    keys = dict(keys)
    q = form.questionnaire
    scale_slots = [(name, q.scales[item.scale]) for row in form.rows for item in q.scale_items
                   for name in [keying.slot_name(row.key, item.code)]]
    for name, scale in rng.sample(scale_slots, k=min(2, len(scale_slots))):
        keys[name] = rng.choice([c for c in scale.codes if c != keys[name]])
    return keys
