"""Supervisor pages: live progress per round, the quota plan editor, soft-close, and the exports."""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

import xlsxwriter
from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from survey_service.db import get_session
from survey_service.models import Role, Round
from survey_service.services import comparison, exports, progress, quotas, rounds, tabular
from survey_service.vietnamese import date_time, display_zone, xlsx_format
from survey_service.web import confirmation_page, round_closed, round_or_404
from survey_service.web.auth import role_required

bp = Blueprint("progress", __name__, url_prefix="/staff/progress")

VIEWERS = (Role.SUPERVISOR, Role.ANALYST)
NAV = [
    ("progress.index", "Theo dõi tiến độ", "Tiến độ thu phiếu theo cơ quan, phiếu và kênh; chỉ tiêu; xuất báo cáo",
     list(VIEWERS)),
]

MATRIX_LABEL = "Phiếu ma trận (mọi cơ quan)"
CHANNEL_LABELS = {"online": "Trực tuyến", "paper": "Phiếu giấy"}
SORT_LABELS = {"name": "Tên cơ quan (A–Z)", "shortfall": "Còn thiếu nhiều nhất", "progress": "Tỷ lệ thấp nhất",
               "form": "Mã phiếu"}
FIGURE_LABELS = {
    "target": "Chỉ tiêu",
    "verified": "Đã xác nhận",
    "keyed": "Đã nhập, chưa xác nhận",
    "started": "Đang trả lời trực tuyến",
    "issued": "Phiếu giấy chưa thu về",
    "surplus": "Vượt chỉ tiêu",
    "shortfall": "Còn thiếu",
}


def kind_labels(rnd) -> dict[str, str]:
    """The round's agency kinds (one agency's label), then the matrix cell."""
    return {**rnd.kind_labels, progress.MATRIX: MATRIX_LABEL}


def _filters(rnd, forms: dict[str, str]) -> progress.Filters:
    return progress.parse_filters(request.args, forms, progress.kinds(rnd))


def _now_text() -> str:
    return date_time(datetime.now(timezone.utc), display_zone(current_app.config), seconds=True)


@bp.route("/")
@role_required(*VIEWERS)
def index():
    all_rounds = rounds.list_rounds(get_session())
    if len(all_rounds) == 1:
        return redirect(url_for(".show", round_code=all_rounds[0].code))
    return render_template("progress/index.html", rounds=all_rounds)


@bp.route("/<round_code>")
@role_required(*VIEWERS)
def show(round_code):
    session = get_session()
    rnd = round_or_404(round_code)
    forms = progress.form_titles(session, rnd)
    filters = _filters(rnd, forms)
    data = progress.round_progress(session, rnd, filters, forms=forms)
    return render_template(
        "progress/show.html", round=rnd, data=data, forms=forms, totals=_total_groups(rnd, data, forms),
        filters=filters, kinds=kind_labels(rnd),
        channels=CHANNEL_LABELS, sorts=SORT_LABELS, figures=FIGURE_LABELS, updated=_now_text(),
        surplus_in_analysis=quotas.surplus_in_analysis(rnd), may_act=_may_act(), closed=round_closed(rnd),
        poll_ms=int(current_app.config["DASHBOARD_POLL_SECONDS"] * 1000),
    )


def _total_groups(rnd, data: progress.Progress, forms: dict[str, str]) -> list:
    """(caption, first column, rows of (key, label, figures)) for the totals tables."""
    kinds = kind_labels(rnd)
    return [
        ("Theo phiếu", "Phiếu", [(f"form:{k}", f"{k} – {forms.get(k, k)}", f) for k, f in data.by_form.items()]),
        ("Theo loại cơ quan", "Loại cơ quan", [(f"kind:{k}", kinds[k], f) for k, f in data.by_kind.items()]),
        ("Theo kênh", "Kênh", [(f"channel:{k}", CHANNEL_LABELS[k], f) for k, f in data.by_channel.items()]),
    ]


@bp.route("/<round_code>/progress.json")
@role_required(*VIEWERS)
def live(round_code):
    """What the page polls: every figure it shows, and the time they were computed."""
    session = get_session()
    rnd = round_or_404(round_code)
    forms = progress.form_titles(session, rnd)
    data = progress.round_progress(session, rnd, _filters(rnd, forms), forms=forms)
    return jsonify({**data.as_dict(), "updated": _now_text()})


@bp.route("/<round_code>/curve.svg")
@role_required(*VIEWERS)
def curve(round_code):
    session = get_session()
    rnd = round_or_404(round_code)
    filters = _filters(rnd, progress.form_titles(session, rnd))
    svg = render_template("progress/curve.svg", chart=curve_chart(progress.daily_counts(session, rnd, filters)),
                          channels=CHANNEL_LABELS)
    return Response(svg, mimetype="image/svg+xml", headers={"Cache-Control": "no-store"})


@bp.route("/<round_code>/progress.csv")
@role_required(*VIEWERS)
def export_csv(round_code):
    import csv

    rnd, rows = _export_rows(round_code)
    out = io.StringIO()
    if rnd.simulated:  # a first column on every row, like the results CSVs: the header stays the first line
        name, value = exports.SIMULATED_COLUMN
        rows = [[name, *rows[0]], *([value, *row] for row in rows[1:])]
    csv.writer(out).writerows(tabular.csv_rows(rows))
    return _download(out.getvalue().encode("utf-8-sig"), "text/csv; charset=utf-8", f"tien-do-{round_code}.csv")


@bp.route("/<round_code>/progress.xlsx")
@role_required(*VIEWERS)
def export_xlsx(round_code):
    rnd, rows = _export_rows(round_code)
    buffer = io.BytesIO()
    with xlsxwriter.Workbook(buffer, {"in_memory": True, **tabular.XLSX_OPTIONS}) as book:
        bold = book.add_format({"bold": True, "text_wrap": True, "valign": "top"})
        if rnd.simulated:
            note = book.add_worksheet("Dữ liệu mô phỏng")
            note.set_column(0, 0, 100)
            note.write(0, 0, exports.SIMULATED_NOTE, bold)
        sheet = book.add_worksheet("Tiến độ")
        sheet.write_row(0, 0, rows[0], bold)
        counts, share = book.add_format({"num_format": xlsx_format(0)}), book.add_format({"num_format": xlsx_format(1)})
        percent_column = rows[0].index(PERCENT_HEADER)
        for r, row in enumerate(rows[1:], start=1):
            for c, value in enumerate(row):
                fmt = share if c == percent_column else counts
                sheet.write(r, c, value, fmt if isinstance(value, (int, float)) else None)
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, len(rows) - 1, len(rows[0]) - 1)
        sheet.set_column(0, 0, 9)
        sheet.set_column(1, 1, 40)
        sheet.set_column(3, 3, 34)
    return _download(buffer.getvalue(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                     f"tien-do-{round_code}.xlsx")


PERCENT_HEADER = "Tỷ lệ đạt (%)"


def _export_rows(round_code: str) -> tuple[Round, list[list]]:
    session = get_session()
    rnd = round_or_404(round_code)
    forms = progress.form_titles(session, rnd)
    data = progress.round_progress(session, rnd, _filters(rnd, forms), forms=forms)
    header = ["Mã phiếu", "Tên phiếu", "Mã cơ quan", "Cơ quan", "Loại cơ quan", "Kênh",
              *FIGURE_LABELS.values(), PERCENT_HEADER, "Tạm khóa"]
    rows = [header]
    kinds = kind_labels(rnd)
    for c in data.cells:
        f = c.figures
        rows.append([c.form_code, c.form_title, c.agency_code or "", c.agency_name, kinds[c.kind],
                     CHANNEL_LABELS[c.channel], *(getattr(f, name) for name in FIGURE_LABELS),
                     "" if f.percent is None else f.percent, "có" if c.soft_closed else "không"])
    t = data.total
    rows.append(["", "Tổng cộng", "", "", "", "", *(getattr(t, name) for name in FIGURE_LABELS),
                 "" if t.percent is None else t.percent, ""])
    return rnd, rows


def _download(body: bytes, mimetype: str, filename: str) -> Response:
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _may_act() -> bool:
    return current_user.role in (Role.ADMIN, Role.SUPERVISOR)


@bp.route("/<round_code>/cells/<int:cell_id>/soft-close", methods=["POST"])
@role_required(Role.SUPERVISOR)
def soft_close(round_code, cell_id):
    session = get_session()
    rnd = round_or_404(round_code)
    cell = quotas.get_cell(session, rnd, cell_id)
    if cell is None:
        abort(404, description="Không có ô chỉ tiêu này trong đợt khảo sát.")
    closed = request.form.get("closed")
    if closed not in ("0", "1"):
        abort(400, description="Thiếu thao tác (tạm khóa hoặc mở lại).")
    back = {k: v for k, v in request.args.items() if k in ("kind", "form", "channel", "sort")}
    back_url = url_for(".show", round_code=rnd.code, **back) + f"#cell-{cell.id}"
    name = cell.agency.name if cell.agency else "mọi cơ quan"
    today = rounds.local_today()
    try:
        rounds.check_collecting(rnd, today)  # before asking to confirm
    except rounds.RoundError as exc:
        abort(409, description=str(exc))
    if closed == "1" and not cell.soft_closed:
        page = confirmation_page(
            f"Tạm khóa ô {cell.form_code} – {name}", "Ô này sẽ không nhận người trả lời trực tuyến mới và không "
            "in thêm phiếu giấy; người đã bắt đầu vẫn gửi được phiếu. Có thể mở lại ô sau.", "Tạm khóa", back_url,
            irreversible=False)
        if page:
            return page
    try:
        changed = quotas.set_soft_closed(session, cell, closed == "1", today=today, by=current_user)
    except quotas.QuotaError as exc:
        session.rollback()
        abort(409, description=str(exc))
    if changed:
        session.commit()
        flash(f"Đã {'tạm khóa' if closed == '1' else 'mở lại'} ô {cell.form_code} – {name}.", "info")
    return redirect(back_url)


# --- the quota plan ------------------------------------------------------------------------------
@bp.route("/<round_code>/quotas", methods=["GET", "POST"])
@role_required(Role.SUPERVISOR)
def plan(round_code):
    session = get_session()
    rnd = round_or_404(round_code)
    cells = quotas.cells(session, rnd)
    margin, floor = quotas.sizing(rnd)
    errors, entered = {}, {}
    if request.method == "POST":
        changes = []
        for cell in cells:
            target_text = request.form.get(f"target-{cell.id}", "")
            staff_text = request.form.get(f"staff-{cell.id}", "")
            entered[cell.id] = (target_text, staff_text)
            try:
                changes.append(quotas.target_change(cell, target_text, staff_text, margin, floor))
            except ValueError as exc:
                errors[cell.id] = str(exc)
        if not errors:
            changed = quotas.apply_targets(session, changes, by=current_user)
            session.commit()
            flash(f"Đã lưu kế hoạch chỉ tiêu ({changed} ô thay đổi).", "info")
            return redirect(url_for(".plan", round_code=rnd.code))
        flash(f"Chưa lưu: {len(errors)} ô có lỗi, xem các dòng được đánh dấu.", "error")
    return _render_plan(rnd, cells, errors=errors, entered=entered, status=400 if errors else 200)


def _render_plan(rnd, cells, *, errors=None, entered=None, import_errors=None, status=200):
    margin, floor = quotas.sizing(rnd)
    recommended = {c.id: quotas.recommended_size(c.staff_count, margin, floor)
                   for c in cells if c.staff_count is not None}
    forms = progress.form_titles(get_session(), rnd)
    return render_template(
        "progress/plan.html", round=rnd, cells=cells, forms=forms, errors=errors or {}, entered=entered or {},
        import_errors=import_errors or [], errors_shown=quotas.ERRORS_SHOWN, recommended=recommended,
        decisions=comparison.decision_sizes(get_session(), rnd),
        margin=margin, floor=floor, channels=CHANNEL_LABELS, columns=quotas.CSV_COLUMNS,
        column_help=quotas.CSV_COLUMN_HELP, closed=round_closed(rnd),
    ), status


@bp.route("/<round_code>/quotas/recommended", methods=["POST"])
@role_required(Role.SUPERVISOR)
def apply_recommended(round_code):
    session = get_session()
    rnd = round_or_404(round_code)
    if request.form.get("basis") == "decision":  # the sample a decision on each agency's target needs
        decisions = comparison.decision_sizes(session, rnd)
        sample = {code: d.sample for code, d in decisions.items() if d.sample is not None}
        changes = [quotas.TargetChange(c, sample[c.agency.code], c.staff_count)
                   for c in quotas.cells(session, rnd) if c.agency is not None and c.agency.code in sample]
        source, what = "decision", "cỡ mẫu để kết luận về mục tiêu"
    else:
        margin, floor = quotas.sizing(rnd)
        changes = [quotas.TargetChange(c, quotas.recommended_size(c.staff_count, margin, floor), c.staff_count)
                   for c in quotas.cells(session, rnd) if c.staff_count is not None]
        source, what = "recommended", "cỡ mẫu khuyến nghị"
    changed = quotas.apply_targets(session, changes, by=current_user, source=source)
    session.commit()
    flash(f"Đã đặt chỉ tiêu theo {what} cho {changed} ô.", "info")
    return redirect(url_for(".plan", round_code=rnd.code))


@bp.route("/<round_code>/quotas/import", methods=["POST"])
@role_required(Role.SUPERVISOR)
def import_plan(round_code):
    session = get_session()
    rnd = round_or_404(round_code)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Vui lòng chọn tệp CSV để nhập.", "error")
        return _render_plan(rnd, quotas.cells(session, rnd), status=400)
    try:
        changed = quotas.import_csv(session, rnd, upload.read(), by=current_user)
    except quotas.QuotaError as exc:
        session.rollback()
        flash("Tệp CSV bị từ chối, không có chỉ tiêu nào thay đổi. Sửa các lỗi dưới đây rồi nhập lại.", "error")
        return _render_plan(rnd, quotas.cells(session, rnd), import_errors=exc.errors, status=exc.status)
    session.commit()
    flash(f"Đã nhập tệp CSV: {changed} ô thay đổi.", "info")
    return redirect(url_for(".plan", round_code=rnd.code))


@bp.route("/<round_code>/quotas.csv")
@role_required(*VIEWERS)
def export_plan(round_code):
    rnd = round_or_404(round_code)
    return _download(quotas.export_csv(get_session(), rnd), "text/csv; charset=utf-8", f"chi-tieu-{rnd.code}.csv")


# --- the per-day chart ---------------------------------------------------------------------------
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 240, 44, 12, 16, 36


def curve_chart(daily: list[tuple[date, str, int]]) -> dict:
    """Coordinates of one line per channel over every day from the first to the last response."""
    if not daily:
        return {"empty": True, "width": WIDTH, "height": HEIGHT}
    first, last = daily[0][0], daily[-1][0]
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    counts = {(day, channel): n for day, channel, n in daily}
    peak = max(counts.values())
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(1, len(days) - 1)

    lines = []
    for channel in progress.CHANNELS:
        values = [counts.get((d, channel), 0) for d in days]
        if not any(values):
            continue
        coords = [(round(LEFT + i * step, 1), round(TOP + plot_h - plot_h * n / peak, 1))
                  for i, n in enumerate(values)]
        lines.append({"channel": channel, "coords": coords, "total": sum(values),
                      "points": " ".join(f"{x},{y}" for x, y in coords)})
    return {
        "empty": False, "width": WIDTH, "height": HEIGHT, "left": LEFT, "top": TOP, "bottom": TOP + plot_h,
        "right": LEFT + plot_w, "peak": peak, "first": first, "last": last, "days": len(days), "lines": lines,
        "dots": len(days) <= 62,
    }
