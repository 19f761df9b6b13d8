"""Write the default Word template of the survey report (survey_service/data/report/bao-cao-dtxhh.docx).

Laid out as Nghị định 30/2020/NĐ-CP (Phụ lục I) lays out an administrative document: A4 portrait; margins
20 mm top and bottom, 30 mm left, 15 mm right; Times New Roman, body 14 pt justified with a 10 mm first-line
indent and 6 pt after each paragraph; the header table with the issuing body on the left and the Quốc hiệu
(12 pt bold capitals) and Tiêu ngữ (13 pt bold) on the right, a drawn line under each as long as its text;
page numbers centred in the top margin from page 2; the signature block with "Nơi nhận".

A province replaces the file with its own (``survey-service report --template``); docxtpl fills the fields
named in docs/report.md. Run from the repository: python scripts/make_report_template.py
"""
from __future__ import annotations

from docx import Document
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt

from survey_service.services.report import DEFAULT_TEMPLATE as OUT
from survey_service.services.report import fixed_widths

FONT = "Times New Roman"


def _font(style, size: float, bold: bool = False) -> None:
    style.font.name = FONT
    style.font.size = Pt(size)
    style.font.bold = bold
    rpr = style.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.insert(0, fonts)
    for attr in ("w:ascii", "w:hAnsi", "w:eastAsia", "w:cs"):
        fonts.set(qn(attr), FONT)
    for attr in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):  # a theme font would win
        fonts.attrib.pop(qn(attr), None)


def _paragraph(cell_or_doc, text: str = "", *, size: float = 13, bold: bool = False, italic: bool = False,
               align=WD_ALIGN_PARAGRAPH.CENTER, after: float = 0):
    p = cell_or_doc.add_paragraph()
    p.alignment = align
    p.paragraph_format.first_line_indent = Mm(0)
    p.paragraph_format.space_after = Pt(after)
    p.paragraph_format.space_before = Pt(0)
    if text:
        run = p.add_run(text)
        run.font.size, run.font.bold, run.font.italic = Pt(size), bold, italic
    return p


def _rule(cell, width_mm: float, cell_mm: float) -> None:
    """A solid line centred under the text above it, ``width_mm`` long (a bottom border of an empty paragraph
    indented to that width: drawn, not an underline)."""
    p = _paragraph(cell, size=4)
    side = Mm((cell_mm - width_mm) / 2)
    p.paragraph_format.left_indent = side
    p.paragraph_format.right_indent = side
    p.paragraph_format.line_spacing = Pt(4)
    ppr = p._p.get_or_add_pPr()
    border = OxmlElement("w:pBdr")
    bottom = OxmlElement("w:bottom")
    for key, value in (("w:val", "single"), ("w:sz", "6"), ("w:space", "1"), ("w:color", "000000")):
        bottom.set(qn(key), value)
    border.append(bottom)
    ppr.append(border)


def _page_field(paragraph) -> None:
    """A PAGE field: python-docx has no field API, so the fldChar/instrText runs are written directly."""
    for kind, text in (("begin", None), (None, "PAGE"), ("separate", None), (None, "2"), ("end", None)):
        run = paragraph.add_run()
        run.font.size = Pt(13)
        if kind:
            char = OxmlElement("w:fldChar")
            char.set(qn("w:fldCharType"), kind)
            run._r.append(char)
        elif text == "PAGE":
            instr = OxmlElement("w:instrText")
            instr.set(qn("xml:space"), "preserve")
            instr.text = " PAGE "
            run._r.append(instr)
        else:
            run.text = text


def _no_borders(table) -> None:
    tbl_pr = table._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for side in ("top", "left", "bottom", "right", "insideH", "insideV"):
        el = OxmlElement(f"w:{side}")
        el.set(qn("w:val"), "nil")
        borders.append(el)
    tbl_pr.append(borders)


def build() -> Document:
    doc = Document()
    section = doc.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Mm(210), Mm(297)
    section.top_margin, section.bottom_margin = Mm(20), Mm(20)
    section.left_margin, section.right_margin = Mm(30), Mm(15)
    section.header_distance, section.footer_distance = Mm(10), Mm(10)
    section.different_first_page_header_footer = True

    normal = doc.styles["Normal"]
    _font(normal, 14)
    fmt = normal.paragraph_format
    fmt.alignment = WD_ALIGN_PARAGRAPH.JUSTIFY
    fmt.first_line_indent = Mm(10)
    fmt.space_after = Pt(6)
    fmt.line_spacing = 1.15
    for name, size in (("Heading 1", 14), ("Heading 2", 14), ("Heading 3", 14), ("Caption", 12),
                       ("Table Grid", 12)):
        style = doc.styles[name]
        _font(style, size, bold=name.startswith("Heading"))
        if name.startswith("Heading"):
            style.font.color.rgb = None
            style.font.italic = name == "Heading 3"
            style.paragraph_format.first_line_indent = Mm(10)
            style.paragraph_format.space_before = Pt(6)
            style.paragraph_format.space_after = Pt(6)
            style.paragraph_format.alignment = WD_ALIGN_PARAGRAPH.LEFT
            style.paragraph_format.keep_with_next = True

    # page numbers from page 2 (the first page has its own, empty, header); the simulated-data note on every page
    _page_field(_paragraph(section.header, after=0))
    section.header.paragraphs[0]._p.getparent().remove(section.header.paragraphs[0]._p)
    for footer in (section.footer, section.first_page_footer):
        footer.paragraphs[0].text = ""
        note = footer.paragraphs[0]
        note.alignment = WD_ALIGN_PARAGRAPH.CENTER
        note.paragraph_format.first_line_indent = Mm(0)
        run = note.add_run("{{ simulated_note }}")
        run.font.size, run.font.bold = Pt(12), True
    section.first_page_header.paragraphs[0].text = ""

    body = doc.paragraphs[0] if doc.paragraphs else None
    if body is not None:
        body._p.getparent().remove(body._p)
    head = doc.add_table(rows=1, cols=2)
    head.alignment = WD_TABLE_ALIGNMENT.CENTER
    _no_borders(head)
    fixed_widths(head, [65, 100])
    left, right = head.rows[0].cells
    _paragraph(left, "{{ parent_body }}", size=13)
    _paragraph(left, "{{ issuer }}", size=13, bold=True)
    _rule(left, 25, 65)
    _paragraph(left, "Số: {{ number }}", size=13, after=0)
    _paragraph(right, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", size=12, bold=True)
    _paragraph(right, "Độc lập - Tự do - Hạnh phúc", size=13, bold=True)
    _rule(right, 60, 100)
    _paragraph(right, "{{ place_date }}", size=14, italic=True)
    for cell in (left, right):
        cell.paragraphs[0]._p.getparent().remove(cell.paragraphs[0]._p)

    _paragraph(doc, "", size=14)
    _paragraph(doc, "BÁO CÁO", size=14, bold=True)
    _paragraph(doc, "{{ title }}", size=14, bold=True, after=12)
    doc.add_paragraph("{{ body }}")

    sign = doc.add_table(rows=1, cols=2)
    _no_borders(sign)
    fixed_widths(sign, [85, 80])
    left, right = sign.rows[0].cells
    _paragraph(left, "Nơi nhận:", size=12, bold=True, italic=True, align=WD_ALIGN_PARAGRAPH.LEFT)
    _paragraph(left, "{% for r in recipients %}- {{ r }};{% if not loop.last %}\n{% endif %}{% endfor %}", size=11,
               align=WD_ALIGN_PARAGRAPH.LEFT)
    _paragraph(left, "- Lưu: VT.", size=11, align=WD_ALIGN_PARAGRAPH.LEFT)
    _paragraph(right, "{{ signer_role }}", size=14, bold=True)
    _paragraph(right, "{{ signer_title }}", size=14, bold=True, after=60)
    _paragraph(right, "{{ signer_name }}", size=14, bold=True)
    for cell in (left, right):
        cell.paragraphs[0]._p.getparent().remove(cell.paragraphs[0]._p)
    return doc


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    build().save(OUT)
    print(f"wrote {OUT}")
