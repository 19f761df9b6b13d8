"""A staff member's own API token: create or replace it (shown once, with its expiry), or revoke it."""
from __future__ import annotations

from datetime import timezone

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from survey_service.db import get_session
from survey_service.models import Role, utcnow
from survey_service.services import users
from survey_service.web import confirmation_page

bp = Blueprint("tokens", __name__, url_prefix="/staff/api-token")

NAV = [("tokens.show", "Mã truy cập API", "Tạo mã để lấy số liệu qua API (/api/v1)",
        [Role.SUPERVISOR, Role.ANALYST])]


def _page(token: str | None = None):
    user = current_user._get_current_object()
    expires = user.api_token_expires_at
    expired = expires is not None and _aware(expires) <= utcnow()
    return render_template("tokens/show.html", token=token, has_token=user.api_token_hash is not None,
                           expires=expires, expired=expired, days=current_app.config["API_TOKEN_DAYS"])


def _aware(at):
    """Stored times are UTC; SQLite gives them back without a zone."""
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


@bp.route("/", methods=["GET"])
@login_required
def show():
    return _page()


@bp.route("/", methods=["POST"])
@login_required
def create():
    session = get_session()
    user = current_user._get_current_object()
    token = users.issue_api_token(session, user, days=current_app.config["API_TOKEN_DAYS"], by=user)
    session.commit()
    return _page(token)


@bp.route("/revoke", methods=["POST"])
@login_required
def revoke():
    """The owner withdraws their token, e.g. when a script that held it is retired or it may have leaked."""
    page = confirmation_page("Thu hồi mã truy cập API",
                             "Mã truy cập API hiện tại của bạn sẽ không dùng được nữa; các chương trình đang "
                             "dùng mã này sẽ bị từ chối cho đến khi bạn tạo mã mới.",
                             "Thu hồi mã", url_for("tokens.show"))
    if page is not None:
        return page
    session = get_session()
    user = current_user._get_current_object()
    if users.revoke_api_token(session, user, by=user):
        session.commit()
        flash("Đã thu hồi mã truy cập API. Mã cũ không còn dùng được.", "info")
    else:
        flash("Bạn chưa có mã truy cập API nào.", "info")
    return redirect(url_for("tokens.show"))
