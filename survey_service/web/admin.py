"""Administration: staff accounts, the audit log, rounds and their questionnaire versions."""
from __future__ import annotations

from datetime import date

from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length

from survey_service.db import get_session
from survey_service.models import Role, StaffUser
from survey_service.services import audit_log as audit_log_service
from survey_service.services import ballots, rounds, users
from survey_service.web import confirmation_page, round_or_404
from survey_service.web.auth import role_required
from survey_service.web.forms import VietnameseDateField
from survey_service.web.staff import ROLE_NAMES

bp = Blueprint("admin", __name__, url_prefix="/staff/admin")

NAV = [
    ("admin.user_list", "Tài khoản cán bộ",
     "Tạo, vô hiệu hóa tài khoản, đặt lại mật khẩu, đổi vai trò, bỏ thời gian chờ sau đăng nhập sai.",
     (Role.ADMIN,)),
    ("admin.audit_log", "Nhật ký thao tác", "Ai đã làm gì, khi nào, giá trị cũ và mới.", (Role.ADMIN,)),
    ("admin.round_list", "Đợt khảo sát và phiếu",
     "Thời gian nhận phiếu (gia hạn, đóng đợt), phiên bản phiếu và số phiếu đã nhận.",
     (Role.ADMIN, Role.SUPERVISOR, Role.ANALYST)),
]


class UserForm(FlaskForm):
    username = StringField("Tên đăng nhập", validators=[DataRequired("Vui lòng nhập tên đăng nhập."),
                                                          Length(max=64)])
    full_name = StringField("Họ và tên", validators=[Length(max=255)])
    # The service checks the role with a Vietnamese message (WTForms' own is English).
    role = SelectField("Vai trò", choices=[SelectChoice(r.value, ROLE_NAMES[r]) for r in Role],
                       validate_choice=False)
    password = PasswordField(f"Mật khẩu (ít nhất {users.MIN_PASSWORD_LENGTH} ký tự)",
                             validators=[DataRequired("Vui lòng nhập mật khẩu.")])


class ResetPasswordForm(FlaskForm):
    password = PasswordField("Mật khẩu mới", validators=[DataRequired("Vui lòng nhập mật khẩu mới.")])


class RoleForm(FlaskForm):
    # The service checks the role with a Vietnamese message (WTForms' own is English).
    role = SelectField("Vai trò", choices=[SelectChoice(r.value, ROLE_NAMES[r]) for r in Role],
                       validate_choice=False)


@bp.route("/users", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def user_list():
    session = get_session()
    form = UserForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = users.create_user(session, form.username.data, form.password.data, form.role.data,
                                     full_name=form.full_name.data, by=current_user, actor="staff")
        except users.UserError as exc:
            session.rollback()
            form.username.errors.append(str(exc))
            status = 400
        else:
            session.commit()
            flash(f"Đã tạo tài khoản {user.username}.", "info")
            return redirect(url_for("admin.user_list"))
    elif request.method == "POST":
        status = 400
    return _users_page(form, status)


def _users_page(form: UserForm, status: int, row_errors: dict[int, str] | None = None):
    session = get_session()
    accounts = users.list_users(session)
    return render_template(
        "admin/users.html", form=form, users=accounts, role_names=ROLE_NAMES, roles=list(Role),
        waiting=users.waiting_usernames(session, accounts, secret=current_app.config["SECRET_KEY"]),
        row_errors=row_errors or {}), status


def _user_or_404(user_id: int) -> StaffUser:
    user = get_session().get(StaffUser, user_id)
    if user is None:
        abort(404, description="Không tìm thấy tài khoản.")
    return user


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@role_required(Role.ADMIN)
def user_active(user_id: int):
    session, user = get_session(), _user_or_404(user_id)
    users.set_active(session, user, request.form.get("active") == "1", by=current_user)
    session.commit()
    flash(f"Đã cập nhật tài khoản {user.username}.", "info")
    return redirect(url_for("admin.user_list"))


@bp.route("/users/<int:user_id>/unlock", methods=["POST"])
@role_required(Role.ADMIN)
def user_unlock(user_id: int):
    session, user = get_session(), _user_or_404(user_id)
    users.clear_login_delays(session, user, by=current_user, secret=current_app.config["SECRET_KEY"])
    session.commit()
    flash(f"Đã bỏ thời gian chờ đăng nhập của tài khoản {user.username}.", "info")
    return redirect(url_for("admin.user_list"))


@bp.route("/users/<int:user_id>/api-token/revoke", methods=["POST"])
@role_required(Role.ADMIN)
def user_token_revoke(user_id: int):
    """Withdraw an account's API token, e.g. when it may have leaked or its script is retired."""
    session, user = get_session(), _user_or_404(user_id)
    page = confirmation_page(f"Thu hồi mã truy cập API của tài khoản {user.username}",
                             f"Mã truy cập API của tài khoản {user.username} sẽ không dùng được nữa; chủ tài "
                             "khoản có thể tự tạo mã mới.", "Thu hồi mã", url_for("admin.user_list"))
    if page is not None:
        return page
    if users.revoke_api_token(session, user, by=current_user):
        session.commit()
        flash(f"Đã thu hồi mã truy cập API của tài khoản {user.username}.", "info")
    else:
        flash(f"Tài khoản {user.username} không có mã truy cập API.", "info")
    return redirect(url_for("admin.user_list"))


@bp.route("/users/<int:user_id>/password", methods=["POST"])
@role_required(Role.ADMIN)
def user_password(user_id: int):
    """Set a new password for an account (its sessions end); the admin hands it over in person."""
    return _change_account(
        user_id, ResetPasswordForm(),
        lambda session, user, form: users.reset_password(session, user, form.password.data, by=current_user,
                                                         secret=current_app.config["SECRET_KEY"]),
        lambda user: f"Đã đặt mật khẩu mới cho tài khoản {user.username}; các phiên đăng nhập và mã truy "
                     "cập API của tài khoản đã hết hiệu lực.")


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@role_required(Role.ADMIN)
def user_role(user_id: int):
    return _change_account(
        user_id, RoleForm(),
        lambda session, user, form: users.set_role(session, user, form.role.data, by=current_user),
        lambda user: f"Tài khoản {user.username} có vai trò {ROLE_NAMES[user.role]}.")


def _change_account(user_id: int, form: FlaskForm, change, done):
    """Validate ``form``, apply ``change`` to the account, and show the accounts page with the error next
    to the account's row, or go back to it with the ``done`` message."""
    session, user = get_session(), _user_or_404(user_id)
    error = None if form.validate() else " ".join(e for errs in form.errors.values() for e in errs)
    if error is None:
        try:
            change(session, user, form)
        except users.UserError as exc:
            session.rollback()
            error = str(exc)
    if error:
        return _users_page(UserForm(formdata=None), 400, {user.id: error})
    session.commit()
    flash(done(user), "info")
    return redirect(url_for("admin.user_list"))


def _audit_filter() -> audit_log_service.AuditFilter:
    return audit_log_service.parse_filter(request.args)


def _zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["DISPLAY_TIMEZONE"])


@bp.route("/audit")
@role_required(Role.ADMIN)
def audit_log():
    session, found = get_session(), _audit_filter()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    events, total = audit_log_service.events(session, found, _zone(), page=page)
    pages = max(1, -(-total // audit_log_service.PER_PAGE))
    return render_template("admin/audit.html", events=events, total=total, page=min(page, pages), filter=found,
                           args=found.as_args(), pages=pages,
                           targets=audit_log_service.target_labels(session, events), log=audit_log_service,
                           zone=_zone(), who_choices=audit_log_service.who_choices(session))


@bp.route("/audit.csv")
@role_required(Role.ADMIN)
def audit_csv():
    body = audit_log_service.csv_text(get_session(), _audit_filter(), _zone())
    return Response(body.encode("utf-8"), mimetype="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="nhat-ky-thao-tac-{date.today().isoformat()}.csv"'})


class ScheduleForm(FlaskForm):
    opens_on = VietnameseDateField("Mở nhận phiếu từ ngày", validators=[InputRequired("Vui lòng chọn ngày mở.")])
    closes_on = VietnameseDateField("Đến hết ngày", validators=[InputRequired("Vui lòng chọn ngày đóng.")])


@bp.route("/rounds")
@role_required(Role.SUPERVISOR, Role.ANALYST)
def round_list():
    return _rounds_page({}, 200)


def _rounds_page(errors: dict[str, list[str]], status: int):
    session = get_session()
    listing = [(rnd, rounds.form_versions(session, rnd), ScheduleForm(obj=rnd, formdata=None))
               for rnd in rounds.list_rounds(session)]
    return render_template("admin/rounds.html", listing=listing, errors=errors, today=date.today(),
                           may_schedule=current_user.role in (Role.ADMIN, Role.SUPERVISOR)), status


@bp.route("/rounds/<round_code>/schedule", methods=["POST"])
@role_required(Role.SUPERVISOR)
def round_schedule(round_code: str):
    """Move the collection window (e.g. extend it); reopens a round closed early."""
    session, rnd = get_session(), round_or_404(round_code)
    form = ScheduleForm()
    if not form.validate():
        return _rounds_page({rnd.code: [e for errs in form.errors.values() for e in errs]}, 400)
    try:
        rounds.schedule(session, rnd, form.opens_on.data, form.closes_on.data, by=current_user)
    except rounds.RoundError as exc:
        session.rollback()
        return _rounds_page({rnd.code: [str(exc)]}, 400)
    session.commit()
    flash(f"Đợt {rnd.code} nhận phiếu từ {rnd.opens_on:%d/%m/%Y} đến hết {rnd.closes_on:%d/%m/%Y}.", "info")
    return redirect(url_for("admin.round_list"))


@bp.route("/rounds/<round_code>/close", methods=["POST"])
@role_required(Role.SUPERVISOR)
def round_close(round_code: str):
    """Stop collection now: no code can be opened or submitted afterwards."""
    session, rnd = get_session(), round_or_404(round_code)
    try:
        released = rounds.close(session, rnd, secret=current_app.config["SECRET_KEY"], by=current_user)
    except rounds.RoundError as exc:
        session.rollback()
        return _rounds_page({rnd.code: [str(exc)]}, 409)
    session.commit()
    flash(f"Đã đóng đợt khảo sát {rnd.code}; {released.ballots} phiếu trực tuyến đang niêm phong đã được đưa vào "
          "dữ liệu." + (" " + ballots.waiting_note(released.waiting, owner_sealed=True) if released.waiting else ""),
          "info")
    return redirect(url_for("admin.round_list"))
