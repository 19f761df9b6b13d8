"""Supervisors and analysts browse individual responses of a round (within its anonymity rules)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from survey_service.db import get_session
from survey_service.models import Agency, Role, RoundForm
from survey_service.services import exports, imports, responses
from survey_service.web import default_round, round_or_404
from survey_service.web.auth import role_required
from survey_service.web.respond import local_today
from survey_service.web.results import results_or_error

bp = Blueprint("responses", __name__, url_prefix="/staff/responses")

ROLES = (Role.SUPERVISOR, Role.ANALYST)
NAV = [("responses.index", "Phiếu trả lời", "Xem từng phiếu trả lời (ẩn danh), lọc theo cơ quan, mẫu phiếu, kênh, "
        "trạng thái", ROLES)]


@bp.route("/")
@role_required(*ROLES)
def index():
    return redirect(url_for(".listing", round_code=default_round().code))


def _choices(rnd) -> tuple[list[tuple[str, str]], list[str]]:
    session = get_session()
    agencies = session.execute(sa.select(Agency.code, Agency.name).where(Agency.round_id == rnd.id)
                               .order_by(Agency.id)).all()
    forms = sorted(session.scalars(sa.select(RoundForm.form_code).where(RoundForm.round_id == rnd.id)))
    return [(a.code, a.name) for a in agencies], forms


@bp.route("/<round_code>/")
@role_required(*ROLES)
def listing(round_code):
    rnd = round_or_404(round_code)
    agencies, forms = _choices(rnd)
    filters = responses.parse_filters({code for code, _ in agencies}, set(forms), request.args)
    listing = responses.list_responses(get_session(), rnd, filters)
    return render_template("responses/list.html", round=rnd, listing=listing,
                           agencies=agencies, forms=forms, states=responses.STATES, sorts=responses.SORTS,
                           channels=responses.CHANNELS, matrix=responses.MATRIX)


@bp.route("/<round_code>/r/<uid>")
@role_required(*ROLES)
def detail(round_code, uid):
    rnd = round_or_404(round_code)
    response = responses.response_detail(get_session(), rnd, uid)
    return render_template("responses/detail.html", round=rnd, r=response, back=request.args.get("back", ""))


@bp.route("/<round_code>/answers.csv")
@role_required(*ROLES)
def answers_csv(round_code):
    """The tidy file of every counted answer with its weight, without the groups too small to show."""
    rnd, res = results_or_error(round_code)
    with tempfile.TemporaryDirectory() as tmp:
        data = exports.write_answers_csv(res, Path(tmp) / "a.csv").read_bytes()
    return Response(data, mimetype="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{rnd.code}-cau-tra-loi.csv"'})


@bp.route("/<round_code>/import", methods=["GET", "POST"])
@role_required(Role.SUPERVISOR)
def import_file(round_code):
    """``responses import`` in the browser: every bad row on the page, and nothing stored while any is."""
    session = get_session()
    rnd = round_or_404(round_code)
    _, forms = _choices(rnd)
    if request.method == "GET":
        return render_template("responses/import.html", round=rnd, forms=forms, report=None, errors=[])
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template("responses/import.html", round=rnd, forms=forms, report=None,
                               errors=["Vui lòng chọn tệp CSV để nhập."]), 400
    try:
        report = imports.import_responses(session, rnd, upload.read(), today=local_today(),
                                          secret=current_app.config["SECRET_KEY"], by=current_user, actor="staff",
                                          keys=current_app.config["SHEET_SIGNING_KEYS"])
    except imports.ImportRejected as exc:
        session.rollback()
        return render_template("responses/import.html", round=rnd, forms=forms, report=None, filename=upload.filename,
                               errors=[str(e) for e in exc.errors[:imports.MAX_ERRORS_SHOWN]],
                               more=max(0, len(exc.errors) - imports.MAX_ERRORS_SHOWN), total=len(exc.errors)), 422
    session.commit()
    return render_template("responses/import.html", round=rnd, forms=forms, report=report, filename=upload.filename,
                           errors=[])


@bp.route("/<round_code>/import-template.csv")
@role_required(Role.SUPERVISOR)
def import_template(round_code):
    session = get_session()
    rnd = round_or_404(round_code)
    form_code = request.args.get("form", "")
    try:
        body = imports.template_csv(session, rnd, form_code)
    except imports.ImportRejected as exc:
        abort(404, description=str(exc.errors[0]))
    return Response(body.encode("utf-8-sig"), mimetype="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="mau-nhap-{rnd.code}-{form_code}.csv"'})
