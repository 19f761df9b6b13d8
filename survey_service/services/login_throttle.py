"""Growing delays after failed logins, per account and client address together.

A wrong password from one address slows down only that address's attempts on that account: nobody can
keep a real user out by typing wrong passwords elsewhere, and an unknown username is throttled exactly
like a known one (same counters, same answers), so the answers do not tell which accounts exist.

Every attempt is counted *before* its password is checked, by one ``INSERT ... ON CONFLICT DO UPDATE ...
WHERE ... RETURNING`` statement, atomic on SQLite and PostgreSQL alike: it adds the failure and sets the
time before which the next attempt is refused in the same step, and returns no row while that time has
not come. Parallel attempts therefore cannot all slip through, nor lose each other's counts. A correct
password then clears the pair's row. Rows hold only keyed hashes of the username and the address.
"""
from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from survey_service.models import LoginThrottle


@dataclass(frozen=True)
class Policy:
    #: Failures in a row without any delay.
    free_failures: int = 5
    #: The delay after the n-th failure is 2^(n - free_failures) seconds, at most this long.
    max_delay_seconds: int = 900
    #: A pair whose last failure is older than this starts again from zero.
    forget_after_seconds: int = 86_400

    def delay_ms(self, failures: int) -> int:
        """Milliseconds before the attempt after ``failures`` failures may be checked."""
        if failures < self.free_failures:
            return 0
        return 1000 * min(self.max_delay_seconds, 2 ** min(failures - self.free_failures, 30))

    def ladder(self, failures) -> sa.ColumnElement:
        """:meth:`delay_ms` as an SQL expression of a failure count (no portable power function)."""
        steps, n = [], self.free_failures
        while self.delay_ms(n) < 1000 * self.max_delay_seconds:
            steps.append((failures == n, self.delay_ms(n)))
            n += 1
        return sa.case((failures < self.free_failures, 0), *steps, else_=1000 * self.max_delay_seconds)


def _digest(secret: str, *parts: str) -> str:
    key = hmac.new(secret.encode(), b"login-throttle", hashlib.sha256).digest()
    return hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()


def account_key(secret: str, username: str) -> str:
    return _digest(secret, "account", username)


def pair_key(secret: str, username: str, address: str) -> str:
    return _digest(secret, "pair", username, address or "")


def now_ms() -> int:
    return int(time.time() * 1000)


def claim(session: Session, *, secret: str, username: str, address: str, policy: Policy,
          now: int | None = None) -> int | None:
    """Count one attempt of ``username`` from ``address`` as a failure and return the failures so far,
    or None while the pair must still wait (nothing is counted then)."""
    now = now_ms() if now is None else now
    table = LoginThrottle.__table__
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    at = sa.cast(sa.literal(now, sa.BigInteger), sa.BigInteger)  # epoch ms do not fit PostgreSQL's integer
    failures = sa.case((table.c.last_failure < at - 1000 * policy.forget_after_seconds, 1),
                       else_=table.c.failures + 1)
    stmt = insert(table).values(key=pair_key(secret, username, address), account=account_key(secret, username),
                                failures=1, blocked_until=now + policy.delay_ms(1), last_failure=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={"failures": failures, "blocked_until": at + policy.ladder(failures), "last_failure": at},
        where=table.c.blocked_until <= at,
    ).returning(table.c.failures)
    return session.execute(stmt).scalar_one_or_none()


def wait_seconds(session: Session, *, secret: str, username: str, address: str, now: int | None = None) -> int:
    """Whole seconds before the pair may try again (at least 1)."""
    now = now_ms() if now is None else now
    until = session.scalar(sa.select(LoginThrottle.blocked_until)
                           .where(LoginThrottle.key == pair_key(secret, username, address)))
    return max(1, -(-((until or now) - now) // 1000))


def clear(session: Session, *, secret: str, username: str, address: str | None = None) -> int:
    """Forget the failures of one pair (after a correct password), or of every address (an admin's reset)."""
    where = (LoginThrottle.key == pair_key(secret, username, address) if address is not None
             else LoginThrottle.account == account_key(secret, username))
    return session.execute(sa.delete(LoginThrottle).where(where)).rowcount


def waiting_accounts(session: Session, *, secret: str, usernames: list[str], now: int | None = None) -> set[str]:
    """The usernames with an address that must currently wait before trying again."""
    now = now_ms() if now is None else now
    by_key = {account_key(secret, u): u for u in usernames}
    keys = session.scalars(sa.select(LoginThrottle.account).where(
        LoginThrottle.account.in_(list(by_key)), LoginThrottle.blocked_until > now)).all()
    return {by_key[k] for k in keys}


def forget_old(session: Session, policy: Policy, now: int | None = None) -> None:
    """Drop pairs whose last failure is past the forget period (their next attempt would start at 1)."""
    now = now_ms() if now is None else now
    session.execute(sa.delete(LoginThrottle).where(
        LoginThrottle.last_failure < now - 1000 * policy.forget_after_seconds))
