"""A citizens' round in Debian's Chromium: a receipt code from a result slip opens the online form once, and
the analyst's results page shows the shares satisfied with their intervals, on a phone and a desktop."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey_service.models import Ballot
from survey_service.services import receipts
from tests.conftest import axe_violations
from tests.test_citizens import SECRET, citizens_round, demo  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser


def test_a_receipt_code_opens_the_online_form_once(browser, live_server, session, citizens_round, app,  # noqa: F811
                                                   artifacts):
    [slip] = receipts.issue(session, citizens_round, secret=app.config["SECRET_KEY"], base_url=live_server,
                            agency="HOIAN", field="1", dossiers=["000.00.23.H17-260915-0007"])
    session.commit()
    page = browser.new_context(viewport={"width": 360, "height": 740}, locale="vi-VN").new_page()
    page.goto(live_server)
    page.get_by_label("Nhập mã khảo sát").fill(slip.code.lower())
    page.get_by_role("button", name="Bắt đầu trả lời").click()
    assert "UBND phường Hội An" in page.content() and "Ông/Bà hài lòng ở mức nào" in page.content()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(artifacts / "receipt-form.png"))
    for group in page.locator("fieldset").all():
        radios = group.locator("input[type=radio]")
        if radios.count():
            radios.first.check()
    page.get_by_role("button", name="Gửi phiếu").click()
    assert page.locator("h1").inner_text() == "Cảm ơn Anh/Chị đã gửi phiếu"
    assert session.scalar(sa.select(sa.func.count()).select_from(Ballot)) == 1
    page.goto(f"{live_server}/c/{slip.code}")
    assert page.locator("h1").inner_text() == "Phiếu đã được gửi"


def test_the_results_page_shows_shares_with_intervals(demo, staff_page, live_server, artifacts):  # noqa: F811
    rnd, _ = demo
    for viewport in ("phone", "desktop"):
        page = staff_page("analyst", viewport)
        page.goto(f"{live_server}/staff/results/{rnd.code}/")
        assert page.locator("h1").inner_text() == f"Kết quả khảo sát người dân {rnd.code}"
        assert "Định nghĩa làm việc" in page.locator("#definition").inner_text()
        excluded = page.locator("#excluded").inner_text()
        assert "điều tra viên bị tạm loại sau phúc tra (dtv04)" in excluded and "Phúc tra:" in excluded
        province = page.locator("#shares-province")
        assert "thành phố Đà Nẵng" in province.inner_text() and "Hài lòng chung" in province.inner_text()
        assert "%" in province.inner_text() and "n=" in province.inner_text()
        assert page.locator("#shares-agency tbody tr").count() == 4
        # the households of the two communes of the household frame, per commune where they live
        assert page.locator("#shares-commune tbody tr").count() == 2
        assert "Theo xã, phường nơi hộ gia đình cư trú" in page.content()
        assert page.locator("#improvements tbody tr").count() >= 3
        assert "DỮ LIỆU MÔ PHỎNG" in page.content().upper()
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
        page.screenshot(path=str(artifacts / f"citizens-results-{viewport}.png"), full_page=True)
        assert axe_violations(page) == []
    with page.expect_download() as download:
        page.get_by_role("link", name="Excel (.xlsx)").click()
    assert download.value.suggested_filename == f"{rnd.code}-hai-long.xlsx"
