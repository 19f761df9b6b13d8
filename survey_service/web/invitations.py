"""Supervisor pages for invitation codes: issue a batch per quota cell, download it as CSV or PDF,
revoke unused codes, see used and unused codes per cell, and look a typed code up.

The look-up is a POST: a code put in a URL (``?code=…``) would reach every access log and browser history on
the way, next to the supervisor's address and the time."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms.validators import InputRequired, NumberRange

from survey_service.db import get_session
from survey_service.models import CodeBatch, CodeStatus, QuotaCell, Role
from survey_service.services import invitations, portal, rounds
from survey_service.web import confirmation_page, note_round, page_of, parse_id, public_base_url, round_closed
from survey_service.web.auth import role_required
from survey_service.web.forms import VietnameseIntegerField
from survey_service.web.respond import local_today

bp = Blueprint("invitations", __name__, url_prefix="/staff/invitations")

NAV = [("invitations.index", "Mã mời khảo sát trực tuyến",
        "Phát mã theo chỉ tiêu, tải danh sách CSV/PDF có mã QR, thu hồi mã chưa dùng, xem số mã đã dùng.",
        {Role.SUPERVISOR})]


CELLS_PER_PAGE = 30
BATCHES_PER_PAGE = 20


class IssueForm(FlaskForm):
    count = VietnameseIntegerField("Số mã", validators=[
        InputRequired("Vui lòng nhập số mã cần phát."),
        NumberRange(1, invitations.MAX_BATCH, f"Số mã phải từ 1 đến {invitations.MAX_BATCH}.")])


@bp.route("/")
@role_required(Role.SUPERVISOR)
def index():
    """The cells and batches of a round, filtered by form and agency (a ``code`` in the query is ignored)."""
    return _codes_page(request.args)


@bp.route("/lookup", methods=["POST"])
@role_required(Role.SUPERVISOR)
def lookup():
    """The batch and status of a typed code, shown on the codes page (with the filters it was posted from)."""
    code_text = (request.form.get("code") or "").strip()[:40]
    if not code_text:
        return _codes_page(request.form, lookup={"message": "Vui lòng nhập mã mời cần tra cứu."}, status=400)
    return _codes_page(request.form, lookup={"text": code_text})


def _codes_page(values, *, lookup: dict | None = None, status: int = 200):
    db = get_session()
    code = values.get("round")
    rnd = rounds.get_round(db, code) if code else portal.current_round(db, local_today())
    if rnd is None:
        abort(404, description="Không tìm thấy đợt khảo sát.")
    note_round(rnd)
    form_code = values.get("form") or None
    agency_text = (values.get("agency") or "").strip()[:64] or None
    rows = invitations.cell_counts(db, rnd)
    forms = sorted({r.cell.form_code for r in rows})
    shown = [r for r in rows if invitations.cell_matches(r.cell, form_code, agency_text)]
    batches = [b for b in invitations.batches_of_round(db, rnd)
               if invitations.cell_matches(b.quota_cell, form_code, agency_text)]
    if lookup and lookup.get("text"):
        found = lookup["found"] = invitations.find_code(db, rnd, lookup["text"])
        lookup["status"] = invitations.statuses(db, _secret(), [found])[found.id] if found else None
    # (the pages' links carry these filters, never a code)
    args = {k: v for k, v in {"round": rnd.code, "form": form_code, "agency": agency_text}.items() if v}
    return render_template("invitations/index.html", round=rnd, cells=page_of(shown, CELLS_PER_PAGE, "cells_page"),
                           batches=page_of(batches, BATCHES_PER_PAGE, "batches_page"), form=IssueForm(),
                           label=invitations.cell_label, forms=forms, args=args, lookup=lookup,
                           closed=round_closed(rnd)), status


@bp.route("/cells/<int:cell_id>/issue", methods=["POST"])
@role_required(Role.SUPERVISOR)
def issue(cell_id):
    db = get_session()
    cell = db.get(QuotaCell, cell_id) or abort(404, description="Không tìm thấy chỉ tiêu này.")
    form = IssueForm()
    if not form.validate():
        abort(400, description=" ".join(form.count.errors))
    batch = invitations.issue_codes(db, cell, form.count.data, today=local_today(), by=current_user)
    db.commit()
    flash(f"Đã phát {batch.count} mã cho {invitations.cell_label(cell)}.", "info")
    return redirect(url_for("invitations.batch", batch_id=batch.id), 303)


@bp.route("/batches/<int:batch_id>")
@role_required(Role.SUPERVISOR)
def batch(batch_id):
    batch = _batch(batch_id)
    rnd = batch.quota_cell.round
    return render_template("invitations/batch.html", batch=batch, label=invitations.cell_label(batch.quota_cell),
                           base_url=public_base_url(), code_url=invitations.code_url,
                           status=invitations.statuses(get_session(), _secret(), batch.codes), round=rnd,
                           closed=round_closed(rnd))


@bp.route("/batches/<int:batch_id>.csv")
@role_required(Role.SUPERVISOR)
def batch_csv(batch_id):
    batch = _batch(batch_id)
    body = invitations.batch_csv(batch, public_base_url(), invitations.statuses(get_session(), _secret(), batch.codes))
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=ma-moi-lo-{batch.id}.csv"})


@bp.route("/batches/<int:batch_id>.pdf")
@role_required(Role.SUPERVISOR)
def batch_pdf(batch_id):
    batch = _batch(batch_id)
    body = invitations.batch_pdf(batch, public_base_url(), invitations.statuses(get_session(), _secret(), batch.codes),
                                 organiser=batch.quota_cell.round.organiser,
                                 round_name=batch.quota_cell.round.name)
    return Response(body, mimetype="application/pdf", headers={
        "Content-Disposition": f"attachment; filename=ma-moi-lo-{batch.id}.pdf"})


@bp.route("/batches/<int:batch_id>/revoke", methods=["POST"])
@role_required(Role.SUPERVISOR)
def revoke(batch_id):
    """Revoke the ticked unused codes, or every unused code of the batch with ``all=1``."""
    db = get_session()
    batch = _batch(batch_id)
    if request.form.get("all") == "1":
        ids = None
    else:
        ids = [parse_id(v) for v in request.form.getlist("code_id")]
        if not ids or None in ids:
            abort(400, description="Vui lòng chọn ít nhất một mã cần thu hồi.")
    status = invitations.statuses(db, _secret(), batch.codes)
    unused = [c for c in batch.codes if status[c.id] is CodeStatus.UNUSED and (ids is None or c.id in ids)]
    page = confirmation_page(
        f"Thu hồi {len(unused)} mã", f"Thu hồi {len(unused)} mã chưa dùng của lô {batch.id} "
        f"({invitations.cell_label(batch.quota_cell)}): người nhận các mã này sẽ không mở được phiếu nữa.",
        "Thu hồi", url_for("invitations.batch", batch_id=batch.id))
    if page:
        return page
    count = invitations.revoke_codes(db, batch, ids, secret=_secret(), by=current_user)
    db.commit()
    flash(f"Đã thu hồi {count} mã chưa sử dụng." if count else "Không có mã chưa sử dụng nào để thu hồi.",
          "info")
    return redirect(url_for("invitations.batch", batch_id=batch.id), 303)


def _secret() -> str:
    """The server's secret, which names a code's use (a code's status needs it)."""
    return current_app.config["SECRET_KEY"]


def _batch(batch_id: int) -> CodeBatch:
    batch = get_session().get(CodeBatch, batch_id) or abort(404, description="Không tìm thấy lô mã này.")
    note_round(batch.quota_cell.round)
    return batch
