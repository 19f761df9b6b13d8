"""The survey report (báo cáo kết quả điều tra xã hội học) as a Word document and a PDF.

Every figure comes from the round's results (:mod:`analysis` through :func:`results.cached_results`), the
target verdicts (:mod:`analysis.targets`) and, given an earlier round, the change since it
(:mod:`analysis.change` through :mod:`comparison`); this module only rounds them as published and lays them
out. The Word file is a docxtpl template: the default one in the package follows Nghị định 30/2020/NĐ-CP, and a
province may give its own with the same fields (docs/report.md). The body (sections, tables, charts) is built
here with python-docx where the template's ``{{ body }}`` paragraph stands, so a template needs no table
logic. The PDF is the Word file converted by LibreOffice headless; the fonts it embeds are the server's Times
New Roman substitute (Liberation Serif 2).
"""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Mm, Pt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sqlalchemy.orm import Session

from analysis import change, round_half_away, sampling
from analysis import targets as target_rules
from analysis.citizens import OVERALL, TARGET_OVERALL
from survey_service.models import (
    Channel, CodeStatus, Draft, InvitationCode, QuotaCell, Round, Sheet, SheetState, SpentCode,
)
from survey_service.services import ballots, citizens, comparison, progress, results, rounds
from survey_service.services.errors import ServiceError
from survey_service.vietnamese import MISSING, number, percent

DEFAULT_TEMPLATE = Path(__file__).resolve().parent.parent / "data" / "report" / "bao-cao-dtxhh.docx"
FORMATS = (".docx", ".pdf")
SIMULATED_NOTE = "SỐ LIỆU MÔ PHỎNG — KHÔNG PHẢI KẾT QUẢ KHẢO SÁT THẬT"
#: LibreOffice's start-up and conversion of a report of a hundred agencies takes seconds; this is the limit.
CONVERT_TIMEOUT = 180
TABLE_PT = 10
CHANNEL_LABELS = {"online": "Trực tuyến (mã mời)", "paper": "Phiếu giấy"}
INDICATOR_LABELS = {"satisfaction": "Tỷ lệ hài lòng (%)", "survey_points": "Tổng điểm điều tra XHH"}


class ReportError(ServiceError):
    """A report that cannot be written (unknown format, conversion failure); the message says why."""

    status = 422


@dataclass(frozen=True)
class ChannelRates:
    channel: str
    issued: int
    complete: int
    partial: int
    rr1: float
    rr2: float


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def channel_rates(session: Session, rnd: Round) -> list[ChannelRates]:
    """AAPOR RR1/RR2 per channel: online from codes issued (not revoked), spent (complete) and drafts saved
    but never sent (partial); paper from sheets issued (not void) and returned (keyed or not)."""
    cells = sa.select(QuotaCell.id).where(QuotaCell.round_id == rnd.id)
    issued = session.scalar(sa.select(sa.func.count()).select_from(InvitationCode).where(
        InvitationCode.quota_cell_id.in_(cells), InvitationCode.status != CodeStatus.REVOKED)) or 0
    spent = session.scalar(sa.select(sa.func.count()).select_from(SpentCode).where(
        SpentCode.quota_cell_id.in_(cells))) or 0
    drafts = session.scalar(sa.select(sa.func.count()).select_from(Draft).where(Draft.quota_cell_id.in_(cells))) or 0
    sheets = dict(session.execute(sa.select(Sheet.state, sa.func.count()).where(Sheet.quota_cell_id.in_(cells))
                                  .group_by(Sheet.state)).tuples().all())
    paper_issued = sum(n for state, n in sheets.items() if state != SheetState.VOID)
    returned = sum(sheets.get(s, 0) for s in (SheetState.RETURNED, SheetState.KEYED, SheetState.VERIFIED))
    channels = {c.value for c in session.scalars(sa.select(QuotaCell.channel).where(QuotaCell.round_id == rnd.id))}
    out = []
    if Channel.ONLINE.value in channels:
        out.append(ChannelRates("online", issued, spent, drafts, *sampling.response_rates(issued, spent, drafts)))
    if Channel.PAPER.value in channels:
        out.append(ChannelRates("paper", paper_issued, returned, 0,
                                *sampling.response_rates(paper_issued, returned, 0)))
    return out


def _pct(share: float) -> str:
    return MISSING if share is None or np.isnan(share) else percent(round_half_away(100 * share, 1), 1)


def points_text(value) -> str:
    """Points as published (already rounded to 2 decimals by the analysis)."""
    return MISSING if pd.isna(value) else number(round_half_away(float(value), 2), 2)


def share_text(value) -> str:
    """A share in % with one decimal, half away from zero (the export keeps the full value)."""
    return MISSING if pd.isna(value) else number(round_half_away(float(value), 1), 1)


def interval_text(lo, hi, digits: int) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return MISSING
    return f"{number(round_half_away(float(lo), digits), digits)}–{number(round_half_away(float(hi), digits), digits)}"


def rank_text(row) -> str:
    if pd.isna(row["rank"]):
        return MISSING
    return f"{int(row['rank'])} ({int(row['rank_lo'])}–{int(row['rank_hi'])})"


# --------------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------------
def fixed_widths(table, widths_mm: list[float]) -> None:
    """Columns of these widths, whatever their content (Word and LibreOffice otherwise autofit them)."""
    table.autofit = False
    layout = OxmlElement("w:tblLayout")
    layout.set(qn("w:type"), "fixed")
    table._tbl.tblPr.append(layout)
    for column, width in zip(table.columns, widths_mm):
        column.width = Mm(width)
        for cell in column.cells:
            cell.width = Mm(width)


def _table(doc, headers: list[str], rows: list[list[str]], widths_mm: list[float]):
    table = doc.add_table(rows=1 + len(rows), cols=len(headers))
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    for cell, text in zip(table.rows[0].cells, headers):
        _cell(cell, text, bold=True)
    for row, values in zip(table.rows[1:], rows):
        for j, (cell, text) in enumerate(zip(row.cells, values)):
            _cell(cell, text, align=WD_ALIGN_PARAGRAPH.LEFT if j == 1 else WD_ALIGN_PARAGRAPH.CENTER)
    fixed_widths(table, widths_mm)
    header = table.rows[0]._tr.get_or_add_trPr()
    repeat = OxmlElement("w:tblHeader")  # the header row again on every page the table runs onto
    header.append(repeat)
    doc.add_paragraph().paragraph_format.space_after = Pt(0)
    return table


def _cell(cell, text: str, bold: bool = False, align=WD_ALIGN_PARAGRAPH.CENTER) -> None:
    p = cell.paragraphs[0]
    p.alignment = align
    p.paragraph_format.first_line_indent = Mm(0)
    p.paragraph_format.space_after = Pt(0)
    run = p.add_run(text)
    run.font.size = Pt(TABLE_PT)
    run.font.bold = bold


def _heading(doc, text: str, level: int) -> None:
    doc.add_paragraph(text, style=f"Heading {level}")


def _para(doc, text: str, italic: bool = False) -> None:
    p = doc.add_paragraph()
    run = p.add_run(text)
    run.italic = italic


def _caption(doc, text: str) -> None:
    p = doc.add_paragraph()
    p.alignment = WD_ALIGN_PARAGRAPH.CENTER
    p.paragraph_format.first_line_indent = Mm(0)
    p.paragraph_format.keep_with_next = True  # never a caption alone at the foot of a page
    run = p.add_run(text)
    run.bold = True
    run.font.size = Pt(12)


#: How a target is judged, in both kinds of report (:func:`analysis.targets.target_verdicts`).
TARGET_METHOD = ("Đánh giá mục tiêu có ba kết luận. Đạt: cận dưới một phía 95% của ước lượng không thấp hơn mục "
                 "tiêu. Không đạt: cận trên một phía 95% thấp hơn mục tiêu. Chưa đủ căn cứ: khoảng giữa hai cận chứa "
                 "mục tiêu. Một tỷ lệ điểm trên 90% chưa đủ để kết luận Đạt mục tiêu 90%: với ít phiếu, cùng số liệu "
                 "ấy vẫn phù hợp với tỷ lệ thật dưới 90% (ví dụ 42/48 người hài lòng, 87,5%, có khoảng 77,6–93,4%; "
                 "một cơ quan có tỷ lệ thật 95% cần cỡ mẫu hiệu dụng khoảng 98 để chứng tỏ Đạt, 147 phiếu khi hệ số "
                 "thiết kế là 1,5). Cận của tỷ lệ là cận Wilson tính trên cỡ mẫu hiệu dụng; cận của điểm là ước "
                 "lượng ± 1,645 sai số chuẩn.")


def satisfaction_chart(summary: pd.DataFrame, target_of: dict[str, float], title: str, simulated: bool) -> bytes:
    """Satisfaction of each agency with its 95 % interval, the agency's target marked, best on top (PNG)."""
    rows = summary.dropna(subset=["satisfaction"]).sort_values("satisfaction")
    height = 1.2 + 0.22 * max(len(rows), 1)
    fig = Figure(figsize=(6.3, height), dpi=200)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    est = rows["satisfaction"].to_numpy(dtype=float)
    lo = est - rows["satisfaction_ci_lo"].to_numpy(dtype=float)
    hi = rows["satisfaction_ci_hi"].to_numpy(dtype=float) - est
    ax.errorbar(est, y, xerr=[np.nan_to_num(lo), np.nan_to_num(hi)], fmt="o", color="black", ms=3, capsize=2, lw=0.8)
    marks = [target_of.get(a) for a in rows["agency"]]
    ax.scatter([m for m in marks if m is not None], [i for i, m in zip(y, marks) if m is not None], marker="|",
               s=80, color="#b00", label="Mục tiêu")
    ax.set_yticks(y, rows["agency"].tolist(), fontsize=6)
    ax.set_xlim(0, 100)
    ax.set_xlabel("Tỷ lệ hài lòng (%) và khoảng tin cậy 95%", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title + (" — SỐ LIỆU MÔ PHỎNG" if simulated else ""), fontsize=8)
    if any(m is not None for m in marks):
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@dataclass(frozen=True)
class ReportData:
    rnd: Round
    res: results.RoundResults | None
    comparison: comparison.Comparison | comparison.CitizensComparison | None
    rates: list[ChannelRates]
    forms: list[dict]
    today: date
    #: a citizens' round's results (then ``res`` is None): its body is :func:`build_citizens_body`
    citizens: citizens.CitizenReport | None = None


def gather(session: Session, rnd: Round, previous: Round | None = None, today: date | None = None) -> ReportData:
    """Everything the report prints, computed once."""
    if rounds.is_citizens(rnd):
        comp = comparison.compare_citizens(session, rnd, previous) if previous is not None else None
        rep = comp.after if comp else citizens.report(session, rnd, quarantined=citizens.quarantined(session, rnd))
        return ReportData(rnd, None, comp, [], [], today or rounds.local_today(), rep)
    res = results.cached_results(session, rnd)
    comp = comparison.compare_rounds(session, rnd, previous) if previous is not None else None
    prog = progress.round_progress(session, rnd)
    forms = []
    for code, title in progress.form_titles(session, rnd).items():
        q = rounds.questionnaire_for(session, rnd, code)
        fig = prog.by_form.get(code, progress.Figures())
        forms.append({"code": code, "title": title, "group": q.respondent_group, "channel": q.channel,
                      "items": len(q.scale_items), "target": fig.target, "verified": fig.verified})
    return ReportData(rnd, res, comp, channel_rates(session, rnd), forms, today or rounds.local_today())


def _opening(doc, rnd: Round, respondents: str) -> None:
    """The first lines of either kind of report: a simulated round's warning, then the plan it implements."""
    if rnd.simulated:
        _para(doc, "Lưu ý: báo cáo này lập từ dữ liệu mô phỏng (phiếu do máy sinh ra để trình diễn), không phải ý "
                   f"kiến của {respondents} thật; không dùng để đánh giá cơ quan nào.", italic=True)
    _basis(doc, rnd)


def _basis(doc, rnd: Round) -> None:
    """Section I's heading and first paragraph: the plan the survey implements and its dates."""
    _heading(doc, "I. MỤC ĐÍCH, CĂN CỨ", 1)
    basis = rnd.structure.get("legal_basis") or "kế hoạch khảo sát của Ủy ban nhân dân"
    _para(doc, f"Thực hiện {basis}, {rnd.organiser} tổ chức {rnd.name[:1].lower() + rnd.name[1:]} từ ngày "
               f"{rnd.opens_on:%d/%m/%Y} đến ngày {rnd.closes_on:%d/%m/%Y}.")


def build_body(doc, data: ReportData) -> None:
    """The report's sections I–V and its annexes, appended to ``doc``."""
    rnd, res = data.rnd, data.res
    s = res.summary
    params = res.provenance["analysis_parameters"]
    min_breakdown = params["min_breakdown"]
    t = res.targets
    _opening(doc, rnd, "người trả lời")
    _para(doc, "Mục đích: đo lường đánh giá của cán bộ, công chức, lãnh đạo và người dân về kết quả cải cách hành "
               f"chính của {len(s)} cơ quan, đơn vị thuộc {rnd.province_title}; xác định điểm điều tra xã hội học "
               "của Chỉ số cải cách hành chính và tỷ lệ hài lòng; đối chiếu với mục tiêu và với đợt trước.")

    _heading(doc, "II. PHƯƠNG PHÁP", 1)
    _heading(doc, "1. Phiếu khảo sát và đối tượng", 2)
    _table(doc, ["Mẫu phiếu", "Đối tượng", "Kênh", "Số câu đánh giá", "Chỉ tiêu", "Phiếu hợp lệ"],
           [[f["code"], f["group"], CHANNEL_LABELS.get(f["channel"], f["channel"]), number(f["items"]),
             number(f["target"]), number(f["verified"])] for f in data.forms], [20, 55, 25, 20, 22, 23])
    _heading(doc, "2. Mẫu, chỉ tiêu và tỷ lệ phản hồi", 2)
    _para(doc, "Mẫu chọn theo chỉ tiêu (ô chỉ tiêu: mẫu phiếu × cơ quan). Tỷ lệ phản hồi tính theo định nghĩa chuẩn "
               "của AAPOR: RR1 = phiếu hoàn thành / số đã phát; RR2 tính thêm phiếu trả lời dở. Trực tuyến: số mã "
               "mời đã phát (trừ mã đã thu hồi), mã đã dùng để gửi phiếu, phiếu lưu dở chưa gửi; phiếu giấy: số "
               "phiếu đã phát (trừ phiếu hủy) và số phiếu đã thu về.")
    _table(doc, ["Kênh", "Đã phát", "Hoàn thành", "Trả lời dở", "RR1", "RR2"],
           [[CHANNEL_LABELS[r.channel], number(r.issued), number(r.complete), number(r.partial), _pct(r.rr1),
             _pct(r.rr2)] for r in data.rates], [45, 24, 24, 24, 24, 24])
    _heading(doc, "3. Gia quyền, sai số và khoảng tin cậy", 2)
    _para(doc, "Điểm của mỗi lĩnh vực là trung bình có trọng số của các nhóm đối tượng (trọng số theo "
               "methodology của đợt); sai số chuẩn tính theo thiết kế mẫu (phân tầng theo ô chỉ tiêu, đơn vị là "
               "người trả lời), khoảng tin cậy 95% dùng bậc tự do của từng cơ quan; tỷ lệ hài lòng có khoảng tin "
               "cậy logit. Hệ số thiết kế (deff) = số phiếu / cỡ mẫu hiệu dụng (Kish); bảng ở Phụ lục 1 ghi cỡ mẫu "
               "hiệu dụng và hệ số thiết kế của từng cơ quan. Khoảng xếp hạng là khoảng 95% của thứ hạng qua "
               f"{number(params['rank_draws'])} lần mô phỏng Monte Carlo. Số liệu làm tròn nửa xa số 0 (như hàm "
               "ROUND của Excel): điểm 2 chữ số thập phân, tỷ lệ 1 chữ số.")
    _para(doc, TARGET_METHOD)
    if data.comparison is not None:
        _para(doc, "So sánh với đợt trước: hiệu số giữa hai đợt, sai số chuẩn √(SE₁² + SE₂²) (hai đợt là hai mẫu "
                   "độc lập; khi cùng người trả lời cả hai đợt, sai số thật nhỏ hơn nên cách tính này thận trọng), "
                   "khoảng tin cậy 95% và kiểm định hai phía; giá trị p của mọi cơ quan cho cùng một chỉ tiêu được "
                   "hiệu chỉnh Benjamini–Hochberg (tỷ lệ phát hiện sai 5%). Không kết luận thay đổi từ việc hai "
                   "khoảng tin cậy chồng lên nhau hay không. Cơ quan hình thành do hợp nhất được so với giá trị "
                   "gộp của các cơ quan cũ, trọng số theo số phiếu (phương sai Σ wᵢ² SEᵢ²). Thứ hạng chỉ coi là "
                   "thay đổi khi hai khoảng xếp hạng không giao nhau.")
    _heading(doc, "4. Bảo vệ ẩn danh", 2)
    withheld = s.loc[s["withheld"], "agency"].tolist()
    suppressed = int(res.items["suppressed"].sum()) if len(res.items) else 0
    _para(doc, f"Không công bố số liệu của nhóm đối tượng dưới {number(min_breakdown)} người trả lời về một cơ quan; "
               f"nhóm đó không vào bất kỳ số liệu nào. Số cơ quan không công bố số liệu: {number(len(withheld))}"
               f"{' (' + ', '.join(withheld) + ')' if withheld else ''}; số dòng phân phối câu trả lời bị ẩn: "
               f"{number(suppressed)}.")

    _heading(doc, "III. KẾT QUẢ", 1)
    _heading(doc, "1. Điểm và tỷ lệ hài lòng theo loại cơ quan", 2)
    target_of = dict(zip(t.loc[t["indicator"] == "satisfaction", "agency"],
                         t.loc[t["indicator"] == "satisfaction", "target"])) if len(t) else {}
    for kind, plural in res.kind_plurals.items():
        part = s[s["agency_kind"] == kind].sort_values(["rank", "agency"], na_position="last")
        if part.empty:
            continue
        _caption(doc, f"Bảng: {plural} — điểm điều tra XHH (tối đa {points_text(part['max_points'].max())}) và tỷ "
                      "lệ hài lòng")
        _table(doc, ["Mã", "Cơ quan", "n", "Tổng điểm", "KTC 95%", "Hài lòng (%)", "KTC 95%",
                     "Hạng (khoảng)"],
               [[r["agency"], r["agency_name"], MISSING if pd.isna(r["n"]) else number(r["n"]),
                 points_text(r["survey_points"]), interval_text(r["survey_points_ci_lo"], r["survey_points_ci_hi"], 2),
                 share_text(r["satisfaction"]), interval_text(r["satisfaction_ci_lo"], r["satisfaction_ci_hi"], 1),
                 rank_text(r)]
                for _, r in part.iterrows()], [26, 35, 10, 15, 25, 15, 21, 18])
        png = satisfaction_chart(part, target_of, plural, rnd.simulated)
        doc.add_picture(io.BytesIO(png), width=Mm(155))
        doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER

    _heading(doc, "2. Đối chiếu với mục tiêu", 2)
    verdict_counts = {v: 0 for v in target_rules.VERDICTS}
    if len(t):
        rules = ", ".join(f"{INDICATOR_LABELS[r['indicator']].split(' (')[0].lower()} ≥ {number(r['at_least'], 0)}"
                          f"{'%' if r['indicator'] == 'satisfaction' else ' điểm'}"
                          f"{' (' + r['label'] + ')' if r.get('label') else ''}" for r in rnd.structure["targets"])
        _para(doc, f"Mục tiêu của đợt: {rules}.")
        names = dict(zip(s["agency"], s["agency_name"]))
        rows = []
        for _, r in t.iterrows():
            digits = 1 if r["scale"] == "share" else 2
            if r["verdict"]:
                verdict_counts[r["verdict"]] += 1
            rows.append([r["agency"], names.get(r["agency"], r["agency"]),
                         number(r["target"], 0 if float(r["target"]).is_integer() else 1),
                         share_text(r["estimate"]) if digits == 1 else points_text(r["estimate"]),
                         interval_text(r["lower"], r["upper"], digits),
                         target_rules.VERDICTS.get(r["verdict"], MISSING),
                         MISSING if pd.isna(r["n_needed"]) else number(int(r["n_needed"]))])
        _caption(doc, "Bảng: Kết quả so với mục tiêu (cận một phía 95%)")
        _table(doc, ["Mã", "Cơ quan", "Mục tiêu", "Ước lượng", "Cận dưới–cận trên", "Kết luận", "Số phiếu cần"],
               rows, [26, 33, 15, 17, 27, 29, 18])
    else:
        _para(doc, "Đợt khảo sát không đặt mục tiêu (round.yaml targets).")

    changed = []
    if data.comparison is not None:
        comp = data.comparison
        _heading(doc, f"3. So sánh với đợt {comp.before.provenance['round']}", 2)
        _para(doc, "Cơ quan được ghép với cơ quan đợt trước theo "
                   + ("danh sách kế tục của đợt (agencies.csv, cột continues)." if comp.matched_by == "continues"
                      else "cùng mã cơ quan (hai đợt có cùng cơ cấu)."))
        for indicator, label in INDICATOR_LABELS.items():
            part = comp.table[(comp.table["indicator"] == indicator) & comp.table["before"].notna()]
            if part.empty:
                continue
            digits = 1 if indicator == "satisfaction" else 2
            fmt = share_text if digits == 1 else points_text
            _caption(doc, f"Bảng: {label} — thay đổi so với đợt trước")
            rows = []
            for _, r in part.iterrows():
                if r["change"] in (change.IMPROVED, change.DECLINED):
                    changed.append((r["agency"], label, change.CHANGE_LABELS[r["change"]]))
                rows.append([r["agency"], r["agency_name"], r["baseline"], fmt(r["before"]), fmt(r["after"]),
                             fmt(r["diff"]), interval_text(r["diff_ci_lo"], r["diff_ci_hi"], digits),
                             MISSING if pd.isna(r["p_adjusted"]) else number(r["p_adjusted"], 3),
                             change.CHANGE_LABELS.get(r["change"], MISSING)])
            _table(doc, ["Mã", "Cơ quan", "Kế tục", "Đợt trước", "Đợt này", "Chênh lệch", "KTC 95%", "p (BH)",
                         "Kết luận"], rows, [26, 23, 21, 14, 14, 15, 21, 12, 19])
        ranks = comp.table[(comp.table["indicator"] == "survey_points") & comp.table["rank_moved"].notna()]
        moved = ranks[ranks["rank_moved"].astype(bool)]
        _para(doc, f"Thứ hạng: {number(len(moved))} trong {number(len(ranks))} cơ quan có thứ hạng thay đổi vượt "
                   "khoảng xếp hạng" + (f" ({', '.join(moved['agency'])})." if len(moved) else "."))

    _heading(doc, "IV. ĐÁNH GIÁ CHUNG", 1)
    if s[["survey_points", "satisfaction"]].isna().all().all():
        _para(doc, "Đợt khảo sát chưa có phiếu được tính vào kết quả: chưa có kết luận nào.")
    elif len(t):
        met = t.loc[t["verdict"] == target_rules.DAT, "agency"].tolist()
        _para(doc, f"Về mục tiêu: {number(verdict_counts[target_rules.DAT])} lượt cơ quan Đạt"
                   f"{' (' + ', '.join(met) + ')' if met else ''}, {number(verdict_counts[target_rules.KHONG_DAT])}"
                   f" lượt Không đạt, {number(verdict_counts[target_rules.CHUA_DU_CAN_CU])} lượt Chưa đủ căn cứ.")
    if data.comparison is not None:
        groups: dict[tuple[str, str], list[str]] = {}
        for agency, label, verdict in changed:
            groups.setdefault((label.split(" (")[0].lower(), verdict.lower()), []).append(agency)
        _para(doc, f"Về thay đổi so với đợt trước: {number(len(changed))} kết quả thay đổi có ý nghĩa thống kê"
                   + ("; " + "; ".join(f"{what} {verdict}: {', '.join(codes)}" for (what, verdict), codes
                                      in groups.items()) + "." if changed
                      else ": không cơ quan nào có thay đổi phát hiện được."))

    _heading(doc, "V. KIẾN NGHỊ", 1)
    undecided = t[(t["verdict"] == target_rules.CHUA_DU_CAN_CU) & t["n_needed"].notna()] if len(t) else t
    if len(undecided):
        plan = ", ".join(f"{r.agency}: {number(max(int(r.n_needed), int(r.n) if not pd.isna(r.n) else 0))}"
                         for r in undecided.itertuples())
        _para(doc, "Tăng cỡ mẫu ở đợt sau cho các cơ quan Chưa đủ căn cứ, theo số phiếu cần để kết luận với ước "
                   f"lượng hiện tại và hệ số thiết kế của đợt này: {plan}.")
    elif len(t) and t["estimate"].notna().any():
        _para(doc, "Cỡ mẫu của đợt này đủ để kết luận về mục tiêu cho mọi cơ quan có số liệu.")
    else:
        _para(doc, "Chưa có kiến nghị về cỡ mẫu: đợt chưa có số liệu hoặc không đặt mục tiêu.")

    _heading(doc, "PHỤ LỤC 1. ĐIỂM THEO LĨNH VỰC", 1)
    c = res.criteria
    deff = dict(zip(t.loc[t["indicator"] == "satisfaction", "agency"],
                    t.loc[t["indicator"] == "satisfaction", "design_effect"])) if len(t) else {}
    for kind, plural in res.kind_plurals.items():
        part = c[c["agency_kind"] == kind]
        if part.empty:
            continue
        crits = list(dict.fromkeys(part["criterion"]))
        wide = part.pivot(index="agency", columns="criterion", values="points").reindex(columns=crits)
        order = [a for a in s.loc[s["agency_kind"] == kind, "agency"] if a in wide.index]
        _caption(doc, f"Bảng: {plural} — điểm theo lĩnh vực")
        width = 139 / (len(crits) + 3)
        _table(doc, ["Mã", *crits, "n hiệu dụng", "deff"],
               [[a, *[points_text(wide.loc[a, k]) for k in crits],
                 number(s.loc[s["agency"] == a, "n_eff_min"].iloc[0], 1),
                 MISSING if pd.isna(deff.get(a, np.nan)) else number(deff[a], 2)] for a in order],
               [26, *[width] * len(crits), width + 4, width])
    _heading(doc, "PHỤ LỤC 2. KẾT QUẢ THEO MẪU PHIẾU", 1)
    items = res.items[~res.items["suppressed"]] if len(res.items) else res.items
    by_form = items.groupby("group").agg(agencies=("agency", "nunique"), answers=("n_valid", "sum"),
                                        positive=("positive_pct", "mean")) if len(items) else pd.DataFrame()
    _table(doc, ["Mẫu phiếu", "Đối tượng", "Số cơ quan", "Số câu trả lời có điểm", "Tỷ lệ tích cực TB (%)"],
           [[f["code"], f["group"], number(by_form.loc[f["code"], "agencies"]) if f["code"] in by_form.index
             else MISSING, number(by_form.loc[f["code"], "answers"]) if f["code"] in by_form.index else MISSING,
             share_text(by_form.loc[f["code"], "positive"]) if f["code"] in by_form.index else MISSING]
            for f in data.forms], [22, 60, 22, 30, 30])


def _share_pct(value) -> str:
    """A share kept as a fraction (the citizens' analysis), printed in % like :func:`share_text`."""
    return share_text(100 * value)


def _share_interval(lo, hi) -> str:
    return interval_text(100 * lo, 100 * hi, 1)


def build_citizens_body(doc, data: ReportData) -> None:
    """A citizens' round's sections: the share of people satisfied with each element and overall, per agency,
    with intervals, targets, response rates and phúc tra (every figure from :func:`citizens.report`)."""
    rnd, rep = data.rnd, data.citizens
    shares = rep.shares
    measures = list(dict.fromkeys(zip(shares["measure"], shares["measure_name"], strict=True)))
    min_group = ballots.min_group(rnd.settings)
    _opening(doc, rnd, "người dân")
    _para(doc, "Mục đích: đo lường sự hài lòng của người dân đối với sự phục vụ của "
               f"{number(len(rnd.agencies))} cơ quan, đơn vị thuộc {rnd.province_title} theo từng yếu tố và hài lòng "
               "chung; đối chiếu với mục tiêu.")

    _heading(doc, "II. PHƯƠNG PHÁP", 1)
    _heading(doc, "1. Chỉ số", 2)
    _para(doc, "Tỷ lệ hài lòng của một yếu tố là tỷ lệ (có trọng số) người trả lời chọn mức hài lòng hoặc rất hài "
               "lòng trong số người trả lời hợp lệ câu hỏi đó; trọng số của mỗi cơ quan là quy mô tổng thể "
               "của cơ quan (theo khung mẫu) chia cho số người trả lời. " + rep.definition_note)
    _heading(doc, "2. Tỷ lệ phản hồi", 2)
    _table(doc, ["Mã", "Cơ quan", "Đã phát", "Đã trả lời", "Tỷ lệ"],
           [[r["agency"], r["agency_name"], number(r["issued"]), number(r["returned"]), _pct(r["rate"])]
            for r in results.records(rep.rates)], [30, 60, 25, 25, 25])
    _heading(doc, "3. Phúc tra và phiếu không tính", 2)
    passed = (f"{number(rep.confirmed)}/{number(rep.reached)} người liên lạc được xác nhận đã được phỏng vấn "
              f"({_pct(rep.pass_rate)})" if rep.reached else "chưa phúc tra người trả lời nào")
    _para(doc, f"Phúc tra: {passed}. Điều tra viên bị tạm loại: {', '.join(rep.quarantined) or 'không có'}. "
               f"Không tính {number(rep.excluded['screened_out'])} phiếu không thuộc đối tượng và "
               f"{number(rep.excluded['quarantined'])} phiếu của điều tra viên bị tạm loại; "
               f"{number(rep.waiting)} phiếu còn niêm phong chờ đưa vào kết quả.")
    _heading(doc, "4. Khoảng tin cậy, mục tiêu và ẩn danh", 2)
    _para(doc, "Khoảng tin cậy 95% tính theo thiết kế mẫu (mỗi cơ quan là một tầng, có hiệu chỉnh tổng thể hữu "
               "hạn 1 − n/N). Không công bố tỷ lệ của nhóm có dưới "
               f"{number(min_group)} câu trả lời hợp lệ.")
    _para(doc, TARGET_METHOD)

    _heading(doc, "III. KẾT QUẢ", 1)
    levels = [(level, label) for level, label in citizens.levels(rnd) if level != "commune"
              or (shares["level"] == "commune").any()]
    for number_, (level, label) in enumerate(levels, 1):
        part = shares[shares["level"] == level]
        if part.empty:
            continue
        _heading(doc, f"{number_}. {label}", 2)
        _caption(doc, f"Bảng: Tỷ lệ hài lòng (%) và khoảng tin cậy 95% — {label.lower()}")
        rows = []
        for (domain, name), group in part.groupby(["domain", "domain_name"], sort=False):
            cells = group.set_index("measure")
            rows.append([domain or MISSING, name, *[
                "chưa đủ mẫu" if cells.loc[m, "withheld"] else
                f"{_share_pct(cells.loc[m, 'est'])} ({_share_interval(cells.loc[m, 'ci_lo'], cells.loc[m, 'ci_hi'])})"
                for m, _ in measures]])
        width = 116 / len(measures)  # of the 165 mm between the margins
        _table(doc, ["Mã", "Tên", *[name for _, name in measures]], rows, [22, 27, *[width] * len(measures)])
    overall = shares[(shares["level"] == "agency") & (shares["measure"] == OVERALL) & ~shares["withheld"]]
    if len(overall):
        chart = pd.DataFrame({"agency": overall["domain"], "satisfaction": 100 * overall["est"],
                              "satisfaction_ci_lo": 100 * overall["ci_lo"],
                              "satisfaction_ci_hi": 100 * overall["ci_hi"]})
        target_of = dict(zip(overall["domain"], 100 * overall["target"])) if overall["target"].notna().all() else {}
        doc.add_picture(io.BytesIO(satisfaction_chart(chart, target_of, dict(measures)[OVERALL], rnd.simulated)),
                        width=Mm(155))
        doc.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER

    _heading(doc, f"{len(levels) + 1}. Đối chiếu với mục tiêu", 2)
    named = citizens.measure_names(rnd)
    if rnd.structure.get("targets"):
        rules = "; ".join(
            f"{named[OVERALL if r['indicator'] == TARGET_OVERALL else r['indicator']].lower()} ≥ "
            f"{number(r['at_least'], 0)}%{' (' + r['label'] + ')' if r.get('label') else ''}"
            f"{', theo ' + r['source'] if r.get('source') else ''}" for r in rnd.structure["targets"])
        _para(doc, f"Mục tiêu của đợt: {rules}.")
    judged = shares[(shares["level"] == "agency") & shares["verdict"].notna()]
    if len(judged):
        _table(doc, ["Mã", "Cơ quan", "Chỉ số", "Mục tiêu (%)", "Tỷ lệ (%)", "KTC 95%", "Đánh giá"],
               [[r["domain"], r["domain_name"], r["measure_name"], _share_pct(r["target"]), _share_pct(r["est"]),
                 _share_interval(r["ci_lo"], r["ci_hi"]), target_rules.VERDICTS[r["verdict"]]]
                for r in results.records(judged)], [22, 30, 28, 17, 17, 27, 24])
    else:
        _para(doc, "Chưa có tỷ lệ nào để đối chiếu với mục tiêu (đợt không đặt mục tiêu, round.yaml targets, "
                   "hoặc chưa đủ mẫu).")

    changed = []
    comp = data.comparison
    if comp is not None:
        _heading(doc, f"{len(levels) + 2}. So sánh với đợt {comp.before.round_code}", 2)
        _para(doc, "Cơ quan được ghép với cơ quan đợt trước theo "
                   + ("danh sách kế tục của đợt (agencies.csv, cột continues)." if comp.matched_by == "continues"
                      else "cùng mã cơ quan (hai đợt có cùng cơ cấu).")
                   + " Chênh lệch tính bằng điểm phần trăm; sai số chuẩn √(SE₁² + SE₂²) (hai mẫu độc lập), khoảng "
                     "tin cậy 95%, giá trị p hai phía hiệu chỉnh Benjamini–Hochberg trên mọi cơ quan của cùng chỉ "
                     "số (tỷ lệ phát hiện sai 5%).")
        for measure, name in measures:
            part = comp.table[(comp.table["indicator"] == measure) & comp.table["before"].notna()]
            if part.empty:
                continue
            _caption(doc, f"Bảng: {name} — tỷ lệ hài lòng (%) so với đợt trước")
            rows = []
            for r in results.records(part):
                if r["change"] in (change.IMPROVED, change.DECLINED):
                    changed.append(f"{r['agency']} ({name.lower()}: {change.CHANGE_LABELS[r['change']].lower()})")
                rows.append([r["agency"], r["agency_name"], r["baseline"], _share_pct(r["before"]),
                             MISSING if r["after"] is None else _share_pct(r["after"]),
                             MISSING if r["diff"] is None else _share_pct(r["diff"]),
                             MISSING if r["diff"] is None else _share_interval(r["diff_ci_lo"], r["diff_ci_hi"]),
                             MISSING if r["p_adjusted"] is None else number(r["p_adjusted"], 3),
                             change.CHANGE_LABELS.get(r["change"], MISSING)])
            _table(doc, ["Mã", "Cơ quan", "Kế tục", "Đợt trước", "Đợt này", "Chênh lệch", "KTC 95%", "p (BH)",
                         "Kết luận"], rows, [26, 23, 21, 14, 14, 15, 21, 12, 19])

    _heading(doc, "IV. ĐÁNH GIÁ CHUNG", 1)
    counts = judged["verdict"].value_counts()
    if len(judged):
        _para(doc, "So với mục tiêu: " + ", ".join(f"{number(int(counts.get(code, 0)))} lượt {label}"
                                                  for code, label in target_rules.VERDICTS.items()) + ".")
    else:
        _para(doc, "Đợt khảo sát chưa có tỷ lệ được công bố: chưa có kết luận nào.")
    if comp is not None:
        _para(doc, f"Về thay đổi so với đợt trước: {number(len(changed))} tỷ lệ thay đổi có ý nghĩa thống kê"
                   + (f": {'; '.join(changed)}." if changed else ": không cơ quan nào có thay đổi phát hiện được."))


def context(data: ReportData) -> dict:
    """The template's fields besides ``body`` (docs/report.md lists them)."""
    rnd = data.rnd
    province = rnd.province_title
    title = f"Kết quả {rnd.name[:1].lower() + rnd.name[1:]}"  # a simulated round's name says so
    return {
        "parent_body": f"UBND {province.upper()}",
        "issuer": rnd.organiser.removesuffix(f" {province}").upper(),
        "number": "……/BC-" + "".join(w[0] for w in rnd.organiser.removesuffix(f" {province}").split()).upper(),
        "place_date": f"{rnd.province}, ngày {data.today.day:02d} tháng {data.today.month:02d} năm {data.today.year}",
        "title": title,
        "recipients": [f"UBND {province}", "Các cơ quan, đơn vị được đánh giá"],
        "signer_role": "KT. GIÁM ĐỐC",
        "signer_title": "PHÓ GIÁM ĐỐC",
        "signer_name": "",
        "simulated_note": SIMULATED_NOTE if rnd.simulated else "",
        "round": rnd.code,
        "simulated": rnd.simulated,
    }


#: What ``{{ body }}`` renders to before the body replaces it.
BODY_MARKER = "\u2063NỘI-DUNG-BÁO-CÁO\u2063"


def render_docx(data: ReportData, out: Path, template: Path | None = None) -> Path:
    """Fill the template (the default one unless given) with the context, then put the body where its
    ``{{ body }}`` paragraph is."""
    from docx import Document
    from docxtpl import DocxTemplate

    template = Path(template) if template else DEFAULT_TEMPLATE
    if not template.is_file():
        raise ReportError(f"Không tìm thấy mẫu báo cáo {template}.")
    try:
        tpl = DocxTemplate(str(template))
        tpl.render({**context(data), "body": BODY_MARKER}, autoescape=True)
    except Exception as exc:  # a province's template with a broken field
        raise ReportError(f"Mẫu báo cáo {template.name} không dùng được: {exc}") from None
    buf = io.BytesIO()
    tpl.save(buf)
    doc = Document(io.BytesIO(buf.getvalue()))
    markers = [p for p in doc.paragraphs if p.text.strip() == BODY_MARKER]
    if len(markers) != 1:
        raise ReportError(f"Mẫu báo cáo {template.name} phải có đúng một đoạn chỉ chứa {{{{ body }}}}.")
    body = doc.element.body
    existing = list(body)
    (build_body if data.citizens is None else build_citizens_body)(doc, data)
    anchor = markers[0]._p
    for element in [e for e in body if e not in existing and not e.tag.endswith("sectPr")]:
        anchor.addprevious(element)
    anchor.getparent().remove(anchor)
    doc.save(str(out))
    return out


def to_pdf(docx: Path, out: Path) -> Path:
    """Convert with LibreOffice headless (its own throw-away profile, so parallel runs do not collide)."""
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        raise ReportError("Không có LibreOffice (soffice) trên máy chủ để tạo PDF; cài gói libreoffice-writer-nogui.")
    with tempfile.TemporaryDirectory() as tmp:
        profile = Path(tmp, "profile").as_uri()
        cmd = [office, f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf", "--outdir", tmp,
               str(docx)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=CONVERT_TIMEOUT,
                                  env={**os.environ, "HOME": tmp})
        except subprocess.TimeoutExpired:
            raise ReportError("LibreOffice không chuyển xong báo cáo sang PDF trong thời gian cho phép.") from None
        made = Path(tmp, docx.with_suffix(".pdf").name)
        if done.returncode != 0 or not made.is_file():
            raise ReportError(f"LibreOffice không tạo được PDF: {(done.stderr or done.stdout).strip()[:300]}")
        shutil.move(str(made), out)
    return out


def write_report(session: Session, rnd: Round, outputs: list[str | Path], *, previous: Round | None = None,
                 template: str | Path | None = None, today: date | None = None) -> list[Path]:
    """Write the report of ``rnd`` (compared with ``previous`` if given) to each output (.docx or .pdf);
    the PDF is converted from the same Word file."""
    paths = [Path(p) for p in outputs]
    for path in paths:
        if path.suffix.lower() not in FORMATS:
            raise ReportError(f"Không hỗ trợ định dạng '{path.suffix}' ({path.name}); dùng: {', '.join(FORMATS)}.")
    data = gather(session, rnd, previous, today)
    with tempfile.TemporaryDirectory() as tmp:
        docx = render_docx(data, Path(tmp) / f"{rnd.code}-bao-cao.docx", template)
        for path in paths:
            if path.suffix.lower() == ".docx":
                shutil.copyfile(docx, path)
            else:
                to_pdf(docx, path)
    return paths
