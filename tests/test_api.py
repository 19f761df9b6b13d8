"""The JSON API: bearer tokens (401/403), figures equal to the tables, the OpenAPI document; the exports."""
import csv
import io
import re
from datetime import datetime, timedelta, timezone
from html import unescape

import openpyxl
import pytest
import sqlalchemy as sa

from survey_service.models import AuditEvent, StaffUser
from survey_service.services import users
from survey_service.services.progress import FIGURES
from tests.conftest import PASSWORD
from tests.progress_data import expected_figures, make_round, mixed_run

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
def rnd(session):
    rnd = make_round(session, settings={"surplus_in_analysis": False})
    mixed_run(session, rnd)
    session.commit()
    return rnd


def token_for(session, make_user, role):
    token = users.issue_api_token(session, make_user(role))
    session.commit()
    return {"Authorization": f"Bearer {token}"}


def test_quotas_api_matches_the_tables(client, session, make_user, rnd):
    response = client.get(f"/api/v1/rounds/{rnd.code}/quotas", headers=token_for(session, make_user, "analyst"))
    assert response.status_code == 200
    data = response.get_json()
    assert {c["cell_id"]: {n: c[n] for n in FIGURES} for c in data["cells"]} == expected_figures(session, rnd)
    assert data["round"] == rnd.code and data["surplus_in_analysis"] is False
    assert data["total"]["verified"] == sum(c["verified"] for c in data["cells"])
    assert set(data["by_kind"]) == {"department", "district", "matrix"}


def test_quotas_api_filters(client, session, make_user, rnd):
    headers = token_for(session, make_user, "supervisor")
    data = client.get(f"/api/v1/rounds/{rnd.code}/quotas?channel=paper", headers=headers).get_json()
    assert {c["channel"] for c in data["cells"]} == {"paper"}
    bad = client.get(f"/api/v1/rounds/{rnd.code}/quotas?kind=commune", headers=headers)
    assert bad.status_code == 400 and "Loại cơ quan không hợp lệ" in bad.get_json()["message"]
    assert client.get("/api/v1/rounds/NOPE/quotas", headers=headers).status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer "}])
def test_without_a_valid_token_401(client, rnd, headers):
    response = client.get(f"/api/v1/rounds/{rnd.code}/quotas", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["status"] == 401


def test_clerk_token_403_and_inactive_account_401(client, session, make_user, rnd):
    response = client.get(f"/api/v1/rounds/{rnd.code}/quotas", headers=token_for(session, make_user, "clerk"))
    assert response.status_code == 403 and "Vai trò" in response.get_json()["message"]
    user = make_user("supervisor")
    headers = {"Authorization": f"Bearer {users.issue_api_token(session, user)}"}
    user.active = False
    session.commit()
    assert client.get(f"/api/v1/rounds/{rnd.code}/quotas", headers=headers).status_code == 401


def test_a_session_cookie_is_not_enough(staff_client, rnd):
    client = staff_client("supervisor")
    assert client.get(f"/api/v1/rounds/{rnd.code}/quotas").status_code == 401


def test_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    operation = doc["paths"]["/rounds/{round}/quotas"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403"}
    assert "respondent_key" in operation["description"]
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_token_page_issues_a_working_token(staff_client, client, rnd):
    staff = staff_client("supervisor")
    assert "Bạn chưa có mã" in staff.get("/staff/api-token/").get_data(as_text=True)
    html = staff.post("/staff/api-token/").get_data(as_text=True)
    token = html.split('<code id="token">')[1].split("</code>")[0]
    staff.post("/staff/logout")
    response = client.get(f"/api/v1/rounds/{rnd.code}/quotas", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


# --- token lifetime: expiry, a new password, revocation ----------------------------------------------
def api_status(client, token: str) -> int:
    """401 for a token that does not work; a working one reaches the endpoint (404: no such round)."""
    answer = client.get("/api/v1/rounds/KHONG-CO/quotas", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


def press(client, html: str, button: str, near: str = ""):
    """Submit the form of the page that has the button ``button`` (and the text ``near``), with its hidden
    fields, as a browser does when the button is clicked."""
    for form in re.findall(r"<form\b.*?</form>", html, re.S):
        if re.search(rf"<button[^>]*>\s*{re.escape(button)}\s*</button>", form) and near in form:
            action = unescape(re.search(r'action="([^"]*)"', form).group(1))
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
            return client.post(action, data=fields)
    raise AssertionError(f"no form with a button {button!r} near {near!r}")


def new_token(page) -> str:
    return page.get_data(as_text=True).split('<code id="token">')[1].split("</code>")[0]


def test_a_token_expires_after_the_configured_days(app, client, session, make_user, staff_client):
    user = make_user("analyst")
    old = users.issue_api_token(session, user, days=90, now=datetime.now(timezone.utc) - timedelta(days=91))
    session.commit()
    assert api_status(client, old) == 401
    staff = app.test_client()
    staff.post("/staff/login", data={"username": user.username, "password": PASSWORD})
    assert "Mã của bạn đã hết hạn lúc" in staff.get("/staff/api-token/").get_data(as_text=True)
    page = press(staff, staff.get("/staff/api-token/").get_data(as_text=True), "Tạo mã mới (thay mã cũ)")
    assert "(90 ngày)" in page.get_data(as_text=True)
    assert api_status(client, new_token(page)) == 404
    session.expire_all()
    left = session.get(StaffUser, user.id).api_token_expires_at
    left = left.replace(tzinfo=left.tzinfo or timezone.utc) - datetime.now(timezone.utc)
    assert timedelta(days=89) < left <= timedelta(days=90)


@pytest.mark.app_config(API_TOKEN_DAYS=7)
def test_the_token_page_shows_the_configured_lifetime(app, client, staff_client):
    staff = staff_client("supervisor")
    page = press(staff, staff.get("/staff/api-token/").get_data(as_text=True), "Tạo mã")
    text = page.get_data(as_text=True)
    assert "(7 ngày)" in text and "Mỗi mã dùng được 7 ngày" in text
    assert "Bạn đã có mã, dùng được đến" in staff.get("/staff/api-token/").get_data(as_text=True)


def test_a_new_password_ends_the_token(app, client, session, make_user, staff_client):
    owner = make_user("supervisor")
    staff = app.test_client()
    staff.post("/staff/login", data={"username": owner.username, "password": PASSWORD})
    token = new_token(staff.post("/staff/api-token/"))
    assert api_status(client, token) == 404
    changed = staff.post("/staff/password", data={"current": PASSWORD, "new": "mot-cum-tu-moi-dai",
                                                  "repeat": "mot-cum-tu-moi-dai"}, follow_redirects=True)
    assert "mã truy cập API cũ không còn dùng được" in changed.get_data(as_text=True)
    assert api_status(client, token) == 401
    token = new_token(staff.post("/staff/api-token/"))  # a new token after the change works...
    assert api_status(client, token) == 404
    admin = staff_client("admin")  # ...until an admin resets the password
    reset = admin.post(f"/staff/admin/users/{owner.id}/password", data={"password": "giao-tan-tay-2024"},
                       follow_redirects=True)
    assert "mã truy cập API của tài khoản đã hết hiệu lực" in reset.get_data(as_text=True)
    assert api_status(client, token) == 401
    events = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action.in_(["user.password_change", "user.password_reset"]),
        AuditEvent.object_id == str(owner.id)).order_by(AuditEvent.id)).all()
    assert [(e.action, e.new_value.get("api_token_revoked")) for e in events] == [
        ("user.password_change", True), ("user.password_reset", True)]


def test_the_owner_revokes_the_token_on_the_token_page(app, client, session, make_user):
    owner = make_user("analyst")
    staff = app.test_client()
    staff.post("/staff/login", data={"username": owner.username, "password": PASSWORD})
    token = new_token(staff.post("/staff/api-token/"))
    confirm = press(staff, staff.get("/staff/api-token/").get_data(as_text=True), "Thu hồi mã")
    assert confirm.status_code == 200 and "không dùng được nữa" in confirm.get_data(as_text=True)
    assert api_status(client, token) == 404  # asking is not revoking
    done = press(staff, confirm.get_data(as_text=True), "Thu hồi mã")
    assert done.status_code == 302
    page = staff.get("/staff/api-token/").get_data(as_text=True)
    assert "Đã thu hồi mã truy cập API" in page and "Bạn chưa có mã nào" in page
    assert "Thu hồi mã</button>" not in page
    assert api_status(client, token) == 401
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.api_token_revoke"))
    assert event.user_id == owner.id and event.object_id == str(owner.id)


def test_an_admin_revokes_an_accounts_token(app, client, session, make_user, staff_client):
    owner = make_user("analyst", username="phantich")
    token = users.issue_api_token(session, owner)
    session.commit()
    admin = staff_client("admin")
    listing = admin.get("/staff/admin/users").get_data(as_text=True)
    assert "Có, hết hạn lúc" in listing
    confirm = press(admin, listing, "Thu hồi mã", near="Thu hồi mã truy cập API của phantich")
    assert "Thu hồi mã truy cập API của tài khoản phantich" in confirm.get_data(as_text=True)
    done = press(admin, confirm.get_data(as_text=True), "Thu hồi mã")
    assert done.status_code == 302
    assert api_status(client, token) == 401
    audit = admin.get("/staff/admin/audit?action=user.api_token_revoke").get_data(as_text=True)
    assert "Thu hồi mã truy cập API" in audit and "phantich" in audit


# --- exports ---------------------------------------------------------------------------------------
def test_progress_csv_has_a_bom_and_the_figures(session, staff_client, rnd):
    response = staff_client("analyst").get(f"/staff/progress/{rnd.code}/progress.csv?form=CC-CT")
    assert response.status_code == 200 and response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Mã phiếu", "Tên phiếu", "Mã cơ quan", "Cơ quan"]
    body = {r[2]: r for r in rows[1:-1]}
    assert set(body) == {"SNV", "STC", "BDT"}
    verified = rows[0].index("Đã xác nhận")
    assert body["STC"][verified] == "7" and rows[-1][1] == "Tổng cộng" and rows[-1][verified] == "10"


def test_progress_xlsx_reads_back(session, staff_client, rnd):
    response = staff_client("supervisor").get(f"/staff/progress/{rnd.code}/progress.xlsx")
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert sheet.title == "Tiến độ" and rows[0][3] == "Cơ quan"
    expected = expected_figures(session, rnd)
    verified = rows[0].index("Đã xác nhận")
    assert sum(r[verified] for r in rows[1:-1]) == sum(f["verified"] for f in expected.values()) == rows[-1][verified]
    assert "Đại Lộc" in [r[3] for r in rows]


def test_curve_is_an_svg_without_inline_styles(staff_client, rnd):
    response = staff_client("supervisor").get(f"/staff/progress/{rnd.code}/curve.svg")
    assert response.mimetype == "image/svg+xml"
    svg = response.get_data(as_text=True)
    assert svg.count("<polyline") == 2 and "style=" not in svg and "01/10/2025" in svg


def test_cli_token_prints_the_token_and_its_expiry(runner, client, make_user):
    make_user("analyst", username="phantich")
    result = runner.invoke(args=["users", "token", "phantich"])
    assert result.exit_code == 0, result.output
    assert re.search(r"Mã dùng được 90 ngày, đến \d\d/\d\d/\d{4}", result.stderr)
    assert api_status(client, result.stdout.strip()) == 404
