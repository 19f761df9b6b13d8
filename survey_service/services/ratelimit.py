"""Fixed-window rate limits counted in the database, so every server process shares one counter.

A counter row is (key, window start); the increment is a single ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` statement, which is atomic on SQLite and PostgreSQL alike: two processes hitting the same key
at the same moment get two different counts, never the same one.

Client addresses are stored only as an HMAC-SHA256 under a random key of the window (a
:class:`RateWindowKey` row, shared by every process), never in clear and never under ``SECRET_KEY``. The
first look-up of a new window deletes the older windows' counters *and their keys*: once a window is over,
nobody, even with every secret of the service, can tell which addresses its counters belonged to (trying
every IPv4 address needs the key). An IPv6 client counts by its /64 network, the block one subscriber gets.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from survey_service.models import RateCounter, RateWindowKey


_COUNT = sa.select(RateCounter.count).where(
    RateCounter.key == sa.bindparam("key"), RateCounter.window_start == sa.bindparam("start"))
_COUNT_SHARED = _COUNT.with_for_update(read=True)


def client_key(session: Session, scope: str, address: str, *, window_seconds: int,
               now: float | None = None) -> str:
    """The counter key of a client in the current window: ``<scope>:<HMAC-SHA256 of the address under
    the window's key>`` (the address is not kept)."""
    secret = window_key(session, scope, window_seconds=window_seconds, now=now)
    digest = hmac.new(secret.encode(), network(address).encode(), hashlib.sha256).hexdigest()
    return f"{scope}:{digest}"


def network(address: str) -> str:
    """What a client is counted as: an IPv4 address (an IPv4-mapped IPv6 one too), or an IPv6 address's /64
    network, the block one subscriber gets and can pick addresses from at will."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or ""
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def window_key(session: Session, scope: str, *, window_seconds: int, now: float | None = None) -> str:
    """The random key of the scope's current window, created by the first process that needs it; creating
    it deletes the scope's older windows, counters and keys alike."""
    start = window_start(window_seconds, now)
    query = sa.select(RateWindowKey.secret).where(RateWindowKey.scope == scope,
                                                  RateWindowKey.window_start == start)
    secret = session.scalar(query)
    if secret is None:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        created = session.execute(
            insert(RateWindowKey).values(scope=scope, window_start=start, secret=secrets.token_hex(32))
            .on_conflict_do_nothing().returning(RateWindowKey.secret)).scalar_one_or_none()
        if created is not None:
            session.execute(sa.delete(RateWindowKey).where(RateWindowKey.scope == scope,
                                                           RateWindowKey.window_start < start))
            session.execute(sa.delete(RateCounter).where(RateCounter.key.startswith(f"{scope}:"),
                                                         RateCounter.window_start < start))
        secret = created or session.scalar(query)
    return secret


def window_start(window_seconds: int, now: float | None = None) -> int:
    now = time.time() if now is None else now
    return int(now) // window_seconds * window_seconds


def hit(session: Session, key: str, *, window_seconds: int, now: float | None = None) -> int:
    """Add one to the key's counter in the current window and return the new count (atomic)."""
    start = window_start(window_seconds, now)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(RateCounter).values(key=key, window_start=start, count=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[RateCounter.key, RateCounter.window_start],
        set_={"count": RateCounter.count + 1},
    ).returning(RateCounter.count)
    return session.execute(stmt).scalar_one()


def current(
    session: Session, key: str, *, window_seconds: int, now: float | None = None, share_lock: bool = False,
) -> int:
    """The key's count in the current window, without changing it.

    With ``share_lock`` (PostgreSQL ``FOR SHARE``) the read waits for transactions that are adding to the
    counter and blocks new additions until this transaction ends, while other readers go on in parallel.
    """
    params = {"key": key, "start": window_start(window_seconds, now)}
    return session.scalar(_COUNT_SHARED if share_lock else _COUNT, params) or 0
