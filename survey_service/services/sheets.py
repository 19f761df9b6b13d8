"""The paper sheet ledger: serials, signed QR tokens and the state of every printed sheet.

A sheet moves ``issued -> returned -> keyed -> verified``, or to ``void``; every move is written as a
:class:`SheetEvent` with who and when, so the ledger can always be replayed. Serials carry a check character
so a mistyped serial is refused instead of opening someone else's sheet; the QR carries the sheet id signed
with its own keys (never ``SECRET_KEY``): the first key signs, every key verifies, so keys can be rotated
without invalidating sheets already printed.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from survey_service.models import (
    Agency, Channel, Keying, QuotaCell, Round, RoundForm, Sheet, SheetEvent, SheetScan, SheetState, StaffUser,
    utcnow,
)
from survey_service.services import audit, frames, rounds
from survey_service.services.errors import ServiceError
from survey_service.services.users import normalise_username

#: Characters of a serial's round prefix and running number.
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Check characters of new serials: no look-alikes (the alphabet of the invitation codes).
CHECK_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
#: What a typed check character may stand for on a sheet printed with the older alphabet.
LOOKALIKES = {"0": "0O", "O": "O0", "1": "1IL", "I": "I1L", "L": "L1I"}
TOKEN_SALT = "paper-sheet"
#: Path of the key-in URL printed in the QR; the token follows.
URL_PATH = "/p/"

STATE_LABELS = {
    SheetState.ISSUED: "Đã phát",
    SheetState.RETURNED: "Đã thu về",
    SheetState.KEYED: "Đã nhập",
    SheetState.VERIFIED: "Đã xác nhận",
    SheetState.VOID: "Đã hủy",
}

#: Allowed ledger moves. Keying an issued sheet records its return on the way (see ``keying``).
TRANSITIONS = {
    SheetState.ISSUED: {SheetState.RETURNED, SheetState.VOID},
    SheetState.RETURNED: {SheetState.KEYED, SheetState.VOID},
    SheetState.KEYED: {SheetState.VERIFIED},
    SheetState.VERIFIED: set(),
    SheetState.VOID: set(),
}


class SheetError(ServiceError):
    """A sheet request that cannot be carried out; ``str()`` is a Vietnamese message for the user."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# --- serials and tokens ------------------------------------------------------------------------------
def _luhn(values: list[int], n: int) -> int:
    """Luhn mod ``n`` (``n`` even) over values in ``range(n)``: catches every single wrong value and most
    swapped neighbours."""
    factor, total = 2, 0
    for value in reversed(values):
        addend = factor * value
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return (n - total % n) % n


def check_character(base: str) -> str:
    """The check character of new serials, from an alphabet without look-alikes (as the invitation codes):
    no 0/O, 1/I/L or U can be misread on paper. The running number's digits are what a clerk types wrong;
    the round prefix is checked again by the look-up of the serial."""
    n = len(CHECK_ALPHABET)
    return CHECK_ALPHABET[_luhn([ALPHABET.index(ch) % n for ch in base], n)]


def legacy_check_character(base: str) -> str:
    """The check character of serials printed before :data:`CHECK_ALPHABET`: Luhn mod 36 over 0-9A-Z."""
    return ALPHABET[_luhn([ALPHABET.index(ch) for ch in base], len(ALPHABET))]


def round_prefix(round_code: str) -> str:
    return re.sub(r"[^0-9A-Z]", "", round_code.upper())


def check_collecting(rnd: Round, today: date | None = None) -> None:
    """No sheet of a closed round is printed, reprinted or recorded as returned (``today``: the Vietnamese
    date, by default now's). :raises SheetError: 409, saying how to reopen the round."""
    try:
        rounds.check_collecting(rnd, today or rounds.local_today())
    except rounds.RoundError as exc:
        raise SheetError(str(exc), 409) from None


def check_lists_signed_off(session: Session, rnd: Round) -> None:
    """No sheet of a round with a sampling frame is printed before an observer has signed off its lists.
    :raises SheetError: 409, naming the frames waiting."""
    try:
        frames.check_signed_off(session, rnd)
    except frames.FrameError as exc:
        raise SheetError(str(exc), 409) from None


def make_serial(round_code: str, number: int) -> str:
    """E.g. ``QNA2023-00017-D``: round, running number (five digits), check character."""
    if not 0 < number < 100_000:
        raise SheetError("Một đợt khảo sát có tối đa 99.999 phiếu giấy.", 409)
    base = f"{round_prefix(round_code)}{number:05d}"
    return f"{round_prefix(round_code)}-{number:05d}-{check_character(base)}"


def serial_candidates(text: str) -> list[str]:
    """The serials a typed serial may name (any case, with or without dashes or spaces).

    A new serial's check character must match exactly. A serial printed with the older check alphabet is
    also accepted when its check character was typed as a look-alike (``0`` for ``O``, ``1`` for ``I``): the
    look-alikes of one glyph never share a check value, so the correction is unambiguous. At most one of the
    candidates exists, since a round's running number names one sheet.

    :raises SheetError: when it is not shaped like a serial or its check character is wrong.
    """
    compact = re.sub(r"[\s\-_]", "", text.upper())
    match = re.fullmatch(r"([0-9A-Z]+)(\d{5})([0-9A-Z])", compact)
    if not match or not re.search("[A-Z]", match.group(1)):
        raise SheetError("Số phiếu không đúng dạng (ví dụ: QNA2023-00017-D).", 400)
    prefix, number, typed = match.groups()
    base = prefix + number
    readings = LOOKALIKES.get(typed, typed)
    found = [c for c in dict.fromkeys((check_character(base), legacy_check_character(base))) if c in readings]
    if not found:
        raise SheetError(f"Số phiếu {text.strip()} có ký tự kiểm tra sai: hãy kiểm tra lại từng ký tự.", 400)
    return [f"{prefix}-{number}-{c}" for c in found]


def normalize_serial(text: str) -> str:
    """Canonical form of a typed serial: the first of :func:`serial_candidates`."""
    return serial_candidates(text)[0]


def _serializer(keys: list[str]) -> URLSafeSerializer:
    if not keys:
        raise RuntimeError("SHEET_SIGNING_KEYS is empty.")
    # itsdangerous signs with the last key of the list and verifies with all of them.
    return URLSafeSerializer(list(reversed(keys)), salt=TOKEN_SALT)


def sign_sheet_id(keys: list[str], sheet_id: int) -> str:
    return _serializer(keys).dumps(sheet_id)


def sheet_id_from_token(keys: list[str], token: str) -> int:
    """The sheet id a token carries. :raises SheetError: for a forged, altered or foreign token."""
    try:
        value = _serializer(keys).loads(token)
    except BadSignature:
        raise SheetError("Mã QR không hợp lệ: phiếu không do hệ thống in ra hoặc mã đã bị sửa.", 400) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SheetError("Mã QR không hợp lệ.", 400)
    return value


#: The QR of a sheet printed to be read: ``<serial>/<page>/<signature>``, e.g. ``QNA2023-00017-D/1/K3M9QX2A``
#: (26 characters of the QR's alphanumeric set, so a version-2 code that phone photos decode reliably).
PAGE_PAYLOAD = re.compile(r"([0-9A-Z]+-\d{5}-[0-9A-Z])/(\d{1,2})/([A-Z2-7]{8})")


def _page_mac(key: str, serial: str, page: int) -> str:
    digest = hmac.new(key.encode(), f"sheet-page|{serial}|{page}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:5]).decode("ascii")


def page_payload(keys: list[str], serial: str, page: int) -> str:
    """What the QR of one page of a readable sheet holds: its serial, page and a short signature (first key)."""
    if not keys:
        raise RuntimeError("SHEET_SIGNING_KEYS is empty.")
    return f"{serial}/{page}/{_page_mac(keys[0], serial, page)}"


def parse_page_payload(keys: list[str], text: str) -> tuple[str, int] | None:
    """(serial, page) of a page QR signed with any of ``keys``; None when ``text`` is not shaped like one.

    :raises SheetError: when it is shaped like one but its signature is wrong (forged or altered).
    """
    match = PAGE_PAYLOAD.fullmatch((text or "").strip())
    if not match:
        return None
    serial, page, mac = match.group(1), int(match.group(2)), match.group(3)
    if not any(hmac.compare_digest(_page_mac(key, serial, page), mac) for key in keys):
        raise SheetError("Mã QR không hợp lệ: phiếu không do hệ thống in ra hoặc mã đã bị sửa.", 400)
    return serial, page


def sheet_url(base_url: str, keys: list[str], sheet_id: int) -> str:
    """The URL printed in the QR: the key-in screen of this sheet."""
    return base_url.rstrip("/") + URL_PATH + sign_sheet_id(keys, sheet_id)


# --- finding sheets ----------------------------------------------------------------------------------
def find_sheet(session: Session, text: str, keys: list[str], *, rnd: Round | None = None,
               lock: bool = False) -> Sheet:
    """The sheet named by a scanned URL, a bare token or a typed serial.

    :param rnd: when given, a sheet of another round is refused.
    :raises SheetError: with a message saying what is wrong.
    """
    text = (text or "").strip()
    if not text:
        raise SheetError("Hãy quét mã QR hoặc nhập số phiếu.", 400)
    if len(text) > 500:
        raise SheetError("Mã quét được quá dài, không phải mã phiếu.", 400)
    if (page := parse_page_payload(keys, text)) is not None:
        sheet = _get(session, Sheet.serial == page[0], lock)
    elif URL_PATH in text:
        token = text.rsplit(URL_PATH, 1)[1].split("?")[0].split("#")[0]
        sheet = _get(session, Sheet.id == sheet_id_from_token(keys, token), lock)
    elif "://" in text:
        raise SheetError("Địa chỉ quét được không phải mã QR của phiếu khảo sát.", 400)
    elif "." in text:
        # URL-safe tokens are "<payload>.<signature>"; serials never contain a dot.
        sheet = _get(session, Sheet.id == sheet_id_from_token(keys, text), lock)
    else:
        sheet = _get(session, Sheet.serial.in_(serial_candidates(text)), lock)
    if sheet is None:
        raise SheetError("Không tìm thấy phiếu này trong sổ theo dõi phiếu.", 404)
    if rnd is not None and sheet.quota_cell.round_id != rnd.id:
        raise SheetError(f"Phiếu {sheet.serial} thuộc đợt khảo sát {sheet.quota_cell.round.code}, "
                         f"không thuộc đợt {rnd.code}.", 409)
    return sheet


def _get(session: Session, where, lock: bool) -> Sheet | None:
    query = sa.select(Sheet).where(where)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def get_by_serial(session: Session, serial: str, *, lock: bool = False) -> Sheet:
    sheet = _get(session, Sheet.serial.in_(serial_candidates(serial)), lock)
    if sheet is None:
        raise SheetError(f"Không có phiếu số {serial} trong sổ theo dõi phiếu.", 404)
    return sheet


def sheet_for_import(session: Session, rnd: Round, scanned: str, keys: list[str]) -> Sheet:
    """The sheet whose QR (or typed serial) an investigator scanned into a submission of a field tool: its
    signature checked, of this round, and still out; one keyed, verified or void is refused, so a sheet's
    answers come in once, by keying or by import (a citizens' round's also needs its investigator).

    :raises SheetError: with a message saying why.
    """
    if not keys:
        raise SheetError("máy chủ chưa có khóa ký phiếu (SHEET_SIGNING_KEYS) nên không kiểm tra được mã phiếu.")
    sheet = find_sheet(session, scanned, keys, rnd=rnd, lock=True)
    if sheet.state is SheetState.VOID:
        replaced = session.get(Sheet, sheet.replaced_by_id) if sheet.replaced_by_id else None
        raise SheetError(f"phiếu số {sheet.serial} đã bị hủy" + (f" (in lại thành {replaced.serial})" if replaced
                                                                 else "") + ".", 409)
    if sheet.state not in (SheetState.ISSUED, SheetState.RETURNED):
        raise SheetError(f"phiếu số {sheet.serial} đã có câu trả lời (trạng thái “{STATE_LABELS[sheet.state]}”), "
                         "không nhận lần hai.", 409)
    if rounds.is_citizens(rnd) and not sheet.investigator:  # as keying: phúc tra needs who handed it out
        raise SheetError(f"phiếu số {sheet.serial} chưa ghi điều tra viên đã phát phiếu: ghi điều tra viên trước "
                         "khi nhập (lệnh survey-service sheets assign).", 409)
    return sheet


#: A sheet whose answers came in an import (:func:`record_imported`): keyed without a keying pass.
IMPORTED = sa.and_(Sheet.state.in_([SheetState.KEYED, SheetState.VERIFIED]),
                   ~sa.exists().where(Keying.sheet_id == Sheet.id))


def record_imported(session: Session, found: list[Sheet], *, by: StaffUser | None, actor: str) -> None:
    """Sheets whose answers came in an import: recorded returned, keyed and verified at once (the field tool
    typed the answers), so the ledger and progress count each once and no clerk keys it again."""
    for sheet in found:
        if sheet.state is SheetState.ISSUED:
            transition(session, sheet, SheetState.RETURNED, by=by, actor=actor)
        transition(session, sheet, SheetState.KEYED, by=by, actor=actor)
        transition(session, sheet, SheetState.VERIFIED, by=by, actor=actor)


# --- issuing -----------------------------------------------------------------------------------------
@dataclass
class CellPlan:
    """A paper quota cell with how many of its sheets are in each state."""

    cell: QuotaCell
    counts: dict[SheetState, int] = field(default_factory=dict)

    @property
    def live(self) -> int:
        return sum(n for state, n in self.counts.items() if state is not SheetState.VOID)

    @property
    def missing(self) -> int:
        return max(0, self.cell.target - self.live)


def paper_cells(session: Session, rnd: Round, *, form_code: str | None = None,
                agency_code: str | None = None) -> list[CellPlan]:
    """The round's paper quota cells (optionally one form / one agency) with their sheet counts.

    :raises SheetError: when the form or agency is unknown or selects no paper cell.
    """
    query = (sa.select(QuotaCell).outerjoin(Agency, QuotaCell.agency_id == Agency.id)
             .where(QuotaCell.round_id == rnd.id, QuotaCell.channel == Channel.PAPER)
             .order_by(QuotaCell.form_code, Agency.id))
    if form_code:
        query = query.where(QuotaCell.form_code == form_code)
    if agency_code:
        query = query.where(Agency.code == agency_code)
    cells = list(session.scalars(query))
    if not cells:
        what = " ".join(filter(None, [f"mẫu {form_code}" if form_code else "",
                                      f"cơ quan {agency_code}" if agency_code else ""]))
        raise SheetError(f"Đợt {rnd.code} không có ô chỉ tiêu phiếu giấy nào cho {what or 'đợt này'}.", 404)
    counts = session.execute(
        sa.select(Sheet.quota_cell_id, Sheet.state, sa.func.count())
        .where(Sheet.quota_cell_id.in_([c.id for c in cells]))
        .group_by(Sheet.quota_cell_id, Sheet.state)
    ).all()
    plans = {c.id: CellPlan(c) for c in cells}
    for cell_id, state, n in counts:
        plans[cell_id].counts[state] = n
    return list(plans.values())


def issue_sheets(session: Session, rnd: Round, plans: list[CellPlan], *, extra: int = 0,
                 today: date | None = None, by: StaffUser | None = None, actor: str = "staff",
                 investigator: str | None = None, commune: str | None = None) -> list[Sheet]:
    """Issue new sheets so every cell has its target of live (non-void) sheets, plus ``extra`` spares each.
    A soft-closed cell gets none: its supervisor has stopped collection there; a closed round none at all,
    nor a round whose sample lists are not yet signed off. ``investigator``: the Post Office investigator
    they are handed to (citizens' rounds; see :func:`assign_investigator`); ``commune``: the commune whose
    sampled households get them, whatever agency they rate (citizens' rounds: results per commune). A
    citizens' round's sheets rating a commune drawn in a household frame are for its households without it.

    Serial numbers run on per round; a concurrent issue collides on the unique serial and is rolled back.
    """
    check_collecting(rnd, today)
    check_lists_signed_off(session, rnd)
    investigator = investigator_account(session, investigator) if investigator else None
    commune = commune_code(session, rnd, commune) if commune else None
    drawn = ({c["agency"] for c in frames.cell_weights(session, rnd.id) if c["kind"] == "households"}
             if rounds.is_citizens(rnd) else set())
    if extra < 0 or extra > 1000:
        raise SheetError("Số phiếu dự phòng phải từ 0 đến 1000.", 400)
    number = _last_number(session, rnd)
    versions = _current_versions(session, rnd)
    issued = []
    for plan in plans:
        if plan.cell.soft_closed:
            continue
        rated = plan.cell.agency.code if plan.cell.agency is not None else None
        home = commune or (rated if rated in drawn else None)
        for _ in range(plan.missing + extra):
            number += 1
            sheet = Sheet(serial=make_serial(rnd.code, number), quota_cell_id=plan.cell.id,
                          questionnaire_version_id=versions[plan.cell.form_code],
                          state=SheetState.ISSUED, issued_by_id=by.id if by else None,
                          investigator=investigator, commune=home)
            session.add(sheet)
            issued.append(sheet)
    if not issued:
        return issued
    session.flush()
    session.add_all(SheetEvent(sheet_id=s.id, from_state=None, to_state=SheetState.ISSUED,
                               user_id=by.id if by else None) for s in issued)
    audit.record(session, "sheets.issue", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"count": len(issued), "first": issued[0].serial, "last": issued[-1].serial,
                      **({"investigator": investigator} if investigator else {}),
                      **({"commune": commune} if commune else {})})
    session.flush()
    return issued


def commune_code(session: Session, rnd: Round, text: str) -> str:
    """The code of a commune of a citizens' round whose households a sheet is handed to: an agency code of the
    round, as in a household frame's ``commune`` column.

    :raises SheetError: 400 when the round is not a citizens' round or has no agency of that code.
    """
    code = text.strip().upper()
    if not rounds.is_citizens(rnd) or code not in {a.code for a in rnd.agencies}:
        raise SheetError(f"Đợt {rnd.code} không có xã, phường mã “{text.strip()[:32]}” (mã trong agencies.csv của "
                         "một đợt khảo sát người dân, như cột commune của khung mẫu hộ gia đình).", 400)
    return code


def investigator_account(session: Session, text: str) -> str:
    """The username of the active staff account of a Post Office investigator (điều tra viên), as sheets
    record it: phúc tra quarantines accounts. :raises SheetError: 400 when there is no such account."""
    username = normalise_username(text)
    found = session.scalar(sa.select(StaffUser.username).where(StaffUser.username == username,
                                                                StaffUser.active.is_(True)))
    if found is None or len(found) > 32:
        raise SheetError(f"Không có tài khoản điều tra viên đang hoạt động tên '{text}' (tạo bằng lệnh "
                         "survey-service users create TÊN --role clerk).", 400)
    return found


def assign_investigator(session: Session, rnd: Round, serials: list[str], investigator: str, keys: list[str], *,
                        by: StaffUser | None = None, actor: str = "staff") -> list[Sheet]:
    """Record the Post Office investigator who hands out these sheets (all or none): only sheets of the round
    that are still issued, not yet returned or keyed, since the investigator travels with the answers."""
    investigator = investigator_account(session, investigator)
    found = []
    for text in serials:
        sheet = find_sheet(session, text, keys, rnd=rnd)
        if sheet.state is not SheetState.ISSUED:
            raise SheetError(f"Phiếu {sheet.serial}: {STATE_LABELS[sheet.state].lower()}; chỉ giao cho điều tra "
                             "viên phiếu chưa thu về.", 409)
        found.append(sheet)
    for sheet in found:
        sheet.investigator = investigator
    audit.record(session, "sheets.investigator", user=by, actor=actor, object_type="round", object_id=rnd.code,
                 new={"investigator": investigator, "serials": [s.serial for s in found]})
    session.flush()
    return found


def _current_versions(session: Session, rnd: Round) -> dict[str, int]:
    """Form code → the questionnaire version the round uses now, which new sheets are printed with."""
    return dict(session.execute(
        sa.select(RoundForm.form_code, RoundForm.questionnaire_version_id).where(RoundForm.round_id == rnd.id)
    ).all())


def _last_number(session: Session, rnd: Round) -> int:
    serials = session.scalars(
        sa.select(Sheet.serial).join(QuotaCell).where(QuotaCell.round_id == rnd.id)
    )
    return max((int(s.split("-")[1]) for s in serials), default=0)


def numbered_sheets(session: Session, rnd: Round, first: int, last: int) -> list[Sheet]:
    """The round's sheets with running numbers ``first`` to ``last``: one printed batch (its numbers are
    consecutive, see :func:`issue_sheets`), void ones left out, for downloading its PDF after the page
    shows the new counts."""
    prefix = round_prefix(rnd.code)
    return list(session.scalars(
        sa.select(Sheet).join(QuotaCell).where(QuotaCell.round_id == rnd.id,
                                               Sheet.serial >= f"{prefix}-{first:05d}-",
                                               Sheet.serial < f"{prefix}-{last + 1:05d}-",
                                               Sheet.state != SheetState.VOID).order_by(Sheet.serial)
    ))


def issued_sheets(session: Session, plans: list[CellPlan]) -> list[Sheet]:
    """Sheets of these cells still waiting to come back (state issued), for printing them again."""
    return list(session.scalars(
        sa.select(Sheet).where(Sheet.quota_cell_id.in_([p.cell.id for p in plans]),
                               Sheet.state == SheetState.ISSUED).order_by(Sheet.id)
    ))


# --- ledger moves ------------------------------------------------------------------------------------
def transition(session: Session, sheet: Sheet, to_state: SheetState, *, by: StaffUser | None,
               actor: str = "staff") -> SheetEvent:
    """Move a sheet along the ledger, refusing moves the ledger does not allow."""
    if to_state not in TRANSITIONS[sheet.state]:
        raise SheetError(f"Phiếu {sheet.serial} đang ở trạng thái “{STATE_LABELS[sheet.state]}”, không thể "
                         f"chuyển sang “{STATE_LABELS[to_state]}”.", 409)
    event = SheetEvent(sheet_id=sheet.id, from_state=sheet.state, to_state=to_state,
                       user_id=by.id if by else None, at=utcnow())
    session.add(event)
    sheet.events.append(event)
    sheet.state = to_state
    if to_state in (SheetState.VERIFIED, SheetState.VOID):
        # A read page's image holds the answers: kept only until the sheet is settled.
        session.execute(sa.update(SheetScan).where(SheetScan.sheet_id == sheet.id).values(image=None))
    audit.record(session, f"sheet.{to_state.value}", user=by, actor=actor, object_type="sheet",
                 object_id=sheet.serial, old=event.from_state.value, new=to_state.value)
    session.flush()
    return event


@dataclass
class ReturnReport:
    recorded: list[Sheet] = field(default_factory=list)
    already: list[Sheet] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def record_returns(session: Session, rnd: Round, scans: list[str], keys: list[str], *,
                   today: date | None = None, by: StaffUser | None, actor: str = "staff") -> ReturnReport:
    """Record a pile of returned sheets, one scanned URL or typed serial per entry.

    All or nothing: if any entry is invalid (forged, mistyped, void, another round) nothing is recorded
    and ``errors`` says which. Sheets already returned or keyed are reported, not errors.

    :raises SheetError: 409 when the round is closed.
    """
    check_collecting(rnd, today)
    report = ReturnReport()
    seen: set[int] = set()
    to_record = []
    for scan in (s.strip() for s in scans):
        if not scan:
            continue
        try:
            sheet = find_sheet(session, scan, keys, rnd=rnd, lock=True)
        except SheetError as exc:
            report.errors.append((scan[:80], str(exc)))
            continue
        if sheet.id in seen:
            continue
        seen.add(sheet.id)
        if sheet.state is SheetState.VOID:
            report.errors.append((sheet.serial, f"Phiếu {sheet.serial} đã bị hủy (đã in lại), không được thu."))
        elif sheet.state is SheetState.ISSUED:
            to_record.append(sheet)
        else:
            report.already.append(sheet)
    if not seen and not report.errors:
        report.errors.append(("", "Chưa có phiếu nào được quét hoặc nhập."))
    if report.errors:
        report.already.clear()
        return report
    for sheet in to_record:
        transition(session, sheet, SheetState.RETURNED, by=by, actor=actor)
    report.recorded = to_record
    return report


def reprint(session: Session, sheet: Sheet, *, today: date | None = None, by: StaffUser | None,
            actor: str = "staff") -> Sheet:
    """Void a sheet that has not been keyed and issue its replacement in the same cell (not once the round
    is closed)."""
    check_collecting(sheet.quota_cell.round, today)
    check_lists_signed_off(session, sheet.quota_cell.round)
    if sheet.state not in (SheetState.ISSUED, SheetState.RETURNED):
        raise SheetError(f"Chỉ in lại được phiếu chưa nhập; phiếu {sheet.serial} đang ở trạng thái "
                         f"“{STATE_LABELS[sheet.state]}”.", 409)
    rnd = sheet.quota_cell.round
    number = _last_number(session, rnd) + 1
    new = Sheet(serial=make_serial(rnd.code, number), quota_cell_id=sheet.quota_cell_id,
                questionnaire_version_id=_current_versions(session, rnd)[sheet.quota_cell.form_code],
                state=SheetState.ISSUED, issued_by_id=by.id if by else None)
    session.add(new)
    session.flush()
    session.add(SheetEvent(sheet_id=new.id, from_state=None, to_state=SheetState.ISSUED,
                           user_id=by.id if by else None))
    transition(session, sheet, SheetState.VOID, by=by, actor=actor)
    sheet.replaced_by_id = new.id
    audit.record(session, "sheet.reprint", user=by, actor=actor, object_type="sheet", object_id=sheet.serial,
                 old=sheet.serial, new=new.serial)
    session.flush()
    return new


# --- reading the ledger ------------------------------------------------------------------------------
def ledger(session: Session, rnd: Round, *, form_code: str | None = None, state: SheetState | None = None,
           agency: str | None = None, serial: str | None = None, page: int = 1, per_page: int = 50
           ) -> tuple[list[Sheet], int]:
    """A page of the round's sheets in serial order, and how many match.

    :param agency: part of the rated agency's code or name (any case).
    :param serial: a whole serial (its look-alike check characters accepted) or part of one (``00089``).
    """
    query = (sa.select(Sheet).join(QuotaCell).outerjoin(Agency, QuotaCell.agency_id == Agency.id)
             .where(QuotaCell.round_id == rnd.id))
    if form_code:
        query = query.where(QuotaCell.form_code == form_code)
    if state is not None:
        query = query.where(Sheet.state == state)
    if agency:
        wanted = f"%{agency.strip()}%"
        query = query.where(sa.or_(Agency.code.ilike(wanted), Agency.name.ilike(wanted)))
    if serial:
        try:
            query = query.where(Sheet.serial.in_(serial_candidates(serial)))
        except SheetError:
            part = re.sub(r"[\s_]", "", serial.upper())
            query = query.where(Sheet.serial.contains(part, autoescape=True))
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(Sheet.serial).limit(per_page).offset((max(page, 1) - 1) * per_page))
    return list(rows), total


def state_counts(session: Session, rnd: Round) -> dict[str, dict[SheetState, int]]:
    """{form code: {state: number of sheets}} for the round."""
    rows = session.execute(
        sa.select(QuotaCell.form_code, Sheet.state, sa.func.count()).join(QuotaCell)
        .where(QuotaCell.round_id == rnd.id).group_by(QuotaCell.form_code, Sheet.state)
    ).all()
    counts: dict[str, dict[SheetState, int]] = {}
    for form_code, state, n in rows:
        counts.setdefault(form_code, {})[state] = n
    return counts


def pick_round(session: Session, round_code: str | None) -> Round:
    """The round named ``round_code``, or when none is given the most recent real (not simulated) one."""
    if round_code:
        rnd = session.scalar(sa.select(Round).where(Round.code == round_code))
        if rnd is None:
            raise SheetError(f"Không có đợt khảo sát {round_code}.", 404)
        return rnd
    rnd = session.scalar(sa.select(Round).order_by(Round.simulated, Round.opens_on.desc(), Round.id.desc()).limit(1))
    if rnd is None:
        raise SheetError("Chưa có đợt khảo sát nào được nạp.", 404)
    return rnd
