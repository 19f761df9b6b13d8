"""Fixed-window rate limits counted in the database, so every server process shares one counter.

A counter row is (key, window start); the increment is a single ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` statement, which is atomic on SQLite and PostgreSQL alike: two processes hitting the same key
at the same moment get two different counts, never the same one. Client addresses are stored only as a
keyed SHA-256, never in clear.
"""
from __future__ import annotations

import hashlib
import hmac
import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from survey_service.models import RateCounter


_COUNT = sa.select(RateCounter.count).where(
    RateCounter.key == sa.bindparam("key"), RateCounter.window_start == sa.bindparam("start"))
_COUNT_SHARED = _COUNT.with_for_update(read=True)


def client_key(scope: str, address: str, secret: str) -> str:
    """The counter key of a client: ``<scope>:<HMAC-SHA256 of the address>`` (the address is not kept)."""
    digest = hmac.new(secret.encode(), (address or "").encode(), hashlib.sha256).hexdigest()
    return f"{scope}:{digest}"


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
    count = session.execute(stmt).scalar_one()
    if count == 1:
        # First hit of a new window: drop the windows that can no longer matter.
        session.execute(sa.delete(RateCounter).where(RateCounter.window_start < start - window_seconds))
    return count


def current(
    session: Session, key: str, *, window_seconds: int, now: float | None = None, share_lock: bool = False,
) -> int:
    """The key's count in the current window, without changing it.

    With ``share_lock`` (PostgreSQL ``FOR SHARE``) the read waits for transactions that are adding to the
    counter and blocks new additions until this transaction ends, while other readers go on in parallel.
    """
    params = {"key": key, "start": window_start(window_seconds, now)}
    return session.scalar(_COUNT_SHARED if share_lock else _COUNT, params) or 0
