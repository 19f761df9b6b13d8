"""A round of another structure, written as data only: a city with departments and communes (no districts,
no vertical agencies), new form codes, a supervising mapping per commune, and agencies continuing QNA-2023.
It loads, takes responses on both channels, and its pages, exports and API speak of its own kinds."""
from __future__ import annotations

import csv
import io
import re
import shutil
from collections import OrderedDict
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from survey_service.models import Agency, AgencyContinuation, QuotaCell, Response
from survey_service.services import exports, imports, invitations, portal, results, rounds
from tests.conftest import QUESTIONNAIRE_DIR, SECRET, release_ballots

#: new form code -> (file it is derived from, what changes)
FORMS = {
    "CC-XA": ("CC-CH.yaml", {"rated_kinds": ["commune"],
                             "title": "Phiếu khảo sát ý kiến công chức cấp xã về công tác cải cách hành chính"}),
    "LĐ-PXA": ("LD-CP.yaml", {"title": "Phiếu khảo sát lãnh đạo phòng thuộc UBND cấp xã đánh giá sở quản lý"}),
    "LĐS-XA": ("LDS-CT.yaml", {"rated_kinds": ["commune"],
                               "title": "Phiếu khảo sát lãnh đạo sở đánh giá UBND cấp xã"}),
    "HĐ-TPA": ("HD-CT.yaml", {"rated_kinds": ["department", "commune"],
                             "title": "Phiếu khảo sát đại biểu HĐND thành phố"}),
}
ROUND = {
    "code": "TP-2026", "name": "Điều tra xã hội học xác định Chỉ số CCHC năm 2026 (thử nghiệm cấu trúc hai cấp)",
    "province": "Thành phố thử nghiệm", "year": 2026, "legal_basis": "Dữ liệu kiểm thử",
    "opens_on": "2026-09-01", "closes_on": "2026-10-30", "portal": "cchc.example.test",
    "agency_kinds": [{"code": "department", "label": "Sở, ngành", "plural": "Các sở, ngành thành phố"},
                     {"code": "commune", "label": "UBND cấp xã", "plural": "UBND các xã, phường"}],
    "own_staff_forms": ["CC-CT", "CC-XA"],
    "forms": ["CC-CT", "CC-XA", "LĐ-PXA", "LĐS-XA", "HĐ-TPA"],
    "settings": {"double_entry_rate": 0.1, "double_entry_first_sheets": 20,
                 "unsampled_keyed_count_as_verified": True, "surplus_in_analysis": False},
}
AGENCIES = """code,kind,name,continues
SNV,department,Sở Nội vụ thành phố,QNA-2023:SNV
SXD,department,Sở Xây dựng thành phố,QNA-2023:SXD QNA-2023:SGTVT
XAAN,commune,UBND xã An Thử,QNA-2023:TAMKY
PHUONGB,commune,UBND phường Bình Thử,
"""
QUOTAS = """form,agency,channel,target,note
CC-CT,SNV,online,10,
CC-CT,SXD,online,10,
CC-XA,XAAN,online,10,
CC-XA,PHUONGB,online,10,
LĐ-PXA,XAAN,online,5,
LĐ-PXA,PHUONGB,online,5,
LĐS-XA,XAAN,paper,2,
LĐS-XA,PHUONGB,paper,2,
HĐ-TPA,,paper,5,
"""
SUPERVISING = {"LĐ-PXA": {
    "cells_per": "commune", "unit": "phòng thuộc UBND cấp xã", "supervisor": "sở quản lý",
    "divisions": [{"code": "VHXH", "name": "Phòng Văn hóa - Xã hội", "supervised_by": ["SNV"]},
                  {"code": "KT", "name": "Phòng Kinh tế", "supervised_by": ["SXD", "SNV"]}],
}}


def _dump(path, data) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture
def city(tmp_path):
    """The questionnaires with the city's forms added, and the city's round next to QNA-2023."""
    root = tmp_path / "questionnaires"
    shutil.copytree(QUESTIONNAIRE_DIR, root)
    registry = yaml.safe_load((root / "forms.yaml").read_text(encoding="utf-8"))
    for code, (source, changes) in FORMS.items():
        form = yaml.safe_load((root / source).read_text(encoding="utf-8"))
        form.update(code=code, **changes)
        _dump(root / source.replace(source.split(".")[0], code.replace("Đ", "D")), form)
        registry["forms"].append(code)
    _dump(root / "forms.yaml", registry)
    directory = root / "rounds" / "TP-2026"
    directory.mkdir()
    _dump(directory / "round.yaml", ROUND)
    (directory / "agencies.csv").write_text(AGENCIES, encoding="utf-8")
    (directory / "quotas.csv").write_text(QUOTAS, encoding="utf-8")
    _dump(directory / "supervising.yaml", SUPERVISING)
    methodology = yaml.safe_load((QUESTIONNAIRE_DIR / "rounds" / "QNA-2023" / "methodology.yaml")
                                 .read_text(encoding="utf-8"))
    points = methodology["max_points"]["department"]
    methodology.update(
        max_points={"department": points, "commune": points},
        group_weights={"department": {"CC-CT": 0.4, "LĐ-PXA": 0.3, "HĐ-TPA": 0.3},
                       "commune": {"CC-XA": 0.4, "LĐS-XA": 0.3, "HĐ-TPA": 0.3}},
        min_respondents={"CC-CT": 1, "CC-XA": 1, "LĐ-PXA": 1, "LĐS-XA": 1, "HĐ-TPA": 1},
    )
    _dump(directory / "methodology.yaml", methodology)
    return directory


def _hidden(html: str, name: str) -> str:
    """The value of the page's hidden input ``name`` (the portal's submission id and form tag)."""
    return re.search(rf'name="{name}" type="hidden" value="([^"]+)"', html).group(1)


def _answers(questionnaire, value="4", prefix=""):
    out = {}
    for item in questionnaire.scale_items:
        scale = questionnaire.scales[item.scale]
        out[prefix + item.code] = value if value in scale.codes else scale.valid_codes[0]
    return out


@pytest.fixture
def fresh_caches(monkeypatch):
    """The portal keeps parsed questionnaires by version id for the life of the process; this round's ids
    name other forms than the ids of the rounds other tests loaded into their own databases."""
    monkeypatch.setattr(portal, "_questionnaires", {})
    monkeypatch.setattr(results, "_results_cache", OrderedDict())


def test_a_two_tier_round_runs_on_its_own_labels(app, session, runner, city, staff_client, fresh_caches):
    loaded = runner.invoke(args=["round", "load", str(city)])
    assert loaded.exit_code == 0, loaded.output
    rnd = rounds.get_round(session, "TP-2026")
    rnd.opens_on, rnd.closes_on = date(2020, 1, 1), date(2099, 12, 31)
    session.commit()
    assert rnd.kind_labels == {"department": "Sở, ngành", "commune": "UBND cấp xã"}
    sxd = session.scalar(sa.select(Agency).where(Agency.round_id == rnd.id, Agency.code == "SXD"))
    assert [(c.round_code, c.agency_code) for c in sxd.continues] == [("QNA-2023", "SXD"), ("QNA-2023", "SGTVT")]
    assert session.scalar(sa.select(sa.func.count()).select_from(AgencyContinuation)) == 4

    # online: a commune civil servant, and a commune division head who rates the departments over the division
    def code_for(form, agency):
        cell = session.scalar(sa.select(QuotaCell).join(Agency).where(
            QuotaCell.round_id == rnd.id, QuotaCell.form_code == form, Agency.code == agency))
        batch = invitations.issue_codes(session, cell, 1, actor="test")
        session.commit()
        return batch.codes[0].code

    client = app.test_client()
    for _ in range(5):
        code = code_for("CC-XA", "XAAN")
        page = client.get(f"/c/{code}", follow_redirects=True)
        assert page.status_code == 200
        q = rounds.questionnaire_for(session, rnd, "CC-XA")
        html = page.get_data(as_text=True)
        sent = client.post("/phieu", data={"action": "submit", "submission_id": _hidden(html, "submission_id"),
                                           "form_tag": _hidden(html, "form_tag"), **_answers(q)})
        assert sent.status_code == 200, sent.get_data(as_text=True)[:2000]
    code = code_for("LĐ-PXA", "PHUONGB")
    division_page = client.get(f"/c/{code}", follow_redirects=True).get_data(as_text=True)
    assert "Phòng thuộc UBND cấp xã của Anh/Chị" in division_page
    assert "(sở quản lý: Sở Nội vụ thành phố, Sở Xây dựng thành phố)" in division_page
    chosen = client.post("/phieu/phong", data={"division": "KT", "form_tag": _hidden(division_page, "form_tag")})
    assert chosen.status_code == 303
    page = client.get("/phieu").get_data(as_text=True)
    q = rounds.questionnaire_for(session, rnd, "LĐ-PXA")
    answers = {**_answers(q, "3", "SXD-"), **_answers(q, "2", "SNV-")}
    sent = client.post("/phieu", data={"action": "submit", "submission_id": _hidden(page, "submission_id"),
                                       "form_tag": _hidden(page, "form_tag"), **answers})
    assert sent.status_code == 200

    # paper: department leaders' sheets about a commune and the council's matrix, imported
    rows = []
    for q_code, agency, extra in [("LĐS-XA", "XAAN", {}), ("LĐS-XA", "XAAN", {}),
                                  ("HĐ-TPA", "SNV", {"respondent": "d1"}), ("HĐ-TPA", "XAAN", {"respondent": "d1"})]:
        rows.append({"form": q_code, "agency": agency, **extra,
                     **_answers(rounds.questionnaire_for(session, rnd, q_code), "3")})
    columns = list(dict.fromkeys(c for r in rows for c in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    imports.import_responses(session, rnd, buf.getvalue().encode("utf-8"), today=date(2026, 9, 5), secret=SECRET,
                           actor="test")
    session.commit()
    release_ballots(session)
    channels = dict(session.execute(sa.select(Response.channel, sa.func.count()).where(Response.round_id == rnd.id)
                                    .group_by(Response.channel)).all())
    # 5 + one response per department the division head rated; 2 sheets + one matrix sheet
    assert {c.value: n for c, n in channels.items()} == {"online": 7, "paper": 3}

    res = results.round_results(session, rnd)
    assert res.kind_plurals == {"department": "Các sở, ngành thành phố", "commune": "UBND các xã, phường"}
    summary = res.summary.set_index("agency")
    assert summary.loc["XAAN", "agency_kind"] == "commune" and summary.loc["XAAN", "survey_points"] > 0
    assert "khong_du_lieu" in summary.loc["PHUONGB", "flags"]  # no valid data about it: empty, never 0
    frame = exports.summary_frame(res)
    assert set(frame["Loại cơ quan"]) == {"Sở, ngành", "UBND cấp xã"}

    staff = staff_client("supervisor")
    page = staff.get("/staff/results/TP-2026/").get_data(as_text=True)
    assert "<h2>UBND các xã, phường</h2>" in page and "Cơ quan ngành dọc" not in page
    assert staff.get("/staff/results/TP-2026/ranking-commune.png").status_code == 200
    assert staff.get("/staff/results/TP-2026/ranking-district.png").status_code == 404
    dashboard = staff.get("/staff/progress/TP-2026").get_data(as_text=True)
    assert 'value="commune"' in dashboard and "UBND cấp xã" in dashboard and "UBND cấp huyện" not in dashboard
    assert staff.get("/staff/progress/TP-2026?kind=district").status_code == 400
    xlsx = staff.get("/staff/results/TP-2026/download.xlsx")
    kinds = set(pd.read_excel(io.BytesIO(xlsx.data), sheet_name="Tổng hợp")["Loại cơ quan"])
    assert kinds == {"Sở, ngành", "UBND cấp xã"}
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["components"]["schemas"]["AgencyKind"]["enum"] == ["department", "commune"]
    assert "TP-2026: UBND cấp xã" in doc["components"]["schemas"]["AgencyKind"]["description"]
