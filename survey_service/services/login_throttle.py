"""Growing delays after failed logins, counted in the database (the service runs as several processes).

An attempt is counted on three counters: its username from its address (``free_failures``, 5), its
username from every address together (``account_free_failures``, 10) and its address with every username
together (``address_free_failures``, 20); an IPv6 address counts as its /64 network. Past a counter's free
failures, the next attempt under it waits 1 s, then 2 s, 4 s ... up to ``max_delay_seconds``. So one guesser
cannot try many passwords on an account however many addresses they use, nor one password on many
accounts from one address.

The per-account counter alone would let anyone keep a real user out by typing wrong passwords. A browser
where the user logged in before holds a *device cookie* (signed; a random device id and keyed hashes of
the usernames that logged in on it): an attempt that presents a valid one for its username is counted on
that device's counter alone (``free_failures``), and none of the others apply to it. An unknown username is
throttled exactly like a known one (same counters, same answers), so the answers do not tell which
accounts exist.

Every attempt is counted *before* its password is checked, by one ``INSERT ... ON CONFLICT DO UPDATE ...
WHERE ... RETURNING`` statement per counter, atomic on SQLite and PostgreSQL alike: it adds the failure and
sets the time before which the next attempt is refused in the same step, and returns no row while that time
has not come; the caller then rolls back, so a refused attempt counts nowhere. Parallel attempts therefore
cannot all slip through, nor lose each other's counts; they lock counters in one order (pair, address,
account), so they cannot deadlock. A correct password then clears the pair, account or device counter and
takes its attempt back from the address's. Rows hold only keyed hashes of usernames, addresses and devices.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from survey_service.models import LoginThrottle
from survey_service.services.ratelimit import network

PAIR, ADDRESS, ACCOUNT, DEVICE = "pair", "address", "account", "device"
#: The usernames one device cookie names at most (a shared office computer), most recent first.
DEVICE_USERNAMES = 10


@dataclass(frozen=True)
class Policy:
    #: Failures in a row without any delay, for one username from one address (or one device).
    free_failures: int = 5
    #: The delay after the n-th failure is 2^(n - free_failures) seconds, at most this long.
    max_delay_seconds: int = 900
    #: A counter whose last failure is older than this starts again from zero.
    forget_after_seconds: int = 86_400
    #: Failures of one username from every address together (attempts without its device cookie).
    account_free_failures: int = 10
    #: Failures from one address with every username together (attempts without a device cookie).
    address_free_failures: int = 20
    #: How long a device cookie is honoured after the login that set it.
    device_cookie_days: int = 180

    def of(self, kind: str) -> Policy:
        """The policy of one kind of counter: its own free failures, the same delays."""
        free = {ACCOUNT: self.account_free_failures, ADDRESS: self.address_free_failures}.get(kind)
        return self if free is None else dataclasses.replace(self, free_failures=free)

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


@dataclass(frozen=True)
class Counter:
    kind: str
    key: str
    #: ``LoginThrottle.account``: the username's hash for a username's counters, the key itself for an
    #: address's, so that clearing an account's delays leaves addresses alone.
    account: str


def _digest(secret: str, *parts: str) -> str:
    key = hmac.new(secret.encode(), b"login-throttle", hashlib.sha256).digest()
    return hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()


def account_key(secret: str, username: str) -> str:
    return _digest(secret, "account", username)


def pair_key(secret: str, username: str, address: str) -> str:
    return _digest(secret, "pair", username, network(address))


def counters(secret: str, username: str, address: str, device: str | None = None) -> list[Counter]:
    """The counters of an attempt, in the order they are locked: the device's alone when the attempt
    presents a device cookie for its username (``device`` is the cookie's device id), else the pair's, the
    address's and the account's."""
    account = account_key(secret, username)
    if device:
        return [Counter(DEVICE, _digest(secret, DEVICE, username, device), account)]
    by_address = _digest(secret, ADDRESS, network(address))
    return [Counter(PAIR, pair_key(secret, username, address), account),
            Counter(ADDRESS, by_address, by_address),
            Counter(ACCOUNT, _digest(secret, "all-addresses", username), account)]


def now_ms() -> int:
    return int(time.time() * 1000)


def claim(session: Session, *, secret: str, username: str, address: str, policy: Policy,
          device: str | None = None, now: int | None = None) -> int | None:
    """Count one attempt as a failure on each of its counters and return the first counter's failures so
    far, or None as soon as one counter must still wait: the caller then rolls back, so that the refused
    attempt counts nowhere."""
    now = now_ms() if now is None else now
    first = None
    for counter in counters(secret, username, address, device):
        failures = _claim(session, counter, policy.of(counter.kind), now)
        if failures is None:
            return None
        first = failures if first is None else first
    return first


def _claim(session: Session, counter: Counter, policy: Policy, now: int) -> int | None:
    table = LoginThrottle.__table__
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    at = sa.cast(sa.literal(now, sa.BigInteger), sa.BigInteger)  # epoch ms do not fit PostgreSQL's integer
    failures = sa.case((table.c.last_failure < at - 1000 * policy.forget_after_seconds, 1),
                       else_=table.c.failures + 1)
    stmt = insert(table).values(key=counter.key, account=counter.account, failures=1,
                                blocked_until=now + policy.delay_ms(1), last_failure=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={"failures": failures, "blocked_until": at + policy.ladder(failures), "last_failure": at},
        where=table.c.blocked_until <= at,
    ).returning(table.c.failures)
    return session.execute(stmt).scalar_one_or_none()


def wait(session: Session, *, secret: str, username: str, address: str, device: str | None = None,
         now: int | None = None) -> tuple[int, str]:
    """Whole seconds before the attempt may be tried again (at least 1), and the kind of the counter that
    holds it back the longest."""
    now = now_ms() if now is None else now
    kinds = {c.key: c.kind for c in counters(secret, username, address, device)}
    rows = session.execute(sa.select(LoginThrottle.key, LoginThrottle.blocked_until)
                           .where(LoginThrottle.key.in_(list(kinds)))).all()
    until, kind = max(((r.blocked_until, kinds[r.key]) for r in rows), default=(now, PAIR))
    return max(1, -(-(until - now) // 1000)), kind


def succeed(session: Session, *, secret: str, username: str, address: str, device: str | None = None) -> None:
    """After a correct password: the attempt's pair, account or device counter starts again from zero, and
    the address gets back the attempt it counted, so an office's logins never add up to a delay."""
    for counter in counters(secret, username, address, device):
        if counter.kind == ADDRESS:
            session.execute(sa.update(LoginThrottle)
                            .where(LoginThrottle.key == counter.key, LoginThrottle.failures > 0)
                            .values(failures=LoginThrottle.failures - 1))
        else:
            session.execute(sa.delete(LoginThrottle).where(LoginThrottle.key == counter.key))


def clear(session: Session, *, secret: str, username: str) -> int:
    """Forget an account's failures from every address and device (an admin's reset)."""
    return session.execute(sa.delete(LoginThrottle).where(
        LoginThrottle.account == account_key(secret, username))).rowcount


def waiting_accounts(session: Session, *, secret: str, usernames: list[str], now: int | None = None) -> set[str]:
    """The usernames with an address or a device that must currently wait before trying again."""
    now = now_ms() if now is None else now
    by_key = {account_key(secret, u): u for u in usernames}
    keys = session.scalars(sa.select(LoginThrottle.account).where(
        LoginThrottle.account.in_(list(by_key)), LoginThrottle.blocked_until > now)).all()
    return {by_key[k] for k in keys}


def forget_old(session: Session, policy: Policy, now: int | None = None) -> None:
    """Drop counters whose last failure is past the forget period (their next attempt would start at 1).
    Rows another attempt holds are skipped, not waited for: waiting here could deadlock with it."""
    now = now_ms() if now is None else now
    stale = sa.select(LoginThrottle.key).where(
        LoginThrottle.last_failure < now - 1000 * policy.forget_after_seconds,
    ).with_for_update(skip_locked=True)
    session.execute(sa.delete(LoginThrottle).where(LoginThrottle.key.in_(stale.scalar_subquery())))


# --- device cookies ---------------------------------------------------------------------------------------
def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="login-device-cookie")


def _name(secret: str, username: str) -> str:
    return _digest(secret, "device-user", username)[:32]


def _read_device(secret: str, cookie: str | None, max_age_seconds: int) -> dict | None:
    if not cookie:
        return None
    try:
        data = _serializer(secret).loads(cookie, max_age=max_age_seconds)
    except BadData:  # forged, altered or expired
        return None
    valid = (isinstance(data, dict) and isinstance(data.get("d"), str) and isinstance(data.get("u"), list)
             and all(isinstance(n, str) for n in data["u"]))
    return data if valid else None


def trusted_device(secret: str, cookie: str | None, username: str, policy: Policy) -> str | None:
    """The device id of a valid device cookie that names ``username``, else None."""
    data = _read_device(secret, cookie, policy.device_cookie_days * 86_400)
    return data["d"] if data is not None and _name(secret, username) in data["u"] else None


def device_cookie(secret: str, cookie: str | None, username: str, policy: Policy) -> str:
    """The device cookie to set once ``username`` has logged in: the browser's device id (a new one if it
    had no valid cookie) and the usernames it named, ``username`` first."""
    data = _read_device(secret, cookie, policy.device_cookie_days * 86_400) or {
        "d": secrets.token_urlsafe(16), "u": []}
    name = _name(secret, username)
    names = [name] + [n for n in data["u"] if n != name]
    return _serializer(secret).dumps({"d": data["d"], "u": names[:DEVICE_USERNAMES]})
