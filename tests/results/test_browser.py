"""The results pages in a real browser: the table fits a desktop screen, the phone scrolls only the table."""
from __future__ import annotations

import re

import pytest

from tests.conftest import PASSWORD, axe_violations

pytestmark = pytest.mark.browser


@pytest.fixture
def data(builder):
    departments = ["VPUB", "SNV", "STP", "SKHDT", "STC", "SCT"]
    rows = [builder.row("CC-CT", a, v) for a in departments for v in "123445"]
    rows += [builder.row("HĐ-CT", a, v, respondent=f"d{v}") for a in departments for v in "345"]
    builder.load(rows)


def test_results_table_fits_a_desktop_screen(data, staff_page, live_server, artifacts):
    for viewport in ("desktop", "phone"):
        page = staff_page("analyst", viewport)
        page.goto(f"{live_server}/staff/results/QNA-2023/")
        table = page.locator("#results-department")
        box = page.evaluate("el => [el.scrollWidth, el.parentElement.clientWidth]", table.element_handle())
        if viewport == "desktop":
            assert box[0] <= box[1], f"table {box[0]} px wide in a {box[1]} px box"
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
        flags = page.locator("#results-department ul.flags").first
        assert flags.locator("li").count() >= 1  # one flag per line, never run together
        # the rank says it compares mixtures of groups, and gives the rank among the same groups
        assert "tổ hợp nhóm đối tượng khác nhau" in page.locator(".rank-note").first.inner_text()
        assert "cùng nhóm\n1/6" in page.locator("#results-department").inner_text()
        # the sampling cells with their population and fraction (CC-CT/VPUB: 6 of 62 staff)
        cell = page.locator("#sampling-cells tr", has_text="CC-CT/VPUB")
        assert cell.is_visible() and "9,7" in cell.inner_text()
        page.screenshot(path=str(artifacts / f"results-{viewport}.png"), full_page=True)
        assert axe_violations(page) == []


def test_agency_page_chart_has_one_panel_per_group_and_the_scale_labels(data, staff_page, live_server, artifacts):
    from PIL import Image

    for viewport in ("desktop", "phone"):
        page = staff_page("analyst", viewport)
        page.goto(f"{live_server}/staff/results/QNA-2023/agency/SNV")
        page.wait_for_function("document.querySelector('img.chart').complete")
        assert page.evaluate("document.querySelector('img.chart').naturalWidth") > 0
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
        page.screenshot(path=str(artifacts / f"agency-{viewport}.png"), full_page=True)
        assert axe_violations(page) == []
    png = page.request.get(f"{live_server}/staff/results/QNA-2023/agency/SNV/items.png")
    (artifacts / "items.png").write_bytes(png.body())
    assert Image.open(artifacts / "items.png").height > 500  # two panels: CC-CT and HĐ-CT


def test_an_agency_rated_only_by_a_small_group_shows_why_it_has_no_figures(builder, staff_page, live_server,
                                                                           artifacts):
    from playwright.sync_api import expect

    builder.load([builder.row("CC-CT", "SNGV", v) for v in "123"]          # three civil servants, nobody else
                 + [builder.row("CC-CT", a, v) for a in ("SNV", "STP") for v in "12344"])
    page = staff_page("analyst", "desktop")
    page.goto(f"{live_server}/staff/results/QNA-2023/")
    row = page.locator("#results-department tr", has_text="Sở Ngoại vụ")
    expect(row).to_contain_text("Không công bố: số liệu chỉ có từ nhóm đối tượng dưới 5 người trả lời")
    assert row.locator("td.num").first.inner_text().strip() == "—"   # no rank
    ranks = page.locator("#results-department tr", has_text="Sở Tư pháp").locator("td.num").first.inner_text()
    assert ranks.split()[0] in ("1", "2")   # ranked among the two agencies that have figures
    row.get_by_role("link", name="Sở Ngoại vụ").click()
    expect(page.locator("#withheld")).to_contain_text("dưới 5 người trả lời")
    expect(page.locator("main")).not_to_contain_text("phiếu hợp lệ")
    expect(page.get_by_role("heading", name="Điểm theo lĩnh vực")).to_have_count(0)
    page.screenshot(path=str(artifacts / "withheld-agency.png"), full_page=True)
    assert axe_violations(page) == []


def test_targets_and_the_report_download(data, staff_page, live_server, artifacts):
    """The satisfaction cell says whether the target is met; the report form downloads the Word report."""
    from docx import Document
    from playwright.sync_api import expect

    page = staff_page("supervisor", "desktop")
    page.goto(f"{live_server}/staff/results/QNA-2023/")
    row = page.locator("#results-department tr", has_text="Sở Nội vụ")
    expect(row.locator(".verdict")).to_have_text(re.compile(r"^(Đạt|Không đạt|Chưa đủ căn cứ) \(mục tiêu ≥ 90%\)$"))
    form = page.locator("form.report-form")
    expect(form.get_by_label("So sánh với đợt")).to_have_value("")
    with page.expect_download() as download:
        form.get_by_role("button", name="Tải báo cáo Word (.docx)").click()
    path = artifacts / "report.docx"
    download.value.save_as(path)
    assert download.value.suggested_filename == "QNA-2023-bao-cao.docx"
    texts = [p.text for p in Document(path).paragraphs]
    assert "III. KẾT QUẢ" in texts and "2. Đối chiếu với mục tiêu" in texts
    page.screenshot(path=str(artifacts / "results-report-form.png"), full_page=True)
    assert axe_violations(page) == []


def test_plan_sets_targets_for_a_decision(session, mixed_pair, make_user, live_server, browser):
    """The quota plan of a round continuing an answered one shows, and applies, the sample a decision needs."""
    from playwright.sync_api import expect

    from survey_service.services import quotas
    from tests.conftest import collect_from_today

    _, dng = mixed_pair
    snv = next(c for c in quotas.cells(session, dng) if c.agency is not None and c.agency.code == "SNV")
    snv.staff_count = 40
    collect_from_today(session, dng)
    session.commit()
    user = make_user("supervisor")
    page = browser.new_page(locale="vi-VN")
    page.goto(f"{live_server}/staff/login")
    page.fill("#username", user.username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_server}/staff/progress/{dng.code}/quotas")
    expect(page.locator("#decision-heading")).to_contain_text("QNA-2023")
    row = page.locator("table.plan tbody tr").filter(has=page.locator(f"input[name=target-{snv.id}]"))
    expect(row.locator("td.decision")).to_contain_text("khảo sát toàn bộ 40 người")
    page.click("text=Đặt chỉ tiêu = cỡ mẫu để kết luận")
    expect(page.locator(f"input[name=target-{snv.id}]")).to_have_value("40")
