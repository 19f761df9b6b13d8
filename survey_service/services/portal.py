"""The online portal: open an invitation code, start and save a draft, check answers, submit once.

What is stored: a draft holds the answers under the code's mark until submission, sealed with a key derived
from the code and the server's secret; submitting puts one sealed ballot in the round's ballot box (the
agencies rated and their answers; :mod:`survey_service.services.ballots`), deletes the draft and records the
code spent, in one transaction. No response is written for the submission alone: the ballots become
responses in shuffled batches (the submission that brings its cell to ``2k`` waiting ballots releases one,
in its own transaction), so nothing the submission wrote, in the tables or in the database's write-ahead log, is a
response in the order it came. The code's own row is not touched: its spending is a
:class:`~survey_service.models.SpentCode` under the code's mark
(:func:`~survey_service.services.sealing.code_mark`) with the random submission id of the form that spent
it, so a retried POST is recognised; rows written in the order codes are used thus name no code for anyone
without the server's secret. The submission is not in the audit log.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from survey_service import questionnaires as qn
from survey_service.models import (
    Agency, CodeStatus, Division, Draft, InvitationCode, QuestionnaireVersion, QuotaCell, Response, Round,
    RoundForm, SpentCode, division_department,
)
from survey_service.services import ballots, invitations, ratelimit, rounds, storable
from survey_service.services.errors import ServiceError
from survey_service.services.sealing import OwnerBox, Sealer, code_mark

SUBMISSION_ID = re.compile(r"^[0-9a-f]{32}$")

# The statements of a respondent's requests, built once: building an ORM statement and its cache key
# costs more CPU than running it.
#: A cell's respondents: its released responses (one respondent key each) and the ballots still sealed.
_RESPONDENTS = sa.select(sa.func.count(sa.distinct(Response.respondent_key)) + ballots.waiting_in_cell(
    sa.bindparam("cell_id"))).where(Response.quota_cell_id == sa.bindparam("cell_id"))
# Columns rather than ORM entities: a request reads a handful of values and writes through plain
# statements, and loading five mapped objects per request cost more than the query itself.
_code_t, _cell_t, _agency_t, _round_t, _round_form_t, _draft_t, _division_t, _spent_t = (
    InvitationCode.__table__, QuotaCell.__table__, Agency.__table__, Round.__table__, RoundForm.__table__,
    Draft.__table__, Division.__table__, SpentCode.__table__)
_response_t, _version_t = Response.__table__, QuestionnaireVersion.__table__
_LOOKUP = (
    sa.select(
        _code_t.c.id, _code_t.c.code, _code_t.c.status, _spent_t.c.submission_id,
        _cell_t.c.id.label("cell_id"), _cell_t.c.target, _cell_t.c.soft_closed,
        _agency_t.c.id.label("agency_id"), _agency_t.c.code.label("agency_code"),
        _agency_t.c.name.label("agency_name"),
        _round_t.c.id.label("round_id"), _round_t.c.code.label("round_code"), _round_t.c.name.label("round_name"),
        _round_t.c.opens_on, _round_t.c.closes_on, _round_t.c.closed_at, _round_t.c.simulated,
        _round_t.c.ballot_public_key, _round_t.c.province, _round_t.c.structure,
        _round_form_t.c.questionnaire_version_id, _version_t.c.version.label("version_hash"),
        _draft_t.c.id.label("draft_id"), _draft_t.c.sealed, _draft_t.c.answers, _draft_t.c.division_id,
        # The cell's respondents, counted in the same round trip but only when a new draft may have to be
        # refused because the cell is full.
        sa.case((sa.and_(_draft_t.c.id.is_(None), _spent_t.c.mark.is_(None), _code_t.c.status == CodeStatus.UNUSED),
                 sa.select(sa.func.count(sa.distinct(_response_t.c.respondent_key))
                           + ballots.waiting_in_cell(_cell_t.c.id))
                 .where(_response_t.c.quota_cell_id == _cell_t.c.id).scalar_subquery())).label("respondents"),
    )
    .select_from(_code_t)
    .join(_cell_t, _cell_t.c.id == _code_t.c.quota_cell_id)
    .outerjoin(_agency_t, _agency_t.c.id == _cell_t.c.agency_id)
    .join(_round_t, _round_t.c.id == _cell_t.c.round_id)
    .join(_round_form_t, sa.and_(_round_form_t.c.round_id == _round_t.c.id,
                                 _round_form_t.c.form_code == _cell_t.c.form_code))
    .join(_version_t, _version_t.c.id == _round_form_t.c.questionnaire_version_id)
    .outerjoin(_draft_t, _draft_t.c.code_mark == sa.bindparam("mark"))
    .outerjoin(_spent_t, _spent_t.c.mark == sa.bindparam("mark"))
    .where(_code_t.c.code == sa.bindparam("code"))
)
_SPEND = {
    name: insert(_spent_t)
    .values(mark=sa.bindparam("mark"), quota_cell_id=sa.bindparam("cell_id"), submission_id=sa.bindparam("sid"),
            answers_digest=sa.bindparam("digest"))
    .on_conflict_do_nothing(index_elements=[_spent_t.c.mark])
    .returning(_spent_t.c.mark)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_SPENT_BY = sa.select(_spent_t.c.submission_id).where(_spent_t.c.mark == sa.bindparam("mark"))
_SPENT_DIGEST = sa.select(_spent_t.c.answers_digest).where(_spent_t.c.mark == sa.bindparam("mark"))
_DELETE_DRAFT = sa.delete(_draft_t).where(_draft_t.c.id == sa.bindparam("draft_id"))
_DRAFT_COLUMNS = (_draft_t.c.id, _draft_t.c.sealed, _draft_t.c.answers, _draft_t.c.division_id)
_START_DRAFT = {
    name: insert(_draft_t)
    .values(code_mark=sa.bindparam("mark"), quota_cell_id=sa.bindparam("cell_id"), answers={},
            started_on=sa.bindparam("today"), updated_on=sa.bindparam("today"))
    .on_conflict_do_nothing(index_elements=[_draft_t.c.code_mark])
    .returning(*_DRAFT_COLUMNS)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}
_DRAFT_OF = sa.select(*_DRAFT_COLUMNS).where(_draft_t.c.code_mark == sa.bindparam("mark"))
_UPDATE_DRAFT = (
    sa.update(_draft_t).where(_draft_t.c.id == sa.bindparam("draft_id"))
    .values(sealed=sa.bindparam("sealed"), answers={}, division_id=sa.bindparam("division_id"),
            updated_on=sa.bindparam("today"))
)
_DIVISION = sa.select(_division_t.c.id, _division_t.c.code, _division_t.c.name)
_SUPERVISORS = (
    sa.select(_agency_t.c.id, _agency_t.c.code, _agency_t.c.name)
    .join(division_department, division_department.c.agency_id == _agency_t.c.id)
    .where(division_department.c.division_id == sa.bindparam("division_id"))
    .order_by(_agency_t.c.id)
)


class Refusal(ServiceError):
    """The code cannot be used now. ``reason`` picks the page shown:

    unknown, revoked, submitted, not_open, closed, full, rate_limited, division.

    The respondent's pages handle it themselves: a refused look-up still keeps its count of failures.
    """

    status = 403

    def __init__(self, reason: str, access: Access | None = None, message: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.access = access
        self.message = message


class AnswerErrors(ServiceError):
    """Answers that break the questionnaire's rules: {(agency code, item code): Vietnamese message}.

    An agency code of None is a problem with the agency itself (not part of this code's form).
    """

    def __init__(self, errors: dict[tuple[str | None, str | None], str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Guard:
    """Rate limit on code look-ups: at most ``limit`` failed look-ups per client key and window."""

    key: str
    limit: int
    window_seconds: int


@dataclass(frozen=True)
class RatedAgency:
    """An agency the respondent rates."""

    id: int
    code: str
    name: str


@dataclass(frozen=True)
class CodeInfo:
    """The invitation code as read at the start of the request: ``mark`` names it where its use is stored
    (:func:`~survey_service.services.sealing.code_mark`); USED when a :class:`SpentCode` has that mark."""

    id: int
    code: str
    status: CodeStatus
    submission_id: str | None
    mark: str = ""


@dataclass(frozen=True)
class CellInfo:
    """The code's quota cell: its target and whether a supervisor closed it early."""

    id: int
    target: int
    soft_closed: bool
    agency: RatedAgency | None


@dataclass(frozen=True)
class RoundSnapshot:
    """The stored round's name, collection window and province as plain values, read fresh on every
    request (see :class:`~survey_service.models.Round`); a ``simulated`` round is the demonstration, which
    every page says."""

    id: int
    code: str
    name: str
    opens_on: date
    closes_on: date
    closed_at: datetime | None
    simulated: bool = False
    #: Where the round is and who runs it: fill the forms' ``{province}``/``{unit}`` and head the pages.
    province: str = ""
    province_type: str = "tỉnh"
    organiser: str = ""


@dataclass
class DraftInfo:
    """The answers saved under a code so far."""

    id: int
    answers: dict
    division_id: int | None


@dataclass(frozen=True)
class DivisionInfo:
    """A supervising form's respondent's division and the agencies supervising it, in form order."""

    id: int
    code: str
    name: str
    supervised_by: tuple[RatedAgency, ...]


@dataclass
class Access:
    """An opened code: what it lets the respondent answer, and their draft if they started."""

    invitation: CodeInfo
    cell: CellInfo
    round: RoundSnapshot
    questionnaire: qn.Questionnaire
    version_id: int
    draft: DraftInfo | None
    #: Seals and opens this code's draft (none for the staff preview, which saves nothing).
    sealer: Sealer | None = None
    #: Seals the submitted answers into the round's ballot box (none for the preview).
    ballot_box: Sealer | OwnerBox | None = None
    division: DivisionInfo | None = None
    #: The agencies rated, in form order (a supervising form: those supervising the chosen division).
    rated_agencies: list[RatedAgency] = field(default_factory=list)
    #: The code was already spent by the very submission now retried.
    submitted: bool = False
    #: A supervising form's mapping labels from the round (``unit``: what a division is, ``supervisor``:
    #: what the agencies it reports to are), for the pages and messages.
    supervision: dict = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.invitation.code

    @property
    def needs_division(self) -> bool:
        return self.questionnaire.rates == "supervising" and self.division is None

    @property
    def rates_several(self) -> bool:
        return self.questionnaire.rates == "supervising"

    def saved_answers(self) -> dict[str, dict[str, str]]:
        return dict(self.draft.answers) if self.draft is not None else {}


def new_submission_id() -> str:
    return secrets.token_hex(16)


def current_round(session: Session, today: date) -> Round | None:
    """The round the home page talks about: open today, else the next to open, else the latest; never a
    simulated (demonstration) round."""
    rounds_ = list(session.scalars(sa.select(Round).where(Round.simulated.is_(False)).order_by(Round.opens_on)))
    for state in ("open", "not_open"):
        for rnd in rounds_:
            if rounds.round_state(rnd, today) == state:
                return rnd
    return rounds_[-1] if rounds_ else None


def draft_sealer(secret: str, code: str) -> Sealer:
    """The key of a code's draft: neither the database nor the secret alone opens a draft."""
    return Sealer(secret, "draft", code)


def open_code(
    session: Session, text: str, *, today: date, secret: str, guard: Guard | None = None, start: bool = False,
    submission_id: str | None = None,
) -> Access:
    """Look a typed or linked code up and check it may be used now.

    Only failed look-ups count against ``guard``, each by one atomic increment whose result decides the
    answer, so parallel guesses cannot overshoot the limit. A look-up that finds a usable code only reads
    the counter, under a shared lock: it waits for failures still being counted, but respondents behind one
    address do not queue behind each other. Failures (and refused failures) are only counted there, one row
    per client and window, not written to the audit log, so guessing cannot grow the database. With
    ``start`` the respondent's draft is created: from then on they may finish even if their cell fills up.
    ``secret`` (the server's) and the code make the key that seals the draft.

    :raises Refusal: when the code is unknown, revoked, spent, out of its round's dates or its cell is full.
    """
    code = invitations.normalise_code(text)
    session.flush()  # a plain statement does not flush pending changes by itself
    mark = code_mark(secret, code) if code else ""
    row = session.execute(_LOOKUP, {"code": code, "mark": mark}).first() if code else None
    invitation = CodeInfo(row.id, row.code, CodeStatus.USED if row.submission_id is not None else row.status,
                          row.submission_id, mark) if row else None
    found = invitation is not None and invitation.status is not CodeStatus.REVOKED
    if guard is not None:
        if found:  # as if counted and given back: refused once the failures reached the limit
            count = 1 + ratelimit.current(
                session, guard.key, window_seconds=guard.window_seconds, share_lock=True)
        else:
            count = ratelimit.hit(session, guard.key, window_seconds=guard.window_seconds)
        if count > guard.limit:
            raise Refusal("rate_limited")
    if not found:
        raise Refusal("revoked" if invitation is not None else "unknown")

    cell = CellInfo(row.cell_id, row.target, row.soft_closed,
                    RatedAgency(row.agency_id, row.agency_code, row.agency_name) if row.agency_id is not None else None)
    rnd = round_snapshot(row.round_id, row.round_code, row.round_name, row.opens_on, row.closes_on, row.closed_at,
                         row.simulated, row.province, row.structure)
    sealer = draft_sealer(secret, invitation.code)
    draft = _draft_info(sealer, row.draft_id, row.sealed, row.answers, row.division_id) \
        if row.draft_id is not None else None
    access = _access(session, invitation, cell, rnd, row.questionnaire_version_id, row.version_hash, draft,
                     sealer)
    access.ballot_box = ballots.box(secret, rnd.code, row.ballot_public_key)
    if invitation.status is CodeStatus.USED:
        if submission_id and invitation.submission_id == submission_id:
            access.submitted = True
            return access
        raise Refusal("submitted", access)
    state = rounds.round_state(rnd, today)
    if state != "open":
        raise Refusal(state, access)
    if access.draft is None:
        if cell_is_full(session, cell, row.respondents):
            raise Refusal("full", access)
        if start:
            access.draft = _start_draft(session, access, today)
    return access


def cell_is_full(session: Session, cell: CellInfo | QuotaCell, respondents: int | None = None) -> bool:
    """Soft-closed by a supervisor, or as many respondents as its target (counted here unless given)."""
    if cell.soft_closed:
        return True
    if respondents is None:
        respondents = session.scalar(_RESPONDENTS, {"cell_id": cell.id})
    return respondents >= cell.target


def choose_division(session: Session, access: Access, division_code: str, *, today: date) -> Access:
    """LĐ-CP: record the respondent's division; answers about departments it does not report to go."""
    if access.questionnaire.rates != "supervising":
        raise Refusal("division", access, "Phiếu này không cần chọn đơn vị công tác.")
    if not division_code:
        raise Refusal("division", access, f"Vui lòng chọn {access.supervision['unit']} của Anh/Chị trong danh sách.")
    division = _division(session, _division_t.c.round_id == access.round.id,
                         _division_t.c.form_code == access.questionnaire.code, _division_t.c.code == division_code)
    if division is None:
        raise Refusal("division", access, f"{_first_upper(access.supervision['unit'])} đã chọn không có trong "
                                          "danh sách của đợt khảo sát.")
    if access.draft is None:
        access.draft = _start_draft(session, access, today)
    keep = {a.code for a in division.supervised_by}
    _update_draft(session, access, {k: v for k, v in access.draft.answers.items() if k in keep},
                  division.id, today)
    access.division, access.rated_agencies = division, list(division.supervised_by)
    return access


def check_answers(
    access: Access, answers: dict[str, dict[str, str]], *, complete: bool
) -> dict[str, dict[str, str]]:
    """Check answers against the questionnaire and the code's rated agencies; return them without blanks.

    :param complete: also require every required item (submission); a saved draft may be partial.
    :raises AnswerErrors: naming each offending (agency, item).
    """
    questionnaire = access.questionnaire
    rated = {a.code: a for a in access.rated_agencies}
    items, item_codes = questionnaire.items, set(questionnaire.item_codes)
    errors: dict[tuple[str | None, str | None], str] = {}
    clean: dict[str, dict[str, str]] = {}
    for agency_code in answers:
        if agency_code not in rated:
            errors[(agency_code, None)] = (
                f"Cơ quan '{agency_code}' không thuộc phạm vi đánh giá của mã này"
                + (" (không phụ trách phòng đã chọn)." if access.rates_several else "."))
    for agency_code in rated:
        given = answers.get(agency_code, {})
        for item_code in given:
            if item_code not in item_codes:
                errors[(agency_code, item_code)] = f"Câu hỏi '{item_code}' không có trong phiếu {questionnaire.code}."
        kept = {}
        for item in items:
            # NFC, as keying and imports store text: a decomposed "ế" is one character, not three
            value = unicodedata.normalize("NFC", given.get(item.code) or "").strip()
            scale = questionnaire.scales[item.scale] if item.kind == "scale" else None
            message = answer_error(item, scale, value, required=complete)
            if message:
                errors[(agency_code, item.code)] = message
            elif value:
                kept[item.code] = value
        clean[agency_code] = kept
    if access.needs_division:
        errors[(None, "division")] = f"Vui lòng chọn {access.supervision['unit']} của Anh/Chị."
    if errors:
        raise AnswerErrors(errors)
    return clean


def answer_error(item: qn.Item, scale: qn.Scale | None, value: str, *, required: bool) -> str | None:
    """The Vietnamese message for one answer, or None if it is acceptable."""
    if not value:
        if required and item.required:
            return "Vui lòng chọn một mức đánh giá." if scale else "Vui lòng trả lời câu hỏi này."
        return None
    if scale is not None and value not in scale.codes:
        return "Lựa chọn không hợp lệ. Vui lòng chọn một trong các mức đánh giá đã cho."
    if scale is None and item.max_length and len(value) > item.max_length:
        return f"Câu trả lời dài {len(value)} ký tự, vượt quá giới hạn {item.max_length} ký tự."
    if scale is None and (problem := storable.unstorable(value)):
        # Sealed, it would pass; released into the answers, it would stop every later release of the round.
        return f"Câu trả lời {problem}, không lưu được. Vui lòng xóa ký tự này rồi gửi lại."
    return None


def save_draft(
    session: Session, access: Access, answers: dict[str, dict[str, str]], *, today: date
) -> DraftInfo:
    """Keep the answers given so far under the code (partial answers allowed; bad ones refused)."""
    clean = check_answers(access, answers, complete=False)
    if access.draft is None:
        access.draft = _start_draft(session, access, today)
    _update_draft(session, access, {k: v for k, v in clean.items() if v}, access.draft.division_id, today)
    return access.draft


def _update_draft(session: Session, access: Access, answers: dict, division_id: int | None, today: date) -> None:
    session.execute(_UPDATE_DRAFT, {"draft_id": access.draft.id, "sealed": access.sealer.seal(answers),
                                    "division_id": division_id, "today": today})
    access.draft.answers, access.draft.division_id = answers, division_id


def _draft_info(sealer: Sealer, draft_id: int, sealed: str | None, legacy: dict | None,
                division_id: int | None) -> DraftInfo:
    """The draft's answers unsealed (a draft saved before sealing keeps its plain answers until saved again).

    A draft sealed under a secret since replaced cannot be opened: the respondent starts again.
    """
    answers = sealer.open(sealed) if sealed else legacy
    return DraftInfo(draft_id, answers if isinstance(answers, dict) else {}, division_id)


def answers_digest(answers_key: str, answers: dict[str, dict[str, str]]) -> str | None:
    """HMAC-SHA256 of the answers under the page's answers key (None without a key). The key is a random
    value of the form page, never stored by the server: whoever holds the database, even with the server's
    secret, cannot test a guess of the answers against the digest."""
    if not SUBMISSION_ID.match(answers_key or ""):
        return None
    text = json.dumps(answers, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(answers_key.encode(), text.encode(), hashlib.sha256).hexdigest()


def same_answers(session: Session, access: Access, answers: dict[str, dict[str, str]], answers_key: str) -> bool:
    """Whether a resend of the submission that spent the code carries the answers it stored (a submission
    stored without a key, or resent without one, cannot be compared and counts as the same)."""
    stored = session.scalar(_SPENT_DIGEST, {"mark": access.invitation.mark})
    digest = answers_digest(answers_key, answers)
    return stored is None or digest is None or hmac.compare_digest(stored, digest)


def offline_answering(session: Session, round_id: int) -> bool:
    """Whether the round lets its form be answered offline (round.yaml ``settings: offline_portal``)."""
    settings = session.scalar(sa.select(_round_t.c.settings).where(_round_t.c.id == round_id)) or {}
    return bool(settings.get("offline_portal"))


def submit(
    session: Session, access: Access, answers: dict[str, dict[str, str]], submission_id: str, *, today: date,
    answers_key: str = "",
) -> bool:
    """Put the answers in the ballot box and spend the code, once, in one transaction; when this ballot
    brings its cell to ``2k`` waiting, the same transaction releases all but ``k`` of them
    (:func:`~survey_service.services.ballots.release_cell`).

    The code is recorded spent by an INSERT of its mark that does nothing when the mark is there, so of
    two identical POSTs racing each other only one stores anything; the other finds its own submission id
    under the mark and is told it succeeded.

    ``answers_key``: the page's key of :func:`answers_digest`, so a resend can be compared.

    :return: True if this call stored the answers, False if it was a retry of the same submission.
    :raises Refusal: "submitted" when another submission already spent the code.
    """
    if not SUBMISSION_ID.match(submission_id or ""):
        raise AnswerErrors({(None, "submission_id"): "Biểu mẫu không hợp lệ; vui lòng tải lại trang."})
    clean = check_answers(access, answers, complete=True)
    mark = access.invitation.mark
    spent = session.execute(_SPEND[session.get_bind().dialect.name],
                            {"mark": mark, "cell_id": access.cell.id, "sid": submission_id,
                             "digest": answers_digest(answers_key, answers)}).first()
    if spent is None:
        stored = session.scalar(_SPENT_BY, {"mark": mark})
        if stored == submission_id:
            return False
        raise Refusal("submitted", access)
    if rounds.round_state(_round_now(session, access.round.id), today) != "open":
        raise Refusal("closed", access)  # closed while the page was open: the caller rolls the spend back
    ballots.cast(session, access.ballot_box, cell_id=access.cell.id, questionnaire=access.questionnaire,
                 version_id=access.version_id, division_id=access.division.id if access.division else None,
                 answers=[(agency.id, clean[agency.code]) for agency in access.rated_agencies])
    if isinstance(access.ballot_box, Sealer):  # server-sealed: the cell's batch is due once 2k wait
        ballots.release_cell(session, access.round.id, access.cell.id, access.ballot_box, today=today)
    if access.draft is not None:
        session.execute(_DELETE_DRAFT, {"draft_id": access.draft.id})
        access.draft = None
    # Nothing in the audit log: a timed record per submission would order the responses.
    return True


def _round_now(session: Session, round_id: int):
    """The round's dates as committed now, read with a key-share lock after the code is spent.

    Why: :func:`survey_service.services.rounds.close` locks the round row before it releases every ballot.
    A submission that takes this lock first is committed before the close reads the box; one that comes
    after waits and then sees the round closed. Either way no ballot lands in a closed round's box. (SQLite
    has one writer at a time: after the spend, this read sees every committed close.)
    """
    return session.execute(sa.select(_round_t.c.opens_on, _round_t.c.closes_on, _round_t.c.closed_at)
                           .where(_round_t.c.id == round_id).with_for_update(key_share=True)).one()


def forget_written(session: Session) -> None:
    """After a submission is committed, SQLite: copy the write-ahead log into the database file and empty it.

    The log keeps every page as each transaction left it, the draft and the cell's rows in their old order
    among them, until it is reused; truncating it leaves only the database file, where deleted rows were
    zeroed (``secure_delete``). Best effort: a reader still holding an old snapshot makes it wait for the
    next submission. PostgreSQL's log is not the application's to empty (see the README).
    """
    if session.get_bind().dialect.name == "sqlite":
        con = session.connection()
        con.exec_driver_sql("PRAGMA busy_timeout=250")  # wait a moment for readers, not the usual 30 s
        try:
            con.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.exec_driver_sql("PRAGMA busy_timeout=30000")
        session.commit()


def round_snapshot(id_: int, round_code: str, name: str, opens_on: date, closes_on: date,
                   closed_at: datetime | None, simulated: bool, province: str, structure: dict) -> RoundSnapshot:
    """The round as the portal pages use it, from its columns (the ``structure`` JSON holds its kind of
    unit and organiser; a round loaded before they existed is a tỉnh run by its Sở Nội vụ)."""
    unit = structure.get("province_type", "tỉnh")
    organiser = structure.get("organiser") or f"Sở Nội vụ {unit} {province}"
    return RoundSnapshot(id_, round_code, name, opens_on, closes_on, closed_at, simulated, province, unit, organiser)


_questionnaires: dict[tuple[str, str, str], qn.Questionnaire] = {}


def _questionnaire(session: Session, version_id: int, version_hash: str, rnd: RoundSnapshot) -> qn.Questionnaire:
    """A version's content never changes, so its parsed form, worded for the round's province, is kept for
    the life of the process, by its content hash rather than by id: ids of two databases (or of a database
    made again) differ."""
    key = (version_hash, rnd.province, rnd.province_type)
    if key not in _questionnaires:
        version = session.get(QuestionnaireVersion, version_id)
        _questionnaires[key] = qn.Questionnaire.from_definition(version.definition).worded_for(
            rnd.province, rnd.province_type)
    return _questionnaires[key]


def _access(session: Session, invitation: CodeInfo, cell: CellInfo, rnd: RoundSnapshot, version_id: int,
            version_hash: str, draft: DraftInfo | None, sealer: Sealer) -> Access:
    questionnaire = _questionnaire(session, version_id, version_hash, rnd)
    access = Access(invitation, cell, rnd, questionnaire, version_id, draft, sealer)
    if questionnaire.rates == "supervising":
        structure = session.scalar(sa.select(_round_t.c.structure).where(_round_t.c.id == rnd.id))
        access.supervision = structure["supervision"][questionnaire.code]
        if draft is not None and draft.division_id is not None:
            access.division = _division(session, _division_t.c.id == draft.division_id)
            access.rated_agencies = list(access.division.supervised_by)
    else:
        access.rated_agencies = [cell.agency]
    return access


def _division(session: Session, *where) -> DivisionInfo | None:
    row = session.execute(_DIVISION.where(*where)).first()
    if row is None:
        return None
    supervisors = session.execute(_SUPERVISORS, {"division_id": row.id})
    return DivisionInfo(row.id, row.code, row.name, tuple(RatedAgency(*a) for a in supervisors))


def _start_draft(session: Session, access: Access, today: date) -> DraftInfo:
    """Create the code's draft; if a parallel request just did, use that one."""
    params = {"mark": access.invitation.mark, "cell_id": access.cell.id, "today": today}
    row = session.execute(_START_DRAFT[session.get_bind().dialect.name], params).first()
    if row is None:
        row = session.execute(_DRAFT_OF, params).one()
    return _draft_info(access.sealer, *row)


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def division_choices(session: Session, access: Access) -> list[Division]:
    """The divisions of the access's supervising form, in the round's order."""
    return list(session.scalars(sa.select(Division).where(
        Division.round_id == access.round.id, Division.form_code == access.questionnaire.code).order_by(Division.id)))
