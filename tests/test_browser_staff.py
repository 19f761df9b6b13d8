"""A staff member logs in with a real browser (Debian's Chromium) on a phone-sized screen."""
import pytest

from tests.conftest import axe_violations

pytestmark = pytest.mark.browser


def test_login_in_a_real_browser(browser, live_server, make_user, loaded_round, artifacts):
    make_user("supervisor", username="giamsat", full_name="Nguyễn Thị Giám Sát")
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="vi-VN")
    page = context.new_page()
    page.goto(f"{live_server}/staff/login")
    page.get_by_label("Tên đăng nhập").fill("giamsat")
    page.get_by_label("Mật khẩu").fill("wrong-password-1")
    page.keyboard.press("Enter")
    assert page.get_by_role("alert").first.inner_text().startswith("Tên đăng nhập hoặc mật khẩu không đúng")
    page.get_by_label("Mật khẩu").fill("correct-horse-battery")
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(f"{live_server}/staff/")
    assert "Nguyễn Thị Giám Sát" in page.inner_text("h1")
    # Nothing overflows the 360 px screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(artifacts / "staff-home.png"), full_page=True)

    # The reminders table: one card per agency, each line as wide as the card and naming its column.
    page.goto(f"{live_server}/staff/reminders/QNA-2023/")
    first = page.locator("#reminders tbody tr").first
    cells = first.locator("th, td")
    boxes = [cells.nth(i).bounding_box() for i in range(cells.count())]
    assert len({round(b["x"]) for b in boxes}) == 1 and min(b["width"] for b in boxes) > 300, boxes
    assert page.evaluate("el => getComputedStyle(el, '::before').content", first.locator("td").first.element_handle()) \
        == '"Phiếu còn thiếu: "'
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert axe_violations(page) == []
    page.screenshot(path=str(artifacts / "reminders.png"), full_page=False)
    context.close()


@pytest.mark.parametrize(("role", "path", "width"), [("supervisor", "/staff/dashboard/QNA-2023", 90 * 16),
                                                     ("admin", "/staff/admin/audit", 80 * 16)])
def test_wide_pages_widen_their_header_and_footer_too(staff_page, live_server, loaded_round, role, path, width):
    page = staff_page(role, "desktop")
    page.set_viewport_size({"width": 1800, "height": 900})
    page.goto(f"{live_server}{path}")
    boxes = [page.locator(selector).bounding_box() for selector in ("header.site .wrap", "main", "footer.site .wrap")]
    assert {(round(b["x"]), round(b["width"])) for b in boxes} == {((1800 - width) // 2, width)}, boxes
