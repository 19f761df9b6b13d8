"""Staff accounts: creation, password checks with a per-account lockout, API tokens."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from survey_service.models import Role, StaffUser, utcnow
from survey_service.services import audit

MIN_PASSWORD_LENGTH = 10
# Checked against when the username is unknown, so both paths cost one scrypt verification.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class UserError(ValueError):
    """A request about staff accounts that cannot be carried out; the message is for the user."""


@dataclass(frozen=True)
class LoginResult:
    user: StaffUser | None
    #: "ok", "bad_credentials", "locked" or "inactive"
    outcome: str
    locked_until: datetime | None = None


def create_user(
    session: Session, username: str, password: str, role: Role | str, *, full_name: str = "",
    by: StaffUser | None = None, actor: str = "cli",
) -> StaffUser:
    """Create a staff account; refuses duplicate usernames and short passwords."""
    username = username.strip().lower()
    if not username or not username.replace(".", "").replace("_", "").replace("-", "").isalnum():
        raise UserError("Tên đăng nhập chỉ gồm chữ, số, dấu chấm, gạch dưới hoặc gạch ngang.")
    try:
        role = Role(role)
    except ValueError:
        raise UserError(f"Vai trò không hợp lệ: {role}. Chọn một trong: "
                        + ", ".join(r.value for r in Role)) from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"Mật khẩu phải có ít nhất {MIN_PASSWORD_LENGTH} ký tự.")
    if session.scalar(sa.select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise UserError(f"Tên đăng nhập '{username}' đã tồn tại.")
    user = StaffUser(username=username, full_name=full_name, role=role,
                     password_hash=generate_password_hash(password))
    session.add(user)
    session.flush()
    audit.record(session, "user.create", user=by, actor=actor, object_type="staff_user",
                 object_id=user.id, new={"username": username, "role": role.value})
    return user


def authenticate(
    session: Session, username: str, password: str, *, max_failures: int, lockout: timedelta,
    now: datetime | None = None,
) -> LoginResult:
    """Check a password. After ``max_failures`` wrong passwords in a row the account is locked for
    ``lockout``; the counter lives in the database so it holds across server processes."""
    now = now or utcnow()
    user = session.scalar(
        sa.select(StaffUser).where(StaffUser.username == username.strip().lower()).with_for_update()
    )
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        audit.record(session, "login.unknown_user", actor="anonymous", new={"username": username[:64]})
        return LoginResult(None, "bad_credentials")
    locked_until = _aware(user.locked_until)
    if locked_until and locked_until > now:
        audit.record(session, "login.locked", user=user, object_type="staff_user", object_id=user.id)
        return LoginResult(user, "locked", locked_until)
    if not check_password_hash(user.password_hash, password):
        user.failed_logins += 1
        outcome = "bad_credentials"
        if user.failed_logins >= max_failures:
            user.locked_until = now + lockout
            user.failed_logins = 0
            outcome = "locked"
        audit.record(session, "login.failed", user=user, object_type="staff_user", object_id=user.id,
                     new={"locked_until": user.locked_until.isoformat() if outcome == "locked" else None})
        return LoginResult(user, outcome, user.locked_until if outcome == "locked" else None)
    if not user.active:
        return LoginResult(user, "inactive")
    user.failed_logins = 0
    user.locked_until = None
    audit.record(session, "login.ok", user=user, object_type="staff_user", object_id=user.id)
    return LoginResult(user, "ok")


def issue_api_token(session: Session, user: StaffUser, *, by: StaffUser | None = None,
                    actor: str = "staff") -> str:
    """Create a new API token for a user (replacing the old one) and return it; only its hash is kept."""
    token = secrets.token_urlsafe(32)
    user.api_token_hash = hash_token(token)
    audit.record(session, "user.api_token", user=by, actor=actor, object_type="staff_user", object_id=user.id)
    return token


def user_for_token(session: Session, token: str) -> StaffUser | None:
    if not token:
        return None
    user = session.scalar(sa.select(StaffUser).where(StaffUser.api_token_hash == hash_token(token)))
    return user if user is not None and user.active else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def set_active(session: Session, user: StaffUser, active: bool, *, by: StaffUser) -> None:
    """Enable or disable an account (disabled accounts cannot log in or use their API token)."""
    if user.id == by.id and not active:
        raise UserError("Bạn không thể tự vô hiệu hóa tài khoản của mình.")
    if user.active != active:
        audit.record(session, "user.active", user=by, object_type="staff_user", object_id=user.id,
                     old={"active": user.active}, new={"active": active})
        user.active = active


def unlock(session: Session, user: StaffUser, *, by: StaffUser) -> None:
    """Lift a lockout before it expires."""
    audit.record(session, "user.unlock", user=by, object_type="staff_user", object_id=user.id,
                 old={"locked_until": user.locked_until.isoformat() if user.locked_until else None,
                      "failed_logins": user.failed_logins},
                 new={"locked_until": None, "failed_logins": 0})
    user.locked_until, user.failed_logins = None, 0


def list_users(session: Session) -> list[StaffUser]:
    return list(session.scalars(sa.select(StaffUser).order_by(StaffUser.role, StaffUser.username)))


def is_locked(user: StaffUser, now: datetime | None = None) -> bool:
    locked_until = _aware(user.locked_until)
    return bool(locked_until and locked_until > (now or utcnow()))
