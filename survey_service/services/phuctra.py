"""Phúc tra: checking the paper fieldwork afterwards by re-contacting a sample of respondents.

* **The contact vault** holds the names and phone numbers of the people who answered sampled sheets and of
  those paid the support fee, keyed by sheet serial and sealed (AES-GCM, a key derived from the server's
  secret and the round): a copy of the database holds no readable name or number. Only the auditor role
  sees it. It is never joined to anything: not to sheets by a foreign key, not to responses, not to any
  export. Closing the round's phúc tra deletes it (SQLite zeroes deleted rows; ``db compact`` rewrites the
  PostgreSQL table), so no export, log or backup made afterwards holds it.
* **The draw** takes a random share of each investigator's returned sheets (round setting
  ``phuc_tra_share``, 5–10 %), stratified by commune, plus every sheet the paradata flag: the same answers
  keyed from two sheets of one investigator, or more sheets returned by one investigator in one day than
  ``phuc_tra_sheets_per_day``. All of it from the sheet ledger (who handled a sheet, on which day it came
  back, the keyed mark of its answers: :func:`record_pattern`), never from responses.
* **Outcomes** are about the process only (reached? received the sheet? filled it in themselves? prompted?
  paid?) and give confirmed / not reached / failed (:func:`analysis.fieldcheck.outcome`).
* **Quarantine**: an investigator whose failures pass the round's threshold is quarantined; the analysis
  leaves out the sheets they handled (:func:`quarantined_investigators`) until an auditor lifts it.

An investigator is named by a code: the account that recorded a sheet's return in the ledger (the Post
Office investigator who brought the pile back), :func:`sheet_investigators`. Everything is audited, without
names or numbers.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from analysis import fieldcheck
from survey_service import db
from survey_service import questionnaires as qn
from survey_service.dates import VIETNAM
from survey_service.models import (
    Agency, AnswerPattern, Contact, ContactKind, Keying, QuotaCell, Quarantine, Recheck, RecheckItem, RecheckOutcome,
    Round, Sheet, SheetEvent, SheetState, StaffUser,
)
from survey_service.services import audit, portal, sheets, storable, tabular
from survey_service.services.errors import ServiceError
from survey_service.services.sealing import derive_key, shared_sealer

KIND_LABELS = {ContactKind.RESPONDENT: "Người trả lời", ContactKind.FEE_RECIPIENT: "Người nhận tiền hỗ trợ"}
OUTCOME_LABELS = {RecheckOutcome.CONFIRMED: "Xác nhận đúng", RecheckOutcome.NOT_REACHED: "Không liên lạc được",
                  RecheckOutcome.FAILED: "Không đạt"}
REASON_LABELS = {"random": "Chọn ngẫu nhiên", "identical": "Trả lời giống hệt phiếu khác cùng điều tra viên",
                 "busy_day": "Quá nhiều phiếu thu trong một ngày"}
#: What a contact's kind may be written as in an uploaded list.
KIND_NAMES = {"respondent": ContactKind.RESPONDENT, "người trả lời": ContactKind.RESPONDENT,
              "fee_recipient": ContactKind.FEE_RECIPIENT, "người nhận tiền": ContactKind.FEE_RECIPIENT,
              "người nhận tiền hỗ trợ": ContactKind.FEE_RECIPIENT}
PHONE = re.compile(r"\+?[0-9][0-9 .]{7,18}[0-9]")
#: Sealed values are padded to this many bytes, so their length does not tell a long name from a short one.
SEAL_SIZE = 256
SEAL_PURPOSE = "contact-vault"
#: Sheets with fewer answers than this get no pattern mark: two nearly blank sheets say nothing.
MIN_PATTERN_ITEMS = 5


class RecheckError(ServiceError):
    """A phúc tra request refused; the message is in Vietnamese."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message, status)


@dataclass(frozen=True)
class Settings:
    share: float
    failure_threshold: float
    min_failures: int
    sheets_per_day: int


def settings(rnd: Round) -> Settings:
    """The round's phúc tra settings (round.yaml), defaults for rounds loaded before they existed."""
    values = {**qn.OPTIONAL_SETTINGS, **(rnd.settings or {})}
    return Settings(float(values["phuc_tra_share"]), float(values["phuc_tra_failure_threshold"]),
                    int(values["phuc_tra_min_failures"]), int(values["phuc_tra_sheets_per_day"]))


def recheck_of(session: Session, rnd: Round) -> Recheck | None:
    return session.get(Recheck, rnd.id)


def _check_open(session: Session, rnd: Round) -> Recheck | None:
    recheck = recheck_of(session, rnd)
    if recheck is not None and recheck.closed_on is not None:
        raise RecheckError(f"Phúc tra của đợt {rnd.code} đã đóng ngày {recheck.closed_on:%d/%m/%Y}; "
                           "danh bạ đã bị xóa.")
    return recheck


# --- the contact vault ---------------------------------------------------------------------------------
def _sealer(secret: str, rnd: Round):
    return shared_sealer(secret, SEAL_PURPOSE, rnd.code)


@dataclass(frozen=True)
class ContactEntry:
    serial: str
    kind: ContactKind
    name: str
    phone: str


def store_contacts(session: Session, rnd: Round, entries: list[ContactEntry], *, secret: str,
                   by: StaffUser | None = None, actor: str = "staff") -> int:
    """Seal and store contacts (a serial's earlier contact of the same kind is replaced); all or none.

    :raises RecheckError: when a serial is not a sheet of the round, a phone number is not one, or phúc tra
        is closed.
    """
    _check_open(session, rnd)
    problems = []
    known = set(session.scalars(sa.select(Sheet.serial).join(QuotaCell).where(QuotaCell.round_id == rnd.id)))
    for n, entry in enumerate(entries, start=1):
        problems += [f"Dòng {n}: {p}." for p in _entry_problems(entry, known, rnd)]
    if problems:
        raise RecheckError("\n".join(problems[:200]), 422)
    sealer = _sealer(secret, rnd)
    existing = {(c.serial, c.kind): c for c in session.scalars(sa.select(Contact).where(Contact.round_id == rnd.id))}
    for entry in entries:
        sealed = sealer.seal({"name": entry.name, "phone": entry.phone}, min_size=SEAL_SIZE)
        contact = existing.get((entry.serial, entry.kind))
        if contact is None:
            contact = Contact(round_id=rnd.id, serial=entry.serial, kind=entry.kind, sealed=sealed)
            session.add(contact)
            existing[(entry.serial, entry.kind)] = contact
        else:
            contact.sealed = sealed
    audit.record(session, "vault.store", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"contacts": len(entries)})
    session.flush()
    return len(entries)


def _entry_problems(entry: ContactEntry, known: set[str], rnd: Round) -> list[str]:
    bad = [p for p in (storable.unstorable(entry.name), storable.unstorable(entry.phone)) if p]
    if bad:
        return [f"họ tên hoặc số điện thoại {bad[0]}"]
    problems = []
    if entry.serial not in known:
        problems.append(f"số phiếu {entry.serial} không có trong sổ theo dõi phiếu của đợt {rnd.code}")
    if not entry.name or len(entry.name) > 100:
        problems.append("họ tên phải có, tối đa 100 ký tự")
    if not PHONE.fullmatch(entry.phone):
        problems.append("số điện thoại phải gồm 9 đến 20 chữ số (có thể có dấu +, khoảng trắng, dấu chấm)")
    return problems


def parse_contacts(data: bytes, filename: str) -> list[ContactEntry]:
    """Contacts from a CSV or XLSX with columns ``serial``, ``kind`` (respondent / fee_recipient, or their
    Vietnamese names), ``name``, ``phone`` (also ``số phiếu``, ``loại``, ``họ tên``, ``điện thoại``).

    :raises RecheckError: 400 for an unreadable file or bad rows, with their lines.
    """
    try:
        header, rows = tabular.read_table(data, filename)
    except tabular.UnreadableTable as exc:
        raise RecheckError(str(exc), 400) from None
    aliases = {"serial": ("serial", "số phiếu"), "kind": ("kind", "loại"), "name": ("name", "họ tên"),
               "phone": ("phone", "điện thoại", "số điện thoại")}
    lowered = {h.lower(): h for h in header}
    columns = {key: next((lowered[a] for a in names if a in lowered), None) for key, names in aliases.items()}
    missing = [key for key, column in columns.items() if column is None]
    if missing:
        raise RecheckError(f"Dòng 1: thiếu cột {', '.join(missing)}.", 400)
    entries, problems = [], []
    for line, row in rows:
        kind = KIND_NAMES.get(row[columns["kind"]].lower())
        try:
            serial = sheets.normalize_serial(row[columns["serial"]])
        except sheets.SheetError as exc:
            problems.append(f"Dòng {line}: {exc}")
            continue
        if kind is None:
            problems.append(f"Dòng {line}: loại phải là “người trả lời” hoặc “người nhận tiền”.")
            continue
        entries.append(ContactEntry(serial, kind, row[columns["name"]], row[columns["phone"]]))
    if problems:
        raise RecheckError("\n".join(problems[:200]), 400)
    if not entries:
        raise RecheckError("Tệp không có dòng dữ liệu nào.", 400)
    return entries


def open_contacts(session: Session, rnd: Round, serials: list[str], *, secret: str, by: StaffUser | None = None,
                  actor: str = "staff") -> dict[str, list[ContactEntry]]:
    """The contacts of these serials, unsealed, for the auditor calling them (the opening is audited)."""
    if not serials:
        return {}
    sealer = _sealer(secret, rnd)
    out: dict[str, list[ContactEntry]] = defaultdict(list)
    found = session.scalars(sa.select(Contact).where(Contact.round_id == rnd.id, Contact.serial.in_(serials)))
    for contact in sorted(found, key=lambda c: (c.serial, c.kind is not ContactKind.RESPONDENT)):
        value = sealer.open(contact.sealed) or {}
        out[contact.serial].append(ContactEntry(contact.serial, contact.kind, value.get("name", "?"),
                                                value.get("phone", "?")))
    audit.record(session, "vault.open", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"serials": len(serials), "contacts": sum(len(v) for v in out.values())})
    return dict(out)


def contact_count(session: Session, rnd: Round) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Contact).where(Contact.round_id == rnd.id))


# --- the draw ------------------------------------------------------------------------------------------
def sheet_investigators(session: Session, round_id: int) -> dict[int, str | None]:
    """Sheet id → the code of its investigator, for every sheet of the round that came back: the one the
    sheet was handed to (a citizens' round's :attr:`Sheet.investigator`, an account's username), else the
    username of the account that recorded its return; None when the return was recorded from the command
    line."""
    rows = session.execute(
        sa.select(SheetEvent.sheet_id, sa.func.coalesce(Sheet.investigator, StaffUser.username))
        .select_from(SheetEvent)
        .join(Sheet, SheetEvent.sheet_id == Sheet.id).join(QuotaCell, Sheet.quota_cell_id == QuotaCell.id)
        .outerjoin(StaffUser, SheetEvent.user_id == StaffUser.id)
        .where(QuotaCell.round_id == round_id, SheetEvent.to_state == SheetState.RETURNED)
        .order_by(SheetEvent.id))
    return {sheet_id: username for sheet_id, username in rows}


def pattern_mark(secret: str, round_code: str, answers: dict) -> str | None:
    """A keyed mark (HMAC-SHA256, 128 bits) of a sheet's keyed answers ``{row: {item: value}}``: equal
    answers, equal marks; without the server's secret the mark cannot be matched to answers. None for a
    sheet with fewer than :data:`MIN_PATTERN_ITEMS` answers."""
    flat = sorted((f"{row}/{item}", str(value)) for row, items in answers.items() for item, value in items.items())
    if len(flat) < MIN_PATTERN_ITEMS:
        return None
    key = derive_key(secret, "answer-pattern", round_code)
    return hmac.new(key, json.dumps(flat, ensure_ascii=False).encode(), hashlib.sha256).hexdigest()[:32]


def record_pattern(session: Session, sheet: Sheet, answers: dict, *, secret: str) -> None:
    """Keep the mark of a sheet's keyed answers for phúc tra, for forms whose keyed answers are not kept
    with the sheet (a citizens' sheet goes into the ballot box)."""
    mark = pattern_mark(secret, sheet.quota_cell.round.code, answers)
    if mark is not None:
        session.merge(AnswerPattern(sheet_id=sheet.id, mark=mark))


def _patterns(session: Session, rnd: Round, sheet_ids: list[int], secret: str) -> dict[int, str]:
    """Sheet id → the mark of its keyed answers: recorded at keying, or computed from a first keying pass
    kept with the sheet."""
    marks = dict(session.execute(sa.select(AnswerPattern.sheet_id, AnswerPattern.mark)
                                 .where(AnswerPattern.sheet_id.in_(sheet_ids))).all())
    for sheet_id, answers in session.execute(sa.select(Keying.sheet_id, Keying.answers).where(
            Keying.sheet_id.in_(sheet_ids), Keying.pass_no == 1)):
        if sheet_id not in marks and answers and (mark := pattern_mark(secret, rnd.code, answers)):
            marks[sheet_id] = mark
    return marks


@dataclass
class DrawReport:
    returned: int
    drawn: int
    random: int
    identical: int
    busy_day: int


def draw(session: Session, rnd: Round, *, today: date, secret: str, seed: int | None = None,
         by: StaffUser | None = None, actor: str = "staff") -> DrawReport:
    """Open the round's phúc tra: draw the random share and the flagged sheets (once per round).

    :raises RecheckError: when phúc tra is already open or closed, or no sheet has come back.
    """
    if recheck_of(session, rnd) is not None:
        _check_open(session, rnd)
        raise RecheckError(f"Phúc tra của đợt {rnd.code} đã được mở; các phiếu đã được chọn.")
    conf = settings(rnd)
    investigators = sheet_investigators(session, rnd.id)
    if not investigators:
        raise RecheckError(f"Đợt {rnd.code} chưa có phiếu nào được ghi nhận thu về.")
    # the commune of a sheet: where its household lives (a citizens' round), else the agency it rates
    returned = session.execute(
        sa.select(Sheet.id, Sheet.commune, Agency.code).select_from(Sheet)
        .join(QuotaCell, QuotaCell.id == Sheet.quota_cell_id).outerjoin(Agency, Agency.id == QuotaCell.agency_id)
        .where(Sheet.id.in_(list(investigators)), Sheet.state != SheetState.VOID)).all()
    commune = {sheet_id: home or rated for sheet_id, home, rated in returned}
    seed = secrets.randbits(62) if seed is None else int(seed)
    if not 0 <= seed < 2 ** 63:
        raise RecheckError("Hạt giống ngẫu nhiên phải là số nguyên từ 0 đến 2^63 − 1.", 400)
    rng = np.random.default_rng(seed)
    reasons: dict[int, list[str]] = defaultdict(list)
    for sheet_id in fieldcheck.draw_share([(s, investigators[s] or "", commune[s]) for s in commune], conf.share,
                                          rng):
        reasons[sheet_id].append("random")
    marks = _patterns(session, rnd, list(commune), secret)
    for sheet_id in fieldcheck.identical_sheets((s, investigators[s], m) for s, m in marks.items()
                                                if investigators[s] is not None):
        reasons[sheet_id].append("identical")
    # an imported sheet's return is dated by its import, which says nothing of the day it was answered
    days = session.execute(sa.select(SheetEvent.sheet_id, SheetEvent.at).join(Sheet).where(
        SheetEvent.sheet_id.in_(list(commune)), SheetEvent.to_state == SheetState.RETURNED,
        ~sheets.IMPORTED)).all()
    for sheet_id in fieldcheck.busy_day_sheets(((s, investigators[s], _local_day(at)) for s, at in days
                                                if investigators[s] is not None), conf.sheets_per_day):
        reasons[sheet_id].append("busy_day")
    session.add(Recheck(round_id=rnd.id, share=conf.share, seed=seed, opened_on=today))
    session.add_all(RecheckItem(round_id=rnd.id, sheet_id=s, investigator=investigators[s], reasons=r)
                    for s, r in sorted(reasons.items()))
    report = DrawReport(len(commune), len(reasons), *(sum(1 for r in reasons.values() if k in r)
                                                      for k in ("random", "identical", "busy_day")))
    audit.record(session, "phuctra.draw", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"seed": str(seed), "share": conf.share, **report.__dict__})
    session.flush()
    return report


def _local_day(at: datetime) -> date:
    """The Vietnamese day of a stored time (UTC; SQLite gives it back without its zone)."""
    return (at if at.tzinfo else at.replace(tzinfo=timezone.utc)).astimezone(VIETNAM).date()


def items(session: Session, rnd: Round) -> list[RecheckItem]:
    """The drawn sheets, by investigator then serial."""
    rows = session.scalars(sa.select(RecheckItem).where(RecheckItem.round_id == rnd.id)
                           .options(selectinload(RecheckItem.sheet).selectinload(Sheet.quota_cell)
                                    .selectinload(QuotaCell.agency)))
    return sorted(rows, key=lambda i: (i.investigator or "", i.sheet.serial))


def get_item(session: Session, rnd: Round, serial: str) -> RecheckItem:
    sheet = sheets.get_by_serial(session, serial)
    item = session.scalar(sa.select(RecheckItem).where(RecheckItem.round_id == rnd.id,
                                                       RecheckItem.sheet_id == sheet.id))
    if item is None:
        raise RecheckError(f"Phiếu {sheet.serial} không được chọn phúc tra.", 404)
    return item


# --- outcomes and quarantine ---------------------------------------------------------------------------
def record_outcome(session: Session, item: RecheckItem, *, reached: bool, received: bool | None = None,
                   self_filled: bool | None = None, prompted: bool | None = None, paid: bool | None = None,
                   today: date, by: StaffUser | None = None, actor: str = "staff") -> RecheckOutcome:
    """Record what re-contacting a drawn sheet's respondent found, then review its investigator."""
    rnd = session.get(Round, item.round_id)
    _check_open(session, rnd)
    if reached and received is None:
        raise RecheckError("Đã liên lạc được: hãy ghi người đó có nhận phiếu hay không.", 400)
    old = item.outcome.value if item.outcome else None
    answers = ({"received": received, "self_filled": self_filled, "prompted": prompted, "paid": paid} if reached
               else {"received": None, "self_filled": None, "prompted": None, "paid": None})
    item.reached = reached
    for key, value in answers.items():
        setattr(item, key, value)
    item.outcome = RecheckOutcome(fieldcheck.outcome(reached=reached, **answers))
    item.recorded_on, item.recorded_by_id = today, by.id if by else None
    audit.record(session, "phuctra.outcome", user=by, actor=actor, object_type="sheet", object_id=item.sheet.serial,
                 old=old, new={"outcome": item.outcome.value, "reached": reached, **answers})
    session.flush()
    if item.investigator is not None:
        _review(session, rnd, item.investigator, today=today, by=by, actor=actor)
    return item.outcome


def _outcomes(session: Session, round_id: int, investigator: str) -> list[str]:
    return [o.value for o in session.scalars(
        sa.select(RecheckItem.outcome).where(RecheckItem.round_id == round_id,
                                             RecheckItem.investigator == investigator,
                                             RecheckItem.outcome.is_not(None)))]


def _review(session: Session, rnd: Round, investigator: str, *, today: date, by: StaffUser | None,
            actor: str) -> None:
    """Quarantine an investigator whose failures pass the threshold (kept up to date once quarantined; a
    quarantine lifted after review is not put back by the same outcomes)."""
    conf = settings(rnd)
    outcomes = _outcomes(session, rnd.id, investigator)
    failures, reached, _ = fieldcheck.failure_rate(outcomes)
    quarantine = session.scalar(sa.select(Quarantine).where(Quarantine.round_id == rnd.id,
                                                            Quarantine.investigator == investigator))
    if quarantine is not None:
        quarantine.failures, quarantine.checked = failures, reached
        return
    if fieldcheck.quarantined(outcomes, threshold=conf.failure_threshold, min_failures=conf.min_failures):
        session.add(Quarantine(round_id=rnd.id, investigator=investigator, since=today, failures=failures,
                               checked=reached))
        audit.record(session, "phuctra.quarantine", user=by, actor=actor, object_type="investigator",
                     object_id=investigator, new={"round": rnd.code, "failures": failures, "reached": reached,
                                                     "threshold": conf.failure_threshold})
        session.flush()


def lift(session: Session, quarantine: Quarantine, *, reason: str, today: date, by: StaffUser | None = None,
         actor: str = "staff") -> None:
    """Lift a quarantine after review: the investigator's sheets count again (audited with the reason)."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 255 or storable.unstorable(reason):
        raise RecheckError("Hãy ghi kết luận xem xét (tối đa 255 ký tự).", 400)
    if quarantine.lifted_on is not None:
        raise RecheckError("Điều tra viên này đã được bỏ tạm loại.")
    quarantine.lifted_on, quarantine.lifted_by_id, quarantine.lift_reason = today, by.id if by else None, reason
    audit.record(session, "phuctra.lift", user=by, actor=actor, object_type="investigator",
                 object_id=quarantine.investigator, new={"round_id": quarantine.round_id, "reason": reason})
    session.flush()


def quarantines(session: Session, round_id: int) -> list[Quarantine]:
    return list(session.scalars(sa.select(Quarantine).where(Quarantine.round_id == round_id)
                                .order_by(Quarantine.id)))


def quarantined_investigators(session: Session, round_id: int) -> set[str]:
    """Codes of the round's investigators quarantined and not lifted: the analysis leaves out the sheets
    they handled."""
    return set(session.scalars(sa.select(Quarantine.investigator).where(Quarantine.round_id == round_id,
                                                                          Quarantine.lifted_on.is_(None))))


@dataclass
class InvestigatorSummary:
    investigator: str | None
    returned: int
    drawn: int
    confirmed: int
    not_reached: int
    failed: int
    quarantined: bool

    @property
    def failure_rate(self) -> float | None:
        reached = self.confirmed + self.failed
        return self.failed / reached if reached else None


def summary(session: Session, rnd: Round) -> list[InvestigatorSummary]:
    """Per investigator: sheets returned, drawn, and the outcomes so far."""
    returned: dict[str | None, int] = defaultdict(int)
    for investigator in sheet_investigators(session, rnd.id).values():
        returned[investigator] += 1
    drawn: dict[str | None, list[RecheckItem]] = defaultdict(list)
    for item in items(session, rnd):
        drawn[item.investigator].append(item)
    held = quarantined_investigators(session, rnd.id)
    out = []
    for investigator in sorted(returned, key=lambda i: i or ""):
        outcomes = [i.outcome for i in drawn[investigator]]
        out.append(InvestigatorSummary(investigator, returned[investigator], len(drawn[investigator]),
                                       outcomes.count(RecheckOutcome.CONFIRMED),
                                       outcomes.count(RecheckOutcome.NOT_REACHED),
                                       outcomes.count(RecheckOutcome.FAILED), investigator in held))
    return out


def pass_rate(session: Session, round_id: int) -> tuple[int, int]:
    """(confirmed, reached) over the round's phúc tra so far: the pass rate is their ratio."""
    outcomes = [o.value for o in session.scalars(sa.select(RecheckItem.outcome).where(
        RecheckItem.round_id == round_id, RecheckItem.outcome.is_not(None)))]
    failures, reached, _ = fieldcheck.failure_rate(outcomes)
    return reached - failures, reached


# --- closing -------------------------------------------------------------------------------------------
def close(session: Session, rnd: Round, *, today: date, by: StaffUser | None = None, actor: str = "staff") -> int:
    """Close the round's phúc tra and delete its contact vault and answer marks; returns how many contacts
    were deleted, with the deletion committed.

    A deleted row stays in the table's files, where a copy of the data directory finds it: PostgreSQL keeps it
    until VACUUM (and VACUUM FULL still copies it while any transaction could see it), SQLite's write-ahead
    log keeps the page as it was. So on PostgreSQL the vault's tables are rewritten in the same transaction
    (TRUNCATE gives them new, empty files and the rows of other rounds are put back); SQLite, which zeroes
    deleted rows, copies its log into the database file and empties it.

    :raises RecheckError: when phúc tra was never opened or is already closed.
    """
    recheck = _check_open(session, rnd)
    if recheck is None:
        raise RecheckError(f"Phúc tra của đợt {rnd.code} chưa được mở.")
    deleted = session.execute(sa.delete(Contact).where(Contact.round_id == rnd.id)).rowcount
    session.execute(sa.delete(AnswerPattern).where(AnswerPattern.sheet_id.in_(
        sa.select(Sheet.id).join(QuotaCell).where(QuotaCell.round_id == rnd.id))))
    recheck.closed_on = today
    audit.record(session, "phuctra.close", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"contacts_deleted": deleted})
    if session.get_bind().dialect.name == "postgresql":
        for table in db.VAULT_TABLES:
            session.execute(sa.text(f"CREATE TEMPORARY TABLE kept_{table} ON COMMIT DROP AS SELECT * FROM {table}"))
            session.execute(sa.text(f"TRUNCATE {table}"))
            session.execute(sa.text(f"INSERT INTO {table} SELECT * FROM kept_{table}"))
    session.commit()
    portal.forget_written(session)
    return deleted
