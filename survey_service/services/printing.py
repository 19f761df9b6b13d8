"""Printed sheets: one A4 PDF for a set of sheets, laid out from the questionnaire files.

Every page carries the header (province, round, form, agency rated), the serial with its check character
and a QR code, so a page separated from its sheet still identifies itself. Text is NFC-normalised and set in
the embedded DejaVu Sans (see ``services.pdf``).

Sheets are printed to be read by machine (:mod:`survey_service.omr.layout`): corner markers, bubbles and a
QR holding only the serial, the page and a signature; HĐ-CT gets one block of bubbles per agency over as
many pages as it takes. Only a matrix form whose agencies would need more pages than the markers can name
is printed as a grid the respondent writes codes in, to be keyed; its QR holds the sheet's key-in URL.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy.orm import Session

from survey_service.models import Sheet
from survey_service.omr import layout as omr
from survey_service.omr import reader
from survey_service.omr.layout import short_wording
from survey_service.services import sheets as ledger
from survey_service.services.keying import SheetForm, sheet_form
from survey_service.services.pdf import FONT, FONT_BOLD, nfc, qr_image, register_fonts

PAGE_W, PAGE_H = A4
MARGIN = 14 * mm
QR_SIZE = 30 * mm
HEADER_H = 36 * mm
FOOTER_H = 10 * mm
BOX = 4.2 * mm


#: The QR of a preview sheet carries this text, not a key-in address: it cannot be keyed.
PREVIEW_QR = "MẪU XEM TRƯỚC – không dùng để thu hoặc nhập phiếu"
PREVIEW_MARK = "MẪU XEM TRƯỚC – KHÔNG PHÁT"
SIMULATED_MARK = "DỮ LIỆU MÔ PHỎNG"


def sheets_pdf(session: Session, sheets: list[Sheet], *, base_url: str, signing_keys: list[str],
               preview: bool = False) -> bytes:
    """One PDF with every sheet, in the order given.

    The body of a form's pages (instructions, items, the HĐ-CT grid) is the same on every sheet of that
    form, so it is drawn once as a PDF form object and reused; only the header differs per sheet.
    With ``preview`` the sheets are samples that are not in the ledger: their QR holds no key-in address
    and every page says they are not to be handed out. Sheets of a simulated round say so on every page.
    """
    register_fonts()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, pageCompression=1, invariant=1, initialFontName=FONT)
    canvas.setTitle(nfc("Phiếu khảo sát giấy"))
    cache: dict = {}
    bodies: dict[tuple, list[str]] = {}
    readable: set[tuple] = set()
    for sheet in sheets:
        form = sheet_form(session, sheet, cache)
        key = (form.round.id, form.questionnaire_version_id)
        mark = PREVIEW_MARK if preview else SIMULATED_MARK if form.round.simulated else None
        if key not in bodies and omr.readable(form.questionnaire, FONT, form.rows):
            bodies[key] = _draw_readable_bodies(canvas, form, len(bodies))
            readable.add(key)
        if key in readable:
            for number, body in enumerate(bodies[key], 1):
                payload = PREVIEW_QR if preview else ledger.page_payload(signing_keys, sheet.serial, number)
                _draw_readable_header(canvas, form, qr_image(payload), number, len(bodies[key]), mark)
                canvas.doForm(body)
                canvas.showPage()
            continue
        if key not in bodies:
            bodies[key] = _draw_bodies(canvas, form, len(bodies))
        qr = qr_image(PREVIEW_QR if preview else ledger.sheet_url(base_url, signing_keys, sheet.id))
        for number, body in enumerate(bodies[key], 1):
            _draw_header(canvas, form, qr, number, len(bodies[key]))
            canvas.doForm(body)
            if mark:
                _draw_mark(canvas, mark)
            canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _draw_bodies(canvas: Canvas, form: SheetForm, index: int) -> list[str]:
    """Draw each body page of a form into a named form object; return the names."""
    pages = _paginate(_matrix_blocks(form) if form.matrix else _item_blocks(form))
    names = []
    for number, page in enumerate(pages, 1):
        name = f"body{index}p{number}"
        canvas.beginForm(name)
        y = PAGE_H - MARGIN - HEADER_H
        for block in page:
            block.draw(canvas, y)
            y -= block.height
        canvas.endForm()
        names.append(name)
    return names


# --- sheets printed to be read ------------------------------------------------------------------------
def _at(x: float, y: float) -> tuple[float, float]:
    """Page millimetres from the top-left corner (the layout's) to PDF points from the bottom-left."""
    return x * mm, PAGE_H - y * mm


def _draw_readable_bodies(canvas: Canvas, form: SheetForm, index: int) -> list[str]:
    """The body of each page (markers, questions, bubbles, writing boxes) as a named form object."""
    names = []
    for page in omr.sheet_layout(form.questionnaire, FONT, form.rows):
        name = f"read{index}p{page.number}"
        canvas.beginForm(name)
        for corner in range(omr.CORNERS):
            x, y = _at(*omr.marker_origin(corner))
            canvas.drawImage(marker_image(omr.marker_id(page.number, corner)), x, y - omr.MARKER * mm,
                             omr.MARKER * mm, omr.MARKER * mm)
        for line in page.lines:
            canvas.setFont(FONT_BOLD if line.bold else FONT, line.size)
            canvas.drawString(*_at(line.x, line.y), line.text)
        canvas.setLineWidth(0.2)
        for x1, x2, y in page.rules:
            canvas.line(*_at(x1, y), *_at(x2, y))
        canvas.setLineWidth(0.6)
        for box in page.boxes:
            x, y = _at(box.x, box.y)
            canvas.rect(x, y - box.h * mm, box.w * mm, box.h * mm)
        canvas.setFont(FONT, 6.5)
        for bubble in page.bubbles:
            x, y = _at(bubble.x, bubble.y)
            canvas.setStrokeGray(0)
            canvas.setLineWidth(0.5)
            canvas.circle(x, y, omr.BUBBLE_R * mm)
            if bubble.code != omr.SKIP_CODE:
                canvas.setFillGray(0.62)
                canvas.drawCentredString(x, y - 2.3, bubble.code)
                canvas.setFillGray(0)
        canvas.endForm()
        names.append(name)
    return names


def marker_image(marker: int) -> ImageReader:
    """An ArUco marker (4×4 dictionary) one pixel per cell, scaled up sharp by the PDF as the QR is."""
    return ImageReader(Image.fromarray(reader.marker_pixels(marker)))


def _draw_readable_header(canvas: Canvas, form: SheetForm, qr: ImageReader, page: int, pages: int,
                          mark: str | None) -> None:
    rnd, q, sheet = form.round, form.questionnaire, form.sheet
    x, y = _at(omr.QR_X, omr.QR_Y)
    canvas.drawImage(qr, x, y - omr.QR_SIZE * mm, omr.QR_SIZE * mm, omr.QR_SIZE * mm)
    left = omr.LEFT + omr.MARKER + 3
    width = (omr.QR_X - 3 - left) * mm
    heading = nfc(f"{rnd.province_title.upper()} – {rnd.organiser} – {rnd.name}")
    canvas.setFont(FONT, 7.5)
    top = omr.MARKER_EDGE + 3
    for i, line in enumerate(simpleSplit(heading, FONT, 7.5, width)[:2]):
        canvas.drawString(*_at(left, top + i * 3.3), line)
    canvas.setFont(FONT_BOLD, 9)
    y = top + 8.5
    for line in simpleSplit(nfc(f"{q.code}: {q.title}"), FONT_BOLD, 9, width)[:4]:
        canvas.drawString(*_at(left, y), line)
        y += 4
    canvas.setFont(FONT, 8.5)
    rated = ("Cơ quan được đánh giá: mỗi cơ quan một khung dưới đây" if form.matrix
             else f"Cơ quan được đánh giá: {form.agency.name if form.agency else ''}")
    for line in simpleSplit(nfc(rated), FONT, 8.5, width)[:2]:
        canvas.drawString(*_at(left, y + 0.5), line)
        y += 3.8
    canvas.setFont(FONT_BOLD, 11)
    canvas.drawCentredString(*_at(omr.QR_X + omr.QR_SIZE / 2, omr.QR_Y + omr.QR_SIZE + 4.5), sheet.serial)
    canvas.setFont(FONT, 8)
    canvas.drawCentredString(*_at(omr.QR_X + omr.QR_SIZE / 2, omr.QR_Y + omr.QR_SIZE + 8.5),
                             f"Trang {page}/{pages}")
    canvas.setFont(FONT_BOLD, 8.5)
    for i, line in enumerate(simpleSplit(nfc(omr.INSTRUCTION), FONT_BOLD, 8.5, (omr.QR_X - 3 - omr.LEFT) * mm)[:2]):
        canvas.drawString(*_at(omr.LEFT, omr.QR_Y + omr.QR_SIZE + 1 + i * 3.8), line)
    canvas.setFont(FONT, 7.5)
    foot = omr.PAGE_H - omr.MARKER_EDGE - 4
    canvas.drawString(*_at(omr.LEFT + omr.MARKER + 3, foot), nfc(
        f"Số phiếu {sheet.serial} – {q.code} – trang {page}/{pages} – phiếu không ghi tên người trả lời."))
    if mark:
        canvas.setFont(FONT_BOLD, 8)
        canvas.drawString(*_at(omr.LEFT + omr.MARKER + 3, foot - 3.5), nfc(mark))


# --- layout --------------------------------------------------------------------------------------------
@dataclass
class Block:
    """A piece of the page body: its height and how to draw it with its top at ``y``.

    ``keep`` is the room it needs at the bottom of a page (a group title wants its first row with it);
    ``repeat`` is drawn first when the block has to start a new page (the matrix column header).
    """

    height: float
    draw: Callable[[Canvas, float], None]
    keep: float = 0.0
    repeat: "Block | None" = None


def _paginate(blocks: list[Block]) -> list[list[Block]]:
    room = PAGE_H - 2 * MARGIN - HEADER_H - FOOTER_H
    pages: list[list[Block]] = [[]]
    used = 0.0
    for block in blocks:
        if used + max(block.height, block.keep) > room + 0.01 and pages[-1]:
            pages.append([])
            used = 0.0
            if block.repeat is not None:
                pages[-1].append(block.repeat)
                used += block.repeat.height
        pages[-1].append(block)
        used += block.height
    return pages


def _draw_header(canvas: Canvas, form: SheetForm, qr: ImageReader, page: int, pages: int) -> None:
    rnd, q, sheet = form.round, form.questionnaire, form.sheet
    top = PAGE_H - MARGIN
    canvas.drawImage(qr, PAGE_W - MARGIN - QR_SIZE, top - QR_SIZE, QR_SIZE, QR_SIZE)
    width = PAGE_W - 2 * MARGIN - QR_SIZE - 3 * mm
    heading = nfc(f"{rnd.province_title.upper()} – {rnd.organiser} – {rnd.name}")
    size = max(6.0, min(8.0, 8 * width / stringWidth(heading, FONT, 8)))
    canvas.setFont(FONT, size)
    canvas.drawString(MARGIN, top - 3 * mm, simpleSplit(heading, FONT, size, width)[0])
    canvas.setFont(FONT_BOLD, 9.5)
    y = top - 7.5 * mm
    for line in simpleSplit(nfc(f"{q.code}: {q.title}"), FONT_BOLD, 9.5, width)[:3]:
        canvas.drawString(MARGIN, y, line)
        y -= 4.2 * mm
    canvas.setFont(FONT, 8.5)
    rated = ("Cơ quan được đánh giá: mọi cơ quan trong bảng dưới đây" if form.matrix
             else f"Cơ quan được đánh giá: {form.agency.name if form.agency else ''}")
    canvas.drawString(MARGIN, y - 0.5 * mm, simpleSplit(nfc(rated), FONT, 8.5, width)[0])
    canvas.setFont(FONT_BOLD, 12)
    canvas.drawString(MARGIN, top - HEADER_H + 4 * mm, f"Số phiếu: {sheet.serial}")
    canvas.setFont(FONT, 8.5)
    canvas.drawString(MARGIN + 80 * mm, top - HEADER_H + 4 * mm, f"Trang {page}/{pages}")
    canvas.setLineWidth(0.6)
    canvas.line(MARGIN, top - HEADER_H + 2 * mm, PAGE_W - MARGIN, top - HEADER_H + 2 * mm)
    canvas.setFont(FONT, 7.5)
    canvas.drawString(MARGIN, MARGIN, nfc(f"Số phiếu {sheet.serial} – {q.code} – trang {page}/{pages} – phiếu "
                                          "không ghi tên người trả lời. Xin cảm ơn Anh/Chị!"))


def _draw_mark(canvas: Canvas, text: str) -> None:
    """Large pale words across the page, over the body, still leaving it readable; and once plainly at
    the foot of the page."""
    canvas.saveState()
    canvas.setFont(FONT_BOLD, 8)
    canvas.drawRightString(PAGE_W - MARGIN, MARGIN + 4 * mm, nfc(text))
    canvas.setFillColorRGB(0.72, 0.53, 0.04, alpha=0.22)
    canvas.setFont(FONT_BOLD, 28)
    canvas.translate(PAGE_W / 2, PAGE_H / 2)
    canvas.rotate(35)
    canvas.drawCentredString(0, 0, nfc(text))
    canvas.restoreState()


def _paragraph(text: str, font: str = FONT, size: float = 9, gap: float = 1.5 * mm,
               width: float = PAGE_W - 2 * MARGIN) -> list[Block]:
    lines = simpleSplit(nfc(text), font, size, width)
    leading = size * 1.3

    def draw(canvas: Canvas, y: float, lines=lines) -> None:
        canvas.setFont(font, size)
        for i, line in enumerate(lines):
            canvas.drawString(MARGIN, y - size - i * leading, line)

    return [Block(len(lines) * leading + gap, draw)] if lines else []


def _legend(form: SheetForm, scale_codes: list[str], size: float = 8.5) -> list[Block]:
    blocks = []
    for code in scale_codes:
        scale = form.questionnaire.scales[code]
        text = "Thang trả lời – " + "; ".join(f"{o.code} = {o.label}" for o in scale.options)
        blocks += _paragraph(text, size=size)
    return blocks


def _stack(blocks: list[Block]) -> Block:
    """Several blocks drawn one under the other, as one block."""
    def draw(canvas: Canvas, y: float) -> None:
        for block in blocks:
            block.draw(canvas, y)
            y -= block.height
    return Block(sum(b.height for b in blocks), draw)


def _used_scales(form: SheetForm) -> list[str]:
    return list(dict.fromkeys(i.scale for i in form.questionnaire.scale_items))


def _item_blocks(form: SheetForm) -> list[Block]:
    q = form.questionnaire
    blocks = _paragraph(q.instructions, gap=2 * mm) + _legend(form, _used_scales(form))
    text_width = PAGE_W - 2 * MARGIN - 7 * BOX * 1.6
    number = 0
    for section in q.sections:
        if section.title:
            blocks += _paragraph(section.title, FONT_BOLD, 9.5, gap=1 * mm)
        for item in section.items:
            number += 1
            if item.kind == "text":
                blocks.append(_text_item(f"{number}. {item.text}"))
                continue
            blocks.append(_item_row(f"{number}. {item.text}", q.scales[item.scale].codes, text_width))
    return blocks


def _item_row(text: str, codes: tuple[str, ...], text_width: float) -> Block:
    lines = simpleSplit(nfc(text), FONT, 9, text_width)
    leading = 9 * 1.3
    height = max(len(lines) * leading, BOX + 4 * mm) + 2.5 * mm

    def draw(canvas: Canvas, y: float) -> None:
        canvas.setFont(FONT, 9)
        for i, line in enumerate(lines):
            canvas.drawString(MARGIN, y - 9 - i * leading, line)
        x = PAGE_W - MARGIN - len(codes) * BOX * 1.6
        canvas.setLineWidth(0.7)
        canvas.setFont(FONT, 7)
        for code in codes:
            canvas.drawCentredString(x + BOX / 2, y - 2.6 * mm, code)
            canvas.rect(x, y - 3.4 * mm - BOX, BOX, BOX)
            x += BOX * 1.6
        canvas.setLineWidth(0.2)
        canvas.line(MARGIN, y - height + 1 * mm, PAGE_W - MARGIN, y - height + 1 * mm)

    return Block(height, draw)


def _text_item(text: str) -> Block:
    """A free-text question with three dotted lines to write on, kept on one page."""
    question = _paragraph(text, size=9, gap=0.5 * mm)[0]

    def draw(canvas: Canvas, y: float) -> None:
        question.draw(canvas, y)
        canvas.setLineWidth(0.3)
        canvas.setDash(1, 2)
        for i in range(1, 4):
            line_y = y - question.height - i * 7 * mm + 1 * mm
            canvas.line(MARGIN, line_y, PAGE_W - MARGIN, line_y)
        canvas.setDash()

    return Block(question.height + 3 * 7 * mm, draw)


def _matrix_blocks(form: SheetForm) -> list[Block]:
    """HĐ-CT: the items listed in full, then a grid of agencies (rows) by items (columns); the respondent
    writes the option code in each cell. Every page the grid continues on starts again with the column
    legend (item code and short wording), the answer scales and the column header, so no page needs page 1."""
    q = form.questionnaire
    blocks = _paragraph(q.instructions, gap=2 * mm) + _legend(form, _used_scales(form))
    items = q.scale_items
    for n, item in enumerate(items, 1):
        blocks += _paragraph(f"Cột {n} ({item.code}): {item.text}", size=8.5, gap=0.3 * mm)
    blocks.append(Block(2 * mm, lambda c, y: None))
    name_w = 62 * mm
    col_w = min(14 * mm, (PAGE_W - 2 * MARGIN - name_w) / max(1, len(items)))
    row_h = 6.2 * mm
    header = _grid_header(items, name_w, col_w, row_h)
    blocks.append(header)
    continued = _stack(
        _paragraph("Các cột của bảng (nội dung đầy đủ ở trang 1):", FONT_BOLD, 7.5, gap=0.3 * mm)
        + [b for n, item in enumerate(items, 1)
           for b in _paragraph(f"Cột {n} ({item.code}): {short_wording(nfc(item.text))}", size=7.5, gap=0.1 * mm)]
        + _legend(form, _used_scales(form), size=7.5) + [Block(1 * mm, lambda c, y: None), header])
    group = None
    for row in form.rows:
        if row.group != group:
            group = row.group
            block = _grid_group(group, name_w, col_w, len(items), row_h)
            block.keep, block.repeat = 2 * row_h, continued
            blocks.append(block)
        block = _grid_row(row.label, name_w, col_w, len(items), row_h)
        block.repeat = continued
        blocks.append(block)
    blocks.append(Block(3 * mm, lambda c, y: None))
    blocks += [_text_item(item.text) for item in q.text_items]
    return blocks


def _grid_header(items, name_w: float, col_w: float, row_h: float) -> Block:
    def draw(canvas: Canvas, y: float) -> None:
        canvas.setLineWidth(0.6)
        canvas.setFont(FONT_BOLD, 8)
        canvas.rect(MARGIN, y - row_h, name_w, row_h)
        canvas.drawString(MARGIN + 1.5 * mm, y - row_h + 2 * mm, nfc("Cơ quan được đánh giá"))
        for n in range(len(items)):
            x = MARGIN + name_w + n * col_w
            canvas.rect(x, y - row_h, col_w, row_h)
            canvas.drawCentredString(x + col_w / 2, y - row_h + 2 * mm, str(n + 1))
    return Block(row_h, draw)


def _grid_group(title: str, name_w: float, col_w: float, columns: int, row_h: float) -> Block:
    def draw(canvas: Canvas, y: float) -> None:
        canvas.setFillGray(0.9)
        canvas.rect(MARGIN, y - row_h, name_w + columns * col_w, row_h, fill=1, stroke=1)
        canvas.setFillGray(0)
        canvas.setFont(FONT_BOLD, 8)
        canvas.drawString(MARGIN + 1.5 * mm, y - row_h + 2 * mm, nfc(title))
    return Block(row_h, draw)


def _grid_row(label: str, name_w: float, col_w: float, columns: int, row_h: float) -> Block:
    lines = simpleSplit(nfc(label), FONT, 7.5, name_w - 3 * mm)[:2]

    def draw(canvas: Canvas, y: float) -> None:
        canvas.setLineWidth(0.5)
        canvas.rect(MARGIN, y - row_h, name_w, row_h)
        canvas.setFont(FONT, 7.5 if len(lines) == 1 else 6.3)
        if len(lines) == 1:
            canvas.drawString(MARGIN + 1.5 * mm, y - row_h + 2 * mm, lines[0])
        else:
            canvas.drawString(MARGIN + 1.5 * mm, y - 2.6 * mm, lines[0])
            canvas.drawString(MARGIN + 1.5 * mm, y - row_h + 1 * mm, lines[1])
        for n in range(columns):
            canvas.rect(MARGIN + name_w + n * col_w, y - row_h, col_w, row_h)
    return Block(row_h, draw)
