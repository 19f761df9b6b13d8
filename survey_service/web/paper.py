"""The paper channel: printing sheets (supervisors), recording returns and keying them (postal clerks),
settling double-entry disagreements and watching clerk agreement (supervisors)."""
from __future__ import annotations

import base64
import io
from datetime import date

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError

from survey_service.db import get_session
from survey_service.models import Role, SheetState
from survey_service.services import keying, printing, reading, rounds, sheets
from survey_service.services.sheets import STATE_LABELS, SheetError
from survey_service.web import Page, confirmation_page, note_round, public_base_url
from survey_service.web.auth import role_required

bp = Blueprint("paper", __name__)

NAV = [
    ("paper.scan", "Nhập phiếu giấy", "Quét mã QR (camera hoặc máy quét) hoặc gõ số phiếu để nhập.",
     (Role.CLERK,)),
    ("paper.read", "Đọc phiếu bằng máy", "Tải lên ảnh chụp hoặc bản quét PDF; chỉ xác nhận các ô máy chưa chắc.",
     (Role.CLERK,)),
    ("paper.returns", "Ghi nhận phiếu thu về", "Quét liên tiếp các phiếu đã thu về.", (Role.CLERK,)),
    ("paper.second", "Phiếu chờ nhập kép", "Nhập lần hai các phiếu do nhân viên khác nhập.", (Role.CLERK,)),
    ("paper.print_sheets", "In phiếu giấy", "In phiếu có mã QR cho một ô chỉ tiêu hoặc cả kế hoạch.",
     (Role.SUPERVISOR,)),
    ("paper.ledger", "Sổ theo dõi phiếu giấy", "Trạng thái từng phiếu: đã phát, thu về, nhập, xác nhận, hủy.",
     (Role.SUPERVISOR,)),
    ("paper.reconcile_list", "Đối chiếu nhập kép", "Quyết định giá trị đúng khi hai lần nhập khác nhau.",
     (Role.SUPERVISOR,)),
    ("paper.agreement", "Tỷ lệ khớp nhập kép", "Tỷ lệ khớp giữa hai lần nhập theo từng nhân viên.",
     (Role.SUPERVISOR,)),
]

LEDGER_PER_PAGE = 50
CLERK = (Role.CLERK,)
SUPERVISOR = (Role.SUPERVISOR,)


def _round():
    rnd = sheets.pick_round(get_session(), request.values.get("round"))
    note_round(rnd)
    return rnd


def _keys() -> list[str]:
    return current_app.config["SHEET_SIGNING_KEYS"]


def _sheet(serial: str, *, lock: bool = False):
    sheet = sheets.get_by_serial(get_session(), serial, lock=lock)
    note_round(sheet.quota_cell.round)
    return sheet


# --- clerks: scan, return, key ---------------------------------------------------------------------
@bp.route("/paper/", methods=["GET", "POST"])
@role_required(*CLERK)
def scan():
    rnd = _round()
    if request.method == "GET":
        return render_template("paper/scan.html", round=rnd)
    code = request.form.get("code", "")
    try:
        sheet = sheets.find_sheet(get_session(), code, _keys(), rnd=rnd)
    except SheetError as exc:
        return render_template("paper/scan.html", round=rnd, error=str(exc), code=code[:200]), exc.status
    return redirect(url_for("paper.key", serial=sheet.serial))


@bp.route("/p/<token>")
@role_required(*CLERK)
def open_token(token: str):
    """The URL printed in every QR code."""
    sheet = sheets.find_sheet(get_session(), sheets.URL_PATH + token, _keys())
    return redirect(url_for("paper.key", serial=sheet.serial))


@bp.route("/paper/sheets/<serial>/key", methods=["GET", "POST"])
@role_required(*CLERK)
def key(serial: str):
    session = get_session()
    sheet = _sheet(serial, lock=request.method == "POST")
    try:
        pass_no = keying.keying_pass(sheet, current_user)
        form = keying.sheet_form(session, sheet)
    except SheetError as exc:
        return render_template("paper/refused.html", sheet=sheet, message=str(exc)), exc.status
    if request.method == "GET":
        return render_template("paper/key.html", form=form, pass_no=pass_no, values={}, problems={})
    try:
        keying.key_sheet(session, sheet, current_user, request.form, secret=current_app.config["SECRET_KEY"])
        session.commit()
    except keying.KeyingError as exc:
        session.rollback()
        return render_template("paper/key.html", form=form, pass_no=pass_no, values=request.form,
                               problems=exc.problems, error=str(exc)), exc.status
    except SheetError as exc:
        session.rollback()
        return render_template("paper/refused.html", sheet=sheet, message=str(exc)), exc.status
    except IntegrityError:
        session.rollback()
        return render_template("paper/refused.html", sheet=sheet, message=(
            f"Phiếu {sheet.serial} vừa được một nhân viên khác nhập cùng lúc; lần nhập này không được lưu.")), 409
    flash(f"Đã lưu phiếu {sheet.serial} (lần nhập {pass_no}). Quét phiếu tiếp theo.", "info")
    return redirect(url_for("paper.scan", round=form.round.code))


@bp.route("/paper/read", methods=["GET", "POST"])
@role_required(*CLERK)
def read():
    """Photos or scanned PDFs of sheets printed to be read: each page is read or refused at once."""
    session = get_session()
    rnd = _round()
    results = []
    if request.method == "POST":
        files = [f for f in request.files.getlist("files") if f.filename or f.content_length]
        if not files:
            abort(400, description="Hãy chọn ảnh chụp hoặc tệp PDF của phiếu.")
        for upload in files[:50]:
            results += reading.read_file(session, rnd, upload.filename or "ảnh", upload.read(), keys=_keys(),
                                         secret=current_app.config["SECRET_KEY"], clerk=current_user)
            session.commit()
    waiting = reading.awaiting_confirmation(session, rnd)
    incomplete = reading.incomplete(session, rnd)
    status = 422 if results and all(r.refused for r in results) else 200
    return render_template("paper/read.html", round=rnd, results=results, waiting=waiting,
                           incomplete=incomplete), status


@bp.route("/paper/read/<serial>", methods=["GET", "POST"])
@role_required(*CLERK)
def confirm(serial: str):
    """The clerk confirms only what the reader was unsure of, looking at that part of the image."""
    session = get_session()
    sheet = _sheet(serial, lock=request.method == "POST")
    pending = reading.waiting(session, sheet)
    if pending is None:
        abort(409, description=reading.not_waiting_message(session, sheet))
    images = {code: base64.b64encode(data).decode("ascii")
              for code, data in reading.crops(pending, current_app.config["SECRET_KEY"]).items()}
    page = dict(pending=pending, images=images, q=pending.form.questionnaire, slot=reading.slot)
    if request.method == "GET":
        return render_template("paper/confirm.html", values={}, problems={}, **page)
    try:
        reading.confirm(session, sheet, current_user, request.form)
        session.commit()
    except keying.KeyingError as exc:
        session.rollback()
        return render_template("paper/confirm.html", values=request.form, problems=exc.problems, error=str(exc),
                               **page), exc.status
    except IntegrityError:
        session.rollback()
        abort(409, description=f"Phiếu {sheet.serial} vừa được nhập cùng lúc; lần xác nhận này không được lưu.")
    flash(f"Đã lưu phiếu {sheet.serial} (máy đọc, đã xác nhận).", "info")
    return redirect(url_for("paper.read", round=pending.form.round.code))


@bp.route("/paper/returns", methods=["GET", "POST"])
@role_required(*CLERK)
def returns():
    rnd = _round()
    if request.method == "GET":
        return render_template("paper/returns.html", round=rnd, report=None, codes="")
    session = get_session()
    codes = request.form.get("codes", "")
    try:
        report = sheets.record_returns(session, rnd, codes.splitlines()[:2000], _keys(),
                                       today=rounds.local_today(), by=current_user)
    except SheetError as exc:
        session.rollback()
        refused = sheets.ReturnReport(errors=[("", str(exc))])
        return render_template("paper/returns.html", round=rnd, report=refused, codes=codes), exc.status
    if report.errors:
        session.rollback()
        return render_template("paper/returns.html", round=rnd, report=report, codes=codes), 422
    session.commit()
    flash(f"Đã ghi nhận {len(report.recorded)} phiếu thu về"
          + (f"; {len(report.already)} phiếu đã được ghi nhận từ trước." if report.already else "."), "info")
    return redirect(url_for("paper.returns", round=rnd.code))


@bp.route("/paper/second")
@role_required(*CLERK)
def second():
    rnd = _round()
    waiting = keying.awaiting_second_keying(get_session(), rnd, current_user)
    return render_template("paper/second.html", round=rnd, sheets=waiting)


# --- supervisors: print, ledger, reconcile, agreement -----------------------------------------------
@bp.route("/paper/print", methods=["GET", "POST"])
@role_required(*SUPERVISOR)
def print_sheets():
    session = get_session()
    rnd = _round()
    form_code = request.values.get("form") or None
    agency_code = request.values.get("agency") or None
    if request.values.get("cell_choice") and not form_code:
        form_code, _, agency_code = request.values["cell_choice"].partition("|")
    plans = sheets.paper_cells(session, rnd)
    states = {"keyed": SheetState.KEYED, "verified": SheetState.VERIFIED, "void": SheetState.VOID}
    if request.method == "GET":
        return render_template("paper/print.html", round=rnd, plans=plans, printed=_printed_range(), **states)
    try:
        chosen = sheets.paper_cells(session, rnd, form_code=form_code, agency_code=agency_code)
        if request.form.get("again"):
            batch = sheets.issued_sheets(session, chosen)
        else:
            batch = sheets.issue_sheets(session, rnd, chosen, extra=_int(request.form.get("extra")),
                                        today=rounds.local_today(), by=current_user)
        if not batch:
            raise SheetError("Không có phiếu nào để in: các ô đã chọn đã đủ phiếu. Chọn “In lại phiếu đã phát” "
                             "hoặc nhập số phiếu dự phòng.", 409)
    except SheetError as exc:
        session.rollback()
        return render_template("paper/print.html", round=rnd, plans=plans, error=str(exc), printed=None,
                               **states), exc.status
    if request.form.get("again"):
        pdf = printing.sheets_pdf(session, batch, base_url=public_base_url(), signing_keys=_keys())
        name = "-".join(filter(None, ["phieu", rnd.code, form_code, agency_code or None, date.today().isoformat()]))
        return send_file(io.BytesIO(pdf), mimetype="application/pdf", as_attachment=True,
                         download_name=f"{name}.pdf")
    session.commit()
    # New sheets change the counts: show them on a fresh page, which offers (and starts) the PDF download.
    first, last = (int(s.serial.split("-")[1]) for s in (batch[0], batch[-1]))
    flash(f"Đã phát {len(batch)} phiếu mới ({batch[0].serial} … {batch[-1].serial}).", "info")
    return redirect(url_for("paper.print_sheets", round=rnd.code, printed=f"{first}-{last}"), 303)


def _printed_range() -> tuple[int, int] | None:
    """The running numbers of the batch just printed (``?printed=17-52``), or None."""
    first, _, last = (request.args.get("printed") or "").partition("-")
    if not (first.isdigit() and last.isdigit()) or not 0 < int(first) <= int(last) < 100_000:
        return None
    return int(first), int(last)


@bp.route("/paper/print/sheets.pdf")
@role_required(*SUPERVISOR)
def printed_pdf():
    """The PDF of one printed batch, by its running numbers; prints nothing new."""
    rnd, numbers = _round(), _printed_range()
    batch = sheets.numbered_sheets(get_session(), rnd, *numbers) if numbers else []
    if not batch:
        abort(404, description="Không có phiếu nào với các số phiếu này trong đợt khảo sát.")
    pdf = printing.sheets_pdf(get_session(), batch, base_url=public_base_url(), signing_keys=_keys())
    return send_file(io.BytesIO(pdf), mimetype="application/pdf", as_attachment=True,
                     download_name=f"phieu-{batch[0].serial}-{batch[-1].serial}.pdf")


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        abort(400, description="Số phiếu dự phòng phải là một số nguyên.")


@bp.route("/paper/ledger")
@role_required(*SUPERVISOR)
def ledger():
    session = get_session()
    rnd = _round()
    state = request.args.get("state") or None
    if state is not None and state not in {s.value for s in SheetState}:
        abort(400, description="Trạng thái phiếu không hợp lệ.")
    form_code = request.args.get("form") or None
    agency = (request.args.get("agency") or "").strip()[:64] or None
    serial = (request.args.get("serial") or "").strip()[:40] or None
    number = max(request.args.get("page", 1, type=int) or 1, 1)
    query = dict(form_code=form_code, state=SheetState(state) if state else None, agency=agency, serial=serial,
                 per_page=LEDGER_PER_PAGE)
    rows, total = sheets.ledger(session, rnd, page=number, **query)
    pages = max(1, -(-total // LEDGER_PER_PAGE))
    if number > pages:  # past the end: the last page
        number = pages
        rows, total = sheets.ledger(session, rnd, page=number, **query)
    page = Page(rows, number, pages, total)
    args = {k: v for k, v in {"round": rnd.code, "state": state, "form": form_code, "agency": agency,
                              "serial": serial}.items() if v}
    counts = sheets.state_counts(session, rnd)
    return render_template("paper/ledger.html", round=rnd, page=page, args=args, counts=counts,
                           forms=sorted(counts), states=list(SheetState), labels=STATE_LABELS)


@bp.route("/paper/ledger/<serial>")
@role_required(*SUPERVISOR)
def sheet_detail(serial: str):
    sheet = _sheet(serial)
    return render_template("paper/sheet.html", sheet=sheet, labels=STATE_LABELS,
                           disagreements=keying.disagreements(sheet))


@bp.route("/paper/ledger/<serial>/reprint", methods=["POST"])
@role_required(*SUPERVISOR)
def reprint(serial: str):
    session = get_session()
    sheet = _sheet(serial, lock=True)
    today = rounds.local_today()
    try:
        sheets.check_collecting(sheet.quota_cell.round, today)  # before asking to confirm
    except SheetError as exc:
        session.rollback()
        abort(exc.status, description=str(exc))
    page = confirmation_page(
        f"Hủy phiếu {sheet.serial} và in phiếu thay thế", f"Số phiếu {sheet.serial} bị hủy: nếu tờ phiếu này "
        "còn được gửi về, nó sẽ không được nhập. Một phiếu mới với số phiếu mới được in để thay thế.",
        "Hủy và in lại", url_for("paper.sheet_detail", serial=sheet.serial))
    if page:
        session.rollback()
        return page
    new = sheets.reprint(session, sheet, today=today, by=current_user)
    pdf = printing.sheets_pdf(session, [new], base_url=public_base_url(),
                              signing_keys=_keys())
    session.commit()
    return send_file(io.BytesIO(pdf), mimetype="application/pdf", as_attachment=True,
                     download_name=f"phieu-{new.serial}.pdf")


@bp.route("/paper/ledger/<serial>/verify", methods=["POST"])
@role_required(*SUPERVISOR)
def verify(serial: str):
    session = get_session()
    sheet = _sheet(serial, lock=True)
    keying.verify(session, sheet, current_user)
    session.commit()
    flash(f"Đã xác nhận phiếu {sheet.serial}.", "info")
    return redirect(url_for("paper.reconcile_list", round=sheet.quota_cell.round.code))


@bp.route("/paper/reconcile")
@role_required(*SUPERVISOR)
def reconcile_list():
    session = get_session()
    rnd = _round()
    return render_template("paper/reconcile_list.html", round=rnd,
                           disputed=keying.awaiting_reconciliation(session, rnd),
                           unverified=keying.awaiting_verification(session, rnd))


@bp.route("/paper/reconcile/<serial>", methods=["GET", "POST"])
@role_required(*SUPERVISOR)
def reconcile(serial: str):
    session = get_session()
    sheet = _sheet(serial, lock=request.method == "POST")
    found = keying.disagreements(sheet)
    form = keying.sheet_form(session, sheet)
    if request.method == "POST":
        try:
            keying.reconcile(session, sheet, current_user, request.form)
            session.commit()
        except keying.KeyingError as exc:
            session.rollback()
            return render_template("paper/reconcile.html", sheet=sheet, form=form, found=found,
                                   problems=exc.problems, error=str(exc)), exc.status
        except SheetError as exc:
            session.rollback()
            abort(exc.status, description=str(exc))
        flash(f"Đã đối chiếu và xác nhận phiếu {sheet.serial}.", "info")
        return redirect(url_for("paper.reconcile_list", round=form.round.code))
    if not found or sheet.state is not SheetState.KEYED:
        abort(409, description=f"Phiếu {sheet.serial} không có bất đồng nào cần đối chiếu.")
    return render_template("paper/reconcile.html", sheet=sheet, form=form, found=found, problems={})


@bp.route("/paper/agreement")
@role_required(*SUPERVISOR)
def agreement():
    rnd = _round()
    return render_template("paper/agreement.html", round=rnd, stats=keying.agreement_by_clerk(get_session(), rnd))
