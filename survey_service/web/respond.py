"""The public portal: the home page with the code field, and the form behind each invitation code.

Plain POST forms that work without JavaScript. An invitation link (``/c/<code>``) or a typed code is
exchanged for a respondent session and the browser is sent to ``/phieu``, an address without the code, where
the form is shown and the answers are posted: no URL that carries answers carries the code, and the
session cookie holds the code only sealed under the server's key. Every look-up of a code not yet opened in
this session goes through the rate-limited service; a code once opened is not counted again, so people
behind one office address do not lock each other out.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from flask import (
    Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, session, url_for,
)
from markupsafe import Markup

from survey_service.db import get_session
from survey_service.services import invitations, portal, ratelimit, rounds
from survey_service.services.sealing import Sealer, shared_sealer
from survey_service.web import note_round
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
    "no_session": (409, "Phiên trả lời đã kết thúc",
                   "Trình duyệt không còn giữ phiên trả lời của Anh/Chị (có thể do đã đóng trình duyệt hoặc "
                   "chặn cookie). Vui lòng mở lại đường link trên phiếu mời hoặc nhập mã ở trang chủ; các câu "
                   "trả lời đã bấm “Lưu để trả lời tiếp” vẫn còn nguyên."),
    "different": (422, "Phiếu đã được gửi với câu trả lời khác",
                  "Phiếu này đã được gửi một lần với các câu trả lời khác những câu vừa gửi lại, nên lần gửi lại "
                  "không được ghi nhận: mỗi mã chỉ gửi được một lần. Bản câu trả lời vừa gửi vẫn được giữ trên "
                  "máy này."),
    "other_code": (409, "Trang này thuộc một mã khảo sát khác",
                   "Trong lúc trang này đang mở, trình duyệt đã mở một mã khảo sát khác, nên các câu trả lời "
                   "vừa gửi chưa được ghi nhận. Vui lòng mở lại đường link trên phiếu mời của Anh/Chị."),
}
#: The session key of the respondent's sealed code.
SESSION_KEY = "respondent"
#: The shape of every form tag this service writes (:func:`_form_tag`).
FORM_TAG = re.compile(r"[0-9a-f]{32}")
#: Next to the answers when the posted form tag is not one this service wrote (a damaged or hand-made page).
BAD_FORM_TAG = ("Trang trả lời gửi lên không hợp lệ nên các câu trả lời chưa được ghi nhận. Vui lòng bấm gửi "
                "lại trên trang này; các câu trả lời đã lưu trước đó vẫn còn nguyên.")


def local_today():
    """Today in Vietnam: round dates and response days are local dates."""
    return datetime.now(TIMEZONE).date()


def _sealer() -> Sealer:
    return shared_sealer(current_app.config["SECRET_KEY"], "respondent-session")


def _respondent() -> tuple[str | None, bool]:
    """The code of this browser's respondent session, and whether it was already opened successfully."""
    state = _sealer().open(session.get(SESSION_KEY))
    if not isinstance(state, dict) or not isinstance(state.get("code"), str):
        return None, False
    return state["code"], bool(state.get("opened"))


def _keep(code: str, opened: bool) -> None:
    """Seal the code into the session; an unchanged state is left alone, so the cookie is not re-sent."""
    if _respondent() != (code, opened):
        session[SESSION_KEY] = _sealer().seal({"code": code, "opened": opened})


def _forget() -> None:
    session.pop(SESSION_KEY, None)


def _form_tag(code: str) -> str:
    """Binds a form page to its code without showing the code: a page left open while the browser opened
    another code cannot post its answers under that other code."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"form-tag:{code}".encode(), hashlib.sha256).hexdigest()[:32]


def _tag_is_well_formed() -> bool:
    """Whether the posted form tag has the shape of one this service writes. Checked before comparing:
    ``hmac.compare_digest`` raises TypeError on non-ASCII text instead of answering False."""
    return FORM_TAG.fullmatch(request.form.get("form_tag", "")) is not None


def _guard(opened: bool) -> portal.Guard | None:
    """No guard for a code this session already opened; otherwise count the look-up for its address."""
    if opened:
        return None
    cfg = current_app.config
    window = cfg["CODE_LOOKUP_WINDOW_SECONDS"]
    key = ratelimit.client_key(get_session(), "code", request.remote_addr or "", window_seconds=window)
    return portal.Guard(key, cfg["CODE_LOOKUP_LIMIT"], window)


def _open(db, code: str, opened: bool, **kw) -> portal.Access:
    return portal.open_code(db, code, today=local_today(), secret=current_app.config["SECRET_KEY"],
                            guard=_guard(opened), **kw)


@bp.after_request
def _private(response):
    """Portal pages are nobody's business but the respondent's: not cached (a shared computer's back
    button), and no referrer with a code in it sent anywhere."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _refusal_page(refusal: portal.Refusal):
    status, title, message = REFUSALS[refusal.reason]
    rnd = refusal.access.round if refusal.access else None
    message = message.format(opens=rnd.opens_on.strftime("%d/%m/%Y") if rnd else "",
                             minutes=max(1, current_app.config["CODE_LOOKUP_WINDOW_SECONDS"] // 60))
    note_round(rnd)
    # the reason also as a header, for the offline form's outbox (keep the record, drop it, or retry)
    return render_template("respond/state.html", title=title, message=message, reason=refusal.reason,
                           access=refusal.access), status, {"X-Portal-State": refusal.reason}


@bp.route("/", methods=["GET", "POST"])
def index():
    db = get_session()
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        typed = invitations.normalise_code(form.code.data or "") or (form.code.data or "")
        code, opened = _respondent()
        try:
            access = _open(db, typed, opened and code == typed)
        except portal.Refusal as refusal:
            db.commit()
            if refusal.access is None:
                status, _, message = REFUSALS[refusal.reason]
                form.code.errors = [message.format(minutes=max(1, current_app.config[
                    "CODE_LOOKUP_WINDOW_SECONDS"] // 60))]
                return _home(db, form), status
            access = refusal.access
        db.commit()
        _keep(access.code, True)
        return redirect(url_for("respond.form"), 303)
    if request.method == "POST":
        status = 400
    return _home(db, form), status


def _home(db, form):
    rnd = portal.current_round(db, local_today())
    note_round(rnd)
    return render_template("respond/home.html", form=form, round=rnd,
                           state=rounds.round_state(rnd, local_today()) if rnd else None)


@bp.route("/c/<code>", methods=["GET"])
def code(code):
    """The invitation link: the code goes into the session (sealed) and the browser on to the form.

    Nothing is looked up here; the form's page does that, rate-limited unless this session already opened
    the same code.
    """
    code = invitations.normalise_code(code) or code
    current, opened = _respondent()
    _keep(code, opened and current == code)
    return redirect(url_for("respond.form"), 303)


@bp.route("/phieu", methods=["GET"])
def form():
    code, opened = _respondent()
    if code is None:
        return redirect(url_for("respond.index"), 303)
    db = get_session()
    try:
        access = _open(db, code, opened, start=True)
    except portal.Refusal as refusal:
        db.commit()
        if refusal.reason in ("unknown", "revoked"):
            _forget()
        return _refusal_page(refusal)
    db.commit()
    _keep(access.code, True)
    if access.needs_division:
        return _division_page(db, access, DivisionForm(), 200)
    return _form_page(access, portal.new_submission_id(), _draft_values(access), {}, 200)


def _posted_access(db, *, posted: bool = True, **kw) -> portal.Access:
    """The code of this session; for a POST (``posted``) the page posted must also be that code's.

    A tag that is not even shaped like one is let through here: the view then shows its page again with
    the posted answers and :data:`BAD_FORM_TAG` (a 400), so nothing typed is lost.

    :raises portal.Refusal: no session, a page of another code, or the code cannot be used now.
    """
    code, opened = _respondent()
    if code is None:
        raise portal.Refusal("no_session")
    if posted and _tag_is_well_formed() and not hmac.compare_digest(request.form["form_tag"],
                                                                    _form_tag(code)):
        raise portal.Refusal("other_code")
    return _open(db, code, opened, **kw)


@bp.route("/phieu/phong", methods=["GET", "POST"])
def division():
    """LĐ-CP: the respondent names their division (or changes it: GET shows the choice again); the form then
    lists its supervising departments."""
    db = get_session()
    form = DivisionForm()
    try:
        access = _posted_access(db, posted=request.method == "POST")
    except portal.Refusal as refusal:
        db.commit()
        return _refusal_page(refusal)
    if not access.rates_several:
        if request.method == "GET":
            return redirect(url_for("respond.form"), 303)
        abort(400, description="Phiếu này không cần chọn đơn vị công tác.")
    if request.method == "GET":
        return _division_page(db, access, form, 200)
    if not _tag_is_well_formed():
        db.rollback()
        form.division.errors = [BAD_FORM_TAG]
        return _division_page(db, access, form, 400)
    try:
        portal.choose_division(db, access, form.division.data or "", today=local_today())
    except portal.Refusal as refusal:
        db.rollback()
        if refusal.reason != "division":
            return _refusal_page(refusal)
        form.division.errors = [refusal.message]
        return _division_page(db, access, form, 400)
    db.commit()
    return redirect(url_for("respond.form"), 303)


@bp.route("/phieu", methods=["POST"])
def answer():
    """Save the draft (``action=save``) or submit (``action=submit``) the answers."""
    db = get_session()
    sid = request.form.get("submission_id", "")
    try:
        access = _posted_access(db, submission_id=sid)
    except portal.Refusal as refusal:
        db.commit()
        return _refusal_page(refusal)
    if access.submitted:
        resent = answers_from(request.form, rates_several=access.rates_several,
                              agency_code=access.cell.agency.code if access.cell.agency else "")
        if not portal.same_answers(db, access, resent, request.form.get("answers_key", "")):
            db.commit()
            return _refusal_page(portal.Refusal("different", access))
        db.commit()
        return _thanks(access)
    if access.needs_division:
        db.rollback()
        return _division_page(db, access, DivisionForm(), 400)
    if not _tag_is_well_formed():
        db.rollback()
        sid = sid if portal.SUBMISSION_ID.match(sid) else portal.new_submission_id()
        return _form_page(access, sid, request.form, {(None, "form_tag"): BAD_FORM_TAG}, 400)
    action = request.form.get("action")
    answers = answers_from(request.form, rates_several=access.rates_several,
                           agency_code=access.cell.agency.code if access.cell.agency else "")
    today = local_today()
    try:
        if action not in ("save", "submit"):
            raise portal.AnswerErrors({(None, "action"): "Vui lòng bấm nút “Lưu để trả lời tiếp” hoặc “Gửi phiếu”."})
        if action == "save":
            portal.save_draft(db, access, answers, today=today)
        else:
            portal.submit(db, access, answers, sid, today=today, answers_key=request.form.get("answers_key", ""))
    except portal.AnswerErrors as exc:
        db.rollback()
        return _form_page(access, sid, request.form, exc.errors, 400)
    except portal.Refusal as refusal:
        db.rollback()
        return _refusal_page(refusal)
    db.commit()
    if action == "save" and request.form.get("autosave"):  # the offline form's background save
        return "", 204
    if action == "save":
        flash("Đã lưu các câu trả lời. Anh/Chị có thể đóng trang và quay lại sau bằng cùng mã này, "
              "trên máy này hoặc máy khác.", "info")
        return redirect(url_for("respond.form"), 303)
    portal.forget_written(db)
    return _thanks(access)


def _groups(access) -> list[tuple[str | None, str]]:
    """The blocks of answers on the page: (agency name or None, prefix of their input names)."""
    if access.rates_several:
        return [(a.name, f"{a.code}-") for a in access.rated_agencies]
    return [(None, "")]


def _draft_values(access) -> dict[str, str]:
    """The saved answers by input name."""
    saved = access.saved_answers()
    if access.rates_several:
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
        if access.rates_several:
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
    note_round(access.round)
    offline = not extra.get("preview") and portal.offline_answering(get_session(), access.round.id)
    answers_key = request.form.get("answers_key", "") if request.method == "POST" else ""
    return render_template("respond/form.html", access=access, submission_id=submission_id, groups=groups,
                           form_tag=_form_tag(access.code), answers=answers, errors=by_name, general=general,
                           first_error=first_error, offline=offline,
                           answers_key=answers_key if portal.SUBMISSION_ID.match(answers_key)
                           else portal.new_submission_id(), **extra), status


#: The answer inputs of a blank page, by (form code, questionnaire version hash, the province and unit its
#: texts are worded for, blocks): the same for every respondent of that version in rounds of one province,
#: and a version's content never changes, so each process keeps them. Keyed by content, not by database id,
#: so two databases served by one process cannot mix their forms.
_blank_answers: dict[tuple, Markup] = {}


def _answers_html(access, groups, values, errors: dict, first_error: str | None) -> Markup:
    def render():
        return Markup(render_template("respond/_answers.html", q=access.questionnaire, groups=groups,
                                      values=values, errors=errors, first_error=first_error))

    if values or errors or current_app.debug:
        return render()
    key = (access.questionnaire.code, access.questionnaire.version, access.round.province,
           access.round.province_type, tuple(groups))
    if key not in _blank_answers:
        _blank_answers[key] = render()
    return _blank_answers[key]


def _division_page(db, access, form, status: int):
    note_round(access.round)
    return render_template("respond/division.html", access=access, form=form, form_tag=_form_tag(access.code),
                           divisions=portal.division_choices(db, access)), status


def _thanks(access):
    """The thank-you page; for a round answered offline, it also forgets the code: the session drops it and
    the page's script deletes what the browser kept of it (its draft, outbox record and cached page)."""
    note_round(access.round)
    offline = portal.offline_answering(get_session(), access.round.id)
    if offline:
        _forget()
    return render_template("respond/thanks.html", access=access, offline=offline, form_tag=_form_tag(access.code))


@bp.route("/phieu/token", methods=["GET"])
def token():
    """A fresh CSRF token for a resend from the outbox: the page's own may belong to a session the browser
    has since lost (a restart ends the session cookie). Tells nothing about any code."""
    from flask_wtf.csrf import generate_csrf

    return jsonify({"csrf_token": generate_csrf()})


@bp.route("/sw.js", methods=["GET"])
def service_worker():
    """The service worker of the offline form, served from the root so that it may control ``/phieu`` (not
    cached, as every portal response: a new version is taken at once)."""
    response = current_app.send_static_file("js/sw.js")
    response.headers["Service-Worker-Allowed"] = "/"
    return response
