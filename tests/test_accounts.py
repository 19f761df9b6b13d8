"""Staff accounts on both databases: growing delays after failed logins per account and address (atomic
under parallel attempts, the same for unknown and known usernames), sessions that end on the server,
password rules, and the admin's password reset and role change."""
from __future__ import annotations

import re
import threading

import pytest
import sqlalchemy as sa

from survey_service.db import get_session
from survey_service.models import AuditEvent, LoginThrottle, Role, StaffUser
from survey_service.services import login_throttle, users
from tests.conftest import PASSWORD, csrf_token_from

POLICY = login_throttle.Policy(free_failures=5, max_delay_seconds=900, forget_after_seconds=86_400)


def login(client, username, password=PASSWORD, address="10.0.0.1"):
    return client.post("/staff/login", data={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def fresh(app, client, method: str, url: str, **kw):
    """A request in an app context of its own: the test's app context would otherwise keep the user that
    Flask-Login loaded (and the CSRF token) in ``g`` from one request to the next."""
    with app.app_context():
        return client.open(url, method=method, **kw)


def flash_text(response) -> str:
    return re.sub(r"\s+", " ", " ".join(re.findall(r'class="flash[^"]*"[^>]*>(.*?)<', response.get_data(as_text=True))))


# --- delays ------------------------------------------------------------------------------------------
@pytest.fixture
def frozen_clock(monkeypatch):
    """The throttle's clock stands still: a slow machine cannot let a delay run out between requests."""
    monkeypatch.setattr(login_throttle, "now_ms", lambda: 1_900_000_000_000)


def test_unknown_and_known_accounts_get_the_same_answers(client, make_user, frozen_clock):
    make_user("clerk", username="buudien")
    answers = {}
    for name in ("buudien", "khongco"):
        sequence = [login(client, name, "wrong-password-123") for _ in range(7)]
        answers[name] = [(r.status_code, flash_text(r), r.headers.get("Retry-After")) for r in sequence]
    assert answers["buudien"] == answers["khongco"]
    assert [a[0] for a in answers["buudien"]] == [401] * 5 + [429, 429]
    assert answers["buudien"][5][2] == "1" and "đợi 1 giây" in answers["buudien"][5][1]


def test_a_stranger_cannot_keep_the_real_user_out(client, make_user, session, frozen_clock):
    user = make_user("supervisor", username="giamsat")
    for _ in range(5):
        login(client, "giamsat", "guessing-password", address="203.0.113.9")
    assert login(client, "giamsat", PASSWORD, address="203.0.113.9").status_code == 429
    own = login(client, "giamsat", PASSWORD, address="10.1.1.1")
    assert own.status_code == 302
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "login.failed", AuditEvent.user_id == user.id)) == 5  # refused ones not checked


def test_delays_grow_then_the_right_password_clears_them(session, make_user):
    make_user("analyst", username="phantich")
    kw = {"address": "10.0.0.7", "secret": "test-secret", "policy": POLICY}
    t = 1_000_000_000_000
    outcomes = []
    for _ in range(8):
        result = users.authenticate(session, "phantich", "wrong-password-1", now=t, **kw)
        outcomes.append((result.outcome, result.wait_seconds))
        t += 1  # the next attempt one millisecond later
    assert outcomes[:5] == [("bad_credentials", 0)] * 5 and outcomes[5:] == [("wait", 1)] * 3
    waits = []
    for _ in range(4):  # each time the wait is over, one more failure doubles it
        t += 1000 * waits[-1] if waits else 1000
        assert users.authenticate(session, "phantich", "wrong-password-1", now=t, **kw).outcome == "bad_credentials"
        waits.append(users.authenticate(session, "phantich", PASSWORD, now=t, **kw).wait_seconds)
    assert waits == [2, 4, 8, 16]
    t += 16_000
    assert users.authenticate(session, "phantich", PASSWORD, now=t, **kw).outcome == "ok"
    session.commit()
    # The pair's and the account's counts are gone; the address keeps its nine failures, not the success.
    [_, by_address, _] = login_throttle.counters("test-secret", "phantich", "10.0.0.7")
    left = session.execute(sa.select(LoginThrottle.key, LoginThrottle.failures)).all()
    assert left == [(by_address.key, 9)]


def test_the_delay_stops_growing_and_is_forgotten_after_a_day():
    assert POLICY.delay_ms(4) == 0 and POLICY.delay_ms(5) == 1000 and POLICY.delay_ms(14) == 512_000
    assert POLICY.delay_ms(15) == POLICY.delay_ms(10_000) == 900_000


def test_forty_parallel_wrong_passwords_are_counted_once_each(app, make_user, frozen_clock):
    """No lost update, and no burst past the free failures: one statement claims each attempt."""
    make_user("clerk", username="song.song")
    outcomes, barrier = [], threading.Barrier(40)

    def attempt():
        with app.app_context():
            session = get_session()
            barrier.wait()
            result = users.authenticate(session, "song.song", "wrong-password-9", address="10.9.9.9",
                                        secret="test-secret", policy=POLICY)
            session.commit()
            outcomes.append(result.outcome)

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context():
        failures = dict(get_session().execute(sa.select(LoginThrottle.key, LoginThrottle.failures)).all())
    checked = outcomes.count("bad_credentials")
    assert len(outcomes) == 40 and checked + outcomes.count("wait") == 40
    # every counter of the attempt (pair, address, account) holds the five checked ones, no refused one
    kinds = {c.key: c.kind for c in login_throttle.counters("test-secret", "song.song", "10.9.9.9")}
    assert {kinds[k]: n for k, n in failures.items()} == {"pair": 5, "address": 5, "account": 5}
    assert checked == 5


def test_admin_clears_the_delays_of_an_account(client, make_user, session, staff_client):
    victim = make_user("clerk", username="nhanvien")
    start = login_throttle.now_ms() - 11 * 300_000
    for i in range(12):  # twelve failures five minutes apart, the last one now: two minutes to wait
        assert login_throttle.claim(session, secret="test-secret", username="nhanvien", address="10.0.0.1",
                                    policy=POLICY, now=start + i * 300_000) == i + 1
    session.commit()
    assert login(client, "nhanvien").status_code == 429
    admin = staff_client("admin")
    page = admin.get("/staff/admin/users").get_data(as_text=True)
    assert "Phải chờ sau đăng nhập sai" in page
    assert admin.post(f"/staff/admin/users/{victim.id}/unlock").status_code == 302
    account = login_throttle.account_key("test-secret", "nhanvien")
    assert session.scalar(sa.select(sa.func.count()).select_from(LoginThrottle)
                          .where(LoginThrottle.account == account)) == 0
    assert login(client, "nhanvien").status_code == 302


# --- guessing over many addresses or many accounts; device cookies -------------------------------------
def test_guessing_one_account_from_twenty_addresses_is_slowed_down(client, make_user, frozen_clock):
    make_user("supervisor", username="giamsat")
    answers = [login(client, "giamsat", f"guess-{a}-{i}-password", address=f"198.51.100.{a}").status_code
               for a in range(20) for i in range(5)]
    assert answers == [401] * 10 + [429] * 90  # ten checked, from the first two addresses
    refused = login(client, "giamsat", "one-more-guess-1", address="198.51.100.99")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "Tài khoản này đã bị đăng nhập sai nhiều lần. Vui lòng đợi 1 giây" in flash_text(refused)


def test_an_ipv6_network_is_one_address(client, make_user, frozen_clock):
    make_user("supervisor", username="giamsat")
    answers = [login(client, "giamsat", f"guess-{i}-password", address=f"2001:db8:7:9::{i:x}").status_code
               for i in range(1, 201)]
    assert answers == [401] * 5 + [429] * 195
    assert "từ máy này" in flash_text(login(client, "giamsat", PASSWORD, address="2001:db8:7:9:ffff::1"))
    assert login(client, "giamsat", PASSWORD, address="2001:db8:7:a::1").status_code == 302  # the next /64


def test_guessing_many_usernames_from_one_address_is_slowed_down(client, make_user, staff_client,
                                                                 frozen_clock):
    for i in range(3):
        make_user("clerk", username=f"nhanvien{i}")
    names = [f"nhanvien{i}" if i < 3 else f"khongco{i}" for i in range(30)]  # known and unknown alike
    answers = [login(client, name, "mat-khau-pho-bien", address="203.0.113.50") for name in names]
    assert [a.status_code for a in answers] == [401] * 20 + [429] * 10
    assert answers[20].headers["Retry-After"] == "1"
    assert "Đã có nhiều lần đăng nhập sai từ địa chỉ mạng này. Vui lòng đợi 1 giây" in flash_text(answers[20])
    assert login(client, "nhanvien0", address="203.0.113.51").status_code == 302  # another address
    audit = staff_client("admin").get("/staff/admin/audit?action=login.unknown_user")
    assert audit.status_code == 200 and "Đăng nhập bằng tên không tồn tại" in audit.get_data(as_text=True)


def test_the_real_user_with_a_device_cookie_logs_in_during_the_attack(app, client, make_user, frozen_clock):
    make_user("supervisor", username="giamsat")
    own = app.test_client()
    first = login(own, "giamsat", address="10.0.0.5")  # the user's usual browser, before the attack
    assert first.status_code == 302
    cookie = next(c for c in first.headers.getlist("Set-Cookie") if c.startswith("staff_device="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/staff/login" in cookie
    assert f"Max-Age={180 * 86_400}" in cookie
    assert fresh(app, own, "POST", "/staff/logout").status_code == 302
    for a in range(30):  # the attack, from many addresses
        login(client, "giamsat", f"guess-{a}-password", address=f"198.51.100.{a}")
    new_browser = login(app.test_client(), "giamsat", address="10.0.0.5")
    assert new_browser.status_code == 429 and "Tài khoản này" in flash_text(new_browser)
    assert login(own, "giamsat", address="10.0.0.5").status_code == 302
    assert login(own, "giamsat", address="192.0.2.80").status_code == 302  # from anywhere: a laptop travels


def test_a_device_cookie_counts_only_for_its_own_accounts_and_cannot_be_forged(app, client, make_user,
                                                                               frozen_clock):
    make_user("supervisor", username="giamsat")
    make_user("clerk", username="buudien")
    for a in range(3):
        for i in range(5):
            login(client, "giamsat", f"guess-{a}-{i}-password", address=f"198.51.100.{a}")
    thief = app.test_client()
    assert login(thief, "buudien", address="10.0.0.6").status_code == 302  # the attacker's own account
    assert login(thief, "giamsat", PASSWORD, address="10.0.0.6").status_code == 429
    value = thief.get_cookie("staff_device", path="/staff/login").value
    forged = app.test_client()
    forged.set_cookie("staff_device", value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"),
                      path="/staff/login")
    assert login(forged, "giamsat", PASSWORD, address="10.0.0.7").status_code == 429


def test_a_device_has_its_own_limit_and_a_shared_computer_keeps_several_accounts(app, client, make_user,
                                                                                 frozen_clock):
    make_user("supervisor", username="giamsat")
    make_user("clerk", username="buudien")
    office = app.test_client()
    for name in ("giamsat", "buudien"):
        assert login(office, name, address="10.0.0.8").status_code == 302
        assert fresh(app, office, "POST", "/staff/logout").status_code == 302
    for a in range(3):  # both accounts under attack
        for name in ("giamsat", "buudien"):
            for i in range(5):
                login(client, name, f"guess-{a}-{i}-password", address=f"198.51.100.{a}")
    for name in ("giamsat", "buudien"):
        assert login(office, name, address="10.0.0.8").status_code == 302, name
        assert fresh(app, office, "POST", "/staff/logout").status_code == 302
    # The device's own limit: five wrong passwords, then the growing delays, from this browser only.
    assert [login(office, "giamsat", "not-my-password", address="10.0.0.8").status_code
            for _ in range(6)] == [401] * 5 + [429]
    refused = login(office, "giamsat", address="10.0.0.8")
    assert refused.headers["Retry-After"] == "1" and "từ máy này" in flash_text(refused)
    assert login(office, "buudien", address="10.0.0.8").status_code == 302  # another account on it


def test_a_wrong_password_and_an_unknown_username_do_the_same_work(app, session, make_user, monkeypatch):
    """No timing: the same statements in the same order, and one hash check of the same cost each."""
    user = make_user("supervisor", username="giamsat")
    checked = []
    real_check = users.check_password_hash
    monkeypatch.setattr(users, "check_password_hash",
                        lambda stored, password: checked.append(stored.split("$")[0])
                        or real_check(stored, password))
    engine = session.get_bind()

    def statements(username: str, address: str) -> list[str]:
        seen = []

        def note(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        sa.event.listen(engine, "before_cursor_execute", note)
        try:
            result = users.authenticate(session, username, "wrong-password-1", address=address,
                                        secret="test-secret", policy=POLICY)
            session.commit()
        finally:
            sa.event.remove(engine, "before_cursor_execute", note)
        assert result.outcome == "bad_credentials"
        return seen

    known, unknown = statements("giamsat", "10.0.0.1"), statements("khongco", "10.0.0.2")
    assert known == unknown
    assert sum("login_throttle" in s for s in known) >= 3
    assert sum("INSERT INTO audit_event" in s for s in known) == 1
    assert checked == [user.password_hash.split("$")[0]] * 2  # one check each, the same scrypt parameters
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.action.like("login.%"))).all()
    assert sorted(actions) == ["login.failed", "login.unknown_user"]


# --- sessions ----------------------------------------------------------------------------------------
def test_logout_ends_the_session_on_the_server(app, client, make_user):
    make_user("supervisor", username="giamsat")
    assert login(client, "giamsat").status_code == 302
    copied = client.get_cookie("session").value
    assert client.post("/staff/logout").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert fresh(app, thief, "GET", "/staff/").status_code == 302  # to the login page: the copied cookie is dead


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_the_csrf_token_changes_at_login(app, client, make_user):
    make_user("supervisor", username="giamsat")
    before = csrf_token_from(fresh(app, client, "GET", "/staff/login").get_data(as_text=True))
    assert fresh(app, client, "POST", "/staff/login", data={"username": "giamsat", "password": PASSWORD,
                                                            "csrf_token": before}).status_code == 302
    after = csrf_token_from(fresh(app, client, "GET", "/staff/").get_data(as_text=True))
    assert after != before
    # the token from before the login no longer works
    assert fresh(app, client, "POST", "/staff/logout", data={"csrf_token": before}).status_code == 400


def test_production_cookies_are_https_only(tmp_path):
    from survey_service import create_app

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite", "SECRET_KEY": "s",
                      "SHEET_SIGNING_KEYS": ["k"]})
    assert app.config["SESSION_COOKIE_SECURE"] is True


# --- passwords and usernames ----------------------------------------------------------------------------
@pytest.mark.parametrize("password, message", [
    ("1234567890", "quá phổ biến"), ("qwertyuiop", "quá phổ biến"), ("nguyenvana-2024", "tên đăng nhập"),
    ("\x00" * 10, "ký tự điều khiển"), ("x" * 1_500_000, "tối đa 128"), ("short", "ít nhất 10"),
    ("aaaaaaaaaaaa", "quá phổ biến"),
])
def test_weak_passwords_are_refused(session, password, message):
    with pytest.raises(users.UserError, match=message):
        users.create_user(session, "NguyenVanA", password, "clerk")


@pytest.mark.parametrize("typed", ["ａｄｍｉｎ", "ADMIN", " Admin "])
def test_look_alike_usernames_are_the_same_account(session, make_user, typed):
    make_user("admin", username="admin")
    with pytest.raises(users.UserError, match="đã tồn tại"):
        users.create_user(session, typed, PASSWORD, "clerk")


def test_usernames_are_plain_letters(session):
    for name in ("ádmin", "a b", "-x", "x\x00"):
        with pytest.raises(users.UserError, match="không dấu"):
            users.create_user(session, name, PASSWORD, "clerk")


def test_login_normalises_the_username(client, make_user):
    make_user("clerk", username="buudien")
    assert login(client, "ＢＵＵＤＩＥＮ").status_code == 302


# --- password changes and roles ------------------------------------------------------------------------
def test_staff_member_changes_their_own_password(app, client, make_user, session):
    make_user("clerk", username="buudien")
    login(client, "buudien")
    other = app.test_client()
    login(other, "buudien", address="10.0.0.2")
    wrong = client.post("/staff/password", data={"current": "not-my-password", "new": "mot-cum-tu-moi-dai",
                                                 "repeat": "mot-cum-tu-moi-dai"})
    assert wrong.status_code == 400 and "Mật khẩu hiện tại không đúng" in wrong.get_data(as_text=True)
    weak = client.post("/staff/password", data={"current": PASSWORD, "new": "1234567890", "repeat": "1234567890"})
    assert weak.status_code == 400 and "quá phổ biến" in weak.get_data(as_text=True)
    done = client.post("/staff/password", data={"current": PASSWORD, "new": "mot-cum-tu-moi-dai",
                                                "repeat": "mot-cum-tu-moi-dai"})
    assert done.status_code == 302
    assert fresh(app, client, "GET", "/staff/").status_code == 200  # this session goes on
    assert fresh(app, other, "GET", "/staff/").status_code == 302  # the other one ended
    assert login(app.test_client(), "buudien", "mot-cum-tu-moi-dai", address="10.0.0.3").status_code == 302
    assert session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.password_change")) is not None


def test_admin_resets_a_password_and_changes_a_role(app, make_user, session, staff_client):
    victim = make_user("clerk", username="buudien")
    client = app.test_client()
    login(client, "buudien")
    admin = staff_client("admin")
    weak = admin.post(f"/staff/admin/users/{victim.id}/password", data={"password": "buudien123456"})
    assert weak.status_code == 400 and "tên đăng nhập" in weak.get_data(as_text=True)
    assert admin.post(f"/staff/admin/users/{victim.id}/password",
                      data={"password": "giao-tan-tay-2024"}).status_code == 302
    assert fresh(app, client, "GET", "/staff/").status_code == 302  # the victim's session ended
    assert fresh(app, app.test_client(), "POST", "/staff/login", environ_base={"REMOTE_ADDR": "10.0.0.4"},
                 data={"username": "buudien", "password": "giao-tan-tay-2024"}).status_code == 302

    assert admin.post(f"/staff/admin/users/{victim.id}/role", data={"role": "supervisor"}).status_code == 302
    boss = admin.post(f"/staff/admin/users/{victim.id}/role", data={"role": "boss"})
    assert boss.status_code == 400 and "Vai trò không hợp lệ" in boss.get_data(as_text=True)
    session.expire_all()
    assert session.get(StaffUser, victim.id).role is Role.SUPERVISOR
    events = {e.action: e for e in session.scalars(sa.select(AuditEvent).where(
        AuditEvent.object_type == "staff_user", AuditEvent.object_id == str(victim.id)))}
    assert events["user.role"].old_value == {"role": "clerk"}
    assert events["user.role"].new_value == {"role": "supervisor"}
    assert "user.password_reset" in events and "giao-tan-tay" not in str(events["user.password_reset"].new_value)

    me = session.scalar(sa.select(StaffUser).where(StaffUser.role == Role.ADMIN))
    refused = admin.post(f"/staff/admin/users/{me.id}/role", data={"role": "clerk"})
    assert refused.status_code == 400 and "tự bỏ vai trò quản trị" in refused.get_data(as_text=True)
