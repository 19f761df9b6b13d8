"""A staff member's own API token: create or replace it, shown once."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from survey_service.db import get_session
from survey_service.models import Role
from survey_service.services import users

bp = Blueprint("tokens", __name__, url_prefix="/staff/api-token")

NAV = [("tokens.show", "Mã truy cập API", "Tạo mã để lấy số liệu qua API (/api/v1)",
        [Role.SUPERVISOR, Role.ANALYST])]


@bp.route("/", methods=["GET"])
@login_required
def show():
    return render_template("tokens/show.html", token=None, has_token=current_user.api_token_hash is not None)


@bp.route("/", methods=["POST"])
@login_required
def create():
    session = get_session()
    user = current_user._get_current_object()
    token = users.issue_api_token(session, user, by=user)
    session.commit()
    return render_template("tokens/show.html", token=token, has_token=True)
