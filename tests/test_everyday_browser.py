"""What a supervisor and a clerk meet every day, in Debian's Chromium, with and without JavaScript, on the
phone and desktop screens: confirmation before irreversible actions, the key-in screen's help and errors."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from survey_service.models import Sheet, SheetState
from survey_service.services import invitations, sheets
from tests.conftest import axe_violations, collect_from_today

pytestmark = pytest.mark.browser


def issue_ldh(session, rnd, agency="SNV"):
    collect_from_today(session, rnd)  # sheets are printed, voided and keyed only while the round collects
    batch = sheets.issue_sheets(session, rnd, sheets.paper_cells(session, rnd, form_code="LĐH-CH", agency_code=agency),
                                actor="test")
    session.commit()
    return batch


def state_of(session, serial):
    session.expire_all()
    return session.scalar(sa.select(Sheet.state).where(Sheet.serial == serial))


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_void_and_reprint_asks_first_without_javascript(loaded_round, session, staff_page, live_server, artifacts,
                                                         viewport):
    sheet = issue_ldh(session, loaded_round)[0]
    page = staff_page("supervisor", viewport, javascript=False)
    page.goto(f"{live_server}/paper/ledger/{sheet.serial}")
    page.get_by_role("button", name="Hủy số phiếu này và in phiếu thay thế").click()
    page.wait_for_url(f"**/paper/ledger/{sheet.serial}/reprint")
    assert page.locator("h1").inner_text() == f"Hủy phiếu {sheet.serial} và in phiếu thay thế?"
    assert "không hoàn tác" in page.content()
    page.screenshot(path=str(artifacts / f"confirm-{viewport}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    assert state_of(session, sheet.serial) is SheetState.ISSUED
    page.get_by_role("link", name="Không, quay lại").click()
    page.wait_for_url(f"**/paper/ledger/{sheet.serial}")
    assert sheet.serial in page.locator("h1").inner_text()
    assert state_of(session, sheet.serial) is SheetState.ISSUED

    page.get_by_role("button", name="Hủy số phiếu này và in phiếu thay thế").click()
    page.wait_for_url(f"**/paper/ledger/{sheet.serial}/reprint")
    with page.expect_download() as download:
        page.get_by_role("button", name="Hủy và in lại").click()
    assert download.value.suggested_filename.endswith(".pdf")
    assert state_of(session, sheet.serial) is SheetState.VOID


def test_confirmation_page_passes_the_accessibility_scan(loaded_round, session, staff_page, live_server):
    sheet = issue_ldh(session, loaded_round)[0]
    page = staff_page("supervisor", "phone")
    page.goto(f"{live_server}/paper/ledger/{sheet.serial}")
    page.get_by_role("button", name="Hủy số phiếu này và in phiếu thay thế").click()
    page.wait_for_selector("text=Thao tác này không hoàn tác được")
    assert axe_violations(page) == []


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_keying_without_javascript_asks_for_what_can_be_done(loaded_round, session, staff_page, live_server,
                                                            artifacts, viewport):
    collect_from_today(session, loaded_round)  # a closed round's sheets are not keyed at all
    sheet = issue_ldh(session, loaded_round)[0]
    page = staff_page("clerk", viewport, javascript=False)
    page.goto(f"{live_server}/paper/?round=QNA-2023")
    # No camera buttons that cannot work, and never "Tắt camera" before a camera is on.
    assert not page.get_by_role("button", name="Quét bằng camera").is_visible()
    assert not page.get_by_role("button", name="Tắt camera").is_visible()
    page.get_by_label("Quét mã QR hoặc gõ số phiếu").fill(sheet.serial)
    page.get_by_role("button", name="Mở phiếu").click()
    page.wait_for_url(f"**/paper/sheets/{sheet.serial}/key")
    assert page.get_by_text("Chọn một phương án cho mỗi câu").is_visible()
    assert not page.locator("[data-keys-help]").is_visible()
    page.get_by_role("button", name="Lưu phiếu (Enter)").click()
    page.wait_for_selector("#keying-errors")
    errors = page.locator("#keying-errors").inner_text()
    assert "chọn “Để trống”" in errors and "gõ “-”" not in errors
    assert "Câu 1 (E01): chưa nhập" in errors  # numbered as on the screen
    page.screenshot(path=str(artifacts / f"keying-nojs-{viewport}.png"), full_page=True)
    # Each question's legend is inside its white card, not on its top border.
    for box in page.eval_on_selector_all("form.keying fieldset.slot", """els => els.slice(0, 5).map(f => {
            const l = f.querySelector('legend').getBoundingClientRect(), b = f.getBoundingClientRect();
            return [l.top, b.top]; })"""):
        assert box[0] > box[1]


def test_keying_with_javascript_shows_the_key_help_and_camera_start_only(loaded_round, session, staff_page,
                                                                        live_server):
    issue_ldh(session, loaded_round)
    page = staff_page("clerk", "phone")
    page.goto(f"{live_server}/paper/?round=QNA-2023")
    assert page.get_by_role("button", name="Quét bằng camera").is_visible()
    assert not page.get_by_role("button", name="Tắt camera").is_visible()
    violations = axe_violations(page)
    assert violations == []


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_audit_log_is_readable_and_filterable(loaded_round, session, staff_page, live_server, artifacts, viewport):
    page = staff_page("admin", viewport)
    page.goto(f"{live_server}/staff/admin/audit")
    page.get_by_label("Thao tác").select_option(label="Nạp đợt khảo sát")
    page.get_by_role("button", name="Lọc").click()
    page.wait_for_url("**action=round.load**")
    first = page.locator("table.audit tbody tr").first
    assert "Nạp đợt khảo sát" in first.inner_text() and "Đợt QNA-2023" in first.inner_text()
    assert page.locator("table.audit tbody tr").count() == 1
    page.screenshot(path=str(artifacts / f"audit-{viewport}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    assert axe_violations(page) == []
    with page.expect_download() as download:
        page.get_by_role("link", name="Tải về CSV").click()
    assert download.value.suggested_filename.startswith("nhat-ky-thao-tac-")


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_print_page_counts_the_sheets_just_printed(loaded_round, session, staff_page, live_server, artifacts,
                                                   viewport):
    collect_from_today(session, loaded_round)  # a closed round prints no new sheets
    page = staff_page("supervisor", viewport)
    page.goto(f"{live_server}/paper/print?round=QNA-2023")
    row = page.locator("tr", has_text="LĐH-CH").filter(has_text="Sở Nội vụ")
    assert row.locator("td").nth(3).inner_text() == "0"
    page.get_by_label("Ô chỉ tiêu").select_option(value="LĐH-CH|SNV")
    with page.expect_download() as download:
        page.get_by_role("button", name="Tạo tệp PDF").click()
    assert download.value.suggested_filename.endswith(".pdf")
    page.wait_for_selector("#printed")
    row = page.locator("tr", has_text="LĐH-CH").filter(has_text="Sở Nội vụ")
    assert row.locator("td").nth(3).inner_text() == "2"  # no reload needed
    assert page.get_by_role("link", name="Tải tệp PDF để in").is_visible()
    page.screenshot(path=str(artifacts / f"print-{viewport}.png"), full_page=True)
    assert axe_violations(page) == []


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_every_clerk_page_passes_the_accessibility_scan(loaded_round, session, staff_page, live_server, artifacts,
                                                        viewport):
    sheet = issue_ldh(session, loaded_round)[0]
    matrix = sheets.issue_sheets(session, loaded_round, sheets.paper_cells(session, loaded_round, form_code="HĐ-CT"),
                                 actor="test")[0]
    session.commit()
    page = staff_page("clerk", viewport)
    for name, path in [("home", "/staff/"), ("scan", "/paper/?round=QNA-2023"),
                       ("returns", "/paper/returns?round=QNA-2023"), ("second", "/paper/second?round=QNA-2023"),
                       ("key", f"/paper/sheets/{sheet.serial}/key"), ("grid", f"/paper/sheets/{matrix.serial}/key")]:
        page.goto(f"{live_server}{path}")
        page.screenshot(path=str(artifacts / f"{name}-{viewport}.png"), full_page=True)
        assert axe_violations(page) == [], name
        if name != "grid":  # the grid scrolls inside its own box
            assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"], name


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_long_supervisor_lists_search_and_pass_the_scan(loaded_round, session, staff_page, live_server, artifacts,
                                                        viewport):
    collect_from_today(session, loaded_round)
    session.commit()
    sheets.issue_sheets(session, loaded_round, sheets.paper_cells(session, loaded_round), actor="test")
    session.commit()
    page = staff_page("supervisor", viewport)
    page.goto(f"{live_server}/paper/ledger?round=QNA-2023")
    page.get_by_label("Cơ quan được đánh giá").fill("SNV")
    page.get_by_role("button", name="Tìm").click()
    page.wait_for_url("**agency=SNV**")
    assert page.locator("table a.serial").count() == 2
    page.screenshot(path=str(artifacts / f"ledger-{viewport}.png"), full_page=True)
    assert axe_violations(page) == []
    page.goto(f"{live_server}/staff/invitations/?round=QNA-2023")
    assert page.get_by_role("navigation", name="Trang chỉ tiêu").is_visible()
    page.get_by_label("Phiếu").select_option("CC-CT")
    page.get_by_role("button", name="Tìm").click()
    page.wait_for_url("**form=CC-CT**")
    assert page.locator("form.issue").count() == 20  # one row per department
    page.screenshot(path=str(artifacts / f"codes-{viewport}.png"), full_page=True)
    assert axe_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]


def test_a_code_is_looked_up_on_the_codes_page_without_entering_the_address(loaded_round, session, staff_page,
                                                                            live_server, artifacts):
    from playwright.sync_api import expect

    collect_from_today(session, loaded_round)
    cell = invitations.find_cell(session, loaded_round, "CC-CT", "SNV")
    [code] = [c.code for c in invitations.issue_codes(session, cell, 1, actor="test").codes]
    session.commit()
    page = staff_page("supervisor", "phone")
    page.goto(f"{live_server}/staff/invitations/?round=QNA-2023")
    page.get_by_label("Mã mời cần tra cứu").fill(code.lower().replace("-", " "))
    page.get_by_role("button", name="Tra cứu mã").click()
    expect(page.locator("#code-lookup")).to_contain_text(f"Mã {code} thuộc lô")
    assert page.url == f"{live_server}/staff/invitations/lookup"
    page.screenshot(path=str(artifacts / "lookup-phone.png"), full_page=True)
    assert axe_violations(page) == []
    page.locator("#code-lookup a").click()
    expect(page.locator("h1")).to_contain_text("Lô mã")
    assert code.replace("-", "") not in page.url.upper().replace("-", "")
