"""The public portal: the home page with the code field, and the form behind each invitation code.

Plain POST forms that work without JavaScript. Every page that takes a code looks it up through the
rate-limited service; a browser that already opened a code keeps it in its session cookie and is not
counted again for it, so people behind one office address do not lock each other out.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from markupsafe import Markup

from survey_service.db import get_session
from survey_service.services import invitations, portal, ratelimit, rounds
from survey_service.web.forms import CodeForm, DivisionForm, answers_from

bp = Blueprint("respond", __name__)

TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")
#: (HTTP status, page title, message) for each reason a code cannot be used now.
REFUSALS = {
    "unknown": (404, "Mã khảo sát không đúng",
                "Không tìm thấy mã này. Vui lòng kiểm tra lại từng ký tự trên phiếu mời (mã gồm 12 ký tự, "
                "không có chữ O, I, L, U và số 0, 1)."),
    "revoked": (410, "Mã khảo sát đã bị thu hồi",
                "Mã này đã bị cơ quan tổ chức khảo sát thu hồi và không còn dùng được. Nếu Anh/Chị cho rằng "
                "đây là nhầm lẫn, vui lòng liên hệ đơn vị đã phát mã."),
    "submitted": (409, "Phiếu đã được gửi",
                  "Mã này đã được dùng để gửi phiếu khảo sát. Mỗi mã chỉ gửi được một lần; phiếu đã gửi "
                  "không thể sửa hoặc gửi lại. Xin cảm ơn Anh/Chị đã tham gia."),
    "not_open": (403, "Đợt khảo sát chưa bắt đầu",
                 "Đợt khảo sát chưa mở. Anh/Chị vui lòng quay lại từ ngày {opens}, mã của Anh/Chị vẫn giữ "
                 "nguyên giá trị."),
    "closed": (403, "Đợt khảo sát đã kết thúc",
               "Đợt khảo sát đã kết thúc, không nhận thêm phiếu trả lời. Xin cảm ơn Anh/Chị đã quan tâm."),
    "full": (409, "Đã đủ số phiếu cần thiết",
             "Cơ quan, đơn vị của Anh/Chị đã có đủ số phiếu trả lời cần thiết cho đợt khảo sát này nên "
             "không nhận thêm phiếu mới. Xin cảm ơn Anh/Chị."),
    "rate_limited": (429, "Quá nhiều lần thử",
                     "Có quá nhiều lần nhập mã không đúng từ địa chỉ mạng của Anh/Chị. Vui lòng đợi khoảng "
                     "{minutes} phút rồi thử lại."),
}
REMEMBERED_CODES = 8


def local_today():
    """Today in Vietnam: round dates and response days are local dates."""
    return datetime.now(TIMEZONE).date()


def _guard(code: str | None) -> portal.Guard | None:
    """No guard for a code this browser already opened; otherwise count the look-up for its address."""
    if code and code in session.get("codes", []):
        return None
    cfg = current_app.config
    window = cfg["CODE_LOOKUP_WINDOW_SECONDS"]
    key = ratelimit.client_key(get_session(), "code", request.remote_addr or "", window_seconds=window)
    return portal.Guard(key, cfg["CODE_LOOKUP_LIMIT"], window)


def _remember(code: str) -> None:
    """Keep the code in the session; a code already last is left alone, so the cookie is not re-sent."""
    codes = session.get("codes", [])
    if codes[-1:] != [code]:
        session["codes"] = ([c for c in codes if c != code] + [code])[-REMEMBERED_CODES:]


def _refusal_page(refusal: portal.Refusal):
    status, title, message = REFUSALS[refusal.reason]
    rnd = refusal.access.round if refusal.access else None
    message = message.format(opens=rnd.opens_on.strftime("%d/%m/%Y") if rnd else "",
                             minutes=max(1, current_app.config["CODE_LOOKUP_WINDOW_SECONDS"] // 60))
    return render_template("respond/state.html", title=title, message=message, reason=refusal.reason,
                           access=refusal.access), status


@bp.route("/", methods=["GET", "POST"])
def index():
    db = get_session()
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        typed = form.code.data or ""
        try:
            access = portal.open_code(db, typed, today=local_today(), guard=_guard(invitations.normalise_code(typed)))
        except portal.Refusal as refusal:
            db.commit()
            if refusal.access is None:
                status, _, message = REFUSALS[refusal.reason]
                form.code.errors = [message.format(minutes=max(1, current_app.config[
                    "CODE_LOOKUP_WINDOW_SECONDS"] // 60))]
                return _home(db, form), status
            access = refusal.access
        db.commit()
        _remember(access.code)
        return redirect(url_for("respond.code", code=access.code), 303)
    if request.method == "POST":
        status = 400
    return _home(db, form), status


def _home(db, form):
    rnd = portal.current_round(db, local_today())
    return render_template("respond/home.html", form=form, round=rnd,
                           state=rounds.round_state(rnd, local_today()) if rnd else None)


@bp.route("/c/<code>", methods=["GET"])
def code(code):
    canonical = invitations.normalise_code(code)
    if canonical and canonical != code:
        return redirect(url_for("respond.code", code=canonical), 301)
    db = get_session()
    try:
        access = portal.open_code(db, code, today=local_today(), guard=_guard(canonical), start=True)
    except portal.Refusal as refusal:
        db.commit()
        return _refusal_page(refusal)
    db.commit()
    _remember(access.code)
    if access.needs_division:
        return _division_page(db, access, DivisionForm(), 200)
    return _form_page(access, portal.new_submission_id(), _draft_values(access), {}, 200)


@bp.route("/c/<code>/phong", methods=["GET", "POST"])
def division(code):
    """LĐ-CP: the respondent names their division (or changes it: GET shows the choice again); the form then
    lists its supervising departments."""
    db = get_session()
    form = DivisionForm()
    try:
        access = portal.open_code(db, code, today=local_today(), guard=_guard(code))
    except portal.Refusal as refusal:
        db.commit()
        return _refusal_page(refusal)
    if not access.multi_target:
        if request.method == "GET":
            return redirect(url_for("respond.code", code=access.code), 303)
        abort(400, description="Phiếu này không cần chọn đơn vị công tác.")
    if request.method == "GET":
        return _division_page(db, access, form, 200)
    try:
        portal.choose_division(db, access, form.division.data or "", today=local_today())
    except portal.Refusal as refusal:
        db.rollback()
        if refusal.reason != "division":
            return _refusal_page(refusal)
        form.division.errors = [refusal.message]
        return _division_page(db, access, form, 400)
    db.commit()
    return redirect(url_for("respond.code", code=access.code), 303)


@bp.route("/c/<code>", methods=["POST"])
def answer(code):
    """Save the draft (``action=save``) or submit (``action=submit``) the answers."""
    db = get_session()
    sid = request.form.get("submission_id", "")
    try:
        access = portal.open_code(db, code, today=local_today(), guard=_guard(code), submission_id=sid)
    except portal.Refusal as refusal:
        db.commit()
        return _refusal_page(refusal)
    if access.submitted:
        db.commit()
        return _thanks(access)
    if access.needs_division:
        db.rollback()
        return _division_page(db, access, DivisionForm(), 400)
    action = request.form.get("action")
    answers = answers_from(request.form, multi_target=access.multi_target,
                           agency_code=access.cell.agency.code if access.cell.agency else "")
    today = local_today()
    try:
        if action not in ("save", "submit"):
            raise portal.AnswerErrors({(None, "action"): "Vui lòng bấm nút “Lưu để trả lời tiếp” hoặc “Gửi phiếu”."})
        if action == "save":
            portal.save_draft(db, access, answers, today=today)
        else:
            portal.submit(db, access, answers, sid, today=today)
    except portal.AnswerErrors as exc:
        db.rollback()
        return _form_page(access, sid, request.form, exc.errors, 400)
    except portal.Refusal as refusal:
        db.rollback()
        return _refusal_page(refusal)
    db.commit()
    if action == "save":
        flash("Đã lưu các câu trả lời. Anh/Chị có thể đóng trang và quay lại sau bằng cùng mã này, "
              "trên máy này hoặc máy khác.", "info")
        return redirect(url_for("respond.code", code=access.code), 303)
    return _thanks(access)


def _groups(access) -> list[tuple[str | None, str]]:
    """The blocks of answers on the page: (agency name or None, prefix of their input names)."""
    if access.multi_target:
        return [(a.name, f"{a.code}-") for a in access.targets]
    return [(None, "")]


def _draft_values(access) -> dict[str, str]:
    """The saved answers by input name."""
    saved = access.saved_answers()
    if access.multi_target:
        return {f"{code}-{item}": value for code, answers in saved.items() for item, value in answers.items()}
    return saved.get(access.cell.agency.code, {})


def preview_page(access, values, errors: dict, status: int, **extra):
    """The questionnaire page exactly as a respondent gets it, for the staff preview (``extra`` says where
    the preview posts to and what it found)."""
    return _form_page(access, "", values, errors, status, **extra)


def _form_page(access, submission_id: str, values, errors: dict, status: int, **extra):
    """The questionnaire page; ``errors`` from the service go next to their answer, the rest on top.

    :param submission_id: the random id of this filling-in of the form, posted back with the answers.
    :param values: the answers to show, by input name (the draft, or what was just posted).
    """
    groups = _groups(access)
    names = {prefix + code for _, prefix in groups for code in access.questionnaire.item_codes}
    by_name, general = {}, []
    for (agency_code, item_code), message in errors.items():
        if access.multi_target:
            name = f"{agency_code}-{item_code}"
        else:
            name = item_code if agency_code == access.cell.agency.code else None
        if name in names:
            by_name[name] = message
        else:
            general.append(message)
    first_error = next((prefix + item.code for _, prefix in groups for item in access.questionnaire.items
                        if prefix + item.code in by_name), None)
    answers = _answers_html(access, groups, values, by_name, first_error)
    return render_template("respond/form.html", access=access, submission_id=submission_id, groups=groups,
                           answers=answers, errors=by_name, general=general, first_error=first_error,
                           **extra), status


#: The answer inputs of a blank page, by (questionnaire version id, blocks): the same for every respondent
#: of that version, and versions never change, so each process keeps them.
_blank_answers: dict[tuple, Markup] = {}


def _answers_html(access, groups, values, errors: dict, first_error: str | None) -> Markup:
    def render():
        return Markup(render_template("respond/_answers.html", q=access.questionnaire, groups=groups,
                                      values=values, errors=errors, first_error=first_error))

    if values or errors or current_app.debug:
        return render()
    key = (access.version_id, tuple(groups))
    if key not in _blank_answers:
        _blank_answers[key] = render()
    return _blank_answers[key]


def _division_page(db, access, form, status: int):
    return render_template("respond/division.html", access=access, form=form,
                           divisions=portal.division_choices(db, access)), status


def _thanks(access):
    return render_template("respond/thanks.html", access=access)
