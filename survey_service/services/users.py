"""Staff accounts: creation, password rules, login with growing delays, password and role changes,
API tokens."""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from survey_service.models import Role, StaffUser, utcnow
from survey_service.services import audit, login_throttle
from survey_service.services.errors import ServiceError

MIN_PASSWORD_LENGTH = 10
#: The login form takes 256 characters; a new password stays well below that.
MAX_PASSWORD_LENGTH = 128
#: How long an API token works unless the configuration says otherwise (``API_TOKEN_DAYS``).
API_TOKEN_DAYS = 90
USERNAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "common_passwords.txt"
# Checked against when the username is unknown, so both paths cost one scrypt verification.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class UserError(ServiceError):
    """A request about staff accounts that cannot be carried out; the message is for the user."""


@dataclass(frozen=True)
class LoginResult:
    user: StaffUser | None
    #: "ok", "bad_credentials", "wait" (too many failures: see ``wait_for``) or "inactive"
    outcome: str
    wait_seconds: int = 0
    #: The kind of counter that holds a "wait" back: "pair" or "device" (this browser and account),
    #: "address" (every account from this address) or "account" (this account from everywhere).
    wait_for: str = ""
    #: After "ok": the device cookie to set, so that this browser is exempt from the account's delays.
    device_cookie: str | None = None


def normalise_username(text: str) -> str:
    """NFKC and case folding, so that full-width ``ａｄｍｉｎ`` or ``ADMIN`` name the account ``admin``."""
    return unicodedata.normalize("NFKC", text or "").casefold().strip()


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def check_password(password: str, username: str) -> None:
    """The rules for a new password. :raises UserError: with the first rule it breaks, in Vietnamese."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"Mật khẩu phải có ít nhất {MIN_PASSWORD_LENGTH} ký tự.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"Mật khẩu dài tối đa {MAX_PASSWORD_LENGTH} ký tự.")
    if any(unicodedata.category(c).startswith("C") for c in password):
        raise UserError("Mật khẩu không được chứa ký tự điều khiển (như NUL, tab, xuống dòng).")
    folded = normalise_username(password)
    if username and normalise_username(username) in folded:
        raise UserError("Mật khẩu không được chứa tên đăng nhập.")
    if folded in common_passwords() or len(set(folded)) < 4:
        raise UserError("Mật khẩu này quá phổ biến hoặc quá dễ đoán (như 1234567890, qwertyuiop). "
                        "Hãy chọn một cụm từ dài mà người khác khó đoán.")


def create_user(
    session: Session, username: str, password: str, role: Role | str, *, full_name: str = "",
    by: StaffUser | None = None, actor: str = "cli",
) -> StaffUser:
    """Create a staff account; refuses look-alike or duplicate usernames and weak passwords."""
    username = normalise_username(username)
    if not USERNAME_PATTERN.fullmatch(username):
        raise UserError("Tên đăng nhập gồm 1–64 chữ cái không dấu (a–z), chữ số, dấu chấm, gạch dưới hoặc "
                        "gạch ngang, bắt đầu và kết thúc bằng chữ hoặc số (ví dụ: nguyenvana).")
    role = _role(role)
    check_password(password, username)
    if session.scalar(sa.select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise UserError(f"Tên đăng nhập '{username}' đã tồn tại.")
    user = StaffUser(username=username, full_name=full_name, role=role,
                     password_hash=generate_password_hash(password))
    session.add(user)
    session.flush()
    audit.record(session, "user.create", user=by, actor=actor, object_type="staff_user",
                 object_id=user.id, new={"username": username, "role": role.value})
    return user


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UserError(f"Vai trò không hợp lệ: {role}. Chọn một trong: "
                        + ", ".join(r.value for r in Role)) from None


def confirm(session: Session, username: str, password: str, role: Role) -> StaffUser:
    """The active account of ``role`` whose own password this is: a person acting at the command line in
    their name (an observer signing off sample lists) proves it is them, as on the web.

    :raises UserError: 403 for an unknown account, a wrong password, another role or an inactive account,
        all with one message, so the answer tells nothing of which accounts exist.
    """
    user = session.scalar(sa.select(StaffUser).where(StaffUser.username == normalise_username(username)))
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or user.role is not role or not user.active:
        raise UserError(f"Sai tên đăng nhập hoặc mật khẩu của tài khoản {role.value} đang hoạt động.", 403)
    return user


def authenticate(
    session: Session, username: str, password: str, *, address: str, secret: str,
    policy: login_throttle.Policy, device_cookie: str | None = None, now: int | None = None,
) -> LoginResult:
    """Check a password, with growing delays after failures (:mod:`login_throttle`).

    The attempt is counted and committed before the (slow) password check, so parallel attempts see each
    other. An unknown username and a wrong password of a known one do the same work: the same counters,
    one scrypt check (of a dummy hash), the same audit insert, so neither the answer nor the time it takes
    tells which accounts exist.
    """
    name = normalise_username(username)
    device = login_throttle.trusted_device(secret, device_cookie, name, policy)
    keys = {"secret": secret, "username": name, "address": address, "device": device}
    failures = login_throttle.claim(session, policy=policy, now=now, **keys)
    if failures is None:
        session.rollback()  # a counter that must still wait: the refused attempt counts nowhere
        seconds, kind = login_throttle.wait(session, now=now, **keys)
        return LoginResult(None, "wait", seconds, wait_for=kind)
    if failures == 1:
        login_throttle.forget_old(session, policy, now)
    session.commit()
    user = session.scalar(sa.select(StaffUser).where(StaffUser.username == name))
    if not check_password_hash(user.password_hash if user else _DUMMY_HASH, password) or user is None:
        audit.record(session, "login.failed" if user else "login.unknown_user", user=user,
                     actor="staff" if user else "anonymous", object_type="staff_user",
                     object_id=user.id if user else None, new={"failures": failures})
        return LoginResult(None, "bad_credentials")
    if not user.active:
        return LoginResult(user, "inactive")
    login_throttle.succeed(session, **keys)
    audit.record(session, "login.ok", user=user, object_type="staff_user", object_id=user.id)
    return LoginResult(user, "ok",
                       device_cookie=login_throttle.device_cookie(secret, device_cookie, name, policy))


def end_sessions(user: StaffUser) -> None:
    """Invalidate every session cookie of the account (logout, new password)."""
    user.session_generation += 1


def _set_password(user: StaffUser, new: str) -> bool:
    """The one way a password is replaced, by its owner or by an admin: the same rules, a fresh hash, and
    every session and the API token of the account end (a stolen cookie or token dies with the old
    password). Returns whether there was a token."""
    check_password(new, user.username)
    user.password_hash = generate_password_hash(new)
    end_sessions(user)
    had_token = user.api_token_hash is not None
    user.api_token_hash = user.api_token_expires_at = None
    return had_token


def change_own_password(session: Session, user: StaffUser, current: str, new: str) -> bool:
    """A staff member sets a new password, proving the current one; other sessions and the API token end.
    Returns whether an API token was withdrawn."""
    if not check_password_hash(user.password_hash, current):
        raise UserError("Mật khẩu hiện tại không đúng.")
    if check_password_hash(user.password_hash, new):
        raise UserError("Mật khẩu mới phải khác mật khẩu hiện tại.")
    had_token = _set_password(user, new)
    audit.record(session, "user.password_change", user=user, object_type="staff_user", object_id=user.id,
                 new={"api_token_revoked": True} if had_token else None)
    return had_token


def reset_password(session: Session, user: StaffUser, new: str, *, by: StaffUser | None, secret: str,
                   actor: str | None = None) -> bool:
    """An admin sets a new password for an account: its sessions and API token end and its login delays
    are lifted. Returns whether an API token was withdrawn."""
    had_token = _set_password(user, new)
    login_throttle.clear(session, secret=secret, username=user.username)
    audit.record(session, "user.password_reset", user=by, actor=actor, object_type="staff_user",
                 object_id=user.id,
                 new={"username": user.username, **({"api_token_revoked": True} if had_token else {})})
    return had_token


def set_role(session: Session, user: StaffUser, role: Role | str, *, by: StaffUser) -> None:
    """Change an account's role (audited); an admin cannot take away their own admin role."""
    role = _role(role)
    if user.id == by.id and role is not Role.ADMIN:
        raise UserError("Bạn không thể tự bỏ vai trò quản trị của mình.")
    if user.role is not role:
        audit.record(session, "user.role", user=by, object_type="staff_user", object_id=user.id,
                     old={"role": user.role.value}, new={"role": role.value})
        user.role = role


def issue_api_token(session: Session, user: StaffUser, *, days: int = API_TOKEN_DAYS,
                    by: StaffUser | None = None, actor: str = "staff", now: datetime | None = None) -> str:
    """Create a new API token for a user (replacing the old one), working for ``days`` days, and return it;
    only its hash is kept."""
    token = secrets.token_urlsafe(32)
    user.api_token_hash = hash_token(token)
    user.api_token_expires_at = (now or utcnow()) + timedelta(days=days)
    audit.record(session, "user.api_token", user=by, actor=actor, object_type="staff_user", object_id=user.id,
                 new={"expires_at": user.api_token_expires_at.isoformat(timespec="minutes")})
    return token


def revoke_api_token(session: Session, user: StaffUser, *, by: StaffUser | None = None,
                     actor: str | None = None) -> bool:
    """Withdraw an account's API token (by its owner or an admin); False when it had none."""
    if user.api_token_hash is None:
        return False
    audit.record(session, "user.api_token_revoke", user=by, actor=actor, object_type="staff_user",
                 object_id=user.id, new={"username": user.username})
    user.api_token_hash = user.api_token_expires_at = None
    return True


def user_for_token(session: Session, token: str, now: datetime | None = None) -> StaffUser | None:
    """The active account whose unexpired token this is, else None."""
    if not token:
        return None
    user = session.scalar(sa.select(StaffUser).where(StaffUser.api_token_hash == hash_token(token),
                                                     StaffUser.api_token_expires_at > (now or utcnow())))
    return user if user is not None and user.active else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def set_active(session: Session, user: StaffUser, active: bool, *, by: StaffUser) -> None:
    """Enable or disable an account (disabled accounts cannot log in or use their API token)."""
    if user.id == by.id and not active:
        raise UserError("Bạn không thể tự vô hiệu hóa tài khoản của mình.")
    if user.active != active:
        audit.record(session, "user.active", user=by, object_type="staff_user", object_id=user.id,
                     old={"active": user.active}, new={"active": active})
        user.active = active


def clear_login_delays(session: Session, user: StaffUser, *, by: StaffUser, secret: str) -> int:
    """Lift the delays that failed logins put on an account, from every address."""
    cleared = login_throttle.clear(session, secret=secret, username=user.username)
    audit.record(session, "user.unlock", user=by, object_type="staff_user", object_id=user.id,
                 new={"addresses_cleared": cleared})
    return cleared


def list_users(session: Session) -> list[StaffUser]:
    return list(session.scalars(sa.select(StaffUser).order_by(StaffUser.role, StaffUser.username)))


def waiting_usernames(session: Session, accounts: list[StaffUser], *, secret: str) -> set[str]:
    """The accounts that some address must currently wait to try again."""
    return login_throttle.waiting_accounts(session, secret=secret, usernames=[u.username for u in accounts])
