"""Where everything sits on a sheet printed to be read, in millimetres from the page's top-left corner.

The printer draws exactly this and the reader measures exactly this, so the two cannot drift apart. The
design follows what was found to read reliably from phone photos: four ArUco markers (4×4, 14 mm) in the
corners whose ids name the page, a 40 mm QR code holding only ``serial/page/signature``, the serial in
text beside it, bubbles of 2.6 mm radius with thin rings and the option code in pale grey inside, 12 mm
apart with nothing printed between them, and a line showing how to fill them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth

PAGE_W, PAGE_H = 210.0, 297.0
#: Markers: side and distance from the page edge (most printers leave 4–5 mm unprinted).
MARKER, MARKER_EDGE = 14.0, 8.0
#: ArUco ids: ``4 × (page - 1) + corner`` (corners: top-left, top-right, bottom-right, bottom-left).
CORNERS = 4
MAX_PAGES = 12
QR_SIZE = 40.0
BUBBLE_R = 2.6
BUBBLE_PITCH = 12.0
ROW_MIN = 9.5
TEXT_BOX_H = 24.0
LEFT = MARKER_EDGE
RIGHT = PAGE_W - MARKER_EDGE
BODY_TOP = MARKER_EDGE + QR_SIZE + 11.0
BODY_BOTTOM = PAGE_H - MARKER_EDGE - MARKER - 4.0
FONT_SIZE = 9.0
LEADING = FONT_SIZE * 1.3 * 25.4 / 72
INSTRUCTION = ("Cách đánh dấu trên phiếu này: tô kín ● một ô cho mỗi câu (bút bi hoặc bút chì đậm), "
               "thay cho dấu ✓ hay ✗. Muốn sửa: gạch chéo ô đã tô rồi tô ô khác.")


def marker_origin(corner: int) -> tuple[float, float]:
    """Top-left corner of the marker in ``corner`` (0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left)."""
    far_x, far_y = PAGE_W - MARKER_EDGE - MARKER, PAGE_H - MARKER_EDGE - MARKER
    return [(MARKER_EDGE, MARKER_EDGE), (far_x, MARKER_EDGE), (far_x, far_y), (MARKER_EDGE, far_y)][corner]


def marker_id(page: int, corner: int) -> int:
    return CORNERS * (page - 1) + corner


QR_X = PAGE_W - MARKER_EDGE - MARKER - 3.0 - QR_SIZE
QR_Y = MARKER_EDGE


@dataclass(frozen=True)
class Bubble:
    item: str
    code: str
    x: float
    y: float


@dataclass(frozen=True)
class TextBox:
    """The box a free-text answer is written in."""

    item: str
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Line:
    """A line of text to print: ``y`` is its baseline."""

    x: float
    y: float
    text: str
    bold: bool = False
    size: float = FONT_SIZE


@dataclass
class PageLayout:
    number: int
    lines: list[Line] = field(default_factory=list)
    bubbles: list[Bubble] = field(default_factory=list)
    boxes: list[TextBox] = field(default_factory=list)
    #: Thin lines under the question text: ``(x1, x2, y)``; they stop before the bubbles.
    rules: list[tuple[float, float, float]] = field(default_factory=list)
    #: Matrix forms: item key → top of its agency's block, so a crop of the item shows the agency's name.
    heads: dict[str, float] = field(default_factory=dict)

    def items(self) -> dict[str, list[Bubble]]:
        """Item code → its bubbles, in print order."""
        found: dict[str, list[Bubble]] = {}
        for bubble in self.bubbles:
            found.setdefault(bubble.item, []).append(bubble)
        return found


def readable(questionnaire, font: str, rows=()) -> bool:
    """Whether a form is printed to be read: always for one rated agency per sheet; a matrix form (HĐ-CT,
    every agency on one sheet) when its agencies fit in :data:`MAX_PAGES` pages (the markers name no more),
    else its grid is written in and keyed."""
    if questionnaire.rates != "matrix":
        return True
    try:
        sheet_layout(questionnaire, font, rows)
    except ValueError:
        return False
    return True


class _Flow:
    """Pages filled from the top down: :meth:`room` starts a new page when a piece does not fit."""

    def __init__(self, font: str, code: str, on_new_page=None):
        self.font, self.code, self.on_new_page = font, code, on_new_page
        self.pages = [PageLayout(1)]
        self.y = BODY_TOP

    def room(self, height: float) -> None:
        if self.y + height > BODY_BOTTOM:
            if len(self.pages) == MAX_PAGES:
                raise ValueError(f"{self.code}: more than {MAX_PAGES} pages")
            self.pages.append(PageLayout(len(self.pages) + 1))
            self.y = BODY_TOP
            if self.on_new_page:
                self.on_new_page()

    def paragraph(self, text: str, width: float, *, bold: bool = False, size: float = FONT_SIZE,
                  gap: float = 1.5, x: float = LEFT) -> None:
        leading = size * 1.3 * 25.4 / 72
        lines = simpleSplit(text, self.font + ("-Bold" if bold else ""), size, width * 72 / 25.4)
        self.room(len(lines) * leading + gap)
        for line in lines:
            self.y += leading
            self.pages[-1].lines.append(Line(x, self.y - 0.8, line, bold, size))
        self.y += gap

    def scales(self, questionnaire, size: float = 8.5) -> None:
        for code in dict.fromkeys(i.scale for i in questionnaire.scale_items):
            scale = questionnaire.scales[code]
            self.paragraph("Thang trả lời – " + "; ".join(f"{o.code} = {o.label}" for o in scale.options),
                           RIGHT - LEFT, size=size)

    def text_box(self, number_text: str, item) -> None:
        full = RIGHT - LEFT
        lines = simpleSplit(number_text, self.font, FONT_SIZE, full * 72 / 25.4)
        self.room(len(lines) * LEADING + TEXT_BOX_H + 4)
        self.paragraph(number_text, full, gap=1.0)
        self.pages[-1].boxes.append(TextBox(item.code, LEFT, self.y, full, TEXT_BOX_H))
        self.y += TEXT_BOX_H + 3


def sheet_layout(questionnaire, font: str, rows=()) -> list[PageLayout]:
    """The pages of a readable sheet of ``questionnaire`` (text measured in ``font``, a registered font);
    a matrix form lays out ``rows`` (the agencies it rates: ``key``, ``label``, ``group``).

    :raises ValueError: when the sheet needs more than :data:`MAX_PAGES` pages.
    """
    if questionnaire.rates == "matrix":
        return _matrix_layout(questionnaire, font, rows)
    flow = _Flow(font, questionnaire.code)
    full = RIGHT - LEFT
    flow.paragraph(questionnaire.instructions, full, size=8.5)
    flow.scales(questionnaire)
    widest = max((len(questionnaire.scales[i.scale].options) for i in questionnaire.scale_items), default=0)
    text_width = full - widest * BUBBLE_PITCH - 2.0
    number = 0
    for section in questionnaire.sections:
        if section.title:
            flow.room(LEADING + 2 + ROW_MIN)
            flow.paragraph(section.title, full, bold=True, gap=1.0)
        for item in section.items:
            number += 1
            if item.kind == "text":
                flow.text_box(f"{number}. {item.text}", item)
                continue
            lines = simpleSplit(f"{number}. {item.text}", font, FONT_SIZE, text_width * 72 / 25.4)
            height = max(len(lines) * LEADING + 1.5, ROW_MIN)
            flow.room(height)
            page, y = flow.pages[-1], flow.y
            for i, line in enumerate(lines):
                page.lines.append(Line(LEFT, y + (i + 1) * LEADING - 0.8, line))
            codes = questionnaire.scales[item.scale].codes
            for i, code in enumerate(codes):
                x = RIGHT - BUBBLE_R - 1.0 - (len(codes) - 1 - i) * BUBBLE_PITCH
                page.bubbles.append(Bubble(item.code, code, x, y + BUBBLE_R + 1.2))
            flow.y += height
            page.rules.append((LEFT, LEFT + text_width, flow.y - 0.5))
    return flow.pages


# --- the matrix form (HĐ-CT): one block per rated agency ---------------------------------------------
#: The reader compares a ring's inside with the paper up to ``BUBBLE_R + 2`` mm from its centre, so nothing
#: else may be printed that close: bubbles of one agency are :data:`MATRIX_PITCH` apart on a line, lines
#: :data:`MATRIX_LINE` apart, and labels and names keep :data:`CLEAR` from every centre.
MATRIX_PITCH = 8.0
MATRIX_LINE = 8.5
CLEAR = BUBBLE_R + 2.4
#: Width of a question number printed before its bubbles.
LABEL_W = 4.0
#: The item key of an agency's "not rated" bubble (``"<row>:-"``); its only option.
SKIP, SKIP_CODE = "-", "x"
SKIP_TEXT = "Không đánh giá cơ quan này"
NAME_SIZE = 8.5
#: From a block's top: the agency name's baseline and the first line of bubbles; and the block's height.
NAME_BASELINE = 3.8
FIRST_LINE = 9.8
MATRIX_INSTRUCTION = ("Trên phiếu này mỗi khung là một cơ quan, địa phương; các câu được đánh số 1, 2, 3… như "
                      "dưới đây. Thay cho việc ghi số, Anh/Chị tô kín ● một ô cho mỗi câu (K = không biết). "
                      "Cơ quan nào Anh/Chị không đánh giá: tô ô “" + SKIP_TEXT + "” và để trống các câu của "
                      "cơ quan đó.")


def matrix_key(row: str, item: str) -> str:
    """The key of one agency's answer to one item: the keying screen's slot name ``"<row>:<item>"``."""
    return f"{row}:{item}"


def short_wording(text: str, limit: int = 90) -> str:
    """A question without its shared opening, cut at a word to ``limit`` characters: a column legend."""
    for lead in LEAD_INS:
        if text.startswith(lead):
            text = text[len(lead):]
            break
    text = text.rstrip("?").strip()
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0].rstrip(",;") + "…"
    return text[:1].upper() + text[1:]


#: Openings that every question shares; the short wording starts after them.
LEAD_INS = ("Anh/Chị đánh giá như thế nào về ", "Theo Anh/Chị, ", "Nhìn chung, ", "Anh/Chị ")


def _group_width(options: int) -> float:
    """A question's number and its bubbles on a line, from the number's left edge to the last bubble's
    clear zone."""
    return LABEL_W + CLEAR + (options - 1) * MATRIX_PITCH + CLEAR


def _matrix_lines(questionnaire, font: str) -> list[list[tuple[int, str, tuple[str, ...]]]]:
    """The questions (number, code, option codes) on each line of an agency's block, filled left to right,
    the "not rated" bubble last."""
    groups = [(n, item.code, questionnaire.scales[item.scale].codes)
              for n, item in enumerate(questionnaire.scale_items, 1)]
    groups.append((0, SKIP, (SKIP_CODE,)))
    lines: list[list] = [[]]
    used = 0.0
    for group in groups:
        width = _group_width(len(group[2])) + (_skip_label_w(font) - LABEL_W if group[1] == SKIP else 0)
        if used + width > RIGHT - LEFT and lines[-1]:
            lines.append([])
            used = 0.0
        lines[-1].append(group)
        used += width
    return lines


def _skip_label_w(font: str) -> float:
    return stringWidth(SKIP_TEXT, font, 7.5) * 25.4 / 72 + 1.0


def _matrix_layout(questionnaire, font: str, rows) -> list[PageLayout]:
    """HĐ-CT printed to be read: the instructions and every question in full on page 1, then one block per
    agency (its name, then its questions' bubbles numbered as in the legend, and a "not rated" bubble),
    grouped by kind; every page repeats the questions' short wording and the scales, so a page read or
    filled on its own says what each number asks. The free-text question ends the last page."""
    full = RIGHT - LEFT
    items = questionnaire.scale_items
    half = (full - 4.0) / 2

    def legend() -> None:
        flow.paragraph("Các câu (nội dung đầy đủ ở trang 1):", full, bold=True, size=7.5, gap=0.3)
        per_column = (len(items) + 1) // 2
        top, bottom = flow.y, flow.y
        for column in range(2):
            flow.y = top
            for n, item in enumerate(items[column * per_column:(column + 1) * per_column],
                                     column * per_column + 1):
                flow.paragraph(f"{n}. {short_wording(item.text, 60)}", half, size=7, gap=0.1,
                               x=LEFT + column * (half + 4.0))
            bottom = max(bottom, flow.y)
        flow.y = bottom
        flow.scales(questionnaire, size=7)
        flow.y += 1.5

    flow = _Flow(font, questionnaire.code, on_new_page=legend)
    flow.paragraph(questionnaire.instructions, full, size=8.5)
    flow.paragraph(MATRIX_INSTRUCTION, full, bold=True, size=8.5)
    flow.scales(questionnaire)
    for n, item in enumerate(items, 1):
        flow.paragraph(f"Câu {n} ({item.code}): {item.text}", full, size=8.5, gap=0.5)
    flow.y += 1.5
    lines = _matrix_lines(questionnaire, font)
    height = FIRST_LINE + (len(lines) - 1) * MATRIX_LINE + CLEAR
    group = None
    for row in rows:
        if row.group != group:
            group = row.group
            flow.room(LEADING + 2 + height)
            flow.paragraph(group.upper(), full, bold=True, gap=1.0)
        flow.room(height)
        _agency_block(flow.pages[-1], row, lines, flow.y, font)
        flow.y += height
    for item in questionnaire.text_items:
        flow.text_box(item.text, item)
    return flow.pages


def _agency_block(page: PageLayout, row, lines, top: float, font: str) -> None:
    page.rules.append((LEFT, RIGHT, top + 0.4))
    name = simpleSplit(row.label, font + "-Bold", NAME_SIZE, (RIGHT - LEFT) * 72 / 25.4)[0]
    page.lines.append(Line(LEFT, top + NAME_BASELINE, name, True, NAME_SIZE))
    for n, groups in enumerate(lines):
        y = top + FIRST_LINE + n * MATRIX_LINE
        x = LEFT
        for number, item, codes in groups:
            if item == SKIP:
                page.lines.append(Line(x, y + 1.0, SKIP_TEXT, size=7.5))
                x += _skip_label_w(font)
            else:
                page.lines.append(Line(x, y + 1.1, str(number), True, 8.0))
                x += LABEL_W
            for i, code in enumerate(codes):
                page.bubbles.append(Bubble(matrix_key(row.key, item), code, x + CLEAR + i * MATRIX_PITCH, y))
            page.heads[matrix_key(row.key, item)] = top
            x += _group_width(len(codes)) - LABEL_W
