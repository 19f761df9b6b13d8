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

    def items(self) -> dict[str, list[Bubble]]:
        """Item code → its bubbles, in print order."""
        found: dict[str, list[Bubble]] = {}
        for bubble in self.bubbles:
            found.setdefault(bubble.item, []).append(bubble)
        return found


def readable(questionnaire) -> bool:
    """Whether a form is printed to be read: one rated agency per sheet (the HĐ-CT grid of agencies by items
    is written in and keyed)."""
    return questionnaire.rates != "matrix"


def sheet_layout(questionnaire, font: str) -> list[PageLayout]:
    """The pages of a readable sheet of ``questionnaire`` (text measured in ``font``, a registered font)."""
    pages = [PageLayout(1)]
    y = BODY_TOP

    def room(height: float) -> None:
        nonlocal y
        if y + height > BODY_BOTTOM:
            if len(pages) == MAX_PAGES:
                raise ValueError(f"{questionnaire.code}: more than {MAX_PAGES} pages")
            pages.append(PageLayout(len(pages) + 1))
            y = BODY_TOP

    def paragraph(text: str, width: float, *, bold: bool = False, size: float = FONT_SIZE, gap: float = 1.5) -> None:
        nonlocal y
        leading = size * 1.3 * 25.4 / 72
        lines = simpleSplit(text, font + ("-Bold" if bold else ""), size, width * 72 / 25.4)
        room(len(lines) * leading + gap)
        for line in lines:
            y += leading
            pages[-1].lines.append(Line(LEFT, y - 0.8, line, bold, size))
        y += gap

    full = RIGHT - LEFT
    paragraph(questionnaire.instructions, full, size=8.5)
    for code in dict.fromkeys(i.scale for i in questionnaire.scale_items):
        scale = questionnaire.scales[code]
        paragraph("Thang trả lời – " + "; ".join(f"{o.code} = {o.label}" for o in scale.options), full, size=8.5)
    widest = max((len(questionnaire.scales[i.scale].options) for i in questionnaire.scale_items), default=0)
    text_width = full - widest * BUBBLE_PITCH - 2.0
    number = 0
    for section in questionnaire.sections:
        if section.title:
            room(LEADING + 2 + ROW_MIN)
            paragraph(section.title, full, bold=True, gap=1.0)
        for item in section.items:
            number += 1
            if item.kind == "text":
                lines = simpleSplit(f"{number}. {item.text}", font, FONT_SIZE, full * 72 / 25.4)
                room(len(lines) * LEADING + TEXT_BOX_H + 4)
                paragraph(f"{number}. {item.text}", full, gap=1.0)
                pages[-1].boxes.append(TextBox(item.code, LEFT, y, full, TEXT_BOX_H))
                y += TEXT_BOX_H + 3
                continue
            lines = simpleSplit(f"{number}. {item.text}", font, FONT_SIZE, text_width * 72 / 25.4)
            height = max(len(lines) * LEADING + 1.5, ROW_MIN)
            room(height)
            for i, line in enumerate(lines):
                pages[-1].lines.append(Line(LEFT, y + (i + 1) * LEADING - 0.8, line))
            codes = questionnaire.scales[item.scale].codes
            for i, code in enumerate(codes):
                x = RIGHT - BUBBLE_R - 1.0 - (len(codes) - 1 - i) * BUBBLE_PITCH
                pages[-1].bubbles.append(Bubble(item.code, code, x, y + BUBBLE_R + 1.2))
            y += height
            pages[-1].rules.append((LEFT, LEFT + text_width, y - 0.5))
    return pages
