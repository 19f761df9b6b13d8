"""The JSON API: bearer tokens (401/403), figures equal to the tables, the OpenAPI document; the exports."""
import csv
import io

import openpyxl
import pytest

from survey_service.services import users
from survey_service.services.progress import FIGURES
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


# --- exports ---------------------------------------------------------------------------------------
def test_progress_csv_has_a_bom_and_the_figures(session, staff_client, rnd):
    response = staff_client("analyst").get(f"/staff/dashboard/{rnd.code}/progress.csv?form=CC-CT")
    assert response.status_code == 200 and response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["Mã phiếu", "Tên phiếu", "Mã cơ quan", "Cơ quan"]
    body = {r[2]: r for r in rows[1:-1]}
    assert set(body) == {"SNV", "STC", "BDT"}
    verified = rows[0].index("Đã xác nhận")
    assert body["STC"][verified] == "7" and rows[-1][1] == "Tổng cộng" and rows[-1][verified] == "10"


def test_progress_xlsx_reads_back(session, staff_client, rnd):
    response = staff_client("supervisor").get(f"/staff/dashboard/{rnd.code}/progress.xlsx")
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert sheet.title == "Tiến độ" and rows[0][3] == "Cơ quan"
    expected = expected_figures(session, rnd)
    verified = rows[0].index("Đã xác nhận")
    assert sum(r[verified] for r in rows[1:-1]) == sum(f["verified"] for f in expected.values()) == rows[-1][verified]
    assert "Đại Lộc" in [r[3] for r in rows]


def test_curve_is_an_svg_without_inline_styles(staff_client, rnd):
    response = staff_client("supervisor").get(f"/staff/dashboard/{rnd.code}/curve.svg")
    assert response.mimetype == "image/svg+xml"
    svg = response.get_data(as_text=True)
    assert svg.count("<polyline") == 2 and "style=" not in svg and "01/10/2025" in svg
