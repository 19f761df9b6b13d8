"""Staff login, roles, CSRF and the audit trail of logins (delays after failures: test_accounts.py)."""
import pytest
import sqlalchemy as sa
from flask import Blueprint

from survey_service.models import Role, StaffUser
from survey_service.services import users
from survey_service.web.auth import role_required
from tests.conftest import PASSWORD, csrf_token_from


def test_login_and_logout(client, auth, make_user):
    user = make_user("supervisor", full_name="Nguyễn Văn Giám")
    response = auth.login(user.username)
    assert response.status_code == 302 and response.headers["Location"].endswith("/staff/")
    home = client.get("/staff/")
    assert "Nguyễn Văn Giám" in home.get_data(as_text=True)
    assert auth.logout().status_code == 302
    assert client.get("/staff/").status_code == 302  # back to the login page


def test_wrong_password_is_401_in_vietnamese(auth, make_user):
    user = make_user("clerk")
    response = auth.login(user.username, "wrong-password-123")
    assert response.status_code == 401
    assert "Tên đăng nhập hoặc mật khẩu không đúng" in response.get_data(as_text=True)


def test_unknown_user_is_401(auth):
    assert auth.login("nobody", "whatever-password").status_code == 401


def test_empty_form_is_400(client):
    response = client.post("/staff/login", data={})
    assert response.status_code == 400
    assert "Vui lòng nhập tên đăng nhập" in response.get_data(as_text=True)


def test_inactive_account_is_refused(auth, make_user, session):
    user = make_user("clerk")
    user.active = False
    session.commit()
    assert auth.login(user.username).status_code == 403


def test_open_redirect_is_refused(client, make_user):
    user = make_user("clerk")
    response = client.post("/staff/login?next=//evil.example/x",
                           data={"username": user.username, "password": PASSWORD})
    assert response.headers["Location"].endswith("/staff/")


def test_role_guard(app, client, auth, make_user):
    bp = Blueprint("guard_test", __name__)

    @bp.route("/guard-test")
    @role_required(Role.SUPERVISOR)
    def guarded():
        return "ok"

    app.register_blueprint(bp)
    clerk, supervisor, admin = make_user("clerk"), make_user("supervisor"), make_user("admin")
    assert client.get("/guard-test").status_code == 302  # anonymous: to login
    auth.login(clerk.username)
    denied = client.get("/guard-test")
    assert denied.status_code == 403
    assert "không có quyền" in denied.get_data(as_text=True)
    auth.logout()
    auth.login(supervisor.username)
    assert client.get("/guard-test").status_code == 200
    auth.logout()
    auth.login(admin.username)
    assert client.get("/guard-test").status_code == 200


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_post_without_csrf_token_is_400(client, make_user):
    user = make_user("supervisor")
    response = client.post("/staff/login", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    page = client.get("/staff/login").get_data(as_text=True)
    ok = client.post("/staff/login", data={"username": user.username, "password": PASSWORD,
                                           "csrf_token": csrf_token_from(page)})
    assert ok.status_code == 302


def test_session_cookie_is_hardened(client, auth, make_user):
    user = make_user("supervisor")
    response = auth.login(user.username)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_create_user_rules(session, make_user):
    make_user("clerk", username="buudien")
    with pytest.raises(users.UserError, match="đã tồn tại"):
        users.create_user(session, "BuuDien", PASSWORD, "clerk")
    with pytest.raises(users.UserError, match="Vai trò"):
        users.create_user(session, "x1", PASSWORD, "boss")
    with pytest.raises(users.UserError, match="ít nhất"):
        users.create_user(session, "x2", "short", "clerk")


def test_password_is_scrypt_hashed(make_user):
    user = make_user("clerk")
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash


def test_cli_users_create(runner, session):
    result = runner.invoke(args=["users", "create", "gs2", "--role", "supervisor", "--password-stdin"],
                           input="a-long-password\n")
    assert result.exit_code == 0, result.output
    user = session.scalar(sa.select(StaffUser).where(StaffUser.username == "gs2"))
    assert user.role is Role.SUPERVISOR
    bad = runner.invoke(args=["users", "create", "gs3", "--role", "supervisor", "--password-stdin"], input="x\n")
    assert bad.exit_code == 1 and "ít nhất" in bad.output


def test_unknown_page_is_404_in_vietnamese(client):
    response = client.get("/khong-co")
    assert response.status_code == 404
    assert "Không tìm thấy" in response.get_data(as_text=True)
