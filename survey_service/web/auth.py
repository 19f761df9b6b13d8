"""Staff login and logout, and the role guard."""
from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from survey_service.db import get_session
from survey_service.extensions import login_manager
from survey_service.models import Role, StaffUser
from survey_service.services import users
from survey_service.web import safe_next

bp = Blueprint("auth", __name__, url_prefix="/staff")


class LoginForm(FlaskForm):
    username = StringField("Tên đăng nhập", validators=[DataRequired("Vui lòng nhập tên đăng nhập."),
                                                          Length(max=64)])
    password = PasswordField("Mật khẩu", validators=[DataRequired("Vui lòng nhập mật khẩu."),
                                                       Length(max=256)])


@login_manager.user_loader
def load_user(user_id: str) -> StaffUser | None:
    if not user_id.isdigit():
        return None
    user = get_session().get(StaffUser, int(user_id))
    return user if user is not None and user.active else None


def role_required(*roles: Role):
    """Allow only the given roles (admins are always allowed); others get 403."""
    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role is not Role.ADMIN and current_user.role not in roles:
                abort(403, description="Tài khoản của bạn không có quyền truy cập trang này.")
            return view(*args, **kwargs)
        return wrapped
    return decorator


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        session = get_session()
        result = users.authenticate(
            session, form.username.data, form.password.data,
            max_failures=current_app.config["LOGIN_MAX_FAILURES"],
            lockout=timedelta(minutes=current_app.config["LOGIN_LOCKOUT_MINUTES"]),
        )
        session.commit()
        if result.outcome == "ok":
            login_user(result.user)
            return redirect(safe_next(request.args.get("next")) or url_for("staff.home"))
        if result.outcome == "locked":
            flash(f"Tài khoản tạm thời bị khóa do đăng nhập sai nhiều lần. Vui lòng thử lại sau "
                  f"{current_app.config['LOGIN_LOCKOUT_MINUTES']} phút.", "error")
            status = 423
        elif result.outcome == "inactive":
            flash("Tài khoản đã bị vô hiệu hóa. Liên hệ quản trị viên.", "error")
            status = 403
        else:
            flash("Tên đăng nhập hoặc mật khẩu không đúng.", "error")
            status = 401
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("Bạn đã đăng xuất.", "info")
    return redirect(url_for("auth.login"))
