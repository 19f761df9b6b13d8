"""Staff preview of every form of a round, on the desktop, in a phone-sized frame and as printed: no code is
spent, no sheet is issued, nothing is stored."""
from __future__ import annotations

import subprocess
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from survey_service.models import AuditEvent, Draft, InvitationCode, Response, Sheet
from survey_service.services import preview

ONLINE = ["CC-CH", "CC-CT", "CC-ND", "LĐ-CP", "LĐX-CH"]
PAPER = ["HĐ-CT", "LĐH-CH", "LĐS-CT"]


def _stored(session) -> list[int]:
    return [session.scalar(sa.select(sa.func.count()).select_from(t))
            for t in (Response, Sheet, InvitationCode, Draft, AuditEvent)]


def test_every_form_previews_without_storing_anything(session, loaded_round, staff_client):
    client = staff_client("analyst")
    before = _stored(session)
    index = client.get("/staff/preview/").get_data(as_text=True)
    for code in ONLINE + PAPER:
        assert f'id="form-{code}"' in index
    for code in ONLINE:
        page = client.get(f"/staff/preview/QNA-2023/{code}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200, code
        assert "Xem trước" in html and "Gửi phiếu" in html and "Mã khảo sát của Anh/Chị" not in html
        assert 'type="radio"' in html
        phone = client.get(f"/staff/preview/QNA-2023/{code}/phone").get_data(as_text=True)
        assert 'width="360"' in phone and f"/staff/preview/QNA-2023/{quote(code)}" in phone
    for code in ONLINE + PAPER:
        pdf = client.get(f"/staff/preview/QNA-2023/{code}/sheet.pdf")
        assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data[:5] == b"%PDF-", code
    # The agency asked for is the one shown; LĐ-CP shows the chosen division's departments.
    html = client.get("/staff/preview/QNA-2023/CC-CT?agency=STP").get_data(as_text=True)
    assert "Sở Tư pháp" in html
    html = client.get("/staff/preview/QNA-2023/LĐ-CP?agency=TAMKY&division=TP").get_data(as_text=True)
    assert "Phòng Tư pháp" in html and "Đánh giá: Sở Tư pháp" in html
    assert _stored(session) == before


def test_preview_runs_the_portal_checks(session, loaded_round, staff_client):
    client = staff_client("supervisor")
    before = _stored(session)
    page = client.post("/staff/preview/QNA-2023/CC-CT?agency=SNV", data={"action": "submit", "I01": "9"})
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and "Phiếu chưa được lưu vì còn lỗi" in html
    assert "Lựa chọn không hợp lệ" in html and "Vui lòng chọn một mức đánh giá." in html
    q = preview.access(session, loaded_round, "CC-CT", agency_code="SNV").questionnaire
    answers = {item.code: "3" for item in q.scale_items}
    page = client.post("/staff/preview/QNA-2023/CC-CT?agency=SNV", data={"action": "submit", **answers})
    assert page.status_code == 200 and "gửi được phiếu" in page.get_data(as_text=True)
    assert _stored(session) == before


def test_bad_preview_requests(loaded_round, staff_client):
    client = staff_client("supervisor")
    assert client.get("/staff/preview/QNA-2023/XX-YY").status_code == 404
    assert client.get("/staff/preview/NOPE/CC-CT").status_code == 404
    assert client.get("/staff/preview/QNA-2023/CC-CT?agency=NOPE").status_code == 404
    assert client.get("/staff/preview/QNA-2023/LĐ-CP?division=NOPE").status_code == 404
    assert client.get("/staff/preview/QNA-2023/HĐ-CT").status_code == 404  # paper: only the printed sheet
    assert client.get("/staff/preview/?round=NOPE").status_code == 404


def test_clerks_and_respondents_may_not_preview(loaded_round, client, staff_client):
    assert client.get("/staff/preview/QNA-2023/CC-CT").status_code == 302  # to the login page
    assert staff_client("clerk").get("/staff/preview/QNA-2023/CC-CT").status_code == 403


def test_printed_preview_says_so_and_cannot_be_keyed(session, loaded_round, staff_client, tmp_path):
    client = staff_client("supervisor")
    pdf = client.get("/staff/preview/QNA-2023/LĐH-CH/sheet.pdf?agency=SNV").data
    (tmp_path / "s.pdf").write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(tmp_path / "s.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Sở Nội vụ" in text and preview.PREVIEW_SERIAL in text
    assert text.count("MẪU XEM TRƯỚC – KHÔNG PHÁT") == text.count("\f")  # on every page
    assert session.scalar(sa.select(sa.func.count()).select_from(Sheet)) == 0
    # Its QR code holds no key-in address, and its serial is not one.
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    from survey_service.services import printing, sheets
    subprocess.run(["pdftoppm", "-r", "100", "-png", "-f", "1", "-l", "1", str(tmp_path / "s.pdf"),
                    str(tmp_path / "page")], check=True)
    found = zxingcpp.read_barcodes(Image.open(next(tmp_path.glob("page-*.png"))),
                                   formats=zxingcpp.BarcodeFormat.QRCode)
    assert [f.text for f in found] == [printing.PREVIEW_QR]
    for scanned in (printing.PREVIEW_QR, preview.PREVIEW_SERIAL):
        with pytest.raises(sheets.SheetError):
            sheets.find_sheet(session, scanned, ["test-sheet-key"])


def test_preview_in_the_browser(loaded_round, live_server, staff_page, artifacts):
    from playwright.sync_api import expect

    for viewport in ("phone", "desktop"):
        page = staff_page("supervisor", viewport)
        page.goto(f"{live_server}/staff/preview/")
        page.screenshot(path=str(artifacts / f"index-{viewport}.png"))
        page.select_option("#form-CC-CT select[name=agency]", "STP")
        page.click("#form-CC-CT button:has-text('Khung điện thoại')")
        frame = page.frame_locator("iframe")
        expect(frame.locator("h1")).to_be_visible()
        expect(frame.locator("main")).to_contain_text("Sở Tư pháp")
        box = page.locator("iframe").bounding_box()
        assert box["width"] <= 360
        page.screenshot(path=str(artifacts / f"phone-{viewport}.png"))
        frame.locator("button[value=submit]").click()
        expect(frame.locator("#error-summary")).to_be_visible()
        page.screenshot(path=str(artifacts / f"phone-errors-{viewport}.png"))
        page.close()
