"""The demonstration's staff accounts: made, or given new passwords, through the users service's audited
paths, like any other account."""
from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.orm import Session

from survey_service.models import Role, StaffUser
from survey_service.services import users

ACCOUNTS = [
    ("admin", Role.ADMIN, "Quản trị hệ thống"),
    ("giamsat", Role.SUPERVISOR, "Nguyễn Thị Giám Sát"),
    ("buudien", Role.CLERK, "Trần Văn Bưu Điện"),
    ("buudien2", Role.CLERK, "Lê Thị Nhập Liệu"),
    ("phantich", Role.ANALYST, "Phạm Minh Phân Tích"),
    ("quansat", Role.OBSERVER, "Hoàng Văn Quan Sát (MTTQ)"),
    ("phuctra", Role.AUDITOR, "Đỗ Thị Phúc Tra"),
]


def reset_accounts(session: Session, *, secret: str) -> list[tuple[StaffUser, str]]:
    """Every demo account with a fresh random password (created when missing); an existing account's
    sessions and API token end and its login delays are lifted, as an admin's reset does. The caller
    commits."""
    out = []
    for username, role, full_name in ACCOUNTS:
        password = secrets.token_urlsafe(9)
        user = session.scalar(sa.select(StaffUser).where(StaffUser.username == username))
        if user is None:
            user = users.create_user(session, username, password, role, full_name=full_name, actor="demo")
        else:
            users.reset_password(session, user, password, by=None, actor="demo", secret=secret)
        out.append((user, password))
    return out
