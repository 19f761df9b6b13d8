"""Supervisors remind agencies of what is still missing: a text ready to send and a list to print."""
from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, url_for

from survey_service.db import get_session
from survey_service.models import Role
from survey_service.services import reminders
from survey_service.web import default_round, public_base_url, round_or_404
from survey_service.web.auth import role_required
from survey_service.web.respond import local_today

bp = Blueprint("reminders", __name__, url_prefix="/staff/reminders")

ROLES = (Role.SUPERVISOR,)
NAV = [("reminders.index", "Nhắc đơn vị còn thiếu phiếu", "Mỗi cơ quan còn thiếu phiếu nào: văn bản nhắc soạn sẵn "
        "và danh sách in cho đầu mối", ROLES)]


@bp.route("/")
@role_required(*ROLES)
def index():
    return redirect(url_for(".listing", round_code=default_round().code))


@bp.route("/<round_code>/")
@role_required(*ROLES)
def listing(round_code):
    rnd = round_or_404(round_code)
    return render_template("reminders/list.html", round=rnd, reminders=reminders.reminders(get_session(), rnd),
                           post_office=reminders.POST_OFFICE)


def _texts(rnd, items):
    return {r.key: reminders.reminder_text(r, rnd, today=local_today(), organiser=rnd.organiser,
                                           portal_url=public_base_url()) for r in items}


@bp.route("/<round_code>/all")
@role_required(*ROLES)
def print_all(round_code):
    """Every reminder one after another, a page each when printed."""
    rnd = round_or_404(round_code)
    items = reminders.reminders(get_session(), rnd)
    return render_template("reminders/print.html", round=rnd, items=items, texts=_texts(rnd, items),
                           today=local_today(), post_office=reminders.POST_OFFICE)


def _one(round_code: str, key: str):
    rnd = round_or_404(round_code)
    reminder = reminders.find(get_session(), rnd, key)
    if reminder is None:
        abort(404, description=f"Đơn vị '{key[:32]}' không còn thiếu phiếu nào (hoặc không có trong đợt {rnd.code}).")
    return rnd, reminder


@bp.route("/<round_code>/<key>")
@role_required(*ROLES)
def show(round_code, key):
    rnd, reminder = _one(round_code, key)
    return render_template("reminders/print.html", round=rnd, items=[reminder], texts=_texts(rnd, [reminder]),
                           today=local_today(), post_office=reminders.POST_OFFICE, single=True)


@bp.route("/<round_code>/<key>.txt")
@role_required(*ROLES)
def text(round_code, key):
    rnd, reminder = _one(round_code, key)
    return Response(_texts(rnd, [reminder])[reminder.key], mimetype="text/plain; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="nhac-{rnd.code}-{reminder.key}.txt"'})
