"""Round DNG-2026 (Đà Nẵng, two-tier local government): its files load and say what its README says, a
response goes through each channel (online with a code in Chromium; paper printed, its QR decoded and
keyed in Chromium), and results and exports speak of its own kinds of agency."""
from __future__ import annotations

import shutil
from collections import OrderedDict
import subprocess
import unicodedata
from datetime import date, timedelta

import openpyxl
import pytest
import sqlalchemy as sa

from survey_service import questionnaires as qmod
from survey_service.models import Response, Sheet, SheetState
from survey_service.services import invitations, portal, results, rounds
from survey_service.web.respond import local_today
from tests.conftest import PASSWORD, QUESTIONNAIRE_DIR, release_ballots
from tests.portal.test_browser import VIEWPORT, answer_by_keyboard, submit_by_keyboard
from tests.results.conftest import csv_bytes, import_all

DNG_DIR = QUESTIONNAIRE_DIR / "rounds" / "DNG-2026"
#: A deployment for Đà Nẵng names its organiser and portal (settings, not round files).
DNG_DEPLOYMENT = {"ORGANISER": "Sở Nội vụ thành phố Đà Nẵng",
                  "PORTAL_NAME": "Cổng thông tin điện tử cải cách hành chính thành phố Đà Nẵng"}
QNA_FORMS = ("CC-CT", "CC-ND", "CC-CH", "LĐ-CP", "LĐX-CH", "HĐ-CT", "LĐH-CH", "LĐS-CT")
DNG_FORMS = ("CC-TP", "CC-NT", "CC-CX", "LĐ-PX", "HĐ-TP", "LĐX-TP", "LĐS-CX")


def fold(code: str) -> str:
    return code.replace("Đ", "D")


@pytest.fixture(scope="module")
def forms():
    return qmod.load_questionnaires(QUESTIONNAIRE_DIR)


@pytest.fixture(scope="module")
def dng(forms):
    return qmod.load_round(DNG_DIR, forms)


# --- the files ------------------------------------------------------------------------------------
def test_the_round_has_the_agencies_of_its_readme(dng):
    kinds = [a.kind for a in dng.agencies]
    assert (kinds.count("department"), kinds.count("commune"), kinds.count("vertical")) == (15, 93, 3)
    names = [a.name for a in dng.agencies]
    assert len(set(names)) == len(names)
    communes = [a.name for a in dng.agencies if a.kind == "commune"]
    # Nghị quyết 1659/NQ-UBTVQH15, Article 1 order: 23 phường, then 70 xã; đặc khu Hoàng Sa is not evaluated.
    assert communes[0] == "UBND phường Hải Châu" and communes[22] == "UBND phường Hội An Tây"
    assert all(n.startswith("UBND phường ") for n in communes[:23])
    assert all(n.startswith("UBND xã ") for n in communes[23:])
    assert communes[-2:] == ["UBND xã Tam Hải", "UBND xã Tân Hiệp"]
    assert not any("Hoàng Sa" in n or "huyện" in n for n in names)
    assert all(unicodedata.is_normalized("NFC", n) for n in names)


def test_paper_plan_and_online_cells(dng):
    paper = {}
    for q in dng.quotas:
        if q.channel == "paper":
            paper[q.form_code] = paper.get(q.form_code, 0) + q.target
    assert paper == {"HĐ-TP": 30, "LĐX-TP": 36, "LĐS-CX": 93}
    communes = {a.code for a in dng.agencies if a.kind == "commune"}
    ldpx = {q.agency for q in dng.quotas if q.form_code == "LĐ-PX"}
    assert ldpx == communes  # LĐ-PX respondents are sampled per commune
    assert all(s.source == "demo" for s in dng.staff_counts)


def test_forms_are_new_codes_on_the_same_question_bank(forms, dng):
    assert dng.form_codes == DNG_FORMS
    assert not {fold(c) for c in DNG_FORMS} & {fold(c) for c in QNA_FORMS}
    bank = {}
    for code in QNA_FORMS:
        for item in forms[code].scale_items:
            bank.setdefault(item.code, set()).add((item.scale, item.criterion))
    for code in DNG_FORMS:
        q = forms[code]
        for item in q.scale_items:
            assert (item.scale, item.criterion) in bank[item.code], (code, item.code)
        text = " ".join([q.title, q.respondent_group, q.instructions] + [i.text for i in q.items])
        assert "huyện" not in text and "Quảng Nam" not in text and "tỉnh" not in text, code


def test_continuation_points_at_real_qna_agencies(dng):
    qna = {a.code: a for a in qmod.load_round(QUESTIONNAIRE_DIR / "rounds" / "QNA-2023",
                                               qmod.load_questionnaires(QUESTIONNAIRE_DIR)).agencies}
    by_code = {a.code: a for a in dng.agencies}
    assert set(by_code["SNNMT"].continues) == {("QNA-2023", "SNNPTNT"), ("QNA-2023", "STNMT")}
    assert set(by_code["NUITHANH"].continues) == {("QNA-2023", "NUITHANH")}
    assert not by_code["HAICHAU"].continues  # former Đà Nẵng: no QNA-2023 predecessor
    for agency in dng.agencies:
        for round_code, code in agency.continues:
            assert round_code == "QNA-2023" and code in qna
    # Every QNA-2023 district lives on in at least one commune.
    continued = {code for a in dng.agencies for _, code in a.continues}
    assert {a.code for a in qna.values() if a.kind == "district"} <= continued


def test_province_type_is_a_tinh_or_a_thanh_pho(forms, dng, tmp_path):
    assert dng.province_type == "thành phố"
    assert qmod.load_round(QUESTIONNAIRE_DIR / "rounds" / "QNA-2023", forms).province_type == "tỉnh"  # default
    copy = tmp_path / "rounds" / "DNG-2026"
    shutil.copytree(DNG_DIR, copy)
    (copy.parent / "QNA-2023").symlink_to(QUESTIONNAIRE_DIR / "rounds" / "QNA-2023")
    yaml_file = copy / "round.yaml"
    yaml_file.write_text(yaml_file.read_text(encoding="utf-8").replace(
        'province_type: "thành phố"', 'province_type: "huyện"'), encoding="utf-8")
    with pytest.raises(qmod.QuestionnaireError) as err:
        qmod.load_round(copy, forms)
    assert str(err.value).startswith("round.yaml") and "province_type phải là tỉnh hoặc thành phố" in str(err.value)


# --- in the service -------------------------------------------------------------------------------
@pytest.fixture
def dng_round(app, session, monkeypatch):
    """DNG-2026 loaded and open today, with the process caches of parsed questionnaires and results empty
    (they are keyed by database ids, which other tests' databases reuse for other forms)."""
    monkeypatch.setattr(portal, "_questionnaires", {})
    monkeypatch.setattr(results, "_results_cache", OrderedDict())
    rounds.load_round(session, DNG_DIR, QUESTIONNAIRE_DIR)
    session.commit()
    rnd = rounds.get_round(session, "DNG-2026")
    today = local_today()
    rnd.opens_on, rnd.closes_on = today - timedelta(days=3), today + timedelta(days=30)
    session.commit()
    return rnd


def answers_row(session, rnd, form: str, agency: str, value: str = "3", **extra) -> dict:
    q = rounds.questionnaire_for(session, rnd, form)
    row = {"form": form, "agency": agency}
    for item in q.scale_items:
        row[item.code] = value if value in q.scales[item.scale].codes else q.scales[item.scale].valid_codes[0]
    return row | extra


def import_rows(session, rnd, rows: list[dict]) -> None:
    import_all(session, rnd, csv_bytes(rows), today=local_today())


@pytest.mark.browser
@pytest.mark.app_config(**DNG_DEPLOYMENT)
def test_online_response_through_the_portal(dng_round, session, browser, live_server, artifacts):
    cell = invitations.find_cell(session, dng_round, "CC-CX", "TAMKY")
    [code] = [c.code for c in invitations.issue_codes(session, cell, 1, actor="test").codes]
    session.commit()
    q = rounds.questionnaire_for(session, dng_round, "CC-CX")
    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/")
    home = page.locator("main").inner_text()
    assert "thành phố Đà Nẵng" in home and "Ủy ban nhân dân thành phố" in home and "tỉnh" not in home
    page.get_by_label("Nhập mã khảo sát trên phiếu mời").fill(code)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url == f"{live_server}/phieu"
    html = page.content()
    assert "UBND phường Tam Kỳ" in html and "thành phố Đà Nẵng" in html and "huyện" not in html
    answer_by_keyboard(page, q.items)
    submit_by_keyboard(page, "submit")
    assert page.locator("h1").inner_text() == "Cảm ơn Anh/Chị đã gửi phiếu"
    page.screenshot(path=str(artifacts / "dng-online-thanks.png"))
    context.close()
    release_ballots(session)
    [stored] = session.scalars(sa.select(Response)).all()
    assert stored.form_code == "CC-CX" and stored.agency.code == "TAMKY" and stored.channel.value == "online"


@pytest.mark.browser
@pytest.mark.app_config(PUBLIC_BASE_URL="https://cchc.example.vn")
def test_paper_sheet_printed_scanned_and_keyed(app, dng_round, session, runner, make_user, browser, live_server,
                                              tmp_path, artifacts):
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    out = tmp_path / "sheets.pdf"
    result = runner.invoke(args=["sheets", "print", "--round", "DNG-2026", "--form", "LĐS-CX", "--agency", "TAMKY",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Đã phát 1 phiếu" in result.output
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], capture_output=True, check=True, text=True).stdout
    assert "THÀNH PHỐ ĐÀ NẴNG" in text and "UBND phường Tam Kỳ" in text and "TỈNH" not in text
    subprocess.run(["pdftoppm", "-r", "100", "-png", "-f", "1", "-l", "1", str(out), str(tmp_path / "page")],
                   check=True)
    [found] = zxingcpp.read_barcodes(Image.open(next(tmp_path.glob("page-*.png"))),
                                     formats=zxingcpp.BarcodeFormat.QRCode)
    # LĐS-CX is printed to be read: its QR holds the signed serial and page, which the scanner types
    assert found.text.startswith("DNG2026-") and len(found.text) <= 26

    clerk = make_user("clerk")
    context = browser.new_context(locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/staff/login")
    page.fill("input[name=username]", clerk.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server}/staff/")
    page.goto(f"{live_server}/paper/?round=DNG-2026")
    page.fill("#code", found.text)  # what a USB scanner types, Enter included
    page.keyboard.press("Enter")
    page.wait_for_selector("form[data-keying] input[type=radio]:focus")
    assert "UBND phường Tam Kỳ" in page.content()
    q = rounds.questionnaire_for(session, dng_round, "LĐS-CX")
    typed = ["3", "4"] * (len(q.scale_items) // 2) + ["3"] * (len(q.scale_items) % 2)
    for key in typed:
        page.keyboard.press(key)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server}/paper/?round=DNG-2026")
    page.screenshot(path=str(artifacts / "dng-paper-saved.png"))
    context.close()
    session.expire_all()
    [stored] = session.scalars(sa.select(Response)).all()
    assert stored.form_code == "LĐS-CX" and stored.agency.code == "TAMKY" and stored.channel.value == "paper"
    assert session.get(Sheet, stored.sheet_id).state in (SheetState.KEYED, SheetState.VERIFIED)
    assert {a.item_code: a.value for a in stored.answers} == {i.code: k for i, k in zip(q.scale_items, typed)}


def test_results_and_exports_carry_the_rounds_labels(dng_round, session, runner, staff_client, tmp_path):
    rows = ([answers_row(session, dng_round, "CC-CX", "TAMKY", v) for v in "12344"]
            + [answers_row(session, dng_round, "LĐS-CX", "TAMKY", "4")]
            + [answers_row(session, dng_round, "CC-TP", "SNV", v) for v in "23444"]
            + [answers_row(session, dng_round, "HĐ-TP", a, "3", respondent="d1") for a in ("SNV", "CATP")])
    import_rows(session, dng_round, rows)
    xlsx, sav = tmp_path / "r.xlsx", tmp_path / "r.sav"
    result = runner.invoke(args=["analysis", "run", "--round", "DNG-2026", "--out", str(xlsx), "--out", str(sav)])
    assert result.exit_code == 0, result.output
    values = [str(c.value) for ws in openpyxl.load_workbook(xlsx).worksheets for r in ws.iter_rows() for c in r
              if c.value is not None]
    assert "UBND cấp xã" in values and "Cơ quan ngành dọc" in values
    assert not any("huyện" in v for v in values)
    pyreadstat = pytest.importorskip("pyreadstat")
    frame, meta = pyreadstat.read_sav(str(sav))
    assert set(meta.variable_value_labels["kind"].values()) == {"Sở, ban, ngành", "UBND cấp xã", "Cơ quan ngành dọc"}
    page = staff_client("analyst").get("/staff/results/DNG-2026/").get_data(as_text=True)
    assert "UBND các xã, phường, đặc khu" in page and "UBND phường Tam Kỳ" in page and "huyện" not in page


def test_demo_serves_either_round(tmp_path):
    """`demo setup --round DNG-2026` after a QNA-2023 demo: Đà Nẵng collects, Quảng Nam is back to 2023."""
    from survey_service import create_app
    from survey_service.db import get_session
    from survey_service.services import portal

    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite'}",
                      "QUESTIONNAIRE_DIR": str(QUESTIONNAIRE_DIR)})
    app.instance_path = str(tmp_path / "instance")
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "setup", "--no-simulated"]).exit_code == 0
    result = runner.invoke(args=["demo", "setup", "--round", "DNG-2026", "--no-simulated"])
    assert result.exit_code == 0, result.output
    assert "Đợt QNA-2023: trở lại thời gian của chính đợt (01/09/2023 đến 30/10/2023)" in result.output
    with app.app_context():
        session = get_session()
        today = date.today()
        assert rounds.round_state(rounds.get_round(session, "DNG-2026"), today) == "open"
        assert rounds.round_state(rounds.get_round(session, "QNA-2023"), today) == "closed"
        assert portal.current_round(session, today).code == "DNG-2026"
    wrong = runner.invoke(args=["demo", "setup", "--round", "HUE-2026"])
    assert wrong.exit_code == 2 and "không có đợt khảo sát 'HUE-2026'" in wrong.output and "DNG-2026" in wrong.output
    app.extensions["db_engine"].dispose()
