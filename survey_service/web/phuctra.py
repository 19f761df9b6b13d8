"""Phúc tra pages, for the auditor alone (not even administrators: they show the contact vault): upload
contacts, draw the sheets, record what each call found, review quarantined investigators, close."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from survey_service.db import get_session
from survey_service.models import Role
from survey_service.services import phuctra, rounds
from survey_service.services.phuctra import RecheckError
from survey_service.web import confirmation_page, default_round, round_or_404
from survey_service.web.auth import role_required

bp = Blueprint("phuctra", __name__)

AUDITOR = (Role.AUDITOR,)
NAV = [("phuctra.index", "Phúc tra", "Danh bạ phúc tra, chọn phiếu, ghi kết quả liên hệ, tạm loại điều tra viên.",
        AUDITOR)]
#: The process questions, as the page asks them.
QUESTIONS = [("received", "Có nhận phiếu khảo sát không?"), ("self_filled", "Có tự điền phiếu không?"),
             ("prompted", "Có ai gợi ý cách trả lời không?"), ("paid", "Có nhận tiền hỗ trợ như danh sách ghi không?")]


def _secret() -> str:
    return current_app.config["SECRET_KEY"]


def _page(rnd):
    session = get_session()
    drawn = phuctra.items(session, rnd)
    recheck = phuctra.recheck_of(session, rnd)
    vault = {} if recheck and recheck.closed_on else phuctra.open_contacts(
        session, rnd, [i.sheet.serial for i in drawn], secret=_secret(), by=current_user)
    session.commit()
    return render_template(
        "phuctra/round.html", round=rnd, recheck=recheck, items=drawn, vault=vault,
        contacts=phuctra.contact_count(session, rnd), summary=phuctra.summary(session, rnd),
        quarantines=phuctra.quarantines(session, rnd.id), settings=phuctra.settings(rnd),
        passed=phuctra.pass_rate(session, rnd.id), questions=QUESTIONS, outcome_labels=phuctra.OUTCOME_LABELS,
        reason_labels=phuctra.REASON_LABELS, kind_labels=phuctra.KIND_LABELS)


@bp.route("/phuctra/")
@role_required(*AUDITOR)
def index():
    return _page(default_round())


@bp.route("/phuctra/<round_code>")
@role_required(*AUDITOR)
def show(round_code: str):
    return _page(round_or_404(round_code))


def _back(rnd, anchor: str = ""):
    return redirect(url_for("phuctra.show", round_code=rnd.code) + anchor)


@bp.route("/phuctra/<round_code>/contacts", methods=["POST"])
@role_required(*AUDITOR)
def contacts(round_code: str):
    session = get_session()
    rnd = round_or_404(round_code)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise RecheckError("Hãy chọn tệp CSV hoặc XLSX danh bạ.", 400)
    count = phuctra.store_contacts(session, rnd, phuctra.parse_contacts(upload.read(), upload.filename),
                                   secret=_secret(), by=current_user)
    session.commit()
    flash(f"Đã niêm phong {count} liên hệ vào danh bạ phúc tra.", "info")
    return _back(rnd)


@bp.route("/phuctra/<round_code>/draw", methods=["POST"])
@role_required(*AUDITOR)
def draw(round_code: str):
    session = get_session()
    rnd = round_or_404(round_code)
    report = phuctra.draw(session, rnd, today=rounds.local_today(), secret=_secret(), by=current_user)
    session.commit()
    flash(f"Đã chọn {report.drawn} trong {report.returned} phiếu thu về để phúc tra.", "info")
    return _back(rnd)


def _answer(name: str) -> bool | None:
    return {"yes": True, "no": False}.get(request.form.get(name, ""))


@bp.route("/phuctra/<round_code>/sheets/<serial>", methods=["POST"])
@role_required(*AUDITOR)
def outcome(round_code: str, serial: str):
    session = get_session()
    rnd = round_or_404(round_code)
    item = phuctra.get_item(session, rnd, serial)
    reached = _answer("reached")
    if reached is None:
        raise RecheckError("Hãy chọn đã liên lạc được hay chưa.", 400)
    result = phuctra.record_outcome(session, item, reached=reached, **{name: _answer(name) for name, _ in QUESTIONS},
                                    today=rounds.local_today(), by=current_user)
    session.commit()
    flash(f"Phiếu {item.sheet.serial}: {phuctra.OUTCOME_LABELS[result]}.", "info")
    return _back(rnd, f"#item-{item.sheet.serial}")


@bp.route("/phuctra/<round_code>/quarantine/<investigator>/lift", methods=["POST"])
@role_required(*AUDITOR)
def lift(round_code: str, investigator: str):
    session = get_session()
    rnd = round_or_404(round_code)
    quarantine = next((q for q in phuctra.quarantines(session, rnd.id) if q.investigator == investigator), None)
    if quarantine is None:
        raise RecheckError("Điều tra viên này không bị tạm loại trong đợt.", 404)
    phuctra.lift(session, quarantine, reason=request.form.get("reason", ""), today=rounds.local_today(),
                 by=current_user)
    session.commit()
    flash("Đã bỏ tạm loại điều tra viên; phiếu của họ được tính lại.", "info")
    return _back(rnd, "#quarantines")


@bp.route("/phuctra/<round_code>/close", methods=["POST"])
@role_required(*AUDITOR)
def close(round_code: str):
    session = get_session()
    rnd = round_or_404(round_code)
    asking = confirmation_page(
        "Đóng phúc tra", f"Đóng phúc tra đợt {rnd.code}: danh bạ (họ tên, số điện thoại) bị xóa hẳn và không ghi "
        "thêm kết quả được nữa.", "Đóng phúc tra và xóa danh bạ", url_for("phuctra.show", round_code=rnd.code))
    if asking is not None:
        return asking
    deleted = phuctra.close(session, rnd, today=rounds.local_today(), by=current_user)
    session.commit()
    flash(f"Đã đóng phúc tra và xóa {deleted} liên hệ.", "info")
    return _back(rnd)
