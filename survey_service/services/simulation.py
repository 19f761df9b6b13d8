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
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service import questionnaires as qn
from survey_service.models import Agency, Channel, QuotaCell, Response, Round, StaffUser
from survey_service.services import ballots, demo, invitations, keying, portal, rounds, sheets
from survey_service.services.errors import ServiceError

#: Code of the demonstration round made from a real round's directory.
DEMO_SUFFIX = "-DEMO"
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


#: The earlier simulated round of the same structure, so that a change of known size can be shown and
#: recovered: every agency's quality is :data:`PREVIOUS_SHIFT` lower there (on the logit scale of
#: :func:`_option`), its answers drawn afresh.
PREVIOUS_SUFFIX = "-DEMO-TRUOC"
PREVIOUS_SHIFT = -0.4


def demo_code(round_code: str) -> str:
    return round_code + DEMO_SUFFIX


def previous_demo_code(round_code: str) -> str:
    return round_code + PREVIOUS_SUFFIX


def source_code(code: str) -> str:
    """The real round a simulated round was made from (its code without the demonstration suffix)."""
    for suffix in (PREVIOUS_SUFFIX, DEMO_SUFFIX):
        if code.endswith(suffix):
            return code.removesuffix(suffix)
    return code


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
                      quality_shift=quality_shift, answers_seed=answers_seed)
    return rnd, report


def simulate(session: Session, rnd: Round, *, clerks: tuple[StaffUser, StaffUser], supervisor: StaffUser,
             today: date, signing_keys: list[str], secret: str, seed: int = 2023,
             online_share: tuple[float, float] = ONLINE_SHARE, quality_shift: float = 0.0,
             answers_seed: int | None = None, returned_share: float = SHEETS_RETURNED) -> SimulationReport:
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
