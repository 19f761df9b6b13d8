"""Invitation codes for the online channel: issue them in batches per quota cell, revoke unused ones,
count them per cell, and hand a batch out as CSV or as a printable PDF with links and QR codes.

A code is 12 characters from a 30-letter alphabet without look-alikes (no 0/O, 1/I/L, U), drawn with
``secrets``: 58.9 bits, printed in three groups of four (``K7QM-8XRT-4HWP``) to be read aloud. The code
table records only whether a code is revoked; that it was used is a
:class:`~survey_service.models.SpentCode` under the code's mark, which only the server's secret computes, so
the functions that tell a code's status take that secret.
"""
from __future__ import annotations

import csv
import io
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import (
    Agency, Channel, CodeBatch, CodeStatus, Draft, InvitationCode, QuotaCell, Response, Round, SpentCode,
    StaffUser,
)
from survey_service.services import audit, ballots, rounds, tabular
from survey_service.services.errors import ServiceError
from survey_service.services.pdf import FONT, nfc, qr_image, register_fonts
from survey_service.services.sealing import code_mark

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
GROUPS, GROUP_LENGTH = 3, 4
CODE_LENGTH = GROUPS * GROUP_LENGTH
#: Path of a code's link under PUBLIC_BASE_URL; keep it stable, links are printed on paper.
LINK_PATH = "/c/"
MAX_BATCH = 5000
_SEPARATORS = re.compile(r"[\s\-_.·–—]+")


class InvitationError(ServiceError):
    """A request about codes that cannot be carried out; the message is for the user (Vietnamese), the
    ``status`` for a page (400: the request is wrong; 409: the round no longer allows it)."""


def generate_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return format_code(raw)


def format_code(raw: str) -> str:
    return "-".join(raw[i:i + GROUP_LENGTH] for i in range(0, CODE_LENGTH, GROUP_LENGTH))


def normalise_code(text: str) -> str | None:
    """The canonical ``XXXX-XXXX-XXXX`` form of a typed code, or None if it cannot be one.

    Case, spaces and dashes do not matter; an O typed for a zero or an I/L for a one cannot occur in a
    code, so such input is simply not a code.
    """
    raw = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text or "")).upper()
    if len(raw) != CODE_LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    return format_code(raw)


def code_url(base_url: str, code: str) -> str:
    return base_url.rstrip("/") + LINK_PATH + code


def find_cell(session: Session, rnd: Round, form_code: str, agency_code: str | None) -> QuotaCell:
    """The online quota cell (round, form, agency); raises InvitationError naming what is missing."""
    form_code = rounds.form_code_for(rnd, form_code)
    query = sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id, QuotaCell.form_code == form_code)
    if agency_code:
        agency = session.scalar(sa.select(Agency).where(Agency.round_id == rnd.id, Agency.code == agency_code))
        if agency is None:
            raise InvitationError(f"Không có cơ quan mã '{agency_code}' trong đợt {rnd.code}.")
        query = query.where(QuotaCell.agency_id == agency.id)
    else:
        query = query.where(QuotaCell.agency_id.is_(None))
    cell = session.scalar(query)
    if cell is None:
        raise InvitationError(f"Đợt {rnd.code} không có chỉ tiêu cho phiếu {form_code}"
                              + (f" của cơ quan {agency_code}." if agency_code else "."))
    return cell


def _check_collecting(rnd: Round, today: date | None) -> None:
    """:raises InvitationError: 409 once the round is closed (``today``: the Vietnamese date, by default now's)."""
    try:
        rounds.check_collecting(rnd, today or rounds.local_today())
    except rounds.RoundError as exc:
        raise InvitationError(str(exc), 409) from None


def issue_codes(
    session: Session, cell: QuotaCell, count: int, *, today: date | None = None, by: StaffUser | None = None,
    actor: str = "staff",
) -> CodeBatch:
    """Create a batch of ``count`` new unused codes for an online quota cell (``today``: the Vietnamese
    date, by default now's).

    :return: the batch, flushed, with its codes.
    :raises InvitationError: 409 once the cell's round is closed.
    """
    _check_collecting(cell.round, today)
    if cell.channel is not Channel.ONLINE:
        raise InvitationError(f"Phiếu {cell.form_code} được phát bằng giấy, không dùng mã mời trực tuyến.")
    if not 1 <= count <= MAX_BATCH:
        raise InvitationError(f"Số mã mỗi lần phát phải từ 1 đến {MAX_BATCH}.")
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(generate_code())
    taken = set(session.scalars(sa.select(InvitationCode.code).where(InvitationCode.code.in_(codes))))
    while taken:  # about 1 in 10^13 per code: regenerate the few that collide
        codes -= taken
        while len(codes) < count:
            codes.add(generate_code())
        taken = set(session.scalars(sa.select(InvitationCode.code).where(InvitationCode.code.in_(codes))))
    batch = CodeBatch(quota_cell_id=cell.id, count=count, created_by_id=by.id if by else None)
    session.add(batch)
    session.flush()
    session.add_all(InvitationCode(code=c, quota_cell_id=cell.id, batch_id=batch.id) for c in sorted(codes))
    session.flush()
    audit.record(session, "codes.issue", user=by, actor=actor, object_type="code_batch", object_id=batch.id,
                 new={"quota_cell_id": cell.id, "form": cell.form_code, "count": count})
    return batch


def statuses(session: Session, secret: str, codes: list[InvitationCode]) -> dict[int, CodeStatus]:
    """code id → its status: USED when its mark is among the spent ones, else as stored."""
    return {code_id: status for code_id, (_, status) in marked_statuses(session, secret, codes).items()}


def marked_statuses(session: Session, secret: str,
                    codes: list[InvitationCode]) -> dict[int, tuple[str, CodeStatus]]:
    """code id → (its mark, its status), each mark computed once (an HMAC per code)."""
    marks = {code_mark(secret, c.code): c for c in codes}
    keys, spent = list(marks), set()
    for start in range(0, len(keys), 500):  # (a bound list of at most 500 keys per statement)
        spent.update(session.scalars(sa.select(SpentCode.mark).where(SpentCode.mark.in_(keys[start:start + 500]))))
    return {c.id: (m, CodeStatus.USED if m in spent else c.status) for m, c in marks.items()}


def revoke_codes(
    session: Session, batch: CodeBatch, code_ids: list[int] | None = None, *, secret: str,
    by: StaffUser | None = None, actor: str = "staff", today: date | None = None,
) -> int:
    """Revoke unused codes of a batch (all of them when ``code_ids`` is None); used codes stay used.

    A draft saved under a revoked code is deleted with it. :return: how many codes were revoked.
    :raises InvitationError: 409 once the batch's round is closed (its codes stay as they were then).
    """
    _check_collecting(batch.quota_cell.round, today)
    marked = marked_statuses(session, secret, batch.codes)
    revoked = [c for c in batch.codes
               if marked[c.id][1] is CodeStatus.UNUSED and (code_ids is None or c.id in code_ids)]
    for code in revoked:
        code.status = CodeStatus.REVOKED
    if revoked:
        session.execute(sa.delete(Draft).where(Draft.code_mark.in_([marked[c.id][0] for c in revoked])))
    session.flush()
    if revoked:
        audit.record(session, "codes.revoke", user=by, actor=actor, object_type="code_batch",
                     object_id=batch.id, old={"status": "unused"},
                     new={"status": "revoked", "count": len(revoked), "code_ids": [c.id for c in revoked]})
    return len(revoked)


@dataclass(frozen=True)
class CellCodes:
    cell: QuotaCell
    target: int
    respondents: int
    unused: int
    used: int
    revoked: int

    @property
    def issued(self) -> int:
        return self.unused + self.used + self.revoked


def cell_counts(session: Session, rnd: Round) -> list[CellCodes]:
    """Codes per status and respondents so far, for every online cell of the round."""
    cells = list(session.scalars(
        sa.select(QuotaCell).where(QuotaCell.round_id == rnd.id, QuotaCell.channel == Channel.ONLINE)
        .order_by(QuotaCell.form_code, QuotaCell.agency_id)))
    status_rows = session.execute(
        sa.select(InvitationCode.quota_cell_id, InvitationCode.status, sa.func.count())
        .join(QuotaCell, QuotaCell.id == InvitationCode.quota_cell_id)
        .where(QuotaCell.round_id == rnd.id)
        .group_by(InvitationCode.quota_cell_id, InvitationCode.status))
    by_status: dict[tuple[int, CodeStatus], int] = {(cid, st): n for cid, st, n in status_rows}
    spent = session.execute(sa.select(SpentCode.quota_cell_id, sa.func.count())
                            .join(QuotaCell, QuotaCell.id == SpentCode.quota_cell_id)
                            .where(QuotaCell.round_id == rnd.id).group_by(SpentCode.quota_cell_id))
    for cell_id, used in spent:  # (stored as unused: a code's row is not written when it is used)
        by_status[(cell_id, CodeStatus.USED)] = used
        by_status[(cell_id, CodeStatus.UNUSED)] = by_status.get((cell_id, CodeStatus.UNUSED), 0) - used
    respondents = dict(session.execute(
        sa.select(Response.quota_cell_id, sa.func.count(sa.distinct(Response.respondent_key)))
        .where(Response.round_id == rnd.id).group_by(Response.quota_cell_id)).all())
    for cell_id, sealed in ballots.waiting_by_cell(session, rnd.id).items():
        respondents[cell_id] = respondents.get(cell_id, 0) + sealed
    return [
        CellCodes(cell, cell.target, respondents.get(cell.id, 0), by_status.get((cell.id, CodeStatus.UNUSED), 0),
                  by_status.get((cell.id, CodeStatus.USED), 0), by_status.get((cell.id, CodeStatus.REVOKED), 0))
        for cell in cells
    ]


def cell_matches(cell: QuotaCell, form_code: str | None, agency_text: str | None) -> bool:
    """Whether a cell is of the form and its agency's code or name contains the text (any case)."""
    if form_code and cell.form_code != form_code:
        return False
    if agency_text:
        wanted = unicodedata.normalize("NFC", agency_text).casefold()
        agency = cell.agency
        return agency is not None and (wanted in agency.code.casefold() or wanted in agency.name.casefold())
    return True


def find_code(session: Session, rnd: Round, text: str) -> InvitationCode | None:
    """The round's invitation code typed as ``text`` (any case, with or without dashes), if there is one."""
    code = normalise_code(text)
    if code is None:
        return None
    return session.scalar(sa.select(InvitationCode).join(QuotaCell, QuotaCell.id == InvitationCode.quota_cell_id)
                          .where(QuotaCell.round_id == rnd.id, InvitationCode.code == code))


def batches_of_round(session: Session, rnd: Round) -> list[CodeBatch]:
    return list(session.scalars(
        sa.select(CodeBatch).join(QuotaCell).where(QuotaCell.round_id == rnd.id).order_by(CodeBatch.id.desc())))


def cell_label(cell: QuotaCell) -> str:
    return f"{cell.form_code} – {cell.agency.name}" if cell.agency else cell.form_code


def batch_csv(batch: CodeBatch, base_url: str, status: dict[int, CodeStatus]) -> str:
    """The batch as CSV (UTF-8 with BOM for Excel): code, url, form, agency, status (``status``: as
    :func:`statuses` gives it)."""
    out = io.StringIO()
    out.write("\ufeff")
    cell = batch.quota_cell
    rows = [["code", "url", "form", "agency_code", "agency", "status"]] + [
        [code.code, code_url(base_url, code.code), cell.form_code, cell.agency.code if cell.agency else "",
         cell.agency.name if cell.agency else "", status[code.id].value] for code in batch.codes]
    csv.writer(out, lineterminator="\r\n").writerows(tabular.csv_rows(rows))
    return out.getvalue()


def batch_pdf(batch: CodeBatch, base_url: str, status: dict[int, CodeStatus], *, organiser: str,
              round_name: str) -> bytes:
    """Printable slips, eight per A4 page: each with the code, its link and a QR code of the link.

    Revoked and used codes (``status``: as :func:`statuses` gives it) are left out, so a reprint only hands
    out codes that still work.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    register_fonts()
    font = FONT
    cell = batch.quota_cell
    target = nfc(cell.agency.name if cell.agency else "")
    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4)
    pdf.setTitle(nfc(f"Mã mời khảo sát {cell.form_code} – lô {batch.id}"))
    width, height = A4
    slip_w, slip_h = (width - 20 * mm) / 2, (height - 20 * mm) / 4
    codes = [c for c in batch.codes if status[c.id] is CodeStatus.UNUSED]
    for index, code in enumerate(codes):
        if index and index % 8 == 0:
            pdf.showPage()
        col, row = index % 2, (index % 8) // 2
        x, y = 10 * mm + col * slip_w, height - 10 * mm - (row + 1) * slip_h
        pdf.setDash(2, 2)
        pdf.rect(x, y, slip_w, slip_h)
        pdf.setDash()
        url = code_url(base_url, code.code)
        qr_size = 34 * mm
        pdf.drawImage(qr_image(url), x + slip_w - qr_size - 3 * mm, y + (slip_h - qr_size) / 2,
                      qr_size, qr_size)
        text_x, line = x + 4 * mm, y + slip_h - 9 * mm
        for size, text in [(8, nfc(organiser)), (8, nfc(round_name)),
                           (9, nfc(f"Phiếu {cell.form_code}")), (8, target[:48])]:
            pdf.setFont(font, size)
            pdf.drawString(text_x, line, text)
            line -= size + 3
        pdf.setFont(font, 14)
        pdf.drawString(text_x, y + 22 * mm, code.code)
        pdf.setFont(font, 7)
        pdf.drawString(text_x, y + 15 * mm, url)
        pdf.drawString(text_x, y + 10 * mm, nfc("Quét mã QR hoặc mở đường dẫn, nhập mã ở trang chủ."))
        pdf.drawString(text_x, y + 6 * mm, nfc("Mỗi mã chỉ gửi được một phiếu. Phiếu trả lời là ẩn danh."))
    if not codes:
        pdf.setFont(font, 12)
        pdf.drawString(20 * mm, height - 30 * mm, nfc("Lô này không còn mã chưa sử dụng."))
    pdf.showPage()
    pdf.save()
    return buf.getvalue()
