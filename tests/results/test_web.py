"""Analyst pages, charts, downloads and the results API."""
from __future__ import annotations

import pytest

from survey_service.services import users


@pytest.fixture
def data(builder):
    builder.load([builder.row("CC-CT", "SNV", v) for v in "1234"]            # 4 own civil servants: hidden
                 + [builder.row("CC-CT", "STP", v) for v in "12344"]          # 5: shown
                 + [builder.row("HĐ-CT", a, "3", respondent="d1") for a in ("SNV", "STP", "TAMKY")])


def test_results_pages_for_analysts(data, staff_client):
    client = staff_client("analyst")
    page = client.get("/staff/results/QNA-2023/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Sở Tư pháp" in html and "Tổng điểm" in html and "Không có dữ liệu hợp lệ" in html
    assert "<h2>Các sở, ban, ngành</h2>" in html and "ranking-department.png" in html  # the round's labels
    chart = client.get("/staff/results/QNA-2023/ranking-department.png")
    assert chart.status_code == 200 and chart.mimetype == "image/png" and chart.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get("/staff/results/").status_code == 200
    assert client.get("/staff/results/NOPE/").status_code == 404
    assert client.get("/staff/results/QNA-2023/ranking-other.png").status_code == 404


def test_results_pages_write_numbers_the_vietnamese_way(data, staff_client):
    import re

    client = staff_client("analyst")
    table = client.get("/staff/results/QNA-2023/").get_data(as_text=True)
    stp = client.get("/staff/results/QNA-2023/agency/STP").get_data(as_text=True)
    for html in (table, stp):
        assert re.search(r">\d+,\d\d<", html)            # points: "12,34"
        assert not re.search(r">\d+\.\d+(<|%)", html)     # never "83.0" or "83.0%"
    assert re.search(r"tỷ lệ hài lòng \d+,\d\u00a0%", stp)


def test_agency_page_hides_small_groups_of_any_form(data, staff_client):
    client = staff_client("supervisor")
    snv = client.get("/staff/results/QNA-2023/agency/SNV").get_data(as_text=True)
    assert "Ẩn (nhóm dưới 5 người trả lời)" in snv
    assert "I01</td>" in snv and "1: 1" not in snv
    stp = client.get("/staff/results/QNA-2023/agency/STP").get_data(as_text=True)
    cc_ct = [row for row in stp.split("<tr>") if row.strip().startswith("<td>CC-CT</td>")]
    hd_ct = [row for row in stp.split("<tr>") if row.strip().startswith("<td>HĐ-CT</td>")]
    assert cc_ct and not any("Ẩn (nhóm dưới" in row for row in cc_ct) and "4: 2" in stp
    assert hd_ct and all("Ẩn (nhóm dưới 5 người trả lời)" in row for row in hd_ct)  # one council member
    png = client.get("/staff/results/QNA-2023/agency/STP/items.png")
    assert png.status_code == 200 and png.data[:4] == b"\x89PNG"
    assert client.get("/staff/results/QNA-2023/agency/NOPE").status_code == 404


def test_downloads(data, staff_client):
    client = staff_client("analyst")
    xlsx = client.get("/staff/results/QNA-2023/download.xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    assert "QNA-2023-ket-qua.xlsx" in xlsx.headers["Content-Disposition"]
    csv = client.get("/staff/results/QNA-2023/download.csv")
    assert csv.data.startswith("\ufeff".encode()) and "Sở Tư pháp" in csv.data.decode("utf-8-sig")
    sav = client.get("/staff/results/QNA-2023/download.sav")
    assert sav.status_code == 200 and sav.data[:4] == b"$FL2"
    assert client.get("/staff/results/QNA-2023/download.pdf").status_code == 404


def test_other_roles_and_anonymous_are_refused(data, staff_client, client):
    assert client.get("/staff/results/QNA-2023/").status_code == 302  # to the login page
    clerk = staff_client("clerk")
    assert clerk.get("/staff/results/QNA-2023/").status_code == 403


def test_results_api(data, client, make_user, session):
    url = "/api/v1/rounds/QNA-2023/results"
    assert client.get(url).status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    clerk = make_user("clerk")
    clerk_token = users.issue_api_token(session, clerk, actor="test")
    analyst = make_user("analyst")
    token = users.issue_api_token(session, analyst, actor="test")
    session.commit()
    assert client.get(url, headers={"Authorization": f"Bearer {clerk_token}"}).status_code == 403
    response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["provenance"]["round"] == "QNA-2023" and len(body["provenance"]["methodology_hash"]) == 64
    agencies = {a["agency"]: a for a in body["agencies"]}
    assert len(agencies) == 43
    assert agencies["SXD"]["survey_points"] is None and "khong_du_lieu" in agencies["SXD"]["flags"]
    stp = agencies["STP"]
    # the lone council member is a group under min_breakdown: neither used nor counted
    assert stp["survey_points"] is not None and len(stp["criteria"]) == 8 and stp["n"] == 5
    assert stp["survey_points_ci"][0] <= stp["survey_points"] <= stp["survey_points_ci"][1]
    missing = client.get("/api/v1/rounds/NOPE/results", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404 and missing.get_json()["message"]
