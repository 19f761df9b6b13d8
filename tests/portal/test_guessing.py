"""The guessing limit on invitation codes: generous enough for an office behind one address, counted
without audit rows, and keyed per window with a key that is thrown away with the window."""
from __future__ import annotations

import hashlib
import hmac

import pytest
import sqlalchemy as sa

from survey_service.config import DEFAULTS
from survey_service.models import AuditEvent, RateCounter, RateWindowKey
from survey_service.services import portal, ratelimit
from survey_service.web.respond import local_today

WINDOW = DEFAULTS["CODE_LOOKUP_WINDOW_SECONDS"]
T0 = 1_800_000_000 // WINDOW * WINDOW


def test_an_office_of_two_hundred_behind_one_address_is_never_refused(issue, session):
    """Everyone of a large cell mistypes their code twice before typing it right, all from one address
    within one window: with the default limit nobody is refused."""
    codes = issue("CC-CT", "SNV", 200)
    today = local_today()
    for code in codes:
        guard = portal.Guard(ratelimit.client_key(session, "code", "203.0.113.7", window_seconds=WINDOW, now=T0),
                             DEFAULTS["CODE_LOOKUP_LIMIT"], WINDOW)
        for typo in ("ABCD-EFGH-JKMN", code[:-1] + ("A" if code[-1] != "A" else "B")):
            with pytest.raises(portal.Refusal, match="unknown"):
                portal.open_code(session, typo, today=today, secret="s", guard=guard)
        portal.open_code(session, code, today=today, secret="s", guard=guard)
    session.commit()
    assert session.scalars(sa.select(RateCounter.count)).all() == [400]
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action.startswith("code.lookup"))) == 0


def test_addresses_are_keyed_per_window_never_with_the_secret_key(app, session):
    key = ratelimit.client_key(session, "code", "198.51.100.23", window_seconds=WINDOW, now=T0)
    ratelimit.hit(session, key, window_seconds=WINDOW, now=T0)
    session.commit()
    [row] = session.scalars(sa.select(RateWindowKey)).all()
    assert (row.scope, row.window_start) == ("code", T0)
    assert key == "code:" + hmac.new(row.secret.encode(), b"198.51.100.23", hashlib.sha256).hexdigest()
    secret_key = app.config["SECRET_KEY"].encode()
    assert key != "code:" + hmac.new(secret_key, b"198.51.100.23", hashlib.sha256).hexdigest()
    # the same window, the same key (another process would read it from the database)
    assert ratelimit.client_key(session, "code", "198.51.100.23", window_seconds=WINDOW, now=T0 + 5) == key


def test_a_new_window_throws_the_old_key_and_counters_away(session):
    old = ratelimit.client_key(session, "code", "198.51.100.23", window_seconds=WINDOW, now=T0)
    ratelimit.hit(session, old, window_seconds=WINDOW, now=T0)
    ratelimit.hit(session, "other:kept", window_seconds=WINDOW, now=T0)
    session.commit()
    new = ratelimit.client_key(session, "code", "198.51.100.23", window_seconds=WINDOW, now=T0 + WINDOW)
    session.commit()
    assert new != old
    assert session.scalars(sa.select(RateWindowKey.window_start)).all() == [T0 + WINDOW]
    assert session.scalars(sa.select(RateCounter.key)).all() == ["other:kept"]
    # with every key still stored, no address of the last 65,536 of a /16 gives back the old counter key
    secrets_left = session.scalars(sa.select(RateWindowKey.secret)).all()
    candidates = (f"198.51.{a}.{b}" for a in range(256) for b in range(256))
    assert not any("code:" + hmac.new(s.encode(), c.encode(), hashlib.sha256).hexdigest() == old
                   for c in candidates for s in secrets_left)


def test_an_ipv6_client_counts_by_its_64_network(session):
    one = ratelimit.client_key(session, "code", "2001:db8:1:2::1", window_seconds=WINDOW, now=T0)
    same = ratelimit.client_key(session, "code", "2001:db8:1:2:ffff::9", window_seconds=WINDOW, now=T0)
    other = ratelimit.client_key(session, "code", "2001:db8:1:3::1", window_seconds=WINDOW, now=T0)
    mapped = ratelimit.client_key(session, "code", "::ffff:198.51.100.23", window_seconds=WINDOW, now=T0)
    plain = ratelimit.client_key(session, "code", "198.51.100.23", window_seconds=WINDOW, now=T0)
    assert one == same != other and mapped == plain
