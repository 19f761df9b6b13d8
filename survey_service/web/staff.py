"""The staff home page: per role, links to what that role may use."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_login import current_user, login_required

from survey_service.models import Role
from survey_service.web.auth import INDEPENDENT_ROLES

bp = Blueprint("staff", __name__)

ROLE_NAMES = {
    Role.ADMIN: "Quản trị viên",
    Role.SUPERVISOR: "Giám sát viên (Sở Nội vụ)",
    Role.CLERK: "Nhân viên bưu điện nhập phiếu",
    Role.ANALYST: "Chuyên viên phân tích",
    Role.OBSERVER: "Quan sát viên (MTTQ, Hội CCB)",
    Role.AUDITOR: "Cán bộ phúc tra",
}


@bp.route("/staff/")
@login_required
def home():
    links = [
        entry for entry in current_app.extensions["staff_nav"]
        if current_user.role in entry[3]
        or (current_user.role is Role.ADMIN and not set(entry[3]) <= INDEPENDENT_ROLES)
    ]
    return render_template("staff/home.html", links=links, role_name=ROLE_NAMES[current_user.role])

