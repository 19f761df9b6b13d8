"""Staff login and logout, one's own password, and the role guard."""
from __future__ import annotations

from functools import wraps

import flask
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from survey_service.db import get_session
from survey_service.extensions import login_manager
from survey_service.models import Role, StaffUser
from survey_service.services import login_throttle, users
from survey_service.web import safe_next

bp = Blueprint("auth", __name__, url_prefix="/staff")

#: The cookie that marks a browser where an account logged in before (:mod:`login_throttle`).
DEVICE_COOKIE = "staff_device"
#: What a refused attempt is told, by the kind of counter that refused it.
WAIT_MESSAGES = {
    "account": "Tài khoản này đã bị đăng nhập sai nhiều lần. Vui lòng đợi {seconds} giây rồi thử lại, hoặc "
               "đăng nhập trên máy và trình duyệt bạn vẫn dùng, hoặc nhờ quản trị viên bỏ thời gian chờ.",
    "address": "Đã có nhiều lần đăng nhập sai từ địa chỉ mạng này. Vui lòng đợi {seconds} giây rồi thử lại.",
}
WAIT_FROM_THIS_BROWSER = "Đã đăng nhập sai nhiều lần từ máy này. Vui lòng đợi {seconds} giây rồi thử lại."


class LoginForm(FlaskForm):
    username = StringField("Tên đăng nhập", validators=[DataRequired("Vui lòng nhập tên đăng nhập."),
                                                          Length(max=64)])
    password = PasswordField("Mật khẩu", validators=[DataRequired("Vui lòng nhập mật khẩu."),
                                                       Length(max=256)])


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Mật khẩu hiện tại", validators=[DataRequired("Vui lòng nhập mật khẩu hiện tại."),
                                                              Length(max=256)])
    new = PasswordField(f"Mật khẩu mới (ít nhất {users.MIN_PASSWORD_LENGTH} ký tự)",
                        validators=[DataRequired("Vui lòng nhập mật khẩu mới.")])
    repeat = PasswordField("Nhập lại mật khẩu mới",
                           validators=[EqualTo("new", "Hai lần nhập mật khẩu mới không khớp.")])


@login_manager.user_loader
def load_user(session_id: str) -> StaffUser | None:
    """The account of a session cookie ``<id>.<generation>``: a generation that was ended (logout, new
    password) no longer loads, even from a copied cookie."""
    user_id, _, generation = session_id.partition(".")
    if not (user_id.isascii() and user_id.isdigit() and generation.isascii() and generation.isdigit()):
        return None
    user = get_session().get(StaffUser, int(user_id))
    if user is None or not user.active or str(user.session_generation) != generation:
        return None
    return user


def throttle_policy() -> login_throttle.Policy:
    cfg = current_app.config
    return login_throttle.Policy(cfg["LOGIN_FREE_FAILURES"], cfg["LOGIN_MAX_DELAY_SECONDS"],
                                 cfg["LOGIN_FORGET_SECONDS"], cfg["LOGIN_ACCOUNT_FREE_FAILURES"],
                                 cfg["LOGIN_ADDRESS_FREE_FAILURES"], cfg["LOGIN_DEVICE_COOKIE_DAYS"])


def start_session(user: StaffUser) -> None:
    """A fresh session for a staff member: nothing carried over from before, so a new CSRF token too."""
    flask.session.clear()
    flask.g.pop("csrf_token", None)  # the token cached for this request belonged to the old session
    login_user(user)


#: Roles whose pages an administrator does not open by being one: the observer's sign-off of sample lists
#: must be the observer's own, and the phúc tra contact vault is the auditor's alone.
INDEPENDENT_ROLES = frozenset({Role.OBSERVER, Role.AUDITOR})


def role_required(*roles: Role):
    """Allow only the given roles, and admins unless the roles are all :data:`INDEPENDENT_ROLES`; others
    get 403."""
    admins = not set(roles) <= INDEPENDENT_ROLES

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles and not (admins and current_user.role is Role.ADMIN):
                abort(403, description="Tài khoản của bạn không có quyền truy cập trang này.")
            return view(*args, **kwargs)
        return wrapped
    return decorator


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status, headers = 200, {}
    if form.validate_on_submit():
        session, policy = get_session(), throttle_policy()
        result = users.authenticate(
            session, form.username.data, form.password.data, address=request.remote_addr or "",
            secret=current_app.config["SECRET_KEY"], policy=policy,
            device_cookie=request.cookies.get(DEVICE_COOKIE),
        )
        session.commit()
        if result.outcome == "ok":
            start_session(result.user)
            response = redirect(safe_next(request.args.get("next")) or url_for("staff.home"))
            response.set_cookie(DEVICE_COOKIE, result.device_cookie,
                                max_age=policy.device_cookie_days * 86_400, path=url_for("auth.login"),
                                secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True,
                                samesite="Lax")
            return response
        if result.outcome == "wait":
            message = WAIT_MESSAGES.get(result.wait_for, WAIT_FROM_THIS_BROWSER)
            flash(message.format(seconds=result.wait_seconds), "error")
            status, headers = 429, {"Retry-After": str(result.wait_seconds)}
        elif result.outcome == "inactive":
            flash("Tài khoản đã bị vô hiệu hóa. Liên hệ quản trị viên.", "error")
            status = 403
        else:
            flash("Tên đăng nhập hoặc mật khẩu không đúng.", "error")
            status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status, headers


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Ends the session on the server too: the account's session generation moves on."""
    session = get_session()
    users.end_sessions(current_user)
    session.commit()
    logout_user()
    flask.session.clear()
    flash("Bạn đã đăng xuất.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password():
    """A staff member changes their own password; their other sessions end, this one goes on."""
    form = PasswordChangeForm()
    status = 200
    if form.validate_on_submit():
        session = get_session()
        try:
            token_ended = users.change_own_password(session, current_user, form.current.data, form.new.data)
        except users.UserError as exc:
            session.rollback()
            form.new.errors.append(str(exc))
            status = 400
        else:
            session.commit()
            start_session(current_user._get_current_object())
            flash("Đã đổi mật khẩu. Các phiên đăng nhập khác của tài khoản đã kết thúc"
                  + (", mã truy cập API cũ không còn dùng được." if token_ended else "."), "info")
            return redirect(url_for("staff.home"))
    elif request.method == "POST":
        status = 400
    return render_template("auth/password.html", form=form, min_length=users.MIN_PASSWORD_LENGTH), status
