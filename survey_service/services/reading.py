"""Sheets read by machine: pages in, readings stored, uncertain marks confirmed by a clerk, the result
keyed into the ledger as a keying by the machine reader.

A page is read (:mod:`survey_service.omr.reader`) only when it can be aligned, its QR's signature is valid,
its sheet is in the round and not yet keyed, and that page was not read before; otherwise it is refused
at once with the reason, and nothing of it is kept. A read page keeps every bubble's score and decision
and its straightened image, sealed with the server's secret. When every page of a sheet is read, the
clerk confirms what the reader was unsure of (two marks, a crossed-out mark, a light mark) and types the
free text from the image; with nothing to confirm the reading is accepted as it is. The confirmed reading
is keyed as pass 1 by the keyer kind ``reader``: the sheet is verified at once unless it is sampled for a
blind keying by a person (the round's first ``double_entry_first_sheets`` read sheets and
``double_entry_rate`` of the rest, as for a clerk), whose agreement with the reader is shown beside the clerks'. Images
are deleted when the sheet is verified (or void): they never reach a log or an export.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import (
    KEYER_READER, Keying, QuotaCell, Round, Sheet, SheetScan, SheetState, StaffUser,
)
from survey_service.omr import layout, reader, rows
from survey_service.services import keying, sealing, sheets
from survey_service.services.pdf import FONT, register_fonts
from survey_service.services.sheets import SheetError

SEAL_PURPOSE = "sheet-scan"
#: A file larger than this is refused before it is decoded.
MAX_FILE_BYTES = 40 * 2**20


@dataclass
class PageResult:
    """One page of an uploaded file: what was read, or why it was refused."""

    file: str
    index: int
    serial: str = ""
    page: int = 0
    answers: dict[str, str | None] = field(default_factory=dict)
    refused: str = ""
    complete: bool = False
    keyed: bool = False
    #: Pages of the sheet not read yet.
    missing: list[int] = field(default_factory=list)

    def as_json(self) -> dict:
        if self.refused:
            return {"file": self.file, "index": self.index, "refused": self.refused}
        return {"file": self.file, "index": self.index, "serial": self.serial, "page": self.page,
                "answers": self.answers, "complete": self.complete, "keyed": self.keyed, "missing": self.missing}


def _sealer(secret: str) -> sealing.Sealer:
    return sealing.shared_sealer(secret, SEAL_PURPOSE)


_LAYOUTS: dict[tuple, list[layout.PageLayout]] = {}


def sheet_pages(form: keying.SheetForm) -> list[layout.PageLayout]:
    """The pages of a sheet as printed to be read; none for a matrix form printed as a grid to be keyed
    (more agencies than :data:`layout.MAX_PAGES` pages hold). Kept, as every page read and every work list
    asks for them again; keyed by what the layout is made of (the form's version and wording for the
    round's province, its rows), never by a database id alone."""
    q = form.questionnaire
    key = (q.code, q.version, q.title, q.instructions, tuple(form.rows) if form.matrix else ())
    if key not in _LAYOUTS:
        register_fonts()
        if len(_LAYOUTS) >= 64:
            _LAYOUTS.clear()
        try:
            _LAYOUTS[key] = layout.sheet_layout(form.questionnaire, FONT, form.rows)
        except ValueError:
            _LAYOUTS[key] = []
    return _LAYOUTS[key]


def read_file(session: Session, rnd: Round, name: str, data: bytes, *, keys: list[str], secret: str,
              clerk: StaffUser | None = None) -> list[PageResult]:
    """Read every page of one uploaded file (a scanner's PDF or a photo). Pages are stored one by one; a
    refused page stores nothing. With ``clerk``, a sheet whose pages are all read and hold nothing
    uncertain is keyed at once under that clerk."""
    if len(data) > MAX_FILE_BYTES:
        return [PageResult(name, 1, refused=f"Tệp lớn quá {MAX_FILE_BYTES // 2**20} MB.")]
    try:
        images = reader.images_from_file(data)
    except reader.PageRefused as exc:
        return [PageResult(name, 1, refused=str(exc))]
    results = []
    for index, image in enumerate(images, 1):
        result = PageResult(name, index)
        try:
            scan = _read_page(session, rnd, image, keys, secret)
        except (reader.PageRefused, SheetError) as exc:
            result.refused = str(exc)
            results.append(result)
            continue
        sheet = scan.sheet
        result.serial, result.page = sheet.serial, scan.page
        result.answers = {code: item["value"] for code, item in scan.reading["items"].items()}
        result.answers |= {code: reader.REVIEW if ink > reader.INK_MIN else None
                           for code, ink in scan.reading["texts"].items()}
        pending = waiting(session, sheet)
        result.complete = pending is not None
        result.missing = missing_pages(session, sheet)
        if clerk is not None and pending is not None and not pending.review:
            confirm(session, sheet, clerk, {})
            result.keyed = True
        results.append(result)
    return results


def _read_page(session: Session, rnd: Round, image: np.ndarray, keys: list[str], secret: str) -> SheetScan:
    aligned = reader.align(image)
    parsed = sheets.parse_page_payload(keys, aligned.payload)
    if parsed is None:
        raise SheetError("Mã QR của trang không phải mã của phiếu đọc bằng máy: hãy nhập phiếu này bằng tay.")
    serial, page = parsed
    sheet = sheets.find_sheet(session, serial, keys, rnd=rnd, lock=True)
    if sheet.state not in (SheetState.ISSUED, SheetState.RETURNED) or sheet.keyings:
        raise SheetError(f"Phiếu {sheet.serial} đang ở trạng thái “{sheets.STATE_LABELS[sheet.state]}”: "
                         "không đọc lại.", 409)
    form = keying.sheet_form(session, sheet)
    pages = sheet_pages(form)
    if not 0 < page <= len(pages) or aligned.page != page:
        raise SheetError(f"Trang {page} của phiếu {sheet.serial} không khớp mẫu phiếu in: hãy nhập bằng tay.")
    if session.scalar(sa.select(SheetScan.id).where(SheetScan.sheet_id == sheet.id, SheetScan.page == page)):
        raise SheetError(f"Trang {page} của phiếu {sheet.serial} đã được đọc rồi.", 409)
    marks = reader.read_marks(aligned, pages[page - 1])
    scan = SheetScan(sheet_id=sheet.id, page=page, reading={
        "items": {code: {"value": r.value, "scores": r.scores, "margin": r.margin, "reason": r.reason}
                  for code, r in rows.settle(marks.items).items()},
        "texts": marks.texts, "markers": aligned.markers, "error_mm": round(aligned.error_mm, 3)},
        image=_sealer(secret).seal_bytes(reader.encode(aligned.image)))
    scan.sheet = sheet
    session.add(scan)
    session.flush()
    return scan


# --- confirming --------------------------------------------------------------------------------------
def slot(key: str) -> str:
    """The keying slot of a reading's item key: an HĐ-CT key already is one (``"<agency>:<item>"``,
    :func:`layout.matrix_key`); a one-agency sheet's item ``"E01"`` is the sheet's own row's."""
    return key if ":" in key else keying.slot_name(keying.SHEET_ROW, key)


@dataclass
class Pending:
    """A sheet whose pages are all read, waiting for the clerk: the machine's decisions and what to confirm
    (item keys of the layout, in reading order)."""

    sheet: Sheet
    form: keying.SheetForm
    pages: list[layout.PageLayout]
    scans: dict[int, SheetScan]
    decided: dict[str, str | None]
    review: list[str]
    reasons: dict[str, str]

    def item(self, key: str):
        """The questionnaire item a key answers."""
        return self.form.questionnaire.item(key.rsplit(":", 1)[-1])

    def label(self, key: str) -> str:
        """How the confirmation page names a key: the item code, after its agency on an HĐ-CT sheet."""
        if ":" not in key:
            return key
        row, item = key.rsplit(":", 1)
        number = [i.code for i in self.form.questionnaire.scale_items].index(item) + 1
        agency = next((r.label for r in self.form.rows if r.key == row), row)
        return f"{agency} – câu {number} ({item})"


def _positions(pages: list[layout.PageLayout]) -> dict[str, tuple[int, float, float]]:
    """Item key → (page, y, x) where it is printed: the order a person reads the sheet in."""
    found = {}
    for page in pages:
        for key, bubbles in page.items().items():
            found[key] = (page.number, bubbles[0].y, bubbles[0].x)
        for box in page.boxes:
            found[box.item] = (page.number, box.y, box.x)
    return found


def missing_pages(session: Session, sheet: Sheet) -> list[int]:
    """The pages of a sheet printed to be read that have not been read yet."""
    read = set(session.scalars(sa.select(SheetScan.page).where(SheetScan.sheet_id == sheet.id)))
    return [p.number for p in sheet_pages(keying.sheet_form(session, sheet)) if p.number not in read]


def not_waiting_message(session: Session, sheet: Sheet) -> str:
    """Why a sheet cannot be confirmed: pages still to read (named), or it is keyed already."""
    if not sheet.keyings and sheet.state in (SheetState.ISSUED, SheetState.RETURNED):
        missing = ", ".join(map(str, missing_pages(session, sheet)))
        return f"Phiếu {sheet.serial} còn thiếu trang {missing}: hãy đọc các trang đó trước khi xác nhận."
    return f"Phiếu {sheet.serial} đã được nhập (trạng thái “{sheets.STATE_LABELS[sheet.state]}”)."


def waiting(session: Session, sheet: Sheet) -> Pending | None:
    """The reading of a sheet whose every page is read and which is not keyed yet, else None."""
    if sheet.keyings or sheet.state not in (SheetState.ISSUED, SheetState.RETURNED):
        return None
    scans = {s.page: s for s in session.scalars(sa.select(SheetScan).where(SheetScan.sheet_id == sheet.id))}
    form = keying.sheet_form(session, sheet)
    pages = sheet_pages(form)
    if not scans or set(scans) != {p.number for p in pages}:
        return None
    decided, review, reasons = {}, [], {}
    for scan in scans.values():
        items = scan.reading["items"]
        for code in rows.answers(items):
            if items[code]["value"] == reader.REVIEW:
                review.append(code)
                reasons[code] = items[code]["reason"]
            else:
                decided[code] = items[code]["value"]
        for code, ink in scan.reading["texts"].items():
            if ink > reader.INK_MIN:
                review.append(code)
                reasons[code] = "chữ viết tay: gõ lại đúng như trên phiếu"
            else:
                decided[code] = None
    order = _positions(pages)
    return Pending(sheet, form, pages, scans, decided, sorted(review, key=order.__getitem__), reasons)


def awaiting_confirmation(session: Session, rnd: Round) -> list[Pending]:
    """The round's sheets read in full and not yet keyed, for the clerks' work list."""
    return [p for p in (waiting(session, s) for s in _read_not_keyed(session, rnd)) if p is not None]


def incomplete(session: Session, rnd: Round) -> list[tuple[Sheet, list[int]]]:
    """The round's sheets of which some pages are read and others not yet, with the pages missing."""
    found = ((sheet, missing_pages(session, sheet)) for sheet in _read_not_keyed(session, rnd))
    return [(sheet, missing) for sheet, missing in found if missing]


def _read_not_keyed(session: Session, rnd: Round) -> list[Sheet]:
    read = sa.select(SheetScan.sheet_id)
    return list(session.scalars(sa.select(Sheet).join(QuotaCell).where(
        QuotaCell.round_id == rnd.id, Sheet.id.in_(read), ~Sheet.keyings.any(),
        Sheet.state.in_([SheetState.ISSUED, SheetState.RETURNED])).order_by(Sheet.serial)))


def crops(pending: Pending, secret: str) -> dict[str, bytes]:
    """Item → JPEG of its band of the page, for every item the clerk confirms (on an HĐ-CT sheet the band
    starts at the agency's name)."""
    images: dict[int, np.ndarray] = {}
    bands = {}
    for page in pending.pages:
        for code, bubbles in page.items().items():
            top = page.heads[code] if code in page.heads else bubbles[0].y - 7.5
            bands[code] = (page.number, top, bubbles[0].y + 6)
        for box in page.boxes:
            bands[box.item] = (page.number, box.y - 1, box.y + box.h + 1)
    found = {}
    for code in pending.review:
        number, top, bottom = bands[code]
        if number not in images:
            data = _sealer(secret).open_bytes(pending.scans[number].image)
            if data is None:
                raise SheetError("Ảnh của phiếu không còn hoặc không mở được: hãy nhập phiếu bằng tay.", 409)
            images[number] = reader.images_from_file(data)[0]
        found[code] = reader.encode(images[number][max(0, round(top * reader.PX_PER_MM)):
                                                   round(bottom * reader.PX_PER_MM)])
    return found


def confirm(session: Session, sheet: Sheet, clerk: StaffUser, data, *, rng: random.Random | None = None
            ) -> Keying:
    """Key a read sheet: the machine's decisions, and for each item it was unsure of the value the clerk
    typed (``data[slot(key)]``: an option code, ``0``/``K``, ``-`` for blank, or the free text).

    :raises keying.KeyingError: an uncertain item left without a value, or a value off the scale.
    """
    pending = waiting(session, sheet)
    if pending is None:
        raise SheetError(not_waiting_message(session, sheet), 409)
    text_items = {i.code for i in pending.form.questionnaire.text_items}
    # A blank rated item is keyed "-"; an empty writing box is simply no text.
    slots = {slot(code): "-" if value is None else value
             for code, value in pending.decided.items() if code not in text_items}
    for code in pending.review:
        slots[slot(code)] = data.get(slot(code)) or ""
    audit = {}
    for scan in pending.scans.values():
        for code, item in scan.reading["items"].items():
            audit[slot(code)] = {"machine": item["value"], "scores": item["scores"], "margin": item["margin"]}
            if code in pending.review:
                audit[slot(code)]["confirmed"] = (slots[slot(code)] or "").strip().upper()
        for code, ink in scan.reading["texts"].items():
            audit[slot(code)] = {"ink": ink, "typed": code in pending.review}
    return keying.key_sheet(session, sheet, clerk, slots, keyer=KEYER_READER, reading=audit, rng=rng)
